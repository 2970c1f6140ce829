package auth

import (
	"context"
	"errors"
	"time"

	"github.com/moat-registry/moat/storage"
)

// Bootstrap admin identity (SPEC §9).
const (
	AdminName         = "admin"
	adminAssignmentID = "bootstrap-admin-owner"
	adminSecretID     = "bootstrap"
	keyBootstrapped   = "bootstrapped"
)

// BootstrapNeeded reports whether the admin identity was never created.
func (d *Directory) BootstrapNeeded(ctx context.Context) (bool, error) {
	var done bool
	err := d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		_, err := tx.Get(collMeta, keyBootstrapped)
		done = err == nil
		return nil
	})
	return !done, err
}

// GeneratePassword returns a new random password for the admin identity.
func GeneratePassword() string { return generateSecret() }

// Bootstrap gives the admin identity (created if missing) the password
// and the Owner role at "/" (SPEC §9). With firstOnly set it does so only
// if no bootstrap happened yet — a generated password is written down by
// the caller first, and another replica may have bootstrapped meanwhile —
// and reports whether it applied. MOAT_ADMIN_PASSWORD is applied at every
// start (firstOnly false), which also resets a lost password.
func (d *Directory) Bootstrap(ctx context.Context, password string, firstOnly bool) (bool, error) {
	if password == "" {
		return false, invalid("the admin password is empty")
	}
	snap := d.Snapshot()
	if !firstOnly {
		if rec := snap.identities[AdminName]; rec != nil && rec.Enabled {
			for _, s := range rec.Secrets {
				if s.ID == adminSecretID && d.verifyOnce(password, s.Hash) && snap.levels[rec.PrincipalID] == LevelOwner {
					return true, nil // already in place
				}
			}
		}
	}
	hash, err := hashSecret(password)
	if err != nil {
		return false, err
	}
	applied := true
	err = d.update(ctx, func(tx storage.DocTx) error {
		if firstOnly {
			if _, err := tx.Get(collMeta, keyBootstrapped); err == nil {
				applied = false
				return nil
			}
		}
		var rec identityRecord
		switch err := getJSON(tx, collIdentities, AdminName, &rec); {
		case errors.Is(err, ErrNotFound):
			rec = identityRecord{V: 1, Name: AdminName, Kind: KindUser, PrincipalID: newID(), CreatedAt: d.now().UTC()}
		case err != nil:
			return err
		}
		rec.Enabled = true
		kept := rec.Secrets[:0]
		for _, s := range rec.Secrets {
			if s.ID != adminSecretID {
				kept = append(kept, s)
			}
		}
		rec.Secrets = append(kept, secretRecord{ID: adminSecretID, Hash: hash, CreatedAt: d.now().UTC()})
		if err := putJSON(tx, collIdentities, AdminName, rec); err != nil {
			return err
		}
		ra := RoleAssignment{ID: adminAssignmentID, Principal: AdminName, PrincipalID: rec.PrincipalID, Role: "Owner", Scope: "/"}
		if err := putJSON(tx, collAssignments, ra.ID, ra); err != nil {
			return err
		}
		return tx.Put(collMeta, keyBootstrapped, []byte(d.now().UTC().Format(time.RFC3339)))
	})
	return applied, err
}

func (d *Directory) verifyOnce(password, hash string) bool {
	var c verifyCache
	return c.check(AdminName, password, hash, d.now())
}
