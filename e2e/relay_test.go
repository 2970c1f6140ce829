package e2e

import (
	"io"
	"net"
	"sync"
	"testing"
)

// relay is a TCP relay that gives the clients behind it a source address
// of the test's choosing. Linux connects from 127.0.0.1 to every 127.x
// address and the clients cannot bind another, so a relay listens on
// 127.0.0.1:<port> and dials the target from Source: moat sees Source as
// the TCP peer of every connection the relay carries. Point a client at
// Host instead of moat's address; moat forms its token realm from the Host
// the client used, so the token requests go through the relay too.
type relay struct {
	// Host is 127.0.0.1:PORT, the registry part of image references
	// through the relay.
	Host string
	// URL is http://Host.
	URL string
	// Source is the address moat sees.
	Source string

	target string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startRelay starts a relay to target (host:port) from source (an IP
// address of this machine). It is stopped when the test ends.
func startRelay(t testing.TB, target, source string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{
		Host:   ln.Addr().String(),
		URL:    "http://" + ln.Addr().String(),
		Source: source,
		target: target,
		ln:     ln,
		conns:  map[net.Conn]struct{}{},
	}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.stop)
	t.Logf("relay %s → %s from %s", r.Host, target, source)
	return r
}

// ref is an image reference through the relay.
func (r *relay) ref(repoAndReference string) string {
	return r.Host + "/" + repoAndReference
}

func (r *relay) serve() {
	defer r.wg.Done()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.Source)}}
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		if !r.track(client) {
			_ = client.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(client)
			upstream, err := dialer.Dial("tcp", r.target)
			if err != nil {
				return // the client sees its connection closed
			}
			if !r.track(upstream) {
				_ = upstream.Close()
				return
			}
			defer r.untrack(upstream)
			pipe(client, upstream)
		}()
	}
}

// pipe copies both ways until both directions end, passing a half close
// on, then closes both connections.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			_ = cw.CloseWrite()
		} else {
			// An error on one side ends both directions.
			_ = a.Close()
			_ = b.Close()
		}
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
}

// track remembers an open connection, so stop can close it; false once
// the relay stopped.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	_ = c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// stop closes the listener and every open connection and waits for the
// relay's goroutines.
func (r *relay) stop() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	_ = r.ln.Close()
	r.wg.Wait()
}
