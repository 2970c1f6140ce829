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

// TestImportSourceHost: the source's registry host is checked when the
// import is asked for, and user info in it is refused without starting an
// operation (whose source Readers see) or echoing the password.
func TestImportSourceHost(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ name, source, want string }{
		{"user and password", "user:hunter2@127.0.0.1:1/app:1", "source: the registry host holds user info"},
		{"token", "hunter2@localhost:1/app:1", "holds user info"},
		{"bad host", "regi stry.example.com/app:1", "names no valid registry host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, err := h.runner.Import(ImportRequest{Source: tc.source, Target: "app:1"})
			var inv *InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import = %+v, %v; want an InvalidError with %q", op, err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestRemoteClientRefusesMetadata: imports and copies connect directly
// (no proxy, whose address alone the dial check would see) and never to
// link-local or cloud metadata addresses, AWS's IPv6 one included. The
// dial check is called as the dialer would call it, before connecting:
// the test sends nothing.
func TestRemoteClientRefusesMetadata(t *testing.T) {
	if tr := remoteHTTPClient().Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the remote transport uses a proxy")
	}
	control := remoteDialer().Control
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1]:443", "[fd00:ec2::254]:80", "[fd00:ec2::254%eth0]:80", "[::ffff:169.254.169.254]:80"} {
		if err := control("tcp", addr, nil); err == nil || !strings.Contains(err.Error(), "refusing to connect") {
			t.Errorf("dial check of %s: %v, want a refusal", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:5000", "[::1]:5000", "203.0.113.7:443", "[fd00:ec2:0:1::254]:80", "[2001:db8::1]:443"} {
		if err := control("tcp", addr, nil); err != nil {
			t.Errorf("dial check of %s: %v, want none", addr, err)
		}
	}
}

// federationHost serves /v2/ with a Bearer challenge naming service, and
// counts POSTs to /oauth2/exchange; other paths answer 404.
func federationHost(t *testing.T, service func(host string) string) (host string, exchanges *atomic.Int32) {
	t.Helper()
	exchanges = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/oauth2/token",service="`+service(r.Host)+`"`)
			w.WriteHeader(http.StatusUnauthorized)
		case "/oauth2/exchange":
			exchanges.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"refresh_token":"from-the-exchange"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), exchanges
}

// TestCopyTaskFederationAudience: a copy task signs its workload token
// only for the registry it contacts: a registry whose challenge names
// another service (here this registry's own, "jobs.test") gets no token
// and the run fails naming both; one naming its own host gets the
// exchange (TestSameHost: case and default ports).
func TestCopyTaskFederationAudience(t *testing.T) {
	for _, tc := range []struct {
		name    string
		service func(host string) string
		want    string // part of the run's error; "" when it must exchange
	}{
		{"this registry's service", func(string) string { return "jobs.test" }, `token service "jobs.test" is not `},
		{"another host", func(string) string { return "registry.example.com" }, `token service "registry.example.com" is not `},
		{"its own host", func(host string) string { return host }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.tasksService("nightly", "AcrPush", "/")
			host, exchanges := federationHost(t, tc.service)
			h.putTask(auth.Task{Service: "nightly", Name: "pull", Type: auth.TaskCopy,
				Copy: &auth.CopyTask{Source: host + "/app:1", Target: "mirror/app:1", PlainHTTP: true}})
			op := h.run("nightly", "pull")
			if op.Status != StatusFailed {
				t.Fatalf("run: %s, want Failed (the source has no image)", op.Status)
			}
			if tc.want == "" {
				if exchanges.Load() != 1 || strings.Contains(op.Error, "token service") {
					t.Errorf("exchanges %d, error %q: want one exchange", exchanges.Load(), op.Error)
				}
				return
			}
			if exchanges.Load() != 0 {
				t.Errorf("the task sent its token to %s, whose challenge names another service", host)
			}
			if !strings.Contains(op.Error, tc.want) || !strings.Contains(op.Error, host) {
				t.Errorf("error %q, want %q and the host %s", op.Error, tc.want, host)
			}
		})
	}
}

// TestCopyTaskOpenSource: a source registry that answers /v2/ with 200
// needs no credentials: the copy runs without federation.
func TestCopyTaskOpenSource(t *testing.T) {
	src, h := newHarness(t), newHarness(t)
	host := src.remote(openAuthz)
	img := src.image("app", "1", "content", nil)
	h.tasksService("nightly", "AcrPush", "/")
	h.putTask(auth.Task{Service: "nightly", Name: "pull", Type: auth.TaskCopy,
		Copy: &auth.CopyTask{Source: host + "/app:1", Target: "mirror/app:1", PlainHTTP: true}})
	if op := h.run("nightly", "pull"); op.Status != StatusSucceeded || op.Digest != img.Digest.String() {
		t.Errorf("copy from an open registry: %s %q %s", op.Status, op.Error, op.Digest)
	}
}

func TestSameHost(t *testing.T) {
	for _, tc := range []struct {
		service, host string
		plainHTTP     bool
		want          bool
	}{
		{"registry.example.com", "registry.example.com", false, true},
		{"Registry.Example.com", "registry.example.COM", false, true},
		{"registry.example.com:443", "registry.example.com", false, true},
		{"registry.example.com", "registry.example.com:443", false, true},
		{"registry.example.com:80", "registry.example.com", true, true},
		{"registry.example.com:80", "registry.example.com", false, false},
		{"registry.example.com:443", "registry.example.com", true, false},
		{"127.0.0.3:5000", "127.0.0.3:5000", true, true},
		{"127.0.0.3:5001", "127.0.0.3:5000", true, false},
		{"[::1]:443", "[::1]", false, true},
		{"registry.example.com:8443", "registry.example.com", false, false},
		{"jobs.test", "registry.example.com", false, false},
		{"", "registry.example.com", false, false},
	} {
		if got := sameHost(tc.service, tc.host, tc.plainHTTP); got != tc.want {
			t.Errorf("sameHost(%q, %q, plainHTTP %v) = %v, want %v", tc.service, tc.host, tc.plainHTTP, got, tc.want)
		}
	}
}

// TestCopyTaskStoredUserInfo: a copy task stored before sources were
// checked, whose source carries a password, fails without showing it
// and without contacting anyone.
func TestCopyTaskStoredUserInfo(t *testing.T) {
	h := newHarness(t)
	h.tasksService("nightly", "AcrPush", "/")
	_, _, err := h.dir.PutTask(ctx, auth.Task{Service: "nightly", Name: "old", Type: auth.TaskCopy, Enabled: true,
		Copy: &auth.CopyTask{Source: "user:hunter2@127.0.0.1:1/app:1", Target: "mirror/app:1", PlainHTTP: true}})
	h.must(err)
	op := h.run("nightly", "old")
	if op.Status != StatusFailed || !strings.Contains(op.Error, "holds user info") {
		t.Errorf("run: %s %q, want Failed for the user info", op.Status, op.Error)
	}
	if strings.Contains(op.Error+op.Source, "hunter2") {
		t.Errorf("the operation shows the password: %+v", op)
	}
}
