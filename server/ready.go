package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/moat-registry/moat/config"
)

// SettingsVersionHeader, on /readyz answers, is the version of the
// registry settings (network rules, identities, roles …) the server
// enforces; it grows with every change through the admin API.
const SettingsVersionHeader = "X-Moat-Settings-Version"

// probeTTL is how long a data-directory probe's result is reused, so that
// frequent readiness checks cost one file creation a second at most.
const probeTTL = time.Second

// readyz answers 200 when the server can serve: the metadata store is
// readable, the data directory writable, bootstrap finished and the
// public listener up; else 503 with the first reason found.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	version := strconv.FormatUint(s.dir.Snapshot().Version, 10)
	w.Header().Set(SettingsVersionHeader, version)
	if reason := s.notReady(r); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + reason + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\nsettings version " + version + "\n"))
}

// notReady is why the server is not ready, or "".
func (s *Server) notReady(r *http.Request) string {
	if err := s.meta.Check(r.Context()); err != nil {
		return "metadata store unavailable"
	}
	if err := s.checkBlobs(r.Context()); err != nil {
		s.log.Warn("readiness: blob store unavailable", "err", err)
		return "blob store unavailable"
	}
	if err := s.probe.check(s.probeDir()); err != nil {
		s.log.Warn("readiness: data directory is not writable", "err", err)
		return "data directory is not writable"
	}
	if !s.Ready() {
		return "starting"
	}
	if s.Addr() == nil {
		return "public listener is not up"
	}
	select {
	case <-s.stop:
		return "shutting down"
	default:
	}
	return ""
}

// probeDir is the directory the readiness probe writes to: <data>/tmp,
// where blobs are written first, with the filesystem blob store; the
// data directory itself with an object store, which has no tmp/.
func (s *Server) probeDir() string {
	if s.cfg.Storage.Driver == config.DriverS3 {
		return s.cfg.Data
	}
	return filepath.Join(s.cfg.Data, "tmp")
}

// dataProbe checks that a directory accepts new files, remembering the
// result for probeTTL.
type dataProbe struct {
	mu  sync.Mutex
	at  time.Time
	err error
	now func() time.Time // nil: time.Now; tests move the clock
}

func (p *dataProbe) check(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	if !p.at.IsZero() && now.Sub(p.at) < probeTTL && now.Sub(p.at) >= 0 {
		return p.err
	}
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err == nil {
		name := f.Name()
		err = f.Close()
		if rerr := os.Remove(name); err == nil {
			err = rerr
		}
	}
	p.at, p.err = now, err
	return err
}
