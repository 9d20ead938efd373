package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLoadLadderAndGuard(t *testing.T) {
	t.Parallel()
	c := loadFile(t, "testdata/ladder.yaml")
	tr := c.Tiers
	if tr == nil {
		t.Fatal("Tiers = nil")
	}
	if tr.Basis != PeriodSpend {
		t.Errorf("Basis = %q", tr.Basis)
	}
	var keys []string
	for i, st := range tr.Ladder {
		keys = append(keys, st.Key)
		if st.Index != i {
			t.Errorf("tier %s has Index %d, want %d", st.Key, st.Index, i)
		}
		if tr.Tier(st.Key) != st {
			t.Errorf("Tier(%q) does not return the ladder's tier", st.Key)
		}
	}
	if !slices.Equal(keys, []string{"free", "build", "scale", "enterprise"}) {
		t.Fatalf("ladder = %v", keys)
	}
	if tr.Tier("nope") != nil || tr.Tier("") != nil {
		t.Error("Tier of an unknown key must be nil")
	}
	if tr.Base() != tr.Ladder[0] {
		t.Errorf("Base = %+v, want free", tr.Base())
	}

	free, build, scale, ent := tr.Ladder[0], tr.Ladder[1], tr.Ladder[2], tr.Ladder[3]
	wantDecPtr(t, "free threshold", free.Threshold, "0")
	if free.Manual || free.LimitMultiplier != nil || !free.Discount.IsZero() || free.Limits != (Limits{}) {
		t.Errorf("free = %+v", free)
	}
	wantDecPtr(t, "build threshold", build.Threshold, "5.00")
	if build.Name != "Build" {
		t.Errorf("build name = %q", build.Name)
	}
	wantInt(t, "build requestsPerMinute", build.Limits.RequestsPerMinute, 120)
	wantDecPtr(t, "build monthlySpend", build.Limits.MonthlySpend, "500.00")
	if build.Limits.TokensPerMinute != nil || build.Limits.MonthlyTokens != nil || build.Limits.MaxConcurrent != nil {
		t.Errorf("build sets limits it does not declare: %+v", build.Limits)
	}
	wantDecPtr(t, "scale threshold", scale.Threshold, "50")
	wantDecPtr(t, "scale limitMultiplier", scale.LimitMultiplier, "4")
	wantDec(t, "scale discount", scale.Discount, "5")
	wantDec(t, "scale discount fraction", scale.DiscountFraction, "0.05")
	if !ent.Manual || ent.Threshold != nil {
		t.Errorf("enterprise: Manual %v Threshold %v", ent.Manual, ent.Threshold)
	}
	wantInt(t, "enterprise requestsPerMinute", ent.Limits.RequestsPerMinute, 10000)

	if len(c.MarginGuard) != 3 {
		t.Fatalf("MarginGuard has %d rules", len(c.MarginGuard))
	}
	runaway, ratio, margin := c.MarginGuard[0], c.MarginGuard[1], c.MarginGuard[2]
	for i, r := range c.MarginGuard {
		if r.Index != i {
			t.Errorf("rule %s has Index %d", r.Key, r.Index)
		}
	}
	if runaway.Key != "runaway_task" || runaway.Scope != GuardTask || runaway.MaxCostToPrice != nil || runaway.CoolDown != 10*time.Minute {
		t.Errorf("runaway_task = %+v", runaway)
	}
	wantDecPtr(t, "runaway maxCost", runaway.MaxCost, "5.00")
	if ratio.Key != "task_ratio" || ratio.Scope != GuardTask || ratio.MaxCost != nil || ratio.CoolDown != 10*time.Minute {
		t.Errorf("task_ratio = %+v", ratio)
	}
	wantDecPtr(t, "ratio maxCostToPrice", ratio.MaxCostToPrice, "1.5")
	wantDec(t, "ratio minCost", ratio.MinCost, "0.50")
	if margin.Key != "customer_margin" || margin.Scope != GuardCustomer || margin.CoolDown != time.Hour || margin.MaxCost != nil || margin.MaxCostToPrice != nil {
		t.Errorf("customer_margin = %+v", margin)
	}
	wantDec(t, "minMargin", margin.MinMargin, "20")
	wantDec(t, "afterSpend", margin.AfterSpend, "100.00")
}

func TestLadderDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load([]byte(`currency: USD
tiers:
  ladder:
    - {key: vip, manual: true}
    - {key: free, threshold: 0}
    - {key: vip2, manual: true, discount: "10"}
    - {key: big, threshold: 1e3}
marginGuard:
  - {key: ratio, scope: task, maxCostToPrice: 2}
  - {key: slow, scope: customer, minMargin: 0, afterSpend: 0, coolDown: 1h30m}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tiers.Basis != PeriodSpend {
		t.Errorf("default basis = %q, want periodSpend", c.Tiers.Basis)
	}
	if b := c.Tiers.Base(); b == nil || b.Key != "free" || b.Index != 1 {
		t.Errorf("Base = %+v, want free (the first tier that is not manual)", b)
	}
	wantDecPtr(t, "big threshold (1e3)", c.Tiers.Tier("big").Threshold, "1000")
	wantDec(t, "vip2 discount fraction", c.Tiers.Tier("vip2").DiscountFraction, "0.1")
	if r := c.MarginGuard[0]; r.CoolDown != DefaultCoolDown || DefaultCoolDown != 15*time.Minute || !r.MinCost.IsZero() {
		t.Errorf("ratio rule = %+v, want coolDown 15m and minCost 0", r)
	}
	if r := c.MarginGuard[1]; r.CoolDown != 90*time.Minute {
		t.Errorf("coolDown 1h30m = %v", r.CoolDown)
	}

	c, err = Load([]byte("currency: USD\ntiers: {basis: lifetimeSpend, ladder: [{key: free, threshold: \"0\"}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tiers.Basis != LifetimeSpend {
		t.Errorf("basis = %q", c.Tiers.Basis)
	}

	c, err = Load([]byte("currency: USD\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tiers != nil || c.MarginGuard != nil {
		t.Errorf("a catalog without tiers or marginGuard has Tiers %+v, MarginGuard %v", c.Tiers, c.MarginGuard)
	}
	if c.Tiers.Tier("free") != nil || c.Tiers.Base() != nil {
		t.Error("lookups on a nil ladder must return nil")
	}
}

// tiersDoc wraps ladder entries (YAML flow mappings, one a line) in a catalog.
func tiersDoc(ladder ...string) string {
	var sb strings.Builder
	sb.WriteString("currency: USD\ntiers:\n  ladder:\n")
	for _, l := range ladder {
		sb.WriteString("    - " + l + "\n")
	}
	return sb.String()
}

// guardDoc wraps margin-guard rules (YAML flow mappings, one a line) in a catalog.
func guardDoc(rules ...string) string {
	var sb strings.Builder
	sb.WriteString("currency: USD\nmarginGuard:\n")
	for _, r := range rules {
		sb.WriteString("  - " + r + "\n")
	}
	return sb.String()
}

const freeTier = `{key: free, threshold: "0"}`

func TestInvalidTiersAndGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		path string
		msg  string
	}{
		// tiers
		{"bad basis", "currency: USD\ntiers: {basis: monthly, ladder: [" + freeTier + "]}\n", "tiers.basis", `must be periodSpend or lifetimeSpend (got "monthly")`},
		{"no ladder", "currency: USD\ntiers: {basis: periodSpend}\n", "tiers.ladder", "needs at least one tier"},
		{"empty ladder", "currency: USD\ntiers: {ladder: []}\n", "tiers.ladder", "needs at least one tier"},
		{"ladder of manual tiers only", tiersDoc(`{key: ent, manual: true}`), "tiers.ladder", `needs a tier that is not manual, with threshold "0", where every customer starts`},
		{"bad tier key", tiersDoc(`{key: 9lives, threshold: "0"}`), "tiers.ladder[0].key", `must be a name of letters, digits, _ . : - starting with a letter or _ (got "9lives")`},
		{"missing tier key", tiersDoc(`{threshold: "0"}`), "tiers.ladder[0].key", `must be a name of letters, digits, _ . : - starting with a letter or _ (got "")`},
		{"duplicate tier key", tiersDoc(freeTier, `{key: free, threshold: "5"}`), "tiers.ladder[1].key", `duplicate tier key "free" (also ladder[0])`},
		{"first threshold not 0", tiersDoc(`{key: free, threshold: "1.00"}`), "tiers.ladder[0].threshold", "must be 0 on the first tier that is not manual, where every customer starts (got 1.00)"},
		{"first threshold after a manual tier not 0", tiersDoc(`{key: ent, manual: true}`, `{key: free, threshold: 2}`), "tiers.ladder[1].threshold", "must be 0 on the first tier that is not manual, where every customer starts (got 2)"},
		{"first threshold missing", tiersDoc(`{key: free}`), "tiers.ladder[0].threshold", `is required: "0" on the first tier that is not manual, where every customer starts`},
		{"later threshold missing", tiersDoc(freeTier, `{key: build}`), "tiers.ladder[1].threshold", "is required on a tier that is not manual (the basis spend, inclusive, that promotes to it)"},
		{"threshold equal to the previous", tiersDoc(freeTier, `{key: build, threshold: "5.00"}`, `{key: scale, threshold: "5"}`), "tiers.ladder[2].threshold", "must exceed the previous tier's threshold (5.00)"},
		{"threshold below the previous", tiersDoc(freeTier, `{key: build, threshold: "5.00"}`, `{key: scale, threshold: "4.99"}`), "tiers.ladder[2].threshold", "must exceed the previous tier's threshold (5.00)"},
		{"threshold below one before a manual tier", tiersDoc(freeTier, `{key: build, threshold: "5.00"}`, `{key: ent, manual: true}`, `{key: scale, threshold: "4"}`), "tiers.ladder[3].threshold", "must exceed the previous tier's threshold (5.00)"},
		{"manual tier with a threshold", tiersDoc(freeTier, `{key: ent, manual: true, threshold: "100"}`), "tiers.ladder[1].threshold", "a manual tier has no threshold: only a per-customer override reaches it"},
		{"negative threshold", tiersDoc(freeTier, `{key: build, threshold: "-1"}`), "tiers.ladder[1].threshold", "must not be negative (got -1)"},
		{"threshold not a number", tiersDoc(freeTier, `{key: build, threshold: five}`), "tiers.ladder[1].threshold", `must be a decimal number (got "five")`},
		{"discount of 100", tiersDoc(`{key: free, threshold: "0", discount: "100"}`), "tiers.ladder[0].discount", "must be below 100 (a percent off; got 100)"},
		{"negative discount", tiersDoc(`{key: free, threshold: "0", discount: "-5"}`), "tiers.ladder[0].discount", "must not be negative (got -5)"},
		{"limitMultiplier 0", tiersDoc(`{key: free, threshold: "0", limitMultiplier: 0}`), "tiers.ladder[0].limitMultiplier", "must be greater than 0 (got 0)"},
		{"negative limitMultiplier", tiersDoc(`{key: free, threshold: "0", limitMultiplier: "-2"}`), "tiers.ladder[0].limitMultiplier", "must be greater than 0 (got -2)"},
		{"limitMultiplier not a number", tiersDoc(`{key: free, threshold: "0", limitMultiplier: x4}`), "tiers.ladder[0].limitMultiplier", `must be a decimal number (got "x4")`},
		{"fractional tier limit", tiersDoc(`{key: free, threshold: "0", limits: {requestsPerMinute: 1.5}}`), "tiers.ladder[0].limits.requestsPerMinute", "must be a whole number (got 1.5)"},
		{"negative tier spend limit", tiersDoc(`{key: free, threshold: "0", limits: {monthlySpend: "-1"}}`), "tiers.ladder[0].limits.monthlySpend", "must not be negative (got -1)"},
		{"unknown tier key", tiersDoc(`{key: free, treshold: "0"}`), "tiers.ladder[0].treshold", "is not a known key"},
		{"unknown tiers key", "currency: USD\ntiers: {ladders: [" + freeTier + "]}\n", "tiers.ladders", "is not a known key"},
		{"unknown tier limit", tiersDoc(`{key: free, threshold: "0", limits: {rpm: 5}}`), "tiers.ladder[0].limits.rpm", "is not a known key"},
		{"manual not a bool", tiersDoc(freeTier, `{key: ent, manual: maybe}`), "tiers.ladder[1].manual", "found a string where true or false belongs"},
		{"ladder not a list", "currency: USD\ntiers:\n  basis: periodSpend\n  ladder: {key: free}\n", "tiers.ladder", "found an object where a list belongs"},
		{"tiers a list", "currency: USD\ntiers: [" + freeTier + "]\n", "tiers", "found a list where tiers belongs"},

		// marginGuard
		{"guard key missing", guardDoc(`{scope: task, maxCost: "1"}`), "marginGuard[0].key", `must be a name of letters, digits, _ . : - starting with a letter or _ (got "")`},
		{"duplicate guard key", guardDoc(`{key: a, scope: task, maxCost: "1"}`, `{key: a, scope: task, maxCost: "2"}`), "marginGuard[1].key", `duplicate guard rule key "a" (also marginGuard[0])`},
		{"scope missing", guardDoc(`{key: a, maxCost: "1"}`), "marginGuard[0].scope", "is required: task or customer"},
		{"unknown scope", guardDoc(`{key: a, scope: tenant, maxCost: "1"}`), "marginGuard[0].scope", `must be task or customer (got "tenant")`},
		{"task rule without a limit", guardDoc(`{key: a, scope: task, coolDown: 10m}`), "marginGuard[0]", "a task rule needs maxCost, maxCostToPrice or both"},
		{"maxCost 0", guardDoc(`{key: a, scope: task, maxCost: "0"}`), "marginGuard[0].maxCost", "must be greater than 0 (got 0)"},
		{"maxCost not a number", guardDoc(`{key: a, scope: task, maxCost: abc}`), "marginGuard[0].maxCost", `must be a decimal number (got "abc")`},
		{"negative maxCostToPrice", guardDoc(`{key: a, scope: task, maxCostToPrice: "-1.5"}`), "marginGuard[0].maxCostToPrice", "must be greater than 0 (got -1.5)"},
		{"minCost without a ratio", guardDoc(`{key: a, scope: task, maxCost: "5", minCost: "1"}`), "marginGuard[0].minCost", "applies to a ratio rule (with maxCostToPrice) only"},
		{"negative minCost", guardDoc(`{key: a, scope: task, maxCostToPrice: "2", minCost: "-1"}`), "marginGuard[0].minCost", "must not be negative (got -1)"},
		{"minMargin on a task rule", guardDoc(`{key: a, scope: task, maxCost: "5", minMargin: "20"}`), "marginGuard[0].minMargin", "applies to customer rules only"},
		{"afterSpend on a task rule", guardDoc(`{key: a, scope: task, maxCost: "5", afterSpend: "20"}`), "marginGuard[0].afterSpend", "applies to customer rules only"},
		{"customer rule without minMargin", guardDoc(`{key: a, scope: customer, afterSpend: "100"}`), "marginGuard[0].minMargin", "is required for a customer rule (the lowest margin allowed, in percent)"},
		{"customer rule without afterSpend", guardDoc(`{key: a, scope: customer, minMargin: "20"}`), "marginGuard[0].afterSpend", "is required for a customer rule (the period spend from which the margin is checked)"},
		{"maxCost on a customer rule", guardDoc(`{key: a, scope: customer, minMargin: "20", afterSpend: "1", maxCost: "5"}`), "marginGuard[0].maxCost", "applies to task rules only"},
		{"maxCostToPrice on a customer rule", guardDoc(`{key: a, scope: customer, minMargin: "20", afterSpend: "1", maxCostToPrice: "5"}`), "marginGuard[0].maxCostToPrice", "applies to task rules only"},
		{"minCost on a customer rule", guardDoc(`{key: a, scope: customer, minMargin: "20", afterSpend: "1", minCost: "5"}`), "marginGuard[0].minCost", "applies to task rules only"},
		{"minMargin of 100", guardDoc(`{key: a, scope: customer, minMargin: "100", afterSpend: "1"}`), "marginGuard[0].minMargin", "must be below 100 (a margin in percent; got 100)"},
		{"negative minMargin", guardDoc(`{key: a, scope: customer, minMargin: "-5", afterSpend: "1"}`), "marginGuard[0].minMargin", "must not be negative (got -5)"},
		{"negative afterSpend", guardDoc(`{key: a, scope: customer, minMargin: "5", afterSpend: "-1"}`), "marginGuard[0].afterSpend", "must not be negative (got -1)"},
		{"coolDown not a duration", guardDoc(`{key: a, scope: task, maxCost: "1", coolDown: ten minutes}`), "marginGuard[0].coolDown", `must be a duration such as 90s, 10m or 1h30m (got "ten minutes")`},
		{"coolDown without a unit", guardDoc(`{key: a, scope: task, maxCost: "1", coolDown: 600}`), "marginGuard[0].coolDown", `must be a duration such as 90s, 10m or 1h30m (got "600")`},
		{"coolDown 0", guardDoc(`{key: a, scope: task, maxCost: "1", coolDown: 0s}`), "marginGuard[0].coolDown", `must be greater than 0 (got "0s")`},
		{"negative coolDown", guardDoc(`{key: a, scope: task, maxCost: "1", coolDown: -1m}`), "marginGuard[0].coolDown", `must be greater than 0 (got "-1m")`},
		{"unknown guard key", guardDoc(`{key: a, scope: task, maxcost: "1"}`), "marginGuard[0].maxcost", "is not a known key"},
		{"marginGuard not a list", "currency: USD\nmarginGuard: {key: a}\n", "marginGuard", "found an object where a list belongs"},
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
			if !slices.Contains(ps, Problem{Path: tc.path, Message: tc.msg}) {
				t.Errorf("no problem %s: %s; got:\n%s", tc.path, tc.msg, formatProblems(ps))
			}
		})
	}
}

// TestLadderAndGuardProblemsAtOnce checks that the ladder's and the guard's problems are
// reported together with the rest of the document's, and nothing else.
func TestLadderAndGuardProblemsAtOnce(t *testing.T) {
	t.Parallel()
	doc := `
currency: USD
plans:
  - {key: p, period: fortnight}
tiers:
  basis: forever
  ladder:
    - {key: free, threshold: "1"}
    - {key: build, threshold: "5.00", discount: "100"}
    - {key: build, threshold: "5", limitMultiplier: "0"}
    - {key: ent, manual: true, threshold: "9"}
marginGuard:
  - {key: a, scope: task}
  - {key: a, scope: customer, minMargin: "20", coolDown: soon}
`
	ps := problemsOf(t, doc)
	want := []Problem{
		{"plans[0].period", `must be one of day, week, month, year (got "fortnight")`},
		{"tiers.basis", `must be periodSpend or lifetimeSpend (got "forever")`},
		{"tiers.ladder[0].threshold", "must be 0 on the first tier that is not manual, where every customer starts (got 1)"},
		{"tiers.ladder[1].discount", "must be below 100 (a percent off; got 100)"},
		{"tiers.ladder[2].key", `duplicate tier key "build" (also ladder[1])`},
		{"tiers.ladder[2].threshold", "must exceed the previous tier's threshold (5.00)"},
		{"tiers.ladder[2].limitMultiplier", "must be greater than 0 (got 0)"},
		{"tiers.ladder[3].threshold", "a manual tier has no threshold: only a per-customer override reaches it"},
		{"marginGuard[0]", "a task rule needs maxCost, maxCostToPrice or both"},
		{"marginGuard[1].key", `duplicate guard rule key "a" (also marginGuard[0])`},
		{"marginGuard[1].afterSpend", "is required for a customer rule (the period spend from which the margin is checked)"},
		{"marginGuard[1].coolDown", `must be a duration such as 90s, 10m or 1h30m (got "soon")`},
	}
	if !slices.Equal(ps, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", formatProblems(ps), formatProblems(want))
	}
}

// describeLadderAndGuard prints the compiled ladder and guard rules in one canonical text, so
// two catalogs can be compared field by field.
func describeLadderAndGuard(c *Catalog) string {
	var sb strings.Builder
	dp := func(name string, v fmt.Stringer) {
		if v != nil {
			fmt.Fprintf(&sb, " %s=%s", name, v)
		}
	}
	ip := func(name string, v *int64) {
		if v != nil {
			fmt.Fprintf(&sb, " %s=%d", name, *v)
		}
	}
	if c.Tiers != nil {
		fmt.Fprintf(&sb, "basis %s\n", c.Tiers.Basis)
		for _, st := range c.Tiers.Ladder {
			fmt.Fprintf(&sb, "tier %d %s %q manual=%v discount=%s", st.Index, st.Key, st.Name, st.Manual, st.Discount)
			if st.Threshold != nil {
				dp("threshold", st.Threshold)
			}
			if st.LimitMultiplier != nil {
				dp("mult", st.LimitMultiplier)
			}
			l := st.Limits
			ip("rpm", l.RequestsPerMinute)
			ip("tpm", l.TokensPerMinute)
			ip("mt", l.MonthlyTokens)
			ip("mc", l.MaxConcurrent)
			if l.MonthlySpend != nil {
				dp("ms", l.MonthlySpend)
			}
			sb.WriteString("\n")
		}
	}
	for _, r := range c.MarginGuard {
		fmt.Fprintf(&sb, "rule %d %s %s minCost=%s minMargin=%s afterSpend=%s coolDown=%s", r.Index, r.Key, r.Scope, r.MinCost, r.MinMargin, r.AfterSpend, r.CoolDown)
		if r.MaxCost != nil {
			dp("maxCost", r.MaxCost)
		}
		if r.MaxCostToPrice != nil {
			dp("ratio", r.MaxCostToPrice)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestLadderRoundTrip writes the document back as YAML and as JSON and checks that each loads
// into the same ladder and rules, and that writing is a fixed point.
func TestLadderRoundTrip(t *testing.T) {
	t.Parallel()
	c := loadFile(t, "testdata/ladder.yaml")
	want := describeLadderAndGuard(c)
	if !strings.Contains(want, "tier 3 enterprise") || !strings.Contains(want, "rule 2 customer_margin") {
		t.Fatalf("description lacks the ladder or the rules:\n%s", want)
	}
	for _, form := range []struct {
		name    string
		marshal func(any) ([]byte, error)
	}{
		{"yaml", yaml.Marshal},
		{"json", json.Marshal},
	} {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			data, err := form.marshal(c.Document)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Load(data)
			if err != nil {
				t.Fatalf("reloading the %s form: %v\n%s", form.name, err, data)
			}
			if got := describeLadderAndGuard(c2); got != want {
				t.Errorf("%s round trip changed the ladder or rules:\n%s\nwant:\n%s", form.name, got, want)
			}
			again, err := form.marshal(c2.Document)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(data) {
				t.Errorf("writing is not a fixed point:\n%s\nthen:\n%s", data, again)
			}
		})
	}
	data, err := json.Marshal(c.Document)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		`"tiers":{"basis":"periodSpend","ladder":[{"key":"free","threshold":"0"}`,
		`{"key":"scale","threshold":"50","limitMultiplier":"4","discount":"5"}`,
		`{"key":"enterprise","manual":true,"limits":{"requestsPerMinute":"10000"}}`,
		`"marginGuard":[{"key":"runaway_task","scope":"task","maxCost":"5","coolDown":"10m"}`,
		`{"key":"customer_margin","scope":"customer","minMargin":"20","afterSpend":"100","coolDown":"1h"}`,
	} {
		if !strings.Contains(string(data), frag) {
			t.Errorf("JSON form lacks %s:\n%s", frag, data)
		}
	}
}
