package gateway

import "github.com/prometheus/client_golang/prometheus"

// Request outcomes (levy_gateway_requests_total{outcome}).
const (
	outcomeForwarded     = "forwarded"      // allowed and answered by the upstream (any status)
	outcomeDenied        = "denied"         // 429 from the decision
	outcomeRejected      = "rejected"       // a 4xx of the gateway's own: key, body, route
	outcomeUpstreamError = "upstream_error" // the upstream could not be reached or failed
	outcomeError         = "error"          // the decision or the key lookup failed
)

// Metering kinds (levy_gateway_metered_total{usage}).
const (
	usageReported  = "reported"  // the provider's final usage
	usagePartial   = "partial"   // a stream cut short: the counts reported before the cut
	usageEstimated = "estimated" // no usage reported: the input estimate, no output
	usageReleased  = "released"  // nothing consumed: the reservation was released, nothing billed
)

// Ingestion results of usage events (levy_gateway_events_total{result}).
const (
	eventIngested  = "ingested"
	eventDuplicate = "duplicate"
	eventRetried   = "retried" // one failed attempt that will be retried
	eventFailed    = "failed"  // given up after the last attempt, or a permanent rejection
	eventDropped   = "dropped" // the queue was full or the gateway closed
)

// metrics are the gateway's Prometheus figures; the zero value (no registry) records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	metered  *prometheus.CounterVec
	events   *prometheus.CounterVec
	queue    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_gateway_requests_total",
			Help: "Gateway requests by API and outcome (forwarded, denied, rejected, upstream_error, error).",
		}, []string{"api", "outcome"}),
		metered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_gateway_metered_total",
			Help: "Forwarded calls by how their usage was metered (reported, partial, estimated, released).",
		}, []string{"api", "usage"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "levy_gateway_events_total",
			Help: "Usage events handed to ingestion, by result (ingested, duplicate, retried, failed, dropped).",
		}, []string{"result"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "levy_gateway_event_queue",
			Help: "Usage events waiting to be ingested.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.metered, m.events, m.queue)
	}
	return m
}
