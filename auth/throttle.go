package auth

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/moat-registry/moat/errcode"
	"golang.org/x/crypto/bcrypt"
)

// Password guessing is throttled per client address: after
// GuardOptions.AuthFailuresPerMinute wrong passwords within failureWindow,
// further password attempts from that address are refused with 429 until
// the window ends, without spending a bcrypt comparison on them.
const failureWindow = time.Minute

type failureCounter struct {
	max     int // 0: no throttle
	mu      sync.Mutex
	windows map[netip.Addr]*failureWindowState
	swept   time.Time
}

type failureWindowState struct {
	start time.Time
	n     int
}

// blocked reports how long a client must wait before trying a password.
func (f *failureCounter) blocked(a netip.Addr, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.windows[a]
	if f.max <= 0 || w == nil || now.Sub(w.start) >= failureWindow || w.n < f.max {
		return 0
	}
	return w.start.Add(failureWindow).Sub(now)
}

func (f *failureCounter) fail(a netip.Addr, now time.Time) {
	if f.max <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.windows == nil {
		f.windows = map[netip.Addr]*failureWindowState{}
	}
	if now.Sub(f.swept) > failureWindow {
		for k, w := range f.windows {
			if now.Sub(w.start) >= failureWindow {
				delete(f.windows, k)
			}
		}
		f.swept = now
	}
	w := f.windows[a]
	if w == nil || now.Sub(w.start) >= failureWindow {
		w = &failureWindowState{start: now}
		f.windows[a] = w
	}
	w.n++
}

// authenticateFrom is authenticate with password-guessing protection for
// requests from client: a throttled client gets a 429 error and no check.
func (g *Guard) authenticateFrom(snap *Snapshot, c credentials, client netip.Addr) (Principal, *tokenInfo, bool, error) {
	now := g.now()
	// Only password checks cost bcrypt; a refresh token as the password is
	// a signature check.
	guarded := c.kind == credBasic && c.user != RefreshTokenUsername
	if guarded {
		if wait := g.failures.blocked(client, now); wait > 0 {
			secs := int(wait/time.Second) + 1
			return Principal{}, nil, false, errcode.TooManyRequests.New("too many failed logins from your address; try again later").
				SetHeader("Retry-After", strconv.Itoa(secs))
		}
	}
	p, ti, ok := g.authenticate(snap, c)
	if !ok && guarded {
		g.failures.fail(client, now)
	}
	return p, ti, ok, nil
}

// dummyHash makes an unknown username cost one bcrypt comparison, like a
// known one, so timing does not tell which usernames exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("moat: no such user"), bcryptCost)
	return h
})

func spendBcrypt(password string) {
	_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
}
