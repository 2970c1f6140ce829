package server

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/moat-registry/moat/config"
)

// TestRateLimitKeys: an IPv6 client shares one bucket across its /64; IPv4
// addresses have one each.
func TestRateLimitKeys(t *testing.T) {
	t.Parallel()
	s := build(t, func(c *config.Config) { c.Limits.Rate, c.Limits.Burst = 0.001, 1 })
	l := newLimiter(s)
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:ffff::9", false}, // same /64: the bucket is empty
		{"2001:db8:1:3::1", true},       // the next /64
		{"192.0.2.1", true},
		{"192.0.2.2", true},
		{"::ffff:192.0.2.1", false}, // 192.0.2.1 again
	} {
		if _, ok := l.allow(netip.MustParseAddr(tt.addr)); ok != tt.ok {
			t.Errorf("allow(%s) = %v, want %v", tt.addr, ok, tt.ok)
		}
	}
}

// TestRateLimitClientsAreBounded: past maxClients, the least recently seen
// client is forgotten; the buckets of recent ones are kept.
func TestRateLimitClientsAreBounded(t *testing.T) {
	t.Parallel()
	s := build(t, func(c *config.Config) { c.Limits.Rate, c.Limits.Burst = 0.001, 1 })
	l := newLimiter(s)
	l.maxClients = 3
	recent := netip.MustParseAddr("198.51.100.1")
	for i := range 50 {
		l.allow(netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", i)))
		l.allow(recent)
	}
	if n := len(l.clients); n > 3 || l.lru.Len() != n {
		t.Errorf("%d clients kept (list %d), want at most 3", n, l.lru.Len())
	}
	if _, ok := l.allow(recent); ok {
		t.Error("the most recent client's empty bucket was forgotten")
	}
}
