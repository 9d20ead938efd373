package counter

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
)

func TestSumIsExactThenClamps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vals []int64
	}{
		{"empty", nil},
		{"small", []int64{5, -3, 7}},
		{"wraps int64 and comes back", []int64{math.MaxInt64, math.MaxInt64, math.MinInt64, math.MinInt64, 3}},
		{"below MinInt64", []int64{math.MinInt64, math.MinInt64, -1}},
		{"above MaxInt64", []int64{math.MaxInt64, 1}},
		{"around MaxValue", []int64{limit.MaxValue, 2, -10}},
		{"exactly MaxValue", []int64{1 << 62, -(1 << 62), limit.MaxValue}},
		{"one past -MaxValue", []int64{-limit.MaxValue, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Sum
			exact := new(big.Int)
			for _, v := range tc.vals {
				s.Add(v)
				exact.Add(exact, big.NewInt(v))
			}
			for _, bounds := range [][2]int64{{-limit.MaxValue, limit.MaxValue}, {0, limit.MaxValue}, {math.MinInt64, math.MaxInt64}} {
				want := exact
				if want.Cmp(big.NewInt(bounds[0])) < 0 {
					want = big.NewInt(bounds[0])
				}
				if want.Cmp(big.NewInt(bounds[1])) > 0 {
					want = big.NewInt(bounds[1])
				}
				if got := s.Clamp(bounds[0], bounds[1]); got != want.Int64() {
					t.Fatalf("sum %v clamped to %v = %d, want %s", tc.vals, bounds, got, want)
				}
			}
		})
	}
}

func FuzzSum(f *testing.F) {
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MinInt64), int64(-1))
	f.Add(limit.MaxValue, int64(1), int64(-2), int64(0))
	f.Fuzz(func(t *testing.T, a, b, c, d int64) {
		var s Sum
		exact := new(big.Int)
		for _, v := range []int64{a, b, c, d} {
			s.Add(v)
			exact.Add(exact, big.NewInt(v))
		}
		got := s.Clamp(-limit.MaxValue, limit.MaxValue)
		want := exact
		if want.Cmp(big.NewInt(-limit.MaxValue)) < 0 {
			want = big.NewInt(-limit.MaxValue)
		} else if want.Cmp(big.NewInt(limit.MaxValue)) > 0 {
			want = big.NewInt(limit.MaxValue)
		}
		if got != want.Int64() {
			t.Fatalf("Sum(%d, %d, %d, %d) clamped = %d, want %s", a, b, c, d, got, want)
		}
	})
}

func TestMillisecondRounding(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ref := PeriodRef{Start: at.Add(-time.Hour), End: at}
	if got := PeriodEndMillis(ref); got != at.UnixMilli() {
		t.Fatalf("whole ms end: %d", got)
	}
	ref.End = at.Add(time.Nanosecond)
	if got := PeriodEndMillis(ref); got != at.UnixMilli()+1 {
		t.Fatalf("end 1 ns past a ms rounds up: %d, want %d", got, at.UnixMilli()+1)
	}
	if got := BreakerUntilMillis(at.Add(999 * time.Microsecond)); got != at.UnixMilli()+1 {
		t.Fatalf("breaker until rounds up: %d", got)
	}
	p := AuthorizeParams{Now: at.Add(999 * time.Microsecond), TTL: 1999 * time.Microsecond}
	if p.NowMillis(time.Time{}) != at.UnixMilli() || p.TTLMillis() != 1 {
		t.Fatalf("now and TTL truncate: %d, %d", p.NowMillis(time.Time{}), p.TTLMillis())
	}
	p.Now = time.Time{}
	if p.NowMillis(at) != at.UnixMilli() {
		t.Fatal("a zero Now is the store's clock")
	}
}

func TestRowAndRequest(t *testing.T) {
	t.Parallel()
	p := AuthorizeParams{Period: PeriodRef{End: time.UnixMilli(5000)}, Estimate: limit.Usage{Tokens: 3, Nanos: 4},
		Limits: TierLimits{"": {MaxConcurrent: 1, WalletLimited: true}, "gold": {MaxConcurrent: 5, WalletLimited: true}}}
	for tier, want := range map[string]int64{"": 1, "gold": 5, "silver": 1} {
		if got := p.Row(tier).MaxConcurrent; got != want {
			t.Fatalf("row of tier %q: %d, want %d", tier, got, want)
		}
	}
	if r := p.Request("gold", false); r.Limits.WalletLimited || r.PeriodEnd != 5000 || r.Estimate != p.Estimate {
		t.Fatalf("request without a wallet: %+v", r)
	}
	if r := p.Request("gold", true); !r.Limits.WalletLimited {
		t.Fatal("a wallet-limited row with a wallet is wallet-limited")
	}
	p.Limits = TierLimits{"gold": {MaxConcurrent: 5}}
	if r := p.Request("", false); r.Limits != (limit.Limits{}) {
		t.Fatalf("no row \"\": %+v, want no limits", r.Limits)
	}
}

// DecisionState never changes an outcome of limit.Decide: it only rewrites what Decide reads
// the same way.
func TestDecisionStateKeepsDecisions(t *testing.T) {
	t.Parallel()
	for _, v := range limit.DecideVectors {
		if v.Want.Reason == limit.DimInvalid {
			continue
		}
		got := limit.Decide(DecisionState(v.State, v.Request.Limits, v.Now), v.Request, v.Now)
		want := v.Want
		if got.Allowed != want.Allowed || got.Reason != want.Reason || got.Failed != want.Failed || got.Never != want.Never ||
			got.RetryAfter != want.RetryAfter || got.Quotas != want.Quotas || got.Reserved != want.Reserved {
			t.Fatalf("%s: decision on the normalised state differs:\n got %+v\nwant %+v", v.Name, got, want)
		}
		if got.Allowed && (got.State.ReservedTokens != want.State.ReservedTokens || got.State.InFlight != want.State.InFlight ||
			(v.Request.Limits.RequestsPerWindow > 0 && got.State.RPM != want.State.RPM) ||
			(v.Request.Limits.TokensPerWindow > 0 && got.State.TPM != want.State.TPM)) {
			t.Fatalf("%s: increments differ:\n got %+v\nwant %+v", v.Name, got.State, want.State)
		}
	}
	for _, v := range limit.GCRAVectors {
		if v.Window < 1 || v.Limit < 1 || v.Limit > limit.MaxWindowUnits/v.Window || v.Now < 0 || v.Now > limit.MaxTime {
			continue
		}
		lim := limit.Limits{Window: v.Window, TokensPerWindow: v.Limit}
		n := DecisionState(limit.State{TPM: v.TAT}, lim, v.Now).TPM
		r1, s1 := limit.GCRAStatus(v.TAT, v.Now, v.Window, v.Limit)
		r2, s2 := limit.GCRAStatus(n, v.Now, v.Window, v.Limit)
		if r1 != r2 || s1 != s2 || (s1 == 0) != (n == limit.TAT{}) {
			t.Fatalf("%s: TAT %+v normalised to %+v changes the bucket", v.Name, v.TAT, n)
		}
	}
}

func TestLiveQuotasAreTheDeniedDecisionsQuotas(t *testing.T) {
	t.Parallel()
	for _, v := range limit.DecideVectors {
		if v.Want.Reason == limit.DimInvalid || v.Want.Allowed {
			continue
		}
		if got := LiveQuotas(v.State, v.Request, v.Now); got != v.Want.Quotas {
			t.Fatalf("%s: live quotas\n got %+v\nwant %+v", v.Name, got, v.Want.Quotas)
		}
	}
}

// FuzzAuthorizeParams: validation never panics, the fast path agrees with the full one, and
// every rejection wraps ErrInvalid and names at least one field.
func FuzzAuthorizeParams(f *testing.F) {
	f.Add("c", "r", int64(1_700_000_000_000), int64(60_000), int64(100), int64(-1), int64(5), int64(10), int64(1000), "tok", "tok", "gold")
	f.Add("", "", int64(-1), int64(0), int64(0), int64(0), int64(-5), int64(limit.MaxValue+1), int64(0), "", "x", "")
	f.Fuzz(func(t *testing.T, customer, reservation string, nowMs, window, rpm, conc, tokens, nanos, ttlMs int64,
		m1, m2, tier string) {
		p := AuthorizeParams{CustomerID: customer, ReservationID: reservation, Now: time.UnixMilli(nowMs),
			Period:      PeriodRef{Start: time.UnixMilli(0), End: time.UnixMilli(nowMs)},
			TokenMeters: []string{m1, m2}, Estimate: limit.Usage{Tokens: tokens, Nanos: nanos},
			Limits: TierLimits{tier: {Window: window, RequestsPerWindow: rpm, MaxConcurrent: conc}},
			TTL:    time.Duration(ttlMs) * time.Millisecond}
		for _, authorize := range []bool{true, false} {
			err := p.validate(authorize)
			if (err == nil) != p.valid(authorize) {
				t.Fatalf("validate %v but valid %t for %+v", err, p.valid(authorize), p)
			}
			if err == nil {
				continue
			}
			var ie *limit.InvalidError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ie) || len(ie.Fields) == 0 {
				t.Fatalf("rejection %v does not wrap ErrInvalid with fields", err)
			}
			for _, fe := range ie.Fields {
				if fe.Field == "" || strings.ContainsAny(fe.Field, " \t") && !strings.HasPrefix(fe.Field, "limits[") {
					t.Fatalf("field %q of %v", fe.Field, err)
				}
			}
		}
	})
}
