package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// gcFixture is a metadata store and the blob store it marks.
type gcFixture struct {
	db    MetaStore
	blobs storage.Blobs
}

func (s MetaSuite) newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	db := s.Open(t, MetaOptions{})
	var blobs storage.Blobs
	if s.Blobs != nil {
		blobs = s.Blobs(t, db)
	} else {
		disk, err := storage.NewDiskBlobs(t.TempDir(), db)
		if err != nil {
			t.Fatal(err)
		}
		blobs = disk
	}
	return &gcFixture{db, blobs}
}

// push stores content as a blob and links it into repo, as an upload does.
func (f *gcFixture) push(ctx context.Context, repo, content string) (digest.Digest, error) {
	d := digest.FromString(content)
	if _, err := f.blobs.Put(ctx, d, bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
		return "", err
	}
	return d, f.db.LinkBlob(ctx, repo, d, int64(len(content)))
}

func (f *gcFixture) mustPush(t testing.TB, repo, content string) digest.Digest {
	t.Helper()
	d, err := f.push(context.Background(), repo, content)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func gcManifest(raw string, blobs []digest.Digest) *storage.Manifest {
	return &storage.Manifest{Digest: digest.FromString(raw), MediaType: mtManifest, Blobs: blobs, Raw: []byte(raw), Size: int64(len(raw)), Created: time.Now()}
}

func (f *gcFixture) manifest(t testing.TB, repo, tag string, blobs ...digest.Digest) digest.Digest {
	t.Helper()
	m := gcManifest(fmt.Sprintf(`{"schemaVersion":2,"tag":%q,"blobs":%q}`, tag, blobs), blobs)
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

func (s MetaSuite) testCollectGarbage(t *testing.T) {
	ctx := context.Background()
	f := s.newGCFixture(t)
	kept := f.mustPush(t, "app", "layer kept by a manifest")
	dangling := f.mustPush(t, "app", "layer nobody references")
	shared := f.mustPush(t, "app", "layer in two repositories")
	f.mustPush(t, "other", "layer in two repositories")
	mf := f.manifest(t, "app", "v1", kept)
	f.manifest(t, "other", "v1", shared)

	t.Run("grace period keeps fresh links", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{GracePeriod: time.Hour, Untagged: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.LinksRemoved != 0 || rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 {
			t.Fatalf("report %+v, want nothing removed within the grace period", rep)
		}
		if rep.BlobsKept != 3 {
			t.Errorf("BlobsKept = %d, want the 3 linked blobs", rep.BlobsKept)
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		// It counts what a real run removes — the blob that dropping app's
		// links leaves unlinked included — and removes nothing.
		if !rep.DryRun || rep.LinksRemoved != 2 || rep.BlobsDeleted != 1 || rep.BytesReclaimed != int64(len("layer nobody references")) || !f.stored(dangling) {
			t.Fatalf("dry run report %+v", rep)
		}
		if _, err := f.db.BlobLink(ctx, "app", dangling); err != nil {
			t.Fatalf("dry run removed a link: %v", err)
		}
	})
	t.Run("unreferenced links and bytes go", func(t *testing.T) {
		rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// app links dangling and shared without referencing them.
		if rep.LinksRemoved != 2 || rep.BlobsDeleted != 1 || rep.BytesReclaimed != int64(len("layer nobody references")) {
			t.Fatalf("report %+v", rep)
		}
		if rep.Started.IsZero() || rep.Finished.Before(rep.Started) {
			t.Errorf("report times %v → %v", rep.Started, rep.Finished)
		}
		if f.stored(dangling) || !f.stored(kept) || !f.stored(shared) {
			t.Fatal("wrong blobs deleted")
		}
		if _, err := f.db.BlobLink(ctx, "other", shared); err != nil {
			t.Fatalf("other lost its referenced link: %v", err)
		}
		if _, err := f.db.BlobLink(ctx, "app", shared); err == nil {
			t.Fatal("app kept its unreferenced link")
		}
	})
	t.Run("untagged manifests and then their layers", func(t *testing.T) {
		if err := f.db.DeleteTag(ctx, "app", "v1"); err != nil {
			t.Fatal(err)
		}
		rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{Untagged: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ManifestsDeleted != 1 || rep.BlobsDeleted != 1 || f.stored(kept) {
			t.Fatalf("report %+v, kept layer stored %v", rep, f.stored(kept))
		}
		if _, err := f.db.Manifest(ctx, "app", mf.String(), false); !errors.Is(err, storage.ErrManifestUnknown) {
			t.Fatalf("untagged manifest still there: %v", err)
		}
	})
	t.Run("a mount of collected bytes is refused", func(t *testing.T) {
		if err := f.db.LinkBlob(ctx, "third", kept, 1); !errors.Is(err, storage.ErrBlobUnknown) {
			t.Fatalf("LinkBlob of a collected blob = %v, want ErrBlobUnknown", err)
		}
	})
	t.Run("a collected blob can be pushed again", func(t *testing.T) {
		d := f.mustPush(t, "app", "layer kept by a manifest")
		if d != kept || !f.stored(kept) {
			t.Fatal("the pushed-again blob is not stored")
		}
		if _, err := f.db.BlobLink(ctx, "app", kept); err != nil {
			t.Fatal(err)
		}
	})
}

// testCollectGarbageUntaggedKeeps: an untagged manifest stays while an
// index of the repository references it or its subject is there.
func (s MetaSuite) testCollectGarbageUntaggedKeeps(t *testing.T) {
	ctx := context.Background()
	f := s.newGCFixture(t)
	layer := f.mustPush(t, "app", "layer")
	put := func(m *storage.Manifest, tags ...string) digest.Digest {
		t.Helper()
		if err := f.db.PutManifest(ctx, "app", m, tags, true); err != nil {
			t.Fatal(err)
		}
		return m.Digest
	}
	child := put(gcManifest(`{"child":1}`, []digest.Digest{layer}))
	index := &storage.Manifest{MediaType: mtIndex, Manifests: []digest.Digest{child}, Raw: []byte(`{"index":1}`), Created: time.Now()}
	index.Digest, index.Size = digest.FromBytes(index.Raw), int64(len(index.Raw))
	put(index, "multi")
	subject := put(gcManifest(`{"image":1}`, []digest.Digest{layer}), "image")
	sig := gcManifest(`{"signature":1}`, []digest.Digest{layer})
	sig.Subject, sig.ArtifactType = subject, "application/vnd.example.sig"
	put(sig)
	orphan := gcManifest(`{"orphan":1}`, []digest.Digest{layer})
	orphan.Subject = digest.FromString("gone")
	put(orphan)
	untagged := put(gcManifest(`{"untagged":1}`, []digest.Digest{layer}))

	present := func(d digest.Digest) bool {
		_, err := f.db.Manifest(ctx, "app", d.String(), false)
		return err == nil
	}
	rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{Untagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ManifestsDeleted != 2 || present(untagged) || present(orphan.Digest) {
		t.Fatalf("report %+v: want the untagged manifest and the orphaned referrer deleted", rep)
	}
	if !present(child) || !present(sig.Digest) || !f.stored(layer) {
		t.Fatal("a referenced child, a signature of a present image or their layer was deleted")
	}
	// Without its index and its image, the rest goes in one collection: the
	// child once the index is gone, the signature once its subject is.
	if err := f.db.DeleteTag(ctx, "app", "multi"); err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteTag(ctx, "app", "image"); err != nil {
		t.Fatal(err)
	}
	rep, err = f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{Untagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ManifestsDeleted != 4 || rep.BlobsDeleted != 1 || f.stored(layer) {
		t.Fatalf("report %+v: want the index, the child, the image and the signature deleted, and the layer", rep)
	}
	if digests, err := f.db.ManifestDigests(ctx, "app"); err != nil || len(digests) != 0 {
		t.Errorf("ManifestDigests() = %v, %v", digests, err)
	}
}

// testCollectGarbageDuringPushes runs collections in a loop, with a short
// grace period, while writers push the same few layers again and again (so
// the collector keeps deleting bytes that an upload is about to reuse) and
// delete a third of what they pushed. Every manifest acknowledged and not
// deleted must end with all its blobs linked and stored.
func (s MetaSuite) testCollectGarbageDuringPushes(t *testing.T) {
	ctx := context.Background()
	f := s.newGCFixture(t)
	const grace = 200 * time.Millisecond
	var uploads atomic.Int64
	// push uploads a blob and links it. A push slower than the grace period
	// can find its bytes collected between the upload and the link
	// (LinkBlob says ErrBlobUnknown, as the registry would answer
	// BLOB_UNKNOWN); the client uploads again.
	push := func(repo, content string) (digest.Digest, error) {
		for {
			d, err := f.push(ctx, repo, content)
			if !errors.Is(err, storage.ErrBlobUnknown) {
				return d, err
			}
			uploads.Add(1)
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
		retries atomic.Int64
	)
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{GracePeriod: grace, Untagged: true})
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
				m := gcManifest(fmt.Sprintf(`{"schemaVersion":2,"tag":%q}`, tag), ds)
				// A push slower than the grace period can lose its links before
				// the manifest arrives; the client pushes the blob again.
				for {
					err := f.db.PutManifest(ctx, repo, m, []string{tag}, true)
					if err == nil {
						break
					}
					var missing *storage.MissingError
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
	rep, err := f.db.CollectGarbage(ctx, f.blobs, storage.GCOptions{Untagged: true})
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
	t.Logf("%d collections during the pushes; %d bytes reclaimed; %d manifests verified; %d manifest pushes and %d blob uploads retried",
		gcRuns, reclaim, len(live), retries.Load(), uploads.Load())
}
