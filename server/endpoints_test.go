package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
)

// TestEndpointsFollowTheDirectory: an endpoint stored by another replica
// (written straight to the directory, as its change notification would
// arrive here) gets a listener here; one deleted elsewhere closes here.
func TestEndpointsFollowTheDirectory(t *testing.T) {
	s, _ := start(t, nil, nil)
	ctx := context.Background()
	listening := func(name string) (string, bool) {
		s.eps.mu.Lock()
		defer s.eps.mu.Unlock()
		el := s.eps.open[name]
		if el == nil {
			return "", false
		}
		return el.ln.Addr().String(), true
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, _, err := s.dir.PutPrivateEndpoint(ctx, auth.PrivateEndpoint{Name: "elsewhere", Listen: "127.0.0.7:0", State: "Approved"}); err != nil {
		t.Fatal(err)
	}
	var addr string
	waitFor("the listener to open", func() bool {
		var ok bool
		addr, ok = listening("elsewhere")
		return ok
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.Close()
	if err := s.dir.DeletePrivateEndpoint(ctx, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	waitFor("the listener to close", func() bool { _, ok := listening("elsewhere"); return !ok })
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
}
