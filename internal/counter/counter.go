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
//   - Atomicity: Apply checks the watermark and adds period spend, events, usage and lifetime
//     spend and advances the watermark in one step (one Lua script on Redis). It happens whole or
//     not at all.
//   - Overflow: an Apply that would take any counter outside int64 fails with ErrOverflow and
//     changes nothing (not even the watermark). Spend may be negative (volume pricing).
//   - Periods are explicit, keyed by (PlanVersionID, Start) and anchored to the subscription,
//     never by epoch buckets: a new period starts at zero by construction. Period.End only
//     decides retention: a period's counters are kept until End + the driver's retention
//     (35 days by default) and then read as zero. The watermark and lifetime spend never expire.
//   - Usage maps omit meters whose counter is zero; a missing meter reads as zero. Snapshot of an
//     unknown customer or period returns zeros, not an error.
//   - Rebuild replaces all of one customer's counters (watermark, lifetime spend, and every
//     period: those not in Periods are dropped) in one step, and touches no other customer.
//   - Invalid input (empty customer ID, Seq < 1, empty meter key, End not after Start, negative
//     watermark) fails with ErrInvalid before anything is read or written.
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
	"time"
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
}

// Applied reports what Apply did: Applied is false when Seq was at or below the watermark.
// Watermark is the customer's watermark after the call.
type Applied struct {
	Applied   bool
	Watermark int64
}

// PeriodCounters are one period's counters. Usage omits zero counters and may be nil.
type PeriodCounters struct {
	SpendNanos int64
	Events     int64
	Usage      map[string]int64
}

// Snapshot is a customer's counters as read in one step.
type Snapshot struct {
	Watermark          int64
	LifetimeSpendNanos int64
	Period             PeriodCounters
}

// RebuildParams are the counters a customer is to have after Rebuild.
type RebuildParams struct {
	CustomerID         string
	Watermark          int64
	LifetimeSpendNanos int64
	Periods            map[PeriodRef]PeriodCounters
}

// Store is the counter store. Its methods are safe for concurrent use.
type Store interface {
	// Apply adds one event to the customer's counters in one atomic step: it checks the
	// watermark, adds period spend, events and usage and lifetime spend, and sets the watermark
	// to Seq. A Seq at or below the watermark changes nothing and returns Applied=false.
	// ErrOverflow, with nothing changed, if a counter would leave int64.
	Apply(ctx context.Context, p ApplyParams) (Applied, error)
	// Snapshot reads the customer's watermark, lifetime spend and the period's counters in one
	// step (one round trip). Unknown customers and periods read as zero.
	Snapshot(ctx context.Context, customerID string, period PeriodRef) (Snapshot, error)
	// Rebuild replaces all of the customer's counters atomically with the given ones; periods
	// not in p.Periods are dropped. Used by `levy counters rebuild` from the ledger.
	Rebuild(ctx context.Context, p RebuildParams) error
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
	return nil
}

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
