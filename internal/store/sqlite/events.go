package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

const insertEventSQL = `INSERT INTO events (seq, idem_key, content_hash, id, event_type, customer_id,
	correlation_id, attr_key, ts, received_at, properties, measurements, unmetered, plan_version_id,
	period_start, period_end, amount, cost) VALUES `

const insertLineSQL = `INSERT INTO rated_lines (event_seq, idx, customer_id, plan_version_id, period_start,
	charge, grp, type, attr_key, quantity, amount, cost) VALUES `

// Rows per multi-row INSERT, and parameters per row.
const (
	eventChunk  = 32
	lineChunk   = 64
	eventParams = 18
	lineParams  = 12
)

// insertSQL is an INSERT of rows rows of params parameters each.
func insertSQL(prefix string, rows, params int) string {
	var b strings.Builder
	b.WriteString(prefix)
	row := "(?" + strings.Repeat(", ?", params-1) + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// stmtCache holds the writer's prepared multi-row INSERTs, by table and row count.
type stmtCache struct {
	mu sync.Mutex
	m  map[[2]int]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, db *sql.DB, table, rows int) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[[2]int{table, rows}]; ok {
		return st, nil
	}
	var q string
	if table == 0 {
		q = insertSQL(insertEventSQL, rows, eventParams)
	} else {
		q = insertSQL(insertLineSQL, rows, lineParams)
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[[2]int]*sql.Stmt{}
	}
	c.m[[2]int{table, rows}] = st
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

const eventCols = `seq, idem_key, content_hash, id, event_type, customer_id, correlation_id, attr_key,
	ts, received_at, properties, measurements, unmetered, plan_version_id, period_start, period_end,
	amount, cost`

// maxKeys bounds the JSON list of one FindEvents query.
const maxKeys = 5000

// prepareChunks prepares the multi-row INSERTs a batch of n rows into table needs. It must run
// outside a write transaction: preparing on the writer waits for its one connection.
func (s *Store) prepareChunks(ctx context.Context, table, n, chunk int) (map[int]*sql.Stmt, error) {
	m := make(map[int]*sql.Stmt, 2)
	for _, rows := range []int{min(n, chunk), n % chunk} {
		if rows == 0 || m[rows] != nil {
			continue
		}
		st, err := s.stmts.get(ctx, s.w, table, rows)
		if err != nil {
			return nil, err
		}
		m[rows] = st
	}
	return m, nil
}

// execChunk runs a prepared multi-row INSERT in tx.
func execChunk(ctx context.Context, tx *sql.Tx, st *sql.Stmt, args []any) error {
	txst := tx.StmtContext(ctx, st)
	_, err := txst.ExecContext(ctx, args...)
	if cerr := txst.Close(); err == nil {
		err = cerr
	}
	return err
}

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

// InsertEvents stores events and their lines in one transaction, assigning sequence numbers in
// slice order. ErrConflict, and nothing written, if any key is already stored or repeats within
// the batch. Seq is written back into each record only once the transaction has committed.
func (s *Store) InsertEvents(ctx context.Context, events []*store.EventRecord) error {
	const op = "insert events"
	if len(events) == 0 {
		return nil
	}
	enc := make([]codec.Event, len(events))
	lines := make([][]codec.Line, len(events))
	for i, e := range events {
		var err error
		if enc[i], lines[i], err = codec.EncodeEvent(i, e); err != nil {
			return fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	nLines := 0
	for _, ls := range lines {
		nLines += len(ls)
	}
	evStmts, err := s.prepareChunks(ctx, 0, len(enc), eventChunk)
	if err != nil {
		return translate(op, err)
	}
	lineStmts, err := s.prepareChunks(ctx, 1, nLines, lineChunk)
	if err != nil {
		return translate(op, err)
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
	args := make([]any, 0, eventChunk*eventParams)
	for lo := 0; lo < len(enc); lo += eventChunk {
		hi := min(lo+eventChunk, len(enc))
		args = args[:0]
		for i := lo; i < hi; i++ {
			c := &enc[i]
			args = append(args, last+1+int64(i), c.Key, c.ContentHash, c.ID, c.EventType, c.CustomerID,
				c.CorrelationID, c.AttrKey, c.TS, c.ReceivedAt, c.Properties, c.Measurements, c.Unmetered,
				c.PlanVersionID, c.PeriodStart, c.PeriodEnd, c.Amount, c.Cost)
		}
		if err := execChunk(ctx, tx, evStmts[hi-lo], args); err != nil {
			return translate(op, err)
		}
	}
	args = args[:0]
	rows := 0
	for i := range enc {
		c := &enc[i]
		for j := range lines[i] {
			l := &lines[i][j]
			args = append(args, last+1+int64(i), l.Idx, c.CustomerID, c.PlanVersionID, c.PeriodStart,
				l.Charge, l.Group, l.Type, c.AttrKey, l.Quantity, l.Amount, l.Cost)
			if rows++; rows == lineChunk {
				if err := execChunk(ctx, tx, lineStmts[rows], args); err != nil {
					return translate(op, err)
				}
				args, rows = args[:0], 0
			}
		}
	}
	if rows > 0 {
		if err := execChunk(ctx, tx, lineStmts[rows], args); err != nil {
			return translate(op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return translate(op, err)
	}
	for i, e := range events {
		e.Seq = last + 1 + int64(i)
	}
	return nil
}

func scanEvent(sc interface{ Scan(...any) error }) (store.EventRecord, error) {
	var (
		seq int64
		c   codec.Event
	)
	if err := sc.Scan(&seq, &c.Key, &c.ContentHash, &c.ID, &c.EventType, &c.CustomerID, &c.CorrelationID,
		&c.AttrKey, &c.TS, &c.ReceivedAt, &c.Properties, &c.Measurements, &c.Unmetered, &c.PlanVersionID,
		&c.PeriodStart, &c.PeriodEnd, &c.Amount, &c.Cost); err != nil {
		return store.EventRecord{}, err
	}
	return codec.DecodeEvent(seq, &c)
}

// loadLines fills in the rated lines of evs, in their stored order.
func (s *Store) loadLines(ctx context.Context, evs []store.EventRecord) error {
	if len(evs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(evs))
	seqs := make([]int64, len(evs))
	for i := range evs {
		idx[evs[i].Seq] = i
		seqs[i] = evs[i].Seq
	}
	list, err := json.Marshal(seqs)
	if err != nil {
		return err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT event_seq, idx, charge, grp, type, quantity, amount, cost
		FROM rated_lines WHERE event_seq IN (SELECT value FROM json_each(?)) ORDER BY event_seq, idx`, string(list))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq int64
			l   codec.Line
		)
		if err := rows.Scan(&seq, &l.Idx, &l.Charge, &l.Group, &l.Type, &l.Quantity, &l.Amount, &l.Cost); err != nil {
			return err
		}
		rl, err := codec.DecodeLine(&l)
		if err != nil {
			return err
		}
		if i, ok := idx[seq]; ok {
			evs[i].Lines = append(evs[i].Lines, rl)
		}
	}
	return rows.Err()
}

// GetEvent returns the event with the ID (the first stored, should several share it), with its
// lines; ErrNotFound for "" or an unknown ID.
func (s *Store) GetEvent(ctx context.Context, id string) (store.EventRecord, error) {
	op := fmt.Sprintf("get event %q", id)
	if id == "" {
		return store.EventRecord{}, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	e, err := scanEvent(s.r.QueryRowContext(ctx,
		`SELECT `+eventCols+` FROM events WHERE id = ? ORDER BY seq LIMIT 1`, id))
	if err != nil {
		return store.EventRecord{}, translate(op, err)
	}
	evs := []store.EventRecord{e}
	if err := s.loadLines(ctx, evs); err != nil {
		return store.EventRecord{}, translate(op, err)
	}
	return evs[0], nil
}

// EventsByCorrelation returns the events with the correlation ID by timestamp then sequence,
// with lines; at most limit of them (≤ 0: all). An empty correlation ID matches nothing.
func (s *Store) EventsByCorrelation(ctx context.Context, correlationID string, limit int) ([]store.EventRecord, error) {
	op := fmt.Sprintf("events by correlation %q", correlationID)
	if correlationID == "" {
		return nil, nil
	}
	evs, err := s.collect(ctx, `SELECT `+eventCols+` FROM events WHERE correlation_id = ?
		ORDER BY ts, seq LIMIT ?`, correlationID, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	return evs, translate(op, s.loadLines(ctx, evs))
}

func (s *Store) collect(ctx context.Context, query string, args ...any) ([]store.EventRecord, error) {
	var evs []store.EventRecord
	err := s.each(ctx, query, args, func(e *store.EventRecord) error {
		evs = append(evs, *e)
		return nil
	})
	return evs, err
}

// each streams the events of one query to fn. An error from fn is returned as it is.
func (s *Store) each(ctx context.Context, query string, args []any, fn func(*store.EventRecord) error) error {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
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
	return translateEach(op, s.each(ctx, `SELECT `+eventCols+` FROM events
		WHERE customer_id = ? AND plan_version_id = ? AND period_start = ? ORDER BY seq`,
		[]any{p.CustomerID, p.PlanVersionID, start}, fn))
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
		WHERE customer_id = ? AND ts >= ? AND ts < ? ORDER BY ts, seq`, []any{customerID, f, t}, fn))
}

// Attribution sums one invoice line's rated lines by attribution key, after the cursor, at most
// limit keys (≤ 0: all). The sums are computed in Go with exact decimals.
func (s *Store) Attribution(ctx context.Context, p store.AttributionParams) ([]store.AttributionRow, error) {
	const op = "attribution"
	start, err := codec.Time(p.PeriodStart)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	for _, v := range []string{p.CustomerID, p.Charge, p.Group, p.Type, p.After} {
		if err := codec.Text("attribution parameter", v); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT attr_key, event_seq, quantity, amount FROM rated_lines
		WHERE customer_id = ? AND plan_version_id = ? AND period_start = ?
		  AND charge = ? AND grp = ? AND type = ? AND attr_key > ?
		ORDER BY attr_key, event_seq`,
		p.CustomerID, p.PlanVersionID, start, p.Charge, p.Group, p.Type, p.After)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var (
		out     []store.AttributionRow
		lastSeq int64
	)
	for rows.Next() {
		var (
			key, qs, as string
			seq         int64
		)
		if err := rows.Scan(&key, &seq, &qs, &as); err != nil {
			return nil, translate(op, err)
		}
		q, err := codec.ParseDecimal(qs)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		a, err := codec.ParseDecimal(as)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		if n := len(out); n == 0 || out[n-1].Key != key {
			if p.Limit > 0 && n == p.Limit {
				break
			}
			out = append(out, store.AttributionRow{Key: key, Quantity: money.Zero, Amount: money.Zero})
			lastSeq = 0
		}
		r := &out[len(out)-1]
		if seq != lastSeq {
			r.Events++
			lastSeq = seq
		}
		r.Quantity = r.Quantity.Add(q)
		r.Amount = r.Amount.Add(a)
	}
	return out, translate(op, rows.Err())
}
