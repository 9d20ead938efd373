package rating

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

func d(s string) money.Decimal { return money.MustParse(s) }

func q(s string) money.Qty { return money.QtyOf(money.MustParse(s)) }

func loadCatalog(t testing.TB, doc string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load([]byte(doc))
	if err != nil {
		t.Fatalf("catalog.Load: %v\n%s", err, doc)
	}
	return c
}

// newRater loads a catalog and returns a rater for its plan "p".
func newRater(t testing.TB, doc string) *Rater {
	t.Helper()
	c := loadCatalog(t, doc)
	p := c.Plan("p")
	if p == nil {
		t.Fatal(`the catalog has no plan "p"`)
	}
	return NewRater(c, p)
}

// planWith builds a catalog document with the usual meters and plan "p" of the given charges
// (YAML flow mappings, one a line).
func planWith(charges ...string) string {
	var sb strings.Builder
	sb.WriteString(`currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: tokens}
  - {key: api_calls, aggregation: count}
plans:
  - key: p
    charges:
`)
	for _, c := range charges {
		sb.WriteString("      - " + c + "\n")
	}
	return sb.String()
}

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

type evOpt func(*usage.Event)

func prop(k, v string) evOpt {
	return func(e *usage.Event) { e.Properties = append(e.Properties, usage.Property{Key: k, Value: v}) }
}

func meas(k, v string) evOpt {
	return func(e *usage.Event) {
		e.Measurements = append(e.Measurements, usage.Measurement{MetricKey: k, Value: q(v)})
	}
}

func measQty(k string, v money.Qty) evOpt {
	return func(e *usage.Event) {
		e.Measurements = append(e.Measurements, usage.Measurement{MetricKey: k, Value: v})
	}
}

func evType(s string) evOpt { return func(e *usage.Event) { e.EventType = s } }

func at(ts time.Time) evOpt {
	return func(e *usage.Event) { e.Timestamp = ts; e.TimestampGiven = true }
}

var evSeq atomic.Int64

// event builds an llm.completion event of customer c1; options add properties and measurements.
func event(opts ...evOpt) *usage.Event {
	n := evSeq.Add(1)
	e := &usage.Event{
		EventType:     "llm.completion",
		CustomerID:    "c1",
		CorrelationID: fmt.Sprintf("req_%d", n),
		Timestamp:     t0.Add(time.Duration(n) * time.Second),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// rateAll rates events in order on a fresh state and returns the state and the results.
func rateAll(t testing.TB, r *Rater, evs ...*usage.Event) (*State, []Result) {
	t.Helper()
	st := r.NewState()
	var out []Result
	for _, ev := range evs {
		res, err := r.Rate(st, ev)
		if err != nil {
			t.Fatalf("Rate: %v", err)
		}
		out = append(out, res)
	}
	return st, out
}

// accumulateAll is rateAll with Accumulate.
func accumulateAll(t testing.TB, r *Rater, evs ...*usage.Event) *State {
	t.Helper()
	st := r.NewState()
	for _, ev := range evs {
		if _, err := r.Accumulate(st, ev); err != nil {
			t.Fatalf("Accumulate: %v", err)
		}
	}
	return st
}

// linesOf returns the priced lines of a charge (all groups and types).
func linesOf(p Priced, charge string) []PricedLine {
	var out []PricedLine
	for _, l := range p.Lines {
		if l.Charge == charge {
			out = append(out, l)
		}
	}
	return out
}

// chargeTotal sums the priced lines of a charge, all types.
func chargeTotal(p Priced, charge string) money.Decimal {
	s := money.Zero
	for _, l := range linesOf(p, charge) {
		s = s.Add(l.Amount)
	}
	return s
}

// lineAmount returns the amount of the (charge, group, type) priced line and whether it exists.
func lineAmount(p Priced, charge, group string, typ LineType) (money.Decimal, bool) {
	for _, l := range p.Lines {
		if l.Charge == charge && l.Group == group && l.Type == typ {
			return l.Amount, true
		}
	}
	return money.Zero, false
}

// resultSum sums result line amounts of a charge (all types; "" for every charge).
func resultSum(rs []Result, charge string) money.Decimal {
	s := money.Zero
	for _, r := range rs {
		for _, l := range r.Lines {
			if charge == "" || l.Charge == charge {
				s = s.Add(l.Amount)
			}
		}
	}
	return s
}

func wantAmount(t testing.TB, what string, got money.Decimal, want string) {
	t.Helper()
	if !got.Equal(d(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// renderPriced prints a period's price in a stable text form (goldens and comparisons).
func renderPriced(cur money.Currency, p Priced) string {
	var sb strings.Builder
	for _, l := range p.Lines {
		group := l.Group
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(&sb, "line %-16s %-20s %-10s qty=%-14s amount=%-14s rounded=%-10s cost=%s\n",
			l.Charge, group, l.Type, l.Quantity.String(), l.Amount.String(), money.Format(l.Amount, cur), l.Cost.String())
	}
	fmt.Fprintf(&sb, "total %s rounded=%s cost=%s events=%d\n", p.Total.String(), money.Format(p.Total, cur), p.Cost.String(), p.Events)
	return sb.String()
}

// renderResult prints one event's rated lines, sorted by plan order, group and type so the
// rendering does not depend on the order the engine visits measurements in.
func renderResult(plan *catalog.Plan, res Result) string {
	lines := slices.Clone(res.Lines)
	idx := func(key string) int {
		if c := plan.Charge(key); c != nil {
			return c.Index
		}
		return -1
	}
	slices.SortStableFunc(lines, func(a, b Line) int {
		if x, y := idx(a.Charge), idx(b.Charge); x != y {
			return x - y
		}
		if a.Group != b.Group {
			return strings.Compare(a.Group, b.Group)
		}
		return strings.Compare(string(a.Type), string(b.Type))
	})
	var sb strings.Builder
	for _, l := range lines {
		group := l.Group
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(&sb, "  %-16s %-20s %-8s qty=%-12s amount=%-12s cost=%s\n", l.Charge, group, l.Type, l.Quantity.String(), l.Amount.String(), l.Cost.String())
	}
	fmt.Fprintf(&sb, "  amount=%s cost=%s", res.Amount().String(), res.Cost.String())
	if len(res.Unmetered) > 0 {
		fmt.Fprintf(&sb, " unmetered=%v", res.Unmetered)
	}
	if res.Unpriced {
		sb.WriteString(" unpriced")
	}
	sb.WriteByte('\n')
	return sb.String()
}
