package auth

import (
	"context"
	"errors"
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
		_, _, ok, err := g.authenticateFrom(dir.Snapshot(), credentials{kind: credBasic, user: "alice", pass: pass}, from)
		return ok, err
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
	clock = clock.Add(failureWindow)
	if ok, err := try(attacker, "right"); !ok || err != nil {
		t.Fatalf("after the window: ok %v err %v, want success", ok, err)
	}
}
