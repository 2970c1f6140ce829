package api

import (
	"cmp"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/policy"
)

// privateEndpoints serves /private-endpoints, /private-endpoints/{name}
// and POST …/approve, …/reject. The listener opens and closes with the
// resource, without a restart.
func (a *API) privateEndpoints(w http.ResponseWriter, r *request) error {
	snap := a.dir.Snapshot()
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, snap.Endpoints(), func(e auth.PrivateEndpoint) string { return e.Name })
	case 2:
		name := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			e, ok := snap.Endpoint(name)
			if !ok {
				return notFound("private endpoint", name)
			}
			return writeJSON(w, http.StatusOK, e)
		case http.MethodPut:
			return a.putPrivateEndpoint(w, r, name)
		case http.MethodDelete:
			if _, ok := snap.Endpoint(name); !ok {
				return notFound("private endpoint", name)
			}
			if err := a.dir.DeletePrivateEndpoint(r.Context(), name); err != nil {
				return err
			}
			if err := a.opts.Listeners.Close(name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	case 3:
		var st policy.EndpointState
		switch r.seg[2] {
		case "approve":
			st = policy.StateApproved
		case "reject":
			st = policy.StateRejected
		default:
			return errcode.NotFound.New("no such endpoint")
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed("POST")
		}
		e, err := a.dir.SetPrivateEndpointState(r.Context(), r.seg[1], st)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, e)
	}
	return errcode.NotFound.New("no such endpoint")
}

func (a *API) putPrivateEndpoint(w http.ResponseWriter, r *request, name string) error {
	in := struct {
		Name        string `json:"name"`
		Listen      string `json:"listen"`
		Address     string `json:"address"`
		TLS         *bool  `json:"tls"`
		State       string `json:"state"`
		Description string `json:"description"`
	}{}
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
	}
	old, exists := a.dir.Snapshot().Endpoint(name)
	if !exists {
		if err := r.need(auth.LevelOwner); err != nil {
			return err
		}
	}
	e := auth.PrivateEndpoint{Name: name, Listen: in.Listen, State: in.State, Description: in.Description}
	if in.TLS != nil {
		e.TLS = *in.TLS
	} else if exists {
		e.TLS = old.TLS
	}
	if e.Listen == "" && exists {
		e.Listen = old.Listen
	}
	if e.State == "" && exists {
		e.State = old.State
	}
	if err := auth.CheckPrivateEndpoint(&e); err != nil {
		return err
	}
	if err := a.opts.Listeners.Allowed(e.Listen); err != nil {
		return errcode.Invalid.New("listen: " + err.Error())
	}
	rebind := !exists || e.Listen != old.Listen || e.TLS != old.TLS
	e.Address = old.Address
	if rebind {
		addr, err := a.opts.Listeners.Open(name, e.Listen, e.TLS)
		if err != nil {
			return errcode.Invalid.New("listen: " + err.Error())
		}
		e.Address = addr
	}
	out, isNew, err := a.dir.PutPrivateEndpoint(r.Context(), e)
	if err != nil && rebind {
		// The listener follows the stored record: none for a new
		// endpoint, the old address and TLS for an existing one.
		if !exists {
			_ = a.opts.Listeners.Close(name)
		} else if _, rerr := a.opts.Listeners.Open(name, cmp.Or(old.Address, old.Listen), old.TLS); rerr != nil {
			a.opts.Logger.ErrorContext(r.Context(), "reopening a private endpoint on its old address", "endpoint", name, "address", cmp.Or(old.Address, old.Listen), "err", rerr)
		}
	}
	if err != nil {
		return err
	}
	return created(w, isNew, out)
}

// services serves /services and /services/{name} (trusted-service
// instances).
func (a *API) services(w http.ResponseWriter, r *request) error {
	if len(r.seg) >= 3 && r.seg[2] == "tasks" {
		return a.tasks(w, r)
	}
	snap := a.dir.Snapshot()
	switch len(r.seg) {
	case 1:
		if r.Method != http.MethodGet {
			return methodNotAllowed("GET")
		}
		return writeList(w, r, snap.Services(), func(s auth.Service) string { return s.Name })
	case 2:
		name := r.seg[1]
		switch r.Method {
		case http.MethodGet:
			s, ok := snap.Service(name)
			if !ok {
				return notFound("service", name)
			}
			return writeJSON(w, http.StatusOK, s)
		case http.MethodPut:
			var in auth.Service
			if err := decode(r, &in); err != nil {
				return err
			}
			if in.Name != "" && in.Name != name {
				return errcode.Invalid.New("name: the body names " + in.Name + ", the path " + name)
			}
			in.Name = name
			if old, ok := snap.Service(name); ok && !strings.Contains(in.Identity.Type, auth.IdentitySystem) {
				// Dropping the system-assigned identity deletes it.
				if err := r.needOwnerIfHoldsRoles(snap, old.Identity.PrincipalID, "removing a system-assigned identity that holds roles needs Owner"); err != nil {
					return err
				}
			}
			s, isNew, err := a.dir.PutService(r.Context(), in)
			if err != nil {
				return err
			}
			return created(w, isNew, s)
		case http.MethodDelete:
			if old, ok := snap.Service(name); ok {
				if err := r.needOwnerIfHoldsRoles(snap, old.Identity.PrincipalID, "deleting a service whose system-assigned identity holds roles needs Owner"); err != nil {
					return err
				}
			}
			if err := a.dir.DeleteService(r.Context(), name); err != nil {
				return err
			}
			return noContent(w)
		}
		return methodNotAllowed("GET, PUT, DELETE")
	}
	return errcode.NotFound.New("no such endpoint")
}
