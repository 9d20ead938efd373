// Package store defines Levy's durable store: the record of API keys, catalog versions, plan
// versions, customers and their subscriptions, and the ledger of usage events with their rated
// lines. Two drivers implement it, sqlite (the embedded default) and postgres, and both pass the
// one conformance suite in storetest.
//
// Behaviour at the edges:
//   - Every write that a method documents as one step is one transaction: it happens whole or
//     not at all.
//   - InsertEvents fails with ErrConflict, writing nothing, if any event's idempotency key is
//     already stored; callers look keys up first with FindEvents and treat a conflict as a race
//     lost to another writer.
//   - Amounts and quantities go in and come out as exact decimals; timestamps as UTC instants with
//     nanosecond precision.
//   - Lists are ordered and paginated by an opaque cursor (the last item's key); an empty cursor
//     starts at the beginning.
//   - Driver errors never cross this seam: callers see ErrNotFound, ErrConflict or a wrapped
//     error whose text says what failed.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/levyhq/levy/internal/money"
)

// Errors callers can test for with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is the durable store.
type Store interface {
	// Close releases the store's connections.
	Close() error
	// Ping checks that the store answers.
	Ping(ctx context.Context) error

	// CreateAPIKey stores a key (only its hash). ErrConflict if the ID or hash exists.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKeyByHash returns the unrevoked key with the hash, or ErrNotFound.
	APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	// ListAPIKeys lists keys (revoked ones included) by ID.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks a key revoked; ErrNotFound if there is none.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error

	// PutCatalog stores a catalog document as the next catalog version and, in the same step,
	// a new version of every plan whose content hash differs from its latest version's (or that
	// has none). It returns the catalog version and the plan versions it created.
	PutCatalog(ctx context.Context, p PutCatalogParams) (CatalogVersion, []PlanVersion, error)
	// LatestCatalog returns the newest catalog version, or ErrNotFound when none was stored.
	LatestCatalog(ctx context.Context) (CatalogVersion, error)
	// GetCatalog returns one catalog version.
	GetCatalog(ctx context.Context, version int64) (CatalogVersion, error)
	// GetPlanVersion returns a plan version by ID.
	GetPlanVersion(ctx context.Context, id int64) (PlanVersion, error)
	// LatestPlanVersion returns the newest version of a plan.
	LatestPlanVersion(ctx context.Context, planKey string) (PlanVersion, error)
	// ListPlanVersions lists every plan version by plan key, then version.
	ListPlanVersions(ctx context.Context) ([]PlanVersion, error)

	// PutCustomer creates or updates a customer; with Subscribe set it also starts a
	// subscription, in the same step. It returns the customer as stored.
	PutCustomer(ctx context.Context, p PutCustomerParams) (Customer, error)
	// GetCustomer returns a customer with its subscriptions (oldest first).
	GetCustomer(ctx context.Context, id string) (Customer, error)
	// ListCustomers lists customers by ID after the cursor, at most limit of them.
	ListCustomers(ctx context.Context, after string, limit int) ([]Customer, error)

	// FindEvents returns, for each of the keys that is stored, the stored event's sequence
	// number and content hash.
	FindEvents(ctx context.Context, keys []string) (map[string]StoredKey, error)
	// InsertEvents stores events and their rated lines in one step, assigning each event its
	// sequence number (in slice order, increasing). ErrConflict, and nothing written, if any
	// key is already stored.
	InsertEvents(ctx context.Context, events []*EventRecord) error
	// GetEvent returns the event with the ID, with its rated lines. Only an event stored under
	// the key IDKey(id) is found: that is the key every event with an ID must be stored under
	// (drivers look events up by key and keep no index on the ID).
	GetEvent(ctx context.Context, id string) (EventRecord, error)
	// EventsByCorrelation returns the events with the correlation ID, oldest first, with lines.
	EventsByCorrelation(ctx context.Context, correlationID string, limit int) ([]EventRecord, error)
	// ReplayPeriod calls fn with every event rated for (customer, plan version, period start),
	// in sequence order, with lines (the writer rebuilds tier discounts from them).
	ReplayPeriod(ctx context.Context, p PeriodKey, fn func(*EventRecord) error) error
	// ListEvents calls fn with a customer's events whose timestamp is in [from, to), in
	// timestamp then sequence order, without lines.
	ListEvents(ctx context.Context, customerID string, from, to time.Time, fn func(*EventRecord) error) error
	// Attribution sums a period's rated lines of one (charge, group, type) by attribution key
	// (the correlation ID, or "event:<id>" for events without one), ordered by that key, after
	// the cursor, at most limit rows. The sums are exact.
	Attribution(ctx context.Context, p AttributionParams) ([]AttributionRow, error)

	// ScanEvents calls fn with events after p.AfterSeq in sequence order (of one customer when
	// p.CustomerID is set), without lines but with their Burns, at most p.Limit of them.
	ScanEvents(ctx context.Context, p ScanParams, fn func(*EventRecord) error) error
	// EventPeriods lists the distinct periods a customer's events were rated in, by start.
	EventPeriods(ctx context.Context, customerID string) ([]PeriodRef, error)
	// Adjustments sums the lines of the events billed into the period that were rated in
	// another period (late events), per rated period, charge, group and type, in that order.
	Adjustments(ctx context.Context, billed PeriodKey) ([]AdjustmentRow, error)
	// Cursor returns a named durable cursor (0 when never set).
	Cursor(ctx context.Context, name string) (int64, error)
	// SetCursor stores a named durable cursor.
	SetCursor(ctx context.Context, name string, v int64) error

	// TierTransitions lists a customer's tier transitions by ID after the cursor ID.
	TierTransitions(ctx context.Context, customerID string, afterID int64, limit int) ([]TierTransition, error)
	// InsertTierTransition records a transition that no event carries (an override).
	InsertTierTransition(ctx context.Context, t TierTransition) (TierTransition, error)

	// CreateGrant stores a wallet grant. Creating a grant whose ID is stored with the same
	// content returns the stored one; with other content, ErrConflict.
	CreateGrant(ctx context.Context, g Grant) (Grant, error)
	// ListGrants lists a customer's grants by creation time, then ID.
	ListGrants(ctx context.Context, customerID string) ([]Grant, error)
	// ListBurns lists a customer's wallet burns after the event sequence number, in event
	// sequence order (then in the order they were recorded), at most limit (<= 0: all).
	ListBurns(ctx context.Context, customerID string, afterSeq int64, limit int) ([]WalletBurn, error)
	// ListNotices lists a customer's notices by ID after the cursor ID.
	ListNotices(ctx context.Context, customerID string, afterID int64, limit int) ([]Notice, error)

	// CreateInvoice stores a final invoice, assigning its Number and ID, in one step.
	// ErrConflict if the customer already has an invoice for the period.
	CreateInvoice(ctx context.Context, inv Invoice) (Invoice, error)
	// GetInvoice returns an invoice by ID.
	GetInvoice(ctx context.Context, id string) (Invoice, error)
	// ListInvoices lists a customer's invoices by period start, then number, after the cursor
	// (an invoice ID), at most limit.
	ListInvoices(ctx context.Context, customerID string, after string, limit int) ([]Invoice, error)
}

// IDKey is the idempotency key of the event with the ID: "id:" + id. GetEvent finds an event by
// this key, so an event with an ID must be stored under it (the billing layer's usage.Event.Key
// does so).
func IDKey(id string) string { return "id:" + id }

// Scope is what an API key may do.
type Scope string

// The scopes.
const (
	ScopeAdmin     Scope = "admin"
	ScopeIngest    Scope = "ingest"
	ScopeAuthorize Scope = "authorize"
	ScopeRead      Scope = "read"
)

// APIKey is a stored API key. Only a hash of the secret is kept.
type APIKey struct {
	ID        string
	Name      string
	Hash      []byte
	Prefix    string // the first characters of the secret, to recognise a key in a list
	Scopes    []Scope
	CreatedAt time.Time
	RevokedAt *time.Time
}

// CatalogVersion is one stored catalog document.
type CatalogVersion struct {
	Version   int64
	Document  []byte // the catalog as JSON
	CreatedAt time.Time
}

// PutCatalogParams is a catalog to store with the content hash of each of its plans.
type PutCatalogParams struct {
	Document  []byte
	Plans     []PlanHash
	CreatedAt time.Time
}

// PlanHash is one plan's key and the hash of everything that prices it.
type PlanHash struct {
	Key         string
	ContentHash string
}

// PlanVersion is one version of a plan, priced by the catalog version it was created with.
type PlanVersion struct {
	ID             int64
	PlanKey        string
	Version        int64
	CatalogVersion int64
	ContentHash    string
	CreatedAt      time.Time
}

// Customer is a customer with its subscription history.
type Customer struct {
	ID       string
	Metadata map[string]string
	Limits   []byte // JSON of limit overrides, or nil
	// TierOverride is a spend tier set by hand; it wins over the ladder. "" for none.
	TierOverride string
	// LowBalance is the wallet balance below which a low_balance notice is recorded; nil: none.
	LowBalance    *money.Decimal
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Subscriptions []Subscription
}

// Subscription puts a customer on a plan version from Start on, until the next subscription's
// Start.
type Subscription struct {
	ID            int64
	PlanVersionID int64
	Start         time.Time
	CreatedAt     time.Time
}

// PutCustomerParams creates or updates a customer.
type PutCustomerParams struct {
	ID       string
	Metadata map[string]string // nil keeps the stored metadata
	Limits   []byte            // nil keeps the stored limits
	// TierOverride, when not nil, sets the override ("" clears it).
	TierOverride *string
	// SetLowBalance, when true, sets LowBalance (nil clears it).
	SetLowBalance bool
	LowBalance    *money.Decimal
	// Subscribe, when set, starts a subscription to PlanVersionID at Start.
	Subscribe     bool
	PlanVersionID int64
	Start         time.Time
	Now           time.Time
}

// StoredKey is what FindEvents returns for a stored idempotency key.
type StoredKey struct {
	Seq         int64
	ContentHash []byte
}

// EventRecord is one ledger entry: an accepted event and, when read with lines, its rated lines.
type EventRecord struct {
	Seq           int64 // assigned by InsertEvents
	Key           string
	ContentHash   []byte
	ID            string
	EventType     string
	CustomerID    string
	CorrelationID string
	Timestamp     time.Time
	ReceivedAt    time.Time
	Properties    []byte // JSON object
	Measurements  []byte // JSON array of {metricKey, value}
	Unmetered     []string
	// The subscription the event was rated under.
	PlanVersionID int64
	PeriodStart   time.Time
	PeriodEnd     time.Time
	Amount        money.Decimal // sum of the lines' amounts
	Cost          money.Decimal
	Lines         []RatedLine
	// BilledPlanVersionID and BilledPeriodStart name the period a late event is billed in (an
	// adjustment of its own, already closed, period); zero when it is billed where it is rated.
	BilledPlanVersionID int64
	BilledPeriodStart   time.Time
	// Written with the event by InsertEvents in the same step (their EventSeq and EventKey are
	// filled from the event); Burns is also read back by ScanEvents.
	Burns       []WalletBurn
	Transitions []TierTransition
	Notices     []Notice
}

// AttributionKey is the key the event's amounts are attributed to.
func (e *EventRecord) AttributionKey() string {
	if e.CorrelationID != "" {
		return e.CorrelationID
	}
	return "event:" + e.ID
}

// RatedLine is one (event, charge) pair as stored.
type RatedLine struct {
	Charge   string
	Group    string
	Type     string
	Quantity money.Decimal
	Amount   money.Decimal
	Cost     money.Decimal
}

// PeriodKey names one rating period of one customer's subscription.
type PeriodKey struct {
	CustomerID    string
	PlanVersionID int64
	PeriodStart   time.Time
}

// AttributionParams selects one invoice line's attribution page.
type AttributionParams struct {
	PeriodKey
	// Billed, when set, selects the period's late events billed into that period (an
	// adjustment line); when nil, the events billed in the period itself.
	Billed *PeriodKey
	Charge string
	Group  string
	Type   string
	After  string
	Limit  int
}

// AttributionRow is one attribution key's share of an invoice line.
type AttributionRow struct {
	Key      string
	Events   int64
	Quantity money.Decimal
	Amount   money.Decimal
}
