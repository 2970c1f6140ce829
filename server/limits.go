package server

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/errcode"
	"golang.org/x/time/rate"
)

// limiter applies limits.rate per client address and
// limits.maxConcurrentUploads to the data plane.
type limiter struct {
	s       *Server
	rate    rate.Limit
	burst   int
	uploads chan struct{} // a semaphore; nil for no cap

	mu      sync.Mutex
	clients map[netip.Addr]*clientLimit
	swept   time.Time
}

type clientLimit struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(s *Server) *limiter {
	l := &limiter{s: s, rate: rate.Limit(s.cfg.Limits.Rate), burst: s.cfg.Limits.Burst, clients: map[netip.Addr]*clientLimit{}}
	if n := s.cfg.Limits.MaxConcurrentUploads; n > 0 {
		l.uploads = make(chan struct{}, n)
	}
	return l
}

// active reports whether any limit is configured.
func (l *limiter) active() bool { return l.rate > 0 || l.uploads != nil }

// wrap applies the limits to data-plane requests.
func (l *limiter) wrap(next http.Handler) http.Handler {
	if !l.active() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/v2") && !strings.HasPrefix(p, "/oauth2/") {
			next.ServeHTTP(w, r)
			return
		}
		if l.rate > 0 {
			if wait, ok := l.allow(l.s.guard.ClientAddress(r)); !ok {
				tooMany(w, r, wait, "rate limit for your address exceeded")
				return
			}
		}
		if l.uploads != nil && isUpload(r) {
			select {
			case l.uploads <- struct{}{}:
				defer func() { <-l.uploads }()
			default:
				tooMany(w, r, time.Second, "too many uploads in progress")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes a token for a client, or says how long until one is free.
func (l *limiter) allow(a netip.Addr) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, c := range l.clients {
			if now.Sub(c.seen) > 10*time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	c := l.clients[a]
	if c == nil {
		c = &clientLimit{l: rate.NewLimiter(l.rate, l.burst)}
		l.clients[a] = c
	}
	c.seen = now
	res := c.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// isUpload reports whether a request carries blob content.
func isUpload(r *http.Request) bool {
	switch r.Method {
	case http.MethodPatch:
		return true
	case http.MethodPut, http.MethodPost:
		return strings.Contains(r.URL.Path, "/blobs/uploads") && (r.ContentLength > 0 || r.ContentLength < 0)
	}
	return false
}

func tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, msg string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	errcode.Write(w, r, errcode.TooManyRequests.New(msg).SetHeader("Retry-After", strconv.Itoa(secs)))
}
