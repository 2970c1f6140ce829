package policy_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/policy"
)

// refMatch is the reference for rule matching: a linear scan over the
// (normalized) rules. Rules are CIDRs, so the rules that contain an
// address are nested in one another; Evaluate reports the widest of them
// (duplicates are dropped by Normalize, so there is no tie).
func refMatch(ruleSet []policy.IPRule, client netip.Addr) (string, bool) {
	client = client.Unmap()
	best, bestBits := "", 129
	for _, r := range ruleSet {
		var p netip.Prefix
		if strings.Contains(r.Value, "/") {
			p = netip.MustParsePrefix(r.Value)
		} else {
			a := netip.MustParseAddr(r.Value)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Contains(client) && p.Bits() < bestBits {
			best, bestBits = r.Value, p.Bits()
		}
	}
	return best, bestBits <= 128
}

// refEvaluate is SPEC §3's table, written out independently of Policy.
func refEvaluate(props policy.Properties, ep policy.Endpoint, client netip.Addr) policy.Decision {
	bypass := props.NetworkRuleBypassOptions == "TrustedServices"
	switch {
	case ep.Private && ep.State == policy.StateApproved:
		return policy.Decision{Allowed: true}
	case ep.Private:
		return policy.Decision{Stage: policy.StageNetwork, Reason: policy.ReasonPrivateEndpointNotApproved}
	case props.PublicNetworkAccess == "Disabled":
		return policy.Decision{Stage: policy.StageNetwork, Reason: policy.ReasonPublicNetworkAccessDisabled, Bypassable: bypass}
	case props.NetworkRuleSet.DefaultAction == "Allow":
		return policy.Decision{Allowed: true}
	}
	if rule, ok := refMatch(props.NetworkRuleSet.IPRules, client); ok {
		return policy.Decision{Allowed: true, Rule: rule}
	}
	if props.NetworkRuleSet.Mode == "Audit" {
		return policy.Decision{Allowed: true, Stage: policy.StageNetwork, Reason: policy.ReasonIPNotAllowed, Audit: true}
	}
	return policy.Decision{Stage: policy.StageNetwork, Reason: policy.ReasonIPNotAllowed, Bypassable: bypass}
}

// tableRules mixes exact addresses, CIDRs and nested CIDRs of both
// families, and one IPv4-mapped rule.
var tableRules = []string{
	"192.0.2.10",
	"198.51.100.0/24",
	"10.0.0.0/8", "10.20.0.0/16", "10.20.30.0/24", "10.20.30.40",
	"2001:db8::10",
	"2001:db8:1::/48",
	"fd00::/8", "fd00:1::/32", "fd00:1:2::/48",
	"::ffff:203.0.113.0/120",
}

// tableClients are the client addresses of the decision table with the
// rule each must be reported under ("" for none).
var tableClients = []struct {
	addr string
	rule string
}{
	{"192.0.2.10", "192.0.2.10"},
	{"192.0.2.11", ""},
	{"198.51.100.0", "198.51.100.0/24"},
	{"198.51.100.255", "198.51.100.0/24"},
	{"198.52.0.0", ""},
	{"10.20.30.40", "10.0.0.0/8"},
	{"10.20.30.41", "10.0.0.0/8"},
	{"10.255.255.255", "10.0.0.0/8"},
	{"11.0.0.0", ""},
	{"9.255.255.255", ""},
	{"203.0.113.77", "203.0.113.0/24"},
	{"::ffff:198.51.100.7", "198.51.100.0/24"},
	{"::ffff:11.0.0.1", ""},
	{"2001:db8::10", "2001:db8::10"},
	{"2001:db8::11", ""},
	{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::/48"},
	{"2001:db8:2::", ""},
	{"fd00:1:2:3::4", "fd00::/8"},
	{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::/8"},
	{"fe80::1", ""},
	{"fe80::1%eth0", ""},
	{"::1", ""},
	{"127.0.0.1", ""},
}

var endpoints = []struct {
	name string
	ep   policy.Endpoint
}{
	{"public", policy.Endpoint{}},
	{"private Approved", policy.Endpoint{Private: true, State: policy.StateApproved}},
	{"private Pending", policy.Endpoint{Private: true, State: policy.StatePending}},
	{"private Rejected", policy.Endpoint{Private: true, State: policy.StateRejected}},
	{"private Disconnected", policy.Endpoint{Private: true, State: policy.StateDisconnected}},
}

// TestEvaluateDecisionTable runs the cross product listener ×
// publicNetworkAccess × defaultAction × client × bypass × mode against the
// reference.
func TestEvaluateDecisionTable(t *testing.T) {
	rows := 0
	for _, access := range []string{"Enabled", "Disabled"} {
		for _, action := range []string{"Allow", "Deny"} {
			for _, bypass := range []string{"TrustedServices", "None"} {
				for _, mode := range []string{"Enforce", "Audit"} {
					props := policy.Properties{
						PublicNetworkAccess:      access,
						NetworkRuleBypassOptions: bypass,
						NetworkRuleSet:           policy.NetworkRuleSet{DefaultAction: action, Mode: mode, IPRules: rules(tableRules...)},
					}
					pol, err := policy.Compile(props)
					if err != nil {
						t.Fatal(err)
					}
					norm := pol.Properties()
					for _, ep := range endpoints {
						for _, c := range tableClients {
							rows++
							client := netip.MustParseAddr(c.addr)
							name := fmt.Sprintf("%s/%s/%s/%s/%s/%s", ep.name, access, action, bypass, mode, c.addr)
							got := pol.Evaluate(ep.ep, client)
							want := refEvaluate(norm, ep.ep, client)
							if got != want {
								t.Errorf("%s: Evaluate = %+v, want %+v", name, got, want)
								continue
							}
							// The reference agrees with the hand-computed rule.
							if rule, _ := refMatch(norm.NetworkRuleSet.IPRules, client); rule != c.rule {
								t.Fatalf("%s: reference matched %q, table says %q", name, rule, c.rule)
							}
							checkInvariants(t, name, props, ep.ep, got)
						}
					}
				}
			}
		}
	}
	if want := 2 * 2 * 2 * 2 * len(endpoints) * len(tableClients); rows != want {
		t.Fatalf("%d rows, want %d", rows, want)
	}
}

// checkInvariants are SPEC §3's sentences that hold for any decision.
func checkInvariants(t *testing.T, name string, props policy.Properties, ep policy.Endpoint, d policy.Decision) {
	t.Helper()
	if d.Allowed && d.Stage != policy.StageNone && !d.Audit {
		t.Errorf("%s: an allow with stage %v outside Audit", name, d.Stage)
	}
	if !d.Allowed && d.Stage != policy.StageNetwork {
		t.Errorf("%s: a denial with stage %v", name, d.Stage)
	}
	if d.Audit && (!d.Allowed || d.Reason != policy.ReasonIPNotAllowed) {
		t.Errorf("%s: audit flag on %+v", name, d)
	}
	if d.Rule != "" && !d.Allowed {
		t.Errorf("%s: rule %q on a denial", name, d.Rule)
	}
	if d.Bypassable && (ep.Private || d.Allowed || props.NetworkRuleBypassOptions == "None") {
		t.Errorf("%s: bypassable %+v", name, d)
	}
	if ep.Private && ep.State != policy.StateApproved && (d.Allowed || d.Reason != policy.ReasonPrivateEndpointNotApproved) {
		t.Errorf("%s: an unapproved private endpoint gave %+v", name, d)
	}
	if !ep.Private && props.PublicNetworkAccess == "Disabled" && d.Allowed {
		t.Errorf("%s: public access disabled but allowed (Audit must not lift it)", name)
	}
}

// TestEvaluateSeed names the rows of the seed document and SPEC §3.
func TestEvaluateSeed(t *testing.T) {
	var (
		public       = policy.Endpoint{}
		approved     = policy.Endpoint{Private: true, State: policy.StateApproved}
		pending      = policy.Endpoint{Private: true, State: policy.StatePending}
		disconnected = policy.Endpoint{Private: true, State: policy.StateDisconnected}
		outside      = netip.MustParseAddr("203.0.113.50")
		office       = netip.MustParseAddr("198.51.100.23")
		office6      = netip.MustParseAddr("2001:db8:cafe::23")
	)
	selected := func(mode, bypass string) policy.Properties {
		return policy.Properties{
			NetworkRuleSet:           policy.NetworkRuleSet{DefaultAction: "Deny", Mode: mode, IPRules: rules("198.51.100.0/24", "2001:db8:cafe::/48")},
			NetworkRuleBypassOptions: bypass,
		}
	}
	disabled := func(bypass string) policy.Properties {
		return policy.Properties{PublicNetworkAccess: "Disabled", NetworkRuleBypassOptions: bypass}
	}
	deny := func(r policy.Reason, bypassable bool) policy.Decision {
		return policy.Decision{Stage: policy.StageNetwork, Reason: r, Bypassable: bypassable}
	}
	tests := []struct {
		name   string
		props  policy.Properties
		ep     policy.Endpoint
		client netip.Addr
		want   policy.Decision
	}{
		{"new registry: everything open", policy.Properties{}, public, outside, policy.Decision{Allowed: true}},
		{"public access disabled, trusted services allowed (the default)", disabled(""), public, outside,
			deny(policy.ReasonPublicNetworkAccessDisabled, true)},
		{"public access disabled, AzureServices alias", disabled("AzureServices"), public, outside,
			deny(policy.ReasonPublicNetworkAccessDisabled, true)},
		{"public access disabled, trusted services off", disabled("None"), public, outside,
			deny(policy.ReasonPublicNetworkAccessDisabled, false)},
		{"public access disabled wins over a matching rule", func() policy.Properties {
			p := selected("", "")
			p.PublicNetworkAccess = "Disabled"
			return p
		}(), public, office, deny(policy.ReasonPublicNetworkAccessDisabled, true)},
		{"selected networks: office IPv4", selected("", ""), public, office, policy.Decision{Allowed: true, Rule: "198.51.100.0/24"}},
		{"selected networks: office IPv6", selected("", ""), public, office6, policy.Decision{Allowed: true, Rule: "2001:db8:cafe::/48"}},
		{"selected networks: outside, trusted services on", selected("", ""), public, outside, deny(policy.ReasonIPNotAllowed, true)},
		{"selected networks: outside, trusted services off", selected("", "None"), public, outside, deny(policy.ReasonIPNotAllowed, false)},
		{"selected networks, Audit: outside is allowed and flagged", selected("Audit", "None"), public, outside,
			policy.Decision{Allowed: true, Stage: policy.StageNetwork, Reason: policy.ReasonIPNotAllowed, Audit: true}},
		{"Audit does not lift public access disabled", func() policy.Properties {
			p := disabled("None")
			p.NetworkRuleSet.Mode = "Audit"
			return p
		}(), public, outside, deny(policy.ReasonPublicNetworkAccessDisabled, false)},
		{"Audit does not lift an unapproved endpoint", selected("Audit", ""), pending, office, deny(policy.ReasonPrivateEndpointNotApproved, false)},
		{"private endpoint approved while public access is disabled", disabled("None"), approved, outside, policy.Decision{Allowed: true}},
		{"private endpoint approved ignores the IP rules", selected("", "None"), approved, outside, policy.Decision{Allowed: true}},
		{"private endpoint pending: refused whoever sends it", policy.Properties{}, pending, office, deny(policy.ReasonPrivateEndpointNotApproved, false)},
		{"private endpoint disconnected, bypass on: not bypassable", disabled(""), disconnected, office, deny(policy.ReasonPrivateEndpointNotApproved, false)},
		{"invalid client address under Deny", selected("", ""), public, netip.Addr{}, deny(policy.ReasonIPNotAllowed, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := policy.Compile(tt.props)
			if err != nil {
				t.Fatal(err)
			}
			if got := pol.Evaluate(tt.ep, tt.client); got != tt.want {
				t.Fatalf("Evaluate = %+v, want %+v", got, tt.want)
			}
			if got := refEvaluate(pol.Properties(), tt.ep, tt.client); got != tt.want {
				t.Fatalf("reference = %+v, want %+v (the reference is wrong)", got, tt.want)
			}
		})
	}
}

// TestEvaluateBoundaries checks every rule at its first and last address
// and just outside, in both families, with many rules.
func TestEvaluateBoundaries(t *testing.T) {
	var values []string
	for i := range 300 {
		values = append(values, fmt.Sprintf("10.%d.%d.0/%d", i/16, (i%16)*16, 20+i%9))
		values = append(values, fmt.Sprintf("2001:db8:%x::/%d", i*7, 40+i%20))
	}
	values = append(values, "128.0.0.0/1", "172.16.0.0/12", "172.16.5.5", "8000::/1", "fc00::/7")
	pol, err := policy.Compile(policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny", IPRules: rules(values...)}})
	if err != nil {
		t.Fatal(err)
	}
	norm := pol.Properties().NetworkRuleSet.IPRules
	for _, r := range norm {
		p, err := policy.ParseRuleValue(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		first := p.Masked().Addr()
		last := lastAddr(p)
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if !a.IsValid() {
				continue
			}
			want, wantOK := refMatch(norm, a)
			got := pol.Evaluate(policy.Endpoint{}, a)
			if got.Allowed != wantOK || got.Rule != want {
				t.Errorf("rule %s, client %s: Evaluate = %+v, want allowed %v rule %q", r.Value, a, got, wantOK, want)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	pol, err := policy.Compile(policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny", IPRules: rules(tableRules...)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tableClients {
		a := netip.MustParseAddr(c.addr)
		if n := testing.AllocsPerRun(100, func() { pol.Evaluate(policy.Endpoint{}, a) }); n != 0 {
			t.Errorf("Evaluate(%s) allocates %v times", a, n)
		}
	}
}
