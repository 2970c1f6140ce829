package api

import (
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
)

// identities serves /identities, /identities/{name},
// /identities/{name}/secrets[/{id}].
func (a *API) identities(w http.ResponseWriter, r *request) error {
	snap := a.dir.Snapshot()
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, snap.Identities(), func(i auth.Identity) string { return i.Name })
	case 2:
		name := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			id, ok := snap.Identity(name)
			if !ok {
				return notFound("identity", name)
			}
			return writeJSON(w, http.StatusOK, id)
		case http.MethodPut:
			if old, ok := snap.Identity(name); ok {
				if err := r.needOwnerIfHoldsRoles(snap, old.PrincipalID, "changing an identity that holds roles needs Owner"); err != nil {
					return err
				}
			}
			in := struct {
				Name    string `json:"name"`
				Kind    string `json:"kind"`
				Enabled *bool  `json:"enabled"`
			}{}
			if err := decodeOptional(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			enabled := true
			if in.Enabled != nil {
				enabled = *in.Enabled
			}
			id, isNew, err := a.dir.PutIdentity(r.Context(), auth.Identity{Name: name, Kind: in.Kind, Enabled: enabled})
			if err != nil {
				return err
			}
			return created(w, isNew, id)
		case http.MethodDelete:
			if old, ok := snap.Identity(name); ok {
				// Deleting it deletes its role assignments.
				if err := r.needOwnerIfHoldsRoles(snap, old.PrincipalID, "deleting an identity that holds roles needs Owner"); err != nil {
					return err
				}
			}
			if err := a.dir.DeleteIdentity(r.Context(), name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	}
	name := r.seg[1]
	switch r.seg[2] {
	case "secrets":
		return a.secrets(w, r, name)
	case "federated-credentials":
		return a.federatedCredentials(w, r, name)
	}
	return errcode.NotFound.New("no such endpoint")
}

// secrets serves POST /identities/{name}/secrets and
// DELETE /identities/{name}/secrets/{id}.
func (a *API) secrets(w http.ResponseWriter, r *request, name string) error {
	switch {
	case len(r.seg) == 3 && r.Method == http.MethodPost:
		in := struct {
			ExpiresIn  string `json:"expiresIn"`
			BcryptHash string `json:"bcryptHash"`
		}{}
		if err := decodeOptional(r, &in); err != nil {
			return err
		}
		var life time.Duration
		if in.ExpiresIn != "" {
			d, err := parseLifetime(in.ExpiresIn)
			if err != nil {
				return errcode.Invalid.New("expiresIn: " + err.Error())
			}
			life = d
		}
		if in.BcryptHash != "" {
			if err := r.need(auth.LevelOwner); err != nil {
				return err
			}
		}
		sec, err := a.dir.AddSecret(r.Context(), name, auth.SecretOptions{ExpiresIn: life, Hash: in.BcryptHash, CallerLevel: r.caller.Level})
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusCreated, sec)
	case len(r.seg) == 4 && r.Method == http.MethodDelete:
		snap := a.dir.Snapshot()
		if id, ok := snap.Identity(name); ok {
			if err := r.needOwnerIfHoldsRoles(snap, id.PrincipalID, "deleting a secret of an identity that holds roles needs Owner"); err != nil {
				return err
			}
		}
		if err := a.dir.DeleteSecret(r.Context(), name, r.seg[3]); err != nil {
			return err
		}
		return noContent(w)
	case len(r.seg) == 3:
		return methodNotAllowed("POST")
	case len(r.seg) == 4:
		return methodNotAllowed("DELETE")
	}
	return errcode.NotFound.New("no such endpoint")
}

// parseLifetime parses "90d", "12h", "30m" (Go durations plus days); it
// refuses negative lifetimes and day counts a time.Duration cannot hold.
func parseLifetime(s string) (time.Duration, error) {
	if n := len(s); n > 1 && s[n-1] == 'd' {
		d, err := time.ParseDuration(s[:n-1] + "h")
		if err != nil || d < 0 || d > math.MaxInt64/24 {
			return 0, errInvalidLifetime
		}
		return d * 24, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errInvalidLifetime
	}
	return d, nil
}

// errInvalidLifetime is wrapped by the callers into an INVALID error
// naming the field.
var errInvalidLifetime = errors.New("not a duration like 90d, 12h or 30m")

// federatedCredentials serves /identities/{name}/federated-credentials and
// …/{fc} (GET, PUT, DELETE).
func (a *API) federatedCredentials(w http.ResponseWriter, r *request, identity string) error {
	list, ok := a.dir.Snapshot().FederatedCredentials(identity)
	if !ok {
		return notFound("identity", identity)
	}
	switch len(r.seg) {
	case 3:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, list, func(f auth.FederatedCredential) string { return f.Name })
	case 4:
		name := r.seg[3]
		switch r.Method {
		case http.MethodGet:
			for _, f := range list {
				if f.Name == name {
					return writeJSON(w, http.StatusOK, f)
				}
			}
			return notFound("federated credential", name)
		case http.MethodPut:
			var in auth.FederatedCredential
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			in.Name = name
			fc, isNew, err := a.dir.PutFederatedCredential(r.Context(), identity, in, r.caller.Level)
			if err != nil {
				return err
			}
			return created(w, isNew, fc)
		case http.MethodDelete:
			snap := a.dir.Snapshot()
			if id, ok := snap.Identity(identity); ok {
				if err := r.needOwnerIfHoldsRoles(snap, id.PrincipalID, "deleting a federated credential of an identity that holds roles needs Owner"); err != nil {
					return err
				}
			}
			if err := a.dir.DeleteFederatedCredential(r.Context(), identity, name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	}
	return errcode.NotFound.New("no such endpoint")
}

// needOwnerIfHoldsRoles asks for Owner when the principal holds a role
// assignment: a Contributor may not change role assignments, nor the
// identities that hold them (disabling or deleting an Owner, deleting
// its assignments with it).
func (r *request) needOwnerIfHoldsRoles(snap *auth.Snapshot, principalID, msg string) error {
	if principalID == "" || r.caller.Level >= auth.LevelOwner {
		return nil
	}
	for _, ra := range snap.RoleAssignments() {
		if ra.PrincipalID == principalID {
			return &errcode.Error{Code: errcode.Denied, Message: msg,
				Detail: map[string]string{"stage": "authz", "reason": "NoRole"}}
		}
	}
	return nil
}
