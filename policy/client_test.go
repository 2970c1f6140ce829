package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/policy"
)

func proxies(values ...string) policy.Proxies {
	out := make(policy.Proxies, len(values))
	for i, v := range values {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}

func TestProxiesContains(t *testing.T) {
	ps := proxies("10.0.0.0/8", "fd00::/8", "192.0.2.1/32")
	for addr, want := range map[string]bool{
		"10.1.2.3":          true,
		"::ffff:10.1.2.3":   true,
		"192.0.2.1":         true,
		"192.0.2.2":         false,
		"fd12::1":           true,
		"fe80::1":           false,
		"11.0.0.1":          false,
		"::ffff:192.0.2.1":  true,
		"::ffff:192.0.2.99": false,
	} {
		if got := ps.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if policy.Proxies(nil).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("no proxies contain 10.0.0.1")
	}
	if ps.Contains(netip.Addr{}) {
		t.Error("the invalid address is a proxy")
	}
}

func TestClientAddress(t *testing.T) {
	trusted := proxies("10.0.0.0/8", "fd00::/8")
	tests := []struct {
		name    string
		proxies policy.Proxies
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies, no header", nil, "203.0.113.5", nil, "203.0.113.5"},
		{"no proxies: the header changes nothing", nil, "203.0.113.5", []string{"198.51.100.7"}, "203.0.113.5"},
		{"no proxies, mapped peer", nil, "::ffff:203.0.113.5", nil, "203.0.113.5"},
		{"untrusted peer with a forged header", trusted, "203.0.113.5", []string{"10.0.0.1"}, "203.0.113.5"},
		{"untrusted peer with a forged chain", trusted, "203.0.113.5", []string{"198.51.100.7, 10.0.0.2"}, "203.0.113.5"},
		{"trusted peer without header", trusted, "10.0.0.1", nil, "10.0.0.1"},
		{"trusted peer, empty header", trusted, "10.0.0.1", []string{""}, "10.0.0.1"},
		{"trusted peer, only commas and blanks", trusted, "10.0.0.1", []string{" , ,\t,"}, "10.0.0.1"},
		{"trusted peer, one entry", trusted, "10.0.0.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", trusted, "10.0.0.1", []string{"198.51.100.7, 10.0.0.3, 10.0.0.2"}, "198.51.100.7"},
		{"right-most untrusted wins over a forged left part", trusted, "10.0.0.1", []string{"1.1.1.1, 2.2.2.2, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"every entry trusted: the left-most", trusted, "10.0.0.1", []string{"10.0.0.5, 10.0.0.4"}, "10.0.0.5"},
		{"several header lines, last line last", trusted, "10.0.0.1", []string{"1.1.1.1", "198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"several header lines, client on the first", trusted, "10.0.0.1", []string{"1.1.1.1, 198.51.100.7", "10.0.0.2", "10.0.0.3"}, "198.51.100.7"},
		{"several header lines with an empty one", trusted, "10.0.0.1", []string{"198.51.100.7", ""}, "198.51.100.7"},
		{"IPv4 with port", trusted, "10.0.0.1", []string{"198.51.100.7:4711"}, "198.51.100.7"},
		{"IPv6 bare", trusted, "10.0.0.1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 in brackets", trusted, "10.0.0.1", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv6 in brackets with port", trusted, "10.0.0.1", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv6 trusted peer and proxy", trusted, "fd00::1", []string{"2001:db8::7, [fd00::2]:80"}, "2001:db8::7"},
		{"surrounding blanks", trusted, "10.0.0.1", []string{"  198.51.100.7\t ,  10.0.0.2 "}, "198.51.100.7"},
		{"IPv4-mapped peer is trusted", trusted, "::ffff:10.0.0.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped entry is unmapped", trusted, "10.0.0.1", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped proxy entry is trusted", trusted, "10.0.0.1", []string{"198.51.100.7, ::ffff:10.0.0.2"}, "198.51.100.7"},
		{"garbage right after the peer: the peer", trusted, "10.0.0.1", []string{"198.51.100.7, unknown"}, "10.0.0.1"},
		{"garbage after a trusted hop: that hop", trusted, "10.0.0.1", []string{"198.51.100.7, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"garbage left of the client is never read", trusted, "10.0.0.1", []string{"garbage, 198.51.100.7"}, "198.51.100.7"},
		{"zone is garbage", trusted, "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"bad port is garbage", trusted, "10.0.0.1", []string{"198.51.100.7:99999"}, "10.0.0.1"},
		{"hostname is garbage", trusted, "10.0.0.1", []string{"client.example.com"}, "10.0.0.1"},
		{"RFC 7239 syntax is garbage", trusted, "10.0.0.1", []string{"for=198.51.100.7"}, "10.0.0.1"},
		{"half a bracket is garbage", trusted, "10.0.0.1", []string{"[2001:db8::7"}, "10.0.0.1"},
		{"invalid peer", trusted, "", []string{"198.51.100.7"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var peer netip.Addr
			if tt.peer != "" {
				peer = netip.MustParseAddr(tt.peer)
			}
			got := tt.proxies.ClientAddress(peer, tt.xff)
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Fatalf("ClientAddress(%s, %q) = %v, want %v", tt.peer, tt.xff, got, want)
			}
			if ref := refClientAddress(tt.proxies, peer, tt.xff); ref != want {
				t.Fatalf("reference = %v, want %v (the reference is wrong)", ref, want)
			}
		})
	}
}

func TestClientAddressDoesNotAllocate(t *testing.T) {
	ps := proxies("10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.1")
	xff := []string{"1.1.1.1", "198.51.100.7, 10.0.0.3, [fd00::1]:80, 10.0.0.2"}
	if n := testing.AllocsPerRun(100, func() { ps.ClientAddress(peer, xff) }); n != 0 {
		t.Errorf("ClientAddress allocates %v times", n)
	}
}

// refClientAddress is a reference for ClientAddress: flatten the header
// lines into entries, then walk them right to left.
func refClientAddress(ps policy.Proxies, peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap()
	trusted := func(a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !trusted(peer) {
		return peer
	}
	var entries []string
	for _, line := range xff {
		for _, e := range strings.Split(line, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := refParseEntry(entries[i])
		if !ok {
			break
		}
		client = a
		if !trusted(a) {
			break
		}
	}
	return client
}

// refParseEntry accepts "addr", "ipv4:port", "[ipv6]" and "[ipv6]:port".
func refParseEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(inner, "]"); ok {
			if a, err := netip.ParseAddr(inner); err == nil && a.Zone() == "" {
				return a.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}
