package auth

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/storage"
)

// Services lists trusted-service instances by name.
func (s *Snapshot) Services() []Service {
	out := make([]Service, 0, len(s.services))
	for _, svc := range s.services {
		out = append(out, *svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Service returns one service instance.
func (s *Snapshot) Service(name string) (Service, bool) {
	svc := s.services[name]
	if svc == nil {
		return Service{}, false
	}
	return *svc, true
}

// SystemIdentityName is the name of a service instance's system-assigned
// identity.
func SystemIdentityName(typ, instance string) string { return typ + "-" + instance }

// PutService creates or updates a trusted-service instance. A
// system-assigned identity is created with it (named <type>-<name>) and
// deleted when the instance drops it; user-assigned identities must be
// managed identities and are supported for containerInstances only.
func (d *Directory) PutService(ctx context.Context, in Service) (Service, bool, error) {
	if !validName(in.Name) {
		return Service{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", in.Name)
	}
	typ, ok := lookupServiceType(in.Type)
	if !ok {
		return Service{}, false, invalid("type: %q is not a trusted service (containerInstances, tasks, machineLearning, scanner, registry)", in.Type)
	}
	system, user := false, false
	switch in.Identity.Type {
	case IdentitySystem:
		system = true
	case IdentityUser:
		user = true
	case IdentitySystemUser, "UserAssigned,SystemAssigned":
		system, user = true, true
		in.Identity.Type = IdentitySystemUser
	case "", IdentityNone:
		in.Identity.Type = IdentityNone
	default:
		return Service{}, false, invalid("identity.type: %q is not SystemAssigned, UserAssigned or SystemAssigned,UserAssigned", in.Identity.Type)
	}
	if user && !typ.UserAssigned {
		return Service{}, false, invalid("identity.type: user-assigned identities are supported for containerInstances only")
	}
	if !user && len(in.Identity.UserAssignedIdentities) > 0 {
		return Service{}, false, invalid("identity.userAssignedIdentities: needs identity.type UserAssigned")
	}
	if user && len(in.Identity.UserAssignedIdentities) == 0 {
		return Service{}, false, invalid("identity.userAssignedIdentities: name at least one managed identity")
	}
	var out Service
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		var old Service
		switch err := getJSON(tx, collServices, in.Name, &old); {
		case errors.Is(err, ErrNotFound):
			created = true
		case err != nil:
			return err
		default:
			if old.Type != in.Type {
				return invalid("type: an instance keeps its type (%s); delete and re-create it", old.Type)
			}
		}
		sysName := SystemIdentityName(in.Type, in.Name)
		var sys identityRecord
		sysErr := getJSON(tx, collIdentities, sysName, &sys)
		if sysErr != nil && !errors.Is(sysErr, ErrNotFound) {
			return sysErr
		}
		switch {
		case system && errors.Is(sysErr, ErrNotFound):
			if err := getJSON(tx, collTokens, sysName, &tokenRecord{}); err == nil {
				return conflict("the username %q is taken by a token", sysName)
			}
			sys = identityRecord{V: 1, Name: sysName, Kind: KindManagedIdentity, Enabled: true, PrincipalID: newID(), Service: in.Name, CreatedAt: d.now().UTC()}
			if err := putJSON(tx, collIdentities, sysName, sys); err != nil {
				return err
			}
		case system && sys.Service != in.Name:
			return conflict("identity %q exists and does not belong to service %q", sysName, in.Name)
		case !system && sysErr == nil && sys.Service == in.Name:
			if err := deleteIdentityTx(tx, &sys); err != nil {
				return err
			}
		}
		in.Identity.PrincipalName, in.Identity.PrincipalID = "", ""
		if system {
			in.Identity.PrincipalName, in.Identity.PrincipalID = sys.Name, sys.PrincipalID
		}
		seen := map[string]bool{}
		for i, ua := range in.Identity.UserAssignedIdentities {
			var rec identityRecord
			if err := getJSON(tx, collIdentities, ua, &rec); err != nil {
				if errors.Is(err, ErrNotFound) {
					return invalid("identity.userAssignedIdentities[%d]: no identity named %q", i, ua)
				}
				return err
			}
			if rec.Kind != KindManagedIdentity || rec.Service != "" {
				return invalid("identity.userAssignedIdentities[%d]: %q is not a user-assigned managed identity", i, ua)
			}
			if seen[ua] {
				return invalid("identity.userAssignedIdentities[%d]: %q listed twice", i, ua)
			}
			seen[ua] = true
		}
		out = in
		return putJSON(tx, collServices, in.Name, in)
	})
	return out, created, err
}

// DeleteService removes a service instance and its system-assigned
// identity (with that identity's role assignments).
func (d *Directory) DeleteService(ctx context.Context, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		var svc Service
		if err := getJSON(tx, collServices, name, &svc); err != nil {
			return err
		}
		if svc.Identity.PrincipalName != "" {
			var sys identityRecord
			if err := getJSON(tx, collIdentities, svc.Identity.PrincipalName, &sys); err == nil && sys.Service == name {
				if err := deleteIdentityTx(tx, &sys); err != nil {
					return err
				}
			}
		}
		if err := deleteTasksTx(tx, name); err != nil {
			return err
		}
		return deleteDoc(tx, collServices, name)
	})
}

// PutPrivateEndpoint stores a private endpoint. The caller (the server)
// has bound its listener and sets Address.
func (d *Directory) PutPrivateEndpoint(ctx context.Context, e PrivateEndpoint) (PrivateEndpoint, bool, error) {
	if err := CheckPrivateEndpoint(&e); err != nil {
		return PrivateEndpoint{}, false, err
	}
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		switch err := getJSON(tx, collEndpoints, e.Name, &PrivateEndpoint{}); {
		case errors.Is(err, ErrNotFound):
			created = true
		case err != nil:
			return err
		}
		return putJSON(tx, collEndpoints, e.Name, e)
	})
	return e, created, err
}

// CheckPrivateEndpoint validates a private endpoint's name and state
// (Approved when empty).
func CheckPrivateEndpoint(e *PrivateEndpoint) error {
	if !validName(e.Name) || strings.EqualFold(e.Name, PublicEndpoint) {
		return invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-' (and not %q)", e.Name, PublicEndpoint)
	}
	if e.State == "" {
		e.State = policy.StateApproved.String()
	}
	if _, ok := policy.ParseEndpointState(e.State); !ok {
		return invalid("state: %q is not Approved, Pending, Rejected or Disconnected", e.State)
	}
	return nil
}

// SetPrivateEndpointState approves, rejects or disconnects an endpoint.
func (d *Directory) SetPrivateEndpointState(ctx context.Context, name string, st policy.EndpointState) (PrivateEndpoint, error) {
	var out PrivateEndpoint
	err := d.update(ctx, func(tx storage.DocTx) error {
		if err := getJSON(tx, collEndpoints, name, &out); err != nil {
			return err
		}
		out.State = st.String()
		return putJSON(tx, collEndpoints, name, out)
	})
	return out, err
}

// DeletePrivateEndpoint removes an endpoint's record.
func (d *Directory) DeletePrivateEndpoint(ctx context.Context, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error { return deleteDoc(tx, collEndpoints, name) })
}

// TrustedServiceOf names the service instance whose managed identity the
// principal is, if any.
func (s *Snapshot) TrustedServiceOf(p Principal) (instance, typ string, ok bool) {
	t, ok := s.trustedService(p)
	return t.service, t.typ, ok
}
