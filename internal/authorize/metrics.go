package authorize

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/levyhq/levy/internal/authorize/limit"
)

// metrics are the authorize figures exported at /metrics. Every counter a decision touches is
// resolved once here, so counting a decision allocates nothing.
type metrics struct {
	decisions *prometheus.CounterVec
	failOpen  *prometheus.CounterVec
	latency   prometheus.Histogram

	allow, allowFailOpen, denyFailOpen prometheus.Counter
	deny                               [limit.NumDimensions]prometheus.Counter
	failOpenAllowed, failOpenDenied    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_authorize_decisions_total",
			Help: "Authorize decisions, by decision (ALLOW, DENY) and reason (the denying limit; fail_open for an ALLOW without the counter store).",
		}, []string{"decision", "reason"}),
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_authorize_fail_open_total",
			Help: "Decisions taken without the counter store (unavailable, too slow or refusing connections), by outcome (allowed, denied by the safe capacity).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "levy_authorize_duration_seconds",
			Help:    "Time to decide one authorize request, counter-store round trip included.",
			Buckets: prometheus.ExponentialBuckets(0.000005, 2, 16),
		}),
	}
	if reg != nil {
		m.decisions = register(reg, m.decisions)
		m.failOpen = register(reg, m.failOpen)
		m.latency = register(reg, m.latency)
	}
	m.allow = m.decisions.WithLabelValues(string(Allow), "")
	m.allowFailOpen = m.decisions.WithLabelValues(string(Allow), "fail_open")
	m.denyFailOpen = m.decisions.WithLabelValues(string(Deny), ReasonFailOpenCapacity)
	for d := limit.DimInvalid; d < limit.NumDimensions; d++ {
		m.deny[d] = m.decisions.WithLabelValues(string(Deny), d.String())
	}
	m.failOpenAllowed = m.failOpen.WithLabelValues("allowed")
	m.failOpenDenied = m.failOpen.WithLabelValues("denied")
	return m
}

// register registers c, or returns the collector of the same description already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a name clash with another metric: a programming error caught at start
	}
	return c
}

// decided counts one decision and its latency since start.
func (m *metrics) decided(r *Result, start time.Time) {
	switch {
	case r.FailOpen && r.Decision == Allow:
		m.allowFailOpen.Inc()
		m.failOpenAllowed.Inc()
	case r.FailOpen:
		m.denyFailOpen.Inc()
		m.failOpenDenied.Inc()
	case r.Decision == Allow:
		m.allow.Inc()
	case r.reason > limit.DimNone && r.reason < limit.NumDimensions:
		m.deny[r.reason].Inc()
	}
	m.latency.Observe(time.Since(start).Seconds())
}
