package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
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

// KeyRing holds the token signing keys in <data>/keys: one PEM file per
// key (PKCS #8, mode 0600) and keyring.json with each key's id, algorithm
// and dates. The newest key signs; retired keys keep verifying until every
// token they signed has expired (RetainFor after retirement).
type KeyRing struct {
	dir       string
	retainFor time.Duration
	now       func() time.Time

	mu   sync.RWMutex
	keys []*signingKey // newest first
}

// OpenKeyRing loads the keys under dir, generating the first on first
// start, and drops retired keys whose tokens have all expired.
func OpenKeyRing(dir string, retainFor time.Duration) (*KeyRing, error) {
	k := &KeyRing{dir: dir, retainFor: retainFor, now: time.Now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "keyring.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		var keys []*signingKey
		if err := json.Unmarshal(b, &keys); err != nil {
			return nil, fmt.Errorf("keys/keyring.json: %w", err)
		}
		for _, key := range keys {
			if err := k.loadKey(key); err != nil {
				return nil, err
			}
			k.keys = append(k.keys, key)
		}
	}
	if len(k.keys) == 0 {
		if _, err := k.Rotate(); err != nil {
			return nil, err
		}
	} else if err := k.prune(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeyRing) loadKey(key *signingKey) error {
	b, err := os.ReadFile(filepath.Join(k.dir, key.KID+".pem"))
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("keys/%s.pem: no PEM block", key.KID)
	}
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("keys/%s.pem: %w", key.KID, err)
	}
	signer, ok := priv.(*ecdsa.PrivateKey)
	if !ok || key.Alg != "ES256" {
		return fmt.Errorf("keys/%s.pem: unsupported key type", key.KID)
	}
	key.priv, key.pub = signer, signer.Public()
	return nil
}

// Rotate generates a new signing key and retires the current one. It
// returns the new key's id.
func (k *KeyRing) Rotate() (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	key := &signingKey{KID: thumbprint(&priv.PublicKey), Alg: "ES256", CreatedAt: k.now().UTC(), priv: priv, pub: priv.Public()}
	if err := writeFileAtomic(filepath.Join(k.dir, key.KID+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) > 0 && k.keys[0].RetiredAt.IsZero() {
		k.keys[0].RetiredAt = key.CreatedAt
	}
	k.keys = append([]*signingKey{key}, k.keys...)
	return key.KID, k.saveLocked()
}

// prune forgets retired keys past their retention.
func (k *KeyRing) prune() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	kept := k.keys[:0]
	var gone []string
	for i, key := range k.keys {
		if i > 0 && !key.RetiredAt.IsZero() && now.Sub(key.RetiredAt) > k.retainFor {
			gone = append(gone, key.KID)
			continue
		}
		kept = append(kept, key)
	}
	k.keys = kept
	if len(gone) == 0 {
		return nil
	}
	if err := k.saveLocked(); err != nil {
		return err
	}
	for _, kid := range gone {
		_ = os.Remove(filepath.Join(k.dir, kid+".pem"))
	}
	return nil
}

func (k *KeyRing) saveLocked() error {
	b, err := json.MarshalIndent(k.keys, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(k.dir, "keyring.json"), b)
}

// current is the signing key.
func (k *KeyRing) current() *signingKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[0]
}

// lookup finds a verification key by id.
func (k *KeyRing) lookup(kid string) *signingKey {
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
