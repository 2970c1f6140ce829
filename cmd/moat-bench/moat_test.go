package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/server"
)

// startMoat runs moat's server in this process on a loopback port.
func startMoat(t *testing.T, dev bool) string {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Dev = dev
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
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	base := "http://" + srv.Addr().String()
	ready := only200
	if !dev {
		ready = upOrAuth
	}
	if _, err := waitReady(base, time.Now(), 30*time.Second, nil, ready); err != nil {
		t.Fatal(err)
	}
	if !dev {
		// The admin identity is bootstrapped.
		for deadline := time.Now().Add(30 * time.Second); !srv.Ready(); {
			if time.Now().After(deadline) {
				t.Fatal("the admin identity was not bootstrapped within 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return base
}

// requireNoErrors fails for every result with errors, and checks that
// each scenario in want ran.
func requireNoErrors(t *testing.T, results []Result, want ...string) {
	t.Helper()
	ran := map[string]bool{}
	for _, r := range results {
		ran[r.Scenario] = true
		if r.Errors > 0 {
			t.Errorf("%s against %s: %d errors: %v", r.Scenario, r.Subject, r.Errors, r.ErrorSamples)
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s against %s: no figures", r.Scenario, r.Subject)
		}
	}
	for _, s := range want {
		if !ran[s] {
			t.Errorf("scenario %q did not run (ran: %v)", s, ran)
		}
	}
}

func TestQuickScenariosAgainstInProcessMoat(t *testing.T) {
	base := startMoat(t, true)
	opts := testOptions()
	b, err := NewBench(opts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := NewClient(base, 16, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	suite := &Suite{Bench: b, Targets: []*Target{{Name: subjectMoat, Client: c}}, Workdir: t.TempDir()}
	results := suite.Run(ctx)
	requireNoErrors(t, results, "push-small", "pull-small", "head-manifest c=4", "head-manifest c=16",
		"push-large monolithic", "push-large chunked 1MiB", "pull-large", "tags-list 120", "tags-list 250")

	rep := newReport(opts, results)
	var out strings.Builder
	rep.Print(&out, []string{subjectMoat})
	for _, want := range []string{"push-small", "images/s", "tags-list 250", "whole list p50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPolicyScenariosAgainstInProcessMoat(t *testing.T) {
	const password = "bench-test-admin-password"
	t.Setenv("MOAT_ADMIN_PASSWORD", password)
	base := startMoat(t, false)
	ctx := context.Background()
	if err := applyIPRules(ctx, base, password, policyRuleCount); err != nil {
		t.Fatal(err)
	}

	anon, err := NewClient(base, 4, "", "")
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	b := &Bench{opts: opts, images: newSmallImages(opts.N, 1)}
	if err := b.seedSmall(ctx, &Target{Name: "anonymous", Client: anon}); err == nil {
		t.Fatal("an anonymous push to moat with --dev=false succeeded")
	}

	admin, err := NewClient(base, 16, "admin", password)
	if err != nil {
		t.Fatal(err)
	}
	target := &Target{Name: subjectPolicyOn, Client: admin}
	results := []Result{b.PushSmall(ctx, target), b.PullSmall(ctx, target), b.HeadManifest(ctx, target, opts.Concurrency)}
	requireNoErrors(t, results, "push-small", "pull-small", "head-manifest c=4")
	if n := admin.tokenFetches.Load(); n == 0 || n > 4 {
		t.Errorf("%d token fetches, want one per scope (pull,push and pull)", n)
	}

	// The rules are in force: the registry answers the rule set back.
	req, err := http.NewRequest(http.MethodGet, base+"/admin/v1/registry", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"defaultAction":"Deny"`) || !strings.Contains(string(body), `"127.0.0.1`) {
		t.Errorf("GET /admin/v1/registry: %s", body)
	}
}
