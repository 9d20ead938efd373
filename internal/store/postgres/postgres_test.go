package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/internal/migrate"
	"github.com/levyhq/levy/internal/store/storetest"
	"github.com/levyhq/levy/internal/testenv"
)

// withSearchPath returns base with its search_path set to schema.
func withSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", testenv.DatabaseURLVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// freshSchema returns a unique schema name, dropped (with everything in it) when the test ends,
// and the server URL. It skips or fails the test when the server is unavailable.
func freshSchema(t testing.TB) (schema, base string) {
	t.Helper()
	base = testenv.DatabaseURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		testenv.Skip(t, "PostgreSQL", err)
		return
	}
	conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "levy_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema, base
}

// openTest opens a store in a fresh schema of the test server.
func openTest(t testing.TB) *Store {
	t.Helper()
	schema, base := freshSchema(t)
	s, err := Open(context.Background(), withSearchPath(t, base, schema))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T) store.Store { return openTest(t) })
}

func tablesIn(t *testing.T, base, schema string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOpenCreatesSchemaAndMigratesOnce: Open creates the search_path schema, puts the tables in
// it, and several nodes opening at once apply the migrations exactly once.
func TestOpenCreatesSchemaAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	schema, base := freshSchema(t) // not created yet: Open must create it
	u := withSearchPath(t, base, schema)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctx, u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	// 0001: api_keys, catalog_versions, plan_versions, customers, subscriptions, events and
	// schema_migrations; 0002: cursors, tier_transitions, wallet_grants, wallet_burns, notices,
	// invoices.
	if n := tablesIn(t, base, schema); n != 13 {
		t.Errorf("%d tables in schema %s, want the store's 13", n, schema)
	}
	ms, err := migrate.List(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	var at int64
	if err := stores[0].pool.QueryRow(ctx, `SELECT count(*), max(applied_at) FROM schema_migrations`).Scan(&applied, &at); err != nil {
		t.Fatal(err)
	}
	if applied != len(ms) || applied < 2 {
		t.Errorf("%d migrations recorded, want each of the %d once", applied, len(ms))
	}

	// Reopening applies nothing and keeps the data.
	e := &store.EventRecord{Key: store.IDKey("k"), ID: "k", EventType: "t", CustomerID: "c", Timestamp: time.Unix(1, 2),
		Lines: []store.RatedLine{{Charge: "c", Amount: money.MustParse("12345678901234567890.5")}}}
	if err := stores[0].InsertEvents(ctx, []*store.EventRecord{e}); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		s.Close()
	}
	s := openTest(t) // another schema: must not see this one's data
	if _, err := s.GetEvent(ctx, "k"); err == nil {
		t.Error("a store in another schema sees this schema's event")
	}
	again, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var at2 int64
	if err := again.pool.QueryRow(ctx, `SELECT count(*), max(applied_at) FROM schema_migrations`).Scan(&applied, &at2); err != nil {
		t.Fatal(err)
	}
	if applied != len(ms) || at2 != at {
		t.Errorf("reopen re-ran migrations: %d rows, applied_at %d → %d", applied, at, at2)
	}
	got, err := again.GetEvent(ctx, "k")
	if err != nil || got.Lines[0].Amount.String() != "12345678901234567890.5" {
		t.Errorf("event after reopen = %+v, %v", got, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(ctx, withSearchPath(t, testenv.DatabaseURL(t), schema)); err == nil {
		s2.Close()
		t.Fatal("opened a schema migrated by a newer build")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Open(ctx, "postgres://user:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=1"); err == nil {
		t.Error("opened an unreachable server")
	}
	_, err := Open(ctx, "postgres://user:secret@[::1/x")
	if err == nil {
		t.Fatal("opened an invalid URL")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the password", err)
	}
}

func TestFirstSchema(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"levy":              "levy",
		" Levy , public":    "levy",
		`"$user", public`:   "$user",
		"$user, public":     "",
		`"My ""Schema""",x`: `My "Schema"`,
		`"unterminated`:     "unterminated",
	} {
		if got := firstSchema(in); got != want {
			t.Errorf("firstSchema(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkInsertEvents(b *testing.B) {
	storetest.BenchmarkInsertEvents(b, func(b *testing.B) store.Store { return openTest(b) })
}

// TestUpgradeFrom0001: a schema created by the first migration, with data, is brought up to date
// at Open; its events read back billed where they are rated, its customers without override or
// threshold, and the new tables work.
func TestUpgradeFrom0001(t *testing.T) {
	ctx := context.Background()
	schema, base := freshSchema(t)
	ms, err := migrate.List(migrations, "migrations")
	if err != nil || len(ms) < 2 || ms[0].Version != 1 {
		t.Fatalf("migrations = %v, %v", ms, err)
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE SCHEMA ` + schema,
		`SET search_path = ` + schema,
		`CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`,
		ms[0].SQL,
		`INSERT INTO schema_migrations VALUES (1, '` + ms[0].Name + `', 1)`,
		`INSERT INTO customers (id, metadata, created_at, updated_at) VALUES ('cust', '{}', 1, 1)`,
		`INSERT INTO events (idem_key, event_type, customer_id, correlation_id, ts, received_at,
			plan_version_id, period_start, period_end, amount, cost)
			VALUES ('id:old', 't', 'cust', '', 5, 5, 1, 0, 10, 1.5, 0)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := Open(ctx, withSearchPath(t, base, schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var applied int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil || applied != len(ms) {
		t.Errorf("migrations after upgrade = %d, %v; want %d", applied, err, len(ms))
	}
	var old *store.EventRecord
	if err := s.ScanEvents(ctx, store.ScanParams{}, func(e *store.EventRecord) error {
		old = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if old == nil || old.BilledPlanVersionID != 0 || !old.BilledPeriodStart.IsZero() || old.Burns != nil ||
		old.Amount.String() != "1.5" {
		t.Fatalf("old event after upgrade = %+v", old)
	}
	c, err := s.GetCustomer(ctx, "cust")
	if err != nil {
		t.Fatal(err)
	}
	if c.TierOverride != "" || c.LowBalance != nil {
		t.Errorf("old customer = %+v, want no override and no threshold", c)
	}
	e := &store.EventRecord{Key: "id:new", ID: "new", EventType: "t", CustomerID: "cust", Timestamp: time.Unix(1, 2),
		Burns: []store.WalletBurn{{GrantID: "g", Amount: money.MustParse("1")}}}
	if err := s.InsertEvents(ctx, []*store.EventRecord{e}); err != nil {
		t.Fatal(err)
	}
	if e.Seq <= old.Seq || e.Burns[0].EventSeq != e.Seq {
		t.Errorf("new event seq %d, burn seq %d; want one seq after the old %d", e.Seq, e.Burns[0].EventSeq, old.Seq)
	}
}
