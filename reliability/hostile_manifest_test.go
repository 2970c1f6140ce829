package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// index is an OCI index of the given children.
func index(children []ocispec.Descriptor, subject *ocispec.Descriptor) []byte {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children, Subject: subject}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	return b
}

// TestHostileManifests: manifests that name themselves, indexes nested
// 64 deep, JSON nested past any sane depth and 4 MiB of descriptors are
// answered before the client's deadline, without a crash, with 201 or a 4xx in the OCI shape;
// what is accepted reads back and deletes cleanly.
func TestHostileManifests(t *testing.T) {
	e := newHostileEnv(t, nil)
	c := e.client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	put := func(t *testing.T, ref string, raw []byte, want ...int) *answer {
		t.Helper()
		start := time.Now()
		a, err := c.putManifest(ctx, "legit/app", ref, ocispec.MediaTypeImageIndex, raw)
		if err != nil {
			t.Fatal(err) // a hang ends here, with the client's deadline
		}
		t.Logf("PUT %s (%d bytes): %s in %s", ref, len(raw), truncate(a.String(), 160), time.Since(start).Round(time.Millisecond))
		if a.status < 300 {
			for _, w := range want {
				if w == a.status {
					return a
				}
			}
		}
		checkOCIError(t, "PUT "+ref, a, want...)
		return a
	}
	a, err := c.send(ctx, http.MethodGet, "/v2/legit/app/manifests/v1", nil, 0, nil)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("GET v1: %v %v", a, err)
	}
	image := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(a.body), Size: int64(len(a.body))}

	t.Run("names itself", func(t *testing.T) {
		// A manifest cannot hold its own digest; the nearest attempts push
		// by a digest that the body names as child or subject.
		self := digest.FromString("self")
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: self, Size: 100}
		put(t, self.String(), index([]ocispec.Descriptor{desc}, nil), http.StatusBadRequest)
		put(t, self.String(), index([]ocispec.Descriptor{image}, &desc), http.StatusBadRequest)
		put(t, "loop", index([]ocispec.Descriptor{desc}, nil), http.StatusBadRequest)
		a, err := c.send(ctx, http.MethodGet, "/v2/legit/app/manifests/"+self.String(), nil, 0, nil)
		if err != nil || a.status != http.StatusNotFound {
			t.Errorf("GET the self-naming manifest: %v %v, want 404", a, err)
		}
	})

	t.Run("64 nested indexes", func(t *testing.T) {
		child := image
		var chain []digest.Digest
		start := time.Now()
		for i := range 64 {
			raw := index([]ocispec.Descriptor{child}, nil)
			put(t, "nest-"+strconv.Itoa(i), raw, http.StatusCreated)
			child = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
			chain = append(chain, child.Digest)
		}
		for _, path := range []string{"manifests/nest-63", "referrers/" + image.Digest.String(), "tags/list"} {
			a, err := c.send(ctx, http.MethodGet, "/v2/legit/app/"+path, nil, 0, nil)
			if err != nil || a.status != http.StatusOK {
				t.Errorf("GET %s: %v %v", path, a, err)
			}
		}
		// Deleting from the top down leaves nothing referenced.
		for i := len(chain) - 1; i >= 0; i-- {
			a, err := c.send(ctx, http.MethodDelete, "/v2/legit/app/manifests/"+chain[i].String(), nil, 0, nil)
			if err != nil || a.status != http.StatusAccepted {
				t.Fatalf("DELETE level %d: %v %v", i, a, err)
			}
		}
		t.Logf("64 levels pushed, read and deleted in %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("deep JSON", func(t *testing.T) {
		deep := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"x":` +
			strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}"
		put(t, "deep", []byte(deep), http.StatusBadRequest, http.StatusCreated)
		deepObj := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"x":` +
			strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000) + "}"
		put(t, "deep-object", []byte(deepObj), http.StatusBadRequest, http.StatusCreated)
	})

	t.Run("4 MiB of descriptors", func(t *testing.T) {
		// An index naming the same child over and over, just under 4 MiB.
		one, _ := json.Marshal(image)
		n := (4<<20 - 200) / (len(one) + 1)
		children := make([]ocispec.Descriptor, n)
		for i := range children {
			children[i] = image
		}
		raw := index(children, nil)
		if len(raw) > 4<<20 {
			t.Fatalf("test index is %d bytes", len(raw))
		}
		a := put(t, "wide", raw, http.StatusCreated)
		if a.status == http.StatusCreated {
			got, err := c.send(ctx, http.MethodGet, "/v2/legit/app/manifests/wide", nil, 0, nil)
			if err != nil || got.status != http.StatusOK || !bytes.Equal(got.body, raw) {
				t.Errorf("GET the wide index: %v %v", got, err)
			}
		}
		// An image manifest with as many layers, all the same blob.
		layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: e.layerD, Size: int64(len(e.blob))}
		cfg := []byte(`{"architecture":"amd64"}`)
		man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
		man.SchemaVersion = 2
		one, _ = json.Marshal(layer)
		for range (4<<20 - 400) / (len(one) + 1) {
			man.Layers = append(man.Layers, layer)
		}
		raw, _ = json.Marshal(man)
		a, err := c.putManifest(ctx, "legit/app", "layers", ocispec.MediaTypeImageManifest, raw)
		if err != nil {
			t.Fatal(err) // a hang ends here, with the client's deadline
		}
		if a.status != http.StatusCreated {
			checkOCIError(t, "PUT layers", a)
		}
		// A JSON array of 4 MiB of numbers beside an empty index.
		nums := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"x":[` +
			strings.Repeat("0,", 2<<20-100) + "0]}"
		put(t, "numbers", []byte(nums), http.StatusCreated)
		// One byte over the limit is refused before it is parsed.
		over := append(bytes.Repeat([]byte(" "), 4<<20-len(`{}`)+1), `{}`...)
		put(t, "over", over, http.StatusRequestEntityTooLarge)
	})
	e.checkTree()
}
