package limit

// Bounds on every value this package reads or writes. They keep each intermediate result an
// integer below 2^53, so a Redis Lua script, whose only number type is a double, computes
// exactly what these Go functions compute.
const (
	// MaxValue is the largest magnitude of a count or an amount: 2^53−1, the largest integer
	// a double holds exactly together with all smaller ones. Money is in nanos, so a cap,
	// balance or estimate may reach about 9 million currency units.
	MaxValue int64 = 1<<53 - 1
	// MaxTime is the latest instant (now, PeriodEnd, breaker times): 2^52 time units,
	// about 142,000 years of milliseconds since 1970.
	MaxTime int64 = 1 << 52
	// MaxWindowUnits bounds window × limit of a rate limit: 2^50, e.g. 18 billion tokens per
	// minute when time is in milliseconds.
	MaxWindowUnits int64 = 1 << 50
	// DebtCapWindows bounds what a charge without denial (GCRAAdjust, settlement) can do: it
	// never takes a bucket's debt beyond this many windows, so one oversized stream blocks its
	// customer for at most that long.
	DebtCapWindows int64 = 2
	// HorizonWindows is how far ahead of now a TAT may lie and still be believed. Nothing this
	// package writes lies more than DebtCapWindows ahead, so a TAT further out can only come
	// from a clock that stepped back (or a corrupt value): it reads as an empty bucket.
	HorizonWindows int64 = 4
)

// TAT is the state of one GCRA bucket: the theoretical arrival time At + Frac/limit, in the
// caller's time unit. Keeping the fraction as its own integer makes the emission interval
// window/limit exact for any limit without multiplying absolute times by the limit (which
// would leave the exact range of a double for any realistic tokens-per-minute limit).
//
// The zero TAT is an empty bucket. Any pair of integers is accepted on read: a Frac outside
// [0, limit) is clamped into it (this happens when the limit changes between calls, and moves
// the TAT by less than one time unit), and a TAT in the past is an empty bucket.
type TAT struct {
	At   int64 // whole time units
	Frac int64 // the fraction of a time unit, in units of 1/limit
}

// GCRAResult is the outcome of one GCRA check. Remaining and ResetAfter describe the bucket
// after the call: after the charge when Allowed, as it was when denied.
type GCRAResult struct {
	// TAT is the new state when Allowed; when denied it is the input TAT, unchanged.
	TAT TAT
	// Allowed reports that the cost fitted and was charged.
	Allowed bool
	// Never reports a cost that cannot fit even in an empty bucket (cost > limit), or a call
	// outside the documented ranges; RetryAfter is then 0, since no wait helps.
	Never bool
	// RetryAfter, when denied and not Never, is the exact wait before the same call would be
	// allowed, if nothing else is charged meanwhile: allowed at now+RetryAfter, denied at
	// now+RetryAfter−1. It is 0 when Allowed.
	RetryAfter int64
	// Remaining is how many unit-cost calls would be allowed right now: 0 to limit.
	Remaining int64
	// ResetAfter is the wait until the bucket is full again (Remaining = limit), rounded up
	// to a whole time unit; 0 when it is full.
	ResetAfter int64
}

// GCRA checks and charges a generic-cell-rate bucket allowing limit units per window, with a
// burst of limit: an empty bucket admits limit units at once, and units flow back at one per
// window/limit. now and window are in one time unit of the caller's choice (milliseconds in
// Levy); cost is the units this call takes (1 for requests, the token estimate for tokens).
//
// The bucket is checked in scaled units (time × limit), in which the emission interval is
// exactly window and the capacity exactly window × limit. With debt = max(TAT − now, 0)
// scaled, a call is allowed iff debt + max(cost, 1) × window ≤ window × limit, and then
// charges cost × window. A cost of 0 therefore charges nothing and passes only while at
// least one unit is left: an exhausted bucket admits nothing.
//
// Preconditions (otherwise the call is denied with Never set, TAT unchanged): 1 ≤ window,
// 1 ≤ limit, window × limit ≤ MaxWindowUnits, 0 ≤ now ≤ MaxTime, 0 ≤ cost.
func GCRA(tat TAT, now, window, limit, cost int64) GCRAResult {
	if !rateValid(now, window, limit) || cost < 0 {
		return GCRAResult{TAT: tat, Never: true}
	}
	capacity := window * limit
	d := debt(tat, now, window, limit)
	if cost > limit {
		rem, reset := status(d, window, limit)
		return GCRAResult{TAT: tat, Never: true, Remaining: rem, ResetAfter: reset}
	}
	c := max(cost, 1)
	if d+c*window <= capacity {
		nd := d + cost*window
		rem, reset := status(nd, window, limit)
		return GCRAResult{TAT: fromDebt(nd, now, limit), Allowed: true, Remaining: rem, ResetAfter: reset}
	}
	// Denied: wait until debt − Δ·limit ≤ capacity − c·window. need > 0 here.
	need := d - (limit-c)*window
	rem, reset := status(d, window, limit)
	return GCRAResult{TAT: tat, RetryAfter: ceilDiv(need, limit), Remaining: rem, ResetAfter: reset}
}

// GCRAAdjust charges delta units to a bucket without any check (delta < 0 gives units back).
// Settlement uses it to charge tokens a stream used beyond its estimate, so a heavy stream
// slows the calls after it, and to give back the part of an estimate that went unused.
//
//   - A positive delta raises the debt by delta × window, but never beyond DebtCapWindows
//     windows; a debt already beyond that (a clock that stepped back) is left as it is: a
//     charge never lowers the debt.
//   - A negative delta lowers the debt by |delta| × window, never below an empty bucket: what
//     has already flowed back is not given twice.
//   - A delta of 0, or a call outside GCRA's preconditions, returns tat unchanged; any other
//     call returns the TAT normalised relative to now (At ≥ now, 0 ≤ Frac < limit).
func GCRAAdjust(tat TAT, now, window, limit, delta int64) TAT {
	if delta == 0 || !rateValid(now, window, limit) {
		return tat
	}
	delta = clamp(delta, -MaxValue, MaxValue)
	d := debt(tat, now, window, limit)
	var nd int64
	if delta > 0 {
		// Units beyond DebtCapWindows×limit would only hit the cap; bounding them first keeps
		// delta×window small.
		x := min(delta, DebtCapWindows*limit)
		nd = max(d, min(d+x*window, DebtCapWindows*window*limit))
	} else {
		x := min(-delta, HorizonWindows*limit)
		nd = max(d-x*window, 0)
	}
	return fromDebt(nd, now, limit)
}

// GCRAStatus reports a bucket's Remaining and ResetAfter without charging it, as GCRA would.
// Outside GCRA's preconditions it returns zeros.
func GCRAStatus(tat TAT, now, window, limit int64) (remaining, resetAfter int64) {
	if !rateValid(now, window, limit) {
		return 0, 0
	}
	return status(debt(tat, now, window, limit), window, limit)
}

// rateValid reports whether a bucket's parameters are inside the exact range.
func rateValid(now, window, limit int64) bool {
	return now >= 0 && now <= MaxTime && window >= 1 && limit >= 1 && limit <= MaxWindowUnits/window
}

// debt returns max(TAT − now, 0) in scaled units (time × limit). A TAT more than
// HorizonWindows windows ahead reads as empty (see HorizonWindows). The order of the
// comparisons keeps every intermediate small and free of overflow for any int64 input.
func debt(t TAT, now, window, limit int64) int64 {
	if t.At < now {
		return 0
	}
	dt := t.At - now
	if dt > HorizonWindows*window {
		return 0
	}
	d := dt*limit + clamp(t.Frac, 0, limit-1)
	if d > HorizonWindows*window*limit {
		return 0
	}
	return d
}

// fromDebt is the normalised TAT lying d scaled units after now.
func fromDebt(d, now, limit int64) TAT {
	return TAT{At: now + d/limit, Frac: d % limit}
}

// status turns a scaled debt into the reported Remaining and ResetAfter.
func status(d, window, limit int64) (remaining, resetAfter int64) {
	capacity := window * limit
	if d < capacity {
		remaining = (capacity - d) / window
	}
	return remaining, ceilDiv(d, limit)
}

// ceilDiv is ⌈a/b⌉ for a ≥ 0, b ≥ 1.
func ceilDiv(a, b int64) int64 {
	return (a + b - 1) / b
}

func clamp(x, lo, hi int64) int64 {
	return min(max(x, lo), hi)
}
