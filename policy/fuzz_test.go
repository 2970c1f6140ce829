package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/policy"
)

func FuzzParseRuleValue(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1/24", "2001:db8::1/64", "::ffff:192.0.2.1/104",
		"::ffff:0.0.0.0/95", "fe80::1%eth0", "0.0.0.0/0", "::/0", "", "/", "1.2.3.4/33", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := policy.ParseRuleValue(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParseRuleValue(%q) = %v: not a canonical prefix", s, p)
		}
		// The canonical form is a fixed point.
		v := policy.FormatRuleValue(p)
		q, err := policy.ParseRuleValue(v)
		if err != nil || q != p || policy.FormatRuleValue(q) != v {
			t.Fatalf("ParseRuleValue(%q) = %v, canonical %q parses to %v, %v", s, p, v, q, err)
		}
		// An address (not a CIDR) is a single host.
		if !strings.Contains(s, "/") && !p.IsSingleIP() {
			t.Fatalf("ParseRuleValue(%q) = %v: an address became a range", s, p)
		}
		// As a rule it normalizes to the same value.
		props := withRules(policy.Properties{}, s)
		if err := props.Normalize(); err != nil || props.NetworkRuleSet.IPRules[0].Value != v {
			t.Fatalf("Normalize(%q) = %v, %v; want %q", s, props.NetworkRuleSet.IPRules, err, v)
		}
	})
}

// fuzzRules decodes rules from data: per rule a family byte, an address
// and a prefix length. Short prefixes are likely so rules overlap.
func fuzzRules(data []byte) (values []string, rest []byte) {
	for len(data) > 0 && len(values) < 64 {
		fam := data[0]
		data = data[1:]
		var p netip.Prefix
		if fam&1 == 0 {
			if len(data) < 5 {
				break
			}
			a := netip.AddrFrom4([4]byte(data[:4]))
			p = netip.PrefixFrom(a, int(data[4])%33)
			data = data[5:]
		} else {
			if len(data) < 17 {
				break
			}
			a := netip.AddrFrom16([16]byte(data[:16]))
			p = netip.PrefixFrom(a, int(data[16])%129)
			data = data[17:]
		}
		s := p.String()
		if fam&2 != 0 && p.Bits() == p.Addr().BitLen() {
			s = p.Addr().String() // the bare-address form
		}
		values = append(values, s)
	}
	return values, data
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 0, 8, 0, 10, 1, 0, 0, 16, 2, 10, 1, 2, 3, 32}, []byte{10, 1, 2, 3}, uint8(0))
	f.Add([]byte{1, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 32}, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, uint8(5))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 0, 120}, []byte{192, 0, 2, 9}, uint8(0xff))
	f.Fuzz(func(t *testing.T, ruleData, clientData []byte, flags uint8) {
		values, _ := fuzzRules(ruleData)
		props := policy.Properties{
			PublicNetworkAccess:      pick(flags&1 != 0, "Disabled", "Enabled"),
			NetworkRuleBypassOptions: pick(flags&2 != 0, "None", "AzureServices"),
			NetworkRuleSet: policy.NetworkRuleSet{
				DefaultAction: pick(flags&4 == 0, "Deny", "Allow"),
				Mode:          pick(flags&8 != 0, "Audit", "Enforce"),
				IPRules:       rules(values...),
			},
		}
		pol, err := policy.Compile(props)
		if err != nil {
			t.Fatalf("Compile(%v) = %v", values, err)
		}
		var client netip.Addr
		switch len(clientData) {
		case 4:
			client = netip.AddrFrom4([4]byte(clientData))
		case 16:
			client = netip.AddrFrom16([16]byte(clientData))
		default:
			// An address near a rule's edge is the interesting case.
			if n := len(pol.Properties().NetworkRuleSet.IPRules); n > 0 && len(clientData) > 0 {
				r := pol.Properties().NetworkRuleSet.IPRules[int(clientData[0])%n]
				p, err := policy.ParseRuleValue(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				client = [...]netip.Addr{p.Addr(), lastAddr(p), p.Addr().Prev(), lastAddr(p).Next()}[int(clientData[0]>>6)]
			}
		}
		ep := policy.Endpoint{}
		if flags&16 != 0 {
			ep = policy.Endpoint{Private: true, State: policy.EndpointState(1 + flags>>5%4)}
		}
		got := pol.Evaluate(ep, client)
		want := refEvaluate(pol.Properties(), ep, client)
		if got != want {
			t.Fatalf("rules %v, client %v, endpoint %+v, flags %08b: Evaluate = %+v, want %+v", values, client, ep, flags, got, want)
		}
	})
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

func FuzzClientAddress(f *testing.F) {
	f.Add("10.0.0.1", "10.0.0.0/8", "198.51.100.7, 10.0.0.2", "")
	f.Add("::ffff:10.0.0.1", "10.0.0.0/8", "[2001:db8::1]:80", "1.1.1.1, 10.0.0.9")
	f.Add("fd00::1", "fd00::/8", "garbage, 198.51.100.7:1", "fd00::2")
	f.Add("203.0.113.5", "10.0.0.0/8", "10.0.0.1", "")
	f.Fuzz(func(t *testing.T, peerS, proxyS, xff1, xff2 string) {
		peer, err := netip.ParseAddr(peerS)
		if err != nil {
			return
		}
		var ps policy.Proxies
		for s := range strings.SplitSeq(proxyS, " ") {
			if p, err := netip.ParsePrefix(s); err == nil {
				ps = append(ps, p)
			}
		}
		xff := []string{xff1, xff2}
		got := ps.ClientAddress(peer, xff)
		if ref := refClientAddress(ps, peer, xff); ref != got {
			t.Fatalf("ClientAddress(%v, %q) with %v = %v, reference %v", peer, xff, ps, got, ref)
		}
		if got == peer.Unmap() {
			return
		}
		if !ps.Contains(peer) {
			t.Fatalf("untrusted peer %v: ClientAddress = %v, want the peer", peer, got)
		}
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("ClientAddress = %v: mapped or zoned", got)
		}
		found := false
		for _, line := range xff {
			for e := range strings.SplitSeq(line, ",") {
				if a, ok := refParseEntry(strings.TrimSpace(e)); ok && a == got {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("ClientAddress(%v, %q) = %v: neither the peer nor an entry", peer, xff, got)
		}
	})
}
