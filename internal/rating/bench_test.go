package rating

import (
	"testing"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// benchDoc is a realistic LLM plan: every token dimension priced by a table keyed on the model,
// a graduated input price, a platform fee, request counting and a percentage of the usage.
const benchDoc = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: cache_write_tokens}
  - {key: cache_read_tokens}
  - {key: reasoning_tokens}
  - {key: requests, aggregation: count}
costs:
  - {meter: input_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "3.00", per: 1000000}
  - {meter: output_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "15.00", per: 1000000}
plans:
  - key: p
    minimumCommitment: "100"
    charges:
      - {key: platform, model: flat, amount: "20"}
      - {key: input, meter: input_tokens, model: graduated, per: 1000000, priceBy: model, prices: {
          claude-sonnet-4-6: {tiers: [{upTo: 10000000, unitPrice: "3.60"}, {unitPrice: "3.00"}]},
          claude-opus-4: {tiers: [{upTo: 10000000, unitPrice: "18.00"}, {unitPrice: "15.00"}]},
          claude-haiku-4-5: {tiers: [{upTo: 10000000, unitPrice: "1.20"}, {unitPrice: "1.00"}]}}}
      - {key: output, meter: output_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {
          claude-sonnet-4-6: {unitPrice: "18.00"}, claude-opus-4: {unitPrice: "90.00"}, claude-haiku-4-5: {unitPrice: "6.00"}}}
      - {key: cache_write, meter: cache_write_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {
          claude-sonnet-4-6: {unitPrice: "4.50"}, claude-opus-4: {unitPrice: "22.50"}, claude-haiku-4-5: {unitPrice: "1.50"}}}
      - {key: cache_read, meter: cache_read_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {
          claude-sonnet-4-6: {unitPrice: "0.36"}, claude-opus-4: {unitPrice: "1.80"}, claude-haiku-4-5: {unitPrice: "0.12"}}}
      - {key: reasoning, meter: reasoning_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {
          claude-sonnet-4-6: {unitPrice: "18.00"}, claude-opus-4: {unitPrice: "90.00"}, claude-haiku-4-5: {unitPrice: "6.00"}}}
      - {key: requests, meter: requests, model: package, packageSize: 1000, packagePrice: "0.50", freeUnits: 10000}
      - {key: priority, model: percentage, rate: "2.5", of: {charges: [input, output]}}
`

func benchEvent() *usage.Event {
	return &usage.Event{
		EventType:     "llm.completion",
		CustomerID:    "cust_abc",
		CorrelationID: "req_abc123",
		Timestamp:     t0,
		Properties:    []usage.Property{{Key: "model", Value: "claude-sonnet-4-6"}, {Key: "requestType", Value: "standard"}},
		Measurements: []usage.Measurement{
			{MetricKey: "input_tokens", Value: money.QtyInt(1500)},
			{MetricKey: "output_tokens", Value: money.QtyInt(800)},
			{MetricKey: "cache_write_tokens", Value: money.QtyInt(200)},
			{MetricKey: "cache_read_tokens", Value: money.QtyInt(500)},
			{MetricKey: "reasoning_tokens", Value: money.QtyInt(300)},
		},
	}
}

func TestBenchPlanPrices(t *testing.T) {
	t.Parallel()
	r := newRater(t, benchDoc)
	st, res := rateAll(t, r, benchEvent())
	// 1500 × 3.60 + 800 × 18 + 200 × 4.50 + 500 × 0.36 + 300 × 18 per 1M = 0.0054 + 0.0144 +
	// 0.0009 + 0.00018 + 0.0054 = 0.02628; priority 2.5% × (0.0054 + 0.0144) = 0.000495.
	wantAmount(t, "event", res[0].Amount(), "0.026775")
	wantAmount(t, "event cost", res[0].Cost, "0.0165")
	wantAmount(t, "period", r.Price(st).Total, "100")
}

func BenchmarkRate(b *testing.B) {
	r := newRater(b, benchDoc)
	st := r.NewState()
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Rate(st, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccumulate(b *testing.B) {
	r := newRater(b, benchDoc)
	st := r.NewState()
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Accumulate(st, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrice(b *testing.B) {
	r := newRater(b, benchDoc)
	st := r.NewState()
	for _, m := range []string{"claude-sonnet-4-6", "claude-opus-4", "claude-haiku-4-5"} {
		ev := benchEvent()
		ev.Properties[0].Value = m
		if _, err := r.Rate(st, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Price(st)
	}
}
