package storagetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// Bench runs the metadata hot paths as sub-benchmarks, so that backends
// compare on the same work: a HEAD by tag, a manifest push and a blob link.
func (s MetaSuite) Bench(b *testing.B) {
	b.Run("ManifestHeadByTag", s.benchManifestHead)
	b.Run("ManifestGetByDigest", s.benchManifestGet)
	b.Run("PutManifest", s.benchPutManifest)
	b.Run("LinkBlob", s.benchLinkBlob)
}

// benchRepo links ten layers into library/app and returns their digests.
func benchRepo(b *testing.B, db MetaStore) []digest.Digest {
	var contents []string
	for i := range 10 {
		contents = append(contents, fmt.Sprint("layer", i))
	}
	return link(b, db, "library/app", contents...)
}

func benchManifest(raw string, blobs []digest.Digest) *storage.Manifest {
	m := testManifest(raw, blobs...)
	m.Annotations = map[string]string{"org.opencontainers.image.created": "2025-01-01T00:00:00Z"}
	return m
}

func (s MetaSuite) benchManifestHead(b *testing.B) {
	ctx := context.Background()
	db := s.Open(b, MetaOptions{})
	m := benchManifest(strings.Repeat(`{"layer":"x"}`, 200), benchRepo(b, db))
	putManifest(b, db, "library/app", m, "latest")
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.Manifest(ctx, "library/app", "latest", false)
		if err != nil || got.Size != m.Size {
			b.Fatal(got, err)
		}
	}
}

func (s MetaSuite) benchManifestGet(b *testing.B) {
	ctx := context.Background()
	db := s.Open(b, MetaOptions{})
	m := benchManifest(strings.Repeat(`{"layer":"x"}`, 200), benchRepo(b, db))
	putManifest(b, db, "library/app", m, "latest")
	ref := m.Digest.String()
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.Manifest(ctx, "library/app", ref, true)
		if err != nil || len(got.Raw) != len(m.Raw) {
			b.Fatal(got, err)
		}
	}
}

func (s MetaSuite) benchPutManifest(b *testing.B) {
	ctx := context.Background()
	db := s.Open(b, MetaOptions{})
	blobs := benchRepo(b, db)
	body := strings.Repeat(`{"layer":"x"}`, 200)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		m := benchManifest(fmt.Sprint(body, i), blobs)
		if err := db.PutManifest(ctx, "library/app", m, []string{"latest"}, true); err != nil {
			b.Fatal(err)
		}
	}
}

func (s MetaSuite) benchLinkBlob(b *testing.B) {
	ctx := context.Background()
	db := s.Open(b, MetaOptions{})
	blobs := benchRepo(b, db)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if err := db.LinkBlob(ctx, "library/app", blobs[i%len(blobs)], 6); err != nil {
			b.Fatal(err)
		}
	}
}
