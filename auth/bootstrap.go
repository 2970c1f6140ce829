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

// Bootstrap creates the admin identity with the Owner role at "/" on
// first start. With password set (MOAT_ADMIN_PASSWORD) the admin's
// bootstrap secret is set to it on every start, re-creating the identity
// and its Owner role if they were removed; otherwise a password is
// generated on first start and returned (the caller writes it to the data
// dir). generated is empty when nothing was generated.
func (d *Directory) Bootstrap(ctx context.Context, password string) (generated string, err error) {
	snap := d.Snapshot()
	var done bool
	err = d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		_, err := tx.Get(collMeta, keyBootstrapped)
		done = err == nil
		return nil
	})
	if err != nil {
		return "", err
	}
	if done && password == "" {
		return "", nil
	}
	if password == "" {
		password = generateSecret()
		generated = password
	}
	if rec := snap.identities[AdminName]; rec != nil {
		for _, s := range rec.Secrets {
			if s.ID == adminSecretID && d.verifyOnce(password, s.Hash) && snap.levels[rec.PrincipalID] == LevelOwner {
				return generated, nil // already in place
			}
		}
	}
	hash, err := hashSecret(password)
	if err != nil {
		return "", err
	}
	err = d.update(ctx, func(tx storage.DocTx) error {
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
	return generated, err
}

func (d *Directory) verifyOnce(password, hash string) bool {
	var c verifyCache
	return c.check(AdminName, password, hash, d.now())
}
