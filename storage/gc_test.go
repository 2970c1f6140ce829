package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

type gcFixture struct {
	db    *DB
	blobs *DiskBlobs
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	dir := t.TempDir()
	db, err := OpenDB(filepath.Join(dir, "meta.db"), DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := NewDiskBlobs(dir, db)
	if err != nil {
		t.Fatal(err)
	}
	return &gcFixture{db, blobs}
}

// push stores content as a blob and links it into repo, as an upload does.
func (f *gcFixture) push(t testing.TB, repo, content string) digest.Digest {
	t.Helper()
	d := digest.FromString(content)
	if _, err := f.blobs.Put(context.Background(), d, bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if err := f.db.LinkBlob(context.Background(), repo, d, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *gcFixture) manifest(t testing.TB, repo, tag string, blobs ...digest.Digest) digest.Digest {
	t.Helper()
	raw := fmt.Sprintf(`{"schemaVersion":2,"tag":%q,"blobs":%q}`, tag, blobs)
	m := &Manifest{Digest: digest.FromString(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Blobs: blobs, Raw: []byte(raw), Size: int64(len(raw)), Created: time.Now()}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	if err := f.db.PutManifest(context.Background(), repo, m, tags, true); err != nil {
		t.Fatal(err)
	}
	return m.Digest
}

func (f *gcFixture) stored(d digest.Digest) bool {
	_, err := f.blobs.Stat(context.Background(), d)
	return err == nil
}

func TestCollectGarbage(t *testing.T) {
	ctx := context.Background()
	f := newGCFixture(t)
	kept := f.push(t, "app", "layer kept by a manifest")
	dangling := f.push(t, "app", "layer nobody references")
	shared := f.push(t, "app", "layer in two repositories")
	f.push(t, "other", "layer in two repositories")
	mf := f.manifest(t, "app", "v1", kept)
	f.manifest(t, "other", "v1", shared)

	t.Run("grace period keeps fresh links", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{GracePeriod: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if rep.LinksRemoved != 0 || rep.BlobsDeleted != 0 {
			t.Fatalf("report %+v, want nothing removed within the grace period", rep)
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		// It counts what a real run removes, and removes nothing.
		if rep.LinksRemoved != 2 || rep.BlobsDeleted != 1 || rep.BytesReclaimed != int64(len("layer nobody references")) || !f.stored(dangling) {
			t.Fatalf("dry run report %+v", rep)
		}
	})
	t.Run("unreferenced links and bytes go", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// app links dangling and shared without referencing them.
		if rep.LinksRemoved != 2 || rep.BlobsDeleted != 1 || rep.BytesReclaimed != int64(len("layer nobody references")) {
			t.Fatalf("report %+v", rep)
		}
		if f.stored(dangling) || !f.stored(kept) || !f.stored(shared) {
			t.Fatal("wrong blobs deleted")
		}
		if _, err := f.db.BlobLink(ctx, "other", shared); err != nil {
			t.Fatalf("other lost its referenced link: %v", err)
		}
	})
	t.Run("untagged manifests and then their layers", func(t *testing.T) {
		if err := f.db.DeleteTag(ctx, "app", "v1"); err != nil {
			t.Fatal(err)
		}
		rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{Untagged: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ManifestsDeleted != 1 || rep.BlobsDeleted != 1 || f.stored(kept) {
			t.Fatalf("report %+v, kept layer stored %v", rep, f.stored(kept))
		}
		if _, err := f.db.Manifest(ctx, "app", mf.String(), false); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("untagged manifest still there: %v", err)
		}
	})
	t.Run("a mount of collected bytes is refused", func(t *testing.T) {
		if err := f.db.LinkBlob(ctx, "third", kept, 1); !errors.Is(err, ErrBlobUnknown) {
			t.Fatalf("LinkBlob of a collected blob = %v, want ErrBlobUnknown", err)
		}
	})
}

// TestCollectGarbageDuringPushes runs collections in a loop, with a short
// grace period, while writers push the same few layers again and again (so
// the collector keeps deleting bytes that an upload is about to reuse) and
// delete a third of what they pushed. Every manifest acknowledged and not
// deleted must end with all its blobs linked and stored.
func TestCollectGarbageDuringPushes(t *testing.T) {
	ctx := context.Background()
	f := newGCFixture(t)
	const grace = 200 * time.Millisecond
	var retries atomic.Int64
	// push uploads a blob and links it. A push slower than the grace period
	// can find its bytes collected between the upload and the link
	// (LinkBlob says ErrBlobUnknown, as the registry would answer
	// BLOB_UNKNOWN); the client uploads again.
	push := func(repo, content string) (digest.Digest, error) {
		d := digest.FromString(content)
		for {
			if _, err := f.blobs.Put(ctx, d, bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
				return "", err
			}
			err := f.db.LinkBlob(ctx, repo, d, int64(len(content)))
			if !errors.Is(err, ErrBlobUnknown) {
				return d, err
			}
			retries.Add(1)
		}
	}
	type pushed struct {
		repo, tag string
		blobs     []digest.Digest
	}
	var (
		mu      sync.Mutex
		live    []pushed
		writers sync.WaitGroup
		stop    = make(chan struct{})
		gcDone  = make(chan struct{})
		gcRuns  int
		reclaim int64
	)
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{GracePeriod: grace, Untagged: true})
			if err != nil {
				t.Error(err)
				return
			}
			gcRuns++
			reclaim += rep.BytesReclaimed
		}
	}()
	for w := range 4 {
		writers.Go(func() {
			repo := fmt.Sprintf("repo%d", w%2)
			for i := range 60 {
				// Own layers come back every tenth push: by then the collector
				// may be deleting the bytes a deleted manifest left behind.
				layers := []string{fmt.Sprintf("shared layer %d", i%3), fmt.Sprintf("own layer %d/%d", w, i%10)}
				var ds []digest.Digest
				for _, c := range layers {
					d, err := push(repo, c)
					if err != nil {
						t.Errorf("push %s: %v", c, err)
						return
					}
					ds = append(ds, d)
				}
				tag := fmt.Sprintf("w%d-%d", w, i)
				raw := fmt.Sprintf(`{"schemaVersion":2,"tag":%q}`, tag)
				m := &Manifest{Digest: digest.FromString(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Blobs: ds, Raw: []byte(raw), Size: int64(len(raw)), Created: time.Now()}
				// A push slower than the grace period can lose its links before
				// the manifest arrives; the client pushes the blob again.
				for {
					err := f.db.PutManifest(ctx, repo, m, []string{tag}, true)
					if err == nil {
						break
					}
					var missing *MissingError
					if !errors.As(err, &missing) {
						t.Errorf("manifest %s: %v", tag, err)
						return
					}
					retries.Add(1)
					for j, d := range ds {
						if d == missing.Digest {
							if _, err := push(repo, layers[j]); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}
				if i%3 == 0 {
					if err := f.db.DeleteManifest(ctx, repo, m.Digest); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				mu.Lock()
				live = append(live, pushed{repo, tag, ds})
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(stop)
	<-gcDone
	// With the writers done, one more collection needs no grace period.
	rep, err := f.db.CollectGarbage(ctx, f.blobs, GCOptions{Untagged: true})
	if err != nil {
		t.Fatal(err)
	}
	reclaim += rep.BytesReclaimed
	for _, p := range live {
		if _, err := f.db.Manifest(ctx, p.repo, p.tag, false); err != nil {
			t.Fatalf("%s:%s lost: %v", p.repo, p.tag, err)
		}
		for _, d := range p.blobs {
			if _, err := f.db.BlobLink(ctx, p.repo, d); err != nil {
				t.Fatalf("%s:%s lost the link to %s: %v", p.repo, p.tag, d, err)
			}
			rc, _, err := f.blobs.Open(ctx, d)
			if err != nil {
				t.Fatalf("%s:%s lost the bytes of %s: %v", p.repo, p.tag, d, err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if digest.FromBytes(b) != d {
				t.Fatalf("%s has the wrong bytes", d)
			}
		}
	}
	if reclaim == 0 {
		t.Error("nothing was reclaimed")
	}
	t.Logf("%d collections during the pushes; %d bytes reclaimed; %d manifests verified; %d pushes retried", gcRuns, reclaim, len(live), retries.Load())
}

// faultyDeletes fails or hangs the deletes of a blob store: the call
// numbered failAt fails with errDiskFull, and with hang every call waits
// for its context to end.
type faultyDeletes struct {
	Blobs
	calls  int
	failAt int
	hang   bool
}

func (b *faultyDeletes) Delete(ctx context.Context, d digest.Digest) error {
	b.calls++
	if b.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if b.calls == b.failAt {
		return errDiskFull
	}
	return b.Blobs.Delete(ctx, d)
}

// TestCollectGarbageDeleteFails: a delete fails in the middle of a batch.
// What was deleted before it counts and has lost its record (so no mount
// links to missing bytes); the failed blob's bytes go in a later run.
func TestCollectGarbageDeleteFails(t *testing.T) {
	ctx := context.Background()
	f := newGCFixture(t)
	contents := []string{"unlinked one", "unlinked two", "unlinked three"}
	var ds []digest.Digest
	for _, c := range contents {
		d := digest.FromString(c)
		if _, err := f.blobs.Put(ctx, d, bytes.NewReader([]byte(c)), int64(len(c))); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	// Walk goes in digest order; the second delete fails.
	order := append([]digest.Digest(nil), ds...)
	slices.Sort(order)
	size := map[digest.Digest]int64{}
	for i, d := range ds {
		size[d] = int64(len(contents[i]))
	}
	blobs := &faultyDeletes{Blobs: f.blobs, failAt: 2}
	past := GCOptions{GracePeriod: -time.Minute} // every mark is old
	rep, err := f.db.CollectGarbage(ctx, blobs, past)
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("CollectGarbage() = %v, want the delete's error", err)
	}
	if rep.BlobsDeleted != 1 || rep.BytesReclaimed != size[order[0]] {
		t.Errorf("report %+v, want the one blob deleted before the failure", rep)
	}
	for i, d := range order {
		mount := f.db.LinkBlob(ctx, "other", d, size[d])
		switch i {
		case 0, 1: // deleted; failed to delete
			if !errors.Is(mount, ErrBlobUnknown) {
				t.Errorf("blob %d: mount = %v, want ErrBlobUnknown", i, mount)
			}
		case 2: // not reached
			if mount != nil || !f.stored(d) {
				t.Errorf("blob %d: mount = %v, stored %v; want it untouched", i, mount, f.stored(d))
			}
			if err := f.db.UnlinkBlob(ctx, "other", d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if f.stored(order[0]) || !f.stored(order[1]) {
		t.Fatalf("stored: %v, %v; want the first gone, the failed one kept", f.stored(order[0]), f.stored(order[1]))
	}
	rep, err = f.db.CollectGarbage(ctx, f.blobs, past)
	if err != nil || rep.BlobsDeleted != 2 {
		t.Fatalf("second CollectGarbage() = %+v, %v; want the other two deleted", rep, err)
	}
}

// TestCollectGarbageDeleteDeadline: a delete that never answers (a hung
// object store) ends at its deadline, not the collection's, so it cannot
// hold every writer back.
func TestCollectGarbageDeleteDeadline(t *testing.T) {
	f := newGCFixture(t)
	f.push(t, "app", "unlinked")
	if err := f.db.UnlinkBlob(context.Background(), "app", digest.FromString("unlinked")); err != nil {
		t.Fatal(err)
	}
	f.db.gcDeleteTimeout = time.Millisecond
	// A guard against hanging: the deadline ends the delete long before.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := f.db.CollectGarbage(ctx, &faultyDeletes{Blobs: f.blobs, hang: true}, GCOptions{GracePeriod: -time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("CollectGarbage() = %v (collection's context: %v), want the delete's deadline", err, ctx.Err())
	}
	if rep.BlobsDeleted != 0 {
		t.Errorf("report %+v, want nothing deleted", rep)
	}
	if err := f.db.LinkBlob(context.Background(), "app", digest.FromString("other"), 1); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("a write after the collection = %v", err)
	}
}
