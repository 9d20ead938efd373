package authorize

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/usage"
)

// trickyCatalog has every pricing model and routing rule the estimate must bound: graduated
// fees reachable together, a volume price whose later tier is dearer (crossing reprices the
// earlier units), packages, included quotas, max and latest meters, count and uniqueCount
// meters, meters of another event type, derived meters (one reading the model), price tables,
// filters on absent properties, chained percentages of charges, a maximum and a percentage of
// a property.
const trickyCatalog = `
currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: peak_out, metricKey: output_tokens, aggregation: max}
  - {key: last_in, metricKey: input_tokens, aggregation: latest}
  - {key: in_calls, metricKey: input_tokens, aggregation: count}
  - {key: calls, aggregation: count}
  - {key: llm_calls, eventType: llm.completion, aggregation: count}
  - {key: runs, eventType: agent.run.completed, aggregation: count}
  - {key: models, aggregation: uniqueCount, property: model}
  - {key: credits, expression: '(input_tokens + output_tokens * 5) * (properties.model startsWith "big" ? 3 : 1) / 1000'}
  - {key: sevenths, expression: 'ceil(output_tokens / 7) - input_tokens / 3'}
plans:
  - key: tricky
    charges: &tricky
      - key: grad_in
        meter: input_tokens
        model: graduated
        tiers: [{upTo: 1000, unitPrice: "0.001", flatFee: "1.00"}, {upTo: 1500, unitPrice: "0.002", flatFee: "2.50"},
                {upTo: 1600, unitPrice: "0.0005", flatFee: "4"}, {unitPrice: "0.0001", flatFee: "0.5"}]
      - key: vol_out
        meter: output_tokens
        model: volume
        per: 1000
        tiers: [{upTo: 500, unitPrice: "1.00", flatFee: "0.10"}, {upTo: 2000, unitPrice: "3.00"}, {unitPrice: "2.00", flatFee: "1"}]
      - {key: pkg_out, meter: output_tokens, model: package, packageSize: 100, packagePrice: "0.07", freeUnits: 50}
      - {key: incl_in, meter: input_tokens, filter: {model: [small, big]}, model: includedQuota, included: 3000, unitPrice: "0.40", per: 1000000}
      - {key: peak, meter: peak_out, model: perUnit, unitPrice: "0.00001"}
      - {key: last, meter: last_in, model: graduated, tiers: [{upTo: 100, unitPrice: "0.0002"}, {unitPrice: "0.0001", flatFee: "0.3"}]}
      - {key: in_call, meter: in_calls, model: perUnit, unitPrice: "0.0003"}
      - {key: per_call, meter: calls, model: perUnit, unitPrice: "0.0015"}
      - {key: llm_call, meter: llm_calls, model: package, packageSize: 3, packagePrice: "0.01"}
      - {key: run, meter: runs, model: perUnit, unitPrice: "0.50"}
      - {key: model_count, meter: models, model: perUnit, unitPrice: "0.02"}
      - key: by_model
        meter: output_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices: {small: {unitPrice: "1.50"}, big: {unitPrice: "30"}}
      - {key: batch_only, meter: input_tokens, filter: {requestType: batch}, model: perUnit, unitPrice: "99"}
      - {key: fee, model: percentage, rate: "1", fixedFee: "0.30", of: {property: amount}}
      - {key: capped, meter: input_tokens, model: perUnit, unitPrice: "0.001", maximum: "0.5", minimum: "0.1"}
      - {key: pct, model: percentage, rate: "5", of: {charges: [grad_in, vol_out, pkg_out, capped]}}
      - {key: pct2, model: percentage, rate: "2.5", of: {charges: [pct, by_model]}}
      - {key: platform, model: flat, amount: "99.00"}
      - {key: vol_steep, meter: input_tokens, model: volume, per: 1000000, tiers: [{upTo: 500000, unitPrice: "1"}, {unitPrice: "3"}]}
  - key: linear
    charges:
      - {key: in, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000}
      - key: out
        meter: output_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices: {small: {unitPrice: "1.50"}, big: {unitPrice: "30"}}
      - {key: per_call, meter: calls, model: perUnit, unitPrice: "0.0015"}
      - {key: pct, model: percentage, rate: "5", of: {charges: [in, out]}}
      - {key: pct2, model: percentage, rate: "2.5", of: {charges: [pct, in, per_call]}}
  - key: derived
    charges:
      - {key: credit_charge, meter: credits, model: graduated, per: 1000, tiers: [{upTo: 50, unitPrice: "1.2"}, {unitPrice: "1.1", flatFee: "0.2"}]}
      - {key: sevenths_charge, meter: sevenths, model: volume, tiers: [{upTo: 10, unitPrice: "0.01"}, {unitPrice: "0.03", flatFee: "0.01"}]}
      - {key: out, meter: output_tokens, model: perUnit, unitPrice: "0.000002"}
      - {key: pct, model: percentage, rate: "10", of: {charges: [credit_charge]}}
`

// rater rates one model's events in one period state, as billing does.
type rater struct {
	r  *rating.Rater
	st *rating.State
	n  int
}

func (x *rater) rate(t *testing.T, model string, in, out int64) money.Decimal {
	t.Helper()
	res := x.rateLines(t, model, in, out)
	return res.Amount()
}

func (x *rater) rateLines(t *testing.T, model string, in, out int64) rating.Result {
	t.Helper()
	x.n++
	ev := &usage.Event{
		ID: fmt.Sprintf("evt_%d", x.n), EventType: DefaultEventType, CustomerID: "c",
		Timestamp:    t0.Add(time.Duration(x.n) * time.Second),
		Properties:   []usage.Property{{Key: "model", Value: model}},
		Measurements: []usage.Measurement{{MetricKey: MetricInputTokens, Value: money.QtyInt(in)}, {MetricKey: MetricOutputTokens, Value: money.QtyInt(out)}},
	}
	res, err := x.r.Rate(x.st, ev)
	if err != nil {
		t.Fatalf("rate: %v", err)
	}
	return res
}

// chargeBounds is each usage charge's bound (before weights) for the quantities.
func chargeBounds(t *testing.T, e *estimator, in, out int64) map[string]money.Decimal {
	t.Helper()
	qIn, qOut := money.QtyInt(in).Decimal(), money.QtyInt(out).Decimal()
	derived, err := e.derivedValues(qIn, qOut)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]money.Decimal{}
	e.each(qIn, qOut, derived, func(c *component, b money.Decimal) { m[c.charge.Key] = m[c.charge.Key].Add(b) })
	return m
}

// quantity draws token counts that visit every tier boundary of the catalogs: small, around
// the tricky tiers, and large enough to cross the example plans' 10M/60M bounds.
func quantity(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return r.Int64N(20)
	case 2:
		return r.Int64N(2500)
	case 3:
		return 400 + r.Int64N(1300)
	case 4:
		return r.Int64N(200_000)
	default:
		return r.Int64N(30_000_000)
	}
}

// planModels lists the models a plan's price tables name, plus ones they do not.
func planModels(plan *catalog.Plan) []string {
	set := map[string]bool{"unknown-model": true, "small": true, "big": true, "bigger": true}
	for _, c := range plan.Charges {
		for k := range c.Prices {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkBound rates random events of every model on every plan of the catalog and checks that
// the estimate is at least each event's rated amount, from the state the events before it left
// (short runs from an empty period, so tier crossings near the start are frequent), and that
// the integer path agrees with the exact one.
func checkBound(t *testing.T, cat *catalog.Catalog, events int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for _, plan := range cat.Plans {
		for _, model := range planModels(plan) {
			e := newEstimator(cat, plan, model, DefaultEventType)
			x := &rater{r: rating.NewRater(cat, plan)}
			for i := 0; i < events; i++ {
				if i%6 == 0 || r.IntN(3) == 0 {
					x.st = x.r.NewState()
				}
				in, out := quantity(r), quantity(r)
				got, err := e.nanos(in, out)
				if err != nil {
					t.Fatalf("%s/%s: estimate: %v", plan.Key, model, err)
				}
				exact, err := e.exact(in, out)
				if err != nil {
					t.Fatal(err)
				}
				if want := ceilNanos(exact); got != want {
					t.Fatalf("%s/%s in=%d out=%d: integer estimate %d ≠ exact %s rounded up (%d)", plan.Key, model, in, out, got, exact, want)
				}
				res := x.rateLines(t, model, in, out)
				if rated := res.Amount(); money.FromNanos(got).LessThan(rated) {
					t.Fatalf("%s/%s event %d in=%d out=%d: estimate %s below the rated amount %s", plan.Key, model, i, in, out,
						money.FromNanos(got), rated)
				}
				// Charge by charge too, so no slack elsewhere hides a bound that is too low.
				bounds := chargeBounds(t, e, in, out)
				for _, l := range res.Lines {
					if c := plan.Charge(l.Charge); l.Type != rating.LineUsage || c == nil || c.Meter == nil {
						continue
					}
					if b := bounds[l.Charge]; b.LessThan(l.Amount) {
						t.Fatalf("%s/%s event %d in=%d out=%d: charge %s rated %s above its bound %s", plan.Key, model, i, in, out,
							l.Charge, l.Amount, b)
					}
				}
			}
		}
	}
}

// TestEstimateIsTightForLinearPrices: where every charge is linear, the bound is the rated
// amount itself (rounded up to a nano), percentages of percentages included.
func TestEstimateIsTightForLinearPrices(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t, trickyCatalog)
	plan := cat.Plan("linear")
	r := rand.New(rand.NewPCG(3, 3))
	for _, model := range []string{"small", "big", "other"} {
		e := newEstimator(cat, plan, model, DefaultEventType)
		x := &rater{r: rating.NewRater(cat, plan)}
		x.st = x.r.NewState()
		for range 200 {
			in, out := quantity(r), quantity(r)
			got, _ := e.nanos(in, out)
			rated := x.rate(t, model, in, out)
			if want := ceilNanos(rated); got != want {
				t.Fatalf("%s in=%d out=%d: estimate %d nanos, want the rated %s rounded up (%d)", model, in, out, got, rated, want)
			}
		}
	}
}

func TestEstimateBoundsEveryExamplePlan(t *testing.T) {
	t.Parallel()
	checkBound(t, exampleCatalog(t), 60, 1)
}

func TestEstimateBoundsEveryPricingModel(t *testing.T) {
	t.Parallel()
	checkBound(t, loadCatalog(t, trickyCatalog), 400, 2)
}

func TestEstimateValues(t *testing.T) {
	t.Parallel()
	ex := exampleCatalog(t)
	tr := loadCatalog(t, trickyCatalog)
	for _, tc := range []struct {
		name    string
		cat     *catalog.Catalog
		plan    string
		model   string
		in, out int64
		want    string // exact bound, before rounding up to nanos
	}{
		// 1500 × 3.60/1M + 1024 × 18.00/1M.
		{"payg per token", ex, "payg", "claude-sonnet-4-6", 1500, 1024, "0.023832"},
		// The same at the highest tier prices (3.60, 18.00), with the 5% priority premium on both.
		{"pro graduated at its highest tier, plus 5%", ex, "pro", "claude-sonnet-4-6", 1500, 1024, "0.0250236"},
		// includedQuota ignores the allowance: 1000 × 1.20/1M; output 10 × 6.00/1M; ×1.05.
		{"pro included quota", ex, "pro", "claude-haiku-4-5", 1000, 10, "0.001323"},
		{"a model no table prices", ex, "payg", "no-such-model", 1500, 1024, "0"},
		// agent: credits = (1000 + 200×5) × 3 / 1000 = 6, at the highest credit price 1.20 per
		// 1000 credits; the platform fee and the per-run price are not the call's.
		{"derived credits", ex, "agent", "claude-sonnet-4-6", 1000, 200, "0.0072"},
		{"derived credits, opus-4-1 weight", ex, "agent", "claude-opus-4-1", 1000, 200, "0.036"},
		// tricky at 0 tokens. Weights: pct2 takes 2.5% of pct, so pct weighs 1.025 and the
		// charges pct names 1 + 5% × 1.025 = 1.05125. grad_in: its largest single fee, 4 (the
		// bound counts a later tier's fee even at q = 0) × 1.05125 = 4.205; vol_out: highest fee
		// 1 + repricing the 500 units of tier 1 at 3 − 1 per 1000 = 1, so 2 × 1.05125 = 2.1025;
		// last: fee 0.3; in_call 0.0003 (count of input_tokens); per_call 0.0015; llm_call
		// ⌈1/3⌉ × 0.01; model_count 0.02; pkg_out, peak, capped 0; by_model and incl_in price
		// no such model; run is another event type; platform and fee are not the call's;
		// vol_steep: repricing the 500,000 units of its first tier at 3 − 1 per million = 1.
		{"tricky at zero tokens", tr, "tricky", "other", 0, 0, "7.6393"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstimator(tc.cat, tc.cat.Plan(tc.plan), tc.model, DefaultEventType)
			got, err := e.exact(tc.in, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(money.MustParse(tc.want)) {
				t.Errorf("exact bound = %s, want %s", got, tc.want)
			}
			n, err := e.nanos(tc.in, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if n != ceilNanos(got) {
				t.Errorf("nanos = %d, want %d", n, ceilNanos(got))
			}
		})
	}
}

func TestEstimateIntegerPath(t *testing.T) {
	t.Parallel()
	ex := exampleCatalog(t)
	for _, plan := range []string{"payg", "pro"} {
		if e := newEstimator(ex, ex.Plan(plan), "claude-sonnet-4-6", DefaultEventType); e.fast == nil {
			t.Errorf("%s: the estimate takes the decimal path; the integer path should represent it", plan)
		}
	}
	if e := newEstimator(ex, ex.Plan("agent"), "claude-sonnet-4-6", DefaultEventType); e.fast != nil {
		t.Error("agent: a priced derived meter must take the exact decimal path")
	}
	tr := loadCatalog(t, trickyCatalog)
	if e := newEstimator(tr, tr.Plan("tricky"), "big", DefaultEventType); e.fast == nil {
		t.Error("tricky: every component has an integer form")
	}
}

func TestCeilNanos(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"-1", 0},
		{"0.0000000001", 1}, // a tenth of a nano rounds up, never to 0
		{"0.0000000014", 2}, // money.Round takes it to 1; one nano is added
		{"0.0000000016", 2}, // money.Round takes it to 2 already
		{"0.000000002", 2},  // exact
		{"1.0000000000001", 1_000_000_001},
		{"9007199.254740991", limit.MaxValue},
		{"9007199.254740992", limit.MaxValue},
		{"1e20", limit.MaxValue},
	} {
		if got := ceilNanos(money.MustParse(tc.in)); got != tc.want {
			t.Errorf("ceilNanos(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestEstimateSaturates(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t, `
currency: USD
meters: [{key: input_tokens}, {key: output_tokens}]
plans:
  - key: dear
    charges:
      - {key: in, meter: input_tokens, model: perUnit, unitPrice: "1000000"}
      - {key: out, meter: output_tokens, model: package, packageSize: 1, packagePrice: "1000000"}
  - key: fine
    charges:
      - {key: in, meter: input_tokens, model: perUnit, unitPrice: "0.000000000001"}
`)
	e := newEstimator(cat, cat.Plan("dear"), "m", DefaultEventType)
	for _, q := range [][2]int64{{maxTokens, maxTokens}, {maxTokens, 0}, {0, maxTokens}, {10, 0}} {
		if got, _ := e.nanos(q[0], q[1]); got != limit.MaxValue {
			t.Errorf("dear %v = %d, want the cap %d", q, got, limit.MaxValue)
		}
	}
	f := newEstimator(cat, cat.Plan("fine"), "m", DefaultEventType)
	if f.fast == nil {
		t.Fatal("a price of 1e-12 has an integer form at scale 12")
	}
	for _, tc := range [][2]int64{{0, 0}, {1, 1}, {999, 1}, {1000, 1}, {1001, 2}, {maxTokens, 0}} {
		if got, _ := f.nanos(tc[0], 0); got != tc[1] && tc[0] != maxTokens {
			t.Errorf("fine in=%d = %d nanos, want %d", tc[0], got, tc[1])
		}
		exact, _ := f.exact(tc[0], 0)
		if got, _ := f.nanos(tc[0], 0); got != ceilNanos(exact) {
			t.Errorf("fine in=%d: %d ≠ exact %s rounded up", tc[0], got, exact)
		}
	}
}

// FuzzEstimate: for any token counts the integer path equals the exact bound rounded up, and
// without derived meters the bound never falls when tokens grow.
func FuzzEstimate(f *testing.F) {
	for _, s := range [][2]int64{{0, 0}, {1500, 1024}, {999, 1}, {1000, 1}, {1600, 501}, {maxTokens, maxTokens}, {-1, 5}} {
		f.Add(s[0], s[1])
	}
	cat := loadCatalog(f, trickyCatalog)
	ex := exampleCatalog(f)
	var es []*estimator
	for _, c := range []*catalog.Catalog{cat, ex} {
		for _, p := range c.Plans {
			for _, m := range []string{"small", "big", "claude-sonnet-4-6", "gpt-5.5"} {
				es = append(es, newEstimator(c, p, m, DefaultEventType))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in, out int64) {
		in, out = min(max(in, 0), maxTokens), min(max(out, 0), maxTokens)
		for _, e := range es {
			got, err := e.nanos(in, out)
			if err != nil {
				t.Fatal(err)
			}
			exact, err := e.exact(in, out)
			if err != nil {
				t.Fatal(err)
			}
			if got != ceilNanos(exact) || got < 0 || got > limit.MaxValue {
				t.Fatalf("%s in=%d out=%d: %d, exact %s", e.model, in, out, got, exact)
			}
			if e.fast == nil {
				continue
			}
			if in < maxTokens {
				if more, _ := e.nanos(in+1, out); more < got {
					t.Fatalf("%s: one more input token lowers the estimate: %d < %d", e.model, more, got)
				}
			}
			if out < maxTokens {
				if more, _ := e.nanos(in, out+1); more < got {
					t.Fatalf("%s: one more output token lowers the estimate: %d < %d", e.model, more, got)
				}
			}
		}
	})
}
