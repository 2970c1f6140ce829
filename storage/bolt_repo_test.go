package storage

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
)

// testManifest is a manifest whose raw bytes are raw, referencing blobs.
func testManifest(raw string, blobs ...digest.Digest) *Manifest {
	return &Manifest{
		Digest:    digest.FromString(raw),
		MediaType: mtManifest,
		Blobs:     blobs,
		Created:   time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Size:      int64(len(raw)),
		Raw:       []byte(raw),
	}
}

func link(t testing.TB, db *DB, repo string, contents ...string) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	for _, c := range contents {
		d := digest.FromString(c)
		// The blob store marks a blob before committing it; LinkBlob needs that.
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

func putManifest(t testing.TB, db *DB, repo string, m *Manifest, tags ...string) {
	t.Helper()
	if err := db.PutManifest(context.Background(), repo, m, tags, true); err != nil {
		t.Fatal(err)
	}
}

func TestBlobLinks(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	d := link(t, db, "a", "layer")[0]
	link(t, db, "c", "layer")
	absent := digest.FromString("absent")

	if size, err := db.BlobLink(ctx, "a", d); err != nil || size != 5 {
		t.Errorf("BlobLink() = %d, %v", size, err)
	}
	for _, tt := range []struct {
		name string
		repo string
		d    digest.Digest
	}{{"unknown repository", "b", d}, {"unknown blob", "a", absent}} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.BlobLink(ctx, tt.repo, tt.d); !errors.Is(err, ErrBlobUnknown) {
				t.Errorf("BlobLink() = %v", err)
			}
			if err := db.UnlinkBlob(ctx, tt.repo, tt.d); !errors.Is(err, ErrBlobUnknown) {
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
			{"any repository", d, nil, "a", nil},
			{"only one allowed", d, func(r string) bool { return r == "c" }, "c", nil},
			{"none allowed", d, func(string) bool { return false }, "", ErrBlobUnknown},
			{"not linked", absent, nil, "", ErrBlobUnknown},
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

	if err := db.UnlinkBlob(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BlobLink(ctx, "a", d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("BlobLink() after unlink = %v", err)
	}
	if _, err := db.BlobLink(ctx, "c", d); err != nil {
		t.Errorf("unlinking from a hid it from c: %v", err)
	}
}

func TestPutManifestRequiresContent(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	blobs := link(t, db, "app", "config", "layer")
	absent := digest.FromString("absent")
	child := testManifest("child", blobs...)
	putManifest(t, db, "app", child)

	index := func(children ...digest.Digest) *Manifest {
		m := testManifest(fmt.Sprint("index", children))
		m.MediaType, m.Blobs, m.Manifests = mtIndex, nil, children
		return m
	}
	tests := []struct {
		name            string
		repo            string
		m               *Manifest
		requireChildren bool
		wantMissing     digest.Digest
		wantManifest    bool
	}{
		{"blobs present", "app", testManifest("ok", blobs...), true, "", false},
		{"blob missing", "app", testManifest("missing", blobs[0], absent), true, absent, false},
		{"blob linked in another repository only", "other", testManifest("elsewhere", blobs...), true, blobs[0], false},
		{"index with its child", "app", index(child.Digest), true, "", false},
		{"index child missing", "app", index(child.Digest, absent), true, absent, true},
		{"sparse index allowed", "app", index(absent), false, "", false},
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
			var missing *MissingError
			if !errors.As(err, &missing) || missing.Digest != tt.wantMissing || missing.Manifest != tt.wantManifest {
				t.Fatalf("PutManifest() = %v, want a MissingError for %s", err, tt.wantMissing)
			}
			want := ErrBlobUnknown
			if tt.wantManifest {
				want = ErrManifestUnknown
			}
			if !errors.Is(err, want) {
				t.Errorf("errors.Is(%v, %v) = false", err, want)
			}
			if _, err := db.Manifest(ctx, tt.repo, tt.m.Digest.String(), false); err == nil {
				t.Error("a refused manifest was stored")
			}
		})
	}
}

func TestManifestLookup(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	blobs := link(t, db, "app", "config", "layer")
	m := testManifest(`{"schemaVersion":2}`, blobs...)
	m.Annotations = map[string]string{"org.opencontainers.image.title": "x"}
	putManifest(t, db, "app", m, "latest", "v1")

	tests := []struct {
		name    string
		repo    string
		ref     string
		body    bool
		wantErr error
	}{
		{"tag with body", "app", "latest", true, nil},
		{"tag without body", "app", "v1", false, nil},
		{"digest with body", "app", m.Digest.String(), true, nil},
		{"digest without body", "app", m.Digest.String(), false, nil},
		{"unknown tag", "app", "v2", true, ErrManifestUnknown},
		{"unknown digest", "app", digest.FromString("x").String(), true, ErrManifestUnknown},
		{"unknown repository", "nope", "latest", true, ErrRepositoryUnknown},
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
			if got.Digest != m.Digest || got.MediaType != m.MediaType || got.Size != m.Size || !got.Created.Equal(m.Created) {
				t.Errorf("Manifest() = %+v", got)
			}
			if tt.body {
				if string(got.Raw) != string(m.Raw) || !reflect.DeepEqual(got.Blobs, m.Blobs) || !reflect.DeepEqual(got.Annotations, m.Annotations) {
					t.Errorf("Manifest() = %+v, want %+v", got, m)
				}
			} else if got.Raw != nil {
				t.Errorf("Raw = %q without body", got.Raw)
			}
		})
	}
}

func tagList(t *testing.T, db *DB, repo string) []string {
	t.Helper()
	tags, err := db.Tags(context.Background(), repo, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

func TestTagsMoveAndDelete(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	blobs := link(t, db, "app", "config")
	m1, m2 := testManifest("one", blobs...), testManifest("two", blobs...)
	putManifest(t, db, "app", m1, "latest", "v1")
	putManifest(t, db, "app", m1, "latest") // same tag, same manifest
	putManifest(t, db, "app", m2, "latest", "v2")

	if got, _ := db.Manifest(ctx, "app", "latest", false); got.Digest != m2.Digest {
		t.Fatalf("latest points at %s, want m2", got.Digest)
	}
	// Deleting m1 must not take "latest", which moved to m2.
	if err := db.DeleteManifest(ctx, "app", m1.Digest); err != nil {
		t.Fatal(err)
	}
	if got := tagList(t, db, "app"); !reflect.DeepEqual(got, []string{"latest", "v2"}) {
		t.Errorf("tags after deleting m1 = %v", got)
	}
	if _, err := db.Manifest(ctx, "app", "v1", false); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("tag v1 of a deleted manifest = %v", err)
	}
	if err := db.DeleteManifest(ctx, "app", m1.Digest); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("second DeleteManifest() = %v", err)
	}
	if err := db.DeleteManifest(ctx, "nope", m1.Digest); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("DeleteManifest() in an unknown repository = %v", err)
	}

	// Deleting a tag leaves the manifest.
	if err := db.DeleteTag(ctx, "app", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTag(ctx, "app", "v2"); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("second DeleteTag() = %v", err)
	}
	if err := db.DeleteTag(ctx, "nope", "v2"); !errors.Is(err, ErrManifestUnknown) {
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
}

func TestReferrers(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	blobs := link(t, db, "app", "config")
	subject := testManifest("subject", blobs...)
	putManifest(t, db, "app", subject, "latest")
	sig := testManifest("signature", blobs...)
	sig.Subject, sig.ArtifactType = subject.Digest, "application/vnd.example.sig"
	sig.Annotations = map[string]string{"created-by": "test"}
	sbom := testManifest("sbom", blobs...)
	sbom.Subject, sbom.ArtifactType = subject.Digest, "application/spdx+json"
	unrelated := testManifest("unrelated", blobs...)
	unrelated.Subject = digest.FromString("other subject")
	for _, m := range []*Manifest{sig, sbom, unrelated} {
		putManifest(t, db, "app", m)
	}

	desc := func(m *Manifest) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	}
	byDigest := func(ms ...*Manifest) []ocispec.Descriptor {
		out := []ocispec.Descriptor{}
		for _, m := range ms {
			out = append(out, desc(m))
		}
		// Referrers come in referrer digest order.
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j].Digest < out[i].Digest {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	}
	tests := []struct {
		name         string
		repo         string
		subject      digest.Digest
		artifactType string
		want         []ocispec.Descriptor
	}{
		{"all", "app", subject.Digest, "", byDigest(sig, sbom)},
		{"filtered", "app", subject.Digest, "application/spdx+json", byDigest(sbom)},
		{"filter matches none", "app", subject.Digest, "text/plain", byDigest()},
		{"no referrers", "app", sig.Digest, "", byDigest()},
		{"unknown repository", "nope", subject.Digest, "", byDigest()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Referrers(ctx, tt.repo, tt.subject, tt.artifactType)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Referrers() = %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("delete removes the entry", func(t *testing.T) {
		if err := db.DeleteManifest(ctx, "app", sig.Digest); err != nil {
			t.Fatal(err)
		}
		got, err := db.Referrers(ctx, "app", subject.Digest, "")
		if err != nil || !reflect.DeepEqual(got, byDigest(sbom)) {
			t.Errorf("Referrers() after delete = %+v, %v", got, err)
		}
	})
}

func TestTagsPagination(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	blobs := link(t, db, "app", "config")
	putManifest(t, db, "app", testManifest("m", blobs...), "v2", "a", "B", "v10", "latest")
	link(t, db, "empty", "config")

	tests := []struct {
		name    string
		repo    string
		last    string
		n       int
		want    []string
		wantErr error
	}{
		{"all in lexical order", "app", "", -1, []string{"B", "a", "latest", "v10", "v2"}, nil},
		{"first page", "app", "", 2, []string{"B", "a"}, nil},
		{"next page", "app", "a", 2, []string{"latest", "v10"}, nil},
		{"last page", "app", "v10", 2, []string{"v2"}, nil},
		{"past the end", "app", "v2", 2, nil, nil},
		{"last not a tag", "app", "b", -1, []string{"latest", "v10", "v2"}, nil},
		{"n zero", "app", "", 0, nil, nil},
		{"repository without tags", "empty", "", -1, nil, nil},
		{"unknown repository", "nope", "", -1, nil, ErrRepositoryUnknown},
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

func TestRepositoriesPagination(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, DBOptions{})
	for _, r := range []string{"b", "a/x", "a", "c/d/e", "private/one"} {
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
		{"all", "", -1, nil, []string{"a", "a/x", "b", "c/d/e", "private/one"}},
		{"first page", "", 2, nil, []string{"a", "a/x"}},
		{"after a prefix of another", "a", 2, nil, []string{"a/x", "b"}},
		{"after a name that is not there", "a/y", -1, nil, []string{"b", "c/d/e", "private/one"}},
		{"filtered", "", -1, public, []string{"a", "a/x", "b", "c/d/e"}},
		{"filtered page", "b", 5, public, []string{"c/d/e"}},
		{"n zero", "", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Repositories(ctx, tt.last, tt.n, tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Repositories() = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkManifestHead(b *testing.B) {
	ctx := context.Background()
	db := newTestDB(b, DBOptions{})
	var blobs []digest.Digest
	for i := range 10 {
		blobs = append(blobs, link(b, db, "library/app", fmt.Sprint("layer", i))...)
	}
	m := testManifest(strings.Repeat(`{"layer":"x"}`, 200), blobs...)
	m.Annotations = map[string]string{"org.opencontainers.image.created": "2025-01-01T00:00:00Z"}
	putManifest(b, db, "library/app", m, "latest")
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.Manifest(ctx, "library/app", "latest", false)
		if err != nil || got.Size != m.Size {
			b.Fatal(got, err)
		}
	}
}
