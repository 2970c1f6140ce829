package registry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
)

// FuzzRequest sends any request net/http would accept — method, target
// with its query, headers, body — to the /v2 handler over real stores:
// it never panics or answers 5xx, and every error answer (but HEAD's) is
// in the OCI error shape, in valid UTF-8.
func FuzzRequest(f *testing.F) {
	dir := f.TempDir()
	db, err := storage.OpenDB(filepath.Join(dir, "meta.db"), storage.DBOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	blobs, err := storage.NewDiskBlobs(dir, db)
	if err != nil {
		f.Fatal(err)
	}
	uploads, err := storage.NewDiskUploads(dir, blobs, db)
	if err != nil {
		f.Fatal(err)
	}
	reg := registry.New(db, blobs, uploads, allowAll, registry.Options{Logger: slog.New(slog.DiscardHandler), MaxManifestSize: 64 << 10})
	serve := func(raw []byte) *httptest.ResponseRecorder {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return nil // net/http refuses it before any handler
		}
		w := httptest.NewRecorder()
		reg.ServeHTTP(w, req)
		return w
	}
	request := func(method, target, header string, body []byte) []byte {
		var b bytes.Buffer
		b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: registry.test\r\n")
		for h := range strings.SplitSeq(header, "\n") {
			if h != "" {
				b.WriteString(h + "\r\n")
			}
		}
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		b.Write(body)
		return b.Bytes()
	}
	layer := []byte("layer")
	cfg := []byte("{}")
	ld, cd := digest.FromBytes(layer), digest.FromBytes(cfg)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}},
	})
	md := digest.FromBytes(manifest)
	mt := "Content-Type: application/vnd.oci.image.manifest.v1+json"
	for _, b := range [][]byte{layer, cfg} {
		if w := serve(request("POST", "/v2/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), "", b)); w.Code != http.StatusCreated {
			f.Fatalf("seed blob: %d %s", w.Code, w.Body)
		}
	}
	if w := serve(request("PUT", "/v2/app/manifests/v1", mt, manifest)); w.Code != http.StatusCreated {
		f.Fatalf("seed manifest: %d %s", w.Code, w.Body)
	}
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md.String() + `","size":` + strconv.Itoa(len(manifest)) + `}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md.String() + `","size":1}}`)
	for _, s := range []struct {
		method, target, header string
		body                   []byte
	}{
		{"GET", "/v2/", "", nil},
		{"GET", "/v2/_catalog?n=1&last=app", "", nil},
		{"GET", "/v2/_catalog?n=-1", "", nil},
		{"GET", "/v2/app/tags/list?n=99999999999999999999&last=%ff", "", nil},
		{"GET", "/v2/app/manifests/v1", "Accept: application/vnd.oci.image.index.v1+json", nil},
		{"HEAD", "/v2/app/manifests/" + md.String(), "If-None-Match: \"" + md.String() + "\"", nil},
		{"PUT", "/v2/app/manifests/v2?tag=v3&tag=v4", "Content-Type: application/vnd.oci.image.index.v1+json", index},
		{"PUT", "/v2/app/manifests/" + md.String(), mt, manifest},
		{"DELETE", "/v2/app/manifests/v1", "", nil},
		{"GET", "/v2/app/blobs/" + ld.String(), "Range: bytes=1-2,0-0", nil},
		{"GET", "/v2/app/blobs/" + ld.String(), "Range: bytes=99-", nil},
		{"DELETE", "/v2/app/blobs/" + ld.String(), "", nil},
		{"POST", "/v2/app/blobs/uploads/", "", nil},
		{"POST", "/v2/other/blobs/uploads/?mount=" + ld.String() + "&from=app", "", nil},
		{"POST", "/v2/other/blobs/uploads/?mount=" + ld.String(), "", nil},
		{"POST", "/v2/app/blobs/uploads/?digest=sha256:" + strings.Repeat("0", 64), "", []byte("x")},
		{"PATCH", "/v2/app/blobs/uploads/" + strings.Repeat("a", 32), "Content-Range: 0-0", []byte("x")},
		{"PUT", "/v2/app/blobs/uploads/" + strings.Repeat("a", 32) + "?digest=" + ld.String(), "", layer},
		{"GET", "/v2/app/referrers/" + md.String() + "?artifactType=application%2Fx", "", nil},
		{"OPTIONS", "/v2/app/manifests/v1", "", nil},
		{"GET", "/v2/app/manifests/%2e%2e", "", nil},
		{"PUT", "/v2/a/manifests/v1", "Content-Type: application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1}`)},
	} {
		f.Add(s.method, s.target, s.header, s.body)
	}
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte) {
		raw := request(method, target, header, body)
		w := serve(raw)
		if w == nil {
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%q answered %d %s", raw, w.Code, w.Body)
		}
		if w.Code < 400 || method == http.MethodHead {
			return
		}
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" || e.Errors[0].Message == "" {
			t.Fatalf("%q: %d answer not in the OCI error shape: %q", raw, w.Code, w.Body)
		}
		if !utf8.Valid(w.Body.Bytes()) {
			t.Fatalf("%q: %d answer is not UTF-8: %q", raw, w.Code, w.Body)
		}
	})
}
