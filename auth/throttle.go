package auth

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/moat-registry/moat/errcode"
	"golang.org/x/crypto/bcrypt"
)

// Password guessing is throttled per client address (an IPv6 client per
// /64, the smallest network one is given): after
// GuardOptions.AuthFailuresPerMinute wrong passwords within failureWindow,
// further password attempts from that address are refused with 429 until
// the window ends, without spending a bcrypt comparison on them, unless
// they match a recently verified credential.
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
	a = throttleKey(a)
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
	a = throttleKey(a)
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
func (g *Guard) authenticateFrom(snap *Snapshot, c credentials, client netip.Addr) (authn, error) {
	now := g.now()
	// Only password checks cost bcrypt; a refresh token as the password is
	// a signature check.
	guarded := c.kind == credBasic && c.user != RefreshTokenUsername
	if guarded {
		if wait := g.failures.blocked(client, now); wait > 0 {
			// The throttle stops guessing, not a user behind the same
			// address whose credentials were checked recently.
			if p, cred, ok := snap.authenticateCached(&g.verify, c.user, c.pass, now); ok {
				return authn{p: p, cred: cred, ok: true}, nil
			}
			secs := int(wait/time.Second) + 1
			return authn{}, errcode.TooManyRequests.New("too many failed logins from your address; try again later").
				SetHeader("Retry-After", strconv.Itoa(secs))
		}
	}
	a := g.authenticate(snap, c)
	if !a.ok && guarded {
		g.failures.fail(client, now)
	}
	return a, nil
}

// throttleKey is the address failures are counted for: an IPv4 address
// (IPv4-mapped ones unmapped), or an IPv6 address's /64.
func throttleKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// dummyHash makes an unknown username cost one bcrypt comparison, like a
// known one, so timing does not tell which usernames exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("moat: no such user"), bcryptCost)
	return h
})

func spendBcrypt(password string) {
	_ = bcryptCompare(bcrypt.CompareHashAndPassword, string(dummyHash()), password)
}
