package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

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
				got.Size != w.Size || !s.checkCreated(got.Created, w.Created) {
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
	if !equalDigests(got.Blobs, blobs) || got.Annotations["k"] != "v" || !s.checkCreated(got.Created, again.Created) {
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
