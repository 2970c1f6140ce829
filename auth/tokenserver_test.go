package auth_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
)

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPush", "repositories/app")
	f.assign("alice", "AcrPull", "repositories/base")

	t.Run("GET: the intersection is granted", func(t *testing.T) {
		tests := []struct {
			name   string
			scopes []string
			want   []string
		}{
			{"one scope", []string{"repository:app:pull"}, []string{"repository:app:pull"}},
			{"more than the roles", []string{"repository:app:pull,push,delete"}, []string{"repository:app:pull,push"}},
			{"wildcard action", []string{"repository:app:*"}, []string{"repository:app:pull,push"}},
			{"several params", []string{"repository:app:push", "repository:base:pull,push", "repository:other:pull"},
				[]string{"repository:app:push", "repository:base:pull"}},
			{"space-separated", []string{"repository:app:pull repository:base:pull repository:secret:pull"},
				[]string{"repository:app:pull", "repository:base:pull"}},
			{"same repository twice merges", []string{"repository:app:pull", "repository:app:push"}, []string{"repository:app:pull,push"}},
			{"nothing granted is no error", []string{"repository:secret:pull"}, nil},
			{"no scope", nil, nil},
			{"catalog", []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
			{"garbage and unknown actions dropped", []string{"repository:App:pull", "repository:app:fly", "nonsense", "repository:app:pull,fly"},
				[]string{"repository:app:pull"}},
			{"nested repository name", []string{"repository:base:pull", "repository:app/sub:pull"}, []string{"repository:base:pull"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := f.tokenGET(basic("alice"), url.Values{"service": {testService}, "scope": tt.scopes, "account": {"alice"}})
				tr := decodeToken(t, w)
				if got := accessOf(t, tr.Token); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("access %v, want %v", got, tt.want)
				}
				if tr.ExpiresIn != int(auth.AccessTokenTTL/time.Second) || tr.RefreshToken != "" {
					t.Errorf("expires_in %d, refresh_token %q", tr.ExpiresIn, tr.RefreshToken)
				}
				if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
					t.Errorf("issued_at %q: %v", tr.IssuedAt, err)
				}
				if w.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
					t.Errorf("headers %v", w.Header())
				}
				c := claimsOf(t, tr.Token)
				if c["iss"] != testIssuer || c["name"] != "alice" || !reflect.DeepEqual(c["aud"], []any{testService}) {
					t.Errorf("claims %v", c)
				}
			})
		}
	})

	t.Run("POST password grant", func(t *testing.T) {
		w := f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password("alice")},
			"service": {testService}, "scope": {"repository:app:pull,push repository:secret:pull"}})
		tr := decodeToken(t, w)
		if got, want := accessOf(t, tr.Token), []string{"repository:app:pull,push"}; !reflect.DeepEqual(got, want) {
			t.Errorf("access %v, want %v", got, want)
		}
		if tr.RefreshToken == "" {
			t.Fatal("no refresh_token")
		}
		if c := claimsOf(t, tr.RefreshToken); c["use"] != "refresh" || c["access"] != nil {
			t.Errorf("refresh token claims %v", c)
		}

		// The refresh grant re-checks the roles live.
		refresh := func() []string {
			w := f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
				"service": {testService}, "scope": {"repository:base:pull repository:app:push"}})
			return accessOf(t, decodeToken(t, w).Token)
		}
		if got, want := refresh(), []string{"repository:base:pull", "repository:app:push"}; !reflect.DeepEqual(got, want) {
			t.Errorf("refreshed access %v, want %v", got, want)
		}
		for _, ra := range f.dir.Snapshot().RoleAssignments() {
			if ra.Principal == "alice" && ra.Scope == "repositories/base" {
				f.must(f.dir.DeleteRoleAssignment(ctx, ra.ID))
			}
		}
		if got, want := refresh(), []string{"repository:app:push"}; !reflect.DeepEqual(got, want) {
			t.Errorf("after losing base: refreshed access %v, want %v", got, want)
		}
		f.assign("alice", "AcrPull", "repositories/base")
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			w      func() int
			status int
		}{
			{"GET wrong service", func() int {
				return f.tokenGET(basic("alice"), url.Values{"service": {"other.registry"}, "scope": {"repository:app:pull"}}).Code
			}, 400},
			{"POST wrong service", func() int {
				return f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password("alice")}, "service": {"other"}}).Code
			}, 400},
			{"GET wrong password", func() int {
				return f.tokenGET(call{user: "alice", pass: "nope"}, url.Values{"scope": {"repository:app:pull"}}).Code
			}, 401},
			{"GET unknown user", func() int { return f.tokenGET(basic("mallory"), url.Values{}).Code }, 401},
			{"GET malformed Authorization", func() int {
				c := call{header: map[string]string{"Authorization": "Basic !!!"}}
				return f.tokenGET(c, url.Values{}).Code
			}, 401},
			{"POST wrong password", func() int {
				return f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"nope"}}).Code
			}, 401},
			{"POST unknown grant", func() int {
				return f.tokenPOST(call{}, url.Values{"grant_type": {"client_credentials"}}).Code
			}, 400},
			{"POST no grant", func() int { return f.tokenPOST(call{}, url.Values{}).Code }, 400},
			{"POST refresh garbage", func() int {
				return f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}).Code
			}, 401},
			{"POST refresh empty", func() int {
				return f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}}).Code
			}, 401},
			{"PUT", func() int {
				w := httptest.NewRecorder()
				f.guard.TokenHandler().ServeHTTP(w, call{}.request(http.MethodPut, "/oauth2/token", nil))
				return w.Code
			}, 405},
		}
		for _, tt := range tests {
			if got := tt.w(); got != tt.status {
				t.Errorf("%s: %d, want %d", tt.name, got, tt.status)
			}
		}
		w := f.tokenGET(call{user: "alice", pass: "nope"}, url.Values{})
		if code, _, _ := errorBody(t, w); code != "UNAUTHORIZED" || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("wrong password: %s %v", w.Body, w.Header())
		}
	})
}

// TestTokenEndpointNetworkDenied: while the network denies a client but a
// trusted service could bypass, every answer of the token endpoints to
// anyone who is not one is the network's 403 — a malformed request, an
// unknown service, a bearer header or a wrong grant_type included.
func TestTokenEndpointNetworkDenied(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPull", "/")
	f.props(func(p *auth.Properties) {
		p.PublicNetworkAccess = policy.Disabled
		p.NetworkRuleBypassOptions = policy.BypassTrustedServices
	})
	exchangeForm := func(form string) *httptest.ResponseRecorder {
		r := call{}.request(http.MethodPost, "/oauth2/exchange", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		f.guard.ExchangeHandler().ServeHTTP(w, r)
		return w
	}
	for name, w := range map[string]*httptest.ResponseRecorder{
		"GET, unknown service":      f.tokenGET(basic("alice"), url.Values{"service": {"elsewhere"}}),
		"GET, bearer":               f.tokenGET(call{bearer: "x"}, url.Values{"service": {testService}}),
		"GET, a user":               f.tokenGET(basic("alice"), url.Values{"service": {testService}}),
		"POST, bad grant_type":      f.tokenPOST(call{}, url.Values{"grant_type": {"client_credentials"}}),
		"POST, unknown service":     f.tokenPOST(call{}, url.Values{"grant_type": {"password"}, "service": {"elsewhere"}}),
		"POST, bad refresh token":   f.tokenPOST(call{}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}),
		"exchange, bad grant_type":  exchangeForm("grant_type=password"),
		"exchange, malformed token": exchangeForm("grant_type=access_token&access_token=x"),
	} {
		if code, msg, _ := errorBody(t, w); w.Code != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "is not allowed access") {
			t.Errorf("%s: %d %s %s, want 403 DENIED from the network", name, w.Code, code, msg)
		}
	}
}

// TestTokenEndpointAudits: an Audit-mode allow at the token endpoint is
// logged, and a trusted-service bypass counted, as they are on /v2.
func TestTokenEndpointAudits(t *testing.T) {
	f := newFixture(t, fixtureOptions{auditToDB: true})
	f.user("alice", "AcrPull", "/")
	nightly := f.trustedService("nightly", auth.ServiceTasks, "AcrPush")
	f.props(func(p *auth.Properties) {
		p.NetworkRuleSet.DefaultAction = policy.ActionDeny
		p.NetworkRuleSet.Mode = policy.ModeAudit
	})
	decodeToken(t, f.tokenGET(basic("alice").from("203.0.113.1"), url.Values{"service": {testService}}))
	f.props(func(p *auth.Properties) { p.PublicNetworkAccess = policy.Disabled })
	f.log.take()
	decodeToken(t, f.tokenGET(basic(nightly).from("203.0.113.2"), url.Values{"service": {testService}}))
	if d, _ := f.log.take(); len(d) != 1 || d[0].reason != policy.ReasonTrustedServiceBypass || !d[0].allowed {
		t.Errorf("decisions of a bypass at the token endpoint: %+v, want one TrustedServiceBypass allow", d)
	}
	f.auditor.Sync()
	all, err := auth.QueryAudit(ctx, f.db, auth.AuditQuery{})
	f.must(err)
	if len(all) != 1 || all[0].ClientIP != "203.0.113.1" || all[0].Reason != "IPNotAllowed" || !all[0].Allowed || !all[0].Audit {
		t.Errorf("audit log %+v, want alice's Audit-mode allow", all)
	}
}

// TestGrantFollowsTokenScope: a request made with a bearer token may do
// beyond its checked scopes (a mount without from, a signer's checks)
// only what the token also grants; the catalog still lists what the roles
// allow, as a catalog token names no repository.
func TestGrantFollowsTokenScope(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPush", "/")
	tok := f.accessToken(basic("alice"), "repository:app:pull,push")
	for name, c := range map[string]call{"bearer": {bearer: tok}, "basic": basic("alice")} {
		g, e := f.authorize(c, push("app"))
		if e != nil {
			t.Fatalf("%s: push app: %v", name, e)
		}
		if !g.Allows("app", auth.Push) {
			t.Errorf("%s: the grant does not push app", name)
		}
		if got, want := g.Allows("other", auth.Pull), name == "basic"; got != want {
			t.Errorf("%s: Allows(other, pull) = %v, want %v", name, got, want)
		}
		if !g.Lists("other") {
			t.Errorf("%s: the catalog hides other", name)
		}
	}
}
