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
	// closed: shutdown ran; Open refuses, so that nothing listens after it.
	closed bool
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

// Open implements api.Listeners. It refuses once shutdown ran.
func (m *endpointListeners) Open(name, listen string, useTLS bool) (string, error) {
	if err := m.Allowed(listen); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", errors.New("moat is shutting down")
	}
	old := m.open[name]
	if old != nil && old.listen == listen && old.tls == useTLS {
		return old.ln.Addr().String(), nil
	}
	if useTLS && m.s.tls == nil {
		return "", errors.New("tls needs the server's tls.cert and tls.key (or tls.selfSigned)")
	}
	// Only TLS changes: the old socket holds the address, so it goes first
	// and comes back if the new one cannot bind.
	sameAddress := old != nil && old.listen == listen
	if sameAddress {
		m.closeLocked(name, old)
	}
	el, err := m.bind(name, listen, useTLS)
	if err != nil {
		if sameAddress {
			if back, berr := m.bind(name, old.listen, old.tls); berr != nil {
				m.s.log.Error("private endpoint could not listen again as before", "endpoint", name, "listen", old.listen, "err", berr)
			} else {
				back.confirmed = old.confirmed
				m.serveLocked(name, back)
			}
		}
		return "", err
	}
	if old != nil && !sameAddress {
		m.closeLocked(name, old)
	}
	return m.serveLocked(name, el), nil
}

// bind listens on listen for endpoint name; serveLocked serves it.
func (m *endpointListeners) bind(name, listen string, useTLS bool) (*endpointListener, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	if useTLS {
		ln = tls.NewListener(ln, m.s.tls.config())
	}
	srv := m.s.httpServer(m.s.handler)
	srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return auth.WithEndpoint(ctx, name) }
	return &endpointListener{listen: listen, tls: useTLS, srv: srv, ln: ln, done: make(chan struct{})}, nil
}

// serveLocked serves a bound listener and records it; it returns the
// address it listens on.
func (m *endpointListeners) serveLocked(name string, el *endpointListener) string {
	go func() {
		defer close(el.done)
		if err := el.srv.Serve(el.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.s.log.Error("private endpoint listener stopped", "endpoint", name, "err", err)
		}
	}()
	if m.open == nil {
		m.open = map[string]*endpointListener{}
	}
	m.open[name] = el
	addr := el.ln.Addr().String()
	m.s.log.Info("private endpoint listening", "endpoint", name, "address", addr)
	return addr
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

// shutdown stops every endpoint gracefully, all at once, until ctx ends;
// then it cuts the connections left. Open refuses from then on.
func (m *endpointListeners) shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	open := m.open
	m.open = nil
	m.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(open))
	for name, el := range open {
		wg.Go(func() {
			if err := el.srv.Shutdown(ctx); err != nil {
				_ = el.srv.Close()
				errs <- fmt.Errorf("private endpoint %s: %w", name, err)
			}
			<-el.done
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
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
