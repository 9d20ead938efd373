package authorize

import (
	"errors"
	"slices"
	"testing"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

func i64(v int64) *int64 { return &v }

func dec(s string) *money.Decimal {
	d := money.MustParse(s)
	return &d
}

func TestParseOverrides(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want catalog.Limits
	}{
		{"empty", "", catalog.Limits{}},
		{"null", " null ", catalog.Limits{}},
		{"empty object", "{}", catalog.Limits{}},
		{"numbers", `{"requestsPerMinute": 7, "tokensPerMinute": 1000, "monthlyTokens": 5e6, "maxConcurrent": 0}`,
			catalog.Limits{RequestsPerMinute: i64(7), TokensPerMinute: i64(1000), MonthlyTokens: i64(5_000_000), MaxConcurrent: i64(0)}},
		{"strings", `{"requestsPerMinute": "12", "monthlySpend": "12.50"}`,
			catalog.Limits{RequestsPerMinute: i64(12), MonthlySpend: dec("12.50")}},
		{"spend as a number is read exactly", `{"monthlySpend": 0.1}`, catalog.Limits{MonthlySpend: dec("0.1")}},
		{"null leaves a limit", `{"requestsPerMinute": null, "maxConcurrent": 4}`, catalog.Limits{MaxConcurrent: i64(4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOverrides([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseOverrides: %v", err)
			}
			if !limitsEqual(got, tc.want) {
				t.Errorf("got %s, want %s", fmtLimits(got), fmtLimits(tc.want))
			}
		})
	}
}

func TestParseOverridesErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		in     string
		fields []string
	}{
		{"not an object", `[1]`, []string{"limits"}},
		{"not JSON", `{"requestsPerMinute": }`, []string{"limits"}},
		{"a string", `"fast"`, []string{"limits"}},
		{"unknown key", `{"requestsPerSecond": 3}`, []string{"limits.requestsPerSecond"}},
		{"negative", `{"requestsPerMinute": -1}`, []string{"limits.requestsPerMinute"}},
		{"fraction", `{"maxConcurrent": 1.5}`, []string{"limits.maxConcurrent"}},
		{"too large", `{"monthlyTokens": 9000000000000000001}`, []string{"limits.monthlyTokens"}},
		{"bad text", `{"monthlySpend": "lots"}`, []string{"limits.monthlySpend"}},
		{"negative spend", `{"monthlySpend": "-1"}`, []string{"limits.monthlySpend"}},
		{"boolean", `{"tokensPerMinute": true}`, []string{"limits.tokensPerMinute"}},
		{"every bad field at once", `{"tokensPerMinute": -5, "maxConcurrent": "x", "requestsPerMinute": 2}`,
			[]string{"limits.maxConcurrent", "limits.tokensPerMinute"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOverrides([]byte(tc.in))
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Invalid {
				t.Fatalf("err = %v, want an Invalid problem", err)
			}
			var fields []string
			for _, f := range pe.Fields {
				fields = append(fields, f.Field)
			}
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("fields = %v, want %v (%v)", fields, tc.fields, err)
			}
		})
	}
}

func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{"", "null", "{}", `{"requestsPerMinute": 7}`, `{"monthlySpend": "12.5"}`,
		`{"maxConcurrent": 1.5}`, `{"x": 1}`, `{"monthlyTokens": 1e400}`, `[`, `{"monthlySpend": "1e-40"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseOverrides(data)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Invalid || len(pe.Fields) == 0 {
				t.Fatalf("err = %v, want an Invalid problem naming a field", err)
			}
			return
		}
		for _, p := range []*int64{l.RequestsPerMinute, l.TokensPerMinute, l.MonthlyTokens, l.MaxConcurrent} {
			if p != nil && *p < 0 {
				t.Fatalf("negative limit %d from %q", *p, data)
			}
		}
		if l.MonthlySpend != nil && l.MonthlySpend.IsNegative() {
			t.Fatalf("negative spend from %q", data)
		}
		lim, _ := ToLimit(l)
		if err := (limit.Request{Limits: lim}).Validate(); err != nil {
			t.Fatalf("ToLimit(%q) is outside the store's ranges: %v", data, err)
		}
	})
}

func TestToLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   catalog.Limits
		want limit.Limits
		zero []limit.Dimension
	}{
		{"absent is unlimited", catalog.Limits{}, limit.Limits{Window: Window, WalletLimited: true}, nil},
		{"plain", catalog.Limits{RequestsPerMinute: i64(60), TokensPerMinute: i64(100_000), MonthlyTokens: i64(5_000_000),
			MonthlySpend: dec("100.00"), MaxConcurrent: i64(3)},
			limit.Limits{Window: Window, RequestsPerWindow: 60, TokensPerWindow: 100_000, MonthlyTokens: 5_000_000,
				MonthlySpend: 100_000_000_000, MaxConcurrent: 3, WalletLimited: true}, nil},
		{"zero allows nothing, sent as 1", catalog.Limits{RequestsPerMinute: i64(0), MonthlySpend: dec("0"), MaxConcurrent: i64(0)},
			limit.Limits{Window: Window, RequestsPerWindow: 1, MonthlySpend: 1, MaxConcurrent: 1, WalletLimited: true},
			[]limit.Dimension{limit.DimMonthlySpend, limit.DimRPM, limit.DimConcurrency}},
		{"spend below half a nano is zero", catalog.Limits{MonthlySpend: dec("0.0000000004")},
			limit.Limits{Window: Window, MonthlySpend: 1, WalletLimited: true}, []limit.Dimension{limit.DimMonthlySpend}},
		{"spend rounds to the nano", catalog.Limits{MonthlySpend: dec("0.0000000015")},
			limit.Limits{Window: Window, MonthlySpend: 2, WalletLimited: true}, nil},
		{"beyond the store's range is its bound", catalog.Limits{RequestsPerMinute: i64(9e18), TokensPerMinute: i64(maxRate + 1),
			MonthlyTokens: i64(9e18), MonthlySpend: dec("1e20"), MaxConcurrent: i64(9e18)},
			limit.Limits{Window: Window, RequestsPerWindow: maxRate, TokensPerWindow: maxRate, MonthlyTokens: limit.MaxValue,
				MonthlySpend: limit.MaxValue, MaxConcurrent: limit.MaxValue, WalletLimited: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, zero := ToLimit(tc.in)
			if got != tc.want {
				t.Errorf("ToLimit = %+v, want %+v", got, tc.want)
			}
			var want limit.DimSet
			for _, d := range tc.zero {
				want |= 1 << d
			}
			if zero != want {
				t.Errorf("zero = %b, want %b", zero, want)
			}
			if err := (limit.Request{Limits: got}).Validate(); err != nil {
				t.Errorf("outside the store's ranges: %v", err)
			}
		})
	}
}

func row(rpm, tpm, tokens, spendNanos, conc int64) limit.Limits {
	return limit.Limits{Window: Window, RequestsPerWindow: rpm, TokensPerWindow: tpm, MonthlyTokens: tokens,
		MonthlySpend: spendNanos, MaxConcurrent: conc, WalletLimited: true}
}

func TestResolveLimits(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t, ladderCatalog)
	const usd = 1_000_000_000
	for _, tc := range []struct {
		name      string
		plan      string
		overrides string
		rows      map[string]limit.Limits
		blocked   limit.Dimension
	}{
		{"plan, tier absolute and multiplier", "payg", "", map[string]limit.Limits{
			"":           row(60, 100_000, 5_000_000, 100*usd, 2), // the base tier, free
			"free":       row(60, 100_000, 5_000_000, 100*usd, 2),
			"build":      row(120, 100_000, 5_000_000, 500*usd, 3),
			"scale":      row(30, 50_000, 2_500_000, 50*usd, 1), // ×0.5, maxConcurrent 1.5 rounded down
			"enterprise": row(10_000, 100_000, 5_000_000, 100*usd, 3),
		}, limit.DimNone},
		{"overrides replace the limit in every tier", "payg", `{"requestsPerMinute": 7, "monthlySpend": "12.5"}`, map[string]limit.Limits{
			"":           row(7, 100_000, 5_000_000, 12_500_000_000, 2),
			"free":       row(7, 100_000, 5_000_000, 12_500_000_000, 2),
			"build":      row(7, 100_000, 5_000_000, 12_500_000_000, 3),
			"scale":      row(7, 50_000, 2_500_000, 12_500_000_000, 1),
			"enterprise": row(7, 100_000, 5_000_000, 12_500_000_000, 3),
		}, limit.DimNone},
		{"a zero override blocks everywhere", "payg", `{"maxConcurrent": 0, "tokensPerMinute": 0}`, map[string]limit.Limits{
			"":           row(60, 1, 5_000_000, 100*usd, 1),
			"free":       row(60, 1, 5_000_000, 100*usd, 1),
			"build":      row(120, 1, 5_000_000, 500*usd, 1),
			"scale":      row(30, 1, 2_500_000, 50*usd, 1),
			"enterprise": row(10_000, 1, 5_000_000, 100*usd, 1),
		}, limit.DimTPM}, // tokens_per_minute precedes max_concurrent
		{"a plan without limits stays unlimited under a multiplier", "open", "", map[string]limit.Limits{
			"":           row(0, 0, 0, 0, 2),
			"free":       row(0, 0, 0, 0, 2),
			"build":      row(120, 0, 0, 500*usd, 0),
			"scale":      row(0, 0, 0, 0, 0),
			"enterprise": row(10_000, 0, 0, 0, 0),
		}, limit.DimNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseOverrides([]byte(tc.overrides))
			if err != nil {
				t.Fatal(err)
			}
			tt := ResolveLimits(cat, cat.Plan(tc.plan), o)
			if len(tt.Rows) != len(tc.rows) {
				t.Errorf("rows = %v, want %d rows", tt.Rows, len(tc.rows))
			}
			for k, want := range tc.rows {
				if got, ok := tt.Rows[k]; !ok || got != want {
					t.Errorf("row %q = %+v, want %+v", k, got, want)
				}
			}
			if tt.Base != "free" {
				t.Errorf("Base = %q, want free", tt.Base)
			}
			if tt.Blocked != tc.blocked {
				t.Errorf("Blocked = %v, want %v", tt.Blocked, tc.blocked)
			}
		})
	}
}

func TestResolveLimitsWithoutLadder(t *testing.T) {
	t.Parallel()
	cat := exampleCatalog(t)
	tt := ResolveLimits(cat, cat.Plan("payg"), catalog.Limits{})
	if len(tt.Rows) != 1 || tt.Rows[""] != row(60, 200_000, 0, 1000_000_000_000, 8) || tt.Base != "" || tt.Blocked != limit.DimNone {
		t.Errorf("table = %+v, want the plan's limits in row \"\" only", tt)
	}
	if got := tt.Effective[""]; got.MonthlySpend == nil || !got.MonthlySpend.Equal(money.MustParse("1000")) || got.MonthlyTokens != nil {
		t.Errorf("Effective = %s", fmtLimits(got))
	}
}

func TestPartialZeroIsTheTightestLimit(t *testing.T) {
	t.Parallel()
	cat := loadCatalog(t, `
currency: USD
meters: [{key: input_tokens}]
plans:
  - key: p
    limits: {maxConcurrent: 1}
    charges: [{key: input, meter: input_tokens, model: perUnit, unitPrice: "1"}]
tiers:
  ladder:
    - {key: free, threshold: "0"}
    - {key: half, threshold: "10", limitMultiplier: "0.5"}
`)
	tt := ResolveLimits(cat, cat.Plan("p"), catalog.Limits{})
	if tt.Blocked != limit.DimNone {
		t.Errorf("Blocked = %v: only one tier is zero", tt.Blocked)
	}
	if got := tt.Rows["half"].MaxConcurrent; got != 1 {
		t.Errorf("half's maxConcurrent = %d, want 1 (0 sent as the tightest limit)", got)
	}
	if got := tt.Effective["half"].MaxConcurrent; got == nil || *got != 0 {
		t.Errorf("Effective half maxConcurrent = %v, want 0", got)
	}
}

func TestTokenMeters(t *testing.T) {
	t.Parallel()
	got := TokenMeters(exampleCatalog(t))
	want := []string{"input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"}
	if !slices.Equal(got, want) {
		t.Errorf("TokenMeters = %v, want %v (no credits, reasoning or tool calls)", got, want)
	}
}

func limitsEqual(a, b catalog.Limits) bool {
	ip := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	dp := func(x, y *money.Decimal) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return ip(a.RequestsPerMinute, b.RequestsPerMinute) && ip(a.TokensPerMinute, b.TokensPerMinute) &&
		ip(a.MonthlyTokens, b.MonthlyTokens) && ip(a.MaxConcurrent, b.MaxConcurrent) && dp(a.MonthlySpend, b.MonthlySpend)
}

func fmtLimits(l catalog.Limits) string {
	s := "{"
	for _, x := range []struct {
		n string
		v *int64
	}{{"rpm", l.RequestsPerMinute}, {"tpm", l.TokensPerMinute}, {"tokens", l.MonthlyTokens}, {"conc", l.MaxConcurrent}} {
		if x.v != nil {
			s += x.n + "=" + money.QtyInt(*x.v).String() + " "
		}
	}
	if l.MonthlySpend != nil {
		s += "spend=" + l.MonthlySpend.String()
	}
	return s + "}"
}
