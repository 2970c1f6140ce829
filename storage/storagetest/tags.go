package storagetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/moat-registry/moat/storage"
)

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
