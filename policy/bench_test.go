package policy_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/moat-registry/moat/policy"
)

// benchPolicy compiles a Deny policy with n IPv4 and n IPv6 rules (CIDRs
// and single hosts, some nested).
func benchPolicy(b *testing.B, n int) *policy.Policy {
	b.Helper()
	var values []string
	for i := range n / 2 {
		switch i % 3 {
		case 0:
			values = append(values, fmt.Sprintf("10.%d.%d.0/24", i>>8&0xff, i&0xff))
		case 1:
			values = append(values, fmt.Sprintf("10.%d.%d.7", i>>8&0xff, i&0xff))
		default:
			values = append(values, fmt.Sprintf("10.%d.0.0/16", 128+i%100))
		}
		values = append(values, fmt.Sprintf("2001:db8:%x::/48", i))
	}
	pol, err := policy.Compile(policy.Properties{NetworkRuleSet: policy.NetworkRuleSet{DefaultAction: "Deny", IPRules: rules(values...)}})
	if err != nil {
		b.Fatal(err)
	}
	return pol
}

func BenchmarkEvaluate(b *testing.B) {
	clients := []struct {
		name string
		addr netip.Addr
	}{
		{"IPv4-hit", netip.MustParseAddr("10.0.3.9")},
		{"IPv4-miss", netip.MustParseAddr("192.0.2.1")},
		{"IPv6-hit", netip.MustParseAddr("2001:db8:3::9")},
		{"IPv6-miss", netip.MustParseAddr("2001:db9::1")},
	}
	for _, n := range []int{0, 10, 1000} {
		pol := benchPolicy(b, n)
		for _, c := range clients {
			want := n > 0 && c.name[len(c.name)-3:] == "hit"
			if d := pol.Evaluate(policy.Endpoint{}, c.addr); d.Allowed != want || (want && d.Rule == "") {
				b.Fatalf("%d rules, %s: Evaluate = %+v", n, c.addr, d)
			}
			b.Run(fmt.Sprintf("rules=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					pol.Evaluate(policy.Endpoint{}, c.addr)
				}
			})
		}
	}
}

func BenchmarkClientAddress(b *testing.B) {
	ps := proxies("10.0.0.0/8", "fd00::/8")
	peer := netip.MustParseAddr("10.0.0.1")
	xff := []string{"198.51.100.7, 10.0.0.3, 10.0.0.2"}
	if got := ps.ClientAddress(peer, xff); got != netip.MustParseAddr("198.51.100.7") {
		b.Fatalf("ClientAddress = %v", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		ps.ClientAddress(peer, xff)
	}
}
