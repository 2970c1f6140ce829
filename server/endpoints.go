package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/moat-registry/moat/auth"
)

// endpointListeners runs the private endpoints' listeners. Each serves
// the same handler as the public listener; its connections carry the
// endpoint's name in their context, which the guard reads.
type endpointListeners struct {
	s       *Server
	allowed []netip.Prefix

	mu   sync.Mutex
	open map[string]*endpointListener
}

type endpointListener struct {
	listen string
	tls    bool
	// confirmed: the endpoint was seen stored. An endpoint the admin API is
	// creating listens before it is stored; follow leaves it alone until then.
	confirmed bool
	srv       *http.Server
	ln        net.Listener
	done      chan struct{}
}

// Allowed implements api.Listeners: listen must be an IP address and port
// inside privateEndpoints.allowedAddresses, never a wildcard.
func (m *endpointListeners) Allowed(listen string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return fmt.Errorf("%q is not address:port", listen)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%q: the address must be an IP address", listen)
	}
	a = a.Unmap()
	if a.IsUnspecified() {
		return fmt.Errorf("%q is a wildcard address; a private endpoint listens on one address", listen)
	}
	for _, p := range m.allowed {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("%s is outside privateEndpoints.allowedAddresses", a)
}

// Open implements api.Listeners.
func (m *endpointListeners) Open(name, listen string, useTLS bool) (string, error) {
	if err := m.Allowed(listen); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.open[name]; old != nil && old.listen == listen && old.tls == useTLS {
		return old.ln.Addr().String(), nil
	}
	var tlsCfg *tls.Config
	if useTLS {
		if m.s.tls == nil {
			return "", errors.New("tls needs the server's tls.cert and tls.key (or tls.selfSigned)")
		}
		tlsCfg = m.s.tls.config()
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	if old := m.open[name]; old != nil {
		m.closeLocked(name, old)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := m.s.httpServer(m.s.handler)
	srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return auth.WithEndpoint(ctx, name) }
	el := &endpointListener{listen: listen, tls: useTLS, srv: srv, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(el.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.s.log.Error("private endpoint listener stopped", "endpoint", name, "err", err)
		}
	}()
	if m.open == nil {
		m.open = map[string]*endpointListener{}
	}
	m.open[name] = el
	m.s.log.Info("private endpoint listening", "endpoint", name, "address", ln.Addr().String())
	return ln.Addr().String(), nil
}

// Close implements api.Listeners.
func (m *endpointListeners) Close(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.open[name]; el != nil {
		m.closeLocked(name, el)
	}
	return nil
}

func (m *endpointListeners) closeLocked(name string, el *endpointListener) {
	_ = el.srv.Close()
	<-el.done
	delete(m.open, name)
	m.s.log.Info("private endpoint closed", "endpoint", name)
}

// shutdown stops every endpoint gracefully.
func (m *endpointListeners) shutdown(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, el := range m.open {
		_ = el.srv.Shutdown(ctx)
		<-el.done
		delete(m.open, name)
	}
}

// restore reopens the stored endpoints at start and records the address
// each bound.
func (m *endpointListeners) restore(ctx context.Context) {
	for _, e := range m.s.dir.Snapshot().Endpoints() {
		addr, err := m.Open(e.Name, e.Listen, e.TLS)
		if err != nil {
			m.s.log.Error("reopening private endpoint", "endpoint", e.Name, "listen", e.Listen, "err", err)
			continue
		}
		m.confirm(e.Name)
		if addr != e.Address {
			e.Address = addr
			if _, _, err := m.s.dir.PutPrivateEndpoint(ctx, e); err != nil {
				m.s.log.Error("recording private endpoint address", "endpoint", e.Name, "err", err)
			}
		}
	}
}

// follow keeps the listeners in step with the stored endpoints, whichever
// replica changed them: each kick (a settings change) opens the endpoints
// this server does not listen for yet and closes those that are gone. It
// never writes to the directory: the replica that created an endpoint
// recorded its address.
func (m *endpointListeners) follow(ctx context.Context, kicks <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
		}
		want := map[string]bool{}
		for _, e := range m.s.dir.Snapshot().Endpoints() {
			want[e.Name] = true
			m.mu.Lock()
			el := m.open[e.Name]
			same := el != nil && el.listen == e.Listen && el.tls == e.TLS
			if same {
				el.confirmed = true
			}
			m.mu.Unlock()
			if same {
				continue
			}
			if _, err := m.Open(e.Name, e.Listen, e.TLS); err != nil {
				m.s.log.Warn("private endpoint changed elsewhere; cannot listen for it here", "endpoint", e.Name, "listen", e.Listen, "err", err)
				continue
			}
			m.confirm(e.Name)
		}
		m.mu.Lock()
		var gone []string
		for name, el := range m.open {
			if !want[name] && el.confirmed {
				gone = append(gone, name)
			}
		}
		m.mu.Unlock()
		for _, name := range gone {
			_ = m.Close(name)
		}
	}
}

func (m *endpointListeners) confirm(name string) {
	m.mu.Lock()
	if el := m.open[name]; el != nil {
		el.confirmed = true
	}
	m.mu.Unlock()
}
