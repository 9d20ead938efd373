package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

const insertEventSQL = `INSERT INTO events (seq, idem_key, content_hash, id, event_type, customer_id,
	correlation_id, ts, received_at, properties, measurements, unmetered, plan_version_id,
	period_start, period_end, amount, cost, lines, billed_plan_version_id, billed_period_start)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// The INSERTs of what an event carries, prepared only for batches that carry something.
const (
	insertBurnSQL = `INSERT INTO wallet_burns (customer_id, event_seq, ord, grant_id, event_key, at,
	plan_version_id, period_start, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertTransitionSQL = `INSERT INTO tier_transitions (customer_id, at, from_tier, to_tier, reason, basis,
	basis_period_start, spend, event_seq, event_key, event_id, correlation_id)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertNoticeSQL = `INSERT INTO notices (customer_id, kind, at, event_seq, event_key, data)
	VALUES (?, ?, ?, ?, ?, ?)`
)

// stmtCache holds the writer's prepared INSERTs, by SQL text. Each batch row is one execution
// of a single-row INSERT: a multi-row INSERT inside the transaction writes a statement journal
// (32 rows per INSERT measured ~25% slower, and INSERT OR ROLLBACK, which needs none, no faster
// than single rows).
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns the statement prepared on db. It must run outside a write transaction: preparing
// on the writer waits for its one connection.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// eventCols are an event's columns without its lines; eventLineCols adds them.
const (
	eventCols = `seq, idem_key, content_hash, id, event_type, customer_id, correlation_id,
	ts, received_at, properties, measurements, unmetered, plan_version_id, period_start, period_end,
	amount, cost, billed_plan_version_id, billed_period_start`
	eventLineCols = eventCols + `, lines`
)

// maxKeys bounds the JSON list of one FindEvents query.
const maxKeys = 5000

// FindEvents returns the sequence number and content hash of each stored key among keys.
func (s *Store) FindEvents(ctx context.Context, keys []string) (map[string]store.StoredKey, error) {
	const op = "find events"
	found := make(map[string]store.StoredKey)
	// Keys that could never be stored (invalid text) cannot match; JSON would also mangle them.
	valid := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != "" && codec.Text("key", k) == nil {
			valid = append(valid, k)
		}
	}
	for len(valid) > 0 {
		chunk := valid[:min(len(valid), maxKeys)]
		valid = valid[len(chunk):]
		list, err := json.Marshal(chunk)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT idem_key, seq, content_hash FROM events
			WHERE idem_key IN (SELECT value FROM json_each(?))`, string(list))
		if err != nil {
			return nil, translate(op, err)
		}
		for rows.Next() {
			var (
				k  string
				sk store.StoredKey
			)
			if err := rows.Scan(&k, &sk.Seq, &sk.ContentHash); err != nil {
				rows.Close()
				return nil, translate(op, err)
			}
			found[k] = sk
		}
		if err := rows.Close(); err != nil {
			return nil, translate(op, err)
		}
		if err := rows.Err(); err != nil {
			return nil, translate(op, err)
		}
	}
	return found, nil
}

// InsertEvents stores events (each with its lines, in one row) and the burns, transitions and
// notices they carry, in one transaction, assigning sequence numbers in slice order.
// ErrConflict, and nothing written, if any key is already stored or repeats within the batch,
// or a carried promotion or period reset is already recorded. Seq, and what FillCarried fills
// in, are written back into the records only once the transaction has committed.
//
// Each row is one execution of a prepared single-row INSERT: a single-row INSERT needs no
// statement journal, which a multi-row one would write for every page it touches. A batch that
// carries nothing executes only the event INSERT.
func (s *Store) InsertEvents(ctx context.Context, events []*store.EventRecord) error {
	const op = "insert events"
	if len(events) == 0 {
		return nil
	}
	enc := make([]codec.Event, len(events))
	var carried []codec.Carried // nil unless some event carries something
	for i, e := range events {
		var err error
		if enc[i], err = codec.EncodeEvent(i, e); err != nil {
			return fmt.Errorf("sqlite: %s: %w", op, err)
		}
		c, err := codec.EncodeCarried(i, e)
		if err != nil {
			return fmt.Errorf("sqlite: %s: %w", op, err)
		}
		if !c.Empty() {
			if carried == nil {
				carried = make([]codec.Carried, len(events))
			}
			carried[i] = c
		}
	}
	queries := []string{insertEventSQL}
	if carried != nil {
		queries = append(queries, insertBurnSQL, insertTransitionSQL, insertNoticeSQL)
	}
	stmts := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		var err error
		if stmts[i], err = s.stmts.get(ctx, s.w, q); err != nil {
			return translate(op, err)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	// One writer holds the write lock, so the next sequence number cannot move under us.
	// sqlite_sequence keeps the largest seq ever used, so numbers are never reused.
	var last int64
	if err := tx.QueryRowContext(ctx,
		`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`).Scan(&last); err != nil {
		return translate(op, err)
	}
	for i, st := range stmts {
		stmts[i] = tx.StmtContext(ctx, st)
		defer stmts[i].Close()
	}
	for i := range enc {
		c := &enc[i]
		if _, err := stmts[0].ExecContext(ctx, last+1+int64(i), c.Key, c.ContentHash, c.ID, c.EventType,
			c.CustomerID, c.CorrelationID, c.TS, c.ReceivedAt, c.Properties, c.Measurements, c.Unmetered,
			c.PlanVersionID, c.PeriodStart, c.PeriodEnd, c.Amount, c.Cost, c.Lines,
			c.BilledPlanVersionID, c.BilledPeriodStart); err != nil {
			return translate(op, err)
		}
	}
	var transitionIDs, noticeIDs [][]int64
	if carried != nil {
		transitionIDs = make([][]int64, len(events))
		noticeIDs = make([][]int64, len(events))
		for i := range carried {
			seq := last + 1 + int64(i)
			if transitionIDs[i], noticeIDs[i], err = insertCarried(ctx, stmts[1], stmts[2], stmts[3],
				seq, &carried[i]); err != nil {
				return translate(op, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return translate(op, err)
	}
	for i, e := range events {
		e.Seq = last + 1 + int64(i)
		if carried != nil {
			codec.FillCarried(e, transitionIDs[i], noticeIDs[i])
		}
	}
	return nil
}

// insertCarried writes one event's burns, transitions and notices with the event's seq and
// returns the IDs of the transitions and notices.
func insertCarried(ctx context.Context, burn, transition, notice *sql.Stmt, seq int64, c *codec.Carried) (tIDs, nIDs []int64, err error) {
	for _, b := range c.Burns {
		if _, err := burn.ExecContext(ctx, b.CustomerID, seq, b.Ord, b.GrantID, b.EventKey, b.At,
			b.PlanVersionID, b.PeriodStart, b.Amount); err != nil {
			return nil, nil, err
		}
	}
	for _, t := range c.Transitions {
		res, err := transition.ExecContext(ctx, t.CustomerID, t.At, t.From, t.To, t.Reason, t.Basis,
			t.BasisPeriodStart, t.Spend, seq, t.EventKey, t.EventID, t.CorrelationID)
		if err != nil {
			return nil, nil, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, nil, err
		}
		tIDs = append(tIDs, id)
	}
	for _, n := range c.Notices {
		res, err := notice.ExecContext(ctx, n.CustomerID, n.Kind, n.At, seq, n.EventKey, n.Data)
		if err != nil {
			return nil, nil, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, nil, err
		}
		nIDs = append(nIDs, id)
	}
	return tIDs, nIDs, nil
}

func scanEvent(sc interface{ Scan(...any) error }, withLines bool) (store.EventRecord, error) {
	var (
		seq int64
		c   codec.Event
	)
	dst := []any{&seq, &c.Key, &c.ContentHash, &c.ID, &c.EventType, &c.CustomerID, &c.CorrelationID,
		&c.TS, &c.ReceivedAt, &c.Properties, &c.Measurements, &c.Unmetered, &c.PlanVersionID,
		&c.PeriodStart, &c.PeriodEnd, &c.Amount, &c.Cost, &c.BilledPlanVersionID, &c.BilledPeriodStart}
	if withLines {
		dst = append(dst, &c.Lines)
	}
	if err := sc.Scan(dst...); err != nil {
		return store.EventRecord{}, err
	}
	return codec.DecodeEvent(seq, &c, withLines)
}

// GetEvent returns the event stored under the key "id:" + id whose ID is id, with its lines;
// ErrNotFound for "" or an unknown ID. The lookup uses the idem_key index: there is no index
// on id.
func (s *Store) GetEvent(ctx context.Context, id string) (store.EventRecord, error) {
	op := fmt.Sprintf("get event %q", id)
	if id == "" {
		return store.EventRecord{}, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	e, err := scanEvent(s.r.QueryRowContext(ctx,
		`SELECT `+eventLineCols+` FROM events WHERE idem_key = ? AND id = ?`, store.IDKey(id), id), true)
	if err != nil {
		return store.EventRecord{}, translate(op, err)
	}
	return e, nil
}

// EventsByCorrelation returns the events with the correlation ID by timestamp then sequence,
// with lines; at most limit of them (≤ 0: all). An empty correlation ID matches nothing.
func (s *Store) EventsByCorrelation(ctx context.Context, correlationID string, limit int) ([]store.EventRecord, error) {
	op := fmt.Sprintf("events by correlation %q", correlationID)
	if correlationID == "" {
		return nil, nil
	}
	var evs []store.EventRecord
	err := s.each(ctx, `SELECT `+eventLineCols+` FROM events WHERE correlation_id = ? AND correlation_id <> ''
		ORDER BY ts, seq LIMIT ?`, []any{correlationID, limitArg(limit)}, true, func(e *store.EventRecord) error {
		evs = append(evs, *e)
		return nil
	})
	if err != nil {
		return nil, translate(op, err)
	}
	return evs, nil
}

// each streams the events of one query to fn. An error from fn is returned as it is.
func (s *Store) each(ctx context.Context, query string, args []any, withLines bool, fn func(*store.EventRecord) error) error {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows, withLines)
		if err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return callbackError{err}
		}
	}
	return rows.Err()
}

// callbackError marks an error returned by the caller's fn so it is passed back untranslated.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

func translateEach(op string, err error) error {
	if ce, ok := err.(callbackError); ok {
		return ce.err
	}
	return translate(op, err)
}

// ReplayPeriod calls fn with the period's events in sequence order, without lines. It stops at
// the first error from fn and returns that error unchanged.
func (s *Store) ReplayPeriod(ctx context.Context, p store.PeriodKey, fn func(*store.EventRecord) error) error {
	op := fmt.Sprintf("replay period %s/%d", p.CustomerID, p.PlanVersionID)
	start, err := codec.Time(p.PeriodStart)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return translateEach(op, s.each(ctx, `SELECT `+eventLineCols+` FROM events
		WHERE customer_id = ? AND plan_version_id = ? AND period_start = ? ORDER BY seq`,
		[]any{p.CustomerID, p.PlanVersionID, start}, true, fn))
}

// ListEvents calls fn with the customer's events with timestamps in [from, to), by timestamp
// then sequence, without lines. It stops at the first error from fn and returns it unchanged.
func (s *Store) ListEvents(ctx context.Context, customerID string, from, to time.Time, fn func(*store.EventRecord) error) error {
	op := fmt.Sprintf("list events of %q", customerID)
	f, err := codec.Time(from)
	if err != nil {
		return fmt.Errorf("sqlite: %s: from: %w", op, err)
	}
	t, err := codec.Time(to)
	if err != nil {
		return fmt.Errorf("sqlite: %s: to: %w", op, err)
	}
	return translateEach(op, s.each(ctx, `SELECT `+eventCols+` FROM events
		WHERE customer_id = ? AND ts >= ? AND ts < ? ORDER BY ts, seq`, []any{customerID, f, t}, false, fn))
}

// Attribution sums one invoice line's rated lines by attribution key, after the cursor, at most
// limit keys (≤ 0: all). With p.Billed nil it reads the period's events billed where they are
// rated, through events_period; with p.Billed set, the period's late events billed into
// *p.Billed, through events_billed. It sums the matching lines in Go with exact decimals, so one
// page costs O(events read).
func (s *Store) Attribution(ctx context.Context, p store.AttributionParams) ([]store.AttributionRow, error) {
	const op = "attribution"
	start, err := codec.Time(p.PeriodStart)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: periodStart: %w", op, err)
	}
	for _, v := range []string{p.CustomerID, p.Charge, p.Group, p.Type, p.After} {
		if err := codec.Text("attribution parameter", v); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	if err := codec.BilledCustomer(p); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	query := `SELECT id, correlation_id, lines FROM events
		WHERE customer_id = ? AND plan_version_id = ? AND period_start = ? AND lines IS NOT NULL
		AND billed_plan_version_id IS NULL`
	args := []any{p.CustomerID, p.PlanVersionID, start}
	if p.Billed != nil {
		billedStart, err := codec.Time(p.Billed.PeriodStart)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: billed.periodStart: %w", op, err)
		}
		query = `SELECT id, correlation_id, lines FROM events
		WHERE customer_id = ? AND billed_plan_version_id = ? AND billed_period_start = ?
		AND plan_version_id = ? AND period_start = ? AND lines IS NOT NULL`
		args = []any{p.CustomerID, p.Billed.PlanVersionID, billedStart, p.PlanVersionID, start}
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	a := codec.NewAttributor(p)
	for rows.Next() {
		var (
			id    *string
			corr  string
			lines *string
		)
		if err := rows.Scan(&id, &corr, &lines); err != nil {
			return nil, translate(op, err)
		}
		if err := a.Add(codec.AttributionKey(id, corr), lines); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return a.Rows(p.Limit), nil
}
