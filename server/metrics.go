package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/policy"
	"github.com/moat-registry/moat/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are moat's Prometheus metrics, on a registry of their own (no
// global state).
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesIn   *prometheus.CounterVec
	bytesOut  *prometheus.CounterVec
	inFlight  *prometheus.GaugeVec
	gcRuns    *prometheus.CounterVec
	gcBytes   prometheus.Counter
	gcBlobs   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_policy_decisions_total",
		Help: "Policy decisions that were denials, Audit-mode allows or trusted-service bypasses, by stage and reason.",
	}, []string{"stage", "reason", "allowed"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_http_requests_total",
		Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "moat_http_request_duration_seconds",
		Help:    "HTTP request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method"})
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_http_request_bytes_total",
		Help: "Request body bytes received, by route.",
	}, []string{"route"})
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_http_response_bytes_total",
		Help: "Response body bytes sent, by route.",
	}, []string{"route"})
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "moat_http_requests_in_flight",
		Help: "Requests being served, by route (upload and upload-start are uploads in flight).",
	}, []string{"route"})
	m.gcRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_gc_runs_total",
		Help: "Garbage collections by result (ok, canceled, error).",
	}, []string{"result"})
	m.gcBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moat_gc_reclaimed_bytes_total",
		Help: "Blob bytes deleted by garbage collection.",
	})
	m.gcBlobs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moat_gc_deleted_blobs_total",
		Help: "Blobs deleted by garbage collection.",
	})
	m.reg.MustRegister(m.decisions, m.requests, m.latency, m.bytesIn, m.bytesOut, m.inFlight, m.gcRuns, m.gcBytes, m.gcBlobs)
	return m
}

func (m *metrics) decision(stage policy.Stage, reason policy.Reason, allowed bool) {
	m.decisions.WithLabelValues(stage.String(), reason.String(), strconv.FormatBool(allowed)).Inc()
}

func (m *metrics) observe(route, method string, code int, in, out int64, d time.Duration) {
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
	if in > 0 {
		m.bytesIn.WithLabelValues(route).Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.WithLabelValues(route).Add(float64(out))
	}
}

// methodLabel is a request method as a metric label: the methods moat
// serves, else OTHER, so that a client inventing methods cannot grow the
// number of series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// gc counts a collection by its result: ok, canceled (its caller went
// away or the server stopped; what it deleted until then counts) or
// error.
func (m *metrics) gc(rep storage.GCReport, err error, canceled bool) {
	switch {
	case canceled:
		m.gcRuns.WithLabelValues("canceled").Inc()
	case err != nil:
		m.gcRuns.WithLabelValues("error").Inc()
		return
	default:
		m.gcRuns.WithLabelValues("ok").Inc()
	}
	if !rep.DryRun {
		m.gcBytes.Add(float64(rep.BytesReclaimed))
		m.gcBlobs.Add(float64(rep.BlobsDeleted))
	}
}
