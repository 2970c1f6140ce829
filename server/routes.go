package server

import (
	"net/http"
	"strings"

	"github.com/moat-registry/moat/errcode"
)

// routes is the root handler: the data plane (/v2, /oauth2) and the
// control plane beside it. admin.allowedSources restricts the control
// plane (SPEC §2): the admin API (which checks it itself), /.well-known,
// /healthz, /readyz and /metrics — never the token endpoints, which every
// client needs. An operator who sets it and federates lists the
// registries that read /.well-known too.
func (s *Server) routes(reg, admin http.Handler) http.Handler {
	token := s.guard.TokenHandler()
	jwks := s.guard.JWKSHandler()
	exchange := s.guard.ExchangeHandler()
	openid := s.guard.OpenIDConfigurationHandler()
	metricsHandler := s.metrics.handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v2" || strings.HasPrefix(p, "/v2/"):
			reg.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/admin/v1/") || p == "/admin/v1":
			admin.ServeHTTP(w, r)
		case p == "/oauth2/token":
			token.ServeHTTP(w, r)
		case p == "/oauth2/exchange":
			exchange.ServeHTTP(w, r)
		case (strings.HasPrefix(p, "/.well-known/") || p == "/healthz" || p == "/readyz" || p == "/metrics") && !s.fromAdminSource(r):
			client := s.guard.ClientAddress(r)
			errcode.Write(w, r, errcode.Denied.New("client with IP '"+client.String()+"' is not allowed to reach "+p))
		case p == "/.well-known/jwks.json":
			jwks.ServeHTTP(w, r)
		case p == "/.well-known/openid-configuration":
			openid.ServeHTTP(w, r)
		case p == "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
		case p == "/readyz":
			s.readyz(w, r)
		case p == "/metrics":
			metricsHandler.ServeHTTP(w, r)
		default:
			errcode.Write(w, r, errcode.NotFound.New("no such endpoint"))
		}
	})
}

// fromAdminSource reports whether the request's client address is inside
// admin.allowedSources (always, when that is empty).
func (s *Server) fromAdminSource(r *http.Request) bool {
	if len(s.adminSources) == 0 {
		return true
	}
	client := s.guard.ClientAddress(r)
	for _, p := range s.adminSources {
		if p.Contains(client) {
			return true
		}
	}
	return false
}
