package auth

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
)

// countingDocs counts the reads of a metadata store.
type countingDocs struct {
	storage.Documents
	views atomic.Int64
}

func (c *countingDocs) ViewDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	c.views.Add(1)
	return c.Documents.ViewDocuments(ctx, fn)
}

// TestSharedKeyRingReloadsOnUnknownKey: a replica asked for a key id it
// does not hold — another replica rotated the ring, and its token arrived
// before the change notification — reloads the ring and finds the key;
// rotations in quick succession are all found; made-up key ids cause
// missReloadBurst reloads, then one per missReloadInterval at most; and a
// single-server ring never reloads.
func TestSharedKeyRingReloadsOnUnknownKey(t *testing.T) {
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
	docs := &countingDocs{Documents: db}
	b, err := OpenSharedKeyRing(ctx, docs, secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b.now = func() time.Time { return now }

	kid, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	before := docs.views.Load()
	if key := b.lookup(kid); key == nil {
		t.Fatalf("b does not find the key %s a rotated to", kid)
	}
	if got := docs.views.Load() - before; got != 1 {
		t.Errorf("finding the new key read the store %d times, want 1", got)
	}
	if key := b.lookup(kid); key == nil || docs.views.Load()-before != 1 {
		t.Errorf("a known key: %v, %d reads in all, want found with no new read", key, docs.views.Load()-before)
	}
	// A second rotation at once (no time passes on b's clock).
	kid2, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if b.lookup(kid2) == nil {
		t.Fatalf("b does not find the key %s of a second rotation right after the first", kid2)
	}

	// Made-up ids: what is left of the burst reads the store, then
	// nothing; after the interval one read, then none again.
	before = docs.views.Load()
	for range 10 {
		if b.lookup("made-up") != nil {
			t.Fatal("a made-up key id was found")
		}
	}
	if got := docs.views.Load() - before; got != missReloadBurst-2 {
		t.Errorf("made-up key ids read the store %d times, want %d (the burst less the two rotations)", got, missReloadBurst-2)
	}
	before = docs.views.Load()
	now = now.Add(missReloadInterval)
	for range 5 {
		b.lookup("made-up")
	}
	if got := docs.views.Load() - before; got != 1 {
		t.Errorf("made-up key ids after %s read the store %d times, want 1", missReloadInterval, got)
	}
	if b.lookup("") != nil || docs.views.Load()-before != 1 {
		t.Error("an empty key id reloaded the ring")
	}

	// One server's ring, in its data dir, has nobody to catch up with.
	local, err := OpenKeyRing(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if local.reloadOnMiss {
		t.Error("a data-dir key ring reloads on unknown key ids")
	}
}
