package server

import (
	"encoding/json"
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
