package server

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPanicIsAnInternalError: a panicking handler answers 500 in the OCI
// shape with the request id, and the server keeps serving.
func TestPanicIsAnInternalError(t *testing.T) {
	s := build(t, nil)
	h := s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/boom/tags/list" {
			panic("a bug")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/boom/tags/list", nil))
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if w.Code != http.StatusInternalServerError || json.Unmarshal(w.Body.Bytes(), &body) != nil || len(body.Errors) != 1 || body.Errors[0].Code != "INTERNAL" {
		t.Fatalf("panic answered %d %s", w.Code, w.Body)
	}
	id := w.Header().Get("X-Request-Id")
	if id == "" || !strings.Contains(body.Errors[0].Message, id) {
		t.Errorf("message %q does not quote the request id %q", body.Errors[0].Message, id)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("after the panic: %d", w.Code)
	}
}

// TestPanicAfterTheAnswerBeganAbortsIt: a panic once part of a chunked
// answer was sent breaks the connection, so the client cannot take the
// truncated body for a whole one; the request is still counted.
func TestPanicAfterTheAnswerBeganAbortsIt(t *testing.T) {
	t.Parallel()
	s := build(t, nil)
	srv := httptest.NewServer(s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("the first half"))
		w.(http.Flusher).Flush()
		panic("a bug")
	})))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/boom/blobs/sha256:" + strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("read %q and a clean end; want the answer broken off", body)
	}
	w := httptest.NewRecorder()
	s.metrics.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{`moat_http_requests_total{code="200",method="GET",route="blob"} 1`, `moat_http_requests_in_flight{route="blob"} 0`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
