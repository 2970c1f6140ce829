package auth

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moat-registry/moat/storage"
)

// MaxManagedSecretLifetime bounds a managed identity's secret.
const MaxManagedSecretLifetime = 90 * 24 * time.Hour

// Identities lists identities by name.
func (s *Snapshot) Identities() []Identity {
	out := make([]Identity, 0, len(s.identities))
	for _, r := range s.identities {
		out = append(out, r.view())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutIdentity creates an identity or updates its kind and enabled flag.
// System-assigned identities are created and deleted with their service
// instance only. It reports whether the identity is new.
func (d *Directory) PutIdentity(ctx context.Context, in Identity) (Identity, bool, error) {
	if !validName(in.Name) {
		return Identity{}, false, invalid("name: %q must be 1–64 letters, digits, '.', '_' or '-'", in.Name)
	}
	switch in.Kind {
	case KindUser, KindServicePrincipal, KindManagedIdentity, "": // "": unchanged, or user when new
	default:
		return Identity{}, false, invalid("kind: %q is not user, servicePrincipal or managedIdentity", in.Kind)
	}
	var out Identity
	created := false
	err := d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		err := getJSON(tx, collIdentities, in.Name, &rec)
		switch {
		case errors.Is(err, ErrNotFound):
			if reservedName(in.Name) {
				return invalid("name: %q is reserved for the system-assigned identities of service instances", in.Name)
			}
			if err := getJSON(tx, collTokens, in.Name, &tokenRecord{}); err == nil {
				return conflict("the username %q is taken by a token", in.Name)
			}
			if in.Kind == "" {
				in.Kind = KindUser
			}
			rec = identityRecord{V: 1, Name: in.Name, Kind: in.Kind, Enabled: in.Enabled, PrincipalID: newID(), CreatedAt: d.now().UTC()}
			created = true
		case err != nil:
			return err
		default:
			if in.Kind == "" {
				in.Kind = rec.Kind
			}
			if rec.Service != "" && in.Kind != rec.Kind {
				return invalid("kind: the system-assigned identity of service %q stays a managedIdentity", rec.Service)
			}
			if in.Kind != rec.Kind && len(rec.Secrets) > 0 {
				return invalid("kind: cannot change the kind of an identity that has secrets")
			}
			if in.Kind != rec.Kind {
				svcs, err := listJSON[Service](tx, collServices)
				if err != nil {
					return err
				}
				for _, svc := range svcs {
					if slices.Contains(svc.Identity.UserAssignedIdentities, rec.Name) {
						return invalid("kind: %q is a user-assigned identity of service %q and stays a managedIdentity", rec.Name, svc.Name)
					}
				}
			}
			rec.Kind, rec.Enabled = in.Kind, in.Enabled
		}
		out = rec.view()
		return putJSON(tx, collIdentities, rec.Name, rec)
	})
	return out, created, err
}

// DeleteIdentity removes an identity and its role assignments. A
// system-assigned identity goes with its service instance only.
func (d *Directory) DeleteIdentity(ctx context.Context, name string) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		if err := getJSON(tx, collIdentities, name, &rec); err != nil {
			return err
		}
		if rec.Service != "" {
			return conflict("identity %q is the system-assigned identity of service %q; delete the service or turn its identity off", name, rec.Service)
		}
		if err := d.detachUserAssigned(tx, name); err != nil {
			return err
		}
		return deleteIdentityTx(tx, &rec)
	})
}

// deleteIdentityTx deletes an identity and every role assignment of its
// principalId (a re-created identity gets a new one and inherits nothing).
func deleteIdentityTx(tx storage.DocTx, rec *identityRecord) error {
	ras, err := listJSON[RoleAssignment](tx, collAssignments)
	if err != nil {
		return err
	}
	for _, ra := range ras {
		if ra.PrincipalID == rec.PrincipalID {
			if err := deleteDoc(tx, collAssignments, ra.ID); err != nil {
				return err
			}
		}
	}
	return deleteDoc(tx, collIdentities, rec.Name)
}

// detachUserAssigned removes a user-assigned identity from every service.
func (d *Directory) detachUserAssigned(tx storage.DocTx, name string) error {
	svcs, err := listJSON[Service](tx, collServices)
	if err != nil {
		return err
	}
	for _, svc := range svcs {
		kept := svc.Identity.UserAssignedIdentities[:0]
		for _, ua := range svc.Identity.UserAssignedIdentities {
			if ua != name {
				kept = append(kept, ua)
			}
		}
		if len(kept) != len(svc.Identity.UserAssignedIdentities) {
			svc.Identity.UserAssignedIdentities = kept
			if err := putJSON(tx, collServices, svc.Name, svc); err != nil {
				return err
			}
		}
	}
	return nil
}

// SecretOptions shape a new secret.
type SecretOptions struct {
	// ExpiresIn is the secret's lifetime; zero is none for users and
	// service principals and 90 days (the maximum) for managed identities.
	ExpiresIn time.Duration
	// Hash imports an existing bcrypt hash (htpasswd) instead of generating
	// a secret; the returned value is then empty.
	Hash string
	// CallerLevel is the control-plane level of whoever adds the secret:
	// adding a credential to an identity that holds roles needs Owner.
	CallerLevel Level
}

// AddSecret adds a secret to an identity and returns it once.
func (d *Directory) AddSecret(ctx context.Context, name string, opts SecretOptions) (NewSecret, error) {
	// The cheap checks first, on the snapshot, so a refused request costs
	// no bcrypt; the update checks again.
	if err := d.checkNewSecret(name, opts); err != nil {
		return NewSecret{}, err
	}
	value, hash := "", opts.Hash
	if hash == "" {
		value = generateSecret()
		var err error
		if hash, err = hashSecret(value); err != nil {
			return NewSecret{}, err
		}
	} else if !validBcrypt(hash) {
		return NewSecret{}, invalid("hash: not a bcrypt hash ($2a$, $2b$ or $2y$)")
	}
	if opts.ExpiresIn < 0 {
		return NewSecret{}, invalid("expiresIn: must not be negative")
	}
	var out NewSecret
	err := d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		if err := getJSON(tx, collIdentities, name, &rec); err != nil {
			return err
		}
		if opts.CallerLevel < LevelOwner && len(d.Snapshot().rules[rec.PrincipalID]) > 0 {
			return forbidden("adding a credential to an identity that holds roles needs Owner")
		}
		if len(rec.Secrets) >= 10 {
			return conflict("identity %q has 10 secrets; delete one first", name)
		}
		now := d.now().UTC()
		life := opts.ExpiresIn
		if rec.Kind == KindManagedIdentity && (life == 0 || life > MaxManagedSecretLifetime) {
			if life > MaxManagedSecretLifetime {
				return invalid("expiresIn: a managed identity's secret expires within 90 days")
			}
			life = MaxManagedSecretLifetime
		}
		sec := secretRecord{ID: newID(), Hash: hash, CreatedAt: now}
		if life > 0 {
			exp := now.Add(life).Truncate(time.Second)
			sec.ExpiresAt = &exp
		}
		rec.Secrets = append(rec.Secrets, sec)
		out = NewSecret{ID: sec.ID, Value: value, ExpiresAt: sec.ExpiresAt}
		return putJSON(tx, collIdentities, name, rec)
	})
	return out, err
}

// DeleteSecret removes one secret of an identity.
func (d *Directory) DeleteSecret(ctx context.Context, name, id string) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		var rec identityRecord
		if err := getJSON(tx, collIdentities, name, &rec); err != nil {
			return err
		}
		for i, s := range rec.Secrets {
			if s.ID == id {
				rec.Secrets = append(rec.Secrets[:i], rec.Secrets[i+1:]...)
				return putJSON(tx, collIdentities, name, rec)
			}
		}
		return ErrNotFound
	})
}

func validBcrypt(h string) bool {
	return len(h) == 60 && (strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"))
}

// checkNewSecret refuses a secret the update would refuse, before the
// secret is hashed.
func (d *Directory) checkNewSecret(name string, opts SecretOptions) error {
	snap := d.Snapshot()
	rec := snap.identities[name]
	if rec == nil {
		return ErrNotFound
	}
	if opts.CallerLevel < LevelOwner && len(snap.rules[rec.PrincipalID]) > 0 {
		return forbidden("adding a credential to an identity that holds roles needs Owner")
	}
	if opts.ExpiresIn < 0 {
		return invalid("expiresIn: must not be negative")
	}
	if rec.Kind == KindManagedIdentity && opts.ExpiresIn > MaxManagedSecretLifetime {
		return invalid("expiresIn: a managed identity's secret expires within 90 days")
	}
	if len(rec.Secrets) >= 10 {
		return conflict("identity %q has 10 secrets; delete one first", name)
	}
	return nil
}
