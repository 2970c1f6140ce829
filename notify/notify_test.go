package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var secret = []byte("s3cret")

// delivery is one request a test receiver got.
type delivery struct {
	header   http.Header
	body     []byte
	envelope Envelope
}

// receiver answers each request with the next status of statuses (the
// last one repeats) and reports every request on the returned channel.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, <-chan delivery) {
	t.Helper()
	got := make(chan delivery, 100)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &d.envelope); err != nil {
			t.Errorf("body is not an envelope: %v\n%s", err, body)
		}
		i := int(n.Add(1)) - 1
		status := http.StatusOK
		if len(statuses) > 0 {
			status = statuses[min(i, len(statuses)-1)]
		}
		w.WriteHeader(status)
		got <- d
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newNotifier(t *testing.T, eps ...Endpoint) *Notifier {
	t.Helper()
	n, err := New(Options{Endpoints: eps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

func event(action, repo, tag string) Event {
	return Event{
		ID: NewID(), Timestamp: time.Now().UTC(), Action: action,
		Target: Target{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 123, Length: 123,
			Digest:     "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			Repository: repo, Tag: tag, URL: "https://registry.example/v2/" + repo + "/manifests/" + tag,
		},
		Request: Request{ID: "0123456789abcdef", Addr: "192.0.2.1", Host: "registry.example", Method: "PUT", UserAgent: "test"},
		Source:  Source{Addr: "host:5000", InstanceID: NewID()},
	}
}

func next(t *testing.T, got <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return delivery{}
	}
}

func TestDeliverySignedInDistributionShape(t *testing.T) {
	srv, got := receiver(t)
	n := newNotifier(t, Endpoint{Name: "scanner", URL: srv.URL, Secret: secret, Header: http.Header{"Authorization": {"Bearer abc"}}})
	want := event(ActionPush, "app/web", "v1")
	n.Publish(want)

	d := next(t, got)
	if ct := d.header.Get("Content-Type"); ct != MediaType {
		t.Errorf("Content-Type = %q, want %q", ct, MediaType)
	}
	if !Verify(secret, d.body, d.header.Get(SignatureHeader)) {
		t.Errorf("%s = %q does not verify", SignatureHeader, d.header.Get(SignatureHeader))
	}
	if Verify([]byte("other"), d.body, d.header.Get(SignatureHeader)) {
		t.Error("the signature verifies under another secret")
	}
	if a := d.header.Get("Authorization"); a != "Bearer abc" {
		t.Errorf("configured header Authorization = %q", a)
	}
	if len(d.envelope.Events) != 1 {
		t.Fatalf("%d events, want 1", len(d.envelope.Events))
	}
	e := d.envelope.Events[0]
	if e.ID != want.ID || e.Action != "push" || e.Target != want.Target || e.Request != want.Request || e.Source != want.Source {
		t.Errorf("event = %+v\nwant %+v", e, want)
	}
	// The wire names are Distribution's.
	var raw struct {
		Events []struct{ Target, Request, Source map[string]any }
	}
	if err := json.Unmarshal(d.body, &raw); err != nil {
		t.Fatal(err)
	}
	target := raw.Events[0].Target
	for _, k := range []string{"mediaType", "size", "digest", "repository", "url", "tag"} {
		if _, ok := target[k]; !ok {
			t.Errorf("target has no %q: %v", k, target)
		}
	}
	if _, ok := raw.Events[0].Request["useragent"]; !ok {
		t.Errorf("request has no useragent: %v", raw.Events[0].Request)
	}
	if _, ok := raw.Events[0].Source["instanceID"]; !ok {
		t.Errorf("source has no instanceID: %v", raw.Events[0].Source)
	}
	waitFor(t, func() bool { return value(n.metrics.delivered.WithLabelValues("scanner")) == 1 })
}

func TestRetriesWithBackoffUntilAccepted(t *testing.T) {
	srv, got := receiver(t, 500, 503, 200)
	n := newNotifier(t, Endpoint{Name: "ci", URL: srv.URL, Secret: secret, Backoff: time.Millisecond, MaxAttempts: 5})
	n.Publish(event(ActionPush, "app/web", "v1"))

	var first []byte
	for attempt := 1; attempt <= 3; attempt++ {
		d := next(t, got)
		if h := d.header.Get(AttemptHeader); h != strconv.Itoa(attempt) {
			t.Errorf("request %d: %s = %q", attempt, AttemptHeader, h)
		}
		if attempt == 1 {
			first = d.body
		} else if string(d.body) != string(first) {
			t.Errorf("attempt %d sent another body", attempt)
		}
		if len(d.envelope.Events) != 1 || d.envelope.Events[0].Target.Repository != "app/web" {
			t.Errorf("attempt %d: events = %+v", attempt, d.envelope.Events)
		}
	}
	waitFor(t, func() bool { return value(n.metrics.delivered.WithLabelValues("ci")) == 1 })
	if f := value(n.metrics.failed.WithLabelValues("ci")); f != 0 {
		t.Errorf("failed = %v, want 0", f)
	}
	select {
	case d := <-got:
		t.Errorf("a 4th request after success: %s", d.header.Get(AttemptHeader))
	default:
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	srv, got := receiver(t, 500)
	n := newNotifier(t, Endpoint{Name: "down", URL: srv.URL, Secret: secret, Backoff: time.Millisecond, MaxAttempts: 3})
	n.Publish(event(ActionPush, "app/web", "v1"))
	for range 3 {
		next(t, got)
	}
	waitFor(t, func() bool { return value(n.metrics.failed.WithLabelValues("down")) == 1 })
	if len(got) != 0 {
		t.Errorf("%d requests beyond maxAttempts", len(got))
	}
}

func TestRefusalIsNotRetried(t *testing.T) {
	srv, got := receiver(t, http.StatusBadRequest)
	n := newNotifier(t, Endpoint{Name: "picky", URL: srv.URL, Secret: secret, Backoff: time.Millisecond})
	n.Publish(event(ActionPush, "app/web", "v1"))
	next(t, got)
	waitFor(t, func() bool { return value(n.metrics.failed.WithLabelValues("picky")) == 1 })
	if len(got) != 0 {
		t.Error("a 400 was retried")
	}
}

func TestFilterExcludesOtherRepositories(t *testing.T) {
	srv, got := receiver(t)
	n := newNotifier(t, Endpoint{Name: "app", URL: srv.URL, Secret: secret, Repositories: []string{"app/*"}, Actions: []string{ActionPush}})
	n.Publish(event(ActionPush, "other/web", "v1"))
	n.Publish(event(ActionDelete, "app/web", "v1"))
	n.Publish(event(ActionPush, "application", "v1"))
	n.Publish(event(ActionPush, "app/web", "v2"))
	// One worker, one queue: the wanted event comes after the others, so
	// any that passed the filter would have arrived with or before it.
	d := next(t, got)
	for _, e := range d.envelope.Events {
		if e.Target.Repository != "app/web" || e.Action != ActionPush {
			t.Errorf("received %s %s:%s", e.Action, e.Target.Repository, e.Target.Tag)
		}
	}
	if e := d.envelope.Events[len(d.envelope.Events)-1]; e.Target.Tag != "v2" {
		t.Errorf("last event is %s:%s, want app/web:v2", e.Target.Repository, e.Target.Tag)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	n := newNotifier(t, Endpoint{Name: "slow", URL: srv.URL, Secret: secret, QueueSize: 2, Timeout: time.Minute, MaxAttempts: 1})

	n.Publish(event(ActionPush, "app/web", "1"))
	<-entered // the worker holds event 1 in a request that does not end
	start := time.Now()
	for i := 2; i <= 6; i++ {
		n.Publish(event(ActionPush, "app/web", strconv.Itoa(i)))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish blocked for %v", d)
	}
	if q := n.Queued("slow"); q != 2 {
		t.Errorf("queued = %d, want 2", q)
	}
	if d := value(n.metrics.dropped.WithLabelValues("slow")); d != 3 {
		t.Errorf("dropped = %v, want 3", d)
	}
}

func TestCloseDeliversQueuedEvents(t *testing.T) {
	srv, got := receiver(t)
	n, err := New(Options{Endpoints: []Endpoint{{Name: "r", URL: srv.URL, Secret: secret}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		n.Publish(event(ActionPush, "app/web", strconv.Itoa(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	total := 0
	for len(got) > 0 {
		total += len((<-got).envelope.Events)
	}
	if total != 5 {
		t.Errorf("%d events delivered by Close, want 5", total)
	}
	n.Publish(event(ActionPush, "app/web", "late")) // after Close: dropped, no panic
}

// TestLinkLocalReceiverRefused: a receiver on a link-local (cloud
// metadata) address is refused before any packet is sent: the dial check
// runs before connect, so the test sends nothing.
func TestLinkLocalReceiverRefused(t *testing.T) {
	var logs lockedBuffer
	n, err := New(Options{
		Endpoints:  []Endpoint{{Name: "metadata", URL: "http://169.254.169.254/hook", Secret: secret, MaxAttempts: 1}},
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	n.Publish(event(ActionPush, "app/web", "v1"))
	// The failure is counted, then logged.
	waitFor(t, func() bool { return strings.Contains(logs.String(), "notification not delivered") })
	if got := value(n.metrics.failed.WithLabelValues("metadata")); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	if log := logs.String(); !strings.Contains(log, "refusing to connect to 169.254.169.254") {
		t.Errorf("the delivery failed without the link-local refusal:\n%s", log)
	}
}

// lockedBuffer is a log sink the test reads while the worker writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for name, ep := range map[string]Endpoint{
		"scheme":  {Name: "a", URL: "ftp://example.com/"},
		"action":  {Name: "a", URL: "https://example.com/", Actions: []string{"pull"}},
		"regexp":  {Name: "a", URL: "https://example.com/", RepositoryRegexp: "("},
		"pattern": {Name: "a", URL: "https://example.com/", Repositories: []string{""}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Options{Endpoints: []Endpoint{ep}}); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		ep := Endpoint{Name: "a", URL: "https://example.com/"}
		if _, err := New(Options{Endpoints: []Endpoint{ep, ep}}); err == nil {
			t.Error("New accepted it")
		}
	})
}

// waitFor polls cond (a delivery's counters change after the receiver
// has answered) until it holds or 10s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
