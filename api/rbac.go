package api

import (
	"net/http"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
)

// roleAssignments serves /role-assignments and /role-assignments/{id};
// changes need Owner.
func (a *API) roleAssignments(w http.ResponseWriter, r *request) error {
	snap := a.dir.Snapshot()
	if r.Method != http.MethodGet {
		if err := r.need(auth.LevelOwner); err != nil {
			return err
		}
	}
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		list := snap.RoleAssignments()
		if p := r.URL.Query().Get("principal"); p != "" {
			kept := list[:0]
			for _, ra := range list {
				if ra.Principal == p || ra.PrincipalID == p {
					kept = append(kept, ra)
				}
			}
			list = kept
		}
		return writeList(w, r, list, func(ra auth.RoleAssignment) string { return ra.ID })
	case 2:
		id := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			ra, ok := snap.RoleAssignment(id)
			if !ok {
				return notFound("role assignment", id)
			}
			return writeJSON(w, http.StatusOK, ra)
		case http.MethodPut:
			var in auth.RoleAssignment
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.ID != "" && in.ID != id {
				return errcode.Invalid.New("id: the body names " + in.ID + ", the path " + id)
			}
			in.ID = id
			ra, isNew, err := a.dir.PutRoleAssignment(r.Context(), in)
			if err != nil {
				return err
			}
			return created(w, isNew, ra)
		case http.MethodDelete:
			if err := a.dir.DeleteRoleAssignment(r.Context(), id); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	}
	return errcode.NotFound.New("no such endpoint")
}

// scopeMaps serves /scope-maps and /scope-maps/{name}.
func (a *API) scopeMaps(w http.ResponseWriter, r *request) error {
	snap := a.dir.Snapshot()
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, snap.ScopeMaps(), func(s auth.ScopeMap) string { return s.Name })
	case 2:
		name := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			sm, ok := snap.ScopeMap(name)
			if !ok {
				return notFound("scope map", name)
			}
			return writeJSON(w, http.StatusOK, sm)
		case http.MethodPut:
			var in auth.ScopeMap
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			in.Name = name
			sm, isNew, err := a.dir.PutScopeMap(r.Context(), in)
			if err != nil {
				return err
			}
			return created(w, isNew, sm)
		case http.MethodDelete:
			if err := a.dir.DeleteScopeMap(r.Context(), name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	}
	return errcode.NotFound.New("no such endpoint")
}

// tokens serves /tokens, /tokens/{name} and POST /tokens/{name}/passwords.
func (a *API) tokens(w http.ResponseWriter, r *request) error {
	snap := a.dir.Snapshot()
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, snap.Tokens(), func(t auth.Token) string { return t.Name })
	case 2:
		name := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			t, ok := snap.Token(name)
			if !ok {
				return notFound("token", name)
			}
			return writeJSON(w, http.StatusOK, t)
		case http.MethodPut:
			in := struct {
				Name     string `json:"name"`
				ScopeMap string `json:"scopeMap"`
				Status   string `json:"status"`
			}{}
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			t, isNew, err := a.dir.PutToken(r.Context(), auth.Token{Name: name, ScopeMap: in.ScopeMap, Status: in.Status})
			if err != nil {
				return err
			}
			return created(w, isNew, t)
		case http.MethodDelete:
			if err := a.dir.DeleteToken(r.Context(), name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	case 3:
		if r.seg[2] != "passwords" {
			break
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed("POST")
		}
		in := struct {
			Name      string `json:"name"`
			ExpiresIn string `json:"expiresIn"`
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
		pw, err := a.dir.GenerateTokenPassword(r.Context(), r.seg[1], in.Name, life)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, http.StatusCreated, pw)
	}
	return errcode.NotFound.New("no such endpoint")
}
