package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-registry/moat/errcode"
	"github.com/moat-registry/moat/storage"
	"golang.org/x/crypto/bcrypt"
)

func TestPasswordGuessingIsThrottled(t *testing.T) {
	ctx := context.Background()
	db, err := storage.OpenDB(filepath.Join(t.TempDir(), "meta.db"), storage.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir, err := OpenDirectory(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := OpenKeyRing(filepath.Join(t.TempDir(), "keys"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dir.PutIdentity(ctx, Identity{Name: "alice", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if _, err := dir.AddSecret(ctx, "alice", SecretOptions{Hash: string(hash), CallerLevel: LevelOwner}); err != nil {
		t.Fatal(err)
	}
	g := NewGuard(dir, keys, GuardOptions{Service: func() string { return "svc" }, AuthFailuresPerMinute: 3})
	clock := time.Now()
	g.now = func() time.Time { return clock }
	attacker, other := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")
	try := func(from netip.Addr, pass string) (bool, error) {
		a, err := g.authenticateFrom(dir.Snapshot(), credentials{kind: credBasic, user: "alice", pass: pass}, from)
		return a.ok, err
	}
	for i := range 3 {
		if ok, err := try(attacker, "wrong"); ok || err != nil {
			t.Fatalf("attempt %d: ok %v err %v, want a plain failure", i, ok, err)
		}
	}
	ok, err := try(attacker, "right")
	var e *errcode.Error
	if ok || !errors.As(err, &e) || e.Code != errcode.TooManyRequests || e.Header.Get("Retry-After") == "" {
		t.Fatalf("4th attempt: ok %v err %v, want 429 with Retry-After", ok, err)
	}
	if ok, err := try(other, "right"); !ok || err != nil {
		t.Fatalf("another address: ok %v err %v, want success", ok, err)
	}
	// A credential verified recently still works from the throttled
	// address (a user behind the attacker's NAT); a guess does not.
	if ok, err := try(attacker, "right"); !ok || err != nil {
		t.Fatalf("a verified credential from the throttled address: ok %v err %v, want success", ok, err)
	}
	if ok, err := try(attacker, "guess"); ok || !errors.As(err, &e) || e.Code != errcode.TooManyRequests {
		t.Fatalf("a guess from the throttled address: ok %v err %v, want 429", ok, err)
	}
	// IPv6 clients are counted per /64.
	for i := range 3 {
		from := netip.MustParseAddr(fmt.Sprintf("2001:db8:0:7::%x", i+1))
		if ok, err := try(from, "wrong"); ok || err != nil {
			t.Fatalf("IPv6 attempt %d: ok %v err %v", i, ok, err)
		}
	}
	if _, err := try(netip.MustParseAddr("2001:db8:0:7::ff"), "guess"); !errors.As(err, &e) || e.Code != errcode.TooManyRequests {
		t.Fatalf("a 4th address of the same /64: %v, want 429", err)
	}
	if ok, err := try(netip.MustParseAddr("2001:db8:0:8::1"), "wrong"); ok || err != nil {
		t.Fatalf("another /64: ok %v err %v, want a plain failure", ok, err)
	}
	clock = clock.Add(failureWindow)
	if ok, err := try(attacker, "right"); !ok || err != nil {
		t.Fatalf("after the window: ok %v err %v, want success", ok, err)
	}
}
