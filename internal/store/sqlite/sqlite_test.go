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
