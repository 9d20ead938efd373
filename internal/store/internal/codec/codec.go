// Package codec converts store records to and from the column values both SQL drivers use, so
// the sqlite and postgres schemas stay parallel and encode every value the same way.
//
// Behaviour at the edges:
//   - Timestamps are int64 Unix nanoseconds and come back in UTC. The zero time.Time is stored
//     as ZeroTime (math.MinInt64); any other instant outside what int64 nanoseconds can hold
//     (before 1677-09-21 or after 2262-04-11) is an error, never a silent wrap-around.
//   - Decimals are stored as their exact decimal string (never through float64) and parsed back
//     with the same precision.
//   - Text must be valid UTF-8 without NUL bytes: PostgreSQL rejects both, so SQLite rejects them
//     too and the two drivers behave alike.
//   - Empty JSON and empty byte slices are stored as NULL and read back as nil.
//   - A late event's billed period is two nullable columns, NULL when the event is billed where
//     it is rated (a billed period equal to the rated one is stored as NULL too and reads back as
//     zero); setting only one of the two fields is an error.
//   - Records an event carries (burns, transitions, notices) belong to its customer: an empty
//     customer is the event's, another one is an error. Their sequence number and key are the
//     event's, filled in once the batch commits.
//   - Adjustments are summed exactly in Go from the late events' stored lines, ordered by rated
//     period start, plan version, end, then charge, group and type.
package codec

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// ZeroTime is the column value of the zero time.Time.
const ZeroTime = math.MinInt64

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Time encodes t as Unix nanoseconds.
func Time(t time.Time) (int64, error) {
	if t.IsZero() {
		return ZeroTime, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("time %s out of range (years 1678 to 2262)", t.UTC().Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

// ParseTime decodes Unix nanoseconds into a UTC time.
func ParseTime(n int64) time.Time {
	if n == ZeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// OptTime encodes an optional time; nil stays nil.
func OptTime(t *time.Time) (*int64, error) {
	if t == nil {
		return nil, nil
	}
	n, err := Time(*t)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// ParseOptTime decodes an optional time.
func ParseOptTime(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := ParseTime(*n)
	return &t
}

// Decimal encodes d as its exact decimal string.
func Decimal(d money.Decimal) string { return d.String() }

// ParseDecimal decodes an exact decimal string.
func ParseDecimal(s string) (money.Decimal, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return money.Zero, fmt.Errorf("stored decimal %q: %w", s, err)
	}
	return d, nil
}

// Text checks that s can be stored as text by both drivers.
func Text(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: invalid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s: contains a NUL byte", field)
	}
	return nil
}

// OptText encodes bytes (usually JSON) as nullable text: empty means NULL.
func OptText(field string, b []byte) (*string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := string(b)
	if err := Text(field, s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ParseOptText decodes nullable text into bytes; NULL is nil.
func ParseOptText(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// OptBytes maps an empty byte slice to nil so both drivers store NULL.
func OptBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Strings encodes a string list as a JSON array; nil or empty is NULL.
func Strings(field string, ss []string) (*string, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	for _, s := range ss {
		if err := Text(field, s); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	s := string(b)
	return &s, nil
}

// ParseStrings decodes a JSON string array; NULL is nil.
func ParseStrings(s *string) ([]string, error) {
	if s == nil {
		return nil, nil
	}
	var ss []string
	if err := json.Unmarshal([]byte(*s), &ss); err != nil {
		return nil, fmt.Errorf("stored string list: %w", err)
	}
	return ss, nil
}

// Scopes encodes API key scopes as a JSON array (never NULL).
func Scopes(sc []store.Scope) (string, error) {
	ss := make([]string, len(sc))
	for i, s := range sc {
		if err := Text("scopes", string(s)); err != nil {
			return "", err
		}
		ss[i] = string(s)
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ParseScopes decodes API key scopes.
func ParseScopes(s string) ([]store.Scope, error) {
	var ss []store.Scope
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, fmt.Errorf("stored scopes: %w", err)
	}
	return ss, nil
}

// Metadata encodes customer metadata as a JSON object; nil is "{}".
func Metadata(m map[string]string) (string, error) {
	for k, v := range m {
		if err := Text("metadata key", k); err != nil {
			return "", err
		}
		if err := Text("metadata value", v); err != nil {
			return "", err
		}
	}
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ParseMetadata decodes customer metadata; it is never nil.
func ParseMetadata(s string) (map[string]string, error) {
	m := map[string]string{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("stored metadata: %w", err)
	}
	return m, nil
}

// Event is an event record's columns in storage form.
type Event struct {
	Key           string
	ContentHash   []byte
	ID            *string
	EventType     string
	CustomerID    string
	CorrelationID string
	TS            int64
	ReceivedAt    int64
	Properties    *string
	Measurements  *string
	Unmetered     *string
	PlanVersionID int64
	PeriodStart   int64
	PeriodEnd     int64
	Amount        string
	Cost          string
	Lines         *string // the rated lines in the Lines encoding; NULL when there are none
	// The billed period of a late event; both NULL when it is billed where it is rated.
	BilledPlanVersionID *int64
	BilledPeriodStart   *int64
}

// EncodeEvent validates e and converts it to storage form; i is its index in the batch.
func EncodeEvent(i int, e *store.EventRecord) (Event, error) {
	var c Event
	if e == nil {
		return c, fmt.Errorf("event %d: nil record", i)
	}
	fail := func(err error) (Event, error) {
		return Event{}, fmt.Errorf("event %d (key %q): %w", i, e.Key, err)
	}
	if e.Key == "" {
		return fail(fmt.Errorf("empty idempotency key"))
	}
	for _, f := range []struct{ name, v string }{
		{"key", e.Key}, {"id", e.ID}, {"eventType", e.EventType}, {"customerId", e.CustomerID},
		{"correlationId", e.CorrelationID},
	} {
		if err := Text(f.name, f.v); err != nil {
			return fail(err)
		}
	}
	var err error
	c.Key = e.Key
	c.ContentHash = OptBytes(e.ContentHash)
	if e.ID != "" {
		id := e.ID
		c.ID = &id
	}
	c.EventType = e.EventType
	c.CustomerID = e.CustomerID
	c.CorrelationID = e.CorrelationID
	if c.TS, err = Time(e.Timestamp); err != nil {
		return fail(fmt.Errorf("timestamp: %w", err))
	}
	if c.ReceivedAt, err = Time(e.ReceivedAt); err != nil {
		return fail(fmt.Errorf("receivedAt: %w", err))
	}
	if c.Properties, err = OptText("properties", e.Properties); err != nil {
		return fail(err)
	}
	if c.Measurements, err = OptText("measurements", e.Measurements); err != nil {
		return fail(err)
	}
	if c.Unmetered, err = Strings("unmetered", e.Unmetered); err != nil {
		return fail(err)
	}
	c.PlanVersionID = e.PlanVersionID
	if c.PeriodStart, err = Time(e.PeriodStart); err != nil {
		return fail(fmt.Errorf("periodStart: %w", err))
	}
	if c.PeriodEnd, err = Time(e.PeriodEnd); err != nil {
		return fail(fmt.Errorf("periodEnd: %w", err))
	}
	c.Amount = Decimal(e.Amount)
	c.Cost = Decimal(e.Cost)
	if c.Lines, err = Lines(e.Lines); err != nil {
		return fail(err)
	}
	if c.BilledPlanVersionID, c.BilledPeriodStart, err = Billed(e); err != nil {
		return fail(err)
	}
	return c, nil
}

// DecodeEvent converts storage form back into a record. Its lines are decoded only when
// withLines is set; otherwise Lines stays nil.
func DecodeEvent(seq int64, c *Event, withLines bool) (store.EventRecord, error) {
	e := store.EventRecord{
		Seq:           seq,
		Key:           c.Key,
		ContentHash:   OptBytes(c.ContentHash),
		EventType:     c.EventType,
		CustomerID:    c.CustomerID,
		CorrelationID: c.CorrelationID,
		Timestamp:     ParseTime(c.TS),
		ReceivedAt:    ParseTime(c.ReceivedAt),
		Properties:    ParseOptText(c.Properties),
		Measurements:  ParseOptText(c.Measurements),
		PlanVersionID: c.PlanVersionID,
		PeriodStart:   ParseTime(c.PeriodStart),
		PeriodEnd:     ParseTime(c.PeriodEnd),
	}
	if c.ID != nil {
		e.ID = *c.ID
	}
	if c.BilledPlanVersionID != nil && c.BilledPeriodStart != nil {
		e.BilledPlanVersionID = *c.BilledPlanVersionID
		e.BilledPeriodStart = ParseTime(*c.BilledPeriodStart)
	}
	var err error
	if e.Unmetered, err = ParseStrings(c.Unmetered); err != nil {
		return e, err
	}
	if e.Amount, err = ParseDecimal(c.Amount); err != nil {
		return e, err
	}
	if e.Cost, err = ParseDecimal(c.Cost); err != nil {
		return e, err
	}
	if withLines && c.Lines != nil {
		if e.Lines, err = ParseLines(*c.Lines); err != nil {
			return e, err
		}
	}
	return e, nil
}

// AttributionKey is the key an event's lines are attributed to (store.EventRecord's
// AttributionKey) from its stored columns.
func AttributionKey(id *string, correlationID string) string {
	if correlationID != "" {
		return correlationID
	}
	if id == nil {
		return "event:"
	}
	return "event:" + *id
}
