package usagegen

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/usage"
)

var update = flag.Bool("update", false, "rewrite examples/usage.jsonl and examples/usage.csv")

var examplesDir = filepath.Join("..", "..", "examples")

// TestExampleFiles checks that the committed samples are exactly what Example and ExampleCSV
// write; run with -update to regenerate them.
func TestExampleFiles(t *testing.T) {
	for _, f := range []struct {
		name  string
		write func(w *bytes.Buffer) error
	}{
		{"usage.jsonl", func(w *bytes.Buffer) error { return Example(w) }},
		{"usage.csv", func(w *bytes.Buffer) error { return ExampleCSV(w) }},
	} {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(examplesDir, f.name)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b.Bytes()) {
			t.Errorf("%s differs from what %s writes; regenerate with go test ./internal/usagegen -run TestExampleFiles -update", path, f.name)
		}
	}
}

func loadExampleCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func loadExampleUsage(t testing.TB) []usage.Event {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, "usage.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, data)
}

// TestSampleUsageShape checks that the sample shows what it is meant to show.
func TestSampleUsageShape(t *testing.T) {
	evs := loadExampleUsage(t)
	if n := len(evs); n < 200 || n > 1000 {
		t.Fatalf("%d events; the sample should hold a few hundred", n)
	}
	customers := map[string]map[time.Month]bool{}
	models := map[string]bool{}
	metrics := map[string]bool{}
	var batch, runs int
	for _, ev := range evs {
		if customers[ev.CustomerID] == nil {
			customers[ev.CustomerID] = map[time.Month]bool{}
		}
		customers[ev.CustomerID][ev.Timestamp.Month()] = true
		m, _ := ev.Get("model")
		models[m] = true
		if rt, _ := ev.Get("requestType"); rt == "batch" {
			batch++
		}
		if ev.EventType == EventTypeAgentRun {
			if _, ok := ev.Get("taskId"); !ok {
				t.Fatalf("run %s has no taskId", ev.ID)
			}
			runs++
		}
		for _, ms := range ev.Measurements {
			metrics[ms.MetricKey] = true
		}
		if ev.ID == "" || ev.CorrelationID == "" {
			t.Fatalf("event without id or correlationId: %+v", ev)
		}
	}
	twoMonths := 0
	for _, months := range customers {
		if len(months) == 2 {
			twoMonths++
		}
	}
	if len(customers) < 3 || len(models) < 6 || batch == 0 || runs == 0 || twoMonths == 0 || len(metrics) != len(metricKeys) {
		t.Fatalf("customers %d, models %d, batch %d, runs %d, customers over two months %d, metrics %v",
			len(customers), len(models), batch, runs, twoMonths, metrics)
	}
}

// ratedPeriod is one (customer, period) of rating a usage stream on a plan.
type ratedPeriod struct {
	customer string
	period   period.Period
	state    *rating.State
	events   []*usage.Event
	results  []rating.Result
}

// rateStream rates events on a plan, one State per customer and calendar period.
func rateStream(t testing.TB, cat *catalog.Catalog, planKey string, evs []usage.Event) (*rating.Rater, []*ratedPeriod) {
	t.Helper()
	plan := cat.Plan(planKey)
	if plan == nil {
		t.Fatalf("no plan %q", planKey)
	}
	r := rating.NewRater(cat, plan)
	sched := period.Schedule{Unit: plan.Period, Anchor: period.CalendarAnchor}
	byKey := map[string]*ratedPeriod{}
	var out []*ratedPeriod
	for i := range evs {
		ev := &evs[i]
		p := sched.At(ev.Timestamp)
		k := ev.CustomerID + "|" + p.Start.String()
		rp := byKey[k]
		if rp == nil {
			rp = &ratedPeriod{customer: ev.CustomerID, period: p, state: r.NewState()}
			byKey[k] = rp
			out = append(out, rp)
		}
		res, err := r.Rate(rp.state, ev)
		if err != nil {
			t.Fatalf("plan %s, event %s: %v", planKey, ev.ID, err)
		}
		rp.events = append(rp.events, ev)
		rp.results = append(rp.results, res)
	}
	return r, out
}

// TestExampleUsageRatesOnEveryPlan rates the whole sample on each plan and checks what a user of
// the examples relies on: no errors, every call priced, the per-event amounts and costs adding
// up exactly to each period's price, and the simulator's fast path (Accumulate) agreeing.
func TestExampleUsageRatesOnEveryPlan(t *testing.T) {
	cat := loadExampleCatalog(t)
	evs := loadExampleUsage(t)
	for _, plan := range cat.Plans {
		t.Run(plan.Key, func(t *testing.T) {
			r, periods := rateStream(t, cat, plan.Key, evs)
			months := map[string]int{}
			for _, rp := range periods {
				months[rp.customer]++
				rated, cost := money.Zero, money.Zero
				for i, res := range rp.results {
					if len(res.Unmetered) > 0 {
						t.Fatalf("unmetered measurements %v", res.Unmetered)
					}
					// Every call reaches a charge; a run completion only on agent (tasks).
					wantPriced := plan.Key == "agent" || rp.events[i].EventType == EventTypeCompletion
					if res.Unpriced == wantPriced {
						t.Fatalf("%s: event %s unpriced = %v", rp.customer, rp.events[i].ID, res.Unpriced)
					}
					rated = rated.Add(res.Amount())
					cost = cost.Add(res.Cost)
				}
				priced := r.Price(rp.state)
				attributed := money.Zero
				for _, l := range priced.Lines {
					if l.Type == rating.LineUsage || l.Type == rating.LineMaximum {
						attributed = attributed.Add(l.Amount)
					}
				}
				if !rated.Equal(attributed) {
					t.Errorf("%s %s: events add up to %s, usage lines to %s", rp.customer, rp.period.Start.Format("2006-01"), rated, attributed)
				}
				if !cost.Equal(priced.Cost) || !priced.Cost.IsPositive() {
					t.Errorf("%s: event costs add up to %s, the period's cost is %s", rp.customer, cost, priced.Cost)
				}
				acc := r.NewState()
				for _, ev := range rp.events {
					if _, err := r.Accumulate(acc, ev); err != nil {
						t.Fatal(err)
					}
				}
				if fast := r.Price(acc); !fast.Total.Equal(priced.Total) || !fast.Cost.Equal(priced.Cost) || len(fast.Lines) != len(priced.Lines) {
					t.Errorf("%s: Accumulate prices %s (cost %s), Rate %s (cost %s)", rp.customer, fast.Total, fast.Cost, priced.Total, priced.Cost)
				}
				if priced.Total.IsNegative() {
					t.Errorf("%s: negative total %s", rp.customer, priced.Total)
				}
				if plan.MinimumCommitment != nil && priced.Total.LessThan(*plan.MinimumCommitment) {
					t.Errorf("%s: total %s below the commitment", rp.customer, priced.Total)
				}
			}
			for c, n := range months {
				if n != 2 {
					t.Errorf("customer %s has %d periods, want 2 (October and November)", c, n)
				}
			}
		})
	}
}

// decodeEvent decodes one JSON event for a test.
func decodeEvent(t testing.TB, js string) *usage.Event {
	t.Helper()
	var d usage.Decoder
	var ev usage.Event
	if err := d.DecodeBytes([]byte(js), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), &ev); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return &ev
}

// callEvent builds an llm.completion event for a model from measurement pairs.
func callEvent(t testing.TB, model, requestType string, kv ...any) *usage.Event {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"id":"evt_test","eventType":"llm.completion","customerId":"c1","timestamp":"2026-10-15T12:00:00Z","properties":{"model":"` + model + `"`)
	if requestType != "" {
		b.WriteString(`,"requestType":"` + requestType + `"`)
	}
	b.WriteString(`},"measurements":[`)
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"metricKey":"` + kv[i].(string) + `","value":` + kv[i+1].(string) + `}`)
	}
	b.WriteString(`]}`)
	return decodeEvent(t, b.String())
}

func priceOne(t testing.TB, cat *catalog.Catalog, plan string, ev *usage.Event) (rating.Result, rating.Priced) {
	t.Helper()
	r := rating.NewRater(cat, cat.Plan(plan))
	st := r.NewState()
	res, err := r.Rate(st, ev)
	if err != nil {
		t.Fatal(err)
	}
	return res, r.Price(st)
}

// TestProviderFixtureCosts prices the provider fixtures of llm-usage-accounting.md, mapped to
// Levy's event shape, and checks the cost book reproduces the expected provider cost exactly, the
// payg price is that cost × 1.20, and agent credits equal the cost in thousandths of a dollar.
func TestProviderFixtureCosts(t *testing.T) {
	cat := loadExampleCatalog(t)
	for _, tc := range []struct {
		fixture string
		ev      *usage.Event
		cost    string
		credits string // "" when the model is not a Claude model (credits only calibrated on Claude)
	}{
		{"anthropic-message.json", callEvent(t, "claude-sonnet-4-5", "",
			"input_tokens", "42", "cache_write_5m_tokens", "1024", "cache_write_1h_tokens", "512",
			"cache_read_tokens", "4096", "output_tokens", "211"), "0.0114318", "11.4318"},
		{"anthropic-message-stream.sse", callEvent(t, "claude-haiku-4-5", "standard",
			"input_tokens", "25", "cache_read_tokens", "4608", "output_tokens", "12"), "0.0005458", "0.5458"},
		{"anthropic-message-stream-legacy-delta.sse", callEvent(t, "claude-sonnet-4-5", "standard",
			"input_tokens", "472", "cache_write_5m_tokens", "2048", "output_tokens", "5"), "0.009171", "9.171"},
		{"openai-chat-completion.json", callEvent(t, "gpt-5-mini", "standard",
			"input_tokens", "86", "cache_read_tokens", "1920", "output_tokens", "300", "reasoning_tokens", "192"), "0.0006695", ""},
		{"openai-chat-completion-stream.sse", callEvent(t, "gpt-4o-mini", "standard",
			"input_tokens", "19", "output_tokens", "10"), "0.00000885", ""},
		{"openai-responses.json", callEvent(t, "gpt-5.4", "standard",
			"input_tokens", "238", "cache_read_tokens", "3072", "output_tokens", "412"), "0.007543", ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			want := money.MustParse(tc.cost)
			res, priced := priceOne(t, cat, "payg", tc.ev)
			if !priced.Cost.Equal(want) || !res.Cost.Equal(want) {
				t.Fatalf("cost: Price %s, Rate %s, want exactly %s", priced.Cost, res.Cost, want)
			}
			if markup := want.Mul(money.MustParse("1.2")); !priced.Total.Equal(markup) || !res.Amount().Equal(markup) {
				t.Fatalf("payg price: Price %s, Rate %s, want %s (cost × 1.20)", priced.Total, res.Amount(), markup)
			}
			if _, batch := priceOne(t, cat, "payg", withRequestType(t, tc.ev, "batch")); !batch.Cost.Equal(want.Div(money.MustParse("2"))) {
				t.Fatalf("batch cost %s, want half of %s", batch.Cost, want)
			}
			if tc.credits == "" {
				return
			}
			_, agent := priceOne(t, cat, "agent", tc.ev)
			for _, l := range agent.Lines {
				if l.Charge != "credits" {
					continue
				}
				if !l.Quantity.Equal(money.MustParse(tc.credits)) {
					t.Fatalf("credits %s, want %s", l.Quantity, tc.credits)
				}
				if !l.Amount.Equal(want.Mul(money.MustParse("1.2"))) {
					t.Fatalf("credits amount %s, want cost × 1.20", l.Amount)
				}
			}
		})
	}
}

// withRequestType returns a copy of ev with properties.requestType set.
func withRequestType(t testing.TB, ev *usage.Event, rt string) *usage.Event {
	t.Helper()
	c := *ev
	c.Properties = nil
	for _, p := range ev.Properties {
		if p.Key != "requestType" {
			c.Properties = append(c.Properties, p)
		}
	}
	c.Properties = append(c.Properties, usage.Property{Key: "requestType", Value: rt})
	return &c
}

// props is a catalog.Props for filter matching in tests.
type props map[string]string

func (p props) Get(name string) (string, bool) { v, ok := p[name]; return v, ok }

// costRate returns the cost book's per-unit cost of a meter for a model and request type.
func costRate(cat *catalog.Catalog, meter, model, requestType string) (money.Decimal, bool) {
	for _, c := range cat.CostsFor(meter) {
		if c.Filter.Match(props{"model": model, "requestType": requestType}) {
			return c.UnitRate, true
		}
	}
	return money.Zero, false
}

// TestExampleCatalogFollowsTheMarkupRule checks every per-token price of the example catalog
// against the cost book: list × 1.20, and pro's flagship tiers × 1.20, × 1.15, × 1.10. The cost
// book itself is checked against the CSV by the fixture test above and by review.
func TestExampleCatalogFollowsTheMarkupRule(t *testing.T) {
	cat := loadExampleCatalog(t)
	markups := []money.Decimal{money.MustParse("1.20"), money.MustParse("1.15"), money.MustParse("1.10")}
	checked := 0
	for _, plan := range cat.Plans {
		for _, ch := range plan.Charges {
			if ch.PriceBy == "" {
				continue
			}
			rt := "standard"
			if ch.Filter.Match(props{"requestType": "batch", "model": "gpt-5"}) {
				rt = "batch"
			}
			models := make([]string, 0, len(ch.Prices))
			for m := range ch.Prices {
				models = append(models, m)
			}
			sort.Strings(models)
			for _, model := range models {
				if !ch.Filter.Match(props{"requestType": rt, "model": model}) {
					t.Errorf("%s.%s: table entry %s can never match the charge's filter", plan.Key, ch.Key, model)
				}
				cost, ok := costRate(cat, ch.Meter.Key, model, rt)
				if !ok {
					t.Errorf("%s.%s: no cost for %s %s", plan.Key, ch.Key, model, rt)
					continue
				}
				p := ch.Prices[model]
				var rates []money.Decimal
				switch ch.Model {
				case catalog.PerUnit, catalog.IncludedQuota:
					rates = []money.Decimal{p.UnitRate}
				case catalog.Graduated:
					for _, tier := range p.Tiers {
						rates = append(rates, tier.UnitRate)
					}
				default:
					t.Fatalf("%s.%s: unexpected model %s", plan.Key, ch.Key, ch.Model)
				}
				for i, rate := range rates {
					if want := cost.Mul(markups[i]); !rate.Equal(want) {
						t.Errorf("%s.%s %s tier %d: %s per token, want %s (cost %s × %s)", plan.Key, ch.Key, model, i, rate, want, cost, markups[i])
					}
					checked++
				}
			}
		}
	}
	// Every Anthropic and OpenAI model with a price in the cost book is sold on payg and pro.
	for _, plan := range []string{"payg", "pro"} {
		for _, meter := range []string{"input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"} {
			for _, rt := range []string{"standard", "batch"} {
				for _, c := range cat.CostsFor(meter) {
					for _, cond := range c.Filter {
						if cond.Property != "model" {
							continue
						}
						for _, model := range cond.Values {
							if strings.HasPrefix(model, "gemini-") || !c.Filter.Match(props{"model": model, "requestType": rt}) {
								continue
							}
							ev := callEvent(t, model, rt, meter, "1000000")
							if res, _ := priceOne(t, cat, plan, ev); res.Unpriced || len(res.Lines) == 0 {
								t.Errorf("%s: %s of %s (%s) is not priced", plan, meter, model, rt)
							}
						}
					}
				}
			}
		}
	}
	if checked < 300 {
		t.Fatalf("only %d prices checked", checked)
	}
}

// TestCreditsTrackClaudeCost checks the credits expression against the cost book: for every Claude
// model, one credit is exactly $0.001 of standard list cost, for every token dimension.
func TestCreditsTrackClaudeCost(t *testing.T) {
	cat := loadExampleCatalog(t)
	milli := money.MustParse("0.001")
	for _, c := range cat.CostsFor("input_tokens") {
		for _, cond := range c.Filter {
			if cond.Property != "model" || cond.Negate {
				continue
			}
			for _, model := range cond.Values {
				if !strings.HasPrefix(model, "claude-") || !c.Filter.Match(props{"model": model}) {
					continue
				}
				ev := callEvent(t, model, "", "input_tokens", "1001", "output_tokens", "333",
					"cache_write_5m_tokens", "777", "cache_write_1h_tokens", "555", "cache_read_tokens", "9999", "tool_calls", "3")
				res, priced := priceOne(t, cat, "agent", ev)
				var credits money.Decimal
				for _, l := range res.Lines {
					if l.Charge == "credits" {
						credits = l.Quantity
					}
				}
				if !credits.Mul(milli).Equal(priced.Cost) {
					t.Errorf("%s: %s credits, cost %s", model, credits, priced.Cost)
				}
			}
		}
	}
}
