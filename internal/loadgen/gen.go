package loadgen

import (
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// The measurement keys every generated event carries, in the order it lists them.
var MetricKeys = []string{"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "reasoning_tokens"}

// DefaultModels are the models events are spread over when Generator.Models is nil; Catalog
// prices each of them.
var DefaultModels = []string{"claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5", "gpt-5-mini"}

// EventType is the event type of every generated event.
const EventType = "llm.completion"

// Generator makes compound usage events as a pure function of their index: event k of a
// generator is always the same bytes (unless Start is zero, when it is timestamped with the
// wall clock), so a retry, another client or a verifier can rebuild it from k alone.
//
// Event k has id "evt_<RunID>_<k>" (k zero-padded to 10 digits), correlation ID
// "req_<RunID>_<k>", one customer and one model drawn uniformly, a requestType of "batch" one
// time in ten and "standard" otherwise, and the five measurements of MetricKeys, each a positive
// integer: input 100–16,000 tokens, output 16–4,096, cache reads 64–32,000, 5-minute cache
// writes 16–8,000 and reasoning tokens at most the output. Nothing passes through floating
// point.
type Generator struct {
	// Seed selects the random stream.
	Seed uint64
	// RunID goes into every id and correlation ID; runs with different RunIDs never share an
	// idempotency key. It must be short (≤ 64 bytes) letters, digits, '-' or '_'.
	RunID string
	// Customers are the customer IDs events go to; at least one.
	Customers []string
	// Models are the values of the model property; nil means DefaultModels.
	Models []string
	// Start, when not zero, timestamps event k at Start + k·Step (millisecond precision, UTC).
	// The zero value timestamps events with the wall clock when their request is built.
	Start time.Time
	// Step is the time between consecutive events when Start is set.
	Step time.Duration
}

// validate checks the generator's settings.
func (g *Generator) validate() error {
	if len(g.Customers) == 0 {
		return fmt.Errorf("loadgen: at least one customer is needed")
	}
	if len(g.RunID) == 0 || len(g.RunID) > 64 {
		return fmt.Errorf("loadgen: RunID must be 1 to 64 bytes (got %q)", g.RunID)
	}
	for _, c := range g.RunID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("loadgen: RunID %q may hold only letters, digits, '-' and '_'", g.RunID)
		}
	}
	if g.Step < 0 {
		return fmt.Errorf("loadgen: Step must not be negative")
	}
	return nil
}

func (g *Generator) models() []string {
	if g.Models == nil {
		return DefaultModels
	}
	return g.Models
}

// ID returns the id of event k.
func (g *Generator) ID(k int64) string { return string(g.AppendID(nil, k)) }

// AppendID appends the id of event k.
func (g *Generator) AppendID(b []byte, k int64) []byte {
	b = append(b, "evt_"...)
	b = append(b, g.RunID...)
	b = append(b, '_')
	return appendPadded(b, k)
}

// Index returns the index of the event with the given id, or false when the id is not one of
// this generator's.
func (g *Generator) Index(id string) (int64, bool) {
	prefix := "evt_" + g.RunID + "_"
	if len(id) != len(prefix)+10 || id[:len(prefix)] != prefix {
		return 0, false
	}
	k, err := strconv.ParseInt(id[len(prefix):], 10, 64)
	if err != nil || k < 0 {
		return 0, false
	}
	return k, true
}

func appendPadded(b []byte, k int64) []byte {
	var d [20]byte
	n := strconv.AppendInt(d[:0], k, 10)
	for i := len(n); i < 10; i++ {
		b = append(b, '0')
	}
	return append(b, n...)
}

// Timestamp returns event k's timestamp when Start is set (the zero time otherwise).
func (g *Generator) Timestamp(k int64) time.Time {
	if g.Start.IsZero() {
		return time.Time{}
	}
	return g.Start.Add(time.Duration(k) * g.Step).UTC().Truncate(time.Millisecond)
}

// rng is splitmix64: tiny, allocation-free and good enough for synthetic usage.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n) for n > 0.
func (r *rng) intn(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// logInt returns an integer in [lo, hi), spread evenly over the doublings of lo.
func (r *rng) logInt(lo, hi int64) int64 {
	bands := int64(bits.Len64(uint64((hi - 1) / lo)))
	a := lo << uint(r.intn(bands))
	b := min(a<<1, hi)
	return a + r.intn(b-a)
}

// Event is the decoded content of one generated event (for verifiers).
type Event struct {
	ID, CorrelationID, CustomerID, Model, RequestType string
	Timestamp                                         time.Time
	Values                                            [5]int64 // in MetricKeys order
}

// Event returns event k's content; ts is its timestamp when Start is zero.
func (g *Generator) Event(k int64, ts time.Time) Event {
	r := rng{s: g.Seed ^ uint64(k+1)*0xd1b54a32d192ed03}
	models := g.models()
	e := Event{
		ID:            g.ID(k),
		CorrelationID: "req_" + g.RunID + "_" + string(appendPadded(nil, k)),
		CustomerID:    g.Customers[r.intn(int64(len(g.Customers)))],
		Model:         models[r.intn(int64(len(models)))],
		RequestType:   "standard",
	}
	if r.intn(10) == 0 {
		e.RequestType = "batch"
	}
	if g.Start.IsZero() {
		e.Timestamp = ts.UTC().Truncate(time.Millisecond)
	} else {
		e.Timestamp = g.Timestamp(k)
	}
	in := r.logInt(100, 16000)
	out := r.logInt(16, 4096)
	e.Values = [5]int64{in, out, r.logInt(64, 32000), r.logInt(16, 8000), 1 + r.intn(out)}
	return e
}

// timeLayout is RFC 3339 with milliseconds in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendEvent appends event k as one JSON object in Levy's event shape; ts is its timestamp
// when Start is zero.
func (g *Generator) AppendEvent(b []byte, k int64, ts time.Time) []byte {
	e := g.Event(k, ts)
	b = append(b, `{"id":"`...)
	b = append(b, e.ID...)
	b = append(b, `","eventType":"`+EventType+`","customerId":"`...)
	b = append(b, e.CustomerID...)
	b = append(b, `","timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, timeLayout)
	b = append(b, `","properties":{"model":"`...)
	b = append(b, e.Model...)
	b = append(b, `","requestType":"`...)
	b = append(b, e.RequestType...)
	b = append(b, `"},"measurements":[`...)
	for i, v := range e.Values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metricKey":"`...)
		b = append(b, MetricKeys[i]...)
		b = append(b, `","value":`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '}')
	}
	b = append(b, `],"correlationId":"`...)
	b = append(b, e.CorrelationID...)
	return append(b, `"}`...)
}

// AppendBatch appends events [lo, hi) as a JSON array (the body of one POST /v1/events); ts
// is their timestamp when Start is zero.
func (g *Generator) AppendBatch(b []byte, lo, hi int64, ts time.Time) []byte {
	b = append(b, '[')
	for k := lo; k < hi; k++ {
		if k > lo {
			b = append(b, ',')
		}
		b = g.AppendEvent(b, k, ts)
	}
	return append(b, ']')
}
