package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/registry"
)

// observe wraps the root handler: it gives every request an id (the
// X-Request-Id answer header), counts and times it by route, and writes
// one access-log line.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(errcode.WithRequestID(r.Context(), id))
		route := routeLabel(r.URL.Path)
		g := s.metrics.inFlight.WithLabelValues(route)
		g.Inc()
		body := &countingBody{ReadCloser: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			// A handler's panic is a bug: log it with the stack, answer 500
			// in the OCI shape if nothing was sent yet, keep serving. If the
			// answer had begun, abort the connection (http.ErrAbortHandler)
			// so the client sees a broken answer, not a short one.
			var abort any
			if v := recover(); v != nil {
				abort = http.ErrAbortHandler
				if v != http.ErrAbortHandler {
					s.log.ErrorContext(r.Context(), "handler panic", "id", id, "method", r.Method, "path", r.URL.Path,
						"panic", fmt.Sprint(v), "stack", string(debug.Stack()), "answer_begun", rec.wroteHeader)
					if !rec.wroteHeader {
						errcode.Write(rec, r, errcode.Internal.New(""))
						abort = nil
					}
				}
			}
			defer func() {
				if abort != nil {
					panic(abort)
				}
			}()
			g.Dec()
			d := time.Since(start)
			s.metrics.observe(route, r.Method, rec.status, body.n, rec.n, d)
			if s.log.Enabled(r.Context(), slog.LevelInfo) {
				s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
					slog.String("id", id),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", rec.status),
					slog.Int64("in", body.n),
					slog.Int64("out", rec.n),
					slog.Duration("duration", d),
					slog.String("client", s.guard.ClientAddress(r).String()),
					slog.String("route", route),
					slog.String("agent", r.UserAgent()),
				)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeLabel names a path's endpoint family for metrics (low cardinality).
func routeLabel(p string) string {
	switch {
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		rt, err := registry.ParseRoute(p)
		if err != nil {
			return "v2-invalid"
		}
		return rt.Kind.String()
	case strings.HasPrefix(p, "/oauth2/"):
		return "token"
	case strings.HasPrefix(p, "/admin/"):
		return "admin"
	case strings.HasPrefix(p, "/.well-known/"):
		return "well-known"
	case p == "/healthz", p == "/readyz", p == "/metrics":
		return p[1:]
	}
	return "other"
}

// newRequestID is a process-unique id: a random prefix drawn at start and
// a counter, so a request costs no call to the random source.
func newRequestID() string {
	var b [16]byte
	hex.Encode(b[:], requestIDPrefix[:])
	n := requestSeq.Add(1)
	const digits = "0123456789abcdef"
	for i := 15; i >= 8; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

var (
	requestIDPrefix = func() (p [4]byte) { _, _ = rand.Read(p[:]); return }()
	requestSeq      atomic.Uint64
)

// recorder remembers the status and counts the bytes of an answer. It
// keeps io.ReaderFrom so that blob downloads still use sendfile.
type recorder struct {
	http.ResponseWriter
	status      int
	n           int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

// ReadFrom passes through to the connection's ReadFrom (sendfile).
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	n, err := io.Copy(r.ResponseWriter, src)
	r.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
