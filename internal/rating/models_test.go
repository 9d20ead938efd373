package rating

import (
	"testing"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// noEvents marks an edge case priced with no event at all.
const noEvents = "none"

type edge struct {
	name string
	qty  string // the period's quantity on meter "tokens", or noEvents
	want string // the charge's whole-period amount
}

// checkEdges prices each quantity four ways and expects the same whole-period amount from all:
// Cumulative directly, one event through Rate, the quantity split into three events through
// Rate (and the sum of their incremental amounts), and Accumulate.
func checkEdges(t *testing.T, charge string, edges []edge) {
	t.Helper()
	doc := planWith(charge)
	cat := loadCatalog(t, doc)
	ch := cat.Plan("p").Charges[0]
	for _, tc := range edges {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := NewRater(cat, cat.Plan("p"))
			if tc.qty == noEvents {
				st := r.NewState()
				p := r.Price(st)
				wantAmount(t, "price with no events", chargeTotal(p, ch.Key), tc.want)
				if got := Cumulative(ch.Model, ch.Pricing, money.Zero); ch.Model != catalog.Flat && !got.Equal(d(tc.want)) {
					t.Errorf("Cumulative(0) = %s, want %s", got, tc.want)
				}
				return
			}
			qty := d(tc.qty)
			if ch.Model != catalog.Flat {
				wantAmount(t, "Cumulative", Cumulative(ch.Model, ch.Pricing, qty), tc.want)
			}
			// One event.
			st, res := rateAll(t, r, event(meas("tokens", tc.qty)))
			wantAmount(t, "one event: Price", chargeTotal(r.Price(st), ch.Key), tc.want)
			if ch.Model != catalog.Flat {
				wantAmount(t, "one event: Rate amount", resultSum(res, ch.Key), tc.want)
			}
			// Three events: a third, a third, the rest (exact).
			third := qty.DivRound(d("3"), 2)
			parts := []money.Decimal{third, third, qty.Sub(third).Sub(third)}
			var evs []*usage.Event
			for _, p := range parts {
				if p.IsNegative() {
					parts = []money.Decimal{qty}
					evs = nil
					break
				}
				evs = append(evs, event(measQty("tokens", money.QtyOf(p))))
			}
			if evs == nil {
				evs = []*usage.Event{event(measQty("tokens", money.QtyOf(qty)))}
			}
			st, res = rateAll(t, r, evs...)
			p := r.Price(st)
			wantAmount(t, "three events: Price", chargeTotal(p, ch.Key), tc.want)
			if ch.Model != catalog.Flat {
				wantAmount(t, "three events: sum of Rate amounts", resultSum(res, ch.Key), tc.want)
			}
			acc := accumulateAll(t, r, evs...)
			if got, want := renderPriced(cat.Currency, r.Price(acc)), renderPriced(cat.Currency, p); got != want {
				t.Errorf("Accumulate priced\n%s\nRate priced\n%s", got, want)
			}
		})
	}
}

func TestFlat(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, model: flat, amount: "200.00"}`, []edge{
		{"no events", noEvents, "200"},
		{"zero usage", "0", "200"},
		{"some usage", "123456", "200"},
	})
	// The flat line is one line of quantity 1, whatever the number of events.
	r := newRater(t, planWith(`{key: c, model: flat, amount: "200.00"}`))
	st, res := rateAll(t, r, event(meas("tokens", "5")), event(meas("tokens", "5")))
	p := r.Price(st)
	if len(p.Lines) != 1 || p.Lines[0].Type != LineFlat || !p.Lines[0].Quantity.Equal(d("1")) {
		t.Errorf("flat lines = %+v", p.Lines)
	}
	for _, rs := range res {
		if len(rs.Lines) != 0 || !rs.Unpriced {
			t.Errorf("an event rated against a flat-only plan: %+v", rs)
		}
	}
}

func TestPerUnit(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: perUnit, unitPrice: "15.00", per: 1000000}`, []edge{
		{"no events", noEvents, "0"},
		{"zero", "0", "0"},
		{"one token", "1", "0.000015"},
		{"half a token", "0.5", "0.0000075"},
		{"800 tokens", "800", "0.012"},
		{"one per", "1000000", "15"},
		{"large", "123456789", "1851.851835"},
	})
	checkEdges(t, `{key: c, meter: tokens, model: perUnit, unitPrice: "0.50"}`, []edge{
		{"per defaults to 1", "3", "1.5"},
	})
}

// The DESIGN.md graduated example: 3.00 up to 10M, 2.50 up to 60M, 2.00 beyond, per 1M.
func TestGraduated(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: graduated, per: 1000000, tiers: [{upTo: 10000000, unitPrice: "3.00"}, {upTo: 60000000, unitPrice: "2.50"}, {unitPrice: "2.00"}]}`, []edge{
		{"no events", noEvents, "0"},
		{"zero", "0", "0"},
		{"one token", "1", "0.000003"},
		{"inside tier 1", "6000000", "18"},
		{"exactly on the first boundary (inclusive)", "10000000", "30"},
		{"a fraction past the boundary", "10000000.5", "30.00000125"},
		{"one past the boundary", "10000001", "30.0000025"},
		{"exactly on the second boundary", "60000000", "155"},
		{"into the open last tier", "60000001", "155.000002"},
		{"deep in the open last tier", "100000000", "235"},
	})
}

// Graduated with flat fees: a tier's fee is charged once the quantity reaches into it, and
// quantity 0 sits in the first tier.
func TestGraduatedFlatFees(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: graduated, tiers: [{upTo: 100, flatFee: "10"}, {upTo: 1000, unitPrice: "0.5", flatFee: "5"}, {unitPrice: "0.1"}]}`, []edge{
		{"no events: first-tier fee", noEvents, "10"},
		{"zero usage: first-tier fee", "0", "10"},
		{"inside the first tier", "50", "10"},
		{"on the first boundary", "100", "10"},
		{"a fraction past it pays the second fee", "100.5", "15.25"},
		{"one past", "101", "15.5"},
		{"on the second boundary", "1000", "465"},
		{"a fraction into the last tier", "1000.5", "465.05"},
		{"open last tier", "2000", "565"},
	})
}

func TestVolume(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: volume, tiers: [{upTo: 1000, unitPrice: "1.00"}, {upTo: 10000, unitPrice: "0.80", flatFee: "5"}, {unitPrice: "0.50"}]}`, []edge{
		{"no events", noEvents, "0"},
		{"zero", "0", "0"},
		{"one", "1", "1"},
		{"on the boundary stays in tier 1", "1000", "1000"},
		{"a fraction past: cliff, the whole at tier 2", "1000.5", "805.4"},
		{"one past", "1001", "805.8"},
		{"on the second boundary", "10000", "8005"},
		{"a fraction into the open tier", "10000.5", "5000.25"},
		{"open tier", "20000", "10000"},
	})
	checkEdges(t, `{key: c, meter: tokens, model: volume, tiers: [{upTo: 10, flatFee: "3"}, {unitPrice: "0.1"}]}`, []edge{
		{"no events: first-tier fee", noEvents, "3"},
		{"zero usage: first-tier fee", "0", "3"},
		{"on the boundary", "10", "3"},
		{"past the boundary", "11", "1.1"},
	})
}

// TestVolumeCliff checks that crossing a volume boundary lowers the total and that the event
// crossing it gets the (negative) difference.
func TestVolumeCliff(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(`{key: c, meter: tokens, model: volume, tiers: [{upTo: 1000, unitPrice: "1.00"}, {upTo: 10000, unitPrice: "0.80", flatFee: "5"}, {unitPrice: "0.50"}]}`))
	st, res := rateAll(t, r, event(meas("tokens", "1000")), event(meas("tokens", "0.5")), event(meas("tokens", "8999.5")), event(meas("tokens", "0.5")))
	wantAmount(t, "first event", res[0].Amount(), "1000")
	wantAmount(t, "the crossing event", res[1].Amount(), "-194.6")        // 805.4 - 1000
	wantAmount(t, "up to the second boundary", res[2].Amount(), "7199.6") // 8005 - 805.4
	wantAmount(t, "into the open tier", res[3].Amount(), "-3004.75")      // 5000.25 - 8005
	wantAmount(t, "period", r.Price(st).Total, "5000.25")
	if got := Incremental(catalog.Volume, r.Plan().Charges[0].Pricing, d("1000"), d("1000.5")); !got.Equal(d("-194.6")) {
		t.Errorf("Incremental across the cliff = %s", got)
	}
}

func TestPackage(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: package, packageSize: 1000, packagePrice: "2.00", freeUnits: 500}`, []edge{
		{"no events", noEvents, "0"},
		{"zero", "0", "0"},
		{"below the free units", "499", "0"},
		{"exactly the free units", "500", "0"},
		{"a fraction past the free units", "500.5", "2"},
		{"one package", "1500", "2"},
		{"partial second package", "1500.5", "4"},
		{"two packages", "2500", "4"},
		{"third package starts", "2501", "6"},
	})
	checkEdges(t, `{key: c, meter: tokens, model: package, packageSize: 1000, packagePrice: "2.00"}`, []edge{
		{"no free units: zero", "0", "0"},
		{"no free units: one unit buys a package", "1", "2"},
		{"no free units: full package", "1000", "2"},
		{"no free units: next package", "1001", "4"},
	})
	checkEdges(t, `{key: c, meter: tokens, model: package, packageSize: 2.5, packagePrice: "1"}`, []edge{
		{"fractional size: exact", "5", "2"},
		{"fractional size: partial", "5.01", "3"},
	})
}

func TestIncludedQuota(t *testing.T) {
	t.Parallel()
	checkEdges(t, `{key: c, meter: tokens, model: includedQuota, included: 1000000, unitPrice: "5.00", per: 1000000}`, []edge{
		{"no events", noEvents, "0"},
		{"zero", "0", "0"},
		{"below the quota", "999999", "0"},
		{"at the quota", "1000000", "0"},
		{"a fraction above", "1000000.5", "0.0000025"},
		{"one above", "1000001", "0.000005"},
		{"well above", "3000000", "10"},
	})
}

// percentage of a property: per event value × rate/100 + fixedFee, clamped, then summed.
func TestPercentageOfProperty(t *testing.T) {
	t.Parallel()
	doc := planWith(`{key: card, model: percentage, of: {property: amount}, rate: "2.9", fixedFee: "0.30", minPerTransaction: "0.50", maxPerTransaction: "10.00"}`)
	tests := []struct {
		name   string
		amount string // property value; "" for absent
		want   string
	}{
		{"zero amount clamps up to the minimum", "0", "0.5"},
		{"small amount clamps up", "5", "0.5"},
		{"just above the minimum", "10", "0.59"},
		{"plain", "100", "3.2"},
		{"just under the maximum", "334.48", "9.99992"},
		{"just over the maximum", "334.5", "10"},
		{"large clamps down", "1000", "10"},
		{"decimal with exponent", "1e2", "3.2"},
		{"absent property", "", "0"},
		{"not a number", "abc", "0"},
		{"negative", "-5", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRater(t, doc)
			var opts []evOpt
			if tc.amount != "" {
				opts = append(opts, prop("amount", tc.amount))
			}
			st, res := rateAll(t, r, event(append(opts, evType("payment"))...))
			wantAmount(t, "Rate", res[0].Amount(), tc.want)
			wantAmount(t, "Price", r.Price(st).Total, tc.want)
			if res[0].Unpriced != (tc.want == "0") {
				t.Errorf("Unpriced = %v", res[0].Unpriced)
			}
		})
	}
	// Per-transaction clamps apply per event, then the amounts add up.
	r := newRater(t, doc)
	evs := []*usage.Event{event(prop("amount", "10")), event(prop("amount", "100")), event(prop("amount", "1000")), event(prop("amount", "1"))}
	st, res := rateAll(t, r, evs...)
	want := "14.29" // 0.59 + 3.2 + 10 + 0.5
	wantAmount(t, "sum of events", resultSum(res, "card"), want)
	p := r.Price(st)
	wantAmount(t, "period", p.Total, want)
	if l := linesOf(p, "card"); len(l) != 1 || !l[0].Quantity.Equal(d("1111")) {
		t.Errorf("card lines = %+v, want one line of quantity 1111 (the summed values)", l)
	}
	if got := renderPriced(money.Currency{Code: "USD", Minor: 2}, r.Price(accumulateAll(t, r, evs...))); got != renderPriced(money.Currency{Code: "USD", Minor: 2}, p) {
		t.Errorf("Accumulate priced differently:\n%s", got)
	}
}

func TestPercentageOfPropertyEventType(t *testing.T) {
	t.Parallel()
	r := newRater(t, planWith(`{key: card, model: percentage, eventType: payment, of: {property: amount}, rate: "1.5", filter: {currency: EUR}}`))
	st, res := rateAll(t, r,
		event(evType("payment"), prop("amount", "200"), prop("currency", "EUR")),
		event(evType("refund"), prop("amount", "200"), prop("currency", "EUR")),
		event(evType("payment"), prop("amount", "200"), prop("currency", "USD")),
	)
	wantAmount(t, "payment in EUR", res[0].Amount(), "3")
	wantAmount(t, "other event type", res[1].Amount(), "0")
	wantAmount(t, "filtered out", res[2].Amount(), "0")
	wantAmount(t, "period", r.Price(st).Total, "3")
}

// TestPercentageOfCharges covers a percentage of other charges with the DESIGN.md priority
// charge: 2.5% of sonnet_in and sonnet_out, minimum 0.50.
func TestPercentageOfCharges(t *testing.T) {
	t.Parallel()
	doc := planWith(
		`{key: sonnet_in, meter: input_tokens, model: graduated, per: 1000000, tiers: [{upTo: 10000000, unitPrice: "3.00"}, {unitPrice: "2.50"}]}`,
		`{key: sonnet_out, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}`,
		`{key: priority, model: percentage, rate: "2.5", of: {charges: [sonnet_in, sonnet_out]}, minimum: "0.50"}`,
	)
	tests := []struct {
		name           string
		in, out        string
		usage, minimum string // priority's usage line and minimum true-up
	}{
		{"small usage is topped up to the minimum", "1000000", "100000", "0.1125", "0.3875"}, // 2.5% × (3 + 1.5)
		{"above the minimum", "10000000", "1000000", "1.125", ""},                            // 2.5% × (30 + 15)
		{"across a graduated boundary", "12000000", "0", "0.875", ""},                        // 2.5% × (30 + 5)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRater(t, doc)
			st, res := rateAll(t, r, event(meas("input_tokens", tc.in), meas("output_tokens", tc.out)))
			p := r.Price(st)
			got, ok := lineAmount(p, "priority", "", LineUsage)
			if !ok {
				t.Fatalf("no priority usage line in %+v", p.Lines)
			}
			wantAmount(t, "priority usage", got, tc.usage)
			wantAmount(t, "priority attributed to the event", resultSum(res, "priority"), tc.usage)
			m, ok := lineAmount(p, "priority", "", LineMinimum)
			if tc.minimum == "" {
				if ok {
					t.Errorf("unexpected minimum line %s", m)
				}
			} else {
				wantAmount(t, "priority minimum true-up", m, tc.minimum)
			}
		})
	}
}

func TestCumulativeOfNonQuantityModels(t *testing.T) {
	t.Parallel()
	p := &catalog.Pricing{Rate: d("10"), RateFraction: d("0.1")}
	if got := Cumulative(catalog.Percentage, p, d("100")); !got.IsZero() {
		t.Errorf("Cumulative(percentage) = %s, want 0 (not a function of a quantity)", got)
	}
	if got := Cumulative(catalog.Model("bogus"), p, d("100")); !got.IsZero() {
		t.Errorf("Cumulative(unknown model) = %s", got)
	}
}
