package auth

import (
	"net"
	"net/http"
	"net/netip"
)

// IsLocalDevRequest reports whether r comes from this machine in the sense
// of the zero-config profile: a loopback TCP peer, no Forwarded,
// X-Forwarded-For or X-Real-IP header, and a Host of localhost, 127.0.0.1
// or [::1] (any port). A reverse proxy on the same host forwards headers,
// and a DNS-rebinding page sends its own Host, so neither qualifies.
func IsLocalDevRequest(r *http.Request) bool {
	peer, ok := PeerAddr(r)
	if !ok || !peer.IsLoopback() {
		return false
	}
	h := r.Header
	if len(h["Forwarded"]) > 0 || len(h["X-Forwarded-For"]) > 0 || len(h["X-Real-Ip"]) > 0 {
		return false
	}
	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// PeerAddr is the TCP peer's address of r.
func PeerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
