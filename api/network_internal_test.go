package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/storage"
)

// fakeListeners records what the API asks of the listeners; port 0 binds
// port 4000.
type fakeListeners struct{ calls []string }

func (f *fakeListeners) Open(name, listen string, tls bool) (string, error) {
	f.calls = append(f.calls, fmt.Sprintf("open %s %s tls=%v", name, listen, tls))
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if port == "0" {
		port = "4000"
	}
	return net.JoinHostPort(host, port), nil
}

func (f *fakeListeners) Close(name string) error {
	f.calls = append(f.calls, "close "+name)
	return nil
}

func (f *fakeListeners) Allowed(string) error { return nil }

// failingDocs is a store whose writes fail while fail is set.
type failingDocs struct {
	storage.Documents
	fail atomic.Bool
}

func (d *failingDocs) UpdateDocuments(ctx context.Context, fn func(storage.DocTx) error) error {
	if d.fail.Load() {
		return errors.New("disk full")
	}
	return d.Documents.UpdateDocuments(ctx, fn)
}

// endpointAPI is an API over a real directory whose store can fail, with
// fake listeners, called as an Owner past authentication.
type endpointAPI struct {
	t         *testing.T
	api       *API
	listeners *fakeListeners
	docs      *failingDocs
}

func newEndpointAPI(t *testing.T) *endpointAPI {
	t.Helper()
	tmp := t.TempDir()
	db, err := storage.OpenDB(filepath.Join(tmp, "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	docs := &failingDocs{Documents: db}
	dir, err := auth.OpenDirectory(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.OpenKeyRing(filepath.Join(tmp, "keys"), auth.RefreshTokenTTL+auth.AccessTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	guard := auth.NewGuard(dir, keys, auth.GuardOptions{Service: func() string { return "api.test" }})
	l := &fakeListeners{}
	a := New(Options{Guard: guard, Listeners: l, Logger: slog.New(slog.DiscardHandler)})
	return &endpointAPI{t: t, api: a, listeners: l, docs: docs}
}

// put sends PUT /private-endpoints/{name} and returns the status and the
// endpoint answered.
func (e *endpointAPI) put(name, body string) (int, auth.PrivateEndpoint) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPut, Prefix+"/private-endpoints/"+name, strings.NewReader(body))
	w := httptest.NewRecorder()
	r := &request{Request: req, seg: []string{"private-endpoints", name}, caller: auth.Caller{Level: auth.LevelOwner}}
	if err := e.api.route(w, r); err != nil {
		return mapError(err).Code.Status, auth.PrivateEndpoint{}
	}
	var out auth.PrivateEndpoint
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("PUT %s: %v in %s", name, err, w.Body)
	}
	return w.Code, out
}

// calls returns and forgets the listener calls so far.
func (e *endpointAPI) calls() []string {
	c := e.listeners.calls
	e.listeners.calls = nil
	return c
}

// TestPutPrivateEndpointKeepsTLS: a PUT that omits tls keeps the
// endpoint's TLS and listener, as it keeps listen and state; tls false
// turns it off.
func TestPutPrivateEndpointKeepsTLS(t *testing.T) {
	e := newEndpointAPI(t)
	if status, ep := e.put("lab", `{"listen":"127.0.0.2:0","tls":true}`); status != http.StatusCreated || !ep.TLS {
		t.Fatalf("create: %d %+v", status, ep)
	}
	e.calls()
	status, ep := e.put("lab", `{"state":"Pending"}`)
	if status != http.StatusOK || !ep.TLS || ep.State != "Pending" || ep.Address != "127.0.0.2:4000" {
		t.Errorf("PUT without tls: %d %+v, want TLS kept", status, ep)
	}
	if c := e.calls(); len(c) != 0 {
		t.Errorf("PUT without tls touched the listener: %v", c)
	}
	status, ep = e.put("lab", `{"tls":false}`)
	if status != http.StatusOK || ep.TLS {
		t.Errorf("PUT tls false: %d %+v", status, ep)
	}
	if c, want := e.calls(), []string{"open lab 127.0.0.2:0 tls=false"}; !slices.Equal(c, want) {
		t.Errorf("PUT tls false: listener calls %v, want %v", c, want)
	}
}

// TestPutPrivateEndpointStoreFails: when storing a change fails, the
// listener goes back to what the stored record says: the old address and
// TLS for an existing endpoint, none for a new one.
func TestPutPrivateEndpointStoreFails(t *testing.T) {
	e := newEndpointAPI(t)
	if status, _ := e.put("lab", `{"listen":"127.0.0.2:0","tls":true}`); status != http.StatusCreated {
		t.Fatalf("create: %d", status)
	}
	e.calls()
	e.docs.fail.Store(true)
	if status, _ := e.put("lab", `{"listen":"127.0.0.3:0","tls":false}`); status != http.StatusInternalServerError {
		t.Errorf("PUT with a failing store: %d, want 500", status)
	}
	want := []string{"open lab 127.0.0.3:0 tls=false", "open lab 127.0.0.2:4000 tls=true"}
	if c := e.calls(); !slices.Equal(c, want) {
		t.Errorf("listener calls %v, want %v (back on the stored address)", c, want)
	}
	if ep, _ := e.api.dir.Snapshot().Endpoint("lab"); ep.Address != "127.0.0.2:4000" || !ep.TLS {
		t.Errorf("stored %+v, want the old address and TLS", ep)
	}

	if status, _ := e.put("new", `{"listen":"127.0.0.4:0"}`); status != http.StatusInternalServerError {
		t.Errorf("create with a failing store: %d, want 500", status)
	}
	want = []string{"open new 127.0.0.4:0 tls=false", "close new"}
	if c := e.calls(); !slices.Equal(c, want) {
		t.Errorf("listener calls %v, want %v", c, want)
	}
}
