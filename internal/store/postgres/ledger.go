package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/codec"
)

// invoiceLock is the advisory lock key that serialises CreateInvoice across nodes, so invoice
// numbers are taken from the latest committed state and have no gaps.
const invoiceLock = "levy.invoices"

// storable reports whether every s can be stored as text; a lookup by text that cannot be stored
// finds nothing (PostgreSQL would reject it).
func storable(ss ...string) bool {
	for _, s := range ss {
		if codec.Text("", s) != nil {
			return false
		}
	}
	return true
}

// ScanEvents calls fn with the events after p.AfterSeq in sequence order (of p.CustomerID when
// set), at most p.Limit of them (≤ 0: all), without lines but with their burns in the order they
// were recorded. It reads one query's snapshot (the page of events joined to their burns by the
// burns' key) and holds one pooled connection while fn runs. It stops at the first error from fn
// and returns that error unchanged.
//
// Sequence numbers are not commit order when batches are written concurrently: a scan after a
// cursor may not yet see an event with a smaller seq whose batch commits later.
func (s *Store) ScanEvents(ctx context.Context, p store.ScanParams, fn func(*store.EventRecord) error) error {
	op := "scan events"
	where, args := `seq > $1`, []any{p.AfterSeq, limitArg(p.Limit)}
	if p.CustomerID != "" {
		op = fmt.Sprintf("scan events of %q", p.CustomerID)
		if !storable(p.CustomerID) {
			return nil
		}
		where += ` AND customer_id = $3`
		args = append(args, p.CustomerID)
	}
	// The LATERAL subquery (kept apart by its ORDER BY) makes each event's burns one lookup of
	// wallet_burns_pkey; a plain join would let the planner hash or sort the whole table per page.
	rows, err := s.pool.Query(ctx, `SELECT e.*, b.grant_id, b.event_key, b.ord, b.at, b.plan_version_id,
			b.period_start, b.amount::text
		FROM (SELECT `+eventCols+` FROM events WHERE `+where+` ORDER BY seq LIMIT $2) AS e
		LEFT JOIN LATERAL (SELECT * FROM wallet_burns AS wb
			WHERE wb.customer_id = e.customer_id AND wb.event_seq = e.seq ORDER BY wb.ord) AS b ON true
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
				return fmt.Errorf("postgres: %s: %w", op, err)
			}
			cur = &e
		}
		if burn.grant != nil {
			b, err := codec.DecodeBurn(seq, &codec.Burn{CustomerID: cur.CustomerID, GrantID: *burn.grant,
				EventKey: *burn.key, Ord: *burn.ord, At: *burn.at, PlanVersionID: *burn.pv,
				PeriodStart: *burn.start, Amount: *burn.amount})
			if err != nil {
				return fmt.Errorf("postgres: %s: %w", op, err)
			}
			cur.Burns = append(cur.Burns, b)
		}
	}
	if err := rows.Err(); err != nil {
		return translate(op, err)
	}
	rows.Close()
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
	if !storable(customerID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE p (pv, ps, pe) AS (
			(SELECT plan_version_id, period_start, period_end FROM events WHERE customer_id = $1
			 ORDER BY plan_version_id, period_start, seq LIMIT 1)
			UNION ALL
			SELECT n.plan_version_id, n.period_start, n.period_end FROM p CROSS JOIN LATERAL
				(SELECT plan_version_id, period_start, period_end FROM events
				 WHERE customer_id = $1 AND (plan_version_id, period_start) > (p.pv, p.ps)
				 ORDER BY plan_version_id, period_start, seq LIMIT 1) AS n
		)
		SELECT pv, ps, pe FROM p`, customerID)
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.PeriodRef, error) {
		var pv, start, end int64
		err := r.Scan(&pv, &start, &end)
		return store.PeriodRef{PlanVersionID: pv, Start: codec.ParseTime(start), End: codec.ParseTime(end)}, err
	})
	if err != nil {
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
		return nil, fmt.Errorf("postgres: %s: periodStart: %w", op, err)
	}
	a := codec.NewAdjuster()
	if !storable(billed.CustomerID) {
		return a.Rows(), nil
	}
	rows, err := s.pool.Query(ctx, `SELECT plan_version_id, period_start, period_end, lines FROM events
		WHERE customer_id = $1 AND billed_plan_version_id = $2 AND billed_period_start = $3 AND lines IS NOT NULL`,
		billed.CustomerID, billed.PlanVersionID, start)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			pv, ps, pe int64
			lines      *string
		)
		if err := rows.Scan(&pv, &ps, &pe, &lines); err != nil {
			return nil, translate(op, err)
		}
		if err := a.Add(pv, ps, pe, lines); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", op, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return a.Rows(), nil
}

// Cursor returns the named cursor, 0 when it was never set.
func (s *Store) Cursor(ctx context.Context, name string) (int64, error) {
	if !storable(name) {
		return 0, nil
	}
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM cursors WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, translate(fmt.Sprintf("cursor %q", name), err)
}

// SetCursor stores the named cursor (any value; it may move backwards).
func (s *Store) SetCursor(ctx context.Context, name string, v int64) error {
	op := fmt.Sprintf("set cursor %q", name)
	if name == "" {
		return fmt.Errorf("postgres: %s: empty name", op)
	}
	if err := codec.Text("name", name); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO cursors (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, v)
	return translate(op, err)
}

const transitionCols = `id, customer_id, at, from_tier, to_tier, reason, basis, basis_period_start, spend::text,
	event_seq, event_key, event_id, correlation_id`

func scanTransition(row pgx.Row) (store.TierTransition, error) {
	var (
		id int64
		c  codec.Transition
	)
	if err := row.Scan(&id, &c.CustomerID, &c.At, &c.From, &c.To, &c.Reason, &c.Basis, &c.BasisPeriodStart,
		&c.Spend, &c.EventSeq, &c.EventKey, &c.EventID, &c.CorrelationID); err != nil {
		return store.TierTransition{}, err
	}
	return codec.DecodeTransition(id, &c)
}

// TierTransitions lists the customer's transitions with IDs after afterID, by ID, at most limit
// (≤ 0: all).
func (s *Store) TierTransitions(ctx context.Context, customerID string, afterID int64, limit int) ([]store.TierTransition, error) {
	op := fmt.Sprintf("tier transitions of %q", customerID)
	if !storable(customerID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+transitionCols+` FROM tier_transitions
		WHERE customer_id = $1 AND id > $2 ORDER BY id LIMIT $3`, customerID, afterID, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.TierTransition, error) { return scanTransition(r) })
	return out, translate(op, err)
}

// InsertTierTransition records a transition no event carries and returns it with its ID.
// ErrConflict if it is a promotion or period reset already recorded.
func (s *Store) InsertTierTransition(ctx context.Context, t store.TierTransition) (store.TierTransition, error) {
	const op = "insert tier transition"
	c, err := codec.EncodeTransition("transition", &t)
	if err != nil {
		return store.TierTransition{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	spend, err := numeric(c.Spend)
	if err != nil {
		return store.TierTransition{}, fmt.Errorf("postgres: %s: spend: %w", op, err)
	}
	var id int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO tier_transitions (customer_id, at, from_tier, to_tier,
			reason, basis, basis_period_start, spend, event_seq, event_key, event_id, correlation_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		c.CustomerID, c.At, c.From, c.To, c.Reason, c.Basis, c.BasisPeriodStart, spend, c.EventSeq,
		c.EventKey, c.EventID, c.CorrelationID).Scan(&id); err != nil {
		return store.TierTransition{}, translate(op, err)
	}
	return codec.DecodeTransition(id, &c)
}

const grantCols = `id, customer_id, amount::text, priority, expires_at, kind, note, created_at`

func scanGrant(row pgx.Row) (store.Grant, error) {
	var c codec.Grant
	if err := row.Scan(&c.ID, &c.CustomerID, &c.Amount, &c.Priority, &c.ExpiresAt, &c.Kind, &c.Note, &c.CreatedAt); err != nil {
		return store.Grant{}, err
	}
	return codec.DecodeGrant(&c)
}

// CreateGrant stores a grant, or returns the stored grant with the ID when its content (all but
// CreatedAt) is the same; ErrConflict when it differs. Grants are never changed, so the insert
// and the comparison need no common transaction.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) (store.Grant, error) {
	const op = "create grant"
	c, err := codec.EncodeGrant(&g)
	if err != nil {
		return store.Grant{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	want, err := codec.DecodeGrant(&c)
	if err != nil {
		return store.Grant{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	amt, err := numeric(c.Amount)
	if err != nil {
		return store.Grant{}, fmt.Errorf("postgres: %s: amount: %w", op, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO wallet_grants
		(id, customer_id, amount, priority, expires_at, kind, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO NOTHING`, c.ID, c.CustomerID, amt, c.Priority, c.ExpiresAt, c.Kind, c.Note, c.CreatedAt)
	if err != nil {
		return store.Grant{}, translate(op, err)
	}
	if tag.RowsAffected() == 1 {
		return want, nil
	}
	stored, err := scanGrant(s.pool.QueryRow(ctx, `SELECT `+grantCols+` FROM wallet_grants WHERE id = $1`, c.ID))
	if err != nil {
		return store.Grant{}, translate(op, err)
	}
	if !codec.SameGrant(stored, want) {
		return store.Grant{}, fmt.Errorf("postgres: %s %q: stored with other content: %w", op, g.ID, store.ErrConflict)
	}
	return stored, nil
}

// ListGrants lists the customer's grants by creation time, then ID.
func (s *Store) ListGrants(ctx context.Context, customerID string) ([]store.Grant, error) {
	op := fmt.Sprintf("list grants of %q", customerID)
	if !storable(customerID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+grantCols+` FROM wallet_grants WHERE customer_id = $1
		ORDER BY created_at, id`, customerID)
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Grant, error) { return scanGrant(r) })
	return out, translate(op, err)
}

// ListBurns lists the customer's burns of events after afterSeq, by event sequence number, then
// the order the event recorded them, at most limit (≤ 0: all). A page may end in the middle of
// an event's burns: a caller paging by afterSeq drops the last event's burns from a full page.
func (s *Store) ListBurns(ctx context.Context, customerID string, afterSeq int64, limit int) ([]store.WalletBurn, error) {
	op := fmt.Sprintf("list burns of %q", customerID)
	if !storable(customerID) {
		return nil, nil
	}
	out, err := s.burns(ctx, `customer_id = $1 AND event_seq > $2 ORDER BY event_seq, ord LIMIT $3`,
		customerID, afterSeq, limitArg(limit))
	return out, translate(op, err)
}

// burns reads the customer's (args[0]) burns matching where.
func (s *Store) burns(ctx context.Context, where string, args ...any) ([]store.WalletBurn, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_seq, grant_id, event_key, ord, at, plan_version_id, period_start,
			amount::text FROM wallet_burns WHERE `+where, args...)
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
	if !storable(customerID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, customer_id, kind, at, event_seq, event_key, data FROM notices
		WHERE customer_id = $1 AND id > $2 ORDER BY id LIMIT $3`, customerID, afterID, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Notice, error) {
		var (
			id int64
			c  codec.Notice
		)
		if err := r.Scan(&id, &c.CustomerID, &c.Kind, &c.At, &c.EventSeq, &c.EventKey, &c.Data); err != nil {
			return store.Notice{}, err
		}
		return codec.DecodeNotice(id, &c), nil
	})
	return out, translate(op, err)
}

const invoiceCols = `number, id, customer_id, plan_version_id, period_start, period_end, issued_at, currency,
	total::text, amount_due::text, document`

func scanInvoice(row pgx.Row) (store.Invoice, error) {
	var (
		number int64
		id     string
		c      codec.Invoice
	)
	if err := row.Scan(&number, &id, &c.CustomerID, &c.PlanVersionID, &c.PeriodStart, &c.PeriodEnd, &c.IssuedAt,
		&c.Currency, &c.Total, &c.AmountDue, &c.Document); err != nil {
		return store.Invoice{}, err
	}
	return codec.DecodeInvoice(number, id, &c)
}

// CreateInvoice stores the invoice under the next number (the largest stored plus one, taken
// under an advisory lock so numbers have no gaps across nodes) and the ID made from it, in one
// transaction. ErrConflict, and no number used, if the customer has an invoice for (plan
// version, period start).
func (s *Store) CreateInvoice(ctx context.Context, inv store.Invoice) (store.Invoice, error) {
	const op = "create invoice"
	c, err := codec.EncodeInvoice(&inv)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	total, err := numeric(c.Total)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("postgres: %s: total: %w", op, err)
	}
	due, err := numeric(c.AmountDue)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("postgres: %s: amountDue: %w", op, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Invoice{}, translate(op, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The lock is taken by an earlier statement than the MAX: under READ COMMITTED the MAX's
	// snapshot then includes every invoice committed by the lock's previous holders.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, invoiceLock); err != nil {
		return store.Invoice{}, translate(op, err)
	}
	var number int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM invoices`).Scan(&number); err != nil {
		return store.Invoice{}, translate(op, err)
	}
	id := codec.InvoiceID(number)
	if _, err := tx.Exec(ctx, `INSERT INTO invoices (number, id, customer_id, plan_version_id, period_start,
			period_end, issued_at, currency, total, amount_due, document)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		number, id, c.CustomerID, c.PlanVersionID, c.PeriodStart, c.PeriodEnd, c.IssuedAt, c.Currency,
		total, due, c.Document); err != nil {
		return store.Invoice{}, translate(fmt.Sprintf("%s of %q for plan version %d", op, inv.CustomerID, inv.PlanVersionID), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Invoice{}, translate(op, err)
	}
	out, err := codec.DecodeInvoice(number, id, &c)
	if err != nil {
		return store.Invoice{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return out, nil
}

// GetInvoice returns the invoice with the ID, or ErrNotFound.
func (s *Store) GetInvoice(ctx context.Context, id string) (store.Invoice, error) {
	op := fmt.Sprintf("get invoice %q", id)
	if !storable(id) {
		return store.Invoice{}, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	inv, err := scanInvoice(s.pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE id = $1`, id))
	return inv, translate(op, err)
}

// ListInvoices lists the customer's invoices by period start, then number, after the invoice
// with the ID after ("" starts at the beginning; ErrNotFound when the customer has no such
// invoice), at most limit (≤ 0: all).
func (s *Store) ListInvoices(ctx context.Context, customerID string, after string, limit int) ([]store.Invoice, error) {
	op := fmt.Sprintf("list invoices of %q", customerID)
	if !storable(customerID, after) {
		if after != "" {
			return nil, fmt.Errorf("postgres: %s: cursor invoice %q: %w", op, after, store.ErrNotFound)
		}
		return nil, nil
	}
	var (
		start  = int64(codec.ZeroTime)
		number int64
	)
	if after != "" {
		err := s.pool.QueryRow(ctx, `SELECT period_start, number FROM invoices WHERE id = $1 AND customer_id = $2`,
			after, customerID).Scan(&start, &number)
		if err != nil {
			return nil, translate(fmt.Sprintf("%s: cursor invoice %q", op, after), err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+invoiceCols+` FROM invoices
		WHERE customer_id = $1 AND (period_start, number) > ($2, $3) ORDER BY period_start, number LIMIT $4`,
		customerID, start, number, limitArg(limit))
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Invoice, error) { return scanInvoice(r) })
	return out, translate(op, err)
}
