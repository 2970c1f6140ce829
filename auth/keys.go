package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// signingKey is one key of the ring.
type signingKey struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"createdAt"`
	RetiredAt time.Time `json:"retiredAt,omitzero"`

	priv crypto.Signer
	pub  crypto.PublicKey
}

// KeyRing holds the token signing keys. The newest key signs; retired
// keys keep verifying until every token they signed has expired
// (retainFor after retirement). Where the keys persist is a keyStore: the
// data directory for one server, or the shared metadata store, sealed
// with a key from the configuration, for several replicas.
type KeyRing struct {
	store     keyStore
	retainFor time.Duration
	now       func() time.Time

	mu   sync.RWMutex
	keys []*signingKey // newest first

	// reloadOnMiss makes a shared ring reload when asked for a key id it
	// does not hold: another replica may have rotated the ring and signed
	// a token with the new key before this replica's change notification
	// arrived. missMu serialises those reloads; missCredit (under
	// missMu, as of missAt) is how many may happen now.
	reloadOnMiss bool
	missMu       sync.Mutex
	missCredit   float64
	missAt       time.Time
}

// Reloads caused by unknown key ids are a token bucket: missReloadBurst
// at once (rotations in quick succession), then one per
// missReloadInterval, so that tokens with made-up ids cost at most ten
// reads of the metadata store a second.
const (
	missReloadInterval = 100 * time.Millisecond
	missReloadBurst    = 5
)

// keyStore persists a key ring.
type keyStore interface {
	// load returns the stored keys, newest first, private halves included.
	load(ctx context.Context) ([]*signingKey, error)
	// update replaces the stored ring with what fn makes of it, in one
	// step that concurrent updaters (other replicas) cannot interleave.
	update(ctx context.Context, fn func([]*signingKey) ([]*signingKey, error)) ([]*signingKey, error)
}

// OpenKeyRing loads the keys kept in dir (one PEM file per key, PKCS #8,
// mode 0600, and keyring.json with their ids, algorithms and dates),
// generating the first on first start, and drops retired keys whose tokens
// have all expired.
func OpenKeyRing(dir string, retainFor time.Duration) (*KeyRing, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return openKeyRing(context.Background(), &fileKeyStore{dir: dir}, retainFor)
}

func openKeyRing(ctx context.Context, store keyStore, retainFor time.Duration) (*KeyRing, error) {
	k := &KeyRing{store: store, retainFor: retainFor, now: time.Now}
	keys, err := store.update(ctx, func(keys []*signingKey) ([]*signingKey, error) {
		if len(keys) == 0 {
			key, err := newSigningKey(k.now())
			if err != nil {
				return nil, err
			}
			return []*signingKey{key}, nil
		}
		return k.pruned(keys), nil
	})
	if err != nil {
		return nil, err
	}
	k.keys = keys
	return k, nil
}

func newSigningKey(now time.Time) (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &signingKey{KID: thumbprint(&priv.PublicKey), Alg: "ES256", CreatedAt: now.UTC(), priv: priv, pub: priv.Public()}, nil
}

// parsePrivateKey reads a PKCS #8 ES256 key.
func parsePrivateKey(key *signingKey, der []byte) error {
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("key %s: %w", key.KID, err)
	}
	signer, ok := priv.(*ecdsa.PrivateKey)
	if !ok || key.Alg != "ES256" {
		return fmt.Errorf("key %s: unsupported key type", key.KID)
	}
	key.priv, key.pub = signer, signer.Public()
	return nil
}

// Rotate generates a new signing key and retires the current one. It
// returns the new key's id.
func (k *KeyRing) Rotate() (string, error) {
	key, err := newSigningKey(k.now())
	if err != nil {
		return "", err
	}
	keys, err := k.store.update(context.Background(), func(keys []*signingKey) ([]*signingKey, error) {
		if len(keys) > 0 && keys[0].RetiredAt.IsZero() {
			keys[0].RetiredAt = key.CreatedAt
		}
		return k.pruned(append([]*signingKey{key}, keys...)), nil
	})
	if err != nil {
		return "", err
	}
	k.set(keys)
	return key.KID, nil
}

// Reload rereads the ring (another replica may have rotated it).
func (k *KeyRing) Reload(ctx context.Context) error {
	keys, err := k.store.load(ctx)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		k.set(keys)
	}
	return nil
}

func (k *KeyRing) set(keys []*signingKey) {
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
}

// pruned drops retired keys past their retention; the newest key stays.
func (k *KeyRing) pruned(keys []*signingKey) []*signingKey {
	now := k.now()
	kept := make([]*signingKey, 0, len(keys))
	for i, key := range keys {
		if i > 0 && !key.RetiredAt.IsZero() && now.Sub(key.RetiredAt) > k.retainFor {
			continue
		}
		kept = append(kept, key)
	}
	return kept
}

// current is the signing key.
func (k *KeyRing) current() *signingKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[0]
}

// lookup finds a verification key by id. A shared ring that does not
// hold it reloads once and looks again (within the reload budget).
func (k *KeyRing) lookup(kid string) *signingKey {
	if key := k.find(kid); key != nil || !k.reloadOnMiss || kid == "" {
		return key
	}
	k.missMu.Lock()
	defer k.missMu.Unlock()
	if key := k.find(kid); key != nil {
		return key // another caller reloaded meanwhile
	}
	now := k.now()
	if k.missAt.IsZero() {
		k.missCredit = missReloadBurst
	} else if since := now.Sub(k.missAt); since > 0 {
		k.missCredit = min(missReloadBurst, k.missCredit+float64(since)/float64(missReloadInterval))
	}
	k.missAt = now
	if k.missCredit < 1 {
		return nil
	}
	k.missCredit--
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.Reload(ctx); err != nil {
		return nil
	}
	return k.find(kid)
}

// find looks a key up in the ring as loaded.
func (k *KeyRing) find(kid string) *signingKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.keys {
		if key.KID == kid {
			return key
		}
	}
	return nil
}

// JWK is a public key in JWK form.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the public half of every key that may still verify a token.
func (k *KeyRing) JWKS() []JWK {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]JWK, 0, len(k.keys))
	for _, key := range k.keys {
		x, y := coordinates(key.pub.(*ecdsa.PublicKey))
		out = append(out, JWK{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: key.KID, Alg: key.Alg, Use: "sig"})
	}
	return out
}

// coordinates are a P-256 key's x and y, base64url, from its uncompressed
// encoding (0x04 || x || y).
func coordinates(pub *ecdsa.PublicKey) (x, y string) {
	b, err := pub.Bytes()
	if err != nil || len(b) != 65 {
		return "", ""
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(b[1:33]), enc(b[33:])
}

// thumbprint is the RFC 7638 JWK thumbprint of an EC P-256 key, used as
// its key id.
func thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coordinates(pub)
	canon := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// writeFileAtomic writes a 0600 file by temp file, fsync and rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
