package limit

import "math/bits"

// Dimension is one thing a decision checks, and so the reason a request is denied. The order
// of the constants from DimBreaker on is the precedence of reasons (see the package doc).
type Dimension uint8

// The dimensions, in precedence order.
const (
	// DimNone: no reason; the request was allowed.
	DimNone Dimension = iota
	// DimInvalid: the request or now is outside the documented ranges (Request.Validate says
	// which field); nothing was checked or changed.
	DimInvalid
	// DimBreaker: the customer's margin-guard breaker is open.
	DimBreaker
	// DimTaskBreaker: the breaker of the request's task (an agent run) is open.
	DimTaskBreaker
	// DimMonthlySpend: the per-period spend cap.
	DimMonthlySpend
	// DimMonthlyTokens: the per-period token cap.
	DimMonthlyTokens
	// DimWallet: the prepaid balance does not cover the estimate.
	DimWallet
	// DimTPM: the tokens-per-window rate limit.
	DimTPM
	// DimRPM: the requests-per-window rate limit.
	DimRPM
	// DimConcurrency: the most requests in flight at once.
	DimConcurrency
	// NumDimensions is the number of dimensions, DimNone included: the length of
	// Decision.Quotas.
	NumDimensions
)

// String returns the reason code the API reports for a denial on this dimension.
func (d Dimension) String() string {
	switch d {
	case DimNone:
		return ""
	case DimInvalid:
		return "invalid_request"
	case DimBreaker:
		return "margin_guard"
	case DimTaskBreaker:
		return "task_margin_guard"
	case DimMonthlySpend:
		return "monthly_spend"
	case DimMonthlyTokens:
		return "monthly_tokens"
	case DimWallet:
		return "wallet_balance"
	case DimTPM:
		return "tokens_per_minute"
	case DimRPM:
		return "requests_per_minute"
	case DimConcurrency:
		return "max_concurrent"
	}
	return "unknown"
}

// DimSet is a set of dimensions: bit d is set when dimension d is in it.
type DimSet uint16

// Has reports whether d is in the set.
func (s DimSet) Has(d Dimension) bool { return d < NumDimensions && s&(1<<d) != 0 }

// Limits are a customer's effective limits, as integers. A limit of 0 means that dimension is
// not limited and is neither checked nor reported; negative limits are invalid.
type Limits struct {
	// Window is the length of the rate-limit window in the caller's time unit (60,000 for
	// per-minute limits in milliseconds). Required (≥ 1) when either rate limit is set.
	Window int64
	// RequestsPerWindow and TokensPerWindow are the rate limits, with a burst of the full
	// limit; window × limit must not exceed MaxWindowUnits.
	RequestsPerWindow int64
	TokensPerWindow   int64
	// MonthlyTokens and MonthlySpend (nanos) cap the current billing period, whatever its
	// length; they reset at Request.PeriodEnd, when the caller starts the new period's counters.
	MonthlyTokens int64
	MonthlySpend  int64
	// MaxConcurrent is the most requests in flight (admitted, not yet settled or released).
	MaxConcurrent int64
	// WalletLimited: the customer has wallet grants, so its balance must cover each estimate.
	// A customer without any grant is not wallet-limited; the caller decides which it is.
	WalletLimited bool
}

// Usage is an amount of tokens and money (nanos): a request's estimate, a reservation, or
// the actual usage that settles one.
type Usage struct {
	Tokens int64
	Nanos  int64
}

// Request is one authorize call: the customer's limits, the request's estimate, and the end
// of the current billing period (same time unit as now).
type Request struct {
	Limits   Limits
	Estimate Usage
	// PeriodEnd is when the per-period caps reset; a denial on them reports the wait until it.
	PeriodEnd int64
}

// State is everything a decision reads and writes for one customer (and, for the task
// breaker, one task). A store holds it as integers; the zero State is a customer with nothing
// used, reserved or in flight, an empty wallet and closed breakers.
//
// Decide accepts any State: counters outside their ranges are clamped on read (a negative
// in-flight count reads as 0, a count beyond MaxValue as MaxValue), so a store's drift can
// never make a decision overflow or panic.
type State struct {
	// RPM and TPM are the two rate-limit buckets.
	RPM, TPM TAT
	// UsedTokens is the period's settled tokens; ReservedTokens those held by open
	// reservations. Range [0, MaxValue].
	UsedTokens, ReservedTokens int64
	// UsedNanos is the period's settled spend (range ±MaxValue: volume pricing may take it
	// below zero, which the cap counts as zero); ReservedNanos the money held by open
	// reservations, counted against both the spend cap and the wallet. Range [0, MaxValue].
	UsedNanos, ReservedNanos int64
	// InFlight is the number of open reservations. Range [0, MaxValue].
	InFlight int64
	// Balance is the wallet's net balance in nanos; it may be negative (overdrawn by settled
	// usage). Range ±MaxValue.
	Balance int64
	// BreakerUntil and TaskBreakerUntil are the instants until which the customer's and the
	// task's breakers are open: open iff now < until. 0 is closed; MaxTime is open until an
	// operator closes it.
	BreakerUntil, TaskBreakerUntil int64
}

// Quota is one dimension's figures for the remaining-quota headers and the response body.
type Quota struct {
	// Active reports that the dimension is limited for this customer.
	Active bool
	// Limit is the dimension's limit; for the wallet, the balance (which may be ≤ 0).
	Limit int64
	// Remaining is what is left now, after this decision: unit requests or tokens that would
	// pass the rate limits right now, headroom under a cap, free slots, or the wallet balance
	// not held by reservations. Never negative.
	Remaining int64
	// ResetAfter is the wait until the dimension is whole again: a rate bucket full, a cap's
	// period over (PeriodEnd − now, at least 0). 0 for concurrency and the wallet.
	ResetAfter int64
}

// Decision is the outcome of Decide.
type Decision struct {
	// Allowed: every dimension passed, and State holds every increment.
	Allowed bool
	// Reason is the denying dimension of highest precedence (DimNone when allowed).
	Reason Dimension
	// Never: some dimension can never admit this request, whatever the wait (its estimate
	// exceeds the whole limit); Reason names the first such dimension and RetryAfter is 0.
	Never bool
	// Failed is every dimension that denied the request.
	Failed DimSet
	// RetryAfter is the earliest wait after which every failing dimension would pass if
	// nothing else happened meanwhile: the largest of their waits. Per dimension: a rate
	// limit's exact GCRA wait; a cap exhausted by settled usage, the wait until PeriodEnd; a
	// breaker, the wait until it closes; 0 ("when some reservation ends") for concurrency, the
	// wallet, and a cap held only by open reservations. 0 on allow and on Never.
	RetryAfter int64
	// State is the new state when allowed, and exactly the input state when denied.
	State State
	// Reserved is what an allowed request holds until Settle or Release: its estimate.
	Reserved Usage
	// Quotas holds each dimension's figures after the decision, indexed by Dimension.
	Quotas [NumDimensions]Quota
}

// Decide checks every dimension of one request against a customer's state and either applies
// all of its effects or none:
//
//   - allowed: the rate buckets are charged (1 request, Estimate.Tokens tokens), the estimate
//     is added to ReservedTokens and ReservedNanos, and InFlight grows by one;
//   - denied: State is returned unchanged, Reason names the dimension of highest precedence
//     that failed, Failed lists them all, and RetryAfter is the wait before all could pass.
//
// now is in the time unit of Limits.Window and Request.PeriodEnd. A Request that fails
// Validate, or a now outside [0, MaxTime], is denied with DimInvalid.
func Decide(st State, req Request, now int64) Decision {
	d := Decision{State: st}
	if !req.valid() || now < 0 || now > MaxTime {
		d.fail(DimInvalid, 0, false)
		return d
	}
	lim, est := req.Limits, req.Estimate
	c := st.norm()

	if c.BreakerUntil > now {
		d.fail(DimBreaker, c.BreakerUntil-now, false)
	}
	if c.TaskBreakerUntil > now {
		d.fail(DimTaskBreaker, c.TaskBreakerUntil-now, false)
	}
	if lim.MonthlySpend > 0 {
		if ok, _ := Cap(c.UsedNanos, c.ReservedNanos, lim.MonthlySpend, est.Nanos); !ok {
			d.fail(DimMonthlySpend, capRetry(c.UsedNanos, lim.MonthlySpend, est.Nanos, req.PeriodEnd, now),
				est.Nanos > lim.MonthlySpend)
		}
	}
	if lim.MonthlyTokens > 0 {
		if ok, _ := Cap(c.UsedTokens, c.ReservedTokens, lim.MonthlyTokens, est.Tokens); !ok {
			d.fail(DimMonthlyTokens, capRetry(c.UsedTokens, lim.MonthlyTokens, est.Tokens, req.PeriodEnd, now),
				est.Tokens > lim.MonthlyTokens)
		}
	}
	if lim.WalletLimited && !Wallet(c.Balance, c.ReservedNanos, est.Nanos) {
		d.fail(DimWallet, 0, false)
	}
	var tpm, rpm GCRAResult
	if lim.TokensPerWindow > 0 {
		tpm = GCRA(c.TPM, now, lim.Window, lim.TokensPerWindow, est.Tokens)
		if !tpm.Allowed {
			d.fail(DimTPM, tpm.RetryAfter, tpm.Never)
		}
	}
	if lim.RequestsPerWindow > 0 {
		rpm = GCRA(c.RPM, now, lim.Window, lim.RequestsPerWindow, 1)
		if !rpm.Allowed {
			d.fail(DimRPM, rpm.RetryAfter, rpm.Never)
		}
	}
	if lim.MaxConcurrent > 0 && !Concurrency(c.InFlight, lim.MaxConcurrent) {
		d.fail(DimConcurrency, 0, false)
	}

	if d.Failed != 0 {
		if d.Never {
			d.RetryAfter = 0
		}
		d.Quotas = quotas(c, req, now)
		return d
	}
	ns := st
	if lim.TokensPerWindow > 0 {
		ns.TPM = tpm.TAT
	}
	if lim.RequestsPerWindow > 0 {
		ns.RPM = rpm.TAT
	}
	ns.ReservedTokens = min(c.ReservedTokens+est.Tokens, MaxValue)
	ns.ReservedNanos = min(c.ReservedNanos+est.Nanos, MaxValue)
	ns.InFlight = min(c.InFlight+1, MaxValue)
	d.Allowed = true
	d.State = ns
	d.Reserved = est
	d.Quotas = quotas(ns.norm(), req, now)
	return d
}

// fail records a failing dimension. Dimensions are checked in precedence order, so the first
// failure names the reason, unless a later one can never pass: that one names it instead.
func (d *Decision) fail(dim Dimension, retry int64, never bool) {
	d.Failed |= 1 << dim
	if never {
		if !d.Never {
			d.Never = true
			d.Reason = dim
		}
		return
	}
	if d.Reason == DimNone {
		d.Reason = dim
	}
	d.RetryAfter = max(d.RetryAfter, retry)
}

// capRetry is a cap's wait: until the period ends when settled usage alone leaves no room for
// the request, otherwise 0, since ending reservations may make room at any moment.
func capRetry(used, limit, cost, periodEnd, now int64) int64 {
	if max(cost, 1) > limit-max(used, 0) {
		return max(periodEnd-now, 0)
	}
	return 0
}

// quotas reports every limited dimension of a (normalised) state.
func quotas(s State, req Request, now int64) [NumDimensions]Quota {
	var q [NumDimensions]Quota
	lim := req.Limits
	periodReset := max(req.PeriodEnd-now, 0)
	if lim.MonthlySpend > 0 {
		_, rem := Cap(s.UsedNanos, s.ReservedNanos, lim.MonthlySpend, 0)
		q[DimMonthlySpend] = Quota{Active: true, Limit: lim.MonthlySpend, Remaining: rem, ResetAfter: periodReset}
	}
	if lim.MonthlyTokens > 0 {
		_, rem := Cap(s.UsedTokens, s.ReservedTokens, lim.MonthlyTokens, 0)
		q[DimMonthlyTokens] = Quota{Active: true, Limit: lim.MonthlyTokens, Remaining: rem, ResetAfter: periodReset}
	}
	if lim.WalletLimited {
		var avail int64
		if s.Balance > s.ReservedNanos {
			avail = s.Balance - s.ReservedNanos
		}
		q[DimWallet] = Quota{Active: true, Limit: s.Balance, Remaining: avail}
	}
	if lim.TokensPerWindow > 0 {
		rem, reset := GCRAStatus(s.TPM, now, lim.Window, lim.TokensPerWindow)
		q[DimTPM] = Quota{Active: true, Limit: lim.TokensPerWindow, Remaining: rem, ResetAfter: reset}
	}
	if lim.RequestsPerWindow > 0 {
		rem, reset := GCRAStatus(s.RPM, now, lim.Window, lim.RequestsPerWindow)
		q[DimRPM] = Quota{Active: true, Limit: lim.RequestsPerWindow, Remaining: rem, ResetAfter: reset}
	}
	if lim.MaxConcurrent > 0 {
		q[DimConcurrency] = Quota{Active: true, Limit: lim.MaxConcurrent, Remaining: max(lim.MaxConcurrent-s.InFlight, 0)}
	}
	return q
}

// Headline picks the one quota the single-valued X-RateLimit-Limit / -Remaining / -Reset
// headers describe. On a denial it is the Reason's quota, when the reason has one; otherwise
// it is the active quota, among the caps, the rate limits and concurrency (the wallet has no
// fixed limit and is left to the body), with the smallest Remaining/Limit, ties going to the
// dimension of higher precedence. ok is false when no dimension is limited: send no such
// headers then.
func (d *Decision) Headline() (dim Dimension, q Quota, ok bool) {
	if !d.Allowed && d.Reason != DimWallet && d.Reason < NumDimensions && d.Quotas[d.Reason].Active {
		return d.Reason, d.Quotas[d.Reason], true
	}
	for _, c := range [...]Dimension{DimMonthlySpend, DimMonthlyTokens, DimTPM, DimRPM, DimConcurrency} {
		cq := d.Quotas[c]
		if !cq.Active || cq.Limit <= 0 {
			continue
		}
		if !ok || tighter(cq, q) {
			dim, q, ok = c, cq, true
		}
	}
	return dim, q, ok
}

// tighter reports a.Remaining/a.Limit < b.Remaining/b.Limit, exactly (128-bit products).
func tighter(a, b Quota) bool {
	ah, al := bits.Mul64(uint64(a.Remaining), uint64(b.Limit))
	bh, bl := bits.Mul64(uint64(b.Remaining), uint64(a.Limit))
	return ah < bh || (ah == bh && al < bl)
}

// Release ends a reservation without usage (it expired, or the request was cancelled): it
// frees the reserved tokens and money and the in-flight slot. The rate buckets keep what the
// decision charged, since the request may well have run. Counters never go below zero.
func Release(st State, reserved Usage) State {
	st.ReservedTokens = max(clamp(st.ReservedTokens, 0, MaxValue)-clamp(reserved.Tokens, 0, MaxValue), 0)
	st.ReservedNanos = max(clamp(st.ReservedNanos, 0, MaxValue)-clamp(reserved.Nanos, 0, MaxValue), 0)
	st.InFlight = max(clamp(st.InFlight, 0, MaxValue)-1, 0)
	return st
}

// Settle ends a reservation with its actual usage: it releases the reservation as Release
// does, then counts the usage: UsedTokens and UsedNanos grow by it (saturating at ±MaxValue;
// actual nanos may be negative), the wallet balance falls by the nanos when the customer is
// wallet-limited (it may go negative: settled usage is never refused), and the tokens bucket
// is adjusted by actual − estimated tokens with GCRAAdjust: tokens beyond the estimate are
// charged without denial (capped at DebtCapWindows windows of debt), so a heavy stream slows
// the requests after it, and unused estimated tokens are given back. Negative actual tokens
// count as zero.
//
// A store whose UsedTokens/UsedNanos/Balance are kept by the ingest path instead should apply
// Release and GCRAAdjust only, so usage is not counted twice.
func Settle(st State, reserved, actual Usage, lim Limits, now int64) State {
	st = Release(st, reserved)
	tokens := clamp(actual.Tokens, 0, MaxValue)
	nanos := clamp(actual.Nanos, -MaxValue, MaxValue)
	st.UsedTokens = min(clamp(st.UsedTokens, 0, MaxValue)+tokens, MaxValue)
	st.UsedNanos = clamp(clamp(st.UsedNanos, -MaxValue, MaxValue)+nanos, -MaxValue, MaxValue)
	if lim.WalletLimited {
		st.Balance = clamp(clamp(st.Balance, -MaxValue, MaxValue)-nanos, -MaxValue, MaxValue)
	}
	if lim.TokensPerWindow > 0 {
		st.TPM = GCRAAdjust(st.TPM, now, lim.Window, lim.TokensPerWindow, tokens-clamp(reserved.Tokens, 0, MaxValue))
	}
	return st
}

// norm clamps every counter into its range; the TATs are read as they are (see TAT).
func (s State) norm() State {
	s.UsedTokens = clamp(s.UsedTokens, 0, MaxValue)
	s.ReservedTokens = clamp(s.ReservedTokens, 0, MaxValue)
	s.UsedNanos = clamp(s.UsedNanos, -MaxValue, MaxValue)
	s.ReservedNanos = clamp(s.ReservedNanos, 0, MaxValue)
	s.InFlight = clamp(s.InFlight, 0, MaxValue)
	s.Balance = clamp(s.Balance, -MaxValue, MaxValue)
	s.BreakerUntil = clamp(s.BreakerUntil, 0, MaxTime)
	s.TaskBreakerUntil = clamp(s.TaskBreakerUntil, 0, MaxTime)
	return s
}
