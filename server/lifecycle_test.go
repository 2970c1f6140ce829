package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
)

// startOwned starts a dev-profile moat that the test shuts down itself
// (start and build shut theirs down at cleanup, and Shutdown runs once).
func startOwned(t *testing.T, log *slog.Logger, prepare func(*Server)) *Server {
	t.Helper()
	return launch(t, nil, log, prepare)
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestShutdownDrainsPublicAndPrivateTogether: while a slow client holds
// the public listener's drain, the private endpoints stop accepting too;
// when the deadline passes, Shutdown cuts the connections left and says
// so.
func TestShutdownDrainsPublicAndPrivateTogether(t *testing.T) {
	t.Parallel()
	s := startOwned(t, nil, nil)
	pe, err := s.eps.Open("pe", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	// An upload whose body never comes: once the client reads "100
	// Continue", the handler is reading the body, so the request is in
	// flight (not a connection the listener might not have accepted yet).
	slow, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	req := "POST /v2/slow/blobs/uploads/?digest=sha256:" + strings.Repeat("0", 64) + " HTTP/1.1\r\n" +
		"Host: " + s.Addr().String() + "\r\nContent-Length: 1024\r\nContent-Type: application/octet-stream\r\n" +
		"Expect: 100-continue\r\n\r\n"
	if _, err := slow.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := bufio.NewReader(slow).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("upload with Expect: 100-continue: status line %q, %v", status, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	closed := waitUntil(2*time.Second, func() bool {
		c, err := net.Dial("tcp", pe)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if !closed {
		t.Errorf("private endpoint %s still accepts while the public listener drains", pe)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline = %v, want it to wrap context.DeadlineExceeded", err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("the slow connection was not cut: read = %v", err)
	}
}

// TestNoEndpointListensAfterShutdown: a settings change that reaches the
// endpoint listeners after they shut down (a task finishing during
// shutdown) opens nothing.
func TestNoEndpointListensAfterShutdown(t *testing.T) {
	t.Parallel()
	s := startOwned(t, nil, nil)
	if _, _, err := s.dir.PutPrivateEndpoint(context.Background(), auth.PrivateEndpoint{Name: "late", Listen: "127.0.0.1:0", State: "Approved"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if addr, err := s.eps.Open("late", "127.0.0.1:0", false); err == nil {
		t.Errorf("Open after shutdown listens on %s", addr)
	}
	// follow woken late, as a watch firing during shutdown would.
	kicks := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); s.eps.follow(ctx, kicks) }()
	kicks <- struct{}{}
	kicks <- struct{}{} // taken once the first kick was handled
	cancel()
	<-followed
	s.eps.mu.Lock()
	defer s.eps.mu.Unlock()
	for name, el := range s.eps.open {
		t.Errorf("endpoint %s listens on %s after shutdown", name, el.ln.Addr())
		_ = el.srv.Close()
	}
}

// freePort is a loopback address:port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestEndpointTLSChangeOnAFixedPort: switching TLS on an endpoint keeps
// its fixed address (the old socket is closed before the new one binds).
func TestEndpointTLSChangeOnAFixedPort(t *testing.T) {
	t.Parallel()
	s := build(t, func(c *config.Config) { c.TLS.SelfSigned = true })
	listen := freePort(t)
	for i, useTLS := range []bool{false, true, false} {
		addr, err := s.eps.Open("fixed", listen, useTLS)
		if err != nil {
			t.Fatalf("step %d: Open(%s, tls=%v) = %v", i, listen, useTLS, err)
		}
		if addr != listen {
			t.Errorf("step %d: listens on %s, want %s", i, addr, listen)
		}
		s.eps.mu.Lock()
		el := s.eps.open["fixed"]
		s.eps.mu.Unlock()
		if el == nil || el.tls != useTLS {
			t.Fatalf("step %d: listener %+v, want tls=%v", i, el, useTLS)
		}
	}
}

// TestBootstrapIsRetried: a failed admin bootstrap (the metadata store
// briefly down) is logged and retried until it succeeds.
func TestBootstrapIsRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	attempts := 0
	s := startOwned(t, log, func(s *Server) {
		create := s.bootstrapAdmin
		s.bootstrapAdmin = func(ctx context.Context) error {
			mu.Lock()
			attempts++
			n := attempts
			mu.Unlock()
			if n == 1 {
				return errors.New("connection refused")
			}
			return create(ctx)
		}
	})
	defer func() { _ = s.Shutdown(context.Background()) }()
	if !waitUntil(30*time.Second, s.Ready) {
		t.Fatal("not ready 30s after a failed first bootstrap")
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 2 {
		t.Errorf("%d bootstrap attempts, want 2", attempts)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
