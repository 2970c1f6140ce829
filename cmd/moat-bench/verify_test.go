package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeRegistry serves the small images read-only; corrupt maps a digest
// to the wrong bytes it serves instead.
func fakeRegistry(images []smallImage, corrupt map[string][]byte, wrongHeadDigest bool) http.Handler {
	manifests := map[string]*smallImage{}
	blobs := map[string][]byte{}
	for i := range images {
		img := &images[i]
		manifests[img.Tag] = img
		blobs[img.LayerDigest] = img.Layer
		blobs[img.CfgDigest] = img.Config
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/v2/"+repoSmall+"/")
		switch {
		case strings.HasPrefix(rest, "manifests/"):
			img, ok := manifests[strings.TrimPrefix(rest, "manifests/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			d := img.Digest
			if wrongHeadDigest && r.Method == http.MethodHead {
				d = img.CfgDigest
			}
			w.Header().Set("Docker-Content-Digest", d)
			w.Header().Set("Content-Type", mediaManifest)
			w.Header().Set("Content-Length", strconv.Itoa(len(img.Manifest)))
			if r.Method == http.MethodGet {
				_, _ = w.Write(img.Manifest)
			}
		case strings.HasPrefix(rest, "blobs/"):
			d := strings.TrimPrefix(rest, "blobs/")
			b, ok := blobs[d]
			if !ok {
				http.NotFound(w, r)
				return
			}
			if bad, ok := corrupt[d]; ok {
				b = bad
			}
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	})
}

func TestDigestMismatchIsCountedAsAnError(t *testing.T) {
	opts := testOptions()
	opts.N = 10
	b := &Bench{opts: opts, images: newSmallImages(opts.N, 1)}
	ctx := context.Background()

	flipped := append([]byte(nil), b.images[3].Layer...)
	flipped[100] ^= 1
	tests := []struct {
		name       string
		corrupt    map[string][]byte
		wrongHead  bool
		run        func(t *Target) Result
		wantErrors int64
	}{
		{"nothing corrupt", nil, false, func(t *Target) Result { return b.PullSmall(ctx, t) }, 0},
		{"a flipped bit in one layer", map[string][]byte{b.images[3].LayerDigest: flipped}, false,
			func(t *Target) Result { return b.PullSmall(ctx, t) }, 1},
		{"a short config", map[string][]byte{b.images[5].CfgDigest: b.images[5].Config[:10]}, false,
			func(t *Target) Result { return b.PullSmall(ctx, t) }, 1},
		{"HEAD announces the wrong digest", nil, true,
			func(t *Target) Result { return b.HeadManifest(ctx, t, 2) }, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(fakeRegistry(b.images, tt.corrupt, tt.wrongHead))
			defer srv.Close()
			c, err := NewClient(srv.URL, 4, "", "")
			if err != nil {
				t.Fatal(err)
			}
			res := tt.run(&Target{Name: "fake", Client: c, smallSeeded: true})
			switch {
			case tt.wantErrors < 0 && (res.Errors == 0 || int(res.Errors) != res.Ops):
				t.Errorf("%d errors in %d ops, want every op to fail", res.Errors, res.Ops)
			case tt.wantErrors >= 0 && res.Errors != tt.wantErrors:
				t.Errorf("%d errors, want %d (%v)", res.Errors, tt.wantErrors, res.ErrorSamples)
			}
			if res.Errors > 0 && !strings.Contains(res.ErrorSamples[0], "sha256:") {
				t.Errorf("error sample %q does not name the digests", res.ErrorSamples[0])
			}
		})
	}
}

func TestGetVerifiedReportsADigestError(t *testing.T) {
	body := []byte("the real content")
	want := sha256Digest(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("other content!!!"))
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, 1, "", "")
	if err != nil {
		t.Fatal(err)
	}
	err = c.GetBlob(context.Background(), "r", want, int64(len(body)))
	var de *DigestError
	if !errors.As(err, &de) || de.Want != want || de.Got == want {
		t.Errorf("GetBlob of the wrong bytes: %v, want a DigestError", err)
	}
}

func TestLargeBlobVariants(t *testing.T) {
	path := t.TempDir() + "/large.bin"
	if err := writeLargeFile(path, 100, 9); err != nil {
		t.Fatal(err)
	}
	v0, err := openLargeBlob(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v0.Close()
	v1, err := openLargeBlob(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	if v0.Digest == v1.Digest {
		t.Fatal("variants 0 and 1 have the same digest")
	}
	// Reading a variant in parts must give the bytes the digest covers.
	for _, chunk := range []int64{1, 3, 7, 8, 9, 64, 100} {
		var all []byte
		for off := int64(0); off < v1.Size(); off += chunk {
			p := make([]byte, min(chunk, v1.Size()-off))
			if _, err := io.ReadFull(v1.Part(off, int64(len(p))), p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p...)
		}
		if got := sha256Digest(all); got != v1.Digest {
			t.Errorf("chunks of %d: digest %s, want %s", chunk, got, v1.Digest)
		}
	}
}

// testOptions are small settings for the tests.
func testOptions() Options {
	o := QuickOptions()
	o.N = 20
	o.Concurrency = 4
	o.Duration = 200 * time.Millisecond
	o.LargeSize = 3<<20 + 5
	o.ChunkSize = 1 << 20
	o.Tags = 250
	o.TagsSmall = 120
	o.ListReps = 2
	o.PageReps = 2
	return o
}
