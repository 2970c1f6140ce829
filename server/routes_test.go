package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-registry/moat/config"
)

// TestAdminAllowedSourcesGuardTheControlPlane: admin.allowedSources
// restricts the control plane — /admin/v1, /.well-known, /healthz,
// /readyz and /metrics — but never the token endpoints.
func TestAdminAllowedSourcesGuardTheControlPlane(t *testing.T) {
	t.Parallel()
	s := build(t, func(c *config.Config) { c.Admin.AllowedSources = []string{"198.51.100.0/24"} })
	status := func(path, from string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = from + ":40000"
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, r)
		return w.Code
	}
	for _, path := range []string{"/admin/v1/openapi.json", "/.well-known/jwks.json", "/.well-known/openid-configuration", "/healthz", "/readyz", "/metrics"} {
		if got := status(path, "203.0.113.9"); got != http.StatusForbidden {
			t.Errorf("GET %s from outside admin.allowedSources = %d, want 403", path, got)
		}
	}
	for _, path := range []string{"/admin/v1/openapi.json", "/.well-known/jwks.json", "/.well-known/openid-configuration", "/healthz", "/metrics"} {
		if got := status(path, "198.51.100.7"); got != http.StatusOK {
			t.Errorf("GET %s from inside admin.allowedSources = %d, want 200", path, got)
		}
	}
	for _, path := range []string{"/oauth2/token", "/oauth2/exchange"} {
		if got := status(path, "203.0.113.9"); got == http.StatusForbidden {
			t.Errorf("GET %s from outside admin.allowedSources = 403; it must stay reachable", path)
		}
	}
}
