package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
)

// start runs a dev-profile moat on a loopback port with data in a temp
// dir (edit may change the config first; ready may prepare the server
// before it starts) and waits until /readyz answers 200.
func start(t *testing.T, edit func(*config.Config), prepare func(*Server)) (*Server, string) {
	t.Helper()
	s := launch(t, edit, nil, prepare)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	base := "http://" + s.Addr().String()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("moat not ready within a minute (last: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newServer builds a dev-profile moat on a loopback port with data in a
// temp dir (edit may change the config, log is discarded when nil),
// without starting it.
func newServer(t *testing.T, edit func(*config.Config), log *slog.Logger) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	if edit != nil {
		edit(&cfg)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// launch starts newServer's moat (prepare runs before Start); shutting
// it down is the caller's.
func launch(t *testing.T, edit func(*config.Config), log *slog.Logger, prepare func(*Server)) *Server {
	t.Helper()
	s := newServer(t, edit, log)
	if prepare != nil {
		prepare(s)
	}
	if err := s.Start(); err != nil {
		_ = s.Shutdown(context.Background())
		t.Fatal(err)
	}
	return s
}

// build makes a server that is not started (no listener, no bootstrap).
func build(t *testing.T, edit func(*config.Config)) *Server {
	t.Helper()
	s := newServer(t, edit, nil)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// pushed is what push sent and got back.
type pushed struct {
	digest    string // the manifest's
	size      int
	requestID string // X-Request-Id of the manifest PUT
}

// push uploads a one-layer OCI image as repo:tag through client at base.
func push(t *testing.T, client *http.Client, base, repo, tag string) pushed {
	t.Helper()
	cfgBlob := []byte("{}")
	layer := []byte("layer of " + repo + ":" + tag)
	for _, b := range [][]byte{cfgBlob, layer} {
		resp := do(t, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+digestOf(b), "application/octet-stream", b)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("blob upload: %s", resp.Status)
		}
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digestOf(cfgBlob), "size": len(cfgBlob)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digestOf(layer), "size": len(layer)}},
	})
	resp := do(t, client, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", manifest)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("manifest PUT: %s", resp.Status)
	}
	return pushed{digest: digestOf(manifest), size: len(manifest), requestID: resp.Header.Get("X-Request-Id")}
}

func do(t *testing.T, client *http.Client, method, url, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("sha256:%s", hex.EncodeToString(sum[:]))
}
