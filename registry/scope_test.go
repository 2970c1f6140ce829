package registry_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
)

// pullOnly grants pull on the repositories it names and nothing else.
type pullOnly map[string]bool

func (g pullOnly) Allows(repo string, a auth.Action) bool { return g[repo] && a == auth.Pull }

func (g pullOnly) Lists(repo string) bool { return g[repo] }

func (g pullOnly) Actor() string { return "pull-only" }

func (g pullOnly) Redirectable() bool { return false }

// TestScopes pins the scopes each request asks the Authorizer for, and
// that a denial is answered before the handler runs.
func TestScopes(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.OpenDB(filepath.Join(dir, "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := storage.NewDiskBlobs(dir, db)
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := storage.NewDiskUploads(dir, blobs, db)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []auth.Scope
	deny := false
	var grant auth.Grant = auth.AllowAll{}
	authz := registry.AuthorizerFunc(func(_ *http.Request, need []auth.Scope) (auth.Grant, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked[:0], need...)
		if deny {
			return nil, errcode.Denied.New("")
		}
		return grant, nil
	})
	srv := httptest.NewServer(registry.New(db, blobs, uploads, authz, registry.Options{Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()

	do := func(t *testing.T, method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	repo := auth.Repository
	optional := func(s auth.Scope) auth.Scope { s.Optional = true; return s }
	upload := "/v2/a/blobs/uploads/" + strings.Repeat("0", 32)
	tests := []struct {
		method, path string
		want         []auth.Scope
	}{
		{http.MethodGet, "/v2/", nil},
		{http.MethodGet, "/v2/_catalog", []auth.Scope{auth.Catalog()}},
		{http.MethodGet, "/v2/a/b/tags/list", []auth.Scope{repo("a/b", auth.List)}},
		{http.MethodGet, "/v2/a/manifests/v1", []auth.Scope{repo("a", auth.Pull)}},
		{http.MethodHead, "/v2/a/manifests/v1", []auth.Scope{repo("a", auth.Pull)}},
		{http.MethodPut, "/v2/a/manifests/v1", []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodDelete, "/v2/a/manifests/v1", []auth.Scope{repo("a", auth.Delete)}},
		{http.MethodGet, "/v2/a/blobs/" + dg, []auth.Scope{repo("a", auth.Pull)}},
		{http.MethodDelete, "/v2/a/blobs/" + dg, []auth.Scope{repo("a", auth.Delete)}},
		{http.MethodPost, "/v2/a/blobs/uploads/", []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodPost, "/v2/a/blobs/uploads/?mount=" + dg + "&from=b/c", []auth.Scope{repo("a", auth.Pull|auth.Push), optional(repo("b/c", auth.Pull))}},
		{http.MethodPost, "/v2/a/blobs/uploads/?mount=" + dg + "&from=a", []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodPost, "/v2/a/blobs/uploads/?mount=" + dg, []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodPatch, upload, []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodPut, upload + "?digest=" + dg, []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodDelete, upload, []auth.Scope{repo("a", auth.Pull|auth.Push)}},
		{http.MethodGet, "/v2/a/referrers/" + dg, []auth.Scope{repo("a", auth.Pull)}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			mu.Lock()
			asked, deny = nil, false
			mu.Unlock()
			do(t, tt.method, tt.path)
			mu.Lock()
			got := append([]auth.Scope(nil), asked...)
			deny = true
			mu.Unlock()
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("asked for %+v, want %+v", got, tt.want)
			}
			if resp := do(t, tt.method, tt.path); resp.StatusCode != http.StatusForbidden {
				t.Errorf("denied request answered %d", resp.StatusCode)
			}
		})
	}

	t.Run("mount only from a repository the caller may pull", func(t *testing.T) {
		mu.Lock()
		deny, grant = false, auth.AllowAll{}
		mu.Unlock()
		d := pushBlobDirect(t, srv, "src", layerA)
		mu.Lock()
		grant = pullOnly{"visible": true}
		mu.Unlock()
		if resp := do(t, http.MethodPost, "/v2/dst/blobs/uploads/?mount="+d+"&from=src"); resp.StatusCode != http.StatusAccepted {
			t.Errorf("mount from a repository without pull: %d, want 202", resp.StatusCode)
		}
		if resp := do(t, http.MethodPost, "/v2/dst/blobs/uploads/?mount="+d); resp.StatusCode != http.StatusAccepted {
			t.Errorf("mount without from, source not pullable: %d, want 202", resp.StatusCode)
		}
		mu.Lock()
		grant = pullOnly{"src": true}
		mu.Unlock()
		if resp := do(t, http.MethodPost, "/v2/dst/blobs/uploads/?mount="+d); resp.StatusCode != http.StatusCreated {
			t.Errorf("mount without from, source pullable: %d, want 201", resp.StatusCode)
		}
	})

	t.Run("catalog lists what the caller may pull", func(t *testing.T) {
		mu.Lock()
		deny, grant = false, pullOnly{"dst": true}
		mu.Unlock()
		resp, err := srv.Client().Get(srv.URL + "/v2/_catalog")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != `{"repositories":["dst"]}` {
			t.Errorf("catalog %s", body)
		}
	})
}

func pushBlobDirect(t *testing.T, srv *httptest.Server, repo, content string) string {
	t.Helper()
	d := digestOf(content)
	resp, err := srv.Client().Post(srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push to %s: %d", repo, resp.StatusCode)
	}
	return d
}
