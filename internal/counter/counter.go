// Package counter defines Levy's counter store: the fast projection of the ledger that the
// authorize path reads. For each customer it holds a watermark (the sequence number of the last
// event applied), the lifetime spend, and per billing period the spend, the event count and the
// usage of each meter. It is never the record: the durable store is, and Rebuild restores the
// counters from it. Two drivers implement it, memory (the embedded default) and redis, and both
// pass the one conformance suite in countertest.
//
// Behaviour at the edges:
//   - Money is int64 nanos of the currency unit. The caller rounds each event's exact amount half
//     away from zero to 1e-9; the store only adds integers.
//   - Exactly once: Apply is meant to be called in Seq order per customer (the ledger's sequence
//     numbers, strictly increasing per customer). An Apply whose Seq is <= the customer's
//     watermark is a no-op that reports Applied=false, even if that Seq was never applied: the
//     watermark says "everything up to here is counted". Retries and concurrent duplicates are
//     therefore counted once; an event skipped out of order is repaired by Rebuild.
//   - Atomicity: Apply checks the watermark, adds period spend, events, usage and lifetime spend,
//     subtracts the wallet burns, sets the tier and advances the watermark in one step (one Lua
//     script on Redis). It happens whole or not at all.
//   - Overflow: an Apply that would take any counter outside int64 (grant balances included)
//     fails with ErrOverflow and changes nothing (not even the watermark or the tier). Spend may
//     be negative (volume pricing).
//   - Periods are explicit, keyed by (PlanVersionID, Start) and anchored to the subscription,
//     never by epoch buckets: a new period starts at zero by construction. Period.End only
//     decides retention: a period's counters are kept until End + the driver's retention
//     (35 days by default) and then read as zero. The watermark and lifetime spend never expire.
//   - Usage maps omit meters whose counter is zero; a missing meter reads as zero. Snapshot of an
//     unknown customer or period returns zeros, not an error.
//   - Rebuild replaces all of one customer's counters (watermark, lifetime spend, every period:
//     those not in Periods are dropped, the tier and the whole wallet) in one step, and touches
//     no other customer.
//   - Invalid input (empty customer ID, Seq < 1, empty meter key, End not after Start, negative
//     watermark, empty grant ID, a burn of math.MinInt64, Grant of Nanos <= 0, an ExpiresAt
//     outside [1970-01-01, 10000-01-01)) fails with ErrInvalid before anything is read or
//     written.
//
// The wallet (prepaid credit) and the spend tier, as the billing writer computed them:
//   - The wallet is one balance in nanos per grant ID. Apply subtracts each event's burns
//     (ApplyParams.Wallet; a negative burn is a refund) in the same atomic step as the rest of
//     the event, so a duplicate Seq burns nothing. A zero burn changes nothing and creates no
//     entry. The store never clamps: a balance goes wherever the ledger's burns take it.
//   - Grant adds a grant's amount exactly once per (customer, grant ID): a marker records that
//     the grant was added, and a second Grant of that ID is a no-op that reports false (its
//     amount and expiry are ignored, even if they differ). Grant and Apply commute: a burn of a
//     grant that Grant has not added yet takes its balance below zero, and Grant then adds the
//     whole amount, so the balance ends the same whatever the order. Grants are not ordered by
//     Seq and do not move the watermark.
//   - Expiry: a grant counts in WalletNanos(at) iff it has no expiry or at < ExpiresAt; at ==
//     ExpiresAt is expired. Expiries are kept to the millisecond, truncated (an ExpiresAt of
//     12:00:00.0019 is stored as 12:00:00.001), because the Redis driver keeps Unix
//     milliseconds for its scripts to compare with the server's clock. A grant that was burned but not yet granted has no expiry
//     until Grant brings one. Expired grants stay in the store (Snapshot lists them) until a
//     Rebuild leaves them out: the store never drops a balance by itself.
//   - Snapshot lists every grant that was granted or burned, zero and negative balances
//     included. WalletNanos saturates at the int64 limits rather than wrap (a sum of balances
//     can leave int64 even when each balance fits).
//   - The tier is a string, "" for none. Apply with a non-empty Tier sets it (only when the Seq
//     is applied); SetTier sets or clears it at once, outside the Seq order (manual overrides):
//     the last write wins, so the billing writer must fold an override into the tiers it
//     computes afterwards or the next Apply replaces it.
//   - A Rebuild replaces the wallet wholesale and marks every grant in it as granted: build it
//     from a ledger read that includes the grants, since a Grant that landed before the Rebuild
//     but is missing from it is wiped, and a later Grant of an ID the Rebuild named is a no-op.
//   - Authorize (authorize.go) reads these counters in the same step as its decision, and
//     Apply settles the reservation an event's CorrelationID names; the edges of both are
//     listed at the top of authorize.go.
//   - Driver errors never cross this seam: callers see ErrInvalid, ErrOverflow, ErrUnavailable
//     (the store could not be reached or did not answer in time: callers may fail open) or a
//     wrapped error whose text says what failed. There is no timeout inside the store: bound
//     each call with the context (the authorize path uses a few milliseconds); a deadline that
//     expires is reported as ErrUnavailable.
package counter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
)

// Errors callers can test for with errors.Is.
var (
	// ErrInvalid: the parameters break the contract; nothing was read or written.
	ErrInvalid = errors.New("invalid counter parameters")
	// ErrOverflow: a counter would leave int64; nothing was changed.
	ErrOverflow = errors.New("counter would overflow int64")
	// ErrUnavailable: the store could not be reached or did not answer in time. The call may or
	// may not have taken effect; the ledger stays the record and a rebuild repairs any drift.
	ErrUnavailable = errors.New("counter store unavailable")
)

// DefaultRetention is how long a period's counters are kept after the period ends, unless a
// driver is configured otherwise.
const DefaultRetention = 35 * 24 * time.Hour

// PeriodRef names one billing period of one subscription: [Start, End) of a plan version.
// Two refs name the same period when PlanVersionID and the Start instant are equal.
type PeriodRef struct {
	PlanVersionID int64
	Start, End    time.Time
}

// ApplyParams is one rated event's contribution to a customer's counters.
type ApplyParams struct {
	CustomerID string
	// Seq is the customer's event sequence number (>= 1): strictly increasing per customer.
	// Apply with Seq <= the customer's watermark is a no-op.
	Seq    int64
	Period PeriodRef
	// SpendNanos is the event's rated amount in nanos; it may be negative.
	SpendNanos int64
	// Usage maps meter key to the integer quantity to add.
	Usage map[string]int64
	// Events is the number of events to count, usually 1.
	Events int64
	// Wallet maps grant ID to the nanos to subtract from that grant's balance (the event's
	// burn); a negative value is a refund. Zero entries change nothing.
	Wallet map[string]int64
	// Tier, when not empty, becomes the customer's current spend tier.
	Tier string
	// CorrelationID, when it names an open reservation (see Authorizer), settles it in the
	// same atomic step when the event is applied: the estimate is released and the TPM bucket
	// adjusted by Tokens minus the estimated tokens.
	CorrelationID string
	// Tokens is the event's actual token count, for that adjustment (negative counts as 0).
	Tokens int64
	// Now is the settlement's clock (Unix milliseconds, truncated); the zero time means the
	// store's clock. Only a settlement reads it.
	Now time.Time
}

// Applied reports what Apply did: Applied is false when Seq was at or below the watermark.
// Watermark is the customer's watermark after the call. Settled reports that the event settled
// the open reservation its CorrelationID named.
type Applied struct {
	Applied   bool
	Watermark int64
	Settled   bool
}

// PeriodCounters are one period's counters. Usage omits zero counters and may be nil.
type PeriodCounters struct {
	SpendNanos int64
	Events     int64
	Usage      map[string]int64
}

// GrantCounter is one grant's balance in the wallet. ExpiresAt is the zero time when the grant
// never expires (or was burned but not granted yet); otherwise it is a whole millisecond, in UTC
// when read back.
type GrantCounter struct {
	Nanos     int64
	ExpiresAt time.Time
}

// Snapshot is a customer's counters as read in one step.
type Snapshot struct {
	Watermark          int64
	LifetimeSpendNanos int64
	Period             PeriodCounters
	// Tier is the customer's current spend tier, "" for none.
	Tier string
	// Grants holds every grant granted or burned (zero and negative balances included),
	// expired ones too; nil when there are none.
	Grants map[string]GrantCounter
}

// WalletNanos sums the balances of the grants not expired at `at` (no expiry, or at <
// ExpiresAt). hasWallet reports whether the customer has any grant at all, expired or not, so a
// customer whose credit expired (hasWallet, balance 0) is told apart from one without a wallet.
// The sum saturates at math.MinInt64 and math.MaxInt64 instead of wrapping.
func (s Snapshot) WalletNanos(at time.Time) (balance int64, hasWallet bool) {
	var sum int64
	var wide *big.Int // the exact sum, once it has left int64
	for _, g := range s.Grants {
		if !g.ExpiresAt.IsZero() && !at.Before(g.ExpiresAt) {
			continue
		}
		if wide != nil {
			wide.Add(wide, big.NewInt(g.Nanos))
			continue
		}
		if v, ok := AddNanos(sum, g.Nanos); ok {
			sum = v
			continue
		}
		wide = new(big.Int).Add(big.NewInt(sum), big.NewInt(g.Nanos))
	}
	if wide != nil {
		switch {
		case wide.IsInt64():
			sum = wide.Int64()
		case wide.Sign() > 0:
			sum = math.MaxInt64
		default:
			sum = math.MinInt64
		}
	}
	return sum, len(s.Grants) > 0
}

// GrantParams add one credit grant to a customer's wallet.
type GrantParams struct {
	CustomerID string
	GrantID    string
	// Nanos is the grant's amount (> 0).
	Nanos int64
	// ExpiresAt is when the grant stops counting (the zero time: never). It is kept to the
	// millisecond, truncated.
	ExpiresAt time.Time
}

// RebuildParams are the counters a customer is to have after Rebuild.
type RebuildParams struct {
	CustomerID         string
	Watermark          int64
	LifetimeSpendNanos int64
	Periods            map[PeriodRef]PeriodCounters
	// Tier is the customer's spend tier, "" for none.
	Tier string
	// Grants is the whole wallet: grant ID to balance and expiry. Every grant named is marked
	// granted, so a later Grant of it is a no-op.
	Grants map[string]GrantCounter
}

// Store is the counter store. Its methods are safe for concurrent use. It includes the
// authorize path (Authorizer, in authorize.go), which reads the counters Apply maintains.
type Store interface {
	Authorizer
	// Apply adds one event to the customer's counters in one atomic step: it checks the
	// watermark, adds period spend, events and usage and lifetime spend, subtracts the wallet
	// burns, sets the tier (if p.Tier is not empty), settles the reservation p.CorrelationID
	// names (if any is open) and sets the watermark to Seq. A Seq at or below the watermark
	// changes nothing and returns Applied=false. ErrOverflow, with nothing changed (no
	// settlement either), if a counter or grant balance would leave int64.
	Apply(ctx context.Context, p ApplyParams) (Applied, error)
	// Snapshot reads the customer's watermark, lifetime spend, the period's counters, the tier
	// and the whole wallet in one step (one round trip). Unknown customers and periods read as
	// zero.
	Snapshot(ctx context.Context, customerID string, period PeriodRef) (Snapshot, error)
	// Rebuild replaces all of the customer's counters atomically with the given ones; periods
	// not in p.Periods are dropped, and the tier and wallet are replaced wholesale. Used by
	// `levy counters rebuild` from the ledger.
	Rebuild(ctx context.Context, p RebuildParams) error
	// Grant adds a grant's amount to its balance and records its expiry, exactly once per
	// (customer, grant ID), in one atomic step: it reports true when it added the amount and
	// false, changing nothing, when the grant was already granted. ErrOverflow, with nothing
	// changed (the grant stays ungranted), if the balance would leave int64.
	Grant(ctx context.Context, p GrantParams) (bool, error)
	// SetTier sets the customer's current spend tier ("" clears it) in one step, whatever the
	// watermark; it does not move the watermark. For manual overrides.
	SetTier(ctx context.Context, customerID, tier string) error
	// Close releases the store's resources; calling it twice is harmless.
	Close() error
}

// Validate checks the parameters against the contract; errors wrap ErrInvalid.
func (p ApplyParams) Validate() error {
	if p.CustomerID == "" {
		return fmt.Errorf("%w: empty customer ID", ErrInvalid)
	}
	if p.Seq < 1 {
		return fmt.Errorf("%w: customer %q: seq %d < 1", ErrInvalid, p.CustomerID, p.Seq)
	}
	if err := p.Period.Validate(); err != nil {
		return fmt.Errorf("customer %q: %w", p.CustomerID, err)
	}
	for k := range p.Usage {
		if k == "" {
			return fmt.Errorf("%w: customer %q: empty meter key", ErrInvalid, p.CustomerID)
		}
	}
	if !p.Now.IsZero() {
		if ms := p.Now.UnixMilli(); ms < 0 || ms > maxMillis {
			return fmt.Errorf("%w: customer %q: now: %d ms outside [0, %d]", ErrInvalid, p.CustomerID, ms, int64(maxMillis))
		}
	}
	for id, burn := range p.Wallet {
		if id == "" {
			return fmt.Errorf("%w: customer %q: wallet: empty grant ID", ErrInvalid, p.CustomerID)
		}
		if burn == math.MinInt64 {
			// Subtracting it means adding 2^63, which no int64 delta can carry.
			return fmt.Errorf("%w: customer %q: wallet[%q]: burn %d out of range", ErrInvalid, p.CustomerID, id, burn)
		}
	}
	return nil
}

// Validate checks the parameters against the contract; errors wrap ErrInvalid.
func (p GrantParams) Validate() error {
	if p.CustomerID == "" {
		return fmt.Errorf("%w: empty customer ID", ErrInvalid)
	}
	if p.GrantID == "" {
		return fmt.Errorf("%w: customer %q: empty grant ID", ErrInvalid, p.CustomerID)
	}
	if p.Nanos <= 0 {
		return fmt.Errorf("%w: customer %q: grant %q: nanos %d <= 0", ErrInvalid, p.CustomerID, p.GrantID, p.Nanos)
	}
	if err := validateExpiry(p.ExpiresAt); err != nil {
		return fmt.Errorf("customer %q: grant %q: %w", p.CustomerID, p.GrantID, err)
	}
	return nil
}

// maxMillis is the latest instant the authorize arithmetic accepts.
const maxMillis = limit.MaxTime

// Expiry bounds: Unix milliseconds of a time in this range fit every driver and read back
// exactly.
var (
	minExpiry = time.Unix(0, 0).UTC()
	maxExpiry = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func validateExpiry(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(minExpiry) || !t.Before(maxExpiry) {
		return fmt.Errorf("%w: expiresAt %s outside [1970-01-01, 10000-01-01)", ErrInvalid, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// ExpiryMillis returns the Unix milliseconds drivers store for a valid, non-zero ExpiresAt
// (truncated), and ok=false for the zero time (never expires).
func ExpiryMillis(t time.Time) (ms int64, ok bool) {
	if t.IsZero() {
		return 0, false
	}
	return t.UnixMilli(), true
}

// ExpiryTime is the inverse of ExpiryMillis: the instant, in UTC, of stored Unix milliseconds.
func ExpiryTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Validate checks that the period ends after it starts; errors wrap ErrInvalid.
func (r PeriodRef) Validate() error {
	if !r.End.After(r.Start) {
		return fmt.Errorf("%w: period of plan version %d ends at %s, not after its start %s",
			ErrInvalid, r.PlanVersionID, r.End.UTC().Format(time.RFC3339Nano), r.Start.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Validate checks the parameters against the contract; errors wrap ErrInvalid.
func (p RebuildParams) Validate() error {
	if p.CustomerID == "" {
		return fmt.Errorf("%w: empty customer ID", ErrInvalid)
	}
	if p.Watermark < 0 {
		return fmt.Errorf("%w: customer %q: watermark %d < 0", ErrInvalid, p.CustomerID, p.Watermark)
	}
	for ref, pc := range p.Periods {
		if err := ref.Validate(); err != nil {
			return fmt.Errorf("customer %q: %w", p.CustomerID, err)
		}
		for k := range pc.Usage {
			if k == "" {
				return fmt.Errorf("%w: customer %q: empty meter key", ErrInvalid, p.CustomerID)
			}
		}
	}
	for id, g := range p.Grants {
		if id == "" {
			return fmt.Errorf("%w: customer %q: grants: empty grant ID", ErrInvalid, p.CustomerID)
		}
		if err := validateExpiry(g.ExpiresAt); err != nil {
			return fmt.Errorf("customer %q: grants[%q]: %w", p.CustomerID, id, err)
		}
	}
	return nil
}

// ValidateCustomerID checks a customer ID for Snapshot; errors wrap ErrInvalid.
func ValidateCustomerID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty customer ID", ErrInvalid)
	}
	return nil
}

// AddNanos returns a+b, or ok=false if the sum leaves int64. Drivers use it to check before
// they change anything.
func AddNanos(a, b int64) (sum int64, ok bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}
