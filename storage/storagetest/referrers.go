package storagetest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (s MetaSuite) testReferrers(t *testing.T) {
	ctx := context.Background()
	db := s.Open(t, MetaOptions{})
	blobs := link(t, db, "app", "config")
	link(t, db, "other", "config")
	subject := testManifest("subject", blobs...)
	putManifest(t, db, "app", subject, "latest")
	sig := testManifest("signature", blobs...)
	sig.Subject, sig.ArtifactType = subject.Digest, "application/vnd.example.sig"
	sig.Annotations = map[string]string{"created-by": "test"}
	sbom := testManifest("sbom", blobs...)
	sbom.Subject, sbom.ArtifactType = subject.Digest, "application/spdx+json"
	sbom2 := testManifest("sbom 2", blobs...)
	sbom2.Subject, sbom2.ArtifactType = subject.Digest, "application/spdx+json"
	unrelated := testManifest("unrelated", blobs...)
	unrelated.Subject = digest.FromString("other subject")
	index := testManifest("index of referrers")
	index.MediaType, index.Blobs, index.Subject = mtIndex, nil, subject.Digest
	for _, m := range []*storage.Manifest{sig, sbom, sbom2, unrelated, index} {
		putManifest(t, db, "app", m)
	}
	// The same referrer in another repository is that repository's.
	elsewhere := testManifest("elsewhere", blobs...)
	elsewhere.Subject = subject.Digest
	putManifest(t, db, "other", elsewhere)

	desc := func(m *storage.Manifest) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	}
	// Referrers come in referrer digest order.
	byDigest := func(ms ...*storage.Manifest) []ocispec.Descriptor {
		out := []ocispec.Descriptor{}
		for _, m := range ms {
			out = append(out, desc(m))
		}
		slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
		return out
	}
	tests := []struct {
		name         string
		repo         string
		subject      digest.Digest
		artifactType string
		want         []ocispec.Descriptor
	}{
		{"all", "app", subject.Digest, "", byDigest(sig, sbom, sbom2, index)},
		{"filtered", "app", subject.Digest, "application/spdx+json", byDigest(sbom, sbom2)},
		{"filter matches none", "app", subject.Digest, "text/plain", byDigest()},
		{"no referrers", "app", sig.Digest, "", byDigest()},
		{"subject not stored", "app", unrelated.Subject, "", byDigest(unrelated)},
		{"other repository", "other", subject.Digest, "", byDigest(elsewhere)},
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
		if err != nil || !reflect.DeepEqual(got, byDigest(sbom, sbom2, index)) {
			t.Errorf("Referrers() after delete = %+v, %v", got, err)
		}
	})
	t.Run("deleting the subject keeps its referrers", func(t *testing.T) {
		if err := db.DeleteManifest(ctx, "app", subject.Digest); err != nil {
			t.Fatal(err)
		}
		got, err := db.Referrers(ctx, "app", subject.Digest, "")
		if err != nil || !reflect.DeepEqual(got, byDigest(sbom, sbom2, index)) {
			t.Errorf("Referrers() after deleting the subject = %+v, %v", got, err)
		}
	})
}
