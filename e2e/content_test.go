package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// token is a random hex string that makes a test's content its own.
func token(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// fixedTime stamps tar entries so the same files give the same tar.
var fixedTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// rootfsTar is an uncompressed tar of files (slash path → content), with
// an entry for every parent directory, in sorted order.
func rootfsTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	dirs := map[string]bool{}
	for _, name := range names {
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			parents = append(parents, d)
		}
		for _, d := range slices.Backward(parents) {
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: fixedTime}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
		}
		body := files[name]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: fixedTime}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarFiles reads the regular files of a tar stream.
func tarFiles(t testing.TB, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		var body bytes.Buffer
		if _, err := body.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		files[path.Clean(hdr.Name)] = body.String()
	}
}

// gzipBytes compresses b.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeOCILayout writes an OCI image layout in dir holding one image
// tagged tag: a config for platform and one gzip layer with files. It
// returns the manifest's descriptor. Tools read such a layout as
// oci:DIR:TAG (skopeo), ocidir://DIR:TAG (regctl) or a path (crane push).
func writeOCILayout(t testing.TB, dir, tag string, platform v1.Platform, files map[string]string) v1.Descriptor {
	t.Helper()
	layerTar := rootfsTar(t, files)
	layer := gzipBytes(t, layerTar)
	config := mustJSON(t, v1.Image{
		Created:  &fixedTime,
		Platform: platform,
		Config:   v1.ImageConfig{Cmd: []string{"/bin/true"}},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar)}},
	})
	manifest := mustJSON(t, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    writeBlob(t, dir, v1.MediaTypeImageConfig, config),
		Layers:    []v1.Descriptor{writeBlob(t, dir, v1.MediaTypeImageLayerGzip, layer)},
	})
	desc := writeBlob(t, dir, v1.MediaTypeImageManifest, manifest)
	desc.Platform = &platform
	desc.Annotations = map[string]string{v1.AnnotationRefName: tag}
	index := mustJSON(t, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{desc},
	})
	writeFile(t, filepath.Join(dir, v1.ImageIndexFile), index)
	writeFile(t, filepath.Join(dir, v1.ImageLayoutFile), mustJSON(t, v1.ImageLayout{Version: v1.ImageLayoutVersion}))
	return desc
}

// writeBlob stores b under dir/blobs/sha256 and describes it.
func writeBlob(t testing.TB, dir, mediaType string, b []byte) v1.Descriptor {
	t.Helper()
	d := digest.FromBytes(b)
	writeFile(t, filepath.Join(dir, v1.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), b)
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// layoutDigest is the digest of the manifest tagged tag in the OCI image
// layout in dir (the only manifest when tag is empty).
func layoutDigest(t testing.TB, dir, tag string) digest.Digest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, v1.ImageIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var index v1.Index
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatalf("%s: %v", v1.ImageIndexFile, err)
	}
	for _, m := range index.Manifests {
		if (tag == "" && len(index.Manifests) == 1) || m.Annotations[v1.AnnotationRefName] == tag {
			return m.Digest
		}
	}
	t.Fatalf("%s: no manifest tagged %q in %s", dir, tag, b)
	return ""
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
