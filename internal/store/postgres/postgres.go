// Package postgres is the production store.Store on PostgreSQL, through pgx and its pool.
//
// Behaviour at the edges:
//   - Durability: every write is one transaction committed with the server's synchronous_commit
//     (on by default), so an acknowledged InsertEvents is on the server's disk. A batch that
//     carries no burns, transitions or notices is two round trips: its sequence numbers from
//     events_seq, then one COPY, which commits whole or not at all. A batch that carries some
//     takes its sequence numbers and transition and notice IDs in one query, then COPYs the
//     events and each non-empty table in one transaction. A promotion or period reset already
//     recorded for (customer, basis period, from, to) violates tier_transitions_once:
//     ErrConflict, nothing written. Sequence numbers and IDs are taken before the write, so a
//     failed batch leaves gaps in them.
//   - An event is one row: its rated lines are stored in it (the codec's Lines encoding, exact
//     decimal strings), so ingest writes one heap tuple and four index entries per event. There
//     is no index on the event ID: GetEvent looks up the key store.IDKey(id).
//   - Exact sums: amounts and quantities are unconstrained NUMERIC (event totals) or exact
//     decimal strings (lines), never float64. Attribution reads every event of the period
//     through events_period and sums the matching lines in Go with exact decimals: a page
//     costs O(events in the period), like ReplayPeriod, in exchange for no per-line rows or
//     attribution index on the ingest path.
//   - Sequence numbers increase in slice order within a batch and across batches that do not
//     overlap in time; concurrent batches interleave, and seq order is not commit order: a
//     ScanEvents or ListBurns after a cursor may not yet see an event of a concurrent batch with
//     a smaller seq that commits later.
//   - A late event's billed period is two nullable columns (NULL when billed where rated, see
//     the codec); only late events enter the partial index events_billed, which Adjustments and
//     Attribution with Billed read. Attribution without Billed skips late events.
//   - ScanEvents reads a page of events joined (LATERAL, one primary-key lookup per event) to
//     their burns. EventPeriods skips from period to period through events_period (a recursive
//     loose index scan), O(periods × log events).
//   - ListBurns pages by event sequence number and returns at most limit burns, so a full page
//     may end in the middle of an event's burns.
//   - Invoice numbers are the largest stored plus one, taken under an advisory lock in the
//     inserting transaction: gapless across nodes, and an invoice refused with ErrConflict uses
//     no number.
//   - CreateGrant is idempotent by ID: the same content (all but CreatedAt, amounts by value)
//     returns the stored grant, other content is ErrConflict.
//   - Timestamps are BIGINT Unix nanoseconds, as in the sqlite driver; the zero time is stored as
//     math.MinInt64 and instants outside int64 nanoseconds are rejected.
//   - Keys and identifiers use the "C" collation, so lists and cursors order by bytes exactly as
//     the sqlite driver does. Text must be valid UTF-8 without NUL bytes.
//   - The schema is the first entry of the URL's search_path (?search_path=levy), created when
//     missing, or the server's default. Migrations are embedded and applied at Open in one
//     transaction under an advisory lock, so several nodes can start at once; a schema migrated
//     by a newer build is refused.
//   - A limit ≤ 0 (ListCustomers, EventsByCorrelation, Attribution, ScanEvents, TierTransitions,
//     ListBurns, ListNotices, ListInvoices) means no limit.
//   - ReplayPeriod, ListEvents and ScanEvents stream one query's snapshot and hold one pooled
//     connection while fn runs; fn may call the store.
//   - Unique violations (SQLSTATE 23505) become store.ErrConflict; missing rows and references to
//     missing rows (23503, e.g. a subscription to an unknown plan version) become
//     store.ErrNotFound. No pgx error value crosses the package boundary.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url (a postgres:// URL or key=value DSN; pgxpool options such
// as pool_max_conns are accepted) and brings the schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error text may quote the URL, password included.
		return nil, errors.New("postgres: open: invalid database URL")
	}
	schema := firstSchema(cfg.ConnConfig.RuntimeParams["search_path"])
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, translate("open", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx, schema); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// firstSchema returns the first schema named by a search_path value, unquoted; "" when there is
// none or it is "$user".
func firstSchema(path string) string {
	path = strings.TrimSpace(path)
	if path == "" {
		return ""
	}
	if path[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(path); i++ {
			if path[i] == '"' {
				if i+1 < len(path) && path[i+1] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				return b.String()
			}
			b.WriteByte(path[i])
		}
		return b.String()
	}
	first, _, _ := strings.Cut(path, ",")
	first = strings.ToLower(strings.TrimSpace(first))
	if first == "$user" {
		return ""
	}
	return first
}

// migrate applies the embedded migrations that the schema lacks, in one transaction, holding an
// advisory lock so concurrent Opens on the same schema take turns.
func (s *Store) migrate(ctx context.Context, schema string) error {
	ms, err := migrate.List(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("migrate", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "levy.migrate:"+schema); err != nil {
		return translate("migrate: lock", err)
	}
	if schema != "" {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
			return translate("migrate", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
				return translate(fmt.Sprintf("migrate: create schema %q", schema), err)
			}
		}
	}
	var current *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&current); err != nil {
		return translate("migrate", err)
	}
	if current == nil || (schema != "" && *current != schema) {
		return fmt.Errorf("postgres: migrate: tables would not be created in schema %q (current schema %v)", schema, current)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return translate("migrate", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return translate("migrate", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return translate("migrate", err)
	}
	done := map[int64]bool{}
	var newest int64
	for _, v := range applied {
		done[v] = true
		newest = max(newest, v)
	}
	if n := len(ms); n > 0 && newest > ms[n-1].Version {
		return fmt.Errorf("postgres: migrate: schema version %d is newer than this build's %d", newest, ms[n-1].Version)
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return translate("migrate "+m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, time.Now().UnixNano()); err != nil {
			return translate("migrate "+m.Name, err)
		}
	}
	return translate("migrate", tx.Commit(ctx))
}

// Close closes the pool, waiting for connections in use to be returned. It is safe to call more
// than once.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate("ping", s.pool.Ping(ctx))
}

// translate turns driver errors into store errors. pgx error values never escape: their text
// (and SQLSTATE) is kept, their type is not.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("postgres: %s: %s already exists: %w", op, pe.ConstraintName, store.ErrConflict)
		case "23503":
			return fmt.Errorf("postgres: %s: referenced row does not exist (%s): %w", op, pe.ConstraintName, store.ErrNotFound)
		}
		return fmt.Errorf("postgres: %s: %s (SQLSTATE %s)", op, pe.Message, pe.Code)
	}
	return fmt.Errorf("postgres: %s: %s", op, err.Error())
}

// limitArg is PostgreSQL's LIMIT for a caller's limit: NULL (no limit) for ≤ 0.
func limitArg(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	l := int64(limit)
	return &l
}
