package billing

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingestion figures exported at /metrics.
type Metrics struct {
	Events      *prometheus.CounterVec
	GroupSize   prometheus.Histogram
	CommitTime  prometheus.Histogram
	Replays     prometheus.Counter
	CommitFails prometheus.Counter

	CounterApply    prometheus.Histogram
	CounterFailures prometheus.Counter
	CounterCursor   prometheus.Gauge
	CounterDrift    prometheus.Gauge
	CounterChecks   prometheus.Counter
	Transitions     *prometheus.CounterVec
	Invoices        prometheus.Counter
	LateEvents      prometheus.Counter
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
		CounterApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "levy_counter_apply_seconds", Help: "Time to apply one ledger event to the counter store.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18),
		}),
		CounterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_counter_apply_failures_total", Help: "Counter-store applies that failed; the counters catch up from the ledger.",
		}),
		CounterCursor: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "levy_counter_cursor", Help: "Ledger sequence number up to which every event is applied to the counter store.",
		}),
		CounterDrift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "levy_counter_drift_customers", Help: "Customers whose counters disagreed with the ledger at the last check.",
		}),
		CounterChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_counter_checks_total", Help: "Reconciliation runs of the counter store against the ledger.",
		}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_tier_transitions_total", Help: "Spend-tier transitions recorded, by reason.",
		}, []string{"reason"}),
		Invoices: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_invoices_issued_total", Help: "Final invoices issued by period close.",
		}),
		LateEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levy_late_events_total", Help: "Events for closed periods, billed as adjustments in the open period.",
		}),
	}
	reg.MustRegister(m.Events, m.GroupSize, m.CommitTime, m.Replays, m.CommitFails,
		m.CounterApply, m.CounterFailures, m.CounterCursor, m.CounterDrift, m.CounterChecks,
		m.Transitions, m.Invoices, m.LateEvents)
	return m
}
