package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/moat-registry/moat/config"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// newTracerProvider exports spans over OTLP/HTTP to cfg.Endpoint, in
// batches, sampling cfg.SampleRatio of the requests that arrive without a
// sampled traceparent. It sets no global state.
func newTracerProvider(cfg config.TracingConfig) (*sdktrace.TracerProvider, error) {
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "moat"
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", name),
		attribute.String("service.version", VersionString()),
	)
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	), nil
}

// traced wraps the root handler in a server span per request, named by
// method and route kind ("PUT manifest"), continuing a caller's W3C
// traceparent. Probes and scrapes (/healthz, /readyz, /metrics) are not
// traced. Without tracing configured the handler is not wrapped at all.
//
// otelhttp takes the span's client.address from X-Forwarded-For whoever
// sent it; it is replaced by clientAddress (the guard's, which believes
// the header only from trustedProxies).
func traced(h http.Handler, tp *sdktrace.TracerProvider, clientAddress func(*http.Request) netip.Addr) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetAttributes(semconv.ClientAddress(clientAddress(r).String()))
		}
		h.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(inner, "moat",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return methodLabel(r.Method) + " " + routeLabel(r.URL.Path)
		}),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
	)
}
