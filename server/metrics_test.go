package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsMethodLabelIsBounded: invented request methods are counted as
// OTHER, so clients cannot create series at will.
func TestMetricsMethodLabelIsBounded(t *testing.T) {
	t.Parallel()
	s := build(t, nil)
	for _, method := range []string{"BREW", "PROPFIND", "X-1", http.MethodGet} {
		s.handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/v2/", nil))
	}
	w := httptest.NewRecorder()
	s.metrics.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := w.Body.String()
	for _, bad := range []string{"BREW", "PROPFIND", "X-1"} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics has a series for method %s", bad)
		}
	}
	for _, want := range []string{`method="OTHER",route="base"} 3`, `method="GET",route="base"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if t.Failed() {
		t.Log(grepLines(body, "moat_http_request"))
	}
}
