package jobs

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/registry"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// remote serves the registry of h (another harness: another registry's
// storage) over HTTP on 127.0.0.1 with authz, and returns its host.
func (h *harness) remote(authz registry.Authorizer) string {
	h.t.Helper()
	reg := registry.New(h.db, h.blobs, h.uploads, authz, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(reg)
	h.t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

var openAuthz = registry.AuthorizerFunc(func(*http.Request, []auth.Scope) (auth.Grant, error) { return auth.AllowAll{}, nil })

// TestImport: an index, its platform images and a referrer of the index
// arrive with their digests; the progress counts every node; the import
// reads as moat's importer (its User-Agent).
func TestImport(t *testing.T) {
	src, h := newHarness(t), newHarness(t)
	var agents atomic.Value
	host := src.remote(registry.AuthorizerFunc(func(r *http.Request, need []auth.Scope) (auth.Grant, error) {
		agents.Store(r.UserAgent())
		return auth.AllowAll{}, nil
	}))
	amd, arm := src.image("app", "", "amd64", nil), src.image("app", "", "arm64", nil)
	idx := src.index("app", "multi", amd, arm)
	sig := src.image("app", "", "signature", &idx)

	op, err := h.runner.Import(ImportRequest{Source: host + "/app:multi", Target: "mirror/app:multi", PlainHTTP: true})
	h.must(err)
	if op.Kind != "import" || op.Source != host+"/app:multi" || op.Target != "mirror/app:multi" {
		t.Errorf("operation %+v", op)
	}
	op = h.wait(op.ID)
	if op.Status != StatusSucceeded || op.Digest != idx.Digest.String() {
		t.Fatalf("import: %s %q %s, want Succeeded %s", op.Status, op.Error, op.Digest, idx.Digest)
	}
	if ua, _ := agents.Load().(string); !strings.HasPrefix(ua, auth.ImporterUserAgent) {
		t.Errorf("the import read the source as %q, want %s…", ua, auth.ImporterUserAgent)
	}
	left := h.manifests("mirror/app")
	for name, d := range map[string]v1.Descriptor{"index": idx, "amd64": amd, "arm64": arm, "signature": sig} {
		if !left[d.Digest] {
			t.Errorf("the %s %s did not arrive", name, d.Digest)
		}
	}
	if got := h.tags("mirror/app"); len(got) != 1 || got[0] != "multi" {
		t.Errorf("tags %q, want [multi]", got)
	}
	// index, two images, a signature; one shared empty config and three
	// layers.
	if p := op.Progress; p.Blobs != 8 || p.TotalBlobs != 8 || p.Bytes != p.TotalBytes || p.Bytes == 0 {
		t.Errorf("progress %+v, want 8 of 8 nodes and all bytes", p)
	}

	// Again: everything is there already, and counts as copied.
	op, err = h.runner.Import(ImportRequest{Source: host + "/app:multi", Target: "mirror/app:again", PlainHTTP: true})
	h.must(err)
	if op = h.wait(op.ID); op.Status != StatusSucceeded || op.Progress.Blobs != op.Progress.TotalBlobs {
		t.Errorf("second import: %+v", op)
	}
}

// TestImportRefused: a missing tag or a refusing source fail with a
// readable error and write nothing; a HEAD's refusal, which has no body,
// is reported with the reason the source gives on GET.
func TestImportRefused(t *testing.T) {
	src, h := newHarness(t), newHarness(t)
	open := src.remote(openAuthz)
	src.image("app", "1", "content", nil)
	closed := src.remote(registry.AuthorizerFunc(func(*http.Request, []auth.Scope) (auth.Grant, error) {
		return nil, &errcode.Error{Code: errcode.Denied, Message: "exports from this registry are disabled (policies.exportPolicy.status)"}
	}))

	for _, tc := range []struct {
		name, source, want string
	}{
		{"missing tag", open + "/app:nope", "app:nope: not found"},
		{"missing repository", open + "/nothing:1", "not found"},
		{"export refused", closed + "/app:1", "403 DENIED: exports from this registry are disabled"},
		{"nobody listening", "127.0.0.1:1/app:1", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, err := h.runner.Import(ImportRequest{Source: tc.source, Target: "half/app:1", PlainHTTP: true})
			h.must(err)
			op = h.wait(op.ID)
			if op.Status != StatusFailed || !strings.Contains(op.Error, tc.want) {
				t.Errorf("import: %s %q, want Failed with %q", op.Status, op.Error, tc.want)
			}
			if list, _ := h.db.ManifestDigests(ctx, "half/app"); len(list) != 0 {
				t.Errorf("a failed import left manifests %v", list)
			}
		})
	}

	for _, tc := range []struct{ name, source, target, want string }{
		{"source without registry", "app:1", "app:1", "source: \"app:1\" names no registry"},
		{"target in another registry", open + "/app:1", "registry.example.com/app:1", "target: \"registry.example.com/app:1\" names a registry"},
		{"target digest", open + "/app:1", "app@" + sha, "target: name a tag"},
		{"bad target", open + "/app:1", "App:1", "target:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.runner.Import(ImportRequest{Source: tc.source, Target: tc.target})
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Import = %v, want an InvalidError with %q", err, tc.want)
			}
		})
	}
}

// TestCopyTaskRoles: a copy task inside this registry acts as its
// instance's identity: without Push on the target it fails and says
// which identity lacks what; with it, it copies. A task of an instance
// without a system-assigned identity cannot run.
func TestCopyTaskRoles(t *testing.T) {
	h := newHarness(t)
	id := h.tasksService("nightly", "AcrPull", "repositories/app")
	img := h.image("app", "1", "content", nil)
	h.putTask(auth.Task{Service: "nightly", Name: "mirror", Type: auth.TaskCopy, Copy: &auth.CopyTask{Source: "app:1", Target: "mirror/app:1"}})
	op := h.run("nightly", "mirror")
	if op.Status != StatusFailed || !strings.Contains(op.Error, "this registry: mirror/app") || !strings.Contains(op.Error, "403") || strings.Contains(op.Error, localHost) {
		t.Errorf("copy without Push on the target: %s %q, want a 403 naming this registry's mirror/app (not %s)", op.Status, op.Error, localHost)
	}
	if list, _ := h.db.ManifestDigests(ctx, "mirror/app"); len(list) != 0 {
		t.Errorf("a refused copy wrote %v", list)
	}

	h.nextRA++
	_, _, err := h.dir.PutRoleAssignment(ctx, auth.RoleAssignment{ID: "push", Principal: id, Role: "AcrPush", Scope: "repositories/mirror/*"})
	h.must(err)
	if op := h.run("nightly", "mirror"); op.Status != StatusSucceeded || op.Digest != img.Digest.String() {
		t.Errorf("copy with Push: %s %q %s", op.Status, op.Error, op.Digest)
	}

	if _, err := h.runner.RunTask(ctx, "nightly", "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("RunTask of a missing task: %v, want ErrNotFound", err)
	}
	_, _, err = h.dir.PutService(ctx, auth.Service{Name: "bare", Type: auth.ServiceTasks, Identity: auth.ServiceIdentity{Type: auth.IdentityNone}})
	h.must(err)
	h.putTask(auth.Task{Service: "bare", Name: "mirror", Type: auth.TaskCopy, Copy: &auth.CopyTask{Source: "app:1", Target: "mirror/app:2"}})
	var inv *InvalidError
	if _, err := h.runner.RunTask(ctx, "bare", "mirror"); !errors.As(err, &inv) || !strings.Contains(err.Error(), "no system-assigned identity") {
		t.Errorf("RunTask for an instance without identity: %v", err)
	}
}
