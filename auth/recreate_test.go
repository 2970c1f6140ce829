package auth_test

import (
	"testing"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/policy"
)

// TestRecreatedTokenIsSomeoneElse: a repository token deleted and
// re-created under the same name has a new immutable id, so a JWT issued
// to the old one no longer works.
func TestRecreatedTokenIsSomeoneElse(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.token("ci", "repositories/app/content/read")
	tok := f.accessToken(basic("ci"), "repository:app:pull")
	if _, e := f.authorize(call{bearer: tok}, pull("app")); e != nil {
		t.Fatalf("fresh token refused: %v", e)
	}
	f.must(f.dir.DeleteToken(ctx, "ci"))
	f.token("ci", "repositories/app/content/read")
	if _, e := f.authorize(call{bearer: tok}, pull("app")); e == nil || e.Code.Status != 401 {
		t.Fatalf("the old token after re-creation: %v, want 401", e)
	}
}

// TestPropertiesAnyCase: property values match case-insensitively, as ARM
// and az accept them, and are stored in their canonical spelling.
func TestPropertiesAnyCase(t *testing.T) {
	p := auth.Properties{Properties: policy.Properties{
		PublicNetworkAccess:      "disabled",
		NetworkRuleSet:           policy.NetworkRuleSet{DefaultAction: "DENY", Mode: "audit", IPRules: []policy.IPRule{{Action: "allow", Value: "192.0.2.1"}}},
		NetworkRuleBypassOptions: "azureservices",
	}, Policies: auth.Policies{ExportPolicy: auth.ExportPolicy{Status: "Disabled"}}}
	if err := p.Normalize(); err != nil {
		t.Fatal(err)
	}
	got := []string{p.PublicNetworkAccess, p.NetworkRuleSet.DefaultAction, p.NetworkRuleSet.Mode, p.NetworkRuleSet.IPRules[0].Action, p.NetworkRuleBypassOptions, p.Policies.ExportPolicy.Status}
	want := []string{"Disabled", "Deny", "Audit", "Allow", "TrustedServices", "disabled"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d = %q, want %q", i, got[i], want[i])
		}
	}
}
