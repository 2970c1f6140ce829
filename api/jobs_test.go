package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestJobsLimit: while as many imports and task runs run as moat allows
// at once, another import or task run is refused with 429
// TOOMANYREQUESTS and Retry-After, in the admin error shape.
func TestJobsLimit(t *testing.T) {
	e := start(t)
	// A source registry that answers nothing until the test ends: its
	// imports stay Running.
	release := make(chan struct{})
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(src.Close)
	t.Cleanup(func() { close(release) })
	body := map[string]any{"source": strings.TrimPrefix(src.URL, "http://") + "/app:1", "target": "app:1", "plainHTTP": true}

	tooMany := func(t *testing.T, r *result) {
		t.Helper()
		code, msg, _ := r.errorItem(t)
		if code != "TOOMANYREQUESTS" || !strings.Contains(msg, "running already") {
			t.Errorf("%s %q, want TOOMANYREQUESTS", code, msg)
		}
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	}
	accepted := 0
	for {
		r := e.do(t, call{as: admin, method: http.MethodPost, path: "import", body: body})
		if r.status == http.StatusTooManyRequests {
			tooMany(t, r)
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("import %d: %d %s", accepted+1, r.status, r.body)
		}
		if accepted++; accepted > 100 {
			t.Fatal("more than 100 imports run at once")
		}
	}
	if accepted == 0 {
		t.Fatal("the first import was refused")
	}
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/nightly", body: `{"type":"tasks","identity":{"type":"SystemAssigned"}}`,
		status: http.StatusCreated})
	e.do(t, call{as: admin, method: http.MethodPut, path: "services/nightly/tasks/prune",
		body: `{"type":"purge","purge":{"repository":"app","olderThan":"7d"}}`, status: http.StatusCreated})
	e.do(t, call{name: "task run past the limit", as: admin, method: http.MethodPost, path: "services/nightly/tasks/prune/run",
		status: http.StatusTooManyRequests, check: tooMany})
}
