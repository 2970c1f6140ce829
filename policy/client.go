package policy

import (
	"net/netip"
	"strings"
)

// Proxies is the set of trusted reverse proxies (config trustedProxies).
type Proxies []netip.Prefix

// Contains reports whether a is a trusted proxy.
func (ps Proxies) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddress is the address a request is judged by: the TCP peer, or,
// only when the peer is a trusted proxy, the right-most X-Forwarded-For
// entry that is not itself a trusted proxy. xff holds the header's values
// in the order they arrived. An entry that does not parse ends the walk:
// the hop that forwarded it is the client. It allocates nothing.
func (ps Proxies) ClientAddress(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap()
	if len(ps) == 0 || !ps.Contains(peer) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for len(v) > 0 {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := parseForwarded(entry)
			if !ok {
				return client
			}
			client = a
			if !ps.Contains(a) {
				return a
			}
		}
	}
	return client
}

// parseForwarded parses one X-Forwarded-For entry: an address, optionally
// with a port ("192.0.2.1:8080", "[2001:db8::1]:8080").
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
