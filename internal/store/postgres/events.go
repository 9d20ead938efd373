package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

const eventCols = `seq, idem_key, content_hash, id, event_type, customer_id, correlation_id, attr_key,
	ts, received_at, properties, measurements, unmetered, plan_version_id, period_start, period_end,
	amount::text, cost::text`

// Both INSERTs take one array per column and unnest them, so a batch is two statements whatever
// its size. Amounts travel as text and are cast to NUMERIC by the server: exact.
const insertEventsSQL = `INSERT INTO events (seq, idem_key, content_hash, id, event_type, customer_id,
	correlation_id, attr_key, ts, received_at, properties, measurements, unmetered, plan_version_id,
	period_start, period_end, amount, cost)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[],
		$14::bigint[], $15::bigint[], $16::bigint[], $17::text[]::numeric[], $18::text[]::numeric[])`

const insertLinesSQL = `INSERT INTO rated_lines (event_seq, idx, customer_id, plan_version_id, period_start,
	charge, grp, type, attr_key, quantity, amount, cost)
	SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::bigint[], $5::bigint[],
		$6::text[], $7::text[], $8::text[], $9::text[],
		$10::text[]::numeric[], $11::text[]::numeric[], $12::text[]::numeric[])`

// maxKeys bounds the key array of one FindEvents query.
const maxKeys = 10000

// FindEvents returns the sequence number and content hash of each stored key among keys.
func (s *Store) FindEvents(ctx context.Context, keys []string) (map[string]store.StoredKey, error) {
	const op = "find events"
	found := make(map[string]store.StoredKey)
	// Keys that could never be stored (invalid text) cannot match, and PostgreSQL would reject them.
	valid := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != "" && codec.Text("key", k) == nil {
			valid = append(valid, k)
		}
	}
	for len(valid) > 0 {
		chunk := valid[:min(len(valid), maxKeys)]
		valid = valid[len(chunk):]
		rows, err := s.pool.Query(ctx, `SELECT idem_key, seq, content_hash FROM events WHERE idem_key = ANY($1::text[])`, chunk)
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
		rows.Close()
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
	n := len(events)
	var (
		seqs                                  = make([]int64, n)
		keys, ids, types, custs, corrs, attrs = make([]string, n), make([]*string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hashes                                = make([][]byte, n)
		ts, recv, pvs, pstart, pend           = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		props, meas, unmet                    = make([]*string, n), make([]*string, n), make([]*string, n)
		amounts, costs                        = make([]string, n), make([]string, n)
		lines                                 = make([][]codec.Line, n)
		nLines                                int
	)
	for i, e := range events {
		c, ls, err := codec.EncodeEvent(i, e)
		if err != nil {
			return fmt.Errorf("postgres: %s: %w", op, err)
		}
		keys[i], hashes[i], ids[i], types[i], custs[i] = c.Key, c.ContentHash, c.ID, c.EventType, c.CustomerID
		corrs[i], attrs[i], ts[i], recv[i] = c.CorrelationID, c.AttrKey, c.TS, c.ReceivedAt
		props[i], meas[i], unmet[i], pvs[i] = c.Properties, c.Measurements, c.Unmetered, c.PlanVersionID
		pstart[i], pend[i], amounts[i], costs[i] = c.PeriodStart, c.PeriodEnd, c.Amount, c.Cost
		lines[i] = ls
		nLines += len(ls)
	}

	// Sequence numbers first: nextval is not transactional, so a failed batch leaves a gap.
	rows, err := s.pool.Query(ctx, `SELECT nextval('events_seq') AS s FROM generate_series(1, $1) ORDER BY s`, n)
	if err != nil {
		return translate(op, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return translate(op, err)
	}
	if len(got) != n {
		return fmt.Errorf("postgres: %s: got %d sequence numbers for %d events", op, len(got), n)
	}
	slices.Sort(got)
	copy(seqs, got)

	var (
		lSeq, lPV, lStart                    = make([]int64, 0, nLines), make([]int64, 0, nLines), make([]int64, 0, nLines)
		lIdx                                 = make([]int32, 0, nLines)
		lCust, lCharge, lGroup, lType, lAttr = make([]string, 0, nLines), make([]string, 0, nLines), make([]string, 0, nLines), make([]string, 0, nLines), make([]string, 0, nLines)
		lQty, lAmount, lCost                 = make([]string, 0, nLines), make([]string, 0, nLines), make([]string, 0, nLines)
	)
	for i, ls := range lines {
		for _, l := range ls {
			lSeq, lIdx, lCust, lPV, lStart = append(lSeq, seqs[i]), append(lIdx, int32(l.Idx)), append(lCust, custs[i]), append(lPV, pvs[i]), append(lStart, pstart[i])
			lCharge, lGroup, lType, lAttr = append(lCharge, l.Charge), append(lGroup, l.Group), append(lType, l.Type), append(lAttr, attrs[i])
			lQty, lAmount, lCost = append(lQty, l.Quantity), append(lAmount, l.Amount), append(lCost, l.Cost)
		}
	}

	// One pipelined batch is one implicit transaction: both INSERTs commit together or not at all.
	b := &pgx.Batch{}
	b.Queue(insertEventsSQL, seqs, keys, hashes, ids, types, custs, corrs, attrs, ts, recv, props, meas, unmet,
		pvs, pstart, pend, amounts, costs)
	if nLines > 0 {
		b.Queue(insertLinesSQL, lSeq, lIdx, lCust, lPV, lStart, lCharge, lGroup, lType, lAttr, lQty, lAmount, lCost)
	}
	br := s.pool.SendBatch(ctx, b)
	var firstErr error
	for range b.Len() {
		if _, err := br.Exec(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := br.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return translate(op, firstErr)
	}
	for i, e := range events {
		e.Seq = seqs[i]
	}
	return nil
}

func scanEvent(row pgx.Row) (store.EventRecord, error) {
	var (
		seq int64
		c   codec.Event
	)
	if err := row.Scan(&seq, &c.Key, &c.ContentHash, &c.ID, &c.EventType, &c.CustomerID, &c.CorrelationID,
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
	rows, err := s.pool.Query(ctx, `SELECT event_seq, idx, charge, grp, type, quantity::text, amount::text, cost::text
		FROM rated_lines WHERE event_seq = ANY($1::bigint[]) ORDER BY event_seq, idx`, seqs)
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
	if id == "" || codec.Text("id", id) != nil {
		return store.EventRecord{}, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	e, err := scanEvent(s.pool.QueryRow(ctx,
		`SELECT `+eventCols+` FROM events WHERE id = $1 ORDER BY seq LIMIT 1`, id))
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
	if correlationID == "" || codec.Text("correlation id", correlationID) != nil {
		return nil, nil
	}
	var evs []store.EventRecord
	err := s.each(ctx, `SELECT `+eventCols+` FROM events WHERE correlation_id = $1 ORDER BY ts, seq LIMIT $2`,
		[]any{correlationID, limitArg(limit)}, func(e *store.EventRecord) error {
			evs = append(evs, *e)
			return nil
		})
	if err != nil {
		return nil, translate(op, err)
	}
	return evs, translate(op, s.loadLines(ctx, evs))
}

// each streams the events of one query to fn. An error from fn comes back as a callbackError.
func (s *Store) each(ctx context.Context, query string, args []any, fn func(*store.EventRecord) error) error {
	rows, err := s.pool.Query(ctx, query, args...)
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
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if codec.Text("customer id", p.CustomerID) != nil {
		return nil // no such customer can be stored
	}
	return translateEach(op, s.each(ctx, `SELECT `+eventCols+` FROM events
		WHERE customer_id = $1 AND plan_version_id = $2 AND period_start = $3 ORDER BY seq`,
		[]any{p.CustomerID, p.PlanVersionID, start}, fn))
}

// ListEvents calls fn with the customer's events with timestamps in [from, to), by timestamp
// then sequence, without lines. It stops at the first error from fn and returns it unchanged.
func (s *Store) ListEvents(ctx context.Context, customerID string, from, to time.Time, fn func(*store.EventRecord) error) error {
	op := fmt.Sprintf("list events of %q", customerID)
	f, err := codec.Time(from)
	if err != nil {
		return fmt.Errorf("postgres: %s: from: %w", op, err)
	}
	t, err := codec.Time(to)
	if err != nil {
		return fmt.Errorf("postgres: %s: to: %w", op, err)
	}
	if codec.Text("customer id", customerID) != nil {
		return nil
	}
	return translateEach(op, s.each(ctx, `SELECT `+eventCols+` FROM events
		WHERE customer_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts, seq`, []any{customerID, f, t}, fn))
}

// Attribution sums one invoice line's rated lines by attribution key, after the cursor, at most
// limit keys (≤ 0: all). NUMERIC SUM is exact.
func (s *Store) Attribution(ctx context.Context, p store.AttributionParams) ([]store.AttributionRow, error) {
	const op = "attribution"
	start, err := codec.Time(p.PeriodStart)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	for _, v := range []string{p.CustomerID, p.Charge, p.Group, p.Type, p.After} {
		if err := codec.Text("attribution parameter", v); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", op, err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT attr_key, count(DISTINCT event_seq), sum(quantity)::text, sum(amount)::text
		FROM rated_lines
		WHERE customer_id = $1 AND plan_version_id = $2 AND period_start = $3
		  AND charge = $4 AND grp = $5 AND type = $6 AND attr_key > $7
		GROUP BY attr_key ORDER BY attr_key LIMIT $8`,
		p.CustomerID, p.PlanVersionID, start, p.Charge, p.Group, p.Type, p.After, limitArg(p.Limit))
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.AttributionRow
	for rows.Next() {
		var (
			r      store.AttributionRow
			qs, as string
		)
		if err := rows.Scan(&r.Key, &r.Events, &qs, &as); err != nil {
			return nil, translate(op, err)
		}
		if r.Quantity, err = codec.ParseDecimal(qs); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", op, err)
		}
		if r.Amount, err = codec.ParseDecimal(as); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", op, err)
		}
		out = append(out, r)
	}
	return out, translate(op, rows.Err())
}
