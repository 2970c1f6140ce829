package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Helpers of the import, task and gc tests: a second server to import
// from, and pushing images with plain HTTP requests.

// source is the second server the import tests read from: dev mode, so
// loopback callers push and pull anonymously. Started on first use, and
// stopped by TestMain with the shared server.
var source struct {
	once sync.Once
	ts   *testServer
	err  error
}

func sourceServer(t *testing.T) *testServer {
	t.Helper()
	sharedServer(t) // so that its stop exists, and chains to this one's
	source.once.Do(func() {
		dir, err := os.MkdirTemp("", "moat-cli-source-")
		if err != nil {
			source.err = err
			return
		}
		var stop func()
		source.ts, stop, source.err = launchDev(dir)
		if source.err != nil {
			os.RemoveAll(dir)
			return
		}
		prev := shared.stop
		shared.stop = func() {
			stop()
			os.RemoveAll(dir)
			prev()
		}
	})
	if source.err != nil {
		t.Fatal(source.err)
	}
	return source.ts
}

// launchDev starts moat in dev mode on a loopback port.
func launchDev(dir string) (*testServer, func(), error) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = dir
	cfg.Dev = true
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	ts := &testServer{url: "http://" + srv.Addr().String()}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(ts.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ts, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("moat at %s not ready within a minute (last: %v)", ts.url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// host is the server's host:port, as an image reference names it.
func (ts *testServer) host() string { return strings.TrimPrefix(ts.url, "http://") }

// registryClient sends /v2 requests, as the admin when admin is set
// (anonymously otherwise: a dev server lets loopback callers in).
type registryClient struct {
	t     *testing.T
	base  string
	admin bool
}

func (ts *testServer) registry(t *testing.T, admin bool) *registryClient {
	return &registryClient{t: t, base: ts.url, admin: admin}
}

func (rc *registryClient) do(method, target, contentType string, body []byte) *http.Response {
	rc.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = rc.base + target
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		rc.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if rc.admin {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp
}

// expect sends a request and fails the test unless it gets status.
func (rc *registryClient) expect(status int, method, target, contentType string, body []byte) *http.Response {
	rc.t.Helper()
	resp := rc.do(method, target, contentType, body)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		rc.t.Fatalf("%s %s: %d %s, want %d", method, target, resp.StatusCode, b, status)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// pushBlob uploads a blob (POST, then PUT with the digest).
func (rc *registryClient) pushBlob(repo string, data []byte) ocispec.Descriptor {
	rc.t.Helper()
	resp := rc.expect(http.StatusAccepted, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		rc.t.Fatal(err)
	}
	base, _ := url.Parse(rc.base)
	loc = base.ResolveReference(loc)
	d := digest.FromBytes(data)
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	rc.expect(http.StatusCreated, http.MethodPut, loc.String(), "application/octet-stream", data)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(data))}
}

// pushedImage is an image a test pushed: its manifest digest, and the
// bytes and blobs (manifest, config, layers) a copy of it moves.
type pushedImage struct {
	digest digest.Digest
	bytes  int64
	blobs  int
}

// pushImage pushes an image with the given layers and tags it; note
// makes the config, and so the manifest digest, unique.
func (rc *registryClient) pushImage(repo, tag, note string, layers ...[]byte) pushedImage {
	rc.t.Helper()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"note": note}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	img := pushedImage{blobs: 2}
	cd := rc.pushBlob(repo, cfg)
	cd.MediaType = ocispec.MediaTypeImageConfig
	img.bytes += cd.Size
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{}}
	for _, l := range layers {
		ld := rc.pushBlob(repo, l)
		m.Layers = append(m.Layers, ld)
		img.bytes += ld.Size
		img.blobs++
	}
	body, _ := json.Marshal(m)
	rc.expect(http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, ocispec.MediaTypeImageManifest, body)
	img.digest = digest.FromBytes(body)
	img.bytes += int64(len(body))
	return img
}

// manifestDigest is the digest the registry serves for repo:ref, or ""
// when it answers 404.
func (rc *registryClient) manifestDigest(repo, ref string) digest.Digest {
	rc.t.Helper()
	req, err := http.NewRequest(http.MethodHead, rc.base+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	if rc.admin {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return digest.Digest(resp.Header.Get("Docker-Content-Digest"))
	case http.StatusNotFound:
		return ""
	}
	rc.t.Fatalf("HEAD %s:%s: %d", repo, ref, resp.StatusCode)
	return ""
}

// tags lists a repository's tags, sorted (none when it does not exist).
func (rc *registryClient) tags(repo string) []string {
	rc.t.Helper()
	resp := rc.do(http.MethodGet, "/v2/"+repo+"/tags/list", "", nil)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
		rc.t.Fatalf("GET /v2/%s/tags/list: %d", repo, resp.StatusCode)
	}
	sort.Strings(list.Tags)
	return list.Tags
}

// layer is n bytes of test content, distinct per seed.
func layer(seed string, n int) []byte {
	return bytes.Repeat([]byte(seed), n/len(seed)+1)[:n]
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
