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

func (s MetaSuite) testPutManifestRequiresContent(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config", "layer")
	link(t, db, "lonely", "unrelated")
	absent := digest.FromString("absent")
	child := testManifest("child", blobs...)
	putManifest(t, db, "app", child)

	index := func(children ...digest.Digest) *storage.Manifest {
		m := testManifest(fmt.Sprint("index", children))
		m.MediaType, m.Blobs, m.Manifests = mtIndex, nil, children
		return m
	}
	tests := []struct {
		name            string
		repo            string
		m               *storage.Manifest
		requireChildren bool
		wantMissing     digest.Digest
		wantManifest    bool
	}{
		{"blobs present", "app", testManifest("ok", blobs...), true, "", false},
		{"blob missing", "app", testManifest("missing", blobs[0], absent), true, absent, false},
		{"first missing blob is reported", "app", testManifest("two missing", digest.FromString("z"), blobs[0], absent), true, digest.FromString("z"), false},
		{"blob linked in another repository only", "lonely", testManifest("elsewhere", blobs...), true, blobs[0], false},
		{"new repository", "new", testManifest("new", blobs...), true, blobs[0], false},
		{"index with its child", "app", index(child.Digest), true, "", false},
		{"index child missing", "app", index(child.Digest, absent), true, absent, true},
		{"sparse index allowed", "app", index(absent), false, "", false},
		{"child in another repository only", "lonely", index(child.Digest), true, child.Digest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.PutManifest(ctx, tt.repo, tt.m, []string{"t"}, tt.requireChildren)
			if tt.wantMissing == "" {
				if err != nil {
					t.Fatalf("PutManifest() = %v", err)
				}
				if _, err := db.Manifest(ctx, tt.repo, tt.m.Digest.String(), false); err != nil {
					t.Errorf("stored manifest not found: %v", err)
				}
				return
			}
			var missing *storage.MissingError
			if !errors.As(err, &missing) || missing.Digest != tt.wantMissing || missing.Manifest != tt.wantManifest {
				t.Fatalf("PutManifest() = %v, want a MissingError for %s", err, tt.wantMissing)
			}
			want := storage.ErrBlobUnknown
			if tt.wantManifest {
				want = storage.ErrManifestUnknown
			}
			if !errors.Is(err, want) {
				t.Errorf("errors.Is(%v, %v) = false", err, want)
			}
			if _, err := db.Manifest(ctx, tt.repo, tt.m.Digest.String(), false); err == nil {
				t.Error("a refused manifest was stored")
			}
			if _, err := db.Manifest(ctx, tt.repo, "t", false); err == nil && tt.repo != "app" {
				t.Error("a refused manifest set its tag")
			}
		})
	}
	if got := repositories(t, db); !reflect.DeepEqual(got, []string{"app", "lonely"}) {
		t.Errorf("repositories %q: a refused manifest creates none", got)
	}
	// The refused puts left the tag where the last accepted one put it.
	if got, err := db.Manifest(ctx, "app", "t", false); err != nil || got.Digest != index(absent).Digest {
		t.Errorf("tag t = %v, %v; want the sparse index", got, err)
	}
}

func (s MetaSuite) testManifestLookup(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config", "layer")
	m := testManifest(`{"schemaVersion":2}`, blobs...)
	m.ArtifactType = "application/vnd.example+type"
	m.Annotations = map[string]string{"org.opencontainers.image.title": "x", "b": "y"}
	putManifest(t, db, "app", m, "latest", "v1")
	plain := testManifest(`{"plain":true}`)
	putManifest(t, db, "app", plain)

	tests := []struct {
		name    string
		repo    string
		ref     string
		body    bool
		want    *storage.Manifest
		wantErr error
	}{
		{"tag with body", "app", "latest", true, m, nil},
		{"tag without body", "app", "v1", false, m, nil},
		{"digest with body", "app", m.Digest.String(), true, m, nil},
		{"digest without body", "app", m.Digest.String(), false, m, nil},
		{"nothing optional", "app", plain.Digest.String(), true, plain, nil},
		{"unknown tag", "app", "v2", true, nil, storage.ErrManifestUnknown},
		{"unknown tag without body", "app", "v2", false, nil, storage.ErrManifestUnknown},
		{"unknown digest", "app", digest.FromString("x").String(), true, nil, storage.ErrManifestUnknown},
		{"unknown repository by tag", "nope", "latest", true, nil, storage.ErrRepositoryUnknown},
		{"unknown repository by digest", "nope", m.Digest.String(), false, nil, storage.ErrRepositoryUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Manifest(ctx, tt.repo, tt.ref, tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Manifest() = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			w := tt.want
			if got.Digest != w.Digest || got.MediaType != w.MediaType || got.ArtifactType != w.ArtifactType || got.Subject != w.Subject ||
				got.Size != w.Size || !got.Created.Equal(w.Created) {
				t.Errorf("Manifest() = %+v, want %+v", got, w)
			}
			if !tt.body {
				if got.Raw != nil {
					t.Errorf("Raw = %q without body", got.Raw)
				}
				return
			}
			if string(got.Raw) != string(w.Raw) || !equalDigests(got.Blobs, w.Blobs) || !equalDigests(got.Manifests, w.Manifests) {
				t.Errorf("Manifest() = %+v, want %+v", got, w)
			}
			if len(got.Annotations) != len(w.Annotations) || (len(w.Annotations) > 0 && !reflect.DeepEqual(got.Annotations, w.Annotations)) {
				t.Errorf("Annotations = %v, want %v", got.Annotations, w.Annotations)
			}
		})
	}

	t.Run("result is the caller's", func(t *testing.T) {
		got, err := db.Manifest(ctx, "app", "latest", true)
		if err != nil {
			t.Fatal(err)
		}
		got.Raw[0] = 'X'
		got.Annotations["b"] = "changed"
		again, _ := db.Manifest(ctx, "app", "latest", true)
		if string(again.Raw) != string(m.Raw) || again.Annotations["b"] != "y" {
			t.Errorf("changing a result changed the store: %+v", again)
		}
	})
}

func equalDigests(a, b []digest.Digest) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

// testPutManifestReplaces: putting a manifest again replaces what is
// stored under its digest, and keeps its tags.
func (s MetaSuite) testPutManifestReplaces(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config", "layer")
	m := testManifest("same", blobs[0])
	putManifest(t, db, "app", m, "v1")
	again := *m
	again.Blobs = blobs
	again.Annotations = map[string]string{"k": "v"}
	again.Created = created.Add(time.Hour)
	putManifest(t, db, "app", &again, "v2")
	got, err := db.Manifest(ctx, "app", "v1", true)
	if err != nil {
		t.Fatal(err)
	}
	if !equalDigests(got.Blobs, blobs) || got.Annotations["k"] != "v" || !got.Created.Equal(again.Created) {
		t.Errorf("Manifest() after a second put = %+v", got)
	}
	tags, err := db.Tags(ctx, "app", "", -1)
	if err != nil || !reflect.DeepEqual(tags, []string{"v1", "v2"}) {
		t.Errorf("Tags() = %q, %v", tags, err)
	}
	digests, err := db.ManifestDigests(ctx, "app")
	if err != nil || !reflect.DeepEqual(digests, []digest.Digest{m.Digest}) {
		t.Errorf("ManifestDigests() = %v, %v", digests, err)
	}
	t.Run("duplicate tags in one put", func(t *testing.T) {
		if err := db.PutManifest(ctx, "app", m, []string{"v3", "v3"}, true); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Manifest(ctx, "app", "v3", false); err != nil || got.Digest != m.Digest {
			t.Errorf("Manifest(v3) = %v, %v", got, err)
		}
	})
}

func tagList(t *testing.T, db MetaStore, repo string) []string {
	t.Helper()
	tags, err := db.Tags(context.Background(), repo, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

func (s MetaSuite) testTagsMoveAndDelete(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config")
	m1, m2 := testManifest("one", blobs...), testManifest("two", blobs...)
	putManifest(t, db, "app", m1, "latest", "v1")
	putManifest(t, db, "app", m1, "latest") // same tag, same manifest
	putManifest(t, db, "app", m2, "latest", "v2")

	if got, _ := db.Manifest(ctx, "app", "latest", false); got == nil || got.Digest != m2.Digest {
		t.Fatalf("latest points at %v, want m2", got)
	}
	// Deleting m1 must not take "latest", which moved to m2.
	if err := db.DeleteManifest(ctx, "app", m1.Digest); err != nil {
		t.Fatal(err)
	}
	if got := tagList(t, db, "app"); !reflect.DeepEqual(got, []string{"latest", "v2"}) {
		t.Errorf("tags after deleting m1 = %v", got)
	}
	if _, err := db.Manifest(ctx, "app", "v1", false); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("tag v1 of a deleted manifest = %v", err)
	}
	if err := db.DeleteManifest(ctx, "app", m1.Digest); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("second DeleteManifest() = %v", err)
	}
	if err := db.DeleteManifest(ctx, "nope", m1.Digest); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("DeleteManifest() in an unknown repository = %v", err)
	}

	// Deleting a tag leaves the manifest.
	if err := db.DeleteTag(ctx, "app", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTag(ctx, "app", "v2"); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("second DeleteTag() = %v", err)
	}
	if err := db.DeleteTag(ctx, "nope", "v2"); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("DeleteTag() in an unknown repository = %v", err)
	}
	if _, err := db.Manifest(ctx, "app", m2.Digest.String(), false); err != nil {
		t.Errorf("DeleteTag removed the manifest: %v", err)
	}
	// And the deleted tag no longer follows the manifest.
	if err := db.DeleteManifest(ctx, "app", m2.Digest); err != nil {
		t.Fatal(err)
	}
	if got := tagList(t, db, "app"); len(got) != 0 {
		t.Errorf("tags after deleting every manifest = %v", got)
	}
	if got := repositories(t, db); !reflect.DeepEqual(got, []string{"app"}) {
		t.Errorf("repositories %q: deleting every manifest keeps the repository", got)
	}
}

func (s MetaSuite) testTagDetails(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config")
	m1, m2 := testManifest("one", blobs...), testManifest("two", blobs...)
	details := func() map[string]storage.TagInfo {
		t.Helper()
		infos, err := db.TagDetails(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]storage.TagInfo{}
		var names []string
		for _, in := range infos {
			out[in.Name] = in
			names = append(names, in.Name)
		}
		if !slices.IsSorted(names) {
			t.Errorf("TagDetails() not in lexical order: %q", names)
		}
		return out
	}
	before := time.Now().Truncate(time.Millisecond)
	putManifest(t, db, "app", m1, "v1", "latest")
	first := details()
	if len(first) != 2 || first["v1"].Digest != m1.Digest || first["latest"].Digest != m1.Digest {
		t.Fatalf("TagDetails() = %+v", first)
	}
	for _, in := range first {
		if in.Updated.Before(before) || in.Updated.After(time.Now().Add(time.Second)) {
			t.Errorf("%s set at %v, want after %v", in.Name, in.Updated, before)
		}
	}
	// Setting a tag to where it points keeps its time; moving it renews it.
	waitClockTick(first["latest"].Updated)
	putManifest(t, db, "app", m1, "v1")
	putManifest(t, db, "app", m2, "latest")
	second := details()
	if !second["v1"].Updated.Equal(first["v1"].Updated) {
		t.Errorf("v1 set again to the same manifest: time %v → %v", first["v1"].Updated, second["v1"].Updated)
	}
	if second["latest"].Digest != m2.Digest || !second["latest"].Updated.After(first["latest"].Updated) {
		t.Errorf("moved tag latest = %+v, was %+v", second["latest"], first["latest"])
	}
	if _, err := db.TagDetails(ctx, "nope"); !errors.Is(err, storage.ErrRepositoryUnknown) {
		t.Errorf("TagDetails() of an unknown repository = %v", err)
	}
	link(t, db, "untagged", "config")
	if infos, err := db.TagDetails(ctx, "untagged"); err != nil || len(infos) != 0 {
		t.Errorf("TagDetails() of a repository without tags = %v, %v", infos, err)
	}
}

// waitClockTick waits until the wall clock has moved a millisecond past t,
// so that a later time compares after it whatever the backend's precision.
func waitClockTick(t time.Time) {
	for time.Until(t) > -time.Millisecond {
		time.Sleep(time.Millisecond)
	}
}

func (s MetaSuite) testManifestDigests(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config")
	var want []digest.Digest
	for i := range 5 {
		m := testManifest(fmt.Sprint("manifest ", i), blobs...)
		putManifest(t, db, "app", m)
		want = append(want, m.Digest)
	}
	slices.Sort(want)
	got, err := db.ManifestDigests(ctx, "app")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ManifestDigests() = %v, %v; want %v in order", got, err, want)
	}
	if _, err := db.ManifestDigests(ctx, "nope"); !errors.Is(err, storage.ErrRepositoryUnknown) {
		t.Errorf("ManifestDigests() of an unknown repository = %v", err)
	}
	if got, err := db.ManifestDigests(ctx, "app"); err == nil && len(got) > 0 {
		if err := db.DeleteManifest(ctx, "app", got[0]); err != nil {
			t.Fatal(err)
		}
		if after, _ := db.ManifestDigests(ctx, "app"); len(after) != len(want)-1 || slices.Contains(after, got[0]) {
			t.Errorf("ManifestDigests() after a delete = %v", after)
		}
	}
}

func (s MetaSuite) testTagsPagination(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config")
	putManifest(t, db, "app", testManifest("m", blobs...), "v2", "a", "B", "v10", "latest", "a-b", "a_b", "a.b")
	link(t, db, "empty", "config")

	tests := []struct {
		name    string
		repo    string
		last    string
		n       int
		want    []string
		wantErr error
	}{
		// Byte order, whatever the database's collation: upper case first,
		// '-' < '.' < '_'.
		{"all in lexical order", "app", "", -1, []string{"B", "a", "a-b", "a.b", "a_b", "latest", "v10", "v2"}, nil},
		{"first page", "app", "", 2, []string{"B", "a"}, nil},
		{"next page", "app", "a", 2, []string{"a-b", "a.b"}, nil},
		{"last page", "app", "v10", 2, []string{"v2"}, nil},
		{"past the end", "app", "v2", 2, nil, nil},
		{"last not a tag", "app", "b", -1, []string{"latest", "v10", "v2"}, nil},
		{"n zero", "app", "", 0, nil, nil},
		{"repository without tags", "empty", "", -1, nil, nil},
		{"unknown repository", "nope", "", -1, nil, storage.ErrRepositoryUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Tags(ctx, tt.repo, tt.last, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Tags() = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Tags() = %q, want %q", got, tt.want)
			}
		})
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
