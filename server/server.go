// Package server wires moat together: it opens storage, builds the
// handlers of the data plane and the control plane, and runs the
// listeners. cmd/moat and the end-to-end tests use it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/registry"
	"github.com/moat-registry/moat/storage"
)

// Server is a running (or ready to run) moat.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	db      *storage.DB
	blobs   *storage.DiskBlobs
	uploads *storage.DiskUploads
	handler http.Handler

	mu     sync.Mutex
	public *http.Server
	ln     net.Listener
	stop   chan struct{}
	wg     sync.WaitGroup
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
	db, err := storage.OpenDB(filepath.Join(cfg.Data, "meta.db"), storage.DBOptions{})
	if err != nil {
		return nil, err
	}
	blobs, err := storage.NewDiskBlobs(cfg.Data)
	if err != nil {
		db.Close()
		return nil, err
	}
	uploads, err := storage.NewDiskUploads(cfg.Data, blobs, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, db: db, blobs: blobs, uploads: uploads, stop: make(chan struct{})}
	authz := registry.AuthorizerFunc(func(r *http.Request, _ []auth.Scope) (auth.Grant, error) {
		if cfg.Dev && auth.IsLocalDevRequest(r) {
			return auth.AllowAll{}, nil
		}
		return nil, errcode.Unauthorized.New("")
	})
	reg := registry.New(db, blobs, uploads, authz, registry.Options{
		RelaxIndexReferences: cfg.Registry.RelaxIndexReferences,
		MaxManifestSize:      cfg.Registry.MaxManifestSize,
		Logger:               log,
	})
	s.handler = s.routes(reg)
	return s, nil
}

// routes is the root handler: the data plane under /v2, the control plane
// beside it.
func (s *Server) routes(reg http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v2" || strings.HasPrefix(p, "/v2/"):
			reg.ServeHTTP(w, r)
		case p == "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok\n"))
		case p == "/readyz":
			if err := s.db.Check(r.Context()); err != nil {
				http.Error(w, "metadata store unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ready\n"))
		default:
			errcode.Write(w, r, errcode.NotFound.New("no such endpoint"))
		}
	})
}

// Handler is the root handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Start opens the public listener and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.public, s.ln = srv, ln
	s.mu.Unlock()
	s.wg.Add(2)
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
	return nil
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

// Shutdown stops accepting, lets in-flight requests finish (until ctx
// ends) and closes storage.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.public
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	close(s.stop)
	s.wg.Wait()
	return errors.Join(err, s.db.Close())
}
