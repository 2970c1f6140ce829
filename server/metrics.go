package server

import (
	"net/http"

	"github.com/moat-registry/moat/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are moat's Prometheus metrics, on a registry of their own (no
// global state).
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moat_policy_decisions_total",
		Help: "Policy decisions that were denials, Audit-mode allows or trusted-service bypasses, by stage and reason.",
	}, []string{"stage", "reason", "allowed"})
	m.reg.MustRegister(m.decisions)
	return m
}

func (m *metrics) decision(stage policy.Stage, reason policy.Reason, allowed bool) {
	a := "false"
	if allowed {
		a = "true"
	}
	m.decisions.WithLabelValues(stage.String(), reason.String(), a).Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
