package auth

// Hooks for the black-box tests of package auth_test. They reach state
// that a real deployment sets only through slow or external paths: the
// clock, the signing key (to forge tokens an attacker could not sign),
// and token passwords with a cheap bcrypt hash (bcrypt at cost 11 takes
// seconds under -race).

import (
	"context"
	"crypto"
	"time"

	"github.com/moat-registry/moat/storage"
)

// SetClockForTest replaces the guard's clock (token issue and checks,
// secret expiry).
func (g *Guard) SetClockForTest(now func() time.Time) { g.now = now }

// SigningKeyForTest returns the current signing key and its id.
func (k *KeyRing) SigningKeyForTest() (kid string, key crypto.Signer) {
	c := k.current()
	return c.KID, c.priv
}

// SetTokenPasswordHashForTest stores a token password (password1 or
// password2) with the given bcrypt hash, as GenerateTokenPassword would.
func (d *Directory) SetTokenPasswordHashForTest(ctx context.Context, token, name, hash string, expiresAt *time.Time) error {
	return d.update(ctx, func(tx storage.DocTx) error {
		var rec tokenRecord
		if err := getJSON(tx, collTokens, token, &rec); err != nil {
			return err
		}
		kept := rec.Passwords[:0]
		for _, p := range rec.Passwords {
			if p.Name != name {
				kept = append(kept, p)
			}
		}
		rec.Passwords = append(kept, passwordRecord{Name: name, Hash: hash, CreatedAt: d.now().UTC(), ExpiresAt: expiresAt})
		return putJSON(tx, collTokens, token, rec)
	})
}
