package auth_test

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/moat-registry/moat/auth"
)

// TestAnonymousPull: anonymousPullEnabled gives everyone pull and tag
// list, nothing more; without it an anonymous caller gets a challenge and
// an authenticated caller without roles gets 403.
func TestAnonymousPull(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("norole", "", "")
	anon := call{}
	for _, enabled := range []bool{false, true} {
		f.props(func(p *auth.Properties) { p.AnonymousPullEnabled = enabled })
		name := map[bool]string{false: "disabled", true: "enabled"}[enabled]
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				who    call
				need   []auth.Scope
				status int // 0 allowed
			}{
				{anon, []auth.Scope{pull("app")}, map[bool]int{false: 401, true: 0}[enabled]},
				{anon, []auth.Scope{tagList("app")}, map[bool]int{false: 401, true: 0}[enabled]},
				{anon, []auth.Scope{push("app")}, 401},
				{anon, []auth.Scope{del("app")}, 401},
				{anon, []auth.Scope{auth.Catalog()}, 401},
				{anon, nil, 401},
				{basic("norole"), []auth.Scope{pull("app")}, map[bool]int{false: 403, true: 0}[enabled]},
				{basic("norole"), []auth.Scope{tagList("app")}, map[bool]int{false: 403, true: 0}[enabled]},
				{basic("norole"), []auth.Scope{push("app")}, 403},
				{basic("norole"), []auth.Scope{del("app")}, 403},
				{basic("norole"), []auth.Scope{auth.Catalog()}, 0},
				{basic("norole"), nil, 0},
				{call{user: "norole", pass: "wrong"}, []auth.Scope{pull("app")}, 401},
			}
			for _, tt := range tests {
				grant, e := f.authorize(tt.who, tt.need...)
				switch tt.status {
				case 0:
					if e != nil {
						t.Errorf("%q %v: %d %s", tt.who.user, tt.need, e.Code.Status, e.Code.Value)
					} else if len(tt.need) > 0 && tt.need[0].Type == auth.TypeRepository && grant.Allows("app", auth.Push) {
						t.Errorf("%q: the grant allows push", tt.who.user)
					}
				case 401:
					if e == nil || e.Code.Status != 401 {
						t.Errorf("%q %v: %v, want 401", tt.who.user, tt.need, e)
						continue
					}
					p := challengeParams(t, e)
					if tt.who.user == "" {
						want := map[string]string{"realm": "http://registry.test:5000/oauth2/token", "service": testService}
						if len(tt.need) > 0 {
							want["scope"] = tt.need[0].String()
						}
						if !reflect.DeepEqual(p, want) {
							t.Errorf("anonymous %v: challenge %v, want %v", tt.need, p, want)
						}
					} else if p["error"] != "invalid_token" {
						t.Errorf("wrong password: challenge %v", p)
					}
				case 403:
					wantError(t, e, 403, "DENIED", "", "authz", "NoRole")
				}
			}
			// The anonymous token gets what anonymous callers may do.
			tok := f.accessToken(anon, "repository:app:pull,push", "registry:catalog:*")
			want := []string(nil)
			if enabled {
				want = []string{"repository:app:pull"}
			}
			if got := accessOf(t, tok); !reflect.DeepEqual(got, want) {
				t.Errorf("anonymous token access %v, want %v", got, want)
			}
			if c := claimsOf(t, tok); c["sub"] != nil && c["sub"] != "" {
				t.Errorf("anonymous token sub %v", c["sub"])
			}
			_, e := f.authorize(call{bearer: tok}, pull("app"))
			if enabled && e != nil {
				t.Errorf("anonymous bearer pull: %v", e)
			}
			if !enabled && (e == nil || e.Code.Status != 401) {
				t.Errorf("anonymous bearer pull: %v, want 401", e)
			}
			if resp := f.tokenPOST(anon, url.Values{"grant_type": {"password"}}); resp.Code != 401 {
				t.Errorf("password grant without a username: %d", resp.Code)
			}
		})
	}
}

// TestChallengeRealm: the realm is publicURL, else the request's scheme and
// Host; X-Forwarded-Proto/-Host count only from a trusted proxy.
func TestChallengeRealm(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	proxied := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "front.example:8443", "X-Forwarded-For": "198.51.100.7"}
	trusted := policy10()
	tests := []struct {
		name  string
		opts  auth.GuardOptions
		c     call
		tls   bool
		realm string
	}{
		{"request host", auth.GuardOptions{}, call{host: "registry.example:5000"}, false, "http://registry.example:5000/oauth2/token"},
		{"TLS", auth.GuardOptions{}, call{host: "registry.example"}, true, "https://registry.example/oauth2/token"},
		{"IPv6 host", auth.GuardOptions{}, call{host: "[2001:db8::1]:5000"}, false, "http://[2001:db8::1]:5000/oauth2/token"},
		{"publicURL", auth.GuardOptions{PublicURL: "https://moat.example.com/"}, call{host: "10.0.0.5:5000"}, false, "https://moat.example.com/oauth2/token"},
		{"publicURL beats proxies", auth.GuardOptions{PublicURL: "https://moat.example.com", TrustedProxies: trusted}, call{peer: "10.0.0.1", host: "x", header: proxied}, false, "https://moat.example.com/oauth2/token"},
		{"trusted proxy", auth.GuardOptions{TrustedProxies: trusted}, call{peer: "10.0.0.1", host: "internal:5000", header: proxied}, false, "https://front.example:8443/oauth2/token"},
		{"untrusted peer: headers ignored", auth.GuardOptions{TrustedProxies: trusted}, call{peer: "203.0.113.9", host: "internal:5000", header: proxied}, false, "http://internal:5000/oauth2/token"},
		{"no proxies: headers ignored", auth.GuardOptions{}, call{peer: "10.0.0.1", host: "internal:5000", header: proxied}, false, "http://internal:5000/oauth2/token"},
		{"trusted proxy, bad proto", auth.GuardOptions{TrustedProxies: trusted}, call{peer: "10.0.0.1", host: "internal", header: map[string]string{"X-Forwarded-Proto": "gopher"}}, false, "http://internal/oauth2/token"},
		{"trusted proxy, unsafe host", auth.GuardOptions{TrustedProxies: trusted}, call{peer: "10.0.0.1", host: "internal", header: map[string]string{"X-Forwarded-Host": `evil",x="y`}}, false, "http://internal/oauth2/token"},
		{"unsafe Host falls back to the service", auth.GuardOptions{}, call{host: `a"b`}, false, "http://" + testService + "/oauth2/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := f.newGuard(f.keys, tt.opts)
			r := tt.c.request(http.MethodGet, "/v2/", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			_, err := g.Authorize(r, []auth.Scope{pull("app")})
			e := asErr(t, err)
			p := challengeParams(t, e)
			if p["realm"] != tt.realm || p["service"] != testService || p["scope"] != "repository:app:pull" {
				t.Errorf("challenge %v, want realm %s", p, tt.realm)
			}
		})
	}
	t.Run("client address from a trusted proxy", func(t *testing.T) {
		g := f.newGuard(f.keys, auth.GuardOptions{TrustedProxies: trusted})
		if got := g.ClientAddress(call{peer: "10.0.0.1", header: proxied}.request("GET", "/v2/", nil)).String(); got != "198.51.100.7" {
			t.Errorf("ClientAddress = %s", got)
		}
		if got := g.ClientAddress(call{peer: "203.0.113.9", header: proxied}.request("GET", "/v2/", nil)).String(); got != "203.0.113.9" {
			t.Errorf("ClientAddress (untrusted) = %s", got)
		}
		if got := g.ClientAddress(call{peer: "::ffff:203.0.113.9"}.request("GET", "/v2/", nil)).String(); got != "203.0.113.9" {
			t.Errorf("ClientAddress (mapped) = %s", got)
		}
	})
}

// TestDevProfile: the loopback convenience needs a loopback peer, a
// loopback Host and no forwarding header; anything else is a normal
// anonymous caller.
func TestDevProfile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("alice", "AcrPull", "repositories/app")
	dev := f.newGuard(f.keys, auth.GuardOptions{Dev: true})
	prod := f.newGuard(f.keys, auth.GuardOptions{})
	local := call{peer: "127.0.0.1", host: "localhost:5000"}
	with := func(c call, k, v string) call {
		c.header = map[string]string{k: v}
		return c
	}
	tests := []struct {
		name  string
		g     *auth.Guard
		c     call
		allow bool
	}{
		{"localhost", dev, local, true},
		{"127.0.0.1 Host", dev, call{peer: "127.0.0.1", host: "127.0.0.1:5000"}, true},
		{"[::1] Host and peer", dev, call{peer: "::1", host: "[::1]:5000"}, true},
		{"[::1] Host without port", dev, call{peer: "::1", host: "[::1]"}, true},
		{"localhost without port", dev, call{peer: "127.0.0.1", host: "localhost"}, true},
		{"other loopback peer", dev, call{peer: "127.8.9.10", host: "localhost:5000"}, true},
		{"mapped loopback peer", dev, call{peer: "::ffff:127.0.0.1", host: "localhost:5000"}, true},
		{"non-loopback peer", dev, call{peer: "192.0.2.1", host: "localhost:5000"}, false},
		{"rebinding Host", dev, call{peer: "127.0.0.1", host: "evil.example:5000"}, false},
		{"Host 127.0.0.2", dev, call{peer: "127.0.0.1", host: "127.0.0.2:5000"}, false},
		{"X-Forwarded-For", dev, with(local, "X-Forwarded-For", "127.0.0.1"), false},
		{"Forwarded", dev, with(local, "Forwarded", "for=127.0.0.1"), false},
		{"X-Real-IP", dev, with(local, "X-Real-IP", "127.0.0.1"), false},
		{"dev off", prod, local, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, need := range [][]auth.Scope{{pull("app")}, {push("x/y")}, {del("app")}, {auth.Catalog()}, nil} {
				grant, e := authorizeWith(tt.g, tt.c, need...)
				if tt.allow {
					if e != nil {
						t.Fatalf("%v: %v", need, e)
					}
					if _, ok := grant.(auth.AllowAll); !ok {
						t.Errorf("grant %T, want AllowAll", grant)
					}
					continue
				}
				if e == nil || e.Code.Status != http.StatusUnauthorized {
					t.Fatalf("%v: %v, want a 401 challenge", need, e)
				}
			}
			// The token endpoint gives the loopback caller what it asks.
			w := tokenGETWith(tt.g, tt.c, url.Values{"scope": {"repository:x/y:pull,push,delete"}})
			got := accessOf(t, decodeToken(t, w).Token)
			if tt.allow != reflect.DeepEqual(got, []string{"repository:x/y:pull,push,delete"}) {
				t.Errorf("token access %v", got)
			}
		})
	}
	t.Run("authenticated caller keeps its own roles", func(t *testing.T) {
		c := basic("alice")
		c.peer, c.host = local.peer, local.host
		grant, e := authorizeWith(dev, c, pull("app"))
		if e != nil {
			t.Fatal(e)
		}
		if _, ok := grant.(auth.AllowAll); ok || grant.Allows("other", auth.Pull) {
			t.Error("an authenticated dev caller got everything")
		}
		_, e = authorizeWith(dev, c, push("app"))
		wantError(t, e, 403, "DENIED", "", "authz", "NoRole")
	})
}
