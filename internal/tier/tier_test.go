package tier

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

func dec(s string) money.Decimal { return money.MustParse(s) }

// ladderDoc is the Free $0 → Build $5 → Scale $50 → Enterprise ladder, with basis filled in.
const ladderDoc = `currency: USD
tiers:
  basis: %s
  ladder:
    - {key: free, threshold: "0"}
    - {key: build, threshold: "5.00", limits: {requestsPerMinute: 120, monthlySpend: "500.00"}}
    - {key: scale, threshold: "50.00", limitMultiplier: "4", discount: "5"}
    - {key: enterprise, manual: true, limits: {requestsPerMinute: 10000}}
`

func load(t testing.TB, doc string) *catalog.Tiers {
	t.Helper()
	c, err := catalog.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tiers == nil {
		t.Fatal("the catalog has no ladder")
	}
	return c.Tiers
}

func ladder(t testing.TB, basis catalog.TierBasis) *catalog.Tiers {
	return load(t, fmt.Sprintf(ladderDoc, basis))
}

func promo(from, to string) Transition {
	return Transition{From: from, To: to, Reason: ReasonPromotion}
}
func over(from, to string) Transition { return Transition{From: from, To: to, Reason: ReasonOverride} }
func reset(from, to string) Transition {
	return Transition{From: from, To: to, Reason: ReasonPeriodReset}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	period := ladder(t, catalog.PeriodSpend)
	lifetime := ladder(t, catalog.LifetimeSpend)
	// A manual tier between two ladder tiers is skipped by promotion.
	middle := load(t, `currency: USD
tiers:
  ladder:
    - {key: free, threshold: "0"}
    - {key: vip, manual: true}
    - {key: build, threshold: "5"}
    - {key: scale, threshold: "50"}
`)
	tests := []struct {
		name              string
		tiers             *catalog.Tiers
		before, after     string
		current, override string
		want              []Transition
	}{
		{"below the first threshold", period, "0", "4.99", "free", "", nil},
		{"exactly at a threshold promotes", period, "4.99", "5.00", "free", "", []Transition{promo("free", "build")}},
		{"exactly at a threshold, other scale", period, "0", "5", "free", "", []Transition{promo("free", "build")}},
		{"just below a threshold", period, "0", "4.9999999999", "free", "", nil},
		{"one event crosses two thresholds", period, "1", "60", "free", "", []Transition{promo("free", "build"), promo("build", "scale")}},
		{"a huge event crosses every threshold", period, "0", "1e15", "free", "", []Transition{promo("free", "build"), promo("build", "scale")}},
		{"next threshold only", period, "10", "50", "build", "", []Transition{promo("build", "scale")}},
		{"already in the tier", period, "5", "6", "build", "", nil},
		{"top of the ladder", period, "50", "1e9", "scale", "", nil},
		{"manual tier skipped by promotion", middle, "0", "100", "free", "", []Transition{promo("free", "build"), promo("build", "scale")}},
		{"lifetime basis promotes the same way", lifetime, "4", "55", "free", "", []Transition{promo("free", "build"), promo("build", "scale")}},

		{"falling spend does not demote", period, "60", "3", "scale", "", nil},
		{"falling below zero does not demote", period, "10", "-5", "build", "", nil},
		{"a negative basis stays in the base tier", period, "-5", "-1", "free", "", nil},
		{"falling spend, stale tier catches up to the higher basis", period, "60", "40", "free", "", []Transition{promo("free", "build"), promo("build", "scale")}},
		{"stale tier catches up without a crossing", period, "7", "8", "free", "", []Transition{promo("free", "build")}},

		{"new customer reads as the base tier", period, "0", "10", "", "", []Transition{promo("free", "build")}},
		{"new customer below every threshold", period, "0", "1", "", "", nil},
		{"new customer, one $60 event", period, "0", "60", "", "", []Transition{promo("free", "build"), promo("build", "scale")}},
		{"removed tier reads as the base tier", period, "0", "60", "gold", "", []Transition{promo("free", "build"), promo("build", "scale")}},

		{"override wins over promotion", period, "0", "100", "free", "free", nil},
		{"override set", period, "0", "1", "build", "enterprise", []Transition{over("build", "enterprise")}},
		{"override set on a new customer", period, "0", "1", "", "enterprise", []Transition{over("free", "enterprise")}},
		{"override to a lower ladder tier", period, "60", "70", "scale", "free", []Transition{over("scale", "free")}},
		{"override already applied", period, "0", "1e6", "enterprise", "enterprise", nil},
		{"override changed with no event", period, "7", "7", "build", "scale", []Transition{over("build", "scale")}},
		{"cleared override returns to the ladder", period, "40", "60", "enterprise", "", []Transition{over("enterprise", "scale")}},
		{"cleared override, low basis", period, "1", "1", "enterprise", "", []Transition{over("enterprise", "free")}},
		{"unknown override is ignored", period, "0", "10", "free", "platinum", []Transition{promo("free", "build")}},

		{"no ladder", nil, "0", "100", "free", "enterprise", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Evaluate(tc.tiers, dec(tc.before), dec(tc.after), tc.current, tc.override)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Evaluate(%s → %s, current %q, override %q) = %v, want %v", tc.before, tc.after, tc.current, tc.override, got, tc.want)
			}
		})
	}
}

// TestEvaluateSequence applies random events, rises and falls, to a customer and checks the
// ladder's invariants: transitions chain (each From is the tier before it), the tier never goes
// down within the period, and it is always the tier implied by the highest basis seen so far.
func TestEvaluateSequence(t *testing.T) {
	t.Parallel()
	tr := ladder(t, catalog.PeriodSpend)
	rank := map[string]int{"free": 0, "build": 1, "scale": 2}
	want := func(peak money.Decimal) string {
		switch {
		case peak.GreaterThanOrEqual(dec("50")):
			return "scale"
		case peak.GreaterThanOrEqual(dec("5")):
			return "build"
		}
		return "free"
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		basis, peak, current := money.Zero, money.Zero, "free"
		for step := range 40 {
			// Amounts in cents from −3.00 to +9.99.
			delta := money.QtyInt(int64(rng.IntN(1300) - 300)).Decimal().Shift(-2)
			after := basis.Add(delta)
			ts := Evaluate(tr, basis, after, current, "")
			for _, x := range ts {
				if x.From != current || x.Reason != ReasonPromotion || rank[x.To] != rank[x.From]+1 {
					t.Fatalf("run %d step %d: transition %v from %q is not a one-rung promotion", run, step, x, current)
				}
				current = x.To
			}
			basis, peak = after, money.Max(peak, after)
			if w := want(peak); current != w {
				t.Fatalf("run %d step %d: basis %s (peak %s) leaves the customer in %q, want %q", run, step, basis, peak, current, w)
			}
		}
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	period := ladder(t, catalog.PeriodSpend)
	lifetime := ladder(t, catalog.LifetimeSpend)
	tests := []struct {
		name              string
		tiers             *catalog.Tiers
		current, override string
		want              []Transition
	}{
		{"period: the top tier drops to the base in one step", period, "scale", "", []Transition{reset("scale", "free")}},
		{"period: build drops to the base", period, "build", "", []Transition{reset("build", "free")}},
		{"period: the base tier stays", period, "free", "", nil},
		{"period: a new customer stays", period, "", "", nil},
		{"period: a removed tier reads as the base", period, "gold", "", nil},
		{"period: a manual tier without override drops", period, "enterprise", "", []Transition{reset("enterprise", "free")}},
		{"period: an override is not demoted", period, "enterprise", "enterprise", nil},
		{"period: an override on a ladder tier is not demoted", period, "scale", "scale", nil},
		{"period: an override not yet applied", period, "scale", "enterprise", []Transition{over("scale", "enterprise")}},
		{"period: an unknown override is ignored", period, "scale", "platinum", []Transition{reset("scale", "free")}},
		{"lifetime: nothing changes", lifetime, "scale", "", nil},
		{"lifetime: a manual tier stays", lifetime, "enterprise", "", nil},
		{"lifetime: an override not yet applied", lifetime, "build", "enterprise", []Transition{over("build", "enterprise")}},
		{"no ladder", nil, "scale", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Reset(tc.tiers, tc.current, tc.override); !slices.Equal(got, tc.want) {
				t.Errorf("Reset(%q, %q) = %v, want %v", tc.current, tc.override, got, tc.want)
			}
		})
	}
}

func TestCurrent(t *testing.T) {
	t.Parallel()
	tr := ladder(t, catalog.PeriodSpend)
	for _, tc := range []struct{ current, override, want string }{
		{"build", "", "build"},
		{"", "", "free"},
		{"gold", "", "free"},
		{"build", "enterprise", "enterprise"},
		{"", "scale", "scale"},
		{"build", "platinum", "build"},
	} {
		if got := Current(tr, tc.current, tc.override); got == nil || got.Key != tc.want || got != tr.Tier(tc.want) {
			t.Errorf("Current(%q, %q) = %+v, want %s", tc.current, tc.override, got, tc.want)
		}
	}
	if Current(nil, "build", "enterprise") != nil {
		t.Error("Current on a nil ladder must be nil")
	}
}

func i64(n int64) *int64 { return &n }
func dp(s string) *money.Decimal {
	v := dec(s)
	return &v
}

// limitsText prints limits for comparison; "-" is unlimited.
func limitsText(l catalog.Limits) string {
	i := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	d := "-"
	if l.MonthlySpend != nil {
		d = l.MonthlySpend.String()
	}
	return fmt.Sprintf("rpm=%s tpm=%s mt=%s ms=%s mc=%s", i(l.RequestsPerMinute), i(l.TokensPerMinute), i(l.MonthlyTokens), d, i(l.MaxConcurrent))
}

func TestEffectiveLimits(t *testing.T) {
	t.Parallel()
	tr := ladder(t, catalog.PeriodSpend)
	plan := catalog.Limits{RequestsPerMinute: i64(60), TokensPerMinute: i64(100000), MonthlySpend: dp("100.00"), MaxConcurrent: i64(3)}
	mult := func(m string, abs catalog.Limits) *catalog.SpendTier {
		return &catalog.SpendTier{Key: "t", LimitMultiplier: dp(m), Limits: abs}
	}
	tests := []struct {
		name string
		plan catalog.Limits
		tier *catalog.SpendTier
		want string
	}{
		{"no tier keeps the plan", plan, nil, "rpm=60 tpm=100000 mt=- ms=100 mc=3"},
		{"a tier without limits keeps the plan", plan, tr.Tier("free"), "rpm=60 tpm=100000 mt=- ms=100 mc=3"},
		{"absolute tier limits win", plan, tr.Tier("build"), "rpm=120 tpm=100000 mt=- ms=500 mc=3"},
		{"the multiplier scales the plan", plan, tr.Tier("scale"), "rpm=240 tpm=400000 mt=- ms=400 mc=12"},
		{"absolute without multiplier", plan, tr.Tier("enterprise"), "rpm=10000 tpm=100000 mt=- ms=100 mc=3"},
		{"absolute beats the multiplier", plan, mult("0.75", catalog.Limits{TokensPerMinute: i64(5)}), "rpm=45 tpm=5 mt=- ms=75 mc=2"},
		{"an absolute limit where the plan has none", plan, &catalog.SpendTier{Limits: catalog.Limits{MonthlyTokens: i64(1000)}}, "rpm=60 tpm=100000 mt=1000 ms=100 mc=3"},
		{"whole numbers round down", catalog.Limits{RequestsPerMinute: i64(3), MaxConcurrent: i64(3), TokensPerMinute: i64(60)}, mult("0.5", catalog.Limits{}), "rpm=1 tpm=30 mt=- ms=- mc=1"},
		{"round down to zero", catalog.Limits{MaxConcurrent: i64(3)}, mult("0.3", catalog.Limits{}), "rpm=- tpm=- mt=- ms=- mc=0"},
		{"round down just under a whole number", catalog.Limits{RequestsPerMinute: i64(60)}, mult("1.999999", catalog.Limits{}), "rpm=119 tpm=- mt=- ms=- mc=-"},
		{"money is exact", catalog.Limits{MonthlySpend: dp("100.01")}, mult("0.333", catalog.Limits{}), "rpm=- tpm=- mt=- ms=33.30333 mc=-"},
		{"capped at MaxLimit", catalog.Limits{RequestsPerMinute: i64(9_000_000_000_000_000_000), MonthlyTokens: i64(3_000_000_000_000_000_000)}, mult("4", catalog.Limits{}), "rpm=9000000000000000000 tpm=- mt=9000000000000000000 ms=- mc=-"},
		{"unlimited stays unlimited", catalog.Limits{}, mult("4", catalog.Limits{}), "rpm=- tpm=- mt=- ms=- mc=-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := limitsText(EffectiveLimits(tc.plan, tc.tier)); got != tc.want {
				t.Errorf("EffectiveLimits = %s, want %s", got, tc.want)
			}
		})
	}

	// The result shares no pointer with the plan or the tier.
	got := EffectiveLimits(plan, tr.Tier("build"))
	*got.RequestsPerMinute, *got.TokensPerMinute = 1, 1
	*got.MonthlySpend = dec("1")
	if *plan.TokensPerMinute != 100000 || *tr.Tier("build").Limits.RequestsPerMinute != 120 || !tr.Tier("build").Limits.MonthlySpend.Equal(dec("500")) {
		t.Error("changing the effective limits changed the plan's or the tier's")
	}
}

func TestDiscount(t *testing.T) {
	t.Parallel()
	tr := ladder(t, catalog.PeriodSpend)
	scale := tr.Tier("scale")
	deep := &catalog.SpendTier{Discount: dec("99.99"), DiscountFraction: dec("0.9999")}
	tests := []struct {
		name   string
		tier   *catalog.SpendTier
		amount string
		want   string
	}{
		{"5% of 10.00", scale, "10.00", "-0.5"},
		{"exact on tiny amounts", scale, "0.0000001", "-0.000000005"},
		{"a credit gets a positive discount", scale, "-2", "0.1"},
		{"zero amount", scale, "0", "0"},
		{"99.99%", deep, "1", "-0.9999"},
		{"a tier without discount", tr.Tier("build"), "10", "0"},
		{"no tier", nil, "10", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Discount(tc.tier, dec(tc.amount))
			if !got.Equal(dec(tc.want)) {
				t.Errorf("Discount(%s) = %s, want %s", tc.amount, got, tc.want)
			}
			// The discounted amount is exact: amount + discount = amount × (1 − rate).
			if tc.tier != nil && !dec(tc.amount).Add(got).Equal(dec(tc.amount).Mul(money.MustParse("1").Sub(tc.tier.DiscountFraction))) {
				t.Errorf("amount + discount is not amount × (1 − %s)", tc.tier.DiscountFraction)
			}
		})
	}
}

func BenchmarkEvaluateNoChange(b *testing.B) {
	tr := ladder(b, catalog.PeriodSpend)
	before, after := dec("12.345678"), dec("12.3457")
	b.ReportAllocs()
	for b.Loop() {
		if Evaluate(tr, before, after, "build", "") != nil {
			b.Fatal("unexpected transition")
		}
	}
}

func BenchmarkEvaluatePromotion(b *testing.B) {
	tr := ladder(b, catalog.PeriodSpend)
	before, after := dec("4.99"), dec("50.01")
	b.ReportAllocs()
	for b.Loop() {
		if len(Evaluate(tr, before, after, "free", "")) != 2 {
			b.Fatal("want two promotions")
		}
	}
}
