package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

// TestSoak runs the soak against an in-process moat: 64 clients pushing,
// pulling and deleting while garbage collection runs every two seconds
// with a five-second grace period, then checks that every image still
// tagged reads back with the right digests and every deleted one is
// gone. 60 s in CI (MOAT_E2E_REQUIRE=1), 10 s otherwise; MOAT_SOAK sets
// another duration.
func TestSoak(t *testing.T) {
	d := 10 * time.Second
	if os.Getenv("MOAT_E2E_REQUIRE") == "1" {
		d = time.Minute
	}
	if s := os.Getenv("MOAT_SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("MOAT_SOAK: %v", err)
		}
	}
	t.Setenv("MOAT_ADMIN_PASSWORD", "soak-admin-password")
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Dev = true // anonymous data plane for loopback; GC as the admin
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	base := "http://" + srv.Addr().String()
	if _, err := waitReady(base, time.Now(), 30*time.Second, nil, only200); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !srv.Ready(); {
		if time.Now().After(deadline) {
			t.Fatal("the admin identity was not bootstrapped within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep, err := soak(context.Background(), soakOptions{URL: base, Username: "admin", Password: "soak-admin-password",
		Workers: 64, Duration: d, GCEvery: 2 * time.Second, GCGrace: 5 * time.Second, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak %.0fs: %d requests, %d pushes, %d pulls, %d deletes, %d retries, %d collections reclaiming %d bytes, %d verified",
		rep.Seconds, rep.Requests, rep.Pushes, rep.Pulls, rep.Deletes, rep.Retries, rep.GCRuns, rep.BytesReclaimed, rep.Verified)
	if rep.Errors > 0 {
		t.Fatalf("%d errors: %v", rep.Errors, rep.ErrorSamples)
	}
	if rep.Pushes == 0 || rep.Pulls == 0 || rep.Deletes == 0 || rep.GCRuns == 0 || rep.Verified == 0 {
		t.Fatalf("the soak did not exercise everything: %+v", rep)
	}
}
