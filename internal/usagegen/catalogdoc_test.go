package usagegen

// The worked examples of docs/catalog.md, run through the real catalog, rating and invoice code.
// When one of these fails, fix the code or the document: they must tell the same story.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/invoice"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/usage"
)

// docEvent builds an event: kv are measurement key/value pairs; props are "name=value" strings
// mixed in (an argument with "=" is a property).
func docEvent(t testing.TB, eventType string, args ...string) *usage.Event {
	t.Helper()
	var props, meas []string
	for i := 0; i < len(args); i++ {
		if name, value, ok := strings.Cut(args[i], "="); ok {
			props = append(props, fmt.Sprintf("%q:%q", name, value))
			continue
		}
		meas = append(meas, fmt.Sprintf(`{"metricKey":%q,"value":%s}`, args[i], args[i+1]))
		i++
	}
	js := fmt.Sprintf(`{"id":"e","eventType":%q,"customerId":"c","timestamp":"2026-10-15T00:00:00Z","properties":{%s},"measurements":[%s]}`,
		eventType, strings.Join(props, ","), strings.Join(meas, ","))
	return decodeEvent(t, js)
}

func call(t testing.TB, args ...string) *usage.Event { return docEvent(t, "llm.completion", args...) }

// docCase is one worked example: a catalog with plan "p", events, and the priced period.
type docCase struct {
	name    string
	catalog string
	events  []*usage.Event
	rated   []string // each event's incremental amount, when checked
	lines   []string // "charge[/group] type quantity amount"
	total   string
	rounded string // invoice total in the currency's minor unit, when checked
}

func runDocCase(t *testing.T, tc docCase) {
	t.Helper()
	cat, err := catalog.Load([]byte(tc.catalog))
	if err != nil {
		t.Fatal(err)
	}
	r := rating.NewRater(cat, cat.Plan("p"))
	st := r.NewState()
	for i, ev := range tc.events {
		res, err := r.Rate(st, ev)
		if err != nil {
			t.Fatal(err)
		}
		if tc.rated != nil && !res.Amount().Equal(money.MustParse(tc.rated[i])) {
			t.Errorf("event %d rated %s, want %s (lines %+v)", i, res.Amount(), tc.rated[i], res.Lines)
		}
	}
	priced := r.Price(st)
	var got []string
	for _, l := range priced.Lines {
		name := l.Charge
		if l.Group != "" {
			name += "/" + l.Group
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", name, l.Type, l.Quantity, l.Amount))
	}
	if strings.Join(got, "\n") != strings.Join(tc.lines, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.lines, "\n"))
	}
	if !priced.Total.Equal(money.MustParse(tc.total)) {
		t.Errorf("total %s, want %s", priced.Total, tc.total)
	}
	if tc.rounded != "" {
		f := invoice.Round(priced, cat.Currency)
		if got := f.Total.StringFixed(cat.Currency.Minor); got != tc.rounded {
			t.Errorf("invoice total %s, want %s", got, tc.rounded)
		}
	}
}

const meters = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: api_calls}
  - {key: tool_calls}
`

func TestDocPricingModels(t *testing.T) {
	graduated := meters + `plans:
  - key: p
    charges:
      - key: calls
        meter: api_calls
        model: graduated
        tiers:
          - {upTo: 1000, unitPrice: "0.10", flatFee: "5.00"}
          - {upTo: 5000, unitPrice: "0.08"}
          - {unitPrice: "0.05", flatFee: "10.00"}
`
	volume := meters + `plans:
  - key: p
    charges:
      - key: calls
        meter: api_calls
        model: volume
        tiers:
          - {upTo: 1000, unitPrice: "0.10"}
          - {upTo: 5000, unitPrice: "0.08"}
          - {unitPrice: "0.05"}
`
	pkg := meters + `plans:
  - key: p
    charges:
      - {key: calls, meter: api_calls, model: package, packageSize: 1000, packagePrice: "2.00", freeUnits: 500}
`
	included := meters + `plans:
  - key: p
    charges:
      - {key: starter, meter: input_tokens, model: includedQuota, included: 1000000, unitPrice: "5.00", per: 1000000}
`
	calls := func(n ...string) []*usage.Event {
		var evs []*usage.Event
		for _, v := range n {
			evs = append(evs, call(t, "api_calls", v))
		}
		return evs
	}
	for _, tc := range []docCase{
		{
			name: "flat",
			catalog: meters + `plans:
  - key: p
    charges:
      - {key: platform, model: flat, amount: "49.00"}
`,
			lines: []string{"platform flat 1 49"},
			total: "49",
		},
		{
			name: "perUnit",
			catalog: meters + `plans:
  - key: p
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000}
`,
			events:  []*usage.Event{call(t, "input_tokens", "1000000"), call(t, "input_tokens", "234567")},
			rated:   []string{"3.6", "0.8444412"},
			lines:   []string{"input usage 1234567 4.4444412"},
			total:   "4.4444412",
			rounded: "4.44",
		},
		{name: "graduated at 0", catalog: graduated, lines: []string{"calls usage 0 5"}, total: "5"},
		{name: "graduated at 1000", catalog: graduated, events: calls("1000"), lines: []string{"calls usage 1000 105"}, total: "105"},
		{name: "graduated at 1000.5", catalog: graduated, events: calls("1000.5"), lines: []string{"calls usage 1000.5 105.04"}, total: "105.04"},
		{
			name: "graduated at 6500", catalog: graduated, events: calls("3000", "3500"),
			rated: []string{"265", "245"}, lines: []string{"calls usage 6500 510"}, total: "510",
		},
		{name: "volume at 1000", catalog: volume, events: calls("1000"), lines: []string{"calls usage 1000 100"}, total: "100"},
		{
			name: "volume cliff at 1001", catalog: volume, events: calls("1000", "1"),
			rated: []string{"100", "-19.92"}, lines: []string{"calls usage 1001 80.08"}, total: "80.08",
		},
		{name: "volume at 6500", catalog: volume, events: calls("6500"), lines: []string{"calls usage 6500 325"}, total: "325"},
		{name: "package at 400", catalog: pkg, events: calls("400"), lines: []string{"calls usage 400 0"}, total: "0"},
		{name: "package at 1500", catalog: pkg, events: calls("1500"), lines: []string{"calls usage 1500 2"}, total: "2"},
		{name: "package at 1501", catalog: pkg, events: calls("1500", "1"), rated: []string{"2", "2"}, lines: []string{"calls usage 1501 4"}, total: "4"},
		{name: "package at 2600", catalog: pkg, events: calls("2600"), lines: []string{"calls usage 2600 6"}, total: "6"},
		{name: "includedQuota under", catalog: included, events: []*usage.Event{call(t, "input_tokens", "800000")}, lines: []string{"starter usage 800000 0"}, total: "0"},
		{
			name: "includedQuota over", catalog: included,
			events: []*usage.Event{call(t, "input_tokens", "800000"), call(t, "input_tokens", "1700000")},
			rated:  []string{"0", "7.5"}, lines: []string{"starter usage 2500000 7.5"}, total: "7.5",
		},
		{
			name: "includedQuota per model",
			catalog: meters + `plans:
  - key: p
    charges:
      - key: starter
        meter: input_tokens
        model: includedQuota
        included: 1000000
        per: 1000000
        priceBy: model
        prices:
          small: {unitPrice: "1.00"}
          large: {unitPrice: "5.00"}
`,
			events: []*usage.Event{call(t, "model=small", "input_tokens", "1500000"), call(t, "model=large", "input_tokens", "1500000")},
			lines:  []string{"starter/large usage 1500000 2.5", "starter/small usage 1500000 0.5"},
			total:  "3",
		},
		{
			name: "percentage of a property",
			catalog: meters + `plans:
  - key: p
    charges:
      - key: fee
        model: percentage
        eventType: payment.succeeded
        of: {property: amount}
        rate: "2.9"
        fixedFee: "0.30"
        minPerTransaction: "0.50"
        maxPerTransaction: "10.00"
`,
			events: []*usage.Event{
				docEvent(t, "payment.succeeded", "amount=5.00"),
				docEvent(t, "payment.succeeded", "amount=100.00"),
				docEvent(t, "payment.succeeded", "amount=500.00"),
				docEvent(t, "payment.succeeded", "amount=n/a"),
				docEvent(t, "payment.refunded", "amount=100.00"),
			},
			rated: []string{"0.5", "3.2", "10", "0", "0"},
			lines: []string{"fee usage 605 13.7"},
			total: "13.7",
		},
		{
			name: "percentage of charges",
			catalog: meters + `plans:
  - key: p
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "18.00", per: 1000000}
      - {key: priority, model: percentage, rate: "5", of: {charges: [input, output]}, minimum: "1.00"}
`,
			events: []*usage.Event{call(t, "input_tokens", "1234567", "output_tokens", "250000")},
			rated:  []string{"9.39166326"},
			lines: []string{
				"input usage 1234567 4.4444412",
				"output usage 250000 4.5",
				"priority usage 8.9444412 0.44722206",
				"priority minimum 0 0.55277794",
			},
			total:   "9.9444412",
			rounded: "9.94",
		},
		{
			name: "maximum, minimum and commitment",
			catalog: meters + `plans:
  - key: p
    minimumCommitment: "50.00"
    charges:
      - {key: platform, model: flat, amount: "20.00"}
      - {key: searches, meter: tool_calls, model: perUnit, unitPrice: "12.00", per: 1000, maximum: "10.00"}
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000, minimum: "5.00"}
`,
			events: []*usage.Event{call(t, "tool_calls", "600"), call(t, "tool_calls", "400"), call(t, "input_tokens", "1000000")},
			rated:  []string{"7.2", "2.8", "3.6"},
			lines: []string{
				"platform flat 1 20",
				"searches usage 1000 12",
				"searches maximum 0 -2",
				"input usage 1000000 3.6",
				"input minimum 0 1.4",
				"minimumCommitment commitment 0 15",
			},
			total:   "50",
			rounded: "50.00",
		},
	} {
		t.Run(tc.name, func(t *testing.T) { runDocCase(t, tc) })
	}
}

func TestDocPriceTableResolution(t *testing.T) {
	doc := meters + `plans:
  - key: p
    charges:
      - key: own
        meter: input_tokens
        model: perUnit
        per: 1000000
        unitPrice: "9.00"
        priceBy: model
        prices:
          a: {unitPrice: "1.00"}
      - key: dflt
        meter: input_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          a: {unitPrice: "1.00"}
        defaultPrice: {unitPrice: "2.00"}
      - key: none
        meter: input_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          a: {unitPrice: "1.00"}
`
	runDocCase(t, docCase{
		catalog: doc,
		events:  []*usage.Event{call(t, "model=a", "input_tokens", "1000000"), call(t, "model=b", "input_tokens", "1000000"), call(t, "input_tokens", "1000000")},
		lines: []string{
			"own usage 1000000 9", "own/a usage 1000000 1", "own/b usage 1000000 9",
			"dflt usage 1000000 2", "dflt/a usage 1000000 1", "dflt/b usage 1000000 2",
			"none/a usage 1000000 1",
		},
		total: "25",
	})
}

func TestDocMeters(t *testing.T) {
	doc := `currency: USD
meters:
  - {key: peak_context, metricKey: context_tokens, aggregation: max}
  - {key: seats, aggregation: latest}
  - {key: tasks, metricKey: steps, aggregation: uniqueCount, property: taskId}
  - {key: runs, eventType: agent.run.completed, aggregation: count}
  - {key: calls_with_tools, metricKey: tool_calls, aggregation: count}
  - {key: thirds, expression: "input_tokens / 3"}
  - {key: clamped, expression: "input_tokens - 100"}
plans:
  - key: p
    charges:
      - {key: peak, meter: peak_context, model: perUnit, unitPrice: "1"}
      - {key: seats, meter: seats, model: perUnit, unitPrice: "1"}
      - {key: tasks, meter: tasks, model: perUnit, unitPrice: "1"}
      - {key: runs, meter: runs, model: perUnit, unitPrice: "1"}
      - {key: calls_with_tools, meter: calls_with_tools, model: perUnit, unitPrice: "1"}
      - {key: thirds, meter: thirds, model: perUnit, unitPrice: "1"}
      - {key: clamped, meter: clamped, model: perUnit, unitPrice: "1"}
`
	at := func(ev *usage.Event, ts string) *usage.Event {
		ev.Timestamp, _ = time.Parse(time.RFC3339, ts)
		return ev
	}
	runDocCase(t, docCase{
		catalog: doc,
		events: []*usage.Event{
			call(t, "context_tokens", "3000", "tool_calls", "2"),
			call(t, "context_tokens", "7000", "tool_calls", "0"),
			call(t, "context_tokens", "5000"),
			at(docEvent(t, "seat.count", "seats", "5"), "2026-10-01T00:00:00Z"),
			at(docEvent(t, "seat.count", "seats", "2"), "2026-10-20T00:00:00Z"),
			at(docEvent(t, "seat.count", "seats", "9"), "2026-10-10T00:00:00Z"),
			call(t, "taskId=t1", "steps", "1"),
			call(t, "taskId=t2", "steps", "1"),
			call(t, "taskId=t1", "steps", "1"),
			call(t, "taskId=t3"),
			docEvent(t, "agent.run.completed", "taskId=t1"),
			docEvent(t, "agent.run.completed", "taskId=t2"),
			call(t, "input_tokens", "2"),
			call(t, "input_tokens", "50"),
		},
		lines: []string{
			"peak usage 7000 7000",
			"seats usage 2 2",
			"tasks usage 2 2",
			"runs usage 2 2",
			"calls_with_tools usage 2 2",
			"thirds usage 17.333333333333333334 17.333333333333333334",
			"clamped usage 0 0",
		},
		total: "7025.333333333333333334",
	})
}

func TestDocRounding(t *testing.T) {
	cur := func(code string) money.Currency {
		c, err := money.LookupCurrency(code)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct{ amount, code, want string }{
		{"0.005", "USD", "0.01"},
		{"0.00499999", "USD", "0.00"},
		{"-0.005", "USD", "-0.01"},
		{"2.675", "USD", "2.68"},
		{"4.4444412", "USD", "4.44"},
		{"0.5", "JPY", "1"},
		{"1.2345", "KWD", "1.235"},
	} {
		if got := money.Format(money.MustParse(tc.amount), cur(tc.code)); got != tc.want {
			t.Errorf("%s %s rounds to %s, want %s", tc.amount, tc.code, got, tc.want)
		}
	}
	// The invoice total is the sum of the rounded lines.
	cat, err := catalog.Load([]byte(meters + `plans:
  - key: p
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "0.004"}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "0.004"}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := rating.NewRater(cat, cat.Plan("p"))
	st := r.NewState()
	if _, err := r.Rate(st, call(t, "input_tokens", "1", "output_tokens", "1")); err != nil {
		t.Fatal(err)
	}
	f := invoice.Round(r.Price(st), cat.Currency)
	if f.PreciseTotal.String() != "0.008" || f.Total.StringFixed(2) != "0.00" {
		t.Errorf("precise %s, total %s; want 0.008 and 0.00", f.PreciseTotal, f.Total.StringFixed(2))
	}
}

func TestDocPerDivisor(t *testing.T) {
	cat, err := catalog.Load([]byte(meters + `plans:
  - key: p
    charges:
      - {key: kib, meter: input_tokens, model: perUnit, unitPrice: "0.10", per: 1024}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Plan("p").Charges[0].Pricing.UnitRate.String(); got != "0.00009765625" {
		t.Errorf("0.10 per 1024 = %s per unit", got)
	}
}

func TestDocValidationErrors(t *testing.T) {
	_, err := catalog.Load([]byte(`currency: USD
meters:
  - {key: input_tokens}
plans:
  - key: p
    charges:
      - {key: a, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 3}
      - key: b
        meter: input_tokens
        model: graduated
        tiers: [{upTo: 10000000, unitPrice: "3.00"}, {upTo: 5000000, unitPrice: "2.50"}, {unitPrice: "2.00"}]
      - {key: c, meter: output_tokens, model: volume, packageSize: 10, tiers: [{unitPrice: "1"}]}
      - {key: d, model: percentage, rate: "2.5", of: {charges: [a, e]}}
`))
	want := "invalid catalog: " +
		"plans[0].charges[0].per: must be a power of ten (or of the form 2^a·5^b, like 1024) so prices divide exactly (got 3); " +
		"plans[0].charges[1].tiers[1].upTo: must exceed the previous tier's upTo (10000000); " +
		"plans[0].charges[2].meter: unknown meter \"output_tokens\"; " +
		"plans[0].charges[2].packageSize: does not apply to a volume charge (it takes tiers, per); " +
		"plans[0].charges[3].of.charges[1]: unknown charge \"e\" in plan \"p\""
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	_, err = catalog.Load([]byte("currency: USD\nplans:\n  - key: p\n    charge: []\n"))
	if err == nil || !strings.Contains(err.Error(), "plans[0].charge: is not a known key") {
		t.Fatalf("unknown key: %v", err)
	}
}
