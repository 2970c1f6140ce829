package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/config"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP traces endpoint that reports the names of
// the spans it receives.
func otlpReceiver(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	spans := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("export to %s as %s", r.URL.Path, r.Header.Get("Content-Type"))
		}
		if got := r.Header.Get("X-Api-Key"); got != "k" {
			t.Errorf("X-Api-Key = %q", got)
		}
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("not an OTLP export: %v", err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					spans <- sp.Name
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(srv.Close)
	return srv, spans
}

func TestTracingExportsSpansNamedByRoute(t *testing.T) {
	t.Parallel()
	otlp, spans := otlpReceiver(t)
	s, base := start(t, func(c *config.Config) {
		c.Tracing = config.TracingConfig{Endpoint: otlp.URL + "/v1/traces", SampleRatio: 1, Headers: map[string]string{"X-Api-Key": "k"}}
	}, nil)
	get(t, base+"/healthz") // not traced
	get(t, base+"/v2/")
	push(t, http.DefaultClient, base, "app/web", "v1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.tracer.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(spans) > 0 {
		got[<-spans] = true
	}
	for _, want := range []string{"GET base", "POST upload-start", "PUT manifest"} {
		if !got[want] {
			t.Errorf("no span %q; got %v", want, got)
		}
	}
	for name := range got {
		if strings.Contains(name, "healthz") || strings.Contains(name, "readyz") {
			t.Errorf("span %q for a probe", name)
		}
	}
}

func TestTracingOffByDefault(t *testing.T) {
	t.Parallel()
	s := build(t, nil)
	if s.tracer != nil {
		t.Error("a tracer provider without tracing.endpoint")
	}
}

// TestTracedClientAddressIsTheGuards: a span's client.address is the
// address the guard judges by, so a client cannot choose it with
// X-Forwarded-For; only a trusted proxy's header counts.
func TestTracedClientAddressIsTheGuards(t *testing.T) {
	t.Parallel()
	s := build(t, func(c *config.Config) { c.TrustedProxies = []string{"192.0.2.10"} })
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	h := traced(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), tp, s.guard.ClientAddress)
	for _, tt := range []struct{ peer, xff, want string }{
		{peer: "203.0.113.9", xff: "198.51.100.66", want: "203.0.113.9"}, // not a proxy: its header is a claim
		{peer: "192.0.2.10", xff: "198.51.100.7", want: "198.51.100.7"},  // a trusted proxy
	} {
		r := httptest.NewRequest("BREW", "/v2/app/manifests/v1", nil)
		r.RemoteAddr = tt.peer + ":40000"
		r.Header.Set("X-Forwarded-For", tt.xff)
		h.ServeHTTP(httptest.NewRecorder(), r)
		ended := spans.Ended()
		if len(ended) == 0 {
			t.Fatal("no span recorded")
		}
		sp := ended[len(ended)-1]
		if sp.Name() != "OTHER manifest" {
			t.Errorf("span name %q, want %q", sp.Name(), "OTHER manifest")
		}
		got := ""
		for _, a := range sp.Attributes() {
			if a.Key == "client.address" {
				got = a.Value.AsString()
			}
		}
		if got != tt.want {
			t.Errorf("peer %s, X-Forwarded-For %s: client.address = %q, want %q", tt.peer, tt.xff, got, tt.want)
		}
	}
}

func TestTracingSampleRatioZeroSendsNothing(t *testing.T) {
	t.Parallel()
	otlp, spans := otlpReceiver(t)
	s, base := start(t, func(c *config.Config) {
		c.Tracing = config.TracingConfig{Endpoint: otlp.URL + "/v1/traces", SampleRatio: 0, Headers: map[string]string{"X-Api-Key": "k"}}
	}, nil)
	get(t, base+"/v2/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.tracer.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(spans) != 0 {
		t.Errorf("%d spans exported at ratio 0", len(spans))
	}
}
