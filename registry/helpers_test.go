package registry_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testServer is a registry over a real bbolt file and disk blobs in dir,
// served by httptest.
type testServer struct {
	dir    string
	db     *storage.DB
	srv    *httptest.Server
	client *http.Client
	mu     sync.Mutex
	events []registry.Event

	// Set by newTestServerWith's configure before the server starts.
	authz       registry.Authorizer                   // default allowAll
	opts        registry.Options                      // Logger and OnEvent are set by start
	wrapUploads func(storage.Uploads) storage.Uploads // wraps the disk sessions
}

// takeEvents returns the events so far and forgets them.
func (ts *testServer) takeEvents() []registry.Event {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e := ts.events
	ts.events = nil
	return e
}

var allowAll = registry.AuthorizerFunc(func(*http.Request, []auth.Scope) (auth.Grant, error) {
	return auth.AllowAll{}, nil
})

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, nil)
}

// newTestServerWith is newTestServer with configure (if not nil) called
// on the server before it starts.
func newTestServerWith(t *testing.T, configure func(*testServer)) *testServer {
	t.Helper()
	ts := &testServer{dir: t.TempDir()}
	if configure != nil {
		configure(ts)
	}
	ts.start(t)
	t.Cleanup(ts.stop)
	return ts
}

// start opens the stores over ts.dir and serves them.
func (ts *testServer) start(t *testing.T) {
	t.Helper()
	db, err := storage.OpenDB(filepath.Join(ts.dir, "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := storage.NewDiskBlobs(ts.dir, db)
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := storage.NewDiskUploads(ts.dir, blobs, db)
	if err != nil {
		t.Fatal(err)
	}
	authz := ts.authz
	if authz == nil {
		authz = allowAll
	}
	var sessions storage.Uploads = uploads
	if ts.wrapUploads != nil {
		sessions = ts.wrapUploads(uploads)
	}
	opts := ts.opts
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.OnEvent = func(e registry.Event) {
		e.Request = nil
		ts.mu.Lock()
		ts.events = append(ts.events, e)
		ts.mu.Unlock()
	}
	reg := registry.New(db, blobs, sessions, authz, opts)
	ts.db, ts.srv = db, httptest.NewServer(reg)
	tr := ts.srv.Client().Transport.(*http.Transport).Clone()
	// A request that says "Expect: 100-continue" waits for the server's
	// go-ahead, so a body refused unread is never sent.
	tr.ExpectContinueTimeout = 10 * time.Second
	ts.client = &http.Client{Transport: tr}
}

// stop closes the server and the stores; the directory stays.
func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.srv.Close()
	ts.client.CloseIdleConnections()
	ts.db.Close()
	ts.srv = nil
}

// step is one request of a scenario and what its answer must be.
type step struct {
	name    string
	method  string
	path    string // {var} placeholders are filled from earlier steps' saves
	header  map[string]string
	body    string
	chunked bool // send the body without Content-Length

	status   int
	code     string            // the OCI error code of the answer
	headers  map[string]string // "*": present; "-": absent; else exact (placeholders filled)
	wantBody *string           // the exact body
	wantJSON string            // a JSON body, compared as values
	check    func(t *testing.T, resp *http.Response, body []byte)
	save     map[string]string // variable → answer header
}

func ptr[T any](v T) *T { return &v }

// run performs the steps in order, each as a subtest.
func (ts *testServer) run(t *testing.T, steps []step) {
	t.Helper()
	vars := map[string]string{}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var body io.Reader
			if st.body != "" || st.chunked {
				body = strings.NewReader(st.body)
				if st.chunked {
					body = io.MultiReader(body) // hides the length
				}
			}
			req, err := http.NewRequest(st.method, ts.srv.URL+expand(st.path), body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range st.header {
				req.Header.Set(k, expand(v))
			}
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != st.status {
				t.Errorf("%s %s: status %d, want %d; body %s", st.method, req.URL.Path, resp.StatusCode, st.status, got)
			}
			if v := resp.Header.Get(registry.APIVersionHeader); v != "registry/2.0" {
				t.Errorf("%s = %q", registry.APIVersionHeader, v)
			}
			checkErrorBody(t, st.method, resp, got, st.code)
			for k, want := range st.headers {
				v, ok := resp.Header[http.CanonicalHeaderKey(k)]
				switch want {
				case "*":
					if !ok || v[0] == "" {
						t.Errorf("header %s missing", k)
					}
				case "-":
					if ok {
						t.Errorf("header %s = %q, want none", k, v)
					}
				default:
					if want = expand(want); !ok || strings.Join(v, ", ") != want {
						t.Errorf("header %s = %q, want %q", k, v, want)
					}
				}
			}
			if st.method == http.MethodHead && len(got) != 0 {
				t.Errorf("HEAD answered a body: %q", got)
			}
			if st.wantBody != nil && string(got) != *st.wantBody {
				t.Errorf("body %q, want %q", truncate(got), truncate([]byte(*st.wantBody)))
			}
			if st.wantJSON != "" {
				var g, w any
				if err := json.Unmarshal(got, &g); err != nil {
					t.Fatalf("body %s: %v", got, err)
				}
				if err := json.Unmarshal([]byte(st.wantJSON), &w); err != nil {
					t.Fatalf("the step's wantJSON: %v", err)
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("body %s, want %s", got, st.wantJSON)
				}
			}
			if st.check != nil {
				st.check(t, resp, got)
			}
			for name, h := range st.save {
				if vars[name] = resp.Header.Get(h); vars[name] == "" {
					t.Errorf("no %s header to save as {%s}", h, name)
				}
			}
		})
	}
}

// checkErrorBody requires every error answer (but HEAD's) to carry a valid
// OCI error body, and code to be its first code.
func checkErrorBody(t *testing.T, method string, resp *http.Response, body []byte, code string) {
	t.Helper()
	if resp.StatusCode < 400 {
		if code != "" {
			t.Errorf("status %d, want an error with code %s", resp.StatusCode, code)
		}
		return
	}
	if method == http.MethodHead {
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
	var eb struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q is not OCI error JSON: %v", truncate(body), err)
	}
	if len(eb.Errors) == 0 {
		t.Fatalf("error body %s has no errors", body)
	}
	for _, e := range eb.Errors {
		if e.Code == "" || e.Message == "" {
			t.Errorf("error body %s: an error without code or message", body)
		}
	}
	if code != "" && eb.Errors[0].Code != code {
		t.Errorf("error code %s, want %s (body %s)", eb.Errors[0].Code, code, body)
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func descriptor(mt, content string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(content), Size: int64(len(content))}
}

func imageManifest(mt string, config ocispec.Descriptor, layers ...ocispec.Descriptor) ocispec.Manifest {
	return ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt, Config: config, Layers: layers}
}

func index(mt string, children ...ocispec.Descriptor) ocispec.Index {
	if children == nil {
		children = []ocispec.Descriptor{}
	}
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt, Manifests: children}
}

// pushBlob is the step that uploads content to repo in one POST.
func pushBlob(repo, content string) step {
	d := digest.FromString(content)
	return step{
		name:   "push blob " + d.Encoded()[:8] + " to " + repo,
		method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: content,
		status: http.StatusCreated,
	}
}

// pushManifest is the step that puts a manifest under reference.
func pushManifest(repo, reference, mt, body string) step {
	return step{
		name:   "push manifest " + reference + " to " + repo,
		method: http.MethodPut, path: "/v2/" + repo + "/manifests/" + reference,
		header: map[string]string{"Content-Type": mt}, body: body,
		status: http.StatusCreated,
		headers: map[string]string{
			"Docker-Content-Digest": digest.FromString(body).String(),
			"Location":              "/v2/" + repo + "/manifests/" + digest.FromString(body).String(),
		},
	}
}

func digestOf(content string) string { return digest.FromString(content).String() }
