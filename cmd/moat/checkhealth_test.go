package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestCheckHealthSendsCredentialsOnlyToTheServersRealm: check-health
// gives the password to a token realm only on the --server's host, and
// never over plain HTTP when the server is HTTPS.
func TestCheckHealthSendsCredentialsOnlyToTheServersRealm(t *testing.T) {
	t.Parallel()
	// realm is a token endpoint that records whether it saw credentials.
	var gotAuth atomic.Bool
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			gotAuth.Store(true)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"token": "t"})
	}))
	t.Cleanup(realm.Close)
	port := realm.Listener.Addr().String()[len("127.0.0.1:"):]
	// registry answers the probes and challenges with realmURL.
	registry := func(realmURL string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz", "/readyz":
				_, _ = w.Write([]byte("ok\n"))
			case "/v2/":
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realmURL+`",service="moat"`)
				w.WriteHeader(http.StatusUnauthorized)
			default:
				http.NotFound(w, r)
			}
		})
	}
	tests := []struct {
		name  string
		tls   bool
		realm string
		sent  bool
		want  string // in the token check's line
	}{
		{name: "same host", realm: "http://127.0.0.1:" + port + "/oauth2/token", sent: true, want: "token for admin"},
		{name: "other host", realm: "http://localhost:" + port + "/oauth2/token", want: "is on localhost, not on 127.0.0.1"},
		{name: "https to http", tls: true, realm: "http://127.0.0.1:" + port + "/oauth2/token", want: "is plain HTTP while"},
		{name: "not a URL", realm: "/oauth2/token", want: "is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotAuth.Store(false)
			var srv *httptest.Server
			if tt.tls {
				srv = httptest.NewTLSServer(registry(tt.realm))
			} else {
				srv = httptest.NewServer(registry(tt.realm))
			}
			defer srv.Close()
			env := map[string]string{"MOAT_SERVER": srv.URL, "MOAT_USERNAME": "admin", "MOAT_PASSWORD": "pw",
				"MOAT_CONFIG": t.TempDir() + "/none.json", "HOME": t.TempDir()}
			r := runCLI(t, env, "", "check-health", "--insecure", "-o", "json")
			var out struct{ Checks []healthCheck }
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("stdout %q: %v (stderr %q)", r.stdout, err, r.stderr)
			}
			var token healthCheck
			for _, c := range out.Checks {
				if c.Name == "token" {
					token = c
				}
			}
			if !strings.Contains(token.Detail, tt.want) {
				t.Errorf("token check %+v, want its detail to contain %q", token, tt.want)
			}
			if gotAuth.Load() != tt.sent {
				t.Errorf("credentials sent to %s: %v, want %v", tt.realm, gotAuth.Load(), tt.sent)
			}
			if !tt.sent && (token.Status != "fail" || token.Fix == "" || r.code == 0) {
				t.Errorf("token check %+v, exit %d; want a failed check with a fix", token, r.code)
			}
		})
	}
}
