package limit

import "math"

// The vectors below are the shared conformance table for every implementation of this
// package's arithmetic: the Go functions (vectors_test.go) and the Redis Lua script, whose
// test feeds it the same inputs and expects the same outputs. Each expected value was worked
// out by hand from the rules in the package doc; the comments show the arithmetic. A bug fix
// in either implementation adds a vector here first.

// GCRAVector is one GCRA call and its result.
type GCRAVector struct {
	Name                     string
	TAT                      TAT
	Now, Window, Limit, Cost int64
	Want                     GCRAResult
}

// AdjustVector is one GCRAAdjust call and the TAT it returns.
type AdjustVector struct {
	Name                      string
	TAT                       TAT
	Now, Window, Limit, Delta int64
	Want                      TAT
}

// CapVector is one Cap call and its results.
type CapVector struct {
	Name                        string
	Used, Reserved, Limit, Cost int64
	WantAllowed                 bool
	WantRemaining               int64
}

// WalletVector is one Wallet call and its result.
type WalletVector struct {
	Name                        string
	Balance, Reserved, Estimate int64
	Want                        bool
}

// ConcurrencyVector is one Concurrency call and its result.
type ConcurrencyVector struct {
	Name            string
	InFlight, Limit int64
	Want            bool
}

// DecideVector is one Decide call and its whole Decision.
type DecideVector struct {
	Name    string
	State   State
	Request Request
	Now     int64
	Want    Decision
}

// SettleVector is one Settle call and the state it returns.
type SettleVector struct {
	Name             string
	State            State
	Reserved, Actual Usage
	Limits           Limits
	Now              int64
	Want             State
}

// ReleaseVector is one Release call and the state it returns.
type ReleaseVector struct {
	Name     string
	State    State
	Reserved Usage
	Want     State
}

const (
	minute = 60_000 // one minute in milliseconds
	// The largest limit a one-minute window allows: ⌊2^50 / 60000⌋.
	maxPerMinute = MaxWindowUnits / minute // 18,764,998,447
)

// GCRAVectors exercise the rate bucket: the burst, the inclusive boundary, exact retries with
// a fractional emission interval, cost 0 and cost > limit, stale and future TATs, clamped
// fractions, invalid parameters and the largest values allowed.
var GCRAVectors = []GCRAVector{
	{
		// debt 0; 0 + 60000 ≤ 60000×100; new debt 60000 → At now+600.
		Name: "fresh key admits", TAT: TAT{}, Now: 1_000_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_000_600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		// 99 used: debt 59400×100 = 5,940,000; + 60000 = 6,000,000 = capacity: allowed (inclusive).
		Name: "last unit of the burst", TAT: TAT{1_059_400, 0}, Now: 1_000_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, Allowed: true, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// debt 6,000,000; need = 6,000,000 − 99×60000 = 60000 → ⌈60000/100⌉ = 600.
		Name: "full bucket denies with the exact wait", TAT: TAT{1_060_000, 0}, Now: 1_000_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, RetryAfter: 600, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// 600 later: debt 5,940,000 → allowed, debt back to 6,000,000.
		Name: "allowed exactly after the wait", TAT: TAT{1_060_000, 0}, Now: 1_000_600, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_600, 0}, Allowed: true, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// 599 later: debt 5,940,100; need 100 → wait 1; remaining ⌊59900/60000⌋ = 0; reset ⌈5,940,100/100⌉.
		Name: "denied one unit before the wait", TAT: TAT{1_060_000, 0}, Now: 1_000_599, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, RetryAfter: 1, Remaining: 0, ResetAfter: 59_401},
	},
	{
		// 7/min: debt 60000 → At 60000/7 = 8571 rem 3; remaining (420000−60000)/60000 = 6; reset ⌈60000/7⌉.
		Name: "fractional emission interval", TAT: TAT{}, Now: 0, Window: minute, Limit: 7, Cost: 1,
		Want: GCRAResult{TAT: TAT{8571, 3}, Allowed: true, Remaining: 6, ResetAfter: 8572},
	},
	{
		// 7 used at 0: debt 420000; need 420000 − 6×60000 = 60000 → ⌈60000/7⌉ = 8572.
		Name: "fractional interval: exact wait", TAT: TAT{60_000, 0}, Now: 0, Window: minute, Limit: 7, Cost: 1,
		Want: GCRAResult{TAT: TAT{60_000, 0}, RetryAfter: 8572, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// at 8572: debt 51428×7 = 359,996; +60000 = 419,996 ≤ 420,000; At 8572 + 59999, Frac 3.
		Name: "fractional interval: allowed at the wait", TAT: TAT{60_000, 0}, Now: 8572, Window: minute, Limit: 7, Cost: 1,
		Want: GCRAResult{TAT: TAT{68_571, 3}, Allowed: true, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// at 8571: debt 51429×7 = 360,003; need 3 → wait 1; reset 360,003/7 = 51429 exactly.
		Name: "fractional interval: denied one unit before", TAT: TAT{60_000, 0}, Now: 8571, Window: minute, Limit: 7, Cost: 1,
		Want: GCRAResult{TAT: TAT{60_000, 0}, RetryAfter: 1, Remaining: 0, ResetAfter: 51_429},
	},
	{
		// TAT 8571 + 3/7 is still ahead of now = 8571: debt 3, so the whole burst does not fit yet.
		Name: "the fraction counts", TAT: TAT{8571, 3}, Now: 8571, Window: minute, Limit: 7, Cost: 7,
		Want: GCRAResult{TAT: TAT{8571, 3}, RetryAfter: 1, Remaining: 6, ResetAfter: 1},
	},
	{
		Name: "the fraction has passed one unit later", TAT: TAT{8571, 3}, Now: 8572, Window: minute, Limit: 7, Cost: 7,
		Want: GCRAResult{TAT: TAT{68_572, 0}, Allowed: true, Remaining: 0, ResetAfter: 60_000},
	},
	{
		Name: "cost equal to the limit fits an empty bucket", TAT: TAT{}, Now: 5000, Window: minute, Limit: 100, Cost: 100,
		Want: GCRAResult{TAT: TAT{65_000, 0}, Allowed: true, Remaining: 0, ResetAfter: 60_000},
	},
	{
		Name: "cost above the limit never fits", TAT: TAT{}, Now: 5000, Window: minute, Limit: 100, Cost: 101,
		Want: GCRAResult{TAT: TAT{}, Never: true, Remaining: 100, ResetAfter: 0},
	},
	{
		// cost 0 charges nothing: the TAT is rewritten relative to now with the same debt.
		Name: "cost zero passes while a unit is left", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Cost: 0,
		Want: GCRAResult{TAT: TAT{1_000_600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		Name: "cost zero is denied by an exhausted bucket", TAT: TAT{1_060_000, 0}, Now: 1_000_000, Window: minute, Limit: 100, Cost: 0,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, RetryAfter: 600, Remaining: 0, ResetAfter: 60_000},
	},
	{
		// 100,000 tokens/min, 1500 tokens: debt 1500×60000 = 9e7 → At +900; remaining (6e9−9e7)/6e4.
		Name: "token cost", TAT: TAT{}, Now: 0, Window: minute, Limit: 100_000, Cost: 1500,
		Want: GCRAResult{TAT: TAT{900, 0}, Allowed: true, Remaining: 98_500, ResetAfter: 900},
	},
	{
		Name: "a TAT in the past is an empty bucket", TAT: TAT{500, 99}, Now: 1000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		// now 10 s before the writer's clock: debt 70000×100 = 7e6; need 7e6 − 5.94e6 = 1.06e6 → 10600.
		Name: "clock stepped back: more debt", TAT: TAT{1_060_000, 0}, Now: 990_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, RetryAfter: 10_600, Remaining: 0, ResetAfter: 70_000},
	},
	{
		// TAT exactly four windows ahead is still believed: debt 2.4e7; need 2.4e7 − 5.94e6.
		Name: "TAT at the horizon is believed", TAT: TAT{1_060_000, 0}, Now: 820_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1_060_000, 0}, RetryAfter: 180_600, Remaining: 0, ResetAfter: 240_000},
	},
	{
		Name: "TAT a fraction beyond the horizon reads as empty", TAT: TAT{1_060_000, 1}, Now: 820_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{820_600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		Name: "TAT far beyond the horizon reads as empty", TAT: TAT{1_060_000, 0}, Now: 800_000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{800_600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		// a fraction written under a higher limit: 250 is clamped to 99; debt 99 + 60000.
		Name: "fraction above the limit is clamped", TAT: TAT{1000, 250}, Now: 1000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1600, 99}, Allowed: true, Remaining: 98, ResetAfter: 601},
	},
	{
		Name: "negative fraction reads as zero", TAT: TAT{1000, -5}, Now: 1000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
	{
		Name: "largest limit, latest instant, whole burst", TAT: TAT{}, Now: MaxTime, Window: minute, Limit: maxPerMinute, Cost: maxPerMinute,
		Want: GCRAResult{TAT: TAT{MaxTime + minute, 0}, Allowed: true, Remaining: 0, ResetAfter: minute},
	},
	{
		// debt 4 × 60000 × maxPerMinute = 4,503,599,627,280,000; plus the cost: 5,629,499,534,100,000 < 2^53.
		Name: "largest debt", TAT: TAT{MaxTime + 4*minute, 0}, Now: MaxTime, Window: minute, Limit: maxPerMinute, Cost: maxPerMinute,
		Want: GCRAResult{TAT: TAT{MaxTime + 4*minute, 0}, RetryAfter: 4 * minute, Remaining: 0, ResetAfter: 4 * minute},
	},
	{
		Name: "window × limit too large", TAT: TAT{7, 1}, Now: 0, Window: minute, Limit: maxPerMinute + 1, Cost: 1,
		Want: GCRAResult{TAT: TAT{7, 1}, Never: true},
	},
	{Name: "window zero", TAT: TAT{7, 1}, Now: 0, Window: 0, Limit: 100, Cost: 1, Want: GCRAResult{TAT: TAT{7, 1}, Never: true}},
	{Name: "limit zero", TAT: TAT{7, 1}, Now: 0, Window: minute, Limit: 0, Cost: 0, Want: GCRAResult{TAT: TAT{7, 1}, Never: true}},
	{Name: "negative cost", TAT: TAT{7, 1}, Now: 0, Window: minute, Limit: 100, Cost: -1, Want: GCRAResult{TAT: TAT{7, 1}, Never: true}},
	{Name: "negative now", TAT: TAT{7, 1}, Now: -1, Window: minute, Limit: 100, Cost: 1, Want: GCRAResult{TAT: TAT{7, 1}, Never: true}},
	{Name: "now after MaxTime", TAT: TAT{7, 1}, Now: MaxTime + 1, Window: minute, Limit: 100, Cost: 1, Want: GCRAResult{TAT: TAT{7, 1}, Never: true}},
	{
		Name: "extreme TAT values", TAT: TAT{math.MaxInt64, math.MinInt64}, Now: 1000, Window: minute, Limit: 100, Cost: 1,
		Want: GCRAResult{TAT: TAT{1600, 0}, Allowed: true, Remaining: 99, ResetAfter: 600},
	},
}

// AdjustVectors exercise the charges without denial that settlement makes.
var AdjustVectors = []AdjustVector{
	{
		// debt 60000 + 50×60000 = 3,060,000 → At +30600.
		Name: "excess charged", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: 50,
		Want: TAT{1_030_600, 0},
	},
	{
		// capped at 2 windows: debt 12,000,000 → At +120000.
		Name: "excess capped at two windows", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: 1000,
		Want: TAT{1_120_000, 0},
	},
	{
		Name: "a charge never lowers a debt beyond the cap", TAT: TAT{1_150_000, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: 1,
		Want: TAT{1_150_000, 0},
	},
	{
		// 3,060,000 − 20×60000 = 1,860,000 → At +18600.
		Name: "unused estimate given back", TAT: TAT{1_030_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: -20,
		Want: TAT{1_018_600, 0},
	},
	{
		Name: "give-back never below empty", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: -5,
		Want: TAT{1_000_000, 0},
	},
	{
		// debt 8571×7 + 3 = 60000; + 60000 = 120000 = 17142×7 + 6.
		Name: "fractional interval", TAT: TAT{8571, 3}, Now: 0, Window: minute, Limit: 7, Delta: 1,
		Want: TAT{17_142, 6},
	},
	{
		Name: "charge on a stale TAT starts from now", TAT: TAT{10, 3}, Now: 1000, Window: minute, Limit: 100, Delta: 2,
		Want: TAT{2200, 0},
	},
	{Name: "zero delta leaves the TAT as it is", TAT: TAT{5, 7}, Now: 1000, Window: minute, Limit: 100, Delta: 0, Want: TAT{5, 7}},
	{Name: "invalid window leaves the TAT as it is", TAT: TAT{5, 7}, Now: 1000, Window: 0, Limit: 100, Delta: 5, Want: TAT{5, 7}},
	{
		Name: "most negative delta", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: math.MinInt64,
		Want: TAT{1_000_000, 0},
	},
	{
		Name: "most positive delta", TAT: TAT{1_000_600, 0}, Now: 1_000_000, Window: minute, Limit: 100, Delta: math.MaxInt64,
		Want: TAT{1_120_000, 0},
	},
}

// CapVectors exercise the per-period caps.
var CapVectors = []CapVector{
	{Name: "room", Used: 10, Reserved: 20, Limit: 100, Cost: 30, WantAllowed: true, WantRemaining: 40},
	{Name: "reaching the cap exactly", Used: 10, Reserved: 20, Limit: 100, Cost: 70, WantAllowed: true, WantRemaining: 0},
	{Name: "one over the cap", Used: 10, Reserved: 20, Limit: 100, Cost: 71, WantAllowed: false, WantRemaining: 70},
	{Name: "exhausted by reservations, zero cost", Used: 60, Reserved: 40, Limit: 100, Cost: 0, WantAllowed: false, WantRemaining: 0},
	{Name: "zero cost with one unit left", Used: 99, Reserved: 0, Limit: 100, Cost: 0, WantAllowed: true, WantRemaining: 1},
	{Name: "used beyond the cap", Used: 150, Reserved: 0, Limit: 100, Cost: 1, WantAllowed: false, WantRemaining: 0},
	{Name: "negative spend counts as zero", Used: -500, Reserved: 0, Limit: 100, Cost: 100, WantAllowed: true, WantRemaining: 0},
	{Name: "negative reserved and cost count as zero", Used: 0, Reserved: -3, Limit: 10, Cost: -4, WantAllowed: true, WantRemaining: 10},
	{Name: "zero limit admits nothing", Used: 0, Reserved: 0, Limit: 0, Cost: 0, WantAllowed: false, WantRemaining: 0},
	{Name: "largest values", Used: MaxValue - 1, Reserved: 0, Limit: MaxValue, Cost: 1, WantAllowed: true, WantRemaining: 0},
	{Name: "extreme inputs", Used: math.MinInt64, Reserved: math.MaxInt64, Limit: MaxValue, Cost: math.MaxInt64, WantAllowed: false, WantRemaining: 0},
}

// WalletVectors exercise the prepaid balance check.
var WalletVectors = []WalletVector{
	{Name: "covers exactly", Balance: 1000, Reserved: 400, Estimate: 600, Want: true},
	{Name: "one short", Balance: 1000, Reserved: 400, Estimate: 601, Want: false},
	{Name: "empty after reservations, zero estimate", Balance: 1000, Reserved: 1000, Estimate: 0, Want: false},
	{Name: "one nano left, zero estimate", Balance: 1, Reserved: 0, Estimate: 0, Want: true},
	{Name: "overdrawn", Balance: -50, Reserved: 0, Estimate: 0, Want: false},
	{Name: "negative reserved counts as zero", Balance: 10, Reserved: -5, Estimate: 10, Want: true},
	{Name: "extreme inputs", Balance: math.MaxInt64, Reserved: math.MinInt64, Estimate: math.MaxInt64, Want: true},
}

// ConcurrencyVectors exercise the in-flight check.
var ConcurrencyVectors = []ConcurrencyVector{
	{Name: "first slot", InFlight: 0, Limit: 1, Want: true},
	{Name: "only slot taken", InFlight: 1, Limit: 1, Want: false},
	{Name: "last slot", InFlight: 7, Limit: 8, Want: true},
	{Name: "all slots taken", InFlight: 8, Limit: 8, Want: false},
	{Name: "zero limit admits nothing", InFlight: 0, Limit: 0, Want: false},
}

// The Decide and Settle vectors share one customer: every dimension limited, a day left in the
// period, $1 in the wallet, and a request estimated at 2000 tokens and $0.03.
const (
	vNow       = 1_700_000_000_000
	vPeriodEnd = vNow + 86_400_000
)

var (
	vLimits = Limits{
		Window: minute, RequestsPerWindow: 60, TokensPerWindow: 100_000,
		MonthlyTokens: 1_000_000, MonthlySpend: 5_000_000_000, MaxConcurrent: 2, WalletLimited: true,
	}
	vRequest = Request{Limits: vLimits, Estimate: Usage{Tokens: 2000, Nanos: 30_000_000}, PeriodEnd: vPeriodEnd}
	vState   = State{Balance: 1_000_000_000}
	// vAdmitted is vState after admitting vRequest at vNow: 1 request is 1000 ms of the RPM
	// bucket (60000/60), 2000 tokens 1200 ms of the TPM bucket (2000×60000/100000).
	vAdmitted = State{
		RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 1200, 0},
		ReservedTokens: 2000, ReservedNanos: 30_000_000, InFlight: 1, Balance: 1_000_000_000,
	}
)

// vQuotas are the quotas of vState (nothing used, reserved or in flight), with changes.
func vQuotas(changes ...func(*[NumDimensions]Quota)) [NumDimensions]Quota {
	return withQuotas([NumDimensions]Quota{
		DimMonthlySpend:  {Active: true, Limit: 5_000_000_000, Remaining: 5_000_000_000, ResetAfter: 86_400_000},
		DimMonthlyTokens: {Active: true, Limit: 1_000_000, Remaining: 1_000_000, ResetAfter: 86_400_000},
		DimWallet:        {Active: true, Limit: 1_000_000_000, Remaining: 1_000_000_000},
		DimTPM:           {Active: true, Limit: 100_000, Remaining: 100_000},
		DimRPM:           {Active: true, Limit: 60, Remaining: 60},
		DimConcurrency:   {Active: true, Limit: 2, Remaining: 2},
	}, changes...)
}

// withQuotas returns q with changes applied.
func withQuotas(q [NumDimensions]Quota, changes ...func(*[NumDimensions]Quota)) [NumDimensions]Quota {
	for _, c := range changes {
		c(&q)
	}
	return q
}

func setQ(d Dimension, v Quota) func(*[NumDimensions]Quota) {
	return func(q *[NumDimensions]Quota) { q[d] = v }
}

// vAdmittedQuotas are the quotas right after vRequest was admitted.
var vAdmittedQuotas = vQuotas(
	setQ(DimMonthlySpend, Quota{Active: true, Limit: 5_000_000_000, Remaining: 4_970_000_000, ResetAfter: 86_400_000}),
	setQ(DimMonthlyTokens, Quota{Active: true, Limit: 1_000_000, Remaining: 998_000, ResetAfter: 86_400_000}),
	setQ(DimWallet, Quota{Active: true, Limit: 1_000_000_000, Remaining: 970_000_000}),
	setQ(DimTPM, Quota{Active: true, Limit: 100_000, Remaining: 98_000, ResetAfter: 1200}),
	setQ(DimRPM, Quota{Active: true, Limit: 60, Remaining: 59, ResetAfter: 1000}),
	setQ(DimConcurrency, Quota{Active: true, Limit: 2, Remaining: 1}),
)

func dims(ds ...Dimension) DimSet {
	var s DimSet
	for _, d := range ds {
		s |= 1 << d
	}
	return s
}

// withState returns s changed by f: a vector's state is the shared one with a few fields set.
func withState(s State, f func(*State)) State {
	f(&s)
	return s
}

// DecideVectors exercise the combined decision: all-or-nothing, every reason, the precedence,
// the retry-after rule, Never, the quotas, unlimited dimensions, drift and invalid input.
var DecideVectors = []DecideVector{
	{
		Name: "fresh customer is admitted", State: vState, Request: vRequest, Now: vNow,
		Want: Decision{Allowed: true, State: vAdmitted, Reserved: Usage{2000, 30_000_000}, Quotas: vAdmittedQuotas},
	},
	{
		Name:  "breaker open denies with its wait",
		State: withState(vState, func(s *State) { s.BreakerUntil = vNow + 300_000 }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimBreaker, Failed: dims(DimBreaker), RetryAfter: 300_000,
			State: withState(vState, func(s *State) { s.BreakerUntil = vNow + 300_000 }), Quotas: vQuotas(),
		},
	},
	{
		Name:  "breaker closes at its instant",
		State: withState(vState, func(s *State) { s.BreakerUntil = vNow }), Request: vRequest, Now: vNow,
		Want: Decision{
			Allowed: true, State: withState(vAdmitted, func(s *State) { s.BreakerUntil = vNow }),
			Reserved: Usage{2000, 30_000_000}, Quotas: vAdmittedQuotas,
		},
	},
	{
		Name:  "task breaker open",
		State: withState(vState, func(s *State) { s.TaskBreakerUntil = vNow + 1 }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimTaskBreaker, Failed: dims(DimTaskBreaker), RetryAfter: 1,
			State: withState(vState, func(s *State) { s.TaskBreakerUntil = vNow + 1 }), Quotas: vQuotas(),
		},
	},
	{
		Name:  "all slots in flight",
		State: withState(vState, func(s *State) { s.InFlight = 2 }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimConcurrency, Failed: dims(DimConcurrency),
			State:  withState(vState, func(s *State) { s.InFlight = 2 }),
			Quotas: vQuotas(setQ(DimConcurrency, Quota{Active: true, Limit: 2, Remaining: 0})),
		},
	},
	{
		// 60 requests at once: debt 60000×60 = capacity; need 60000 → ⌈60000/60⌉ = 1000.
		Name:  "requests per minute exhausted: the GCRA's exact wait",
		State: withState(vState, func(s *State) { s.RPM = TAT{vNow + minute, 0} }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimRPM, Failed: dims(DimRPM), RetryAfter: 1000,
			State:  withState(vState, func(s *State) { s.RPM = TAT{vNow + minute, 0} }),
			Quotas: vQuotas(setQ(DimRPM, Quota{Active: true, Limit: 60, Remaining: 0, ResetAfter: minute})),
		},
	},
	{
		// debt 59000×1e5 = 5.9e9; + 2000×6e4 > 6e9; need 5.9e9 − 98000×6e4 = 2e7 → 200 ms.
		// remaining ⌊1e8/6e4⌋ = 1666.
		Name:  "tokens per minute: the GCRA's exact wait",
		State: withState(vState, func(s *State) { s.TPM = TAT{vNow + 59_000, 0} }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimTPM, Failed: dims(DimTPM), RetryAfter: 200,
			State:  withState(vState, func(s *State) { s.TPM = TAT{vNow + 59_000, 0} }),
			Quotas: vQuotas(setQ(DimTPM, Quota{Active: true, Limit: 100_000, Remaining: 1666, ResetAfter: 59_000})),
		},
	},
	{
		// monthly tokens: 999000 + 2000 > 1e6 with settled usage alone → wait for the period end,
		// which outlasts the RPM wait; the cap outranks RPM and concurrency.
		Name: "several failing: precedence names the cap, the wait is the longest",
		State: withState(vState, func(s *State) {
			s.UsedTokens = 999_000
			s.RPM = TAT{vNow + minute, 0}
			s.InFlight = 2
		}),
		Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimMonthlyTokens, Failed: dims(DimMonthlyTokens, DimRPM, DimConcurrency), RetryAfter: 86_400_000,
			State: withState(vState, func(s *State) {
				s.UsedTokens = 999_000
				s.RPM = TAT{vNow + minute, 0}
				s.InFlight = 2
			}),
			Quotas: vQuotas(
				setQ(DimMonthlyTokens, Quota{Active: true, Limit: 1_000_000, Remaining: 1000, ResetAfter: 86_400_000}),
				setQ(DimRPM, Quota{Active: true, Limit: 60, Remaining: 0, ResetAfter: minute}),
				setQ(DimConcurrency, Quota{Active: true, Limit: 2, Remaining: 0}),
			),
		},
	},
	{
		Name:    "estimate above the tokens-per-minute limit never fits",
		State:   withState(vState, func(s *State) { s.RPM = TAT{vNow + minute, 0} }),
		Request: Request{Limits: vLimits, Estimate: Usage{Tokens: 100_001, Nanos: 30_000_000}, PeriodEnd: vPeriodEnd},
		Now:     vNow,
		Want: Decision{
			Reason: DimTPM, Never: true, Failed: dims(DimTPM, DimRPM),
			State:  withState(vState, func(s *State) { s.RPM = TAT{vNow + minute, 0} }),
			Quotas: vQuotas(setQ(DimRPM, Quota{Active: true, Limit: 60, Remaining: 0, ResetAfter: minute})),
		},
	},
	{
		// $6 > the $5 cap can never fit; it outranks the breaker. The $1 wallet fails as well.
		Name:    "estimate above the spend cap never fits, whatever else fails",
		State:   withState(vState, func(s *State) { s.BreakerUntil = vNow + 1000 }),
		Request: Request{Limits: vLimits, Estimate: Usage{Tokens: 2000, Nanos: 6_000_000_000}, PeriodEnd: vPeriodEnd},
		Now:     vNow,
		Want: Decision{
			Reason: DimMonthlySpend, Never: true, Failed: dims(DimBreaker, DimMonthlySpend, DimWallet),
			State:  withState(vState, func(s *State) { s.BreakerUntil = vNow + 1000 }),
			Quotas: vQuotas(),
		},
	},
	{
		// 4.9e9 used + 8e7 reserved + 3e7 > 5e9, but 4.9e9 + 3e7 fits: only reservations block.
		Name: "spend cap held by open reservations only: wait 0",
		State: withState(vState, func(s *State) {
			s.UsedNanos, s.ReservedNanos, s.InFlight = 4_900_000_000, 80_000_000, 1
		}),
		Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimMonthlySpend, Failed: dims(DimMonthlySpend),
			State: withState(vState, func(s *State) {
				s.UsedNanos, s.ReservedNanos, s.InFlight = 4_900_000_000, 80_000_000, 1
			}),
			Quotas: vQuotas(
				setQ(DimMonthlySpend, Quota{Active: true, Limit: 5_000_000_000, Remaining: 20_000_000, ResetAfter: 86_400_000}),
				setQ(DimWallet, Quota{Active: true, Limit: 1_000_000_000, Remaining: 920_000_000}),
				setQ(DimConcurrency, Quota{Active: true, Limit: 2, Remaining: 1}),
			),
		},
	},
	{
		Name:    "period already over: a cap reports no wait",
		State:   withState(vState, func(s *State) { s.UsedTokens = 1_000_000 }),
		Request: Request{Limits: vLimits, Estimate: vRequest.Estimate, PeriodEnd: vNow - 1},
		Now:     vNow,
		Want: Decision{
			Reason: DimMonthlyTokens, Failed: dims(DimMonthlyTokens),
			State: withState(vState, func(s *State) { s.UsedTokens = 1_000_000 }),
			Quotas: vQuotas(
				setQ(DimMonthlySpend, Quota{Active: true, Limit: 5_000_000_000, Remaining: 5_000_000_000}),
				setQ(DimMonthlyTokens, Quota{Active: true, Limit: 1_000_000, Remaining: 0}),
			),
		},
	},
	{
		Name:  "wallet does not cover the estimate",
		State: withState(vState, func(s *State) { s.Balance = 20_000_000 }), Request: vRequest, Now: vNow,
		Want: Decision{
			Reason: DimWallet, Failed: dims(DimWallet),
			State:  withState(vState, func(s *State) { s.Balance = 20_000_000 }),
			Quotas: vQuotas(setQ(DimWallet, Quota{Active: true, Limit: 20_000_000, Remaining: 20_000_000})),
		},
	},
	{
		Name:  "a customer without wallet grants is not wallet-limited",
		State: State{},
		Request: Request{
			Limits:   withLimits(vLimits, func(l *Limits) { l.WalletLimited = false }),
			Estimate: vRequest.Estimate, PeriodEnd: vPeriodEnd,
		},
		Now: vNow,
		Want: Decision{
			Allowed: true, State: withState(vAdmitted, func(s *State) { s.Balance = 0 }),
			Reserved: Usage{2000, 30_000_000}, Quotas: withQuotas(vAdmittedQuotas, setQ(DimWallet, Quota{})),
		},
	},
	{
		Name:    "no limits: nothing is checked, reservations are still kept",
		State:   State{RPM: TAT{123, 4}, TPM: TAT{5, 6}, InFlight: 5, UsedNanos: -7},
		Request: Request{Estimate: Usage{Tokens: 10, Nanos: 20}},
		Now:     vNow,
		Want: Decision{
			Allowed: true, Reserved: Usage{10, 20},
			State: State{RPM: TAT{123, 4}, TPM: TAT{5, 6}, InFlight: 6, UsedNanos: -7, ReservedTokens: 10, ReservedNanos: 20},
		},
	},
	{
		Name:    "drifted counters are clamped on read",
		State:   withState(vState, func(s *State) { s.InFlight, s.ReservedTokens, s.ReservedNanos = -3, -10, -20 }),
		Request: vRequest, Now: vNow,
		Want: Decision{Allowed: true, State: vAdmitted, Reserved: Usage{2000, 30_000_000}, Quotas: vAdmittedQuotas},
	},
	{
		Name:    "rate limit without a window is invalid",
		State:   vState,
		Request: Request{Limits: Limits{RequestsPerWindow: 60}, Estimate: vRequest.Estimate},
		Now:     vNow,
		Want:    Decision{Reason: DimInvalid, Failed: dims(DimInvalid), State: vState},
	},
	{
		Name:    "negative estimate is invalid",
		State:   vState,
		Request: Request{Limits: vLimits, Estimate: Usage{Tokens: -1}, PeriodEnd: vPeriodEnd},
		Now:     vNow,
		Want:    Decision{Reason: DimInvalid, Failed: dims(DimInvalid), State: vState},
	},
	{
		Name: "negative now is invalid", State: vState, Request: vRequest, Now: -1,
		Want: Decision{Reason: DimInvalid, Failed: dims(DimInvalid), State: vState},
	},
}

func withLimits(l Limits, f func(*Limits)) Limits {
	f(&l)
	return l
}

// SettleVectors exercise settlement: usage counted, reservation freed, the wallet burned and
// the tokens bucket adjusted by actual − estimated tokens.
var SettleVectors = []SettleVector{
	{
		Name: "usage equal to the estimate", State: vAdmitted, Reserved: Usage{2000, 30_000_000}, Actual: Usage{2000, 30_000_000},
		Limits: vLimits, Now: vNow + 500,
		Want: State{
			RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 1200, 0},
			UsedTokens: 2000, UsedNanos: 30_000_000, Balance: 970_000_000,
		},
	},
	{
		// at +500 the TPM debt is 700×1e5 = 7e7; 3000 excess tokens add 1.8e8 → 2.5e8 = 2500 ms.
		Name: "tokens beyond the estimate are charged", State: vAdmitted, Reserved: Usage{2000, 30_000_000},
		Actual: Usage{5000, 75_000_000}, Limits: vLimits, Now: vNow + 500,
		Want: State{
			RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 3000, 0},
			UsedTokens: 5000, UsedNanos: 75_000_000, Balance: 925_000_000,
		},
	},
	{
		// at vNow the debt is 1.2e8; 1500 unused tokens give back 9e7 → 3e7 = 300 ms.
		Name: "unused estimated tokens are given back", State: vAdmitted, Reserved: Usage{2000, 30_000_000},
		Actual: Usage{500, 10_000_000}, Limits: vLimits, Now: vNow,
		Want: State{
			RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 300, 0},
			UsedTokens: 500, UsedNanos: 10_000_000, Balance: 990_000_000,
		},
	},
	{
		// at +500 the debt is 7e7 < 9e7: the bucket is empty, never below.
		Name: "give-back stops at an empty bucket", State: vAdmitted, Reserved: Usage{2000, 30_000_000},
		Actual: Usage{500, 10_000_000}, Limits: vLimits, Now: vNow + 500,
		Want: State{
			RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 500, 0},
			UsedTokens: 500, UsedNanos: 10_000_000, Balance: 990_000_000,
		},
	},
	{
		Name:  "negative spend, no wallet, no token limit",
		State: vAdmitted, Reserved: Usage{2000, 30_000_000}, Actual: Usage{0, -10_000_000},
		Limits: Limits{MonthlySpend: 5_000_000_000}, Now: vNow,
		Want: State{
			RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 1200, 0},
			UsedNanos: -10_000_000, Balance: 1_000_000_000,
		},
	},
	{
		Name: "counters saturate",
		State: State{
			UsedTokens: MaxValue - 1, UsedNanos: MaxValue - 1, Balance: -MaxValue + 5,
			ReservedTokens: 1, ReservedNanos: 1, InFlight: 1,
		},
		Reserved: Usage{1, 1}, Actual: Usage{10, 100},
		Limits: Limits{WalletLimited: true}, Now: vNow,
		Want: State{UsedTokens: MaxValue, UsedNanos: MaxValue, Balance: -MaxValue},
	},
	{
		Name:     "negative actual tokens count as zero",
		State:    State{ReservedTokens: 5, InFlight: 1},
		Reserved: Usage{5, 0}, Actual: Usage{-3, 0},
		Limits: Limits{}, Now: vNow,
		Want: State{},
	},
}

// ReleaseVectors exercise ending a reservation without usage.
var ReleaseVectors = []ReleaseVector{
	{
		Name: "release frees the reservation, the buckets keep their charge", State: vAdmitted, Reserved: Usage{2000, 30_000_000},
		Want: State{RPM: TAT{vNow + 1000, 0}, TPM: TAT{vNow + 1200, 0}, Balance: 1_000_000_000},
	},
	{
		Name: "release never goes below zero", State: State{ReservedTokens: 100, ReservedNanos: 5}, Reserved: Usage{500, 6},
		Want: State{},
	},
	{
		Name: "drifted counters are clamped", State: State{ReservedTokens: -100, InFlight: -4, UsedTokens: -9}, Reserved: Usage{-5, -5},
		Want: State{UsedTokens: -9},
	},
}
