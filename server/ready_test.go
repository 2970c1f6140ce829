package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/storage"
)

func TestReadyzFlipsWithTheDataDirectory(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64 // nanoseconds; moved by hand past the probe's cache
	clock.Store(time.Now().UnixNano())
	s, base := start(t, nil, func(s *Server) {
		s.probe.now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	later := func() { clock.Add(int64(2 * probeTTL)) }
	readyz := func(wantCode int, wantBody string) {
		t.Helper()
		resp, body := get(t, base+"/readyz")
		if resp.StatusCode != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("/readyz = %d %q, want %d with %q", resp.StatusCode, body, wantCode, wantBody)
		}
		v, err := strconv.ParseUint(resp.Header.Get(SettingsVersionHeader), 10, 64)
		if err != nil || v != s.dir.Snapshot().Version {
			t.Errorf("%s = %q, want %d", SettingsVersionHeader, resp.Header.Get(SettingsVersionHeader), s.dir.Snapshot().Version)
		}
	}
	readyz(http.StatusOK, "ready")

	// Storage breaks: <data>/tmp, where blobs are written first, is no
	// longer a directory (chmod does not stop root, this does).
	tmp := filepath.Join(s.cfg.Data, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	readyz(http.StatusOK, "ready") // the last probe is reused for a second
	later()
	readyz(http.StatusServiceUnavailable, "not ready: data directory is not writable")

	// Repaired.
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	later()
	readyz(http.StatusOK, "ready")
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the probe left %d files in tmp/", len(entries))
	}

	// /healthz is about the process only.
	if resp, body := get(t, base+"/healthz"); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
}

func TestReadyzReportsTheSettingsVersion(t *testing.T) {
	t.Parallel()
	s, base := start(t, nil, nil)
	before := s.dir.Snapshot().Version
	if _, _, err := s.dir.UpdateProperties(context.Background(), "", func(p *auth.Properties) error {
		p.AnonymousPullEnabled = !p.AnonymousPullEnabled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, base+"/readyz")
	got := resp.Header.Get(SettingsVersionHeader)
	if want := strconv.FormatUint(s.dir.Snapshot().Version, 10); got != want || got == strconv.FormatUint(before, 10) {
		t.Errorf("%s = %s after a change (before %d, now %s)", SettingsVersionHeader, got, before, want)
	}
	if !strings.Contains(body, "settings version "+got) {
		t.Errorf("body %q does not name the version", body)
	}
}

func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	hook, events := hookReceiver(t)
	s, base := start(t, withHook(hook.URL, nil), nil)
	push(t, http.DefaultClient, base, "app/web", "v1")
	nextEvent(t, events)
	get(t, base+"/v2/app/web/manifests/v1")
	// An anonymous caller whose Host is not loopback is not the dev
	// profile's: a denial, counted by stage and reason.
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/app/web/tags/list", nil)
	req.Host = "registry.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous non-dev request: %s", resp.Status)
	}
	if _, err := s.CollectGarbage(context.Background(), storage.GCOptions{GracePeriod: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// A collection whose caller went away is canceled, not failed.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CollectGarbage(gone, storage.GCOptions{GracePeriod: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Fatalf("collection with a canceled context = %v, want context.Canceled", err)
	}

	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		`moat_http_requests_total{code="201",method="PUT",route="manifest"} 1`,
		`moat_http_requests_total{code="200",method="GET",route="manifest"} 1`,
		`moat_http_requests_total{code="401",method="GET",route="tags"} 1`,
		`moat_http_request_duration_seconds_bucket{method="PUT",route="manifest",le="+Inf"} 1`,
		`moat_http_request_bytes_total{route="manifest"}`,
		`moat_http_response_bytes_total{route="manifest"}`,
		`moat_http_requests_in_flight{route="manifest"} 0`,
		`moat_policy_decisions_total{allowed="false",reason="NotAuthenticated",stage="authn"} 1`,
		`moat_gc_runs_total{result="ok"} 1`,
		`moat_gc_runs_total{result="canceled"} 1`,
		`moat_notifications_delivered_total{endpoint="hook"}`,
		`moat_notifications_queued{endpoint="hook"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if t.Failed() {
		t.Log(grepLines(body, "moat_"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
