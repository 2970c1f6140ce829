package policy_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/moat-registry/moat/policy"
)

func rules(values ...string) []policy.IPRule {
	out := make([]policy.IPRule, len(values))
	for i, v := range values {
		out[i] = policy.IPRule{Action: policy.ActionAllow, Value: v}
	}
	return out
}

func TestDefaultProperties(t *testing.T) {
	got := policy.DefaultProperties()
	want := policy.Properties{
		PublicNetworkAccess:      "Enabled",
		NetworkRuleSet:           policy.NetworkRuleSet{DefaultAction: "Allow", IPRules: []policy.IPRule{}, Mode: "Enforce"},
		NetworkRuleBypassOptions: "TrustedServices",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultProperties() = %+v, want %+v", got, want)
	}
	n := got
	if err := n.Normalize(); err != nil || !reflect.DeepEqual(n, want) {
		t.Fatalf("Normalize(defaults) = %+v, %v; want unchanged", n, err)
	}
}

func TestNormalize(t *testing.T) {
	defaults := policy.DefaultProperties()
	tests := []struct {
		name string
		in   policy.Properties
		want policy.Properties // compared when wantErr is empty
		// wantErr lists substrings of the error (the property's path first).
		wantErr []string
	}{
		{name: "empty gets defaults", in: policy.Properties{}, want: defaults},
		{name: "AzureServices is an alias", in: policy.Properties{NetworkRuleBypassOptions: "AzureServices"}, want: defaults},
		{
			name: "every value explicit",
			in: policy.Properties{PublicNetworkAccess: "Disabled", NetworkRuleBypassOptions: "None",
				NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny", Mode: "Audit"}},
			want: policy.Properties{PublicNetworkAccess: "Disabled", NetworkRuleBypassOptions: "None",
				NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny", Mode: "Audit", IPRules: []policy.IPRule{}}},
		},
		{
			name: "rule action defaults to Allow",
			in:   policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{IPRules: []policy.IPRule{{Value: "192.0.2.1"}}}},
			want: withRules(defaults, "192.0.2.1"),
		},
		{
			name: "CIDR host bits cleared",
			in:   withRules(policy.Properties{}, "192.0.2.77/24", "2001:db8:1:2::99/32", "10.1.2.3/0"),
			want: withRules(defaults, "192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0"),
		},
		{
			name: "single-host CIDR becomes an address",
			in:   withRules(policy.Properties{}, "192.0.2.1/32", "2001:db8::1/128"),
			want: withRules(defaults, "192.0.2.1", "2001:db8::1"),
		},
		{
			name: "IPv4-mapped IPv6 counts as IPv4",
			in:   withRules(policy.Properties{}, "::ffff:192.0.2.1", "::ffff:198.51.100.0/120", "::ffff:0:0/96"),
			want: withRules(defaults, "192.0.2.1", "198.51.100.0/24", "0.0.0.0/0"),
		},
		{
			name: "IPv6 canonical form",
			in:   withRules(policy.Properties{}, "2001:DB8:0:0:0:0:0:1", "FD00::/8"),
			want: withRules(defaults, "2001:db8::1", "fd00::/8"),
		},
		{
			name: "duplicates dropped, first kept, order preserved",
			in: withRules(policy.Properties{}, "198.51.100.0/24", "192.0.2.1", "192.0.2.1/32", "::ffff:192.0.2.1",
				"198.51.100.9/24", "2001:db8::/32", "2001:db8::1/32"),
			want: withRules(defaults, "198.51.100.0/24", "192.0.2.1", "2001:db8::/32"),
		},
		{
			name: "nested CIDRs are distinct rules",
			in:   withRules(policy.Properties{}, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"),
			want: withRules(defaults, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"),
		},
		{name: "exactly MaxIPRules", in: withRules(policy.Properties{}, manyRules(policy.MaxIPRules)...), want: withRules(defaults, manyRules(policy.MaxIPRules)...)},

		{name: "publicNetworkAccess invalid", in: policy.Properties{PublicNetworkAccess: "Open"}, wantErr: []string{"publicNetworkAccess", `"Open"`}},
		{name: "defaultAction invalid", in: policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Block"}}, wantErr: []string{"networkRuleSet.defaultAction", `"Block"`}},
		{name: "mode invalid", in: policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{Mode: "DryRun"}}, wantErr: []string{"networkRuleSet.mode", `"DryRun"`}},
		{name: "bypass invalid", in: policy.Properties{NetworkRuleBypassOptions: "Everything"}, wantErr: []string{"networkRuleBypassOptions", `"Everything"`}},
		{
			name:    "rule action Deny",
			in:      policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{IPRules: []policy.IPRule{{Value: "192.0.2.1"}, {Action: "Deny", Value: "192.0.2.2"}}}},
			wantErr: []string{"networkRuleSet.ipRules[1].action", `"Deny"`},
		},
		{name: "rule value garbage", in: withRules(policy.Properties{}, "192.0.2.1", "10.0.0.0/8", "example.com"), wantErr: []string{"networkRuleSet.ipRules[2].value", "example.com"}},
		{name: "rule value empty", in: withRules(policy.Properties{}, ""), wantErr: []string{"networkRuleSet.ipRules[0].value"}},
		{name: "rule value prefix too long", in: withRules(policy.Properties{}, "192.0.2.0/33"), wantErr: []string{"networkRuleSet.ipRules[0].value"}},
		{name: "rule value with zone", in: withRules(policy.Properties{}, "fe80::1%eth0"), wantErr: []string{"networkRuleSet.ipRules[0].value"}},
		{name: "more than MaxIPRules", in: withRules(policy.Properties{}, manyRules(policy.MaxIPRules+1)...), wantErr: []string{"networkRuleSet.ipRules", "1001", "1000"}},
		{
			// The bound counts the rules as given, before duplicates go.
			name:    "more than MaxIPRules with duplicates",
			in:      withRules(policy.Properties{}, append(manyRules(policy.MaxIPRules), "10.0.0.0")...),
			wantErr: []string{"networkRuleSet.ipRules"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			var before []policy.IPRule
			if p.NetworkRuleSet.IPRules != nil {
				before = append([]policy.IPRule(nil), p.NetworkRuleSet.IPRules...)
			}
			err := p.Normalize()
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Normalize() = nil error, want one naming %q", tt.wantErr[0])
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Normalize() error %q does not contain %q", err, s)
					}
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr[0]) {
					t.Errorf("Normalize() error %q does not start with the property %q", err, tt.wantErr[0])
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize() = %v", err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Fatalf("Normalize() =\n %+v\nwant\n %+v", p, tt.want)
			}
			// The caller's rule slice is not rewritten in place.
			if before != nil && !reflect.DeepEqual(tt.in.NetworkRuleSet.IPRules, before) {
				t.Errorf("Normalize() modified the input rules: %v, was %v", tt.in.NetworkRuleSet.IPRules, before)
			}
			// Normalizing twice changes nothing.
			again := p
			again.NetworkRuleSet.IPRules = append([]policy.IPRule(nil), p.NetworkRuleSet.IPRules...)
			if err := again.Normalize(); err != nil || !reflect.DeepEqual(again, p) {
				t.Errorf("second Normalize() = %+v, %v; want unchanged", again, err)
			}
		})
	}
}

func withRules(p policy.Properties, values ...string) policy.Properties {
	p.NetworkRuleSet.IPRules = rules(values...)
	return p
}

// manyRules returns n distinct canonical IPv4 host rules.
func manyRules(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return out
}

func TestParseRuleValue(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical prefix; "" for an error
	}{
		{"192.0.2.1", "192.0.2.1/32"},
		{"192.0.2.1/32", "192.0.2.1/32"},
		{"192.0.2.1/24", "192.0.2.0/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"255.255.255.255", "255.255.255.255/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/64", "2001:db8::/64"},
		{"2001:DB8::/32", "2001:db8::/32"},
		{"::/0", "::/0"},
		{"::", "::/128"},
		{"::1", "::1/128"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1/128", "192.0.2.1/32"},
		{"::ffff:192.0.2.1/104", "192.0.0.0/8"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		// Below /96 a mapped prefix reaches outside the IPv4 space: IPv6.
		{"::ffff:0.0.0.0/95", "::fffe:0:0/95"},
		{"", ""},
		{" 192.0.2.1", ""},
		{"192.0.2.1 ", ""},
		{"192.0.2", ""},
		{"192.0.2.256", ""},
		{"192.0.2.01", ""},
		{"192.0.2.1/33", ""},
		{"192.0.2.1/-1", ""},
		{"192.0.2.1/", ""},
		{"/24", ""},
		{"192.0.2.0/24/1", ""},
		{"192.0.2.0/ 24", ""},
		{"2001:db8::1/129", ""},
		{"2001:db8:::1", ""},
		{"fe80::1%eth0", ""},
		{"fe80::1%eth0/64", ""},
		{"[2001:db8::1]", ""},
		{"192.0.2.1:80", ""},
		{"localhost", ""},
		{"*", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := policy.ParseRuleValue(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseRuleValue(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRuleValue(%q) = %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Fatalf("ParseRuleValue(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got != got.Masked() {
				t.Errorf("ParseRuleValue(%q) = %v has host bits set", tt.in, got)
			}
			if got.Addr().Is4In6() {
				t.Errorf("ParseRuleValue(%q) = %v is IPv4-mapped", tt.in, got)
			}
		})
	}
}

func TestFormatRuleValue(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1/32":    "192.0.2.1",
		"192.0.2.0/24":    "192.0.2.0/24",
		"2001:db8::1/128": "2001:db8::1",
		"2001:db8::/32":   "2001:db8::/32",
		"0.0.0.0/0":       "0.0.0.0/0",
	} {
		if got := policy.FormatRuleValue(netip.MustParsePrefix(in)); got != want {
			t.Errorf("FormatRuleValue(%s) = %q, want %q", in, got, want)
		}
		// The canonical form parses back to the same prefix.
		p, err := policy.ParseRuleValue(want)
		if err != nil || p != netip.MustParsePrefix(in) {
			t.Errorf("ParseRuleValue(%q) = %v, %v; want %s", want, p, err, in)
		}
	}
}

func TestCompile(t *testing.T) {
	t.Run("invalid", func(t *testing.T) {
		p, err := policy.Compile(policy.Properties{PublicNetworkAccess: "maybe"})
		if err == nil || p != nil {
			t.Fatalf("Compile(invalid) = %v, %v; want nil and an error", p, err)
		}
		if !strings.Contains(err.Error(), "publicNetworkAccess") {
			t.Errorf("Compile error %q does not name the property", err)
		}
	})
	t.Run("normalized", func(t *testing.T) {
		in := withRules(policy.Properties{NetworkRuleBypassOptions: "AzureServices"}, "192.0.2.9/24", "192.0.2.0/24")
		p, err := policy.Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		want := withRules(policy.DefaultProperties(), "192.0.2.0/24")
		if got := p.Properties(); !reflect.DeepEqual(got, want) {
			t.Errorf("Properties() = %+v, want %+v", got, want)
		}
		if in.NetworkRuleSet.IPRules[0].Value != "192.0.2.9/24" {
			t.Errorf("Compile modified its input: %v", in.NetworkRuleSet.IPRules)
		}
	})
	for _, tt := range []struct {
		name               string
		props              policy.Properties
		bypass, restricted bool
	}{
		{"defaults", policy.Properties{}, true, false},
		{"bypass None", policy.Properties{NetworkRuleBypassOptions: "None"}, false, false},
		{"public disabled", policy.Properties{PublicNetworkAccess: "Disabled"}, true, true},
		{"default deny", policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny"}}, true, true},
		{"audit alone", policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{Mode: "Audit"}}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Compile(tt.props)
			if err != nil {
				t.Fatal(err)
			}
			if p.BypassEnabled() != tt.bypass || p.Restricted() != tt.restricted {
				t.Errorf("BypassEnabled, Restricted = %v, %v; want %v, %v", p.BypassEnabled(), p.Restricted(), tt.bypass, tt.restricted)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for i, want := range []string{"", "network", "authn", "authz"} {
		s := policy.Stage(i)
		if s.String() != want {
			t.Errorf("Stage(%d) = %q, want %q", i, s, want)
		}
		if got, ok := policy.ParseStage(want); !ok || got != s {
			t.Errorf("ParseStage(%q) = %v, %v", want, got, ok)
		}
	}
	if _, ok := policy.ParseStage("Network"); ok {
		t.Error(`ParseStage("Network") accepted`)
	}
	wantReasons := []string{"PublicNetworkAccessDisabled", "IPNotAllowed", "PrivateEndpointNotApproved",
		"TrustedServiceBypass", "NotAuthenticated", "InvalidCredentials", "NoRole", "InsufficientScope"}
	var got []string
	for _, r := range policy.Reasons() {
		got = append(got, r.String())
	}
	if !reflect.DeepEqual(got, wantReasons) {
		t.Errorf("Reasons() = %v, want SPEC §2's %v", got, wantReasons)
	}
	if policy.ReasonNone.String() != "" {
		t.Errorf("ReasonNone = %q", policy.ReasonNone)
	}
	for i, want := range []string{"Approved", "Pending", "Rejected", "Disconnected"} {
		st, ok := policy.ParseEndpointState(want)
		if !ok || st != policy.EndpointState(i+1) || st.String() != want {
			t.Errorf("ParseEndpointState(%q) = %v, %v", want, st, ok)
		}
	}
	for _, bad := range []string{"", "approved", "Unknown"} {
		if _, ok := policy.ParseEndpointState(bad); ok {
			t.Errorf("ParseEndpointState(%q) accepted", bad)
		}
	}
	var zero policy.Decision
	if zero.Allowed {
		t.Error("the zero Decision allows")
	}
}
