package auth_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
)

// benchAuthorize measures Authorize for one prepared request.
func benchAuthorize(b *testing.B, g *auth.Guard, r *http.Request, need []auth.Scope) {
	b.Helper()
	if _, err := g.Authorize(r, need); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Authorize(r, need); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeCachedBearer is the authenticated hot path: a bearer
// token already verified once, a pull.
func BenchmarkAuthorizeCachedBearer(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	f.user("alice", "AcrPull", "repositories/app")
	tok := f.accessToken(basic("alice"), "repository:app:pull")
	benchAuthorize(b, f.guard, call{bearer: tok}.request(http.MethodGet, "/v2/app/manifests/latest", nil), []auth.Scope{pull("app")})
}

// BenchmarkAuthorizeBasicCached: Basic credentials whose check is cached.
func BenchmarkAuthorizeBasicCached(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	f.user("alice", "AcrPull", "repositories/app")
	benchAuthorize(b, f.guard, basic("alice").request(http.MethodGet, "/v2/app/manifests/latest", nil), []auth.Scope{pull("app")})
}

// BenchmarkAuthorizeDevAnonymous: the zero-config loopback caller.
func BenchmarkAuthorizeDevAnonymous(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	g := f.newGuard(f.keys, auth.GuardOptions{Dev: true})
	r := call{peer: "127.0.0.1", host: "localhost:5000"}.request(http.MethodPut, "/v2/app/manifests/latest", nil)
	benchAuthorize(b, g, r, []auth.Scope{push("app")})
}

// BenchmarkAuthorizeWithPolicy: 100 ipRules, defaultAction Deny, a client
// matching one of them, with a cached bearer token.
func BenchmarkAuthorizeWithPolicy(b *testing.B) {
	f := newFixture(b, fixtureOptions{})
	f.user("alice", "AcrPull", "repositories/app")
	tok := f.accessToken(basic("alice"), "repository:app:pull")
	f.props(func(p *auth.Properties) {
		p.NetworkRuleSet.DefaultAction = policy.ActionDeny
		for i := range 100 {
			p.NetworkRuleSet.IPRules = append(p.NetworkRuleSet.IPRules, policy.IPRule{Action: "Allow", Value: fmt.Sprintf("10.%d.0.0/16", i)})
		}
	})
	r := call{bearer: tok, peer: "10.57.3.4"}.request(http.MethodGet, "/v2/app/manifests/latest", nil)
	benchAuthorize(b, f.guard, r, []auth.Scope{pull("app")})
}
