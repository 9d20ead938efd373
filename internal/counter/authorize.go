package counter

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
)

// This file declares the pre-flight authorize part of the counter store (issue 5): one atomic
// decision over every limit of a customer, reservations that hold the estimate until the usage
// event settles them, and margin-guard breakers. Both drivers implement Authorizer with exactly
// the arithmetic of package limit (Decide, Release, Settle), the memory driver by calling it and
// the Redis driver in one Lua script per call.
//
// Behaviour at the edges (both drivers, held to one suite in countertest):
//
//   - Time is Unix milliseconds. AuthorizeParams.Now (and ApplyParams.Now) is truncated to the
//     millisecond; the zero time means the store's clock (memory: Options.Now; Redis: the
//     server's TIME, so every node shares one clock). Period.End is rounded up to the
//     millisecond, so a cap's RetryAfter never ends before the period does. TTL is truncated to
//     whole milliseconds and must be at least 1 ms.
//   - The state a decision reads: the RPM and TPM buckets, reserved tokens and nanos and the
//     in-flight count (all written only by Authorize, Release, settlement and expiry); used
//     tokens = the sum of the period usage of TokenMeters; used nanos = the period's spend;
//     the balance = the sum of the grants not expired at now (WalletNanos), read only when the
//     row is wallet-limited (Decision.State.Balance is 0 otherwise); the customer's breaker
//     and, when TaskID is set, that task's. Sums are exact and then clamped into
//     limit's ranges (±limit.MaxValue), as limit.Decide clamps every counter on read.
//   - The limits: the row of the customer's current tier, else the row "", else no limit at all
//     (a reservation is still kept). WalletLimited is the row's flag AND the customer having at
//     least one wallet entry (granted or burned, expired or not): a customer without grants is
//     never wallet-limited, one whose credit expired is (balance 0, so it is denied).
//   - Authorize first releases up to MaxExpiredPerCall expired reservations (expiresAt <= now),
//     oldest first, as Release does. This sweep is housekeeping that makes the decision right,
//     so it also happens on a DENY; apart from it a DENY writes nothing at all (no key, no
//     field, no map entry): with nothing expired, a denied call leaves the store byte for byte
//     as it was. An ALLOW applies every increment of limit.Decide and stores the reservation
//     (expiresAt = now + TTL) with the TPM window and limit of its row, for settlement.
//   - A ReservationID that is already open (an expired one too, until it is released) is a
//     caller error (ErrInvalid) and changes nothing, not even the sweep.
//     A CorrelationID already indexed by another open reservation is re-pointed to the new one;
//     the older reservation can then only be released or expire.
//   - Settlement: an Apply that is applied (Seq above the watermark) and whose CorrelationID
//     names an open reservation settles it in the same atomic step, as limit.Settle does for a
//     store whose usage, spend and wallet the ingest path keeps: the estimate is released
//     (reserved tokens and nanos, one in-flight slot) and the TPM bucket is adjusted by the
//     event's Tokens minus the estimated tokens (negative Tokens count as zero) with the window
//     and limit stored in the reservation, at ApplyParams.Now. A duplicate Apply settles
//     nothing; an Apply that fails (ErrOverflow) settles nothing. Expired but unswept
//     reservations are settled like open ones.
//   - Release, settlement and expiry never take a counter below zero; the rate buckets keep
//     what the decision charged when a reservation is released or expires.
//   - Breakers: TripBreaker opens one until the given instant, extending (never shortening) an
//     open one; it is open iff now < until. ResetBreaker closes it and reports whether it was
//     open by the store's clock. Task breakers are dropped once their until has passed (Redis:
//     PEXPIREAT until + BreakerExpiryGrace; memory: at the customer's next TripBreaker).
//   - Rebuild leaves the authorize state (buckets, reservations, breakers) alone: it is not
//     derived from the ledger.
//   - AuthorizeResult.Decision is exactly limit.Decide's for the state read, normalised: each
//     counter clamped into its range, an empty or unlimited bucket's TAT as the zero TAT and a
//     limited bucket's fraction clamped below its limit (see DecisionState). Decision.State is
//     that state (with the increments when allowed), RetryAfter and the quotas' ResetAfter are
//     in milliseconds.

// MaxExpiredPerCall bounds the expired reservations one Authorize releases before it decides.
const MaxExpiredPerCall = 16

// BreakerExpiryGrace is how long after its until a task breaker's record is kept by a store
// that expires records by its own clock (Redis PEXPIREAT), so a caller clock somewhat behind
// the store's still sees the breaker open until its until.
const BreakerExpiryGrace = time.Hour

// TierLimits are the effective limits of one spend tier (limit.Limits with Window in
// milliseconds). AuthorizeParams carries one row per tier of the ladder, so the decision can
// read the customer's current tier and apply its limits in the same step.
type TierLimits map[string]limit.Limits

// AuthorizeParams is one authorize call.
type AuthorizeParams struct {
	CustomerID string
	// ReservationID names the reservation an ALLOW creates (unique per call, chosen by the
	// caller); CorrelationID, when set, is the key the usage event settles it by.
	ReservationID string
	CorrelationID string
	// TaskID, when set, selects the task breaker (an agent run).
	TaskID string
	// Now is the decision's clock.
	Now time.Time
	// Period is the customer's open billing period: its spend and token usage counters are
	// the caps' "used" figures, and End is when the caps reset.
	Period PeriodRef
	// TokenMeters are the meters whose period usage counts as tokens for the token cap.
	TokenMeters []string
	// Limits by tier key; the row of the customer's current tier applies, the row "" when the
	// customer has no tier or its tier has no row.
	Limits TierLimits
	// Estimate is the request's estimated tokens and cost in nanos.
	Estimate limit.Usage
	// TTL is how long an unsettled reservation is held before it expires (released).
	TTL time.Duration
}

// AuthorizeResult is the decision with the figures the API reports.
type AuthorizeResult struct {
	limit.Decision
	// Tier is the customer's current tier as the store holds it.
	Tier string
	// ReservationID echoes the params on ALLOW; empty on DENY.
	ReservationID string
	// ExpiredReleased counts expired reservations this call released first.
	ExpiredReleased int
}

// Reservation is an open reservation.
type Reservation struct {
	ID            string
	CorrelationID string
	TaskID        string
	Estimate      limit.Usage
	ExpiresAt     time.Time
}

// LimitsState is a customer's live limit state for GET /v1/customers/{id}/limits: the quotas
// as Decide would report them for an empty request, and the open reservations.
type LimitsState struct {
	Tier         string
	Quotas       [limit.NumDimensions]limit.Quota
	Reservations []Reservation
}

// Breaker scopes.
const (
	BreakerCustomer = "customer"
	BreakerTask     = "task"
)

// Authorizer is the authorize part of a counter store. Its methods are safe for concurrent use
// and each is one atomic step (one round trip on Redis).
type Authorizer interface {
	// Authorize releases expired reservations, then decides: on ALLOW every increment is
	// applied and a reservation is held; on DENY nothing changes.
	Authorize(ctx context.Context, p AuthorizeParams) (AuthorizeResult, error)
	// Release releases an open reservation (a cancelled call): its tokens, money and slot are
	// returned. false when there was none (already settled, released or expired).
	Release(ctx context.Context, customerID, reservationID string) (bool, error)
	// Limits reads the customer's live limit state without changing it (expired reservations
	// are reported as open until an Authorize or Apply releases them).
	Limits(ctx context.Context, p AuthorizeParams) (LimitsState, error)
	// TripBreaker opens a breaker (scope BreakerCustomer with key "", or BreakerTask with the
	// task ID) until the given time.
	TripBreaker(ctx context.Context, customerID, scope, key string, until time.Time) error
	// ResetBreaker closes a breaker; false when it was not open.
	ResetBreaker(ctx context.Context, customerID, scope, key string) (bool, error)
	// OpenReservations counts the customer's open reservations (expired ones included until
	// released).
	OpenReservations(ctx context.Context, customerID string) (int64, error)
}

// Validate checks the parameters of Authorize: every field outside its range is named by its
// path. The error wraps ErrInvalid and a *limit.InvalidError listing the fields.
func (p AuthorizeParams) Validate() error { return p.validate(true) }

// ValidateLimits checks the parameters of Limits, which needs neither a reservation ID, an
// estimate nor a TTL. Errors are as Validate's.
func (p AuthorizeParams) ValidateLimits() error { return p.validate(false) }

func (p AuthorizeParams) validate(authorize bool) error {
	// The hot path: everything valid, nothing built.
	if p.valid(authorize) {
		return nil
	}
	var fs []limit.FieldError
	bad := func(field, format string, args ...any) {
		fs = append(fs, limit.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if p.CustomerID == "" {
		bad("customerId", "must not be empty")
	}
	if authorize && p.ReservationID == "" {
		bad("reservationId", "must not be empty")
	}
	if !p.Now.IsZero() {
		if ms := p.Now.UnixMilli(); ms < 0 || ms > limit.MaxTime {
			bad("now", "must be between the Unix epoch and %d ms after it, got %d ms", limit.MaxTime, ms)
		}
	}
	if err := p.Period.Validate(); err != nil {
		bad("period", "end must be after start")
	} else if ms := PeriodEndMillis(p.Period); ms < 0 || ms > limit.MaxTime {
		bad("period.end", "must be between the Unix epoch and %d ms after it, got %d ms", limit.MaxTime, ms)
	}
	seen := make(map[string]bool, len(p.TokenMeters))
	for i, m := range p.TokenMeters {
		switch {
		case m == "":
			bad("tokenMeters["+strconv.Itoa(i)+"]", "must not be empty")
		case seen[m]:
			bad("tokenMeters["+strconv.Itoa(i)+"]", "repeats meter %q", m)
		}
		seen[m] = true
	}
	tiers := make([]string, 0, len(p.Limits))
	for tier := range p.Limits {
		tiers = append(tiers, tier)
	}
	slices.Sort(tiers)
	for _, tier := range tiers {
		if err := (limit.Request{Limits: p.Limits[tier]}).Validate(); err != nil {
			if ie, ok := err.(*limit.InvalidError); ok {
				for _, f := range ie.Fields {
					bad("limits["+strconv.Quote(tier)+"]"+strings.TrimPrefix(f.Field, "limits"), "%s", f.Message)
				}
			}
		}
	}
	if authorize {
		if err := (limit.Request{Estimate: p.Estimate}).Validate(); err != nil {
			if ie, ok := err.(*limit.InvalidError); ok {
				fs = append(fs, ie.Fields...)
			}
		}
		if ms := p.TTL.Milliseconds(); ms < 1 || ms > limit.MaxTime {
			bad("ttl", "must be between 1 ms and %d ms, got %s", limit.MaxTime, p.TTL)
		}
	}
	if fs == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, &limit.InvalidError{Fields: fs})
}

// valid is validate() == nil without building anything.
func (p AuthorizeParams) valid(authorize bool) bool {
	if p.CustomerID == "" || (authorize && p.ReservationID == "") {
		return false
	}
	if !p.Now.IsZero() {
		if ms := p.Now.UnixMilli(); ms < 0 || ms > limit.MaxTime {
			return false
		}
	}
	if !p.Period.End.After(p.Period.Start) {
		return false
	}
	if ms := PeriodEndMillis(p.Period); ms < 0 || ms > limit.MaxTime {
		return false
	}
	for i, m := range p.TokenMeters {
		if m == "" || slices.Contains(p.TokenMeters[:i], m) {
			return false
		}
	}
	for _, row := range p.Limits {
		if (limit.Request{Limits: row}).Validate() != nil {
			return false
		}
	}
	if authorize {
		if e := p.Estimate; e.Tokens < 0 || e.Tokens > limit.MaxValue || e.Nanos < 0 || e.Nanos > limit.MaxValue {
			return false
		}
		if ms := p.TTL.Milliseconds(); ms < 1 || ms > limit.MaxTime {
			return false
		}
	}
	return true
}

// NowMillis is the decision's instant in Unix milliseconds: Now, or the store's clock when
// Now is zero.
func (p AuthorizeParams) NowMillis(clock time.Time) int64 {
	if p.Now.IsZero() {
		return clock.UnixMilli()
	}
	return p.Now.UnixMilli()
}

// Row returns the limits of a tier: its row, else the row "", else no limits.
func (p AuthorizeParams) Row(tier string) limit.Limits {
	if tier != "" {
		if row, ok := p.Limits[tier]; ok {
			return row
		}
	}
	return p.Limits[""]
}

// Request is the limit.Request of this call for a customer on tier: the tier's row, wallet-
// limited only when the row says so and the customer has a wallet, the estimate, and the
// period's end.
func (p AuthorizeParams) Request(tier string, hasWallet bool) limit.Request {
	row := p.Row(tier)
	row.WalletLimited = row.WalletLimited && hasWallet
	return limit.Request{Limits: row, Estimate: p.Estimate, PeriodEnd: PeriodEndMillis(p.Period)}
}

// PeriodEndMillis is the period's End in Unix milliseconds, rounded up.
func PeriodEndMillis(r PeriodRef) int64 {
	ms := r.End.UnixMilli()
	if r.End.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// TTLMillis is the reservation lifetime in whole milliseconds (truncated).
func (p AuthorizeParams) TTLMillis() int64 { return p.TTL.Milliseconds() }

// DecisionState normalises the raw state a store holds into the state a decision reads and
// reports, without changing any outcome of limit.Decide: every counter is clamped into its
// range; a bucket that is not limited, or empty at now, reads as the zero TAT; a limited
// bucket with debt keeps its At and has its fraction clamped into [0, limit). The Redis script
// computes the same.
func DecisionState(st limit.State, lim limit.Limits, now int64) limit.State {
	st.UsedTokens = clamp(st.UsedTokens, 0, limit.MaxValue)
	st.ReservedTokens = clamp(st.ReservedTokens, 0, limit.MaxValue)
	st.UsedNanos = clamp(st.UsedNanos, -limit.MaxValue, limit.MaxValue)
	st.ReservedNanos = clamp(st.ReservedNanos, 0, limit.MaxValue)
	st.InFlight = clamp(st.InFlight, 0, limit.MaxValue)
	st.Balance = clamp(st.Balance, -limit.MaxValue, limit.MaxValue)
	st.BreakerUntil = clamp(st.BreakerUntil, 0, limit.MaxTime)
	st.TaskBreakerUntil = clamp(st.TaskBreakerUntil, 0, limit.MaxTime)
	st.RPM = bucketState(st.RPM, now, lim.Window, lim.RequestsPerWindow)
	st.TPM = bucketState(st.TPM, now, lim.Window, lim.TokensPerWindow)
	return st
}

func bucketState(t limit.TAT, now, window, lim int64) limit.TAT {
	if lim <= 0 {
		return limit.TAT{}
	}
	if _, reset := limit.GCRAStatus(t, now, window, lim); reset == 0 {
		return limit.TAT{} // no debt: an empty bucket
	}
	return limit.TAT{At: t.At, Frac: clamp(t.Frac, 0, lim-1)}
}

// LiveQuotas are the quotas limit.Decide reports for a state without charging it (for
// Limits): the figures of a denied decision, which are those of the state as it is. The
// denial is forced through the customer breaker, which no quota depends on. At now =
// limit.MaxTime no breaker can be open; the quotas are then those after an empty request.
func LiveQuotas(st limit.State, req limit.Request, now int64) [limit.NumDimensions]limit.Quota {
	st.BreakerUntil = limit.MaxTime
	req.Estimate = limit.Usage{}
	return limit.Decide(st, req, now).Quotas
}

// ValidateReservation checks the IDs of Release; errors wrap ErrInvalid.
func ValidateReservation(customerID, reservationID string) error {
	if customerID == "" {
		return fmt.Errorf("%w: customerId: must not be empty", ErrInvalid)
	}
	if reservationID == "" {
		return fmt.Errorf("%w: customer %q: reservationId: must not be empty", ErrInvalid, customerID)
	}
	return nil
}

// ValidateBreaker checks the parameters of TripBreaker (until not zero) and ResetBreaker
// (until zero): scope BreakerCustomer with key "", or BreakerTask with a task ID; until
// within [the Unix epoch, limit.MaxTime ms]. Errors wrap ErrInvalid and name the field.
func ValidateBreaker(customerID, scope, key string, until time.Time, trip bool) error {
	if customerID == "" {
		return fmt.Errorf("%w: customerId: must not be empty", ErrInvalid)
	}
	switch scope {
	case BreakerCustomer:
		if key != "" {
			return fmt.Errorf("%w: customer %q: key: must be empty for scope %q, got %q", ErrInvalid, customerID, scope, key)
		}
	case BreakerTask:
		if key == "" {
			return fmt.Errorf("%w: customer %q: key: must name the task for scope %q", ErrInvalid, customerID, scope)
		}
	default:
		return fmt.Errorf("%w: customer %q: scope: must be %q or %q, got %q", ErrInvalid, customerID,
			BreakerCustomer, BreakerTask, scope)
	}
	if trip {
		if until.IsZero() {
			return fmt.Errorf("%w: customer %q: until: must be set", ErrInvalid, customerID)
		}
		if ms := until.UnixMilli(); ms < 0 || ms > limit.MaxTime {
			return fmt.Errorf("%w: customer %q: until: must be between the Unix epoch and %d ms after it, got %d ms",
				ErrInvalid, customerID, limit.MaxTime, ms)
		}
	}
	return nil
}

// BreakerUntilMillis is a breaker's until in Unix milliseconds, rounded up so a breaker is
// never closed before its instant.
func BreakerUntilMillis(until time.Time) int64 {
	ms := until.UnixMilli()
	if until.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// Sum adds int64 values exactly (in 128 bits), for the used tokens and the balance a decision
// reads: the zero Sum is 0.
type Sum struct {
	hi int64
	lo uint64
}

// Add adds v.
func (s *Sum) Add(v int64) {
	var c uint64
	s.lo, c = bits.Add64(s.lo, uint64(v), 0)
	s.hi += v>>63 + int64(c)
}

// Clamp returns the sum clamped into [lo, hi] (lo <= 0 <= hi).
func (s Sum) Clamp(lo, hi int64) int64 {
	var v int64
	switch {
	case s.hi > 0 || (s.hi == 0 && s.lo > math.MaxInt64):
		return hi
	case s.hi < -1 || (s.hi == -1 && s.lo <= math.MaxInt64):
		return lo
	default:
		v = int64(s.lo)
	}
	return clamp(v, lo, hi)
}

func clamp(x, lo, hi int64) int64 { return min(max(x, lo), hi) }
