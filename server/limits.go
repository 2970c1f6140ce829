package server

import (
	"container/list"
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

	mu sync.Mutex
	// clients are the buckets by clientKey, and lru the same, most
	// recently seen first; at most maxClients.
	clients    map[netip.Prefix]*list.Element
	lru        list.List
	maxClients int
}

// clientLimit is one client's bucket.
type clientLimit struct {
	key  netip.Prefix
	l    *rate.Limiter
	seen time.Time
}

const (
	// maxRateClients bounds the buckets kept (about 200 bytes each): past
	// it, the least recently seen client is forgotten.
	maxRateClients = 1 << 16
	// clientIdle forgets a client after this long without a request; its
	// bucket would be full again by then.
	clientIdle = 10 * time.Minute
)

// clientKey is what one bucket covers: an IPv4 address, or an IPv6 /64
// (one subscriber's network: a client choosing any of its addresses must
// not get a bucket for each).
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

func newLimiter(s *Server) *limiter {
	l := &limiter{s: s, rate: rate.Limit(s.cfg.Limits.Rate), burst: s.cfg.Limits.Burst,
		clients: map[netip.Prefix]*list.Element{}, maxClients: maxRateClients}
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
	key := clientKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.clients[key]
	if e == nil {
		// Forget the idle clients, then the least recently seen one if
		// there is still no room.
		for b := l.lru.Back(); b != nil && (now.Sub(b.Value.(*clientLimit).seen) > clientIdle || l.lru.Len() >= l.maxClients); b = l.lru.Back() {
			delete(l.clients, b.Value.(*clientLimit).key)
			l.lru.Remove(b)
		}
		e = l.lru.PushFront(&clientLimit{key: key, l: rate.NewLimiter(l.rate, l.burst)})
		l.clients[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	c := e.Value.(*clientLimit)
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
