// Package sqlite is the embedded store.Store: one SQLite file, through the pure-Go
// modernc.org/sqlite driver.
//
// Behaviour at the edges:
//   - Durability: the file is in WAL mode with synchronous=FULL by default, so every committed
//     write (an acknowledged InsertEvents) is fsynced before the method returns and survives a
//     crash or power loss. Options.Synchronous may relax it to NORMAL, which keeps the file
//     consistent but may lose the last commits on power loss (not on a process crash).
//   - Writes go through one connection (SQLite has one writer), each in a BEGIN IMMEDIATE
//     transaction, so concurrent writers in this process queue instead of failing with
//     SQLITE_BUSY; reads use a separate read-only pool and see every committed write. Another
//     process writing the same file is waited for up to Options.BusyTimeout.
//   - The writer keeps a 64 MiB page cache and checkpoints the WAL every ~40 MiB (10,000
//     pages), so a checkpoint occasionally lengthens one commit; readers keep 16 MiB each.
//   - An event is one row: its rated lines are stored in it (the codec's Lines encoding), and
//     InsertEvents writes a batch with a prepared single-row INSERT per event in one
//     transaction (single-row INSERTs need no statement journal, unlike multi-row ones). There
//     is no index on the event ID: GetEvent looks up the key store.IDKey(id).
//   - The burns, tier transitions and notices an event carries are written by InsertEvents in the
//     same transaction, one prepared single-row INSERT each; a batch that carries nothing runs
//     only the event INSERT. A promotion or period reset already recorded for (customer, basis
//     period, from, to) violates tier_transitions_once: ErrConflict, nothing written. Transition
//     and notice IDs are AUTOINCREMENT, increasing in slice order and never reused.
//   - A late event's billed period is two nullable columns (NULL when billed where rated, see
//     the codec); only late events enter the partial index events_billed, which Adjustments and
//     Attribution with Billed read. Attribution without Billed skips late events.
//   - ScanEvents reads a page of events (through the primary key, or events_customer_seq for one
//     customer) joined to their burns by the burns' key (customer, seq, ord). EventPeriods skips
//     from period to period through events_period, O(periods × log events).
//   - ListBurns pages by event sequence number and returns at most limit burns, so a full page
//     may end in the middle of an event's burns.
//   - Invoice numbers are the largest stored plus one, taken inside the writer's transaction:
//     one writer makes them gapless, and an invoice refused with ErrConflict uses no number.
//   - CreateGrant is idempotent by ID: the same content (all but CreatedAt, amounts by value)
//     returns the stored grant, other content is ErrConflict.
//   - Exact sums: amounts and quantities are stored as exact decimal TEXT and summed in Go with
//     money.Decimal; SQL SUM is never used on them (SQLite would convert them to floating point).
//     Attribution reads every event of the period through events_period and sums the matching
//     lines in Go: a page costs O(events in the period), like ReplayPeriod, in exchange for no
//     per-line rows or attribution index on the ingest path.
//   - Timestamps are INTEGER Unix nanoseconds; the zero time is stored as math.MinInt64 and
//     instants outside int64 nanoseconds are rejected.
//   - Text (IDs, keys, JSON) must be valid UTF-8 without NUL bytes, as in the postgres driver.
//   - Migrations are embedded and applied in one transaction at Open; reopening applies only new
//     ones, and a file migrated by a newer build is refused.
//   - A limit ≤ 0 (ListCustomers, EventsByCorrelation, Attribution, ScanEvents, TierTransitions,
//     ListBurns, ListNotices, ListInvoices) means no limit.
//   - ReplayPeriod, ListEvents and ScanEvents stream from one read snapshot; fn may call the store.
//   - Unique violations become store.ErrConflict; missing rows and references to missing rows
//     (a subscription to an unknown plan version) become store.ErrNotFound.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

var _ store.Store = (*Store)(nil)

// The durability modes Open accepts for Options.Synchronous (SQLite's PRAGMA synchronous).
const (
	// SynchronousFull fsyncs the WAL on every commit: nothing acknowledged is ever lost.
	SynchronousFull = "FULL"
	// SynchronousExtra is FULL plus a directory sync; for filesystems that need it.
	SynchronousExtra = "EXTRA"
	// SynchronousNormal fsyncs only at checkpoints: consistent after a power loss, but the
	// last commits may be gone, so acknowledged events are not guaranteed durable. A process
	// crash loses nothing.
	SynchronousNormal = "NORMAL"
)

// Options tunes Open. The zero value is the safe default.
type Options struct {
	// Synchronous is the durability mode, one of the Synchronous constants
	// (case-insensitive); "" means SynchronousFull.
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock held by another process (or
	// another Store on the same file); 0 means 5 seconds.
	BusyTimeout time.Duration
	// MaxReadConns caps the read pool; 0 means max(4, GOMAXPROCS).
	MaxReadConns int
}

// Store is a store.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	w *sql.DB // one connection: every write
	r *sql.DB // read-only pool

	stmts stmtCache // the event INSERT, prepared on w

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the SQLite database at path and brings its schema up to
// date. path must name a file; ":memory:" is refused because the read pool and the writer
// would see different databases.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: path %q must name a file", path)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: open: path %q must not contain '?'", path)
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	if syncMode == "" {
		syncMode = SynchronousFull
	}
	switch syncMode {
	case SynchronousFull, SynchronousExtra, SynchronousNormal:
	default:
		return nil, fmt.Errorf("sqlite: open: unknown synchronous mode %q", opts.Synchronous)
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	readers := opts.MaxReadConns
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}

	// temp_store=MEMORY keeps any statement journal and temporary b-tree off temporary files.
	common := path + "?_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)"
	// The writer gets a large page cache (an ingest batch dirties hundreds of index pages) and
	// checkpoints every ~40 MiB of WAL instead of every 4 MiB: fewer, larger checkpoints write
	// each hot page once. journal_size_limit truncates the WAL file after a checkpoint.
	w, err := sql.Open("sqlite", common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous("+syncMode+")"+
		"&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint(10000)&_pragma=journal_size_limit(67108864)"+
		"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.init(ctx, path, common, readers); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, path, common string, readers int) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return translate("open "+path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, want WAL (filesystem without shared memory?)", path, mode)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	r, err := sql.Open("sqlite", common+"&_pragma=query_only(1)&_pragma=cache_size(-16384)")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	s.r = r
	return nil
}

// migrate applies the embedded migrations that the file lacks, all in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.List(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate("migrate", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return translate("migrate", err)
	}
	applied := map[int64]bool{}
	var newest int64
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return translate("migrate", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return translate("migrate", err)
		}
		applied[v] = true
		newest = max(newest, v)
	}
	if err := rows.Close(); err != nil {
		return translate("migrate", err)
	}
	if n := len(ms); n > 0 && newest > ms[n-1].Version {
		return fmt.Errorf("sqlite: migrate: database schema version %d is newer than this build's %d", newest, ms[n-1].Version)
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return translate("migrate "+m.Name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixNano()); err != nil {
			return translate("migrate "+m.Name, err)
		}
	}
	return translate("migrate", tx.Commit())
}

// Close releases both connection pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		errs := []error{s.stmts.close()}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return translate("ping", s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one))
}

// translate turns driver errors into store errors. Driver error values never escape: their
// text is kept, their type is not.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlite: %s: %s: %w", op, se.Error(), store.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("sqlite: %s: referenced row does not exist: %w", op, store.ErrNotFound)
		}
		return fmt.Errorf("sqlite: %s: %s", op, se.Error())
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// limitArg is SQLite's LIMIT for a caller's limit: ≤ 0 means none.
func limitArg(limit int) int64 {
	if limit <= 0 {
		return -1
	}
	return int64(limit)
}
