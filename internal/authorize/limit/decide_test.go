package limit

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// failers make exactly one dimension of vState/vRequest fail at vNow.
var failers = map[Dimension]func(*State){
	DimBreaker:       func(s *State) { s.BreakerUntil = vNow + 10 },
	DimTaskBreaker:   func(s *State) { s.TaskBreakerUntil = vNow + 20 },
	DimMonthlySpend:  func(s *State) { s.UsedNanos = 4_990_000_000 },
	DimMonthlyTokens: func(s *State) { s.UsedTokens = 999_000 },
	DimWallet:        func(s *State) { s.Balance = 1 },
	DimTPM:           func(s *State) { s.TPM = TAT{vNow + 59_000, 0} },
	DimRPM:           func(s *State) { s.RPM = TAT{vNow + minute, 0} },
	DimConcurrency:   func(s *State) { s.InFlight = 2 },
}

// TestDecideEverySubsetOfFailures makes every subset of the dimensions fail at once: all are
// reported, the reason is the one of highest precedence, the wait is the longest single wait,
// and a denial changes nothing.
func TestDecideEverySubsetOfFailures(t *testing.T) {
	var all []Dimension
	for d := DimBreaker; d < NumDimensions; d++ {
		all = append(all, d)
	}
	if len(failers) != len(all) {
		t.Fatalf("failers cover %d dimensions, want %d", len(failers), len(all))
	}
	single := map[Dimension]int64{}
	for _, d := range all {
		st := vState
		failers[d](&st)
		got := Decide(st, vRequest, vNow)
		if got.Allowed || got.Reason != d || got.Failed != dims(d) {
			t.Fatalf("failing %v alone: %+v", d, got)
		}
		single[d] = got.RetryAfter
	}
	for mask := 0; mask < 1<<len(all); mask++ {
		st := vState
		var want DimSet
		reason := DimNone
		var retry int64
		for i, d := range all {
			if mask&(1<<i) == 0 {
				continue
			}
			failers[d](&st)
			want |= 1 << d
			if reason == DimNone {
				reason = d
			}
			retry = max(retry, single[d])
		}
		got := Decide(st, vRequest, vNow)
		if mask == 0 {
			if !got.Allowed {
				t.Fatalf("nothing failing, denied: %+v", got)
			}
			continue
		}
		if got.Allowed || got.Failed != want || got.Reason != reason || got.RetryAfter != retry || got.Never {
			t.Fatalf("failing %b: got allowed %v reason %v failed %b retry %d; want reason %v failed %b retry %d",
				want, got.Allowed, got.Reason, got.Failed, got.RetryAfter, reason, want, retry)
		}
		if got.State != st {
			t.Fatalf("failing %b: a denial changed the state", want)
		}
	}
}

// TestDecideRetryAfterIsEarliest: when only time-bound dimensions fail (rate limits and
// breakers), the request is allowed after exactly RetryAfter and denied one unit earlier.
func TestDecideRetryAfterIsEarliest(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	req := vRequest
	checked := 0
	for range 20_000 {
		req.Limits.RequestsPerWindow = 1 + rng.Int64N(100)
		req.Limits.TokensPerWindow = 1 + rng.Int64N(50_000)
		req.Estimate.Tokens = rng.Int64N(req.Limits.TokensPerWindow + 1)
		now := vNow + rng.Int64N(1<<30)
		st := vState
		st.RPM = GCRAAdjust(TAT{}, now, minute, req.Limits.RequestsPerWindow, rng.Int64N(2*req.Limits.RequestsPerWindow+1))
		st.TPM = GCRAAdjust(TAT{}, now, minute, req.Limits.TokensPerWindow, rng.Int64N(2*req.Limits.TokensPerWindow+1))
		if rng.IntN(4) == 0 {
			st.BreakerUntil = now + rng.Int64N(3*minute)
		}
		if rng.IntN(4) == 0 {
			st.TaskBreakerUntil = now + rng.Int64N(3*minute)
		}
		d := Decide(st, req, now)
		if d.Allowed {
			continue
		}
		checked++
		if d.Never || d.RetryAfter < 1 {
			t.Fatalf("time-bound denial with Never %v, RetryAfter %d: %+v", d.Never, d.RetryAfter, d)
		}
		if at := Decide(st, req, now+d.RetryAfter); !at.Allowed {
			t.Fatalf("denied (%v) at now+RetryAfter %d; first decision failed %b", at.Reason, d.RetryAfter, d.Failed)
		}
		if before := Decide(st, req, now+d.RetryAfter-1); before.Allowed {
			t.Fatalf("allowed at now+RetryAfter−1 (RetryAfter %d, failed %b)", d.RetryAfter, d.Failed)
		}
	}
	if checked < 5000 {
		t.Fatalf("only %d denials checked", checked)
	}
}

func TestDecideAllocatesNothing(t *testing.T) {
	denied := vState
	denied.InFlight = 2
	var sink Decision
	for name, st := range map[string]State{"allowed": vState, "denied": denied} {
		if n := testing.AllocsPerRun(100, func() { sink = Decide(st, vRequest, vNow) }); n != 0 {
			t.Errorf("Decide (%s) allocates %v times", name, n)
		}
	}
	var s State
	if n := testing.AllocsPerRun(100, func() {
		s = Settle(vAdmitted, Usage{2000, 30_000_000}, Usage{2500, 1}, vLimits, vNow+10)
		s = Release(s, Usage{1, 1})
	}); n != 0 {
		t.Errorf("Settle and Release allocate %v times", n)
	}
	_, _ = sink, s
}

func TestValidate(t *testing.T) {
	ok := vRequest
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Request)
		fields []string
	}{
		{"negative window", func(r *Request) { r.Limits.Window = -1 }, []string{"limits.window"}},
		{"rate limit without a window", func(r *Request) { r.Limits.Window = 0 }, []string{"limits.window"}},
		{"window too long", func(r *Request) { r.Limits.Window = MaxWindowUnits + 1 }, []string{"limits.window"}},
		{"window × rpm too large", func(r *Request) { r.Limits.RequestsPerWindow = maxPerMinute + 1 }, []string{"limits.requestsPerWindow"}},
		{"window × tpm too large", func(r *Request) { r.Limits.TokensPerWindow = math.MaxInt64 }, []string{"limits.tokensPerWindow"}},
		{"negative rpm", func(r *Request) { r.Limits.RequestsPerWindow = -1 }, []string{"limits.requestsPerWindow"}},
		{"negative monthly tokens", func(r *Request) { r.Limits.MonthlyTokens = -1 }, []string{"limits.monthlyTokens"}},
		{"spend cap above MaxValue", func(r *Request) { r.Limits.MonthlySpend = MaxValue + 1 }, []string{"limits.monthlySpend"}},
		{"negative concurrency", func(r *Request) { r.Limits.MaxConcurrent = -2 }, []string{"limits.maxConcurrent"}},
		{"negative token estimate", func(r *Request) { r.Estimate.Tokens = -1 }, []string{"estimate.tokens"}},
		{"estimate above MaxValue", func(r *Request) { r.Estimate.Nanos = math.MaxInt64 }, []string{"estimate.nanos"}},
		{"period end after MaxTime", func(r *Request) { r.PeriodEnd = MaxTime + 1 }, []string{"periodEnd"}},
		{"every problem at once", func(r *Request) {
			r.Limits.Window = 0
			r.Estimate.Tokens, r.Estimate.Nanos, r.PeriodEnd = -1, -1, -1
		}, []string{"limits.window", "estimate.tokens", "estimate.nanos", "periodEnd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := vRequest
			tc.change(&r)
			err := r.Validate()
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Validate = %v, want an *InvalidError", err)
			}
			var fields []string
			for _, f := range inv.Fields {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			if !slices.Equal(fields, tc.fields) {
				t.Errorf("fields %v, want %v (%v)", fields, tc.fields, err)
			}
			if r.valid() {
				t.Errorf("valid() accepts what Validate rejects")
			}
			if d := Decide(vState, r, vNow); d.Reason != DimInvalid || d.Allowed || d.State != vState {
				t.Errorf("Decide on an invalid request: %+v", d)
			}
		})
	}
	// A zero window is fine when no rate limit is set.
	r := Request{Limits: Limits{MonthlyTokens: 5}}
	if err := r.Validate(); err != nil || !r.valid() {
		t.Errorf("request without rate limits: %v", err)
	}
}

func TestHeadline(t *testing.T) {
	admitted := Decide(vState, vRequest, vNow)
	// After admitting 2000 tokens and $0.03: RPM 59/60, concurrency 1/2, TPM 98000/100000…
	// concurrency is the tightest.
	if dim, q, ok := admitted.Headline(); !ok || dim != DimConcurrency || q != admitted.Quotas[DimConcurrency] {
		t.Errorf("allowed: headline %v %+v %v, want max_concurrent", dim, q, ok)
	}
	// Denied on RPM: the RPM quota, even though it is not the only tight one.
	st := vState
	failers[DimRPM](&st)
	failers[DimConcurrency](&st)
	d := Decide(st, vRequest, vNow)
	if dim, _, ok := d.Headline(); !ok || dim != DimRPM {
		t.Errorf("denied on rpm: headline %v", dim)
	}
	// Denied by the breaker, which has no quota: the tightest quota instead.
	st = vState
	failers[DimBreaker](&st)
	failers[DimTPM](&st)
	d = Decide(st, vRequest, vNow)
	if dim, _, ok := d.Headline(); !ok || dim != DimTPM {
		t.Errorf("denied by the breaker: headline %v, want the tpm quota (1666/100000)", dim)
	}
	// Ties go to precedence: both caps at exactly half.
	req := Request{Limits: Limits{MonthlyTokens: 10, MonthlySpend: 20}}
	d = Decide(State{UsedTokens: 5, UsedNanos: 10}, req, 0)
	if dim, _, _ := d.Headline(); dim != DimMonthlySpend {
		t.Errorf("tie: headline %v, want monthly_spend", dim)
	}
	// Denied by the wallet alone, with no other limit: nothing to report.
	req = Request{Limits: Limits{WalletLimited: true}, Estimate: Usage{Nanos: 5}}
	d = Decide(State{}, req, 0)
	if dim, _, ok := d.Headline(); ok {
		t.Errorf("wallet only: headline %v, want none", dim)
	}
}

func TestTighterIsExact(t *testing.T) {
	// 1/3 vs 333333333333333/1000000000000000 differ only beyond float64 precision.
	a := Quota{Remaining: 333_333_333_333_333, Limit: 1_000_000_000_000_000}
	b := Quota{Remaining: 1, Limit: 3}
	if !tighter(a, b) || tighter(b, a) {
		t.Errorf("tighter(%v, %v) is not exact", a, b)
	}
	if tighter(a, a) {
		t.Errorf("a quota is not tighter than itself")
	}
}

func TestDimensionStrings(t *testing.T) {
	if NumDimensions > 16 {
		t.Fatalf("%d dimensions do not fit a DimSet", NumDimensions)
	}
	seen := map[string]Dimension{}
	for d := DimInvalid; d < NumDimensions; d++ {
		s := d.String()
		if s == "" || s == "unknown" {
			t.Errorf("dimension %d has no reason code", d)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("dimensions %d and %d share %q", prev, d, s)
		}
		seen[s] = d
	}
	if DimTPM.String() != "tokens_per_minute" {
		t.Errorf("DimTPM = %q, the design's example reason is tokens_per_minute", DimTPM.String())
	}
	if NumDimensions.String() != "unknown" || DimNone.String() != "" {
		t.Errorf("out-of-range strings")
	}
	if DimSet(math.MaxUint16).Has(NumDimensions) {
		t.Errorf("Has accepts a dimension out of range")
	}
}
