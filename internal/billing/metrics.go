package billing

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingestion figures exported at /metrics.
type Metrics struct {
	Events      *prometheus.CounterVec
	GroupSize   prometheus.Histogram
	CommitTime  prometheus.Histogram
	Replays     prometheus.Counter
	CommitFails prometheus.Counter
}

// NewMetrics registers the ingestion metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_ingest_events_total", Help: "Events received, by outcome (accepted, duplicate, rejected).",
		}, []string{"outcome"}),
		GroupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "levy_ingest_group_events", Help: "Events written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		CommitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "levy_ingest_commit_seconds", Help: "Time to commit one group of events to the durable store.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		Replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_rating_state_replays_total", Help: "Period states rebuilt from the ledger.",
		}),
		CommitFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_ingest_commit_failures_total", Help: "Group commits that failed and were answered with an error.",
		}),
	}
	reg.MustRegister(m.Events, m.GroupSize, m.CommitTime, m.Replays, m.CommitFails)
	return m
}
