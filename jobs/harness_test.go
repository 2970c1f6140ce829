package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var ctx = context.Background()

// harness is a runner over real storage and the in-process registry
// handler, as the server wires it (server/server.go), without listeners.
type harness struct {
	t       testing.TB
	db      *storage.DB
	blobs   *storage.DiskBlobs
	uploads *storage.DiskUploads
	dir     *auth.Directory
	guard   *auth.Guard
	reg     http.Handler
	runner  *Runner
	nextRA  int
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	tmp := t.TempDir()
	db, err := storage.OpenDB(filepath.Join(tmp, "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := storage.NewDiskBlobs(tmp, db)
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := storage.NewDiskUploads(tmp, blobs, db)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.OpenKeyRing(filepath.Join(tmp, "keys"), auth.RefreshTokenTTL+auth.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.OpenDirectory(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := &harness{t: t, db: db, blobs: blobs, uploads: uploads, dir: dir}
	h.guard = auth.NewGuard(dir, keys, auth.GuardOptions{Service: func() string { return "jobs.test" }})
	h.reg = registry.New(db, blobs, uploads, h.guard.InternalAuthorizer(), registry.Options{Logger: log})
	h.runner = New(Options{Guard: h.guard, Local: h.local, Catalog: db, Logger: log, Version: "test"})
	t.Cleanup(h.runner.Close)
	return h
}

// local is Options.Local: requests served by the registry handler, acting
// as p.
func (h *harness) local(p auth.Principal) http.RoundTripper { return handlerTransport{h.reg, p} }

type handlerTransport struct {
	h http.Handler
	p auth.Principal
}

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(auth.WithPrincipal(r.Context(), t.p))
	if r2.Body == nil {
		r2.Body = http.NoBody
	}
	r2.RequestURI = r.URL.RequestURI()
	r2.RemoteAddr = "pipe"
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r2)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// tasksService creates a tasks instance with a system-assigned identity
// holding role at scope ("" for none) and returns the identity's name.
func (h *harness) tasksService(name, role, scope string) string {
	h.t.Helper()
	svc, _, err := h.dir.PutService(ctx, auth.Service{Name: name, Type: auth.ServiceTasks, Identity: auth.ServiceIdentity{Type: auth.IdentitySystem}})
	h.must(err)
	if role != "" {
		h.nextRA++
		_, _, err = h.dir.PutRoleAssignment(ctx, auth.RoleAssignment{ID: fmt.Sprintf("ra-%d", h.nextRA), Principal: svc.Identity.PrincipalName, Role: role, Scope: scope})
		h.must(err)
	}
	return svc.Identity.PrincipalName
}

// putTask checks and stores a task.
func (h *harness) putTask(task auth.Task) {
	h.t.Helper()
	task.Enabled = !strings.HasPrefix(task.Name, "off")
	h.must(CheckTask(&task))
	_, _, err := h.dir.PutTask(ctx, task)
	h.must(err)
}

// send makes a request to the registry as moat's importer.
func (h *harness) send(method, path, contentType string, body []byte) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+localHost+path, bytes.NewReader(body))
	h.must(err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := handlerTransport{h.reg, auth.Importer}.RoundTrip(req)
	h.must(err)
	return resp
}

func (h *harness) pushBlob(repo string, b []byte) v1.Descriptor {
	h.t.Helper()
	d := digest.FromBytes(b)
	resp := h.send(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("start upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp = h.send(http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", b)
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("finish upload: %s %s", resp.Status, body)
	}
	return v1.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(b))}
}

// pushManifest stores a manifest under ref, or by digest when ref is "".
func (h *harness) pushManifest(repo, ref, mediaType string, b []byte) v1.Descriptor {
	h.t.Helper()
	d := digest.FromBytes(b)
	if ref == "" {
		ref = d.String()
	}
	resp := h.send(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, mediaType, b)
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("PUT manifest %s:%s: %s %s", repo, ref, resp.Status, body)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// tag points another tag at a manifest.
func (h *harness) tag(repo, tag string, d v1.Descriptor) {
	h.t.Helper()
	resp := h.send(http.MethodGet, "/v2/"+repo+"/manifests/"+d.Digest.String(), "", nil)
	body, _ := io.ReadAll(resp.Body)
	h.pushManifest(repo, tag, d.MediaType, body)
}

var emptyJSON = v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: digest.FromBytes([]byte("{}")), Size: 2}

// image pushes a one-layer image whose layer is content, tagged tag (or
// by digest), with subject when set (a referrer).
func (h *harness) image(repo, tag, content string, subject *v1.Descriptor) v1.Descriptor {
	h.t.Helper()
	h.pushBlob(repo, []byte("{}"))
	layer := h.pushBlob(repo, []byte(content))
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    emptyJSON,
		Layers:    []v1.Descriptor{layer},
		Subject:   subject,
	}
	if subject != nil {
		m.ArtifactType = "application/vnd.example.sig"
	}
	b, err := json.Marshal(m)
	h.must(err)
	return h.pushManifest(repo, tag, v1.MediaTypeImageManifest, b)
}

// index pushes an index of children, tagged tag.
func (h *harness) index(repo, tag string, children ...v1.Descriptor) v1.Descriptor {
	h.t.Helper()
	b, err := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: children})
	h.must(err)
	return h.pushManifest(repo, tag, v1.MediaTypeImageIndex, b)
}

// tags lists a repository's tags, sorted.
func (h *harness) tags(repo string) []string {
	h.t.Helper()
	list, err := h.db.TagDetails(ctx, repo)
	h.must(err)
	var out []string
	for _, tg := range list {
		out = append(out, tg.Name)
	}
	return out
}

// manifests is the set of a repository's manifests.
func (h *harness) manifests(repo string) map[digest.Digest]bool {
	h.t.Helper()
	list, err := h.db.ManifestDigests(ctx, repo)
	h.must(err)
	out := map[digest.Digest]bool{}
	for _, d := range list {
		out[d] = true
	}
	return out
}

// wait polls an operation until it ends.
func (h *harness) wait(id string) Operation {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		op, ok := h.runner.Operation(id)
		if !ok {
			h.t.Fatalf("operation %s is gone", id)
		}
		if op.Status != StatusRunning {
			return op
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("operation %s still running after 30s: %+v", id, op)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run runs a task and waits for its end.
func (h *harness) run(service, task string) Operation {
	h.t.Helper()
	op, err := h.runner.RunTask(ctx, service, task)
	h.must(err)
	return h.wait(op.ID)
}
