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
// with a port ("192.0.2.1:8080", "[2001:db8::1]:8080", "[2001:db8::1]").
// The form is chosen by syntax first, so that a well-formed entry never
// goes through a failed parse (a netip parse error allocates).
func parseForwarded(s string) (netip.Addr, bool) {
	var a netip.Addr
	switch {
	case s[0] == '[' && s[len(s)-1] == ']':
		var err error
		if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
			return netip.Addr{}, false
		}
	case s[0] == '[' || strings.Count(s, ":") == 1:
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	default:
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, false
		}
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
