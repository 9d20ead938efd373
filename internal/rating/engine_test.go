package rating

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

func TestChargeMinimumMaximum(t *testing.T) {
	t.Parallel()
	doc := planWith(`{key: c, meter: tokens, model: perUnit, unitPrice: "1", minimum: "10", maximum: "100"}`)
	tests := []struct {
		name    string
		events  []string // quantities, one event each
		usage   string   // the usage line ("" for none)
		minimum string   // the minimum line ("" for none)
		maximum string   // the maximum line ("" for none)
		total   string
	}{
		{"no events: minimum only", nil, "", "10", "", "10"},
		{"below the minimum", []string{"5"}, "5", "5", "", "10"},
		{"exactly the minimum", []string{"10"}, "10", "", "", "10"},
		{"between", []string{"30", "20"}, "50", "", "", "50"},
		{"exactly the maximum", []string{"100"}, "100", "", "", "100"},
		{"above the maximum", []string{"60", "60", "30"}, "150", "", "-50", "100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRater(t, doc)
			var evs []*usage.Event
			for _, v := range tc.events {
				evs = append(evs, event(meas("tokens", v)))
			}
			st, res := rateAll(t, r, evs...)
			p := r.Price(st)
			for _, w := range []struct {
				typ  LineType
				want string
			}{{LineUsage, tc.usage}, {LineMinimum, tc.minimum}, {LineMaximum, tc.maximum}} {
				got, ok := lineAmount(p, "c", "", w.typ)
				if w.want == "" {
					if ok {
						t.Errorf("unexpected %s line %s", w.typ, got)
					}
					continue
				}
				if !ok {
					t.Errorf("no %s line in %+v", w.typ, p.Lines)
					continue
				}
				wantAmount(t, string(w.typ)+" line", got, w.want)
			}
			wantAmount(t, "total", p.Total, tc.total)
			// Attribution: events carry usage and maximum offsets; the minimum is period-level.
			minLine, _ := lineAmount(p, "c", "", LineMinimum)
			wantAmount(t, "sum of event amounts", resultSum(res, ""), p.Total.Sub(minLine).String())
		})
	}
}

// TestMaximumOffsetLines checks the per-event maximum lines: once the cap is reached, each
// further event is offset by what it would have added.
func TestMaximumOffsetLines(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(`{key: c, meter: tokens, model: perUnit, unitPrice: "1", maximum: "100"}`))
	_, res := rateAll(t, r, event(meas("tokens", "60")), event(meas("tokens", "60")), event(meas("tokens", "30")))
	wantOffsets := []string{"", "-20", "-30"}
	for i, rs := range res {
		var off *Line
		for k := range rs.Lines {
			if rs.Lines[k].Type == LineMaximum {
				off = &rs.Lines[k]
			}
		}
		switch {
		case wantOffsets[i] == "" && off != nil:
			t.Errorf("event %d: unexpected maximum line %+v", i, *off)
		case wantOffsets[i] != "" && off == nil:
			t.Errorf("event %d: no maximum line in %+v", i, rs.Lines)
		case off != nil:
			wantAmount(t, fmt.Sprintf("event %d maximum offset", i), off.Amount, wantOffsets[i])
			if off.Charge != "c" {
				t.Errorf("maximum line charge = %q", off.Charge)
			}
		}
	}
	wantAmount(t, "events after the cap add", res[2].Amount(), "0")
}

func TestMinimumCommitment(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters: [{key: tokens}]
plans:
  - key: p
    minimumCommitment: "500.00"
    charges:
      - {key: platform, model: flat, amount: "200.00"}
      - {key: usage, meter: tokens, model: perUnit, unitPrice: "1"}
`
	tests := []struct {
		name, qty, commitment, total string
	}{
		{"no usage", "", "300", "500"},
		{"short of the commitment", "100", "200", "500"},
		{"exactly the commitment", "300", "", "500"},
		{"above", "400.5", "", "600.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRater(t, doc)
			var evs []*usage.Event
			if tc.qty != "" {
				evs = append(evs, event(meas("tokens", tc.qty)))
			}
			st, res := rateAll(t, r, evs...)
			p := r.Price(st)
			got, ok := lineAmount(p, "minimumCommitment", "", LineCommitment)
			if tc.commitment == "" {
				if ok {
					t.Errorf("unexpected commitment line %s", got)
				}
			} else {
				if !ok {
					t.Fatalf("no commitment line: %+v", p.Lines)
				}
				wantAmount(t, "commitment true-up", got, tc.commitment)
				if last := p.Lines[len(p.Lines)-1]; last.Type != LineCommitment {
					t.Errorf("the commitment line is not last: %+v", p.Lines)
				}
			}
			wantAmount(t, "total", p.Total, tc.total)
			sum := money.Zero
			for _, l := range p.Lines {
				sum = sum.Add(l.Amount)
			}
			wantAmount(t, "sum of lines", sum, p.Total.String())
			for _, rs := range res {
				for _, l := range rs.Lines {
					if l.Type == LineCommitment || l.Type == LineFlat {
						t.Errorf("an event carries a period-level line %+v", l)
					}
				}
			}
		})
	}
}

const priceTableDoc = `currency: USD
meters: [{key: input_tokens}, {key: output_tokens}]
plans:
  - key: p
    charges:
      - {key: in, meter: input_tokens, model: perUnit, per: 1000000, priceBy: model,
         prices: {claude-opus-4: {unitPrice: "15.00"}, claude-sonnet-4-6: {unitPrice: "3.00"}}}
      - {key: out, meter: output_tokens, model: graduated, per: 1000, priceBy: model,
         prices: {claude-opus-4: {tiers: [{upTo: 1000, unitPrice: "0.075"}, {unitPrice: "0.05"}]}},
         defaultPrice: {tiers: [{upTo: 1000, unitPrice: "0.015", flatFee: "0.10"}, {unitPrice: "0.01"}]}}
`

func TestPriceTable(t *testing.T) {
	t.Parallel()
	r := newRater(t, priceTableDoc)
	st, res := rateAll(t, r,
		event(prop("model", "claude-opus-4"), meas("input_tokens", "1000000"), meas("output_tokens", "2000")),
		event(prop("model", "claude-sonnet-4-6"), meas("input_tokens", "2000000"), meas("output_tokens", "500")),
		event(prop("model", "claude-haiku-4-5"), meas("input_tokens", "1000000")),
		event(meas("input_tokens", "1000000")),
	)
	p := r.Price(st)
	for _, w := range []struct{ charge, group, want string }{
		{"in", "claude-opus-4", "15"},
		{"in", "claude-sonnet-4-6", "6"},
		{"out", "claude-opus-4", "0.125"},      // 1000 × 0.075/1000 + 1000 × 0.05/1000
		{"out", "claude-sonnet-4-6", "0.1075"}, // default: 500 × 0.015/1000 + 0.10 first-tier fee
	} {
		got, ok := lineAmount(p, w.charge, w.group, LineUsage)
		if !ok {
			t.Errorf("no line for %s/%s in %+v", w.charge, w.group, p.Lines)
			continue
		}
		wantAmount(t, w.charge+"/"+w.group, got, w.want)
	}
	// A value missing from a table without default is not priced.
	for _, l := range p.Lines {
		if l.Charge == "in" && (l.Group == "claude-haiku-4-5" || l.Group == "") {
			t.Errorf("unpriced group has a line: %+v", l)
		}
	}
	if !res[2].Unpriced || !res[3].Unpriced || len(res[2].Lines) != 0 {
		t.Errorf("events of models missing from the table: %+v / %+v", res[2], res[3])
	}
	wantAmount(t, "total", p.Total, "21.2325")
	// Lines of a charge come in group order.
	var groups []string
	for _, l := range linesOf(p, "in") {
		groups = append(groups, l.Group)
	}
	if !slices.IsSorted(groups) {
		t.Errorf("groups out of order: %v", groups)
	}
	// Each event's lines carry its price-table group.
	for i, group := range []string{"claude-opus-4", "claude-sonnet-4-6"} {
		if len(res[i].Lines) != 2 {
			t.Errorf("event %d lines = %+v", i, res[i].Lines)
		}
		for _, l := range res[i].Lines {
			if l.Group != group {
				t.Errorf("event %d: line %+v, want group %q", i, l, group)
			}
		}
	}
}

// TestPriceTableGroupsAreSeparate: each price-table group is priced on its own quantity, so its
// tiers start from zero and its first-tier fee is charged to the first event of that group.
func TestPriceTableGroupsAreSeparate(t *testing.T) {
	t.Parallel()
	r := newRater(t, priceTableDoc)
	_, res := rateAll(t, r,
		event(prop("model", "a"), meas("output_tokens", "900")),
		event(prop("model", "b"), meas("output_tokens", "900")),
		event(prop("model", "a"), meas("output_tokens", "200")),
	)
	wantAmount(t, "first event of group a", res[0].Amount(), "0.1135")  // 900 × 0.000015 + 0.10
	wantAmount(t, "first event of group b", res[1].Amount(), "0.1135")  // its own fee and tiers
	wantAmount(t, "second event of group a", res[2].Amount(), "0.0025") // 100 × 0.000015 + 100 × 0.00001
}

func TestFilters(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(
		`{key: single, meter: tokens, model: perUnit, unitPrice: "1", filter: {model: claude-sonnet-4-6}}`,
		`{key: list, meter: tokens, model: perUnit, unitPrice: "10", filter: {model: [claude-haiku-4-5, claude-opus-4]}}`,
		`{key: others, meter: tokens, model: perUnit, unitPrice: "100", filter: {model: {notIn: [claude-sonnet-4-6, claude-haiku-4-5, claude-opus-4]}}}`,
		`{key: both, meter: tokens, model: perUnit, unitPrice: "1000", filter: {model: claude-opus-4, region: eu}}`,
	))
	tests := []struct {
		name  string
		props []evOpt
		want  string
	}{
		{"single value", []evOpt{prop("model", "claude-sonnet-4-6")}, "1"},
		{"list, first", []evOpt{prop("model", "claude-haiku-4-5")}, "10"},
		{"list, second", []evOpt{prop("model", "claude-opus-4")}, "10"},
		{"two conditions", []evOpt{prop("model", "claude-opus-4"), prop("region", "eu")}, "1010"},
		{"notIn", []evOpt{prop("model", "gpt-x")}, "100"},
		{"notIn with the property absent", nil, "100"},
		{"exact text only", []evOpt{prop("model", "Claude-Sonnet-4-6")}, "100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, res := rateAll(t, r, event(append(tc.props, meas("tokens", "1"))...))
			wantAmount(t, "event", res[0].Amount(), tc.want)
			wantAmount(t, "period", r.Price(st).Total, tc.want)
		})
	}
}

// TestFilterPropertyValuesWithNUL checks that filters compare property text exactly even when
// the text contains NUL bytes (valid in JSON as \u0000): events whose property values differ
// must not be routed alike.
func TestFilterPropertyValuesWithNUL(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(
		`{key: a, meter: tokens, model: perUnit, unitPrice: "1", filter: {x: v}}`,
		`{key: b, meter: tokens, model: perUnit, unitPrice: "10", filter: {y: "w\u0000"}}`,
	))
	st := r.NewState()
	// x = "v", y = "w\x00": both filters match.
	res1, err := r.Rate(st, event(prop("x", "v"), prop("y", "w\x00"), meas("tokens", "1")))
	if err != nil {
		t.Fatal(err)
	}
	// x = "v\x00\x01w", y absent: neither filter matches.
	res2, err := r.Rate(st, event(prop("x", "v\x00\x01w"), meas("tokens", "1")))
	if err != nil {
		t.Fatal(err)
	}
	wantAmount(t, "both filters match", res1.Amount(), "11")
	wantAmount(t, "no filter matches", res2.Amount(), "0")
	if !res2.Unpriced {
		t.Error("an event no filter matches is priced")
	}
}

func TestCountMeters(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters:
  - {key: api_calls, aggregation: count}
  - {key: agent_runs, eventType: agent.run.completed, aggregation: count}
  - {key: tool_calls, metricKey: tool_call, aggregation: count}
plans:
  - key: p
    charges:
      - {key: calls, meter: api_calls, model: perUnit, unitPrice: "0.01"}
      - {key: runs, meter: agent_runs, model: perUnit, unitPrice: "0.50"}
      - {key: tools, meter: tool_calls, model: perUnit, unitPrice: "1"}
`
	r := newRater(t, doc)
	st, _ := rateAll(t, r,
		event(),
		event(meas("tool_call", "7")), // counted once, whatever the value
		event(evType("agent.run.completed")),
		event(evType("agent.run.completed"), meas("tool_call", "0")),
	)
	p := r.Price(st)
	for _, w := range []struct{ charge, qty, amount string }{
		{"calls", "4", "0.04"},
		{"runs", "2", "1"},
		{"tools", "2", "2"},
	} {
		l := linesOf(p, w.charge)
		if len(l) != 1 {
			t.Errorf("%s lines = %+v", w.charge, l)
			continue
		}
		wantAmount(t, w.charge+" quantity", l[0].Quantity, w.qty)
		wantAmount(t, w.charge+" amount", l[0].Amount, w.amount)
	}
	if p.Events != 4 {
		t.Errorf("Events = %d", p.Events)
	}
}

func TestMaxLatestUniqueMeters(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters:
  - {key: peak, metricKey: concurrency, aggregation: max}
  - {key: seats, aggregation: latest}
  - {key: users, metricKey: requests, aggregation: uniqueCount, property: userId}
plans:
  - key: p
    charges:
      - {key: peak, meter: peak, model: perUnit, unitPrice: "10"}
      - {key: seats, meter: seats, model: perUnit, unitPrice: "3"}
      - {key: users, meter: users, model: graduated, tiers: [{upTo: 2, unitPrice: "0"}, {unitPrice: "5"}]}
`
	r := newRater(t, doc)
	evs := []*usage.Event{
		event(at(t0.Add(1*time.Hour)), meas("concurrency", "3"), meas("seats", "10"), meas("requests", "1"), prop("userId", "u1")),
		event(at(t0.Add(3*time.Hour)), meas("concurrency", "7"), meas("seats", "12"), meas("requests", "1"), prop("userId", "u2")),
		// Arrives late: its seats value is older than the latest one and must not win.
		event(at(t0.Add(2*time.Hour)), meas("concurrency", "5"), meas("seats", "99"), meas("requests", "1"), prop("userId", "u1")),
		event(at(t0.Add(4*time.Hour)), meas("seats", "8"), meas("requests", "1"), prop("userId", "u3")),
		event(at(t0.Add(5*time.Hour)), meas("requests", "1")), // no userId: not counted
	}
	st, res := rateAll(t, r, evs...)
	p := r.Price(st)
	for _, w := range []struct{ charge, qty, amount string }{
		{"peak", "7", "70"},
		{"seats", "8", "24"},
		{"users", "3", "5"},
	} {
		l := linesOf(p, w.charge)
		if len(l) != 1 {
			t.Errorf("%s lines = %+v", w.charge, l)
			continue
		}
		wantAmount(t, w.charge+" quantity", l[0].Quantity, w.qty)
		wantAmount(t, w.charge+" amount", l[0].Amount, w.amount)
	}
	// Each event's line quantity is what it changed; the amounts add up to the period.
	for _, charge := range []string{"peak", "seats", "users"} {
		wantAmount(t, charge+" attribution", resultSum(res, charge), chargeTotal(p, charge).String())
	}
	qtys := map[string]money.Decimal{}
	for _, rs := range res {
		for _, l := range rs.Lines {
			qtys[l.Charge] = qtys[l.Charge].Add(l.Quantity)
		}
	}
	wantAmount(t, "peak quantities", qtys["peak"], "7")
	wantAmount(t, "seats quantities", qtys["seats"], "8")
	wantAmount(t, "users quantities", qtys["users"], "3")
	acc := r.Price(accumulateAll(t, r, evs...))
	if got, want := renderPriced(money.Currency{Code: "USD", Minor: 2}, acc), renderPriced(money.Currency{Code: "USD", Minor: 2}, p); got != want {
		t.Errorf("Accumulate:\n%s\nRate:\n%s", got, want)
	}
}

// TestUniqueCountWithoutMetricKey: a uniqueCount meter needs only the property whose distinct
// values it counts (the catalog accepts it without a metricKey). It must count the distinct
// values over the period's events of its type.
func TestUniqueCountWithoutMetricKey(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters:
  - {key: active_users, aggregation: uniqueCount, property: userId}
plans:
  - key: p
    charges:
      - {key: users, meter: active_users, model: perUnit, unitPrice: "2"}
`
	r := newRater(t, doc)
	st, _ := rateAll(t, r, event(prop("userId", "u1")), event(prop("userId", "u2")), event(prop("userId", "u1")), event())
	p := r.Price(st)
	wantAmount(t, "users (3 events of 2 distinct users)", chargeTotal(p, "users"), "4")
}

func TestDerivedMeter(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters:
  - {key: credits, expression: "input_tokens * 0.001 + output_tokens * 0.004"}
  - {key: opus_weighted, eventType: llm.completion, expression: "properties.model == \"claude-opus-4\" ? input_tokens * 5 : input_tokens"}
  - {key: negative, expression: "input_tokens - output_tokens"}
  - {key: thirds, expression: "input_tokens / 3"}
plans:
  - key: p
    charges:
      - {key: credits, meter: credits, model: perUnit, unitPrice: "0.01"}
      - {key: weighted, meter: opus_weighted, model: perUnit, unitPrice: "1", per: 1000}
      - {key: negative, meter: negative, model: perUnit, unitPrice: "1"}
      - {key: thirds, meter: thirds, model: perUnit, unitPrice: "3"}
`
	tests := []struct {
		name   string
		ev     *usage.Event
		charge string
		qty    string
		amount string
	}{
		{"DESIGN credits", event(meas("input_tokens", "1500"), meas("output_tokens", "800")), "credits", "4.7", "0.047"},
		{"missing measurement reads 0", event(meas("output_tokens", "800")), "credits", "3.2", "0.032"},
		{"property selects a weight", event(prop("model", "claude-opus-4"), meas("input_tokens", "1000")), "weighted", "5000", "5"},
		{"other property value", event(prop("model", "claude-haiku-4-5"), meas("input_tokens", "1000")), "weighted", "1000", "1"},
		{"eventType narrows", event(evType("batch"), prop("model", "claude-opus-4"), meas("input_tokens", "1000")), "weighted", "", "0"},
		{"negative results are clamped to 0", event(meas("input_tokens", "1"), meas("output_tokens", "5")), "negative", "0", "0"},
		{"division at ExprDivisionScale", event(meas("input_tokens", "1")), "thirds", "0.333333333333333333", "0.999999999999999999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRater(t, doc)
			st, res := rateAll(t, r, tc.ev)
			p := r.Price(st)
			l := linesOf(p, tc.charge)
			if tc.qty == "" {
				if len(l) != 0 {
					t.Errorf("unexpected lines %+v", l)
				}
				return
			}
			if len(l) != 1 {
				t.Fatalf("lines = %+v", l)
			}
			wantAmount(t, "quantity", l[0].Quantity, tc.qty)
			wantAmount(t, "amount", l[0].Amount, tc.amount)
			wantAmount(t, "attributed", resultSum(res, tc.charge), tc.amount)
		})
	}
	// An event with none of the formula's measurements does not feed the meter.
	r := newRater(t, doc)
	st, res := rateAll(t, r, event(meas("cache_read_tokens", "5")))
	if len(linesOf(r.Price(st), "credits")) != 0 || !res[0].Unpriced {
		t.Errorf("an event without the formula's measurements fed it: %+v", res[0])
	}
}

func TestUnmeteredAndUnpriced(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters:
  - {key: input_tokens}
  - {key: batch_tokens, metricKey: tokens, eventType: batch}
  - {key: credits, expression: "reasoning_tokens * 2"}
plans:
  - key: p
    charges:
      - {key: in, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: a}}
`
	r := newRater(t, doc)
	_, res := rateAll(t, r,
		event(prop("model", "a"), meas("input_tokens", "1"), meas("cache_read_tokens", "5"), meas("reasoning_tokens", "3"), meas("zzz", "1")),
		event(prop("model", "b"), meas("input_tokens", "1")),
	)
	got := slices.Clone(res[0].Unmetered)
	slices.Sort(got)
	if !slices.Equal(got, []string{"cache_read_tokens", "zzz"}) {
		t.Errorf("Unmetered = %v, want cache_read_tokens and zzz (reasoning_tokens feeds a derived meter)", res[0].Unmetered)
	}
	if res[0].Unpriced {
		t.Error("first event is priced")
	}
	if len(res[1].Unmetered) != 0 {
		t.Errorf("metered but filtered out is not unmetered: %v", res[1].Unmetered)
	}
	if !res[1].Unpriced || len(res[1].Lines) != 0 {
		t.Errorf("an event that reaches no charge: %+v", res[1])
	}
}

func TestCosts(t *testing.T) {
	t.Parallel()
	doc := `currency: USD
meters: [{key: input_tokens}, {key: output_tokens}]
costs:
  - {meter: input_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "3.00", per: 1000000}
  - {meter: input_tokens, unitCost: "1.00", per: 1000000}
  - {meter: output_tokens, unitCost: "15.00", per: 1000000}
plans:
  - key: p
    charges:
      - {key: graduated_in, meter: input_tokens, model: graduated, per: 1000000, tiers: [{upTo: 1000000, unitPrice: "6"}, {unitPrice: "5"}]}
      - {key: starter, meter: input_tokens, model: includedQuota, included: 1000, unitPrice: "1", per: 1000}
`
	r := newRater(t, doc)
	st, res := rateAll(t, r,
		event(prop("model", "claude-sonnet-4-6"), meas("input_tokens", "1500"), meas("output_tokens", "800")),
		event(prop("model", "claude-haiku-4-5"), meas("input_tokens", "1000")),
	)
	// Event 1: 1500 × 3/1M + 800 × 15/1M, the input counted once although two charges price it;
	// output_tokens has a cost but no charge.
	wantAmount(t, "event 1 cost", res[0].Cost, "0.0165")
	wantAmount(t, "event 2 cost (first matching entry)", res[1].Cost, "0.001")
	for _, l := range res[0].Lines {
		wantAmount(t, l.Charge+" line cost", l.Cost, "0.0045")
	}
	p := r.Price(st)
	wantAmount(t, "period cost", p.Cost, "0.0175")
	for _, l := range p.Lines {
		wantAmount(t, l.Charge+" priced line cost", l.Cost, "0.0055")
	}
}

// TestResultLinesInPlanOrder: Result.Lines is documented as "one line per (charge, group, type)
// the event reached, in plan order", whatever order the event lists its measurements in.
func TestResultLinesInPlanOrder(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(
		`{key: in, meter: input_tokens, model: perUnit, unitPrice: "1"}`,
		`{key: out, meter: output_tokens, model: perUnit, unitPrice: "1"}`,
		`{key: pct, model: percentage, rate: "10", of: {charges: [in, out]}}`,
	))
	_, res := rateAll(t, r, event(meas("output_tokens", "5"), meas("input_tokens", "3")))
	var got []string
	for _, l := range res[0].Lines {
		got = append(got, l.Charge+"/"+string(l.Type))
	}
	if want := []string{"in/usage", "out/usage", "pct/usage"}; !slices.Equal(got, want) {
		t.Errorf("lines = %v, want %v", got, want)
	}
	wantAmount(t, "amount", res[0].Amount(), "8.8")
}

// TestPercentageOfChargesMinimumAndMaximum: a percentage of charges applies to the named charges'
// amounts after their maximum and before their minimum true-up (doc.go: a minimum is a
// period-level adjustment no call caused, so a percentage of it could not be attributed).
func TestPercentageOfChargesMinimumAndMaximum(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(
		`{key: base, meter: tokens, model: perUnit, unitPrice: "1", minimum: "10"}`,
		`{key: capped, meter: input_tokens, model: perUnit, unitPrice: "1", maximum: "5"}`,
		`{key: fee, model: percentage, rate: "10", of: {charges: [base, capped]}}`,
	))
	st, res := rateAll(t, r, event(meas("tokens", "2"), meas("input_tokens", "8")))
	p := r.Price(st)
	// base: 2 + minimum true-up 8 = 10; capped: 8 − 3 = 5; fee = 10% × (2 + 5) = 0.7.
	wantAmount(t, "base", chargeTotal(p, "base"), "10")
	wantAmount(t, "capped", chargeTotal(p, "capped"), "5")
	wantAmount(t, "fee", chargeTotal(p, "fee"), "0.7")
	wantAmount(t, "fee attributed to the event", resultSum(res, "fee"), "0.7")
}

// TestPercentageOfChargesZeroBase: Rate and Accumulate must give the same Price. When the named
// charges are reached but amount to 0 (usage within an included quota), Rate marks the
// percentage charge reached and Price emits a 0 line for it; after Accumulate it emits none.
func TestPercentageOfChargesZeroBase(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(
		`{key: quota, meter: tokens, model: includedQuota, included: 1000, unitPrice: "1"}`,
		`{key: fee, model: percentage, rate: "10", of: {charges: [quota]}}`,
	))
	evs := []*usage.Event{event(meas("tokens", "10"))}
	st, _ := rateAll(t, r, evs...)
	cur := money.Currency{Code: "USD", Minor: 2}
	rated := renderPriced(cur, r.Price(st))
	accumulated := renderPriced(cur, r.Price(accumulateAll(t, r, evs...)))
	if rated != accumulated {
		t.Errorf("Price after Rate:\n%s\nPrice after Accumulate:\n%s", rated, accumulated)
	}
}

// TestPercentageOfUnreachedCharge: attribution must be exact. A charge that no event reached is
// priced at quantity 0 with no attribution (here its first-tier fee of 10). A percentage of it
// then includes 10% of that fee although no event caused it: that part must be period-level
// (not Attributable), and every Attributable line must be the sum of its events' amounts, also
// when the percentage has a maximum that the period part pushes it over.
func TestPercentageOfUnreachedCharge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		maximum string
		total   string
	}{
		{"no maximum", "", "16.5"},           // setup 10 (unattributed) + usage 5 + fee 0.5 on events + 1 on setup
		{"maximum binds", "1.2", "16.2"},     // the fee is capped at 1.2
		{"maximum above", "2", "16.5"},       // not binding
		{"maximum on events", "0.4", "15.4"}, // events alone exceed it
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fee := `{key: fee, model: percentage, rate: "10", of: {charges: [setup, usage]}}`
			if tc.maximum != "" {
				fee = `{key: fee, model: percentage, rate: "10", of: {charges: [setup, usage]}, maximum: "` + tc.maximum + `"}`
			}
			r := newRater(t, planWith(
				`{key: setup, meter: tokens, model: graduated, filter: {model: a}, tiers: [{upTo: 100, flatFee: "10"}, {unitPrice: "1"}]}`,
				`{key: usage, meter: tokens, model: perUnit, unitPrice: "1"}`,
				fee,
			))
			st, res := rateAll(t, r, event(prop("model", "b"), meas("tokens", "5")))
			p := r.Price(st)
			wantAmount(t, "total", p.Total, tc.total)
			unattributed := money.Zero
			for _, l := range p.Lines {
				if !l.Attributable {
					unattributed = unattributed.Add(l.Amount)
					continue
				}
				attributed := money.Zero
				for _, rs := range res {
					for _, rl := range rs.Lines {
						if rl.Charge == l.Charge && rl.Group == l.Group && rl.Type == l.Type {
							attributed = attributed.Add(rl.Amount)
						}
					}
				}
				if !attributed.Equal(l.Amount) {
					t.Errorf("line %s/%s (quantity %s) is %s but its events were attributed %s\n%s",
						l.Charge, l.Type, l.Quantity, l.Amount, attributed, renderPriced(r.Catalog().Currency, p))
				}
			}
			wantAmount(t, "events' amounts", resultSum(res, ""), p.Total.Sub(unattributed).String())
		})
	}
}

// TestRaterConcurrentUse: a Rater is safe for concurrent use with one State per goroutine, and
// each State prices as if alone.
func TestRaterConcurrentUse(t *testing.T) {
	t.Parallel()
	r := newRater(t, priceTableDoc)
	models := []string{"claude-opus-4", "claude-sonnet-4-6", "m1", "m2", "m3", "m4"}
	var wg sync.WaitGroup
	totals := make([]money.Decimal, 8)
	for g := range totals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := r.NewState()
			for i := 0; i < 50*len(models); i++ { // every model equally often, in a different order
				ev := event(prop("model", models[(i+g)%len(models)]), meas("input_tokens", "1000"), meas("output_tokens", "100"))
				if _, err := r.Rate(st, ev); err != nil {
					t.Error(err)
					return
				}
			}
			totals[g] = r.Price(st).Total
		}()
	}
	wg.Wait()
	for g := 1; g < len(totals); g++ {
		if !totals[g].Equal(totals[0]) {
			t.Errorf("goroutine %d total %s != %s", g, totals[g], totals[0])
		}
	}
}
