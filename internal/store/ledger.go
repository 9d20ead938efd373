package store

import (
	"time"

	"github.com/levyhq/levy/internal/money"
)

// This file holds the parts of the store that issue 4 added: the counter cursor, late events
// billed into another period, spend-tier transitions, wallet grants and burns, notices and final
// invoices.

// PeriodRef names a rated period with its end: one (plan version, start, end) of a customer.
type PeriodRef struct {
	PlanVersionID int64
	Start, End    time.Time
}

// ScanParams select events for ScanEvents.
type ScanParams struct {
	// CustomerID limits the scan to one customer; empty scans every customer.
	CustomerID string
	// AfterSeq starts after this sequence number (0 = from the first event).
	AfterSeq int64
	// Limit caps the number of events (<= 0: no cap).
	Limit int
}

// Transition reasons.
const (
	ReasonPromotion   = "promotion"
	ReasonPeriodReset = "period_reset"
	ReasonOverride    = "override"
)

// TierTransition is one change of a customer's spend tier, recorded once.
type TierTransition struct {
	ID         int64 // assigned by the store
	CustomerID string
	At         time.Time
	From, To   string
	Reason     string // ReasonPromotion, ReasonPeriodReset or ReasonOverride
	// Basis is "periodSpend" or "lifetimeSpend"; BasisPeriodStart is the basis period's start
	// (the zero time on the lifetime basis and for overrides).
	Basis            string
	BasisPeriodStart time.Time
	// Spend is the basis spend after the triggering event.
	Spend money.Decimal
	// The triggering event: EventSeq is set by InsertEvents for transitions carried by an
	// EventRecord; EventKey, EventID and CorrelationID come from the event. Overrides have none.
	EventSeq      int64
	EventKey      string
	EventID       string
	CorrelationID string
}

// Grant kinds.
const (
	GrantPaid        = "paid"
	GrantPromotional = "promotional"
)

// Grant is a prepaid credit grant of a customer's wallet.
type Grant struct {
	ID         string
	CustomerID string
	Amount     money.Decimal // > 0
	Priority   int           // lower burns first
	ExpiresAt  *time.Time    // nil: never expires
	Kind       string        // GrantPaid or GrantPromotional
	Note       string
	CreatedAt  time.Time
}

// WalletBurn is one change of a grant's balance caused by one event: a positive Amount burns the
// grant, a negative one refunds it. GrantID "" records the event's change of the period's
// uncovered amount (usage no grant covered, billed on the invoice).
type WalletBurn struct {
	CustomerID string
	GrantID    string
	EventSeq   int64 // set by InsertEvents
	EventKey   string
	At         time.Time // the event's timestamp
	// The period the event is billed in.
	PlanVersionID int64
	PeriodStart   time.Time
	Amount        money.Decimal
}

// Notice kinds.
const NoticeLowBalance = "low_balance"

// Notice is a recorded customer notification, e.g. a wallet balance falling below its threshold.
type Notice struct {
	ID         int64 // assigned by the store
	CustomerID string
	Kind       string
	At         time.Time
	EventSeq   int64 // set by InsertEvents
	EventKey   string
	Data       []byte // JSON object
}

// Invoice is a final, immutable invoice of one closed period.
type Invoice struct {
	// ID is assigned by CreateInvoice from Number ("inv_" + 8 digits); Number increases by one
	// per invoice across the store.
	ID            string
	Number        int64
	CustomerID    string
	PlanVersionID int64
	PeriodStart   time.Time
	PeriodEnd     time.Time
	IssuedAt      time.Time
	Currency      string
	Total         money.Decimal
	AmountDue     money.Decimal
	Document      []byte // the invoice as JSON
}

// AdjustmentRow sums the rated lines of the late events billed into one period that were rated
// in another (their own, already closed) period, per (rated period, charge, group, type).
type AdjustmentRow struct {
	Rated    PeriodRef
	Charge   string
	Group    string
	Type     string
	Events   int64
	Quantity money.Decimal
	Amount   money.Decimal
	Cost     money.Decimal
}
