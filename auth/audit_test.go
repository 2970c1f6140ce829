package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
)

// TestAuditLog: denials and Audit-mode allows reach the bbolt audit log,
// which is bounded and queried newest first with filters.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{auditToDB: true, auditLimit: 6})
	f.user("alice", "AcrPull", "repositories/app")
	start := time.Now().Add(-time.Second)

	// 1 authz denial, 1 authn denial, 1 plain allow (not logged).
	f.authorize(basic("alice"), push("app"))
	f.authorize(call{user: "alice", pass: "wrong"}, pull("app"))
	f.authorize(basic("alice"), pull("app"))
	// Audit mode: an allow flagged audit, then a network denial.
	f.props(func(p *auth.Properties) {
		p.NetworkRuleSet.DefaultAction = policy.ActionDeny
		p.NetworkRuleSet.Mode = policy.ModeAudit
	})
	if _, e := f.authorize(basic("alice").from("203.0.113.1"), pull("app")); e != nil {
		t.Fatalf("audit mode: %v", e)
	}
	f.props(func(p *auth.Properties) {
		p.PublicNetworkAccess = policy.Disabled
		p.NetworkRuleBypassOptions = policy.BypassNone
	})
	f.authorize(basic("alice").from("203.0.113.2"), pull("app"))
	f.auditor.Sync()

	all, err := auth.QueryAudit(ctx, f.db, auth.AuditQuery{})
	f.must(err)
	type row struct {
		ip, principal, action, stage, reason string
		allowed, audit                       bool
	}
	var got []row
	for _, e := range all {
		got = append(got, row{e.ClientIP, e.Principal, e.Action, e.Stage, e.Reason, e.Allowed, e.Audit})
		if e.Time.Before(start) || e.Time.After(time.Now()) || e.Endpoint != "public" {
			t.Errorf("entry %+v", e)
		}
		if e.Action != "catalog" && e.Repository != "app" {
			t.Errorf("entry %+v: repository", e)
		}
	}
	want := []row{ // newest first
		{"203.0.113.2", "", "pull", "network", "PublicNetworkAccessDisabled", false, false},
		{"203.0.113.1", "alice", "pull", "network", "IPNotAllowed", true, true},
		{"192.0.2.1", "", "pull", "authn", "InvalidCredentials", false, false},
		{"192.0.2.1", "alice", "pull,push", "authz", "NoRole", false, false},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit log\n %v\nwant\n %v", got, want)
	}

	yes, no := true, false
	queries := []struct {
		name string
		q    auth.AuditQuery
		n    int
	}{
		{"stage network", auth.AuditQuery{Stage: "network"}, 2},
		{"stage authz", auth.AuditQuery{Stage: "authz"}, 1},
		{"denied", auth.AuditQuery{Allowed: &no}, 3},
		{"allowed", auth.AuditQuery{Allowed: &yes}, 1},
		{"limit", auth.AuditQuery{Limit: 2}, 2},
		{"since now", auth.AuditQuery{Since: time.Now().Add(time.Second)}, 0},
		{"since start", auth.AuditQuery{Since: start}, 4},
		{"network denied", auth.AuditQuery{Stage: "network", Allowed: &no}, 1},
	}
	for _, q := range queries {
		res, err := auth.QueryAudit(ctx, f.db, q.q)
		f.must(err)
		if len(res) != q.n {
			t.Errorf("%s: %d entries, want %d", q.name, len(res), q.n)
		}
	}
	if res, _ := auth.QueryAudit(ctx, f.db, auth.AuditQuery{Limit: 1}); len(res) != 1 || res[0].ClientIP != "203.0.113.2" {
		t.Errorf("limit 1: %+v, want the newest", res)
	}

	// Bounded: the oldest entries go past the limit (6).
	for i := range 5 {
		f.authorize(basic("alice").from(fmt.Sprintf("203.0.113.%d", 100+i)), pull("app"))
	}
	f.auditor.Sync()
	all, err = auth.QueryAudit(ctx, f.db, auth.AuditQuery{})
	f.must(err)
	if len(all) != 6 || all[0].ClientIP != "203.0.113.104" || all[5].ClientIP != "203.0.113.2" {
		var ips []string
		for _, e := range all {
			ips = append(ips, e.ClientIP)
		}
		t.Errorf("bounded log: %v", ips)
	}
	if f.auditor.Dropped() != 0 {
		t.Errorf("dropped %d", f.auditor.Dropped())
	}
	// Every decision, allows by bypass and audit included, reached the
	// metrics callback; plain allows did not.
	decisions, _ := f.log.take()
	if len(decisions) != 4+5 {
		t.Errorf("%d decisions seen by metrics, want 9", len(decisions))
	}
}

// TestAdminAuthentication: the control plane authenticates without the
// network rules and reports the caller's level.
func TestAdminAuthentication(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.user("owner", "Owner", "/")
	f.user("reader", "Reader", "/")
	f.user("repo-owner", "Owner", "repositories/app")
	f.props(func(p *auth.Properties) {
		p.PublicNetworkAccess = policy.Disabled
		p.NetworkRuleBypassOptions = policy.BypassNone
	})
	for name, want := range map[string]auth.Level{"owner": auth.LevelOwner, "reader": auth.LevelReader, "repo-owner": auth.LevelNone} {
		c, err := f.guard.AuthenticateAdmin(basic(name).from("203.0.113.9").request("GET", "/admin/v1/registry", nil))
		if err != nil || c.Level != want || c.Principal.Name != name {
			t.Errorf("%s: %+v, %v; want level %v", name, c, err, want)
		}
	}
	tok := func() string {
		f.props(func(p *auth.Properties) {})
		defer f.props(func(p *auth.Properties) { p.PublicNetworkAccess = policy.Disabled })
		return f.accessToken(basic("owner"))
	}()
	// An access token is scoped to repositories: it does not carry its
	// identity's admin level.
	for _, c := range []call{{}, {user: "owner", pass: "wrong"}, {bearer: "x"}, {bearer: tok}} {
		_, err := f.guard.AuthenticateAdmin(c.request("GET", "/admin/v1/registry", nil))
		if e := asErr(t, err); e.Code.Status != 401 || e.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%+v: %v", c, e)
		}
	}
}
