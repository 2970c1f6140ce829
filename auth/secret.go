package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is the work factor of stored secret hashes.
const bcryptCost = 11

// generateSecret returns a new random secret: 32 bytes, base64url.
func generateSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(s string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(s), bcryptCost)
	return string(h), err
}

// verifyCache remembers successful password checks so that Basic auth on
// every /v2 request does not cost a bcrypt comparison each time. An entry
// is keyed by a hash of (username, password) and stores which hash it
// matched: a deleted, rotated or expired secret no longer matches, since
// the caller re-checks the live snapshot for that exact hash. Failures are
// never cached.
type verifyCache struct {
	mu      sync.Mutex
	entries map[[32]byte]verified
	// compare is bcrypt.CompareHashAndPassword when nil; tests count calls.
	compare func(hash, password []byte) error
}

type verified struct {
	hash string
	at   time.Time
}

const (
	verifyCacheTTL = 5 * time.Minute
	verifyCacheMax = 10_000
)

func credentialKey(username, password string) [32]byte {
	h := sha256.New()
	h.Write([]byte(username))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// cached is checkAny without bcrypt: whether a recent successful check
// of (username, password) matched one of the hashes.
func (c *verifyCache) cached(username, password string, now time.Time, n int, hash func(i int) string) (string, bool) {
	k := credentialKey(username, password)
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < verifyCacheTTL {
		for i := range n {
			if h := hash(i); h != "" && h == e.hash {
				return h, true
			}
		}
	}
	return "", false
}

// bcryptSlots bounds concurrent bcrypt comparisons to the CPUs: a flood
// of password guesses from many addresses queues instead of taking every
// core from the requests that are already authenticated (cached).
var bcryptSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

func bcryptCompare(compare func(hash, password []byte) error, hash, password string) error {
	bcryptSlots <- struct{}{}
	defer func() { <-bcryptSlots }()
	return compare([]byte(hash), []byte(password))
}

// check reports whether password matches hash, consulting the cache.
func (c *verifyCache) check(username, password, hash string, now time.Time) bool {
	_, ok := c.checkAny(username, password, now, 1, func(int) string { return hash })
	return ok
}

// checkAny reports whether password matches one of the n hashes that
// hash(i) returns (an empty one, e.g. an expired secret's, is skipped),
// and which.
// The cache is consulted for all of them before any bcrypt comparison,
// so a password that matches a later hash (a token's password2, an
// identity's second secret during a rotation) does not pay a failed
// comparison against an earlier one on every request.
func (c *verifyCache) checkAny(username, password string, now time.Time, n int, hash func(i int) string) (matched string, ok bool) {
	if h, ok := c.cached(username, password, now, n, hash); ok {
		return h, true
	}
	k := credentialKey(username, password)
	compare := c.compare
	if compare == nil {
		compare = bcrypt.CompareHashAndPassword
	}
	for i := range n {
		h := hash(i)
		if h == "" || bcryptCompare(compare, h, password) != nil {
			continue
		}
		c.mu.Lock()
		if c.entries == nil || len(c.entries) >= verifyCacheMax {
			c.entries = make(map[[32]byte]verified)
		}
		c.entries[k] = verified{hash: h, at: now}
		c.mu.Unlock()
		return h, true
	}
	return "", false
}
