package auth

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
)

// TestSharedKeyRing: two replicas share a ring through the metadata store;
// the first generates the key, the second loads it, a rotation on one is
// seen by the other after Reload, and a wrong encryption key cannot open
// the ring.
func TestSharedKeyRing(t *testing.T) {
	ctx := context.Background()
	db, err := storage.OpenDB(filepath.Join(t.TempDir(), "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret := []byte(strings.Repeat("s", 32))
	a, err := OpenSharedKeyRing(ctx, db, secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenSharedKeyRing(ctx, db, secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if a.current().KID != b.current().KID {
		t.Fatalf("replicas sign with %s and %s", a.current().KID, b.current().KID)
	}
	kid, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if b.current().KID != kid || len(b.JWKS()) != 2 {
		t.Fatalf("after rotation the other replica signs with %s (want %s) and publishes %d keys", b.current().KID, kid, len(b.JWKS()))
	}
	var raw []byte
	err = db.ViewDocuments(ctx, func(tx storage.DocTx) error {
		raw, err = tx.Get(collKeys, keyRing)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "PRIVATE KEY") {
		t.Fatal("the stored ring holds a private key in the clear")
	}
	if _, err := OpenSharedKeyRing(ctx, db, []byte(strings.Repeat("x", 32)), time.Hour); err == nil || !strings.Contains(err.Error(), "encryptionKey") {
		t.Fatalf("a wrong encryption key: %v", err)
	}
	if _, err := OpenSharedKeyRing(ctx, db, []byte("short"), time.Hour); err == nil {
		t.Fatal("a short encryption key was accepted")
	}
}
