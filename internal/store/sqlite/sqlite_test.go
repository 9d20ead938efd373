package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/migrate"
	"github.com/levyhq/levy/internal/store/storetest"
)

func openTemp(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "levy.db"))
	})
}

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("pragma %s: %v", name, err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "levy.db"))
	for _, tc := range []struct {
		db        *sql.DB
		name, val string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "synchronous", "2"}, // FULL
		{s.w, "foreign_keys", "1"},
		{s.w, "busy_timeout", "5000"},
		{s.w, "temp_store", "2"}, // MEMORY
		{s.w, "cache_size", "-65536"},
		{s.w, "wal_autocheckpoint", "10000"},
		{s.r, "foreign_keys", "1"},
		{s.r, "query_only", "1"},
	} {
		if got := pragma(t, tc.db, tc.name); got != tc.val {
			t.Errorf("%s = %s, want %s", tc.name, got, tc.val)
		}
	}
	relaxed, err := Open(context.Background(), filepath.Join(t.TempDir(), "relaxed.db"),
		Options{Synchronous: SynchronousNormal, BusyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer relaxed.Close()
	if got := pragma(t, relaxed.w, "synchronous"); got != "1" {
		t.Errorf("relaxed synchronous = %s, want 1 (NORMAL)", got)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		path string
		opts Options
	}{
		{"", Options{}},
		{":memory:", Options{}},
		{"file:x.db", Options{}},
		{filepath.Join(dir, "a?b.db"), Options{}},
		{filepath.Join(dir, "ok.db"), Options{Synchronous: "OFF"}},
		{filepath.Join(dir, "missing", "dir", "x.db"), Options{}},
	} {
		if s, err := Open(context.Background(), tc.path, tc.opts); err == nil {
			s.Close()
			t.Errorf("Open(%q, %+v) succeeded", tc.path, tc.opts)
		}
	}
}

func migrationRows(t *testing.T, path string) map[int64]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int64]int64{}
	for rows.Next() {
		var v, at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		m[v] = at
	}
	return m
}

func testEvent(key string) *store.EventRecord {
	return &store.EventRecord{
		Key: store.IDKey(key), ID: key, EventType: "llm.completion", CustomerID: "cust", CorrelationID: "req-" + key,
		Timestamp: time.Date(2026, 11, 1, 1, 2, 3, 4, time.UTC), ReceivedAt: time.Date(2026, 11, 1, 1, 2, 3, 5, time.UTC),
		PlanVersionID: 1, PeriodStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Amount: money.MustParse("0.000000000123456789"),
		Lines: []store.RatedLine{{Charge: "in", Type: "usage", Quantity: money.MustParse("1500"),
			Amount: money.MustParse("0.000000000123456789")}},
	}
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "levy.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEvents(ctx, []*store.EventRecord{testEvent("a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := migrationRows(t, path)
	if len(before) == 0 {
		t.Fatal("no migrations recorded")
	}

	s2 := openTemp(t, path)
	if after := migrationRows(t, path); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("reopen changed schema_migrations: %v → %v", before, after)
	}
	e, err := s2.GetEvent(ctx, "a")
	if err != nil {
		t.Fatalf("event lost on reopen: %v", err)
	}
	if len(e.Lines) != 1 || e.Lines[0].Amount.String() != "0.000000000123456789" {
		t.Errorf("reopened event = %+v", e)
	}
	// Sequence numbers continue after the stored ones.
	b := testEvent("b")
	if err := s2.InsertEvents(ctx, []*store.EventRecord{b}); err != nil {
		t.Fatal(err)
	}
	if b.Seq <= e.Seq {
		t.Errorf("seq after reopen %d, want > %d", b.Seq, e.Seq)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "levy.db")
	s := openTemp(t, path)
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(ctx, path, Options{}); err == nil {
		s2.Close()
		t.Fatal("opened a file migrated by a newer build")
	}
}

// TestCommittedSurvivesWithoutClose: once InsertEvents returns, the events are in the file, even
// if the process never closes the store (a crash). A second, independent handle sees them.
func TestCommittedSurvivesWithoutClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "levy.db")
	s1 := openTemp(t, path) // closed only by cleanup, after the checks
	evs := []*store.EventRecord{testEvent("x"), testEvent("y")}
	if err := s1.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}

	s2 := openTemp(t, path)
	found, err := s2.FindEvents(ctx, []string{"id:x", "id:y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found["id:x"].Seq != evs[0].Seq || found["id:y"].Seq != evs[1].Seq {
		t.Fatalf("second handle found %v, want x=%d y=%d", found, evs[0].Seq, evs[1].Seq)
	}
	// The second handle writes too; the first one waits for the lock instead of failing.
	if err := s2.InsertEvents(ctx, []*store.EventRecord{testEvent("z")}); err != nil {
		t.Fatal(err)
	}
	if err := s1.InsertEvents(ctx, []*store.EventRecord{testEvent("w")}); err != nil {
		t.Fatal(err)
	}
	if err := s1.InsertEvents(ctx, []*store.EventRecord{testEvent("z")}); err == nil {
		t.Fatal("key written through the other handle was not a conflict")
	}
}

// TestConcurrentWritersNeverBusy: many goroutines writing at once queue on the one writer.
func TestConcurrentWritersNeverBusy(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "levy.db"))
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := s.InsertEvents(ctx, []*store.EventRecord{testEvent(fmt.Sprintf("g%d-%d", g, i))}); err != nil {
					t.Errorf("insert: %v", err)
					return
				}
				if _, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: fmt.Sprintf("c%d", g), Now: time.Now()}); err != nil {
					t.Errorf("put customer: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkInsertEvents(b *testing.B) {
	storetest.BenchmarkInsertEvents(b, func(b *testing.B) store.Store {
		return openTemp(b, filepath.Join(b.TempDir(), "levy.db"))
	})
}

// TestUpgradeFrom0001: a file created by the first schema, with data, is brought up to date at
// Open; its events read back billed where they are rated, its customers without override or
// threshold, and the new tables work.
func TestUpgradeFrom0001(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "levy.db")
	ms, err := migrate.List(migrations, "migrations")
	if err != nil || len(ms) < 2 || ms[0].Version != 1 {
		t.Fatalf("migrations = %v, %v", ms, err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,
			applied_at INTEGER NOT NULL) STRICT`,
		ms[0].SQL,
		`INSERT INTO schema_migrations VALUES (1, '` + ms[0].Name + `', 1)`,
		`INSERT INTO customers (id, metadata, created_at, updated_at) VALUES ('cust', '{}', 1, 1)`,
		`INSERT INTO events (seq, idem_key, event_type, customer_id, correlation_id, ts, received_at,
			plan_version_id, period_start, period_end, amount, cost)
			VALUES (7, 'id:old', 't', 'cust', '', 5, 5, 1, 0, 10, '1.5', '0')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openTemp(t, path)
	if got := migrationRows(t, path); len(got) != len(ms) {
		t.Errorf("migrations after upgrade = %v, want %d", got, len(ms))
	}
	var old *store.EventRecord
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.ScanEvents(ctx, store.ScanParams{}, func(e *store.EventRecord) error {
		old = e
		return nil
	}))
	if old == nil || old.Seq != 7 || old.BilledPlanVersionID != 0 || !old.BilledPeriodStart.IsZero() ||
		old.Burns != nil || old.Amount.String() != "1.5" {
		t.Fatalf("old event after upgrade = %+v", old)
	}
	c, err := s.GetCustomer(ctx, "cust")
	must(err)
	if c.TierOverride != "" || c.LowBalance != nil {
		t.Errorf("old customer = %+v, want no override and no threshold", c)
	}
	e := testEvent("new")
	e.Burns = []store.WalletBurn{{GrantID: "g", Amount: money.MustParse("1")}}
	must(s.InsertEvents(ctx, []*store.EventRecord{e}))
	if e.Seq != 8 || e.Burns[0].EventSeq != 8 {
		t.Errorf("new event seq %d, burn seq %d; want 8 after the old 7", e.Seq, e.Burns[0].EventSeq)
	}
}
