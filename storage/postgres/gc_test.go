package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/moat-registry/moat/storage/postgres"
	"github.com/moat-registry/moat/storage/postgres/pgtest"
	"github.com/opencontainers/go-digest"
)

// gatedBlobs is a blob store whose Walk waits at a gate, so that a
// collection can be held in the middle.
type gatedBlobs struct {
	storage.Blobs
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBlobs) Walk(ctx context.Context, fn func(digest.Digest, int64, time.Time) error) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Blobs.Walk(ctx, fn)
}

// TestCollectGarbageOneAtATime: while one replica collects, another's
// collection answers ErrBusy; once the first is done, the second runs.
func TestCollectGarbageOneAtATime(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	a, b := openDSN(t, dsn, postgres.Options{}), openDSN(t, dsn, postgres.Options{})
	disk, err := storage.NewDiskBlobs(t.TempDir(), a)
	if err != nil {
		t.Fatal(err)
	}
	gated := &gatedBlobs{Blobs: disk, entered: make(chan struct{}, 1), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := a.CollectGarbage(ctx, gated, storage.GCOptions{})
		done <- err
	}()
	select {
	case <-gated.entered:
	case err := <-done:
		t.Fatalf("the first collection ended early: %v", err)
	}
	for _, db := range []*postgres.DB{b, a} {
		if _, err := db.CollectGarbage(ctx, disk, storage.GCOptions{}); !errors.Is(err, storage.ErrBusy) {
			t.Errorf("a second collection = %v, want ErrBusy", err)
		}
	}
	close(gated.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := b.CollectGarbage(ctx, disk, storage.GCOptions{}); err != nil {
		t.Errorf("a collection after the first ended = %v", err)
	}
	t.Run("a cancelled collection frees the lock", func(t *testing.T) {
		gated := &gatedBlobs{Blobs: disk, entered: make(chan struct{}, 1), release: make(chan struct{})}
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			_, err := a.CollectGarbage(cctx, gated, storage.GCOptions{})
			done <- err
		}()
		<-gated.entered
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled collection = %v", err)
		}
		if _, err := b.CollectGarbage(ctx, disk, storage.GCOptions{}); err != nil {
			t.Errorf("a collection after a cancelled one = %v", err)
		}
	})
}

// TestCollectGarbageBytesWithoutRecord: bytes that no record marks (a
// store filled without the metadata) are judged by their modification
// time, and the collector's placeholder record does not outlive its
// decision.
func TestCollectGarbageBytesWithoutRecord(t *testing.T) {
	ctx := context.Background()
	db := open(t, postgres.Options{})
	dir := t.TempDir()
	unmarked, err := storage.NewDiskBlobs(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.NewDiskBlobs(dir, db)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("bytes without a record")
	d := digest.FromBytes(content)
	if _, err := unmarked.Put(ctx, d, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	stored := func() bool { _, err := blobs.Stat(ctx, d); return err == nil }
	noRecord := func(when string) {
		t.Helper()
		if err := db.LinkBlob(ctx, "app", d, int64(len(content))); !errors.Is(err, storage.ErrBlobUnknown) {
			t.Errorf("%s: LinkBlob() = %v, want ErrBlobUnknown (no record)", when, err)
		}
	}

	rep, err := db.CollectGarbage(ctx, blobs, storage.GCOptions{GracePeriod: time.Hour})
	if err != nil || rep.BlobsDeleted != 0 || !stored() {
		t.Fatalf("fresh bytes: report %+v, %v, stored %v; want them kept", rep, err, stored())
	}
	noRecord("after keeping fresh bytes")

	old := time.Now().Add(-2 * time.Hour)
	enc := d.Encoded()
	if err := os.Chtimes(filepath.Join(dir, "blobs", string(d.Algorithm()), enc[:2], enc), old, old); err != nil {
		t.Fatal(err)
	}
	rep, err = db.CollectGarbage(ctx, blobs, storage.GCOptions{GracePeriod: time.Hour, DryRun: true})
	if err != nil || rep.BlobsDeleted != 1 || !stored() {
		t.Fatalf("dry run over old bytes: report %+v, %v, stored %v", rep, err, stored())
	}
	noRecord("after a dry run")
	rep, err = db.CollectGarbage(ctx, blobs, storage.GCOptions{GracePeriod: time.Hour})
	if err != nil || rep.BlobsDeleted != 1 || rep.BytesReclaimed != int64(len(content)) || stored() {
		t.Fatalf("old bytes: report %+v, %v, stored %v; want them deleted", rep, err, stored())
	}
	noRecord("after deleting the bytes")
}
