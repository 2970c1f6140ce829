package auth

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestVerifyCacheLaterHash: a password that matches the second of two
// hashes (a token's password2, an identity's newer secret) costs a
// bcrypt comparison on its first check only; later checks are answered
// from the cache without a failed comparison against the first hash.
func TestVerifyCacheLaterHash(t *testing.T) {
	var hashes []string
	for _, pw := range []string{"one", "two"} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, string(h))
	}
	compares := 0
	c := &verifyCache{compare: func(h, p []byte) error {
		compares++
		return bcrypt.CompareHashAndPassword(h, p)
	}}
	both := func(i int) string { return hashes[i] }
	now := time.Now()
	check := func(password string, hash func(int) string, at time.Time, want bool, wantCompares int) {
		t.Helper()
		compares = 0
		if _, got := c.checkAny("tok", password, at, len(hashes), hash); got != want {
			t.Errorf("checkAny(%q) = %v, want %v", password, got, want)
		}
		if compares != wantCompares {
			t.Errorf("checkAny(%q): %d bcrypt comparisons, want %d", password, compares, wantCompares)
		}
	}
	check("two", both, now, true, 2) // first check: fails against one, matches two
	check("two", both, now, true, 0) // cached
	check("two", both, now.Add(time.Minute), true, 0)
	check("one", both, now, true, 1)
	check("one", both, now, true, 0)
	check("three", both, now, false, 2) // failures are not cached
	check("three", both, now, false, 2)
	// A hash that is no longer live (an expired secret) is not matched,
	// from the cache or otherwise.
	check("two", func(i int) string { return map[int]string{0: hashes[0]}[i] }, now, false, 1)
	// After the TTL the password is compared again.
	check("two", both, now.Add(verifyCacheTTL+time.Second), true, 2)
}
