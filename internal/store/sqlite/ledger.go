package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

// burnCols are a burn's columns in codec.Burn order (after customer_id and event_seq).
const burnCols = `grant_id, event_key, ord, at, plan_version_id, period_start, amount`

// ScanEvents calls fn with the events after p.AfterSeq in sequence order (of p.CustomerID when
// set), at most p.Limit of them (≤ 0: all), without lines but with their burns in the order they
// were recorded. It reads one snapshot: the page of events joined to their burns by the burns'
// key. It stops at the first error from fn and returns that error unchanged.
func (s *Store) ScanEvents(ctx context.Context, p store.ScanParams, fn func(*store.EventRecord) error) error {
	op := "scan events"
	where, args := `seq > ?`, []any{p.AfterSeq}
	if p.CustomerID != "" {
		op = fmt.Sprintf("scan events of %q", p.CustomerID)
		where += ` AND customer_id = ?`
		args = append(args, p.CustomerID)
	}
	args = append(args, limitArg(p.Limit))
	rows, err := s.r.QueryContext(ctx, `SELECT e.*, b.grant_id, b.event_key, b.ord, b.at, b.plan_version_id, b.period_start, b.amount
		FROM (SELECT `+eventCols+` FROM events WHERE `+where+` ORDER BY seq LIMIT ?) AS e
		LEFT JOIN wallet_burns AS b ON b.customer_id = e.customer_id AND b.event_seq = e.seq
		ORDER BY e.seq, b.ord`, args...)
	if err != nil {
		return translate(op, err)
	}
	defer rows.Close()
	var (
		cur  *store.EventRecord
		seq  int64
		c    codec.Event
		burn struct { // NULL when the event has no burns
			grant, key, amount *string
			ord, at, pv, start *int64
		}
	)
	dst := []any{&seq, &c.Key, &c.ContentHash, &c.ID, &c.EventType, &c.CustomerID, &c.CorrelationID,
		&c.TS, &c.ReceivedAt, &c.Properties, &c.Measurements, &c.Unmetered, &c.PlanVersionID,
		&c.PeriodStart, &c.PeriodEnd, &c.Amount, &c.Cost, &c.BilledPlanVersionID, &c.BilledPeriodStart,
		&burn.grant, &burn.key, &burn.ord, &burn.at, &burn.pv, &burn.start, &burn.amount}
	for rows.Next() {
		c = codec.Event{}
		if err := rows.Scan(dst...); err != nil {
			return translate(op, err)
		}
		if cur == nil || cur.Seq != seq {
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			e, err := codec.DecodeEvent(seq, &c, false)
			if err != nil {
				return fmt.Errorf("sqlite: %s: %w", op, err)
			}
			cur = &e
		}
		if burn.grant != nil {
			b, err := codec.DecodeBurn(seq, &codec.Burn{CustomerID: cur.CustomerID, GrantID: *burn.grant,
				EventKey: *burn.key, Ord: *burn.ord, At: *burn.at, PlanVersionID: *burn.pv,
				PeriodStart: *burn.start, Amount: *burn.amount})
			if err != nil {
				return fmt.Errorf("sqlite: %s: %w", op, err)
			}
			cur.Burns = append(cur.Burns, b)
		}
	}
	if err := rows.Err(); err != nil {
		return translate(op, err)
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// EventPeriods lists the distinct (plan version, period start) pairs of the customer's events
// with the period end of the first event of each, by start, then plan version. It skips from
// one pair to the next through events_period (a loose index scan), so it costs O(periods ×
// log events), not O(events).
func (s *Store) EventPeriods(ctx context.Context, customerID string) ([]store.PeriodRef, error) {
	op := fmt.Sprintf("event periods of %q", customerID)
	// The next pair is the next start of the same plan version, else the first start of the next
	// plan version: two index seeks (a row-value comparison would seek on the plan version only).
	rows, err := s.r.QueryContext(ctx, `WITH RECURSIVE p (pv, ps, pe) AS (
			SELECT plan_version_id, period_start, period_end FROM events WHERE seq =
				(SELECT seq FROM events WHERE customer_id = ?1 ORDER BY plan_version_id, period_start, seq LIMIT 1)
			UNION ALL
			SELECT e.plan_version_id, e.period_start, e.period_end FROM p JOIN events AS e ON e.seq = COALESCE(
				(SELECT seq FROM events WHERE customer_id = ?1 AND plan_version_id = p.pv AND period_start > p.ps
				 ORDER BY period_start, seq LIMIT 1),
				(SELECT seq FROM events WHERE customer_id = ?1 AND plan_version_id > p.pv
				 ORDER BY plan_version_id, period_start, seq LIMIT 1))
		)
		SELECT pv, ps, pe FROM p`, customerID)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.PeriodRef
	for rows.Next() {
		var pv, start, end int64
		if err := rows.Scan(&pv, &start, &end); err != nil {
			return nil, translate(op, err)
		}
		out = append(out, store.PeriodRef{PlanVersionID: pv, Start: codec.ParseTime(start), End: codec.ParseTime(end)})
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	codec.SortPeriods(out)
	return out, nil
}

// Adjustments sums the lines of the late events billed into the period, read through
// events_billed, per rated period, charge, group and type, exactly in Go.
func (s *Store) Adjustments(ctx context.Context, billed store.PeriodKey) ([]store.AdjustmentRow, error) {
	op := fmt.Sprintf("adjustments of %s/%d", billed.CustomerID, billed.PlanVersionID)
	start, err := codec.Time(billed.PeriodStart)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: periodStart: %w", op, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT plan_version_id, period_start, period_end, lines FROM events
		WHERE customer_id = ? AND billed_plan_version_id = ? AND billed_period_start = ? AND lines IS NOT NULL`,
		billed.CustomerID, billed.PlanVersionID, start)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	a := codec.NewAdjuster()
	for rows.Next() {
		var (
			pv, ps, pe int64
			lines      *string
		)
		if err := rows.Scan(&pv, &ps, &pe, &lines); err != nil {
			return nil, translate(op, err)
		}
		if err := a.Add(pv, ps, pe, lines); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return a.Rows(), nil
}

// Cursor returns the named cursor, 0 when it was never set.
func (s *Store) Cursor(ctx context.Context, name string) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT value FROM cursors WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, translate(fmt.Sprintf("cursor %q", name), err)
}

// SetCursor stores the named cursor (any value; it may move backwards).
func (s *Store) SetCursor(ctx context.Context, name string, v int64) error {
	op := fmt.Sprintf("set cursor %q", name)
	if name == "" {
		return fmt.Errorf("sqlite: %s: empty name", op)
	}
	if err := codec.Text("name", name); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO cursors (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, v)
	return translate(op, err)
}

const transitionCols = `id, customer_id, at, from_tier, to_tier, reason, basis, basis_period_start, spend,
	event_seq, event_key, event_id, correlation_id`

func scanTransition(sc interface{ Scan(...any) error }) (store.TierTransition, error) {
	var (
		id int64
		c  codec.Transition
	)
	if err := sc.Scan(&id, &c.CustomerID, &c.At, &c.From, &c.To, &c.Reason, &c.Basis, &c.BasisPeriodStart,
		&c.Spend, &c.EventSeq, &c.EventKey, &c.EventID, &c.CorrelationID); err != nil {
		return store.TierTransition{}, err
	}
	return codec.DecodeTransition(id, &c)
}

// TierTransitions lists the customer's transitions with IDs after afterID, by ID, at most limit
// (≤ 0: all).
func (s *Store) TierTransitions(ctx context.Context, customerID string, afterID int64, limit int) ([]store.TierTransition, error) {
	op := fmt.Sprintf("tier transitions of %q", customerID)
	rows, err := s.r.QueryContext(ctx, `SELECT `+transitionCols+` FROM tier_transitions
		WHERE customer_id = ? AND id > ? ORDER BY id LIMIT ?`, customerID, afterID, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.TierTransition
	for rows.Next() {
		t, err := scanTransition(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, t)
	}
	return out, translate(op, rows.Err())
}

// InsertTierTransition records a transition no event carries and returns it with its ID.
// ErrConflict if it is a promotion or period reset already recorded.
func (s *Store) InsertTierTransition(ctx context.Context, t store.TierTransition) (store.TierTransition, error) {
	const op = "insert tier transition"
	c, err := codec.EncodeTransition("transition", &t)
	if err != nil {
		return store.TierTransition{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var id int64
	if err := s.w.QueryRowContext(ctx, `INSERT INTO tier_transitions (customer_id, at, from_tier, to_tier,
			reason, basis, basis_period_start, spend, event_seq, event_key, event_id, correlation_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.CustomerID, c.At, c.From, c.To, c.Reason, c.Basis, c.BasisPeriodStart, c.Spend, c.EventSeq,
		c.EventKey, c.EventID, c.CorrelationID).Scan(&id); err != nil {
		return store.TierTransition{}, translate(op, err)
	}
	return codec.DecodeTransition(id, &c)
}

const grantCols = `id, customer_id, amount, priority, expires_at, kind, note, created_at`

func scanGrant(sc interface{ Scan(...any) error }) (store.Grant, error) {
	var c codec.Grant
	if err := sc.Scan(&c.ID, &c.CustomerID, &c.Amount, &c.Priority, &c.ExpiresAt, &c.Kind, &c.Note, &c.CreatedAt); err != nil {
		return store.Grant{}, err
	}
	return codec.DecodeGrant(&c)
}

// CreateGrant stores a grant, or returns the stored grant with the ID when its content (all but
// CreatedAt) is the same; ErrConflict when it differs.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) (store.Grant, error) {
	const op = "create grant"
	c, err := codec.EncodeGrant(&g)
	if err != nil {
		return store.Grant{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	want, err := codec.DecodeGrant(&c)
	if err != nil {
		return store.Grant{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Grant{}, translate(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO wallet_grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.CustomerID, c.Amount, c.Priority, c.ExpiresAt, c.Kind, c.Note, c.CreatedAt)
	if err != nil {
		return store.Grant{}, translate(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return store.Grant{}, translate(op, err)
	} else if n == 1 {
		return want, translate(op, tx.Commit())
	}
	stored, err := scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantCols+` FROM wallet_grants WHERE id = ?`, c.ID))
	if err != nil {
		return store.Grant{}, translate(op, err)
	}
	if !codec.SameGrant(stored, want) {
		return store.Grant{}, fmt.Errorf("sqlite: %s %q: stored with other content: %w", op, g.ID, store.ErrConflict)
	}
	return stored, nil
}

// ListGrants lists the customer's grants by creation time, then ID.
func (s *Store) ListGrants(ctx context.Context, customerID string) ([]store.Grant, error) {
	op := fmt.Sprintf("list grants of %q", customerID)
	rows, err := s.r.QueryContext(ctx, `SELECT `+grantCols+` FROM wallet_grants WHERE customer_id = ?
		ORDER BY created_at, id`, customerID)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, g)
	}
	return out, translate(op, rows.Err())
}

// ListBurns lists the customer's burns of events after afterSeq, by event sequence number, then
// the order the event recorded them, at most limit (≤ 0: all). A page may end in the middle of
// an event's burns: a caller paging by afterSeq drops the last event's burns from a full page.
func (s *Store) ListBurns(ctx context.Context, customerID string, afterSeq int64, limit int) ([]store.WalletBurn, error) {
	op := fmt.Sprintf("list burns of %q", customerID)
	out, err := s.burns(ctx, `customer_id = ? AND event_seq > ? ORDER BY event_seq, ord LIMIT ?`,
		customerID, afterSeq, limitArg(limit))
	return out, translate(op, err)
}

// burns reads the customer's (args[0]) burns matching where.
func (s *Store) burns(ctx context.Context, where string, args ...any) ([]store.WalletBurn, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT event_seq, `+burnCols+` FROM wallet_burns WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.WalletBurn
	for rows.Next() {
		var (
			seq int64
			c   = codec.Burn{CustomerID: args[0].(string)}
		)
		if err := rows.Scan(&seq, &c.GrantID, &c.EventKey, &c.Ord, &c.At, &c.PlanVersionID, &c.PeriodStart, &c.Amount); err != nil {
			return nil, err
		}
		b, err := codec.DecodeBurn(seq, &c)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// ListNotices lists the customer's notices with IDs after afterID, by ID, at most limit (≤ 0:
// all).
func (s *Store) ListNotices(ctx context.Context, customerID string, afterID int64, limit int) ([]store.Notice, error) {
	op := fmt.Sprintf("list notices of %q", customerID)
	rows, err := s.r.QueryContext(ctx, `SELECT id, customer_id, kind, at, event_seq, event_key, data FROM notices
		WHERE customer_id = ? AND id > ? ORDER BY id LIMIT ?`, customerID, afterID, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.Notice
	for rows.Next() {
		var (
			id int64
			c  codec.Notice
		)
		if err := rows.Scan(&id, &c.CustomerID, &c.Kind, &c.At, &c.EventSeq, &c.EventKey, &c.Data); err != nil {
			return nil, translate(op, err)
		}
		out = append(out, codec.DecodeNotice(id, &c))
	}
	return out, translate(op, rows.Err())
}

const invoiceCols = `number, id, customer_id, plan_version_id, period_start, period_end, issued_at, currency,
	total, amount_due, document`

func scanInvoice(sc interface{ Scan(...any) error }) (store.Invoice, error) {
	var (
		number int64
		id     string
		c      codec.Invoice
	)
	if err := sc.Scan(&number, &id, &c.CustomerID, &c.PlanVersionID, &c.PeriodStart, &c.PeriodEnd, &c.IssuedAt,
		&c.Currency, &c.Total, &c.AmountDue, &c.Document); err != nil {
		return store.Invoice{}, err
	}
	return codec.DecodeInvoice(number, id, &c)
}

// CreateInvoice stores the invoice under the next number (the largest stored plus one: the one
// writer makes numbers gapless) and the ID made from it, in one transaction. ErrConflict, and
// no number used, if the customer has an invoice for (plan version, period start).
func (s *Store) CreateInvoice(ctx context.Context, inv store.Invoice) (store.Invoice, error) {
	const op = "create invoice"
	c, err := codec.EncodeInvoice(&inv)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Invoice{}, translate(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	var number int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM invoices`).Scan(&number); err != nil {
		return store.Invoice{}, translate(op, err)
	}
	id := codec.InvoiceID(number)
	if _, err := tx.ExecContext(ctx, `INSERT INTO invoices (`+invoiceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		number, id, c.CustomerID, c.PlanVersionID, c.PeriodStart, c.PeriodEnd, c.IssuedAt, c.Currency,
		c.Total, c.AmountDue, c.Document); err != nil {
		return store.Invoice{}, translate(fmt.Sprintf("%s of %q for plan version %d", op, inv.CustomerID, inv.PlanVersionID), err)
	}
	if err := tx.Commit(); err != nil {
		return store.Invoice{}, translate(op, err)
	}
	out, err := codec.DecodeInvoice(number, id, &c)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return out, nil
}

// GetInvoice returns the invoice with the ID, or ErrNotFound.
func (s *Store) GetInvoice(ctx context.Context, id string) (store.Invoice, error) {
	inv, err := scanInvoice(s.r.QueryRowContext(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id = ?`, id))
	return inv, translate(fmt.Sprintf("get invoice %q", id), err)
}

// ListInvoices lists the customer's invoices by period start, then number, after the invoice
// with the ID after ("" starts at the beginning; ErrNotFound when the customer has no such
// invoice), at most limit (≤ 0: all).
func (s *Store) ListInvoices(ctx context.Context, customerID string, after string, limit int) ([]store.Invoice, error) {
	op := fmt.Sprintf("list invoices of %q", customerID)
	var (
		start  = int64(codec.ZeroTime)
		number int64
	)
	if after != "" {
		err := s.r.QueryRowContext(ctx, `SELECT period_start, number FROM invoices WHERE id = ? AND customer_id = ?`,
			after, customerID).Scan(&start, &number)
		if err != nil {
			return nil, translate(fmt.Sprintf("%s: cursor invoice %q", op, after), err)
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+invoiceCols+` FROM invoices
		WHERE customer_id = ? AND (period_start, number) > (?, ?) ORDER BY period_start, number LIMIT ?`,
		customerID, start, number, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []store.Invoice
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, inv)
	}
	return out, translate(op, rows.Err())
}
