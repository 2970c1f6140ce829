// Package server wires moat together: it opens storage and the control
// plane state, builds the handlers of the data plane and the control
// plane, and runs the listeners. cmd/moat and the end-to-end tests use it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moat-registry/moat/api"
	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/jobs"
	"github.com/moat-registry/moat/notify"
	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Server is a running (or ready to run) moat.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	meta    metaStore
	blobs   storage.Blobs
	uploads storage.Uploads
	// sessions holds upload session states for one server (nil on
	// PostgreSQL, which holds them itself).
	sessions *storage.SessionDB
	// listen follows other replicas' changes (PostgreSQL); nil for bbolt.
	listen func(ctx context.Context, fn func()) error
	// redirectTTL, when not zero, sends blob downloads to presigned URLs.
	redirectTTL time.Duration
	dir         *auth.Directory
	keys        *auth.KeyRing
	guard       *auth.Guard
	auditor     *auth.Auditor
	metrics     *metrics
	tls         *certSource
	eps         *endpointListeners
	inproc      *inproc
	jobs        *jobs.Runner
	handler     http.Handler
	// adminSources is admin.allowedSources: who may reach the admin API,
	// /healthz, /readyz and /metrics (empty: anyone).
	adminSources []netip.Prefix

	notifier *notify.Notifier         // nil without notification endpoints
	tracer   *sdktrace.TracerProvider // nil without tracing.endpoint
	probe    dataProbe                // readiness: the data directory is writable

	service atomic.Pointer[string]
	ready   atomic.Bool
	gcMu    sync.Mutex

	// bootstrapAdmin is one attempt at bootstrap; tests replace it.
	bootstrapAdmin func(context.Context) error

	mu     sync.Mutex
	public *http.Server
	ln     net.Listener
	// stopFollow stops the endpoint listeners following the directory and
	// waits until they do; nil before Start.
	stopFollow func()
	stop       chan struct{}
	wg         sync.WaitGroup
}

// New opens the data directory and builds the handlers; it does not
// listen yet.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Server{cfg: cfg, log: log, stop: make(chan struct{})}
	s.bootstrapAdmin = s.createAdmin
	if err := s.open(); err != nil {
		s.closeStores()
		return nil, err
	}
	return s, nil
}

func (s *Server) open() error {
	var err error
	cfg := s.cfg
	if err := s.openBackends(context.Background()); err != nil {
		return err
	}
	if s.dir, err = auth.OpenDirectory(context.Background(), s.meta); err != nil {
		return fmt.Errorf("control-plane state: %w", err)
	}
	proxies, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	s.metrics = newMetrics()
	s.auditor = auth.NewAuditor(s.meta, s.log, s.metrics.decision)
	name := cfg.Registry.Name
	if name == "" {
		name = cfg.Listen
	}
	s.service.Store(&name)
	s.guard = auth.NewGuard(s.dir, s.keys, auth.GuardOptions{
		Dev:            cfg.Dev,
		TrustedProxies: policy.Proxies(proxies),
		PublicURL:      cfg.PublicURL,
		Service:        s.Service,
		Auditor:        s.auditor,
		Issuer:         issuer(cfg),
		IssuerURL:      s.IssuerURL,

		AuthFailuresPerMinute: cfg.Limits.AuthFailuresPerMinute,
	})
	if cfg.TLS.Enabled() {
		host, _, _ := net.SplitHostPort(cfg.Listen)
		if s.tls, err = newCertSource(cfg.TLS, []string{host}, s.log); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	allowedEPs, err := parsePrefixes(cfg.PrivateEndpoints.AllowedAddresses)
	if err != nil {
		return err
	}
	s.eps = &endpointListeners{s: s, allowed: allowedEPs}
	regOpts := registry.Options{
		RelaxIndexReferences: cfg.Registry.RelaxIndexReferences,
		MaxManifestSize:      cfg.Registry.MaxManifestSize,
		MaxBlobSize:          cfg.Limits.MaxBlobSize,
		RedirectTTL:          s.redirectTTL,
		Logger:               s.log,
	}
	if s.notifier, err = s.newNotifier(); err != nil {
		return err
	}
	inprocOpts := regOpts
	inprocOpts.OnEvent = s.onEvent(true)
	inprocOpts.RedirectTTL = 0 // in-process clients read the bytes themselves
	s.inproc = newInproc(registry.New(s.meta, s.blobs, s.uploads, s.guard.InternalAuthorizer(), inprocOpts))
	s.jobs = jobs.New(jobs.Options{Guard: s.guard, Local: s.inproc.transport, Catalog: s.meta, Logger: s.log, Version: VersionString()})
	s.dir.Watch(func(*auth.Snapshot) { s.jobs.Wake() })
	if s.adminSources, err = parsePrefixes(cfg.Admin.AllowedSources); err != nil {
		return err
	}
	admin := api.New(api.Options{
		Guard:          s.guard,
		Audit:          s.meta,
		Auditor:        s.auditor,
		Listeners:      s.eps,
		AllowedSources: s.adminSources,
		Keys:           s.keys,
		Jobs:           s.jobs,
		GC:             s.CollectGarbage,
		GCGracePeriod:  time.Duration(cfg.GC.GracePeriod),
		Service:        s.Service,
		Logger:         s.log,
	})
	regOpts.OnEvent = s.onEvent(false)
	reg := registry.New(s.meta, s.blobs, s.uploads, s.guard, regOpts)
	s.handler = s.observe(newLimiter(s).wrap(s.routes(reg, admin)))
	if cfg.Tracing.Endpoint != "" {
		if s.tracer, err = newTracerProvider(cfg.Tracing); err != nil {
			return err
		}
		s.handler = traced(s.handler, s.tracer, s.guard.ClientAddress)
	}
	return nil
}

// issuer is the iss of the registry's tokens: the public URL when one is
// configured.
func issuer(cfg config.Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return "moat"
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := config.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// IssuerURL is the registry's OIDC issuer: config publicURL, else the
// public listener's URL.
func (s *Server) IssuerURL() string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	if s.cfg.TLS.Enabled() {
		return "https://" + s.Service()
	}
	return "http://" + s.Service()
}

// Service is the registry's service name: the token audience.
func (s *Server) Service() string { return *s.service.Load() }

// Handler is the root handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Directory is the control-plane state.
func (s *Server) Directory() *auth.Directory { return s.dir }

// Start opens the public listener, serves in the background and
// bootstraps the admin identity.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.Registry.Name == "" {
		name := ln.Addr().String()
		s.service.Store(&name)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls.config())
	}
	s.eps.restore(context.Background())
	srv := s.httpServer(s.handler)
	kicks := make(chan struct{}, 1)
	s.dir.Watch(func(*auth.Snapshot) {
		select {
		case kicks <- struct{}{}:
		default:
		}
	})
	// follow has a stop of its own: Shutdown ends it before it closes the
	// endpoints, or a late change would open listeners nobody closes.
	followCtx, cancelFollow := context.WithCancel(context.Background())
	followDone := make(chan struct{})
	s.mu.Lock()
	s.public, s.ln = srv, ln
	s.stopFollow = func() { cancelFollow(); <-followDone }
	s.mu.Unlock()
	go func() {
		defer close(followDone)
		s.eps.follow(followCtx, kicks)
	}()
	s.wg.Add(6)
	go func() {
		defer s.wg.Done()
		s.collectGarbage()
	}()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.stop; cancel() }()
		s.followChanges(ctx)
	}()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.stop; cancel() }()
		s.jobs.Schedule(ctx)
	}()
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("public listener stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.expireUploads()
	}()
	// Hashing the admin secret takes a bcrypt's time; the data plane does
	// not wait for it.
	go func() {
		defer s.wg.Done()
		s.bootstrap()
	}()
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(s.cfg.Limits.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(s.cfg.Limits.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Bootstrap retries wait bootstrapRetryMin after the first failure, twice
// as long after each next one, up to bootstrapRetryMax.
const (
	bootstrapRetryMin = time.Second
	bootstrapRetryMax = time.Minute
)

// bootstrap creates the admin identity (SPEC §9) and marks the server
// ready. A failure (the metadata store briefly unreachable …) is logged
// and retried with a capped exponential backoff until the server stops.
func (s *Server) bootstrap() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := bootstrapRetryMin
	for {
		err := s.bootstrapAdmin(ctx)
		if err == nil {
			s.ready.Store(true)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Error("bootstrapping the admin identity; /readyz answers 503 until it succeeds", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, bootstrapRetryMax)
	}
}

// createAdmin applies MOAT_ADMIN_PASSWORD, or on first start generates
// a password, writes it to <data>/admin-password (0600) and only then
// stores its hash: a crash between the two leaves a file for a password
// that was never set, and the next start generates another.
func (s *Server) createAdmin(ctx context.Context) error {
	if pw := os.Getenv("MOAT_ADMIN_PASSWORD"); pw != "" {
		_, err := s.dir.Bootstrap(ctx, pw, false)
		return err
	}
	needed, err := s.dir.BootstrapNeeded(ctx)
	if err != nil || !needed {
		return err
	}
	pw := auth.GeneratePassword()
	path := filepath.Join(s.cfg.Data, "admin-password")
	if err := writeSecretFile(path, pw+"\n"); err != nil {
		return fmt.Errorf("writing the admin password: %w", err)
	}
	applied, err := s.dir.Bootstrap(ctx, pw, true)
	if err != nil {
		return err
	}
	if !applied {
		// Another replica sharing the metadata store bootstrapped first.
		_ = os.Remove(path)
		s.log.Info("the admin identity was created by another replica; its password is in that replica's data dir")
		return nil
	}
	s.log.Info("created the admin identity; its password is in the data dir", "user", auth.AdminName, "file", path)
	return nil
}

// Ready reports whether bootstrap finished.
func (s *Server) Ready() bool { return s.ready.Load() }

// writeSecretFile writes a 0600 file atomically.
func writeSecretFile(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Addr is the public listener's address once started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// expireUploads ends idle upload sessions every minute.
func (s *Server) expireUploads() {
	idle := time.Duration(s.cfg.Uploads.IdleTimeout)
	t := time.NewTicker(min(time.Minute, idle))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			n, err := s.uploads.Expire(context.Background(), now.Add(-idle))
			if err != nil {
				s.log.Warn("expiring uploads", "err", err)
			} else if n > 0 {
				s.log.Info("expired idle uploads", "count", n)
			}
		}
	}
}

// Shutdown stops accepting, lets in-flight requests on the public and
// the private endpoint listeners finish (together, until ctx ends; then
// it cuts the connections left and the error wraps ctx's) and closes
// storage.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, stopFollow := s.public, s.stopFollow
	s.mu.Unlock()
	if stopFollow != nil {
		stopFollow() // no listener opens for a settings change from here on
	}
	var drained sync.WaitGroup
	var err error
	if srv != nil {
		drained.Go(func() {
			if err = srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		})
	}
	epErr := s.eps.shutdown(ctx)
	drained.Wait()
	err = errors.Join(err, epErr)
	s.jobs.Close() // imports and tasks stop before storage closes
	s.inproc.shutdown(ctx)
	close(s.stop)
	s.wg.Wait()
	if nerr := s.notifier.Close(ctx); nerr != nil {
		s.log.Warn("notifications left undelivered at shutdown", "err", nerr)
	}
	if s.tracer != nil {
		if terr := s.tracer.Shutdown(ctx); terr != nil {
			s.log.Warn("flushing traces at shutdown", "err", terr)
		}
	}
	return errors.Join(err, s.closeStores())
}

func (s *Server) closeStores() error {
	if s.auditor != nil {
		s.auditor.Close()
	}
	if s.sessions != nil {
		_ = s.sessions.Close()
	}
	if s.meta != nil {
		return s.meta.Close()
	}
	return nil
}
