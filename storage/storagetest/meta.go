package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// MetaStore is a metadata backend: everything but blob bytes.
type MetaStore interface {
	storage.Meta
	storage.Marker
	storage.UploadStates
	storage.Documents
	storage.AuditLog
	storage.Collector
}

// MetaOptions configure a store the suite opens.
type MetaOptions struct {
	// AuditLimit bounds the audit log (0: the backend's default).
	AuditLimit uint64
}

// MetaSuite is the conformance suite of a metadata backend.
type MetaSuite struct {
	// Open opens a new, empty store and closes it when the test ends
	// (t.Cleanup).
	Open func(t testing.TB, opts MetaOptions) MetaStore
	// Blobs opens the blob store the garbage collection tests collect,
	// marking through m. Nil: storage.DiskBlobs in a temp directory.
	Blobs func(t testing.TB, m storage.Marker) storage.Blobs
	// StoreSetsCreated says that PutManifest sets Manifest.Created from
	// the store's own clock and ignores the time passed.
	StoreSetsCreated bool
}

// checkCreated reports whether a manifest's created time is right: the
// time put, or a time of the store's clock near now (the suite does not
// time the store: an hour either way is plenty).
func (s MetaSuite) checkCreated(got, put time.Time) bool {
	if !s.StoreSetsCreated {
		return got.Equal(put)
	}
	return !got.Equal(put) && time.Since(got).Abs() < time.Hour
}

// Run runs every test of the suite as subtests of t.
func (s MetaSuite) Run(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"BlobLinks", s.testBlobLinks},
		{"LinkBlobNeedsTheRecord", s.testLinkBlobNeedsTheRecord},
		{"PutManifestRequiresContent", s.testPutManifestRequiresContent},
		{"ManifestLookup", s.testManifestLookup},
		{"PutManifestReplaces", s.testPutManifestReplaces},
		{"TagsMoveAndDelete", s.testTagsMoveAndDelete},
		{"TagDetails", s.testTagDetails},
		{"ManifestDigests", s.testManifestDigests},
		{"Referrers", s.testReferrers},
		{"TagsPagination", s.testTagsPagination},
		{"RepositoriesPagination", s.testRepositoriesPagination},
		{"UploadStates", s.testUploadStates},
		{"Documents", s.testDocuments},
		{"DocumentsConcurrentUpdates", s.testDocumentsConcurrentUpdates},
		{"AuditLog", s.testAuditLog},
		{"AuditLogOrder", s.testAuditLogOrder},
		{"CollectGarbage", s.testCollectGarbage},
		{"CollectGarbageUntaggedKeeps", s.testCollectGarbageUntaggedKeeps},
		{"CollectGarbageDuringPushes", s.testCollectGarbageDuringPushes},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
)

// created is a manifest creation time, in whole microseconds.
var created = time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)

// testManifest is a manifest whose raw bytes are raw, referencing blobs.
func testManifest(raw string, blobs ...digest.Digest) *storage.Manifest {
	return &storage.Manifest{
		Digest:    digest.FromString(raw),
		MediaType: mtManifest,
		Blobs:     blobs,
		Created:   created,
		Size:      int64(len(raw)),
		Raw:       []byte(raw),
	}
}

// link marks blobs of the given contents, as a blob store does before
// committing bytes, and links them into repo.
func link(t testing.TB, db MetaStore, repo string, contents ...string) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	for _, c := range contents {
		d := digest.FromString(c)
		if err := db.MarkBlob(context.Background(), d, int64(len(c))); err != nil {
			t.Fatal(err)
		}
		if err := db.LinkBlob(context.Background(), repo, d, int64(len(c))); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func putManifest(t testing.TB, db MetaStore, repo string, m *storage.Manifest, tags ...string) {
	t.Helper()
	if err := db.PutManifest(context.Background(), repo, m, tags, true); err != nil {
		t.Fatal(err)
	}
}

func repositories(t *testing.T, db MetaStore) []string {
	t.Helper()
	repos, err := db.Repositories(context.Background(), "", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return repos
}

func (s MetaSuite) testBlobLinks(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	d := link(t, db, "a", "layer")[0]
	link(t, db, "c", "layer")
	link(t, db, "b/c", "other layer")
	absent := digest.FromString("absent")

	if size, err := db.BlobLink(ctx, "a", d); err != nil || size != 5 {
		t.Errorf("BlobLink() = %d, %v", size, err)
	}
	for _, tt := range []struct {
		name string
		repo string
		d    digest.Digest
	}{{"unknown repository", "b", d}, {"unknown blob", "a", absent}, {"blob of another repository", "b/c", d}} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.BlobLink(ctx, tt.repo, tt.d); !errors.Is(err, storage.ErrBlobUnknown) {
				t.Errorf("BlobLink() = %v", err)
			}
			if err := db.UnlinkBlob(ctx, tt.repo, tt.d); !errors.Is(err, storage.ErrBlobUnknown) {
				t.Errorf("UnlinkBlob() = %v", err)
			}
		})
	}

	t.Run("find", func(t *testing.T) {
		tests := []struct {
			name     string
			d        digest.Digest
			keep     func(string) bool
			wantRepo string
			wantErr  error
		}{
			{"first in lexical order", d, nil, "a", nil},
			{"only one allowed", d, func(r string) bool { return r == "c" }, "c", nil},
			{"none allowed", d, func(string) bool { return false }, "", storage.ErrBlobUnknown},
			{"not linked", absent, nil, "", storage.ErrBlobUnknown},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				repo, size, err := db.FindBlob(ctx, tt.d, tt.keep)
				if !errors.Is(err, tt.wantErr) || repo != tt.wantRepo {
					t.Fatalf("FindBlob() = %q, %v; want %q, %v", repo, err, tt.wantRepo, tt.wantErr)
				}
				if err == nil && size != 5 {
					t.Errorf("size %d", size)
				}
			})
		}
	})

	t.Run("relink updates the size", func(t *testing.T) {
		if err := db.LinkBlob(ctx, "c", d, 6); err != nil {
			t.Fatal(err)
		}
		if size, err := db.BlobLink(ctx, "c", d); err != nil || size != 6 {
			t.Errorf("BlobLink() after relink = %d, %v", size, err)
		}
	})

	if err := db.UnlinkBlob(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BlobLink(ctx, "a", d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("BlobLink() after unlink = %v", err)
	}
	if _, err := db.BlobLink(ctx, "c", d); err != nil {
		t.Errorf("unlinking from a hid it from c: %v", err)
	}
	if repo, _, err := db.FindBlob(ctx, d, nil); err != nil || repo != "c" {
		t.Errorf("FindBlob() after unlink = %q, %v", repo, err)
	}
	if got := repositories(t, db); !reflect.DeepEqual(got, []string{"a", "b/c", "c"}) {
		t.Errorf("repositories %q: unlinking keeps the repository", got)
	}
}

// testLinkBlobNeedsTheRecord: a link needs the blob's global record (the
// mark a blob store writes before committing bytes), so that garbage
// collection, which removes the record with the bytes, never leaves a
// link to nothing.
func (s MetaSuite) testLinkBlobNeedsTheRecord(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	d := digest.FromString("never stored")
	if err := db.LinkBlob(ctx, "app", d, 12); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("LinkBlob() of an unmarked blob = %v, want ErrBlobUnknown", err)
	}
	if got := repositories(t, db); len(got) != 0 {
		t.Errorf("a refused link created repositories %q", got)
	}
	if err := db.MarkBlob(ctx, d, 12); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkBlob(ctx, d, 12); err != nil {
		t.Fatalf("marking twice: %v", err)
	}
	if err := db.LinkBlob(ctx, "app", d, 12); err != nil {
		t.Fatalf("LinkBlob() of a marked blob = %v", err)
	}
	if got := repositories(t, db); !reflect.DeepEqual(got, []string{"app"}) {
		t.Errorf("repositories %q after a link", got)
	}
}

func (s MetaSuite) testRepositoriesPagination(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	for _, r := range []string{"b", "a/x", "a", "c/d/e", "private/one", "a-z", "A"} {
		link(t, db, r, "blob")
	}
	public := func(r string) bool { return !strings.HasPrefix(r, "private/") }
	tests := []struct {
		name string
		last string
		n    int
		keep func(string) bool
		want []string
	}{
		{"all in byte order", "", -1, nil, []string{"A", "a", "a-z", "a/x", "b", "c/d/e", "private/one"}},
		{"first page", "", 2, nil, []string{"A", "a"}},
		{"after a prefix of another", "a", 2, nil, []string{"a-z", "a/x"}},
		{"after a name that is not there", "a/y", -1, nil, []string{"b", "c/d/e", "private/one"}},
		{"filtered", "", -1, public, []string{"A", "a", "a-z", "a/x", "b", "c/d/e"}},
		{"filtered page", "b", 5, public, []string{"c/d/e"}},
		{"filter drops the first", "", 2, func(r string) bool { return r != "A" }, []string{"a", "a-z"}},
		{"n zero", "", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Repositories(ctx, tt.last, tt.n, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Repositories() = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("many pages, few kept", func(t *testing.T) {
		var want []string
		for i := range 300 {
			r := fmt.Sprintf("many/%04d", i)
			link(t, db, r, "blob")
			if i%37 == 0 {
				want = append(want, r)
			}
		}
		keep := func(r string) bool { return slices.Contains(want, r) }
		got, err := db.Repositories(ctx, "many/", 4, keep)
		if err != nil || !reflect.DeepEqual(got, want[:4]) {
			t.Errorf("Repositories() = %q, %v; want %q", got, err, want[:4])
		}
	})
}
