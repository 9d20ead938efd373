package limit

// Cap checks a per-period cap (monthly tokens, monthly spend in nanos): a call costing cost
// is allowed iff used + reserved + max(cost, 1) ≤ limit. The cap is inclusive (usage may reach
// it exactly) and an exhausted cap admits nothing, not even a zero estimate. A negative used
// (a period whose spend went below zero through volume pricing) counts as zero; a negative
// reserved or cost counts as zero.
//
// remaining is the headroom after the call: limit − used − reserved − cost when allowed, and
// max(limit − used − reserved, 0) when denied. Every comparison is made on differences of
// values in [0, limit], so the result is exact for any int64 input (and in a double for
// inputs of magnitude at most MaxValue).
func Cap(used, reserved, limit, cost int64) (allowed bool, remaining int64) {
	used, reserved, cost = max(used, 0), max(reserved, 0), max(cost, 0)
	if used >= limit {
		return false, 0
	}
	head := limit - used
	if reserved >= head {
		return false, 0
	}
	head -= reserved // ≥ 1 here, so a zero cost always fits what is left
	if cost > head {
		return false, head
	}
	return true, head - cost
}

// Concurrency reports whether one more request may start: inFlight < limit, the most
// requests in flight at once. A limit below 1 admits nothing (Decide treats a limit of 0 as
// no limit and never calls it then).
func Concurrency(inFlight, limit int64) bool {
	return inFlight < limit
}

// Wallet reports whether a prepaid balance covers an estimate: balance − reserved ≥
// max(estimate, 1), where reserved is the money held by open reservations. As with Cap, an
// empty wallet (nothing left after reservations) admits nothing, not even a zero estimate.
// The balance may be negative (settled usage is never refused, so it can overdraw); it then
// admits nothing until topped up.
//
// Whether a customer is wallet-limited at all is the caller's decision: a customer without
// any wallet grants is not (Limits.WalletLimited is false) and Decide then never calls Wallet.
func Wallet(balance, reserved, estimate int64) bool {
	reserved, estimate = max(reserved, 0), max(estimate, 0)
	if balance <= reserved {
		return false
	}
	return balance-reserved >= max(estimate, 1)
}
