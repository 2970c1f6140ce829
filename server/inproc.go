package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/moat-registry/moat/auth"
)

// inproc serves the in-process registry handler that imports and tasks
// use: connections are in-memory pipes (net.Pipe), never a socket another
// process could reach, and each carries the principal its requests act
// as.
type inproc struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	srv    *http.Server
}

func newInproc(h http.Handler) *inproc {
	ip := &inproc{conns: make(chan net.Conn), closed: make(chan struct{})}
	ip.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*principalConn); ok {
				return auth.WithPrincipal(ctx, pc.p)
			}
			return ctx
		},
	}
	go func() { _ = ip.srv.Serve(ip) }()
	return ip
}

type principalConn struct {
	net.Conn
	p auth.Principal
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }

// Accept implements net.Listener.
func (ip *inproc) Accept() (net.Conn, error) {
	select {
	case c := <-ip.conns:
		return c, nil
	case <-ip.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (ip *inproc) Close() error {
	ip.once.Do(func() { close(ip.closed) })
	return nil
}

// Addr implements net.Listener.
func (ip *inproc) Addr() net.Addr { return pipeAddr{} }

// transport returns an HTTP transport whose connections act as p.
func (ip *inproc) transport(p auth.Principal) http.RoundTripper {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			client, server := net.Pipe()
			select {
			case ip.conns <- &principalConn{Conn: server, p: p}:
				return client, nil
			case <-ip.closed:
				client.Close()
				server.Close()
				return nil, errors.New("moat is shutting down")
			case <-ctx.Done():
				client.Close()
				server.Close()
				return nil, ctx.Err()
			}
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
}

func (ip *inproc) shutdown(ctx context.Context) {
	_ = ip.srv.Shutdown(ctx)
	_ = ip.Close()
}
