package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moat-registry/moat/storage"
)

// fileKeyStore keeps a ring in a directory: keyring.json lists the keys,
// <kid>.pem holds each private key (PKCS #8), all mode 0600.
type fileKeyStore struct {
	dir string
	mu  sync.Mutex
}

func (f *fileKeyStore) load(context.Context) ([]*signingKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read()
}

func (f *fileKeyStore) read() ([]*signingKey, error) {
	b, err := os.ReadFile(filepath.Join(f.dir, "keyring.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []*signingKey
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("keys/keyring.json: %w", err)
	}
	for _, key := range keys {
		b, err := os.ReadFile(filepath.Join(f.dir, key.KID+".pem"))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("keys/%s.pem: no PEM block", key.KID)
		}
		if err := parsePrivateKey(key, blk.Bytes); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (f *fileKeyStore) update(_ context.Context, fn func([]*signingKey) ([]*signingKey, error)) ([]*signingKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, err := f.read()
	if err != nil {
		return nil, err
	}
	keys, err := fn(append([]*signingKey(nil), old...))
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		path := filepath.Join(f.dir, key.KID+".pem")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(key.priv)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
	}
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(f.dir, "keyring.json"), b); err != nil {
		return nil, err
	}
	kept := map[string]bool{}
	for _, key := range keys {
		kept[key.KID] = true
	}
	for _, key := range old {
		if !kept[key.KID] {
			_ = os.Remove(filepath.Join(f.dir, key.KID+".pem"))
		}
	}
	return keys, nil
}

// Shared key rings live in the metadata store, in one document, each
// private key sealed with AES-256-GCM under a key from the configuration
// (the key id is the additional data), so that a token one replica signs
// verifies on every other and the database never holds a usable key.
const (
	collKeys = "keys"
	keyRing  = "ring"
)

type docKeyStore struct {
	docs storage.Documents
	aead cipher.AEAD
}

type sealedKey struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"createdAt"`
	RetiredAt time.Time `json:"retiredAt,omitzero"`
	Sealed    []byte    `json:"sealed"`
}

// OpenSharedKeyRing opens the key ring kept in docs, sealed with secret
// (at least 32 bytes; only its SHA-256 is used as the AES key). The first
// replica to start generates the first key; the others load it.
func OpenSharedKeyRing(ctx context.Context, docs storage.Documents, secret []byte, retainFor time.Duration) (*KeyRing, error) {
	if len(secret) < 32 {
		return nil, errors.New("the key ring's encryption key must have at least 32 bytes")
	}
	sum := sha256.Sum256(secret)
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k, err := openKeyRing(ctx, &docKeyStore{docs: docs, aead: aead}, retainFor)
	if err != nil {
		return nil, err
	}
	k.reloadOnMiss = true
	return k, nil
}

func (d *docKeyStore) load(ctx context.Context) ([]*signingKey, error) {
	var keys []*signingKey
	err := d.docs.ViewDocuments(ctx, func(tx storage.DocTx) error {
		var err error
		keys, err = d.read(tx)
		return err
	})
	return keys, err
}

func (d *docKeyStore) read(tx storage.DocTx) ([]*signingKey, error) {
	b, err := tx.Get(collKeys, keyRing)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sealed []sealedKey
	if err := json.Unmarshal(b, &sealed); err != nil {
		return nil, fmt.Errorf("stored key ring: %w", err)
	}
	keys := make([]*signingKey, 0, len(sealed))
	for _, s := range sealed {
		key := &signingKey{KID: s.KID, Alg: s.Alg, CreatedAt: s.CreatedAt, RetiredAt: s.RetiredAt}
		ns := d.aead.NonceSize()
		if len(s.Sealed) < ns {
			return nil, fmt.Errorf("stored key %s: truncated", s.KID)
		}
		der, err := d.aead.Open(nil, s.Sealed[:ns], s.Sealed[ns:], []byte(s.KID))
		if err != nil {
			return nil, fmt.Errorf("stored key %s cannot be opened: is keys.encryptionKey the one the key ring was sealed with?", s.KID)
		}
		if err := parsePrivateKey(key, der); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func (d *docKeyStore) update(ctx context.Context, fn func([]*signingKey) ([]*signingKey, error)) ([]*signingKey, error) {
	var keys []*signingKey
	err := d.docs.UpdateDocuments(ctx, func(tx storage.DocTx) error {
		old, err := d.read(tx)
		if err != nil {
			return err
		}
		if keys, err = fn(old); err != nil {
			return err
		}
		sealed := make([]sealedKey, 0, len(keys))
		for _, key := range keys {
			der, err := x509.MarshalPKCS8PrivateKey(key.priv)
			if err != nil {
				return err
			}
			nonce := make([]byte, d.aead.NonceSize())
			if _, err := rand.Read(nonce); err != nil {
				return err
			}
			sealed = append(sealed, sealedKey{KID: key.KID, Alg: key.Alg, CreatedAt: key.CreatedAt, RetiredAt: key.RetiredAt,
				Sealed: d.aead.Seal(nonce, nonce, der, []byte(key.KID))})
		}
		b, err := json.Marshal(sealed)
		if err != nil {
			return err
		}
		return tx.Put(collKeys, keyRing, b)
	})
	return keys, err
}
