package notify

import "github.com/prometheus/client_golang/prometheus"

// metrics count events by endpoint and outcome.
type metrics struct {
	delivered, failed, dropped *prometheus.CounterVec
}

// counts are one endpoint's counters.
type counts struct {
	delivered, failed, dropped prometheus.Counter
}

func newMetrics() *metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"endpoint"})
	}
	return &metrics{
		delivered: vec("moat_notifications_delivered_total", "Events a notification endpoint accepted (2xx)."),
		failed:    vec("moat_notifications_failed_total", "Events given up on after the last attempt, a refusal (4xx) or shutdown."),
		dropped:   vec("moat_notifications_dropped_total", "Events dropped because the endpoint's queue was full."),
	}
}

func (m *metrics) of(endpoint string) counts {
	return counts{
		delivered: m.delivered.WithLabelValues(endpoint),
		failed:    m.failed.WithLabelValues(endpoint),
		dropped:   m.dropped.WithLabelValues(endpoint),
	}
}

func (m *metrics) register(r prometheus.Registerer, eps []*endpoint) error {
	cs := []prometheus.Collector{m.delivered, m.failed, m.dropped}
	for _, ep := range eps {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "moat_notifications_queued",
			Help:        "Events waiting in a notification endpoint's queue.",
			ConstLabels: prometheus.Labels{"endpoint": ep.name},
		}, func() float64 { return float64(len(ep.queue)) }))
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
