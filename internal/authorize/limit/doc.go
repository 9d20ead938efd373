// Package limit is the pure decision math of Levy's pre-flight authorize path: the GCRA rate
// limits, the per-period caps, concurrency, the prepaid wallet, and the one combined decision
// that checks them all and applies all of its effects or none. It does no I/O and reads no
// clock. The in-process counter store calls these functions directly; the Redis store runs a
// Lua script that mirrors them, and both are held to the shared vectors in vectors.go.
//
// # Units and exactness
//
// Everything is an int64: time in one unit chosen by the caller (milliseconds in Levy), money
// in nanos of the currency, tokens and requests as counts. Every value read or written, and
// every intermediate result, stays below 2^53 in magnitude, so a Lua script whose numbers are
// doubles computes bit for bit what Go computes. The bounds that guarantee it: counts and
// amounts within ±MaxValue (2^53−1), instants within [0, MaxTime] (2^52), and window × limit
// of a rate limit at most MaxWindowUnits (2^50).
//
// # Rate limits (GCRA)
//
//   - A bucket allows limit units per window with a burst of limit: an empty bucket admits
//     limit unit requests at the same instant, and after that one unit per window/limit. There
//     is no other smoothing: 100 requests per minute admits 100 at once, then one every 600 ms.
//   - The state is a TAT (theoretical arrival time) kept as a whole part and a fraction in
//     units of 1/limit, so the emission interval window/limit is exact for every limit (7 per
//     minute is 8571 3/7 ms). Checks run in scaled units (time × limit): emission interval =
//     window, capacity = window × limit, debt = max(TAT − now, 0) × limit.
//   - Boundaries are inclusive: a call is allowed iff debt + max(cost, 1) × window ≤ capacity,
//     and then charges cost × window. A cost of 0 charges nothing and passes only while one
//     unit is left. A cost above the limit can never fit: it is denied with Never set and no
//     RetryAfter, rather than a wait that would not help.
//   - RetryAfter is exact: the smallest whole wait after which the same call is allowed if
//     nothing else is charged (allowed at now+RetryAfter, denied at now+RetryAfter−1).
//     Remaining is the number of unit calls that would pass right now; ResetAfter the wait,
//     rounded up, until the bucket is full.
//   - A denied call returns the TAT unchanged. An allowed call returns it normalised: At ≥ now
//     and 0 ≤ Frac < limit.
//   - A TAT in the past is an empty bucket (idle time is not banked beyond the burst). A limit
//     change keeps the TAT: the debt, in time, carries over; the fraction is clamped into the
//     new [0, limit), moving the TAT by less than one time unit.
//   - Clock going backwards: a TAT further ahead of now simply means more debt, so a small step
//     back denies a little more and never admits more. Nothing this package writes lies more
//     than DebtCapWindows windows ahead of its now, so a TAT more than HorizonWindows windows
//     ahead can only come from a clock that stepped back far (or a corrupt value); it reads as an
//     empty bucket (fail open, like the store being down) instead of locking the customer out
//     until the clock catches up. The Redis script should take now from the server (TIME) so
//     that every node shares one clock.
//   - GCRAAdjust charges without denial (settlement): it never takes the debt beyond
//     DebtCapWindows windows and never gives back more than the debt.
//
// # Caps, concurrency and wallet
//
//   - Caps (per-period tokens and spend) are inclusive: usage may reach the cap exactly. A call
//     passes iff used + reserved + max(cost, 1) ≤ cap, so an exhausted cap admits nothing. A
//     negative settled spend (volume pricing) counts as zero.
//   - Concurrency passes iff inFlight < max: max requests may be in flight at once.
//   - The wallet passes iff balance − reserved ≥ max(estimate, 1), where reserved is the money
//     held by open reservations (the same figure the spend cap counts). An empty or overdrawn
//     wallet admits nothing. A customer without wallet grants is not wallet-limited at all;
//     the caller says which (Limits.WalletLimited).
//
// # The decision
//
// Decide checks every limited dimension (a limit of 0 means unlimited) and, only if all pass,
// returns the new state with every increment: the rate buckets charged (1 request,
// Estimate.Tokens tokens), the estimate added to ReservedTokens and ReservedNanos, InFlight
// + 1. If any fails the state is returned exactly as given: a denial changes nothing.
//
// The reason of a denial is the failing dimension of highest precedence, most durable first,
// so that the reason names what actually keeps the request out:
//
//	margin_guard → task_margin_guard → monthly_spend → monthly_tokens → wallet_balance →
//	tokens_per_minute → requests_per_minute → max_concurrent
//
// A breaker needs an operator or its cool-down; a cap lasts until the period ends; the wallet
// until a top-up; a rate limit seconds; a concurrency slot until any request finishes. A
// dimension that can never admit the request (estimate above the whole limit) takes
// precedence over all of them and sets Never. Failed lists every failing dimension.
//
// RetryAfter is the largest wait among the failing dimensions, which is the earliest moment
// all of them could pass if nothing else happened: a rate limit's exact GCRA wait; for a cap
// exhausted by settled usage, the time until PeriodEnd (0 if that has passed: the caller must
// start the new period's counters); for a breaker, the time until it closes. Concurrency, the
// wallet and a cap held only by open reservations report 0, meaning "when a reservation ends";
// the HTTP layer turns a 0 on a denial into a Retry-After of one second, and rounds any
// other wait up to whole seconds.
//
// # Settlement
//
// Release ends a reservation without usage (expiry, cancellation): reserved tokens, money and
// the slot are freed; the rate buckets keep their charge, since the request may have run.
// Settle releases the same way and counts the actual usage: used tokens and spend grow, a
// wallet-limited balance falls (it may go negative: usage is never refused after the fact),
// and the tokens bucket is adjusted by actual − estimated tokens: excess tokens are charged
// without denial, so a heavy stream slows the calls after it, and unused estimated tokens
// are given back. Counters never go below zero and saturate at ±MaxValue.
//
// # Headers
//
// Every dimension's figures are in Decision.Quotas (Limit, Remaining after the decision,
// ResetAfter). The IETF pair lists one policy per active quota other than the wallet, named by
// the dimension's reason code: RateLimit-Policy: "tokens_per_minute";q=Limit;w=window, and
// RateLimit: "tokens_per_minute";r=Remaining;t=ResetAfter (seconds, rounded up). The legacy
// single-valued X-RateLimit-Limit/-Remaining/-Reset describe Decision.Headline: the denying
// dimension, or else the tightest one (smallest Remaining/Limit).
//
// # Robustness
//
// Nothing here panics or overflows, for any int64 input. Decide rejects a Request outside its
// ranges (DimInvalid; Request.Validate names each bad field) but accepts any State: counters
// are clamped into range on read, so drift in a store cannot poison a decision.
//
// # Mirroring in Lua
//
// Integer division must be exact: compute q = math.floor(a / b), then correct it by one if
// q·b > a or (q+1)·b ≤ a (a rounded quotient can land on the next integer). Remainders are
// a − q·b. Every product and difference in this package stays below 2^53 by the bounds above;
// the only sums that can pass it are the saturating ones (min(a + b, MaxValue)), and since
// 2^53 is itself a double, rounding cannot carry such a sum back below the bound: the
// saturated result is the same. The vectors in vectors.go exercise every branch, including
// the largest values allowed.
package limit
