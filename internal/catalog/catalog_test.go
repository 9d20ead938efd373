package catalog

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
)

func dec(s string) money.Decimal { return money.MustParse(s) }

func loadFile(t *testing.T, name string) *Catalog {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(data)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return c
}

func wantDec(t *testing.T, what string, got money.Decimal, want string) {
	t.Helper()
	if !got.Equal(dec(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func wantDecPtr(t *testing.T, what string, got *money.Decimal, want string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %s", what, want)
		return
	}
	wantDec(t, what, *got, want)
}

func wantInt(t *testing.T, what string, got *int64, want int64) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %v, want %d", what, got, want)
	}
}

func meterKeys(ms []*Meter) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Key)
	}
	return out
}

func TestLoadDesignExample(t *testing.T) {
	t.Parallel()
	c := loadFile(t, "testdata/design.yaml")
	if c.Currency.Code != "USD" || c.Currency.Minor != 2 {
		t.Errorf("currency = %+v", c.Currency)
	}
	if got := meterKeys(c.Meters); !slices.Equal(got, []string{"input_tokens", "output_tokens", "api_calls", "agent_runs", "credits"}) {
		t.Errorf("meters = %v", got)
	}
	for i, m := range c.Meters {
		if m.Index != i {
			t.Errorf("meter %s has Index %d, want %d", m.Key, m.Index, i)
		}
	}
	in := c.Meter("input_tokens")
	if in == nil || in.Aggregation != Sum || in.MetricKey != "input_tokens" {
		t.Fatalf("input_tokens meter = %+v", in)
	}
	if out := c.Meter("output_tokens"); out == nil || out.Aggregation != Sum || out.MetricKey != "output_tokens" {
		t.Errorf("output_tokens meter (no aggregation: sums, fed by its key) = %+v", out)
	}
	runs := c.Meter("agent_runs")
	if runs == nil || runs.Aggregation != Count || runs.EventType != "agent.run.completed" || runs.MetricKey != "" {
		t.Errorf("agent_runs meter = %+v", runs)
	}
	if got := meterKeys(c.CountMeters()); !slices.Equal(got, []string{"api_calls", "agent_runs"}) {
		t.Errorf("CountMeters = %v", got)
	}
	credits := c.Meter("credits")
	if credits == nil || credits.Expr == nil {
		t.Fatalf("credits meter = %+v", credits)
	}
	if !slices.Equal(credits.Expr.Metrics, []string{"input_tokens", "output_tokens"}) {
		t.Errorf("credits reads %v", credits.Expr.Metrics)
	}
	if got := meterKeys(c.MetersFedBy("input_tokens")); !slices.Equal(got, []string{"input_tokens", "credits"}) {
		t.Errorf("MetersFedBy(input_tokens) = %v", got)
	}
	if got := meterKeys(c.MetersFedBy("output_tokens")); !slices.Equal(got, []string{"output_tokens", "credits"}) {
		t.Errorf("MetersFedBy(output_tokens) = %v", got)
	}
	if got := c.MetersFedBy("cache_read_tokens"); len(got) != 0 {
		t.Errorf("MetersFedBy(cache_read_tokens) = %v", meterKeys(got))
	}
	if c.Meter("nope") != nil || c.Plan("nope") != nil {
		t.Error("lookups of unknown keys must return nil")
	}

	costs := c.CostsFor("input_tokens")
	if len(costs) != 1 {
		t.Fatalf("CostsFor(input_tokens) = %d entries", len(costs))
	}
	wantDec(t, "cost unitCost", costs[0].UnitCost, "3.00")
	wantDec(t, "cost per", costs[0].Per, "1000000")
	wantDec(t, "cost unitRate", costs[0].UnitRate, "0.000003")
	if costs[0].Meter != in || len(costs[0].Filter) != 1 || costs[0].Filter[0].Property != "model" {
		t.Errorf("cost = %+v", costs[0])
	}

	p := c.Plan("pro")
	if p == nil {
		t.Fatal("plan pro missing")
	}
	if p.Period != period.Month {
		t.Errorf("period = %q", p.Period)
	}
	wantDecPtr(t, "minimumCommitment", p.MinimumCommitment, "500")
	wantInt(t, "requestsPerMinute", p.Limits.RequestsPerMinute, 60)
	wantInt(t, "tokensPerMinute", p.Limits.TokensPerMinute, 100000)
	wantInt(t, "monthlyTokens", p.Limits.MonthlyTokens, 50000000)
	wantInt(t, "maxConcurrent", p.Limits.MaxConcurrent, 8)
	wantDecPtr(t, "monthlySpend", p.Limits.MonthlySpend, "1000.00")
	if !slices.Equal(p.Properties, []string{"model"}) {
		t.Errorf("Properties = %v", p.Properties)
	}
	var keys []string
	for i, ch := range p.Charges {
		keys = append(keys, ch.Key)
		if ch.Index != i {
			t.Errorf("charge %s has Index %d", ch.Key, ch.Index)
		}
	}
	if !slices.Equal(keys, []string{"platform", "sonnet_in", "sonnet_out", "haiku_in", "starter", "calls", "tasks", "priority"}) {
		t.Fatalf("charges = %v", keys)
	}

	platform := p.Charge("platform")
	if platform.Model != Flat || platform.Meter != nil {
		t.Errorf("platform = %+v", platform)
	}
	wantDec(t, "platform amount", platform.Pricing.Amount, "200.00")

	sin := p.Charge("sonnet_in")
	if sin.Model != Graduated || sin.Meter != in || len(sin.Pricing.Tiers) != 3 {
		t.Fatalf("sonnet_in = %+v", sin)
	}
	wantDec(t, "sonnet_in per", sin.Pricing.Per, "1000000")
	tiers := sin.Pricing.Tiers
	wantDecPtr(t, "tier 0 upTo", tiers[0].UpTo, "10000000")
	wantDecPtr(t, "tier 1 upTo", tiers[1].UpTo, "60000000")
	if tiers[2].UpTo != nil {
		t.Errorf("last tier upTo = %v, want open", tiers[2].UpTo)
	}
	wantDec(t, "tier 0 unitRate", tiers[0].UnitRate, "0.000003")
	wantDec(t, "tier 1 unitRate", tiers[1].UnitRate, "0.0000025")
	wantDec(t, "tier 2 unitRate", tiers[2].UnitRate, "0.000002")
	if !sin.Filter.Match(mapProps{"model": "claude-sonnet-4-6"}) || sin.Filter.Match(mapProps{"model": "claude-haiku-4-5"}) {
		t.Error("sonnet_in filter does not select claude-sonnet-4-6 only")
	}

	sout := p.Charge("sonnet_out")
	if sout.Model != PerUnit || sout.Meter.Key != "output_tokens" {
		t.Errorf("sonnet_out = %+v", sout)
	}
	wantDec(t, "sonnet_out unitRate", sout.Pricing.UnitRate, "0.000015")

	haiku := p.Charge("haiku_in")
	if haiku.Model != Volume || len(haiku.Pricing.Tiers) != 3 {
		t.Errorf("haiku_in = %+v", haiku)
	} else {
		wantDec(t, "haiku tier 1 flatFee", haiku.Pricing.Tiers[1].FlatFee, "5.00")
		wantDec(t, "haiku tier 2 unitRate", haiku.Pricing.Tiers[2].UnitRate, "0.0000006")
	}

	starter := p.Charge("starter")
	wantDec(t, "starter included", starter.Pricing.Included, "1000000")
	wantDec(t, "starter unitRate", starter.Pricing.UnitRate, "0.000005")
	if len(starter.Filter) != 0 {
		t.Errorf("starter filter = %v", starter.Filter)
	}

	calls := p.Charge("calls")
	if calls.Model != Package || calls.Meter.Key != "api_calls" {
		t.Errorf("calls = %+v", calls)
	}
	wantDec(t, "calls packageSize", calls.Pricing.PackageSize, "1000")
	wantDec(t, "calls packagePrice", calls.Pricing.PackagePrice, "2.00")
	wantDec(t, "calls freeUnits", calls.Pricing.FreeUnits, "0")

	tasks := p.Charge("tasks")
	wantDec(t, "tasks per (default)", tasks.Pricing.Per, "1")
	wantDec(t, "tasks unitRate", tasks.Pricing.UnitRate, "0.50")

	prio := p.Charge("priority")
	if prio.Model != Percentage || !slices.Equal(prio.OfCharges, []int{1, 2}) || prio.OfProperty != "" {
		t.Errorf("priority = %+v", prio)
	}
	wantDec(t, "priority rateFraction", prio.Pricing.RateFraction, "0.025")
	wantDecPtr(t, "priority minimum", prio.Minimum, "0.50")

	// Order: every charge once, priority after both charges it depends on.
	if len(p.Order) != len(p.Charges) {
		t.Fatalf("Order = %v", p.Order)
	}
	pos := map[int]int{}
	for i, ci := range p.Order {
		pos[ci] = i
	}
	if len(pos) != len(p.Charges) {
		t.Fatalf("Order has duplicates: %v", p.Order)
	}
	if pos[7] < pos[1] || pos[7] < pos[2] {
		t.Errorf("Order %v rates priority before its base charges", p.Order)
	}
}

// TestDesignExampleVerbatim documents that the catalog as printed in DESIGN.md uses two meters
// it does not declare; Levy reports exactly those (and nothing else).
func TestDesignExampleVerbatim(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "  - {key: output_tokens}\n  - {key: api_calls, aggregation: count}\n", "", 1)
	ps := problemsOf(t, s)
	want := []Problem{
		{"plans[0].charges[2].meter", `unknown meter "output_tokens"`},
		{"plans[0].charges[5].meter", `unknown meter "api_calls"`},
	}
	if !slices.Equal(ps, want) {
		t.Errorf("problems = %v, want %v", ps, want)
	}
}

func TestLoadJSON(t *testing.T) {
	t.Parallel()
	doc := `{
  "currency": "EUR",
  "meters": [{"key": "input_tokens"}],
  "plans": [{"key": "basic", "period": "week", "charges": [
    {"key": "in", "meter": "input_tokens", "model": "perUnit", "unitPrice": 0.30000000000000001, "per": 1000},
    {"key": "fee", "model": "flat", "amount": "9.99"}
  ]}]
}`
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Currency.Code != "EUR" {
		t.Errorf("currency = %v", c.Currency)
	}
	p := c.Plan("basic")
	if p.Period != period.Week {
		t.Errorf("period = %v", p.Period)
	}
	// A bare JSON number is read from its text, not through float64 (which would give 0.3).
	wantDec(t, "unitPrice", p.Charge("in").Pricing.UnitPrice, "0.30000000000000001")
	wantDec(t, "unitRate", p.Charge("in").Pricing.UnitRate, "0.00030000000000000001")
	wantDec(t, "amount", p.Charge("fee").Pricing.Amount, "9.99")
}

func TestYAMLNumbersAreExact(t *testing.T) {
	t.Parallel()
	doc := `
currency: USD
meters: [{key: t}]
plans:
  - key: p
    minimumCommitment: 1e3
    charges:
      - {key: fee, model: flat, amount: 200.10}
      - {key: u, meter: t, model: perUnit, unitPrice: 0.30000000000000001, per: 1024}
      - {key: big, meter: t, model: perUnit, unitPrice: 9007199254740993}
      - {key: g, meter: t, model: graduated, tiers: [{upTo: 1e7, unitPrice: 0.1}, {unitPrice: 0.000000000000000000001}]}
`
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plan("p")
	fee := c.Document.Plans[0].Charges[0].Amount
	if fee.Text != "200.10" {
		t.Errorf("amount text = %q, want the document's 200.10", fee.Text)
	}
	wantDec(t, "amount", p.Charge("fee").Pricing.Amount, "200.10")
	wantDec(t, "unitPrice", p.Charge("u").Pricing.UnitPrice, "0.30000000000000001")
	// 0.30000000000000001 / 1024 terminates: 2^-10 has ten decimal places.
	wantDec(t, "unitRate per 1024", p.Charge("u").Pricing.UnitRate, "0.0002929687500000000097656250")
	wantDec(t, "2^53+1", p.Charge("big").Pricing.UnitPrice, "9007199254740993")
	wantDecPtr(t, "minimumCommitment", p.MinimumCommitment, "1000")
	g := p.Charge("g").Pricing.Tiers
	wantDecPtr(t, "upTo 1e7", g[0].UpTo, "10000000")
	wantDec(t, "tiny unit price", g[1].UnitPrice, "0.000000000000000000001")
}

// TestPerDividesExactly checks that UnitRate = UnitPrice / per is exact for every allowed per.
func TestPerDividesExactly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ price, per, want string }{
		{"3.00", "1000000", "0.000003"},
		{"1", "1024", "0.0009765625"},
		{"7", "3125", "0.00224"},
		{"0.000001", "1000000000000", "0.000000000000000001"},
		{"15", "1", "15"},
		{"1", "2", "0.5"},
		{"3", "40", "0.075"},
	} {
		t.Run(tc.price+"/"+tc.per, func(t *testing.T) {
			t.Parallel()
			doc := fmt.Sprintf("currency: USD\nmeters: [{key: t}]\nplans: [{key: p, charges: [{key: u, meter: t, model: perUnit, unitPrice: %q, per: %s}]}]\n", tc.price, tc.per)
			c, err := Load([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			pr := c.Plans[0].Charges[0].Pricing
			wantDec(t, "unitRate", pr.UnitRate, tc.want)
			if !pr.UnitRate.Mul(dec(tc.per)).Equal(dec(tc.price)) {
				t.Errorf("unitRate %s × per %s != unitPrice %s", pr.UnitRate, tc.per, tc.price)
			}
		})
	}
}

func problemsOf(t *testing.T, doc string) []Problem {
	t.Helper()
	c, err := Load([]byte(doc))
	if err == nil {
		t.Fatalf("Load accepted an invalid document:\n%s\ncatalog: %+v", doc, c)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T (%v), want *ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("ValidationError without problems")
	}
	return ve.Problems
}

// planDoc wraps charges (YAML flow mappings, one a line) in a catalog with a few meters.
func planDoc(charges ...string) string {
	var sb strings.Builder
	sb.WriteString(`currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: runs, aggregation: count}
plans:
  - key: p
    charges:
`)
	for _, c := range charges {
		sb.WriteString("      - " + c + "\n")
	}
	return sb.String()
}

const okCharge = `{key: ok, meter: input_tokens, model: perUnit, unitPrice: "1"}`

func TestInvalidDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		path string
		msg  string
	}{
		{"empty document", "", "", "the catalog is empty"},
		{"not YAML", "currency: [", "", "not valid YAML or JSON"},
		{"wrong type", "currency: [USD]\n", "currency", "found a list where a string belongs"},
		{"unknown top-level key", "currency: USD\ncurency: USD\n", "curency", "is not a known key"},
		{"unknown charge key (strict decode)", planDoc(`{key: a, model: flat, amount: "1", amout: "2"}`), "plans[0].charges[0].amout", "is not a known key"},
		{"unknown tier key", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{upto: 5, unitPrice: "1"}, {unitPrice: "1"}]}`), "plans[0].charges[0].tiers[0].upto", "is not a known key"},
		{"missing currency", "meters: [{key: a}]\n", "currency", "is required"},
		{"unknown currency", "currency: XXX\n", "currency", `unknown ISO 4217 currency "XXX"`},
		{"lower-case currency", "currency: usd\n", "currency", `unknown ISO 4217 currency "usd"`},
		{"bad meter key", "currency: USD\nmeters: [{key: 9lives}]\n", "meters[0].key", "must be a name"},
		{"duplicate meter key", "currency: USD\nmeters: [{key: a}, {key: a}]\n", "meters[1].key", `duplicate meter key "a"`},
		{"bad aggregation", "currency: USD\nmeters: [{key: a, aggregation: avg}]\n", "meters[0].aggregation", `must be one of sum, count, max, latest, uniqueCount (got "avg")`},
		{"uniqueCount without property", "currency: USD\nmeters: [{key: u, metricKey: x, aggregation: uniqueCount}]\n", "meters[0].property", "is required for uniqueCount"},
		{"property on a sum meter", "currency: USD\nmeters: [{key: a, property: user}]\n", "meters[0].property", "only a uniqueCount meter takes a property"},
		{"derived meter with metricKey", "currency: USD\nmeters: [{key: a, metricKey: b, expression: \"b * 2\"}]\n", "meters[0].metricKey", "a derived meter takes its values from its expression"},
		{"expression syntax error", "currency: USD\nmeters: [{key: a, expression: \"input_tokens * (\"}]\n", "meters[0].expression", "does not parse"},
		{"expression yields a bool", "currency: USD\nmeters: [{key: a, expression: \"input_tokens > 1000\"}]\n", "meters[0].expression", "must compute a number, not bool"},
		{"expression yields a string", "currency: USD\nmeters: [{key: a, expression: \"properties.model\"}]\n", "meters[0].expression", "must compute a number, not string"},
		{"expression calls an unknown function", "currency: USD\nmeters: [{key: a, expression: \"sqrt(input_tokens)\"}]\n", "meters[0].expression", "does not compile"},
		{"unknown meter in costs", "currency: USD\nmeters: [{key: a}]\ncosts: [{meter: nope, unitCost: \"1\"}]\n", "costs[0].meter", `unknown meter "nope"`},
		{"cost without unitCost", "currency: USD\nmeters: [{key: a}]\ncosts: [{meter: a}]\n", "costs[0].unitCost", "is required"},
		{"cost on a max meter", "currency: USD\nmeters: [{key: a, aggregation: max}]\ncosts: [{meter: a, unitCost: \"1\"}]\n", "costs[0].meter", "costs apply to sum and count meters"},
		{"cost per 3", "currency: USD\nmeters: [{key: a}]\ncosts: [{meter: a, unitCost: \"1\", per: 3}]\n", "costs[0].per", "must be a power of ten"},
		{"bad plan key", "currency: USD\nplans: [{key: \"\"}]\n", "plans[0].key", "must be a name"},
		{"duplicate plan key", "currency: USD\nplans: [{key: p}, {key: p}]\n", "plans[1].key", `duplicate plan key "p"`},
		{"bad period", "currency: USD\nplans: [{key: p, period: quarter}]\n", "plans[0].period", "must be one of day, week, month, year"},
		{"negative minimumCommitment", "currency: USD\nplans: [{key: p, minimumCommitment: \"-1\"}]\n", "plans[0].minimumCommitment", "must not be negative (got -1)"},
		{"fractional limit", "currency: USD\nplans: [{key: p, limits: {requestsPerMinute: 1.5}}]\n", "plans[0].limits.requestsPerMinute", "must be a whole number (got 1.5)"},
		{"negative limit", "currency: USD\nplans: [{key: p, limits: {monthlySpend: \"-5\"}}]\n", "plans[0].limits.monthlySpend", "must not be negative"},
		{"duplicate charge key", planDoc(okCharge, okCharge), "plans[0].charges[1].key", `duplicate charge key "ok" (also charges[0])`},
		{"bad charge key", planDoc(`{key: "a b", model: flat, amount: "1"}`), "plans[0].charges[0].key", "must be a name"},
		{"bad model name", planDoc(`{key: a, meter: input_tokens, model: tiered}`), "plans[0].charges[0].model", `must be one of flat, perUnit, graduated, volume, package, includedQuota, percentage (got "tiered")`},
		{"unknown meter in a charge", planDoc(`{key: a, meter: nope, model: perUnit, unitPrice: "1"}`), "plans[0].charges[0].meter", `unknown meter "nope"`},
		{"usage charge without meter", planDoc(`{key: a, model: perUnit, unitPrice: "1"}`), "plans[0].charges[0].meter", "is required for a perUnit charge"},
		{"flat with a meter", planDoc(`{key: a, meter: runs, model: flat, amount: "1"}`), "plans[0].charges[0].meter", "a flat charge takes no meter"},
		{"flat with a minimum", planDoc(`{key: a, model: flat, amount: "1", minimum: "2"}`), "plans[0].charges[0]", "minimum and maximum apply to usage charges"},
		{"flat with a filter", planDoc(`{key: a, model: flat, amount: "1", filter: {model: x}}`), "plans[0].charges[0].filter", "a flat charge has no events to filter"},
		{"flat without amount", planDoc(`{key: a, model: flat}`), "plans[0].charges[0].amount", "is required"},
		{"perUnit without unitPrice", planDoc(`{key: a, meter: input_tokens, model: perUnit}`), "plans[0].charges[0].unitPrice", "is required"},
		{"graduated without tiers", planDoc(`{key: a, meter: input_tokens, model: graduated}`), "plans[0].charges[0].tiers", "needs at least one tier"},
		{"volume with empty tiers", planDoc(`{key: a, meter: input_tokens, model: volume, tiers: []}`), "plans[0].charges[0].tiers", "needs at least one tier"},
		{"package without packageSize", planDoc(`{key: a, meter: runs, model: package, packagePrice: "2"}`), "plans[0].charges[0].packageSize", "is required"},
		{"package without packagePrice", planDoc(`{key: a, meter: runs, model: package, packageSize: 10}`), "plans[0].charges[0].packagePrice", "is required"},
		{"package size 0", planDoc(`{key: a, meter: runs, model: package, packageSize: 0, packagePrice: "2"}`), "plans[0].charges[0].packageSize", "must be greater than 0"},
		{"includedQuota without included", planDoc(`{key: a, meter: input_tokens, model: includedQuota, unitPrice: "1"}`), "plans[0].charges[0].included", "is required"},
		{"includedQuota without unitPrice", planDoc(`{key: a, meter: input_tokens, model: includedQuota, included: 10}`), "plans[0].charges[0].unitPrice", "is required"},
		{"percentage without rate", planDoc(okCharge, `{key: a, model: percentage, of: {charges: [ok]}}`), "plans[0].charges[1].rate", "is required"},
		{"tiers on perUnit", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", tiers: [{unitPrice: "1"}]}`), "plans[0].charges[0].tiers", "does not apply to a perUnit charge (it takes unitPrice, per)"},
		{"per on flat", planDoc(`{key: a, model: flat, amount: "1", per: 1000}`), "plans[0].charges[0].per", "does not apply to a flat charge (it takes amount)"},
		{"unitPrice on graduated", planDoc(`{key: a, meter: input_tokens, model: graduated, unitPrice: "1", tiers: [{unitPrice: "1"}]}`), "plans[0].charges[0].unitPrice", "does not apply to a graduated charge (it takes tiers, per)"},
		{"amount on package", planDoc(`{key: a, meter: runs, model: package, packageSize: 10, packagePrice: "2", amount: "3"}`), "plans[0].charges[0].amount", "does not apply to a package charge"},
		{"per on percentage", planDoc(okCharge, `{key: a, model: percentage, rate: "1", per: 100, of: {charges: [ok]}}`), "plans[0].charges[1].per", "does not apply to a percentage charge"},
		{"fixedFee on perUnit", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", fixedFee: "0.3"}`), "plans[0].charges[0].fixedFee", "does not apply to a perUnit charge"},
		{"per 3", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", per: 3}`), "plans[0].charges[0].per", "must be a power of ten (or of the form 2^a·5^b, like 1024) so prices divide exactly (got 3)"},
		{"per 1000 and 3", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", per: 3000}`), "plans[0].charges[0].per", "must be a power of ten"},
		{"per 0", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", per: 0}`), "plans[0].charges[0].per", "must be a positive whole number (got 0)"},
		{"per fraction", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", per: 2.5}`), "plans[0].charges[0].per", "must be a positive whole number (got 2.5)"},
		{"per negative", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", per: -10}`), "plans[0].charges[0].per", "must not be negative"},
		{"negative unitPrice", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "-1"}`), "plans[0].charges[0].unitPrice", "must not be negative (got -1)"},
		{"negative amount", planDoc(`{key: a, model: flat, amount: -0.01}`), "plans[0].charges[0].amount", "must not be negative (got -0.01)"},
		{"negative tier price", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{unitPrice: "-3"}]}`), "plans[0].charges[0].tiers[0].unitPrice", "must not be negative"},
		{"negative flatFee", planDoc(`{key: a, meter: input_tokens, model: volume, tiers: [{flatFee: "-3"}]}`), "plans[0].charges[0].tiers[0].flatFee", "must not be negative"},
		{"negative packagePrice", planDoc(`{key: a, meter: runs, model: package, packageSize: 10, packagePrice: "-2"}`), "plans[0].charges[0].packagePrice", "must not be negative"},
		{"negative rate", planDoc(okCharge, `{key: a, model: percentage, rate: "-1", of: {charges: [ok]}}`), "plans[0].charges[1].rate", "must not be negative"},
		{"negative maximum", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", maximum: "-1"}`), "plans[0].charges[0].maximum", "must not be negative"},
		{"not a number", planDoc(`{key: a, model: flat, amount: abc}`), "plans[0].charges[0].amount", `must be a decimal number (got "abc")`},
		{"NaN amount", planDoc(`{key: a, model: flat, amount: .nan}`), "plans[0].charges[0].amount", "must be a decimal number"},
		{"hex amount", planDoc(`{key: a, model: flat, amount: 0x10}`), "plans[0].charges[0].amount", "must be a decimal number"},
		{"amount as a list", planDoc(`{key: a, model: flat, amount: [1]}`), "plans[0].charges[0].amount", "must be a decimal number"},
		{"minimum above maximum", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", minimum: "10", maximum: "5"}`), "plans[0].charges[0].maximum", "must not be below minimum (10)"},
		{"last tier with upTo", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{upTo: 10, unitPrice: "1"}, {upTo: 20, unitPrice: "0.5"}]}`), "plans[0].charges[0].tiers[1].upTo", "must be omitted on the last tier, which is open-ended"},
		{"single tier with upTo", planDoc(`{key: a, meter: input_tokens, model: volume, tiers: [{upTo: 10, unitPrice: "1"}]}`), "plans[0].charges[0].tiers[0].upTo", "must be omitted on the last tier"},
		{"middle tier without upTo", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{upTo: 10, unitPrice: "1"}, {unitPrice: "0.5"}, {unitPrice: "0.2"}]}`), "plans[0].charges[0].tiers[1].upTo", "is required on every tier but the last"},
		{"upTo not increasing (DESIGN's example message)", planDoc(
			`{key: a, model: flat, amount: "1"}`, okCharge,
			`{key: c, meter: input_tokens, model: graduated, tiers: [{upTo: 10000000, unitPrice: "3"}, {upTo: 10000000, unitPrice: "2"}, {unitPrice: "1"}]}`),
			"plans[0].charges[2].tiers[1].upTo", "must exceed the previous tier's upTo (10000000)"},
		{"upTo decreasing", planDoc(`{key: a, meter: input_tokens, model: volume, tiers: [{upTo: 100, unitPrice: "3"}, {upTo: 50, unitPrice: "2"}, {unitPrice: "1"}]}`), "plans[0].charges[0].tiers[1].upTo", "must exceed the previous tier's upTo (100)"},
		{"first upTo 0", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{upTo: 0, unitPrice: "3"}, {unitPrice: "1"}]}`), "plans[0].charges[0].tiers[0].upTo", "must be greater than 0"},
		{"tier without price", planDoc(`{key: a, meter: input_tokens, model: graduated, tiers: [{upTo: 10}, {unitPrice: "1"}]}`), "plans[0].charges[0].tiers[0]", "needs a unitPrice, a flatFee or both"},
		{"percentage without of", planDoc(okCharge, `{key: a, model: percentage, rate: "1"}`), "plans[0].charges[1].of", "is required: give either {property: name} or {charges: [keys]}"},
		{"percentage with both kinds of of", planDoc(okCharge, `{key: a, model: percentage, rate: "1", of: {property: amount, charges: [ok]}}`), "plans[0].charges[1].of", "give either {property: name} or {charges: [keys]}"},
		{"percentage of itself", planDoc(okCharge, `{key: a, model: percentage, rate: "1", of: {charges: [ok, a]}}`), "plans[0].charges[1].of.charges[1]", "a charge cannot be a percentage of itself"},
		{"percentage of an unknown charge", planDoc(okCharge, `{key: a, model: percentage, rate: "1", of: {charges: [nope]}}`), "plans[0].charges[1].of.charges[0]", `unknown charge "nope" in plan "p"`},
		{"percentage of a flat charge", planDoc(`{key: base, model: flat, amount: "100"}`, `{key: a, model: percentage, rate: "1", of: {charges: [base]}}`), "plans[0].charges[1].of.charges[0]", `"base" is a flat charge`},
		{"percentage cycle", planDoc(okCharge, `{key: a, model: percentage, rate: "1", of: {charges: [ok, b]}}`, `{key: b, model: percentage, rate: "1", of: {charges: [a]}}`), "plans[0].charges[1].of.charges", "percentage charges refer to each other in a cycle"},
		{"percentage with a meter", planDoc(`{key: a, meter: runs, model: percentage, rate: "1", of: {property: amount}}`), "plans[0].charges[0].meter", "a percentage charge takes no meter"},
		{"percentage of charges with a filter", planDoc(okCharge, `{key: a, model: percentage, rate: "1", of: {charges: [ok]}, filter: {model: x}}`), "plans[0].charges[1].filter", "a percentage of other charges takes no filter"},
		{"min above max per transaction", planDoc(`{key: a, model: percentage, rate: "1", of: {property: amount}, minPerTransaction: "5", maxPerTransaction: "1"}`), "plans[0].charges[0].maxPerTransaction", "must not be below minPerTransaction (5)"},
		{"eventType on a usage charge", planDoc(`{key: a, meter: input_tokens, eventType: x, model: perUnit, unitPrice: "1"}`), "plans[0].charges[0].eventType", "only a percentage charge takes eventType"},
		{"filter with in and notIn", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: {in: [a], notIn: [b]}}}`), "plans[0].charges[0].filter.model", "give either values (in) or notIn, not both"},
		{"filter without values", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: []}}`), "plans[0].charges[0].filter.model", "needs at least one value"},
		{"priceBy without prices", planDoc(`{key: a, meter: input_tokens, model: perUnit, unitPrice: "1", priceBy: model}`), "plans[0].charges[0].prices", `is required with priceBy: one entry per value of "model"`},
		{"prices without priceBy", planDoc(`{key: a, meter: input_tokens, model: perUnit, prices: {x: {unitPrice: "1"}}}`), "plans[0].charges[0].priceBy", "is required when prices or defaultPrice is given"},
		{"defaultPrice without priceBy", planDoc(`{key: a, meter: input_tokens, model: perUnit, defaultPrice: {unitPrice: "1"}}`), "plans[0].charges[0].priceBy", "is required when prices or defaultPrice is given"},
		{"price entry missing its price", planDoc(`{key: a, meter: input_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {opus: {per: 1000}}}`), "plans[0].charges[0].prices.opus.unitPrice", "is required"},
		{"price entry with a foreign field", planDoc(`{key: a, meter: input_tokens, model: perUnit, priceBy: model, prices: {opus: {unitPrice: "1", packageSize: 3}}}`), "plans[0].charges[0].prices.opus.packageSize", "does not apply to a perUnit charge"},
		{"price entry per 3", planDoc(`{key: a, meter: input_tokens, model: perUnit, priceBy: model, prices: {opus: {unitPrice: "1", per: 3}}}`), "plans[0].charges[0].prices.opus.per", "must be a power of ten"},
		{"price entry bad tiers", planDoc(`{key: a, meter: input_tokens, model: graduated, priceBy: model, prices: {opus: {tiers: [{upTo: 5, unitPrice: "1"}]}}}`), "plans[0].charges[0].prices.opus.tiers[0].upTo", "must be omitted on the last tier"},
		{"flat with a price table", planDoc(`{key: a, model: flat, amount: "1", priceBy: model, prices: {x: {amount: "2"}}}`), "plans[0].charges[0].priceBy", "a flat charge has no price table"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ps := problemsOf(t, tc.doc)
			for _, p := range ps {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Errorf("no problem at %q containing %q; got:\n%s", tc.path, tc.msg, formatProblems(ps))
		})
	}
}

func formatProblems(ps []Problem) string {
	var sb strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&sb, "  %s\n", p)
	}
	return sb.String()
}

// TestAllProblemsAtOnce checks that one document's problems in every section are reported
// together, each with its path, and that the error text lists them all.
func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	doc := `
currency: XXX
meters:
  - {key: a}
  - {key: a}
  - {key: u, metricKey: x, aggregation: uniqueCount}
  - {key: d, expression: "a > 1"}
costs:
  - {meter: nope, unitCost: "1"}
plans:
  - key: p
    period: fortnight
    charges:
      - {key: f, model: flat, amount: "200.00"}
      - {key: g, meter: a, model: graduated, per: 3, tiers: [{upTo: 10, unitPrice: "1"}, {upTo: 5, unitPrice: "2"}, {upTo: 20, unitPrice: "-1"}]}
      - {key: g, meter: a, model: perUnit}
      - {key: pct, model: percentage, rate: "1", of: {charges: [f, pct, missing]}}
  - key: p
`
	ps := problemsOf(t, doc)
	want := []Problem{
		{"currency", `unknown ISO 4217 currency "XXX"`},
		{"meters[1].key", `duplicate meter key "a"`},
		{"meters[2].property", "is required for uniqueCount (the property whose distinct values are counted)"},
		{"meters[3].expression", "must compute a number, not bool"},
		{"costs[0].meter", `unknown meter "nope"`},
		{"plans[0].period", `must be one of day, week, month, year (got "fortnight")`},
		{"plans[0].charges[1].per", "must be a power of ten (or of the form 2^a·5^b, like 1024) so prices divide exactly (got 3)"},
		{"plans[0].charges[1].tiers[1].upTo", "must exceed the previous tier's upTo (10)"},
		{"plans[0].charges[1].tiers[2].unitPrice", "must not be negative (got -1)"},
		{"plans[0].charges[1].tiers[2].upTo", "must be omitted on the last tier, which is open-ended"},
		{"plans[0].charges[2].unitPrice", "is required"},
		{"plans[0].charges[2].key", `duplicate charge key "g" (also charges[1])`},
		{"plans[0].charges[3].of.charges[0]", `"f" is a flat charge; a percentage applies to usage charges (raise the flat amount instead)`},
		{"plans[0].charges[3].of.charges[1]", "a charge cannot be a percentage of itself"},
		{"plans[0].charges[3].of.charges[2]", `unknown charge "missing" in plan "p"`},
		{"plans[1].key", `duplicate plan key "p"`},
	}
	for _, w := range want {
		if !slices.Contains(ps, w) {
			t.Errorf("missing problem %s", w)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(ps), len(want), formatProblems(ps))
	}
	_, err := Load([]byte(doc))
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid catalog: ") {
		t.Errorf("error text %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w.String()) {
			t.Errorf("error text lacks %q", w.String())
		}
	}
}

type mapProps map[string]string

func (m mapProps) Get(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

func TestFilters(t *testing.T) {
	t.Parallel()
	doc := planDoc(
		`{key: single, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: claude-sonnet-4-6}}`,
		`{key: list, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: [a, b]}}`,
		`{key: notin, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: {notIn: [a, b]}}}`,
		`{key: in, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: {in: [a]}}}`,
		`{key: two, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: a, region: [eu, us]}}`,
		`{key: number, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {tier: 2}}`,
		`{key: empty, meter: input_tokens, model: perUnit, unitPrice: "1", filter: {model: ""}}`,
	)
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plan("p")
	tests := []struct {
		charge string
		props  mapProps
		want   bool
	}{
		{"single", mapProps{"model": "claude-sonnet-4-6"}, true},
		{"single", mapProps{"model": "claude-sonnet-4-6 "}, false},
		{"single", mapProps{"model": "Claude-Sonnet-4-6"}, false},
		{"single", mapProps{}, false},
		{"list", mapProps{"model": "a"}, true},
		{"list", mapProps{"model": "b"}, true},
		{"list", mapProps{"model": "c"}, false},
		{"notin", mapProps{"model": "a"}, false},
		{"notin", mapProps{"model": "c"}, true},
		{"notin", mapProps{}, true}, // an absent property reads "" which is not in [a, b]
		{"in", mapProps{"model": "a"}, true},
		{"in", mapProps{"model": "b"}, false},
		{"two", mapProps{"model": "a", "region": "eu"}, true},
		{"two", mapProps{"model": "a", "region": "apac"}, false},
		{"two", mapProps{"model": "b", "region": "eu"}, false},
		{"number", mapProps{"tier": "2"}, true},
		{"number", mapProps{"tier": "2.0"}, false},
		{"empty", mapProps{}, true},
		{"empty", mapProps{"model": ""}, true},
		{"empty", mapProps{"model": "a"}, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.charge, map[string]string(tc.props)), func(t *testing.T) {
			t.Parallel()
			if got := p.Charge(tc.charge).Filter.Match(tc.props); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	var none Filter
	if !none.Match(mapProps{}) {
		t.Error("the empty filter must match everything")
	}
	if !slices.Equal(p.Properties, []string{"model", "region", "tier"}) {
		t.Errorf("Properties = %v", p.Properties)
	}
}

func TestPriceTables(t *testing.T) {
	t.Parallel()
	doc := planDoc(
		// No own price and no default: values missing from the table are not priced.
		`{key: table, meter: input_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {claude-opus-4: {unitPrice: "15"}, claude-haiku-4-5: {unitPrice: "1", per: 1000}}}`,
		// defaultPrice prices the rest and inherits per from the charge.
		`{key: withdefault, meter: input_tokens, model: perUnit, per: 1000000, priceBy: model, prices: {a: {unitPrice: "15"}}, defaultPrice: {unitPrice: "3"}}`,
		// The charge's own complete price is the fallback.
		`{key: withown, meter: input_tokens, model: includedQuota, included: 100, unitPrice: "2", priceBy: model, prices: {a: {included: 500}}}`,
		`{key: tiered, meter: input_tokens, model: graduated, priceBy: model, prices: {a: {tiers: [{upTo: 10, unitPrice: "2"}, {unitPrice: "1"}]}}}`,
	)
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plan("p")
	table := p.Charge("table")
	if table.PriceBy != "model" || table.Pricing != nil {
		t.Errorf("table: PriceBy %q Pricing %+v", table.PriceBy, table.Pricing)
	}
	wantDec(t, "opus rate", table.PricingFor("claude-opus-4").UnitRate, "0.000015")
	wantDec(t, "haiku rate (own per)", table.PricingFor("claude-haiku-4-5").UnitRate, "0.001")
	if table.PricingFor("claude-sonnet-4-6") != nil || table.PricingFor("") != nil {
		t.Error("a value missing from a table without default must have no pricing")
	}
	wd := p.Charge("withdefault")
	wantDec(t, "a rate", wd.PricingFor("a").UnitRate, "0.000015")
	wantDec(t, "default rate", wd.PricingFor("zzz").UnitRate, "0.000003")
	wo := p.Charge("withown")
	wantDec(t, "entry included", wo.PricingFor("a").Included, "500")
	wantDec(t, "entry inherits unitPrice", wo.PricingFor("a").UnitPrice, "2")
	wantDec(t, "own included", wo.PricingFor("b").Included, "100")
	if ti := p.Charge("tiered"); len(ti.PricingFor("a").Tiers) != 2 || ti.PricingFor("b") != nil {
		t.Errorf("tiered table = %+v", ti.Prices)
	}
}

func TestUniqueCountAndMetricKeyMeters(t *testing.T) {
	t.Parallel()
	doc := `
currency: USD
meters:
  - {key: users, metricKey: requests, aggregation: uniqueCount, property: userId}
  - {key: peak, metricKey: concurrency, aggregation: max}
  - {key: seats, aggregation: latest}
  - {key: in_alias, metricKey: input_tokens}
  - {key: requests_counted, metricKey: requests, aggregation: count}
`
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Meter("users"); m.Aggregation != UniqueCount || m.Property != "userId" || m.MetricKey != "requests" {
		t.Errorf("users = %+v", m)
	}
	if got := meterKeys(c.MetersFedBy("requests")); !slices.Equal(got, []string{"users", "requests_counted"}) {
		t.Errorf("MetersFedBy(requests) = %v", got)
	}
	if got := meterKeys(c.MetersFedBy("concurrency")); !slices.Equal(got, []string{"peak"}) {
		t.Errorf("MetersFedBy(concurrency) = %v", got)
	}
	if got := meterKeys(c.MetersFedBy("seats")); !slices.Equal(got, []string{"seats"}) {
		t.Errorf("MetersFedBy(seats) = %v", got)
	}
	if got := meterKeys(c.MetersFedBy("input_tokens")); !slices.Equal(got, []string{"in_alias"}) {
		t.Errorf("MetersFedBy(input_tokens) = %v", got)
	}
	if got := c.CountMeters(); len(got) != 0 {
		t.Errorf("a count meter with a metricKey counts measurements, not events: CountMeters = %v", meterKeys(got))
	}
}

// TestPercentageOrder checks that a chain of percentages is ordered by dependency whatever the
// document order.
func TestPercentageOrder(t *testing.T) {
	t.Parallel()
	doc := planDoc(
		`{key: tax, model: percentage, rate: "20", of: {charges: [fee, usage]}}`,
		`{key: fee, model: percentage, rate: "3", of: {charges: [usage]}}`,
		`{key: usage, meter: input_tokens, model: perUnit, unitPrice: "1"}`,
		`{key: card, model: percentage, rate: "2.9", fixedFee: "0.30", of: {property: amount}, eventType: payment}`,
	)
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plan("p")
	pos := map[int]int{}
	for i, ci := range p.Order {
		pos[ci] = i
	}
	if len(pos) != 4 || pos[2] > pos[1] || pos[1] > pos[0] {
		t.Errorf("Order = %v, want usage before fee before tax", p.Order)
	}
	card := p.Charge("card")
	if card.OfProperty != "amount" || card.EventType != "payment" {
		t.Errorf("card = %+v", card)
	}
	wantDec(t, "card fixedFee", card.Pricing.FixedFee, "0.30")
	wantDec(t, "card rateFraction", card.Pricing.RateFraction, "0.029")
	if !slices.Contains(p.Properties, "amount") {
		t.Errorf("Properties %v lacks the percentage's property", p.Properties)
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	c := loadFile(t, "testdata/design.yaml")
	// Dec marshals back as a string; the document's filter values marshal compactly.
	b, err := c.Document.Plans[0].Charges[1].Filter["model"].MarshalJSON()
	if err != nil || string(b) != `"claude-sonnet-4-6"` {
		t.Errorf("filter MarshalJSON = %s, %v", b, err)
	}
	b, err = c.Document.Plans[0].Charges[0].Amount.MarshalJSON()
	if err != nil || string(b) != `"200"` {
		t.Errorf("Dec MarshalJSON = %s, %v", b, err)
	}
	nin := FilterValue{NotIn: []string{"a"}}
	b, err = nin.MarshalJSON()
	if err != nil || string(b) != `{"notIn":["a"]}` {
		t.Errorf("notIn MarshalJSON = %s, %v", b, err)
	}
	if d := D("1.50"); d.Err != nil || !d.Value.Equal(dec("1.5")) {
		t.Errorf("D = %+v", d)
	}
	if d := D("x"); d.Err == nil {
		t.Error("D(x) has no error")
	}
}
