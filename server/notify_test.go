package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/auth"
	"github.com/moat-registry/moat/config"
	"github.com/moat-registry/moat/notify"
	"github.com/moat-registry/moat/registry"
)

const hookSecret = "hook-secret"

// hookReceiver is a webhook receiver that checks each body's signature
// and reports its events.
func hookReceiver(t *testing.T) (*httptest.Server, <-chan notify.Event) {
	t.Helper()
	events := make(chan notify.Event, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !notify.Verify([]byte(hookSecret), body, r.Header.Get(notify.SignatureHeader)) {
			t.Errorf("signature %q does not verify", r.Header.Get(notify.SignatureHeader))
		}
		if ct := r.Header.Get("Content-Type"); ct != notify.MediaType {
			t.Errorf("Content-Type = %q", ct)
		}
		var env notify.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("not an envelope: %v", err)
		}
		for _, e := range env.Events {
			events <- e
		}
	}))
	t.Cleanup(srv.Close)
	return srv, events
}

func nextEvent(t *testing.T, events <-chan notify.Event) notify.Event {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return notify.Event{}
	}
}

func withHook(url string, edit func(*config.NotificationEndpoint)) func(*config.Config) {
	return func(c *config.Config) {
		ep := config.NotificationEndpoint{Name: "hook", URL: url, Secret: hookSecret}
		if edit != nil {
			edit(&ep)
		}
		c.Notifications.Endpoints = []config.NotificationEndpoint{ep}
	}
}

func TestPushNotifiesWithDigestTagAndRequest(t *testing.T) {
	t.Parallel()
	hook, events := hookReceiver(t)
	s, base := start(t, withHook(hook.URL, func(ep *config.NotificationEndpoint) {
		ep.Repositories = []string{"app/*"}
	}), nil)

	push(t, http.DefaultClient, base, "other/web", "v0") // filtered out
	p := push(t, http.DefaultClient, base, "app/web", "v1")

	// Blob pushes come first, each as an event of its own.
	var e notify.Event
	for e = nextEvent(t, events); e.Target.MediaType == "application/octet-stream"; e = nextEvent(t, events) {
		if e.Target.Repository != "app/web" || e.Action != "push" || !strings.HasPrefix(e.Target.URL, base+"/v2/app/web/blobs/sha256:") {
			t.Errorf("blob event = %+v", e)
		}
	}
	want := notify.Target{
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(p.size), Length: int64(p.size),
		Digest: p.digest, Repository: "app/web", Tag: "v1", URL: base + "/v2/app/web/manifests/" + p.digest,
	}
	if e.Action != "push" || e.Target != want {
		t.Errorf("event %s %+v\nwant push %+v", e.Action, e.Target, want)
	}
	host := strings.TrimPrefix(base, "http://")
	if e.Request.ID != p.requestID || e.Request.Method != http.MethodPut || e.Request.Host != host || e.Request.Addr != "127.0.0.1" || e.Request.UserAgent == "" {
		t.Errorf("request = %+v (X-Request-Id %s)", e.Request, p.requestID)
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	if e.ID == "" || e.Timestamp.IsZero() || e.Source.InstanceID == "" || !strings.HasSuffix(e.Source.Addr, ":"+port) {
		t.Errorf("id %q, timestamp %v, source %+v", e.ID, e.Timestamp, e.Source)
	}

	// Deleting the tag is a delete event naming it.
	if resp := do(t, http.DefaultClient, http.MethodDelete, base+"/v2/app/web/manifests/v1", "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("tag delete: %s", resp.Status)
	}
	if e := nextEvent(t, events); e.Action != "delete" || e.Target.Repository != "app/web" || e.Target.Tag != "v1" {
		t.Errorf("delete event = %s %+v", e.Action, e.Target)
	}
}

func TestInProcessPushesNotify(t *testing.T) {
	t.Parallel()
	hook, events := hookReceiver(t)
	s, _ := start(t, withHook(hook.URL, func(ep *config.NotificationEndpoint) {
		ep.IgnoredMediaTypes = []string{"application/octet-stream"}
	}), nil)
	client := &http.Client{Transport: s.inproc.transport(auth.Importer)}
	p := push(t, client, "http://moat.local", "imported/app", "v1")

	e := nextEvent(t, events)
	if e.Target.Repository != "imported/app" || e.Target.Digest != p.digest || e.Target.Tag != "v1" {
		t.Errorf("event = %+v", e.Target)
	}
	if want := s.IssuerURL() + "/v2/imported/app/manifests/" + p.digest; e.Target.URL != want {
		t.Errorf("url = %q, want %q", e.Target.URL, want)
	}
}

func TestNoEndpointsNoHook(t *testing.T) {
	t.Parallel()
	s := build(t, nil)
	if s.notifier != nil || s.onEvent(false) != nil {
		t.Error("a notifier without endpoints")
	}
}

// BenchmarkOnEvent is what a push pays for notifications: building the
// event and queueing it (delivery runs on the endpoint's worker).
func BenchmarkOnEvent(b *testing.B) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = b.TempDir()
	withHook(hook.URL, func(ep *config.NotificationEndpoint) { ep.Repositories = []string{"app/*"} })(&cfg)
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	onEvent := s.onEvent(false)
	r := httptest.NewRequest(http.MethodPut, "http://registry.example/v2/app/web/manifests/v1", nil)
	e := registry.Event{Action: "push", Kind: registry.KindManifest, Repository: "app/web", Tag: "v1",
		Digest: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 500, Request: r}
	b.ReportAllocs()
	for b.Loop() {
		onEvent(e)
	}
}
