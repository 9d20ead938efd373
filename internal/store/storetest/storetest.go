// Package storetest is the one conformance suite every store.Store driver passes. A driver's test
// calls Exercise with a function that opens a fresh, empty store; a bug fixed in a driver first
// gets a case here, so both drivers keep behaving alike.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// Exercise runs the suite. open must return a new, empty store each time it is called and close
// it when the test ends (t.Cleanup); closing it twice must be harmless. Subtests run in
// parallel, each on its own store.
func Exercise(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"APIKeys", testAPIKeys},
		{"Catalog", testCatalog},
		{"CustomerUpsert", testCustomerUpsert},
		{"CustomerSubscriptions", testCustomerSubscriptions},
		{"ListCustomers", testListCustomers},
		{"InsertAssignsSeq", testInsertAssignsSeq},
		{"InsertConflictWritesNothing", testInsertConflictWritesNothing},
		{"InsertRejectsBadInput", testInsertRejectsBadInput},
		{"FindEventsManyKeys", testFindEventsManyKeys},
		{"GetEventRoundTrip", testGetEventRoundTrip},
		{"TimestampRange", testTimestampRange},
		{"EventsByCorrelation", testEventsByCorrelation},
		{"ReplayPeriod", testReplayPeriod},
		{"ReplayPeriodLines", testReplayPeriodLines},
		{"ListEvents", testListEvents},
		{"Attribution", testAttribution},
		{"AttributionPagination", testAttributionPagination},
		{"AttributionManyEvents", testAttributionManyEvents},
		{"ConcurrentInsert", testConcurrentInsert},
		{"InvalidTextLookups", testInvalidTextLookups},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},
	}
	tests = append(tests, ledgerTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var (
	t0   = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tEnd = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// A non-UTC zone: times must come back as the same instant, in UTC.
	tokyo = time.FixedZone("JST", 9*3600)
)

func dec(s string) money.Decimal { return money.MustParse(s) }

func mustIs(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

func sameDec(t *testing.T, what string, got, want money.Decimal) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func testPing(t *testing.T, s store.Store) {
	must(t, s.Ping(context.Background()), "ping")
}

func testClose(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.Ping(ctx), "ping")
	must(t, s.Close(), "close")
	if err := s.Ping(ctx); err == nil {
		t.Error("ping after close succeeded")
	}
	if _, err := s.GetCustomer(ctx, "c"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCustomer after close: %v, want a non-NotFound error", err)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, tokyo)
	k1 := store.APIKey{ID: "key_b", Name: "ingest", Hash: []byte{0, 1, 2, 0xff}, Prefix: "lv_b",
		Scopes: []store.Scope{store.ScopeIngest, store.ScopeAuthorize}, CreatedAt: created}
	k2 := store.APIKey{ID: "key_a", Name: "admin", Hash: []byte("hash-a"), Prefix: "lv_a",
		Scopes: []store.Scope{store.ScopeAdmin}, CreatedAt: created.Add(time.Second)}
	must(t, s.CreateAPIKey(ctx, k1), "create k1")
	must(t, s.CreateAPIKey(ctx, k2), "create k2")

	dupID := k1
	dupID.Hash = []byte("other")
	mustIs(t, s.CreateAPIKey(ctx, dupID), store.ErrConflict, "duplicate id")
	dupHash := k2
	dupHash.ID = "key_c"
	mustIs(t, s.CreateAPIKey(ctx, dupHash), store.ErrConflict, "duplicate hash")

	got, err := s.APIKeyByHash(ctx, k1.Hash)
	must(t, err, "by hash")
	if got.ID != k1.ID || got.Name != k1.Name || got.Prefix != k1.Prefix || !bytes.Equal(got.Hash, k1.Hash) ||
		!slices.Equal(got.Scopes, k1.Scopes) || got.RevokedAt != nil {
		t.Errorf("by hash = %+v, want %+v", got, k1)
	}
	sameTime(t, "CreatedAt", got.CreatedAt, created)
	_, err = s.APIKeyByHash(ctx, []byte("nope"))
	mustIs(t, err, store.ErrNotFound, "unknown hash")

	revokedAt := time.Date(2026, 2, 1, 0, 0, 0, 1, time.UTC)
	must(t, s.RevokeAPIKey(ctx, k1.ID, revokedAt), "revoke")
	_, err = s.APIKeyByHash(ctx, k1.Hash)
	mustIs(t, err, store.ErrNotFound, "revoked key by hash")
	must(t, s.RevokeAPIKey(ctx, k1.ID, revokedAt.Add(time.Hour)), "revoke again")
	mustIs(t, s.RevokeAPIKey(ctx, "missing", revokedAt), store.ErrNotFound, "revoke unknown")

	list, err := s.ListAPIKeys(ctx)
	must(t, err, "list")
	if len(list) != 2 || list[0].ID != "key_a" || list[1].ID != "key_b" {
		t.Fatalf("list = %+v, want key_a, key_b", list)
	}
	if list[0].RevokedAt != nil {
		t.Errorf("key_a revoked: %v", list[0].RevokedAt)
	}
	if list[1].RevokedAt == nil {
		t.Fatal("key_b not revoked in list")
	}
	sameTime(t, "RevokedAt (first revocation kept)", *list[1].RevokedAt, revokedAt)
}

func testCatalog(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.LatestCatalog(ctx)
	mustIs(t, err, store.ErrNotFound, "latest catalog of empty store")
	_, err = s.LatestPlanVersion(ctx, "pro")
	mustIs(t, err, store.ErrNotFound, "latest plan version of empty store")

	at := time.Date(2026, 3, 1, 12, 0, 0, 999, tokyo)
	doc1 := []byte(`{"currency":"USD", "plans":[{"key":"pro"}], "note":"café \u0000"}`)
	cv1, pvs, err := s.PutCatalog(ctx, store.PutCatalogParams{Document: doc1, CreatedAt: at,
		Plans: []store.PlanHash{{Key: "pro", ContentHash: "h1"}, {Key: "basic", ContentHash: "b1"}}})
	must(t, err, "put catalog 1")
	if cv1.Version != 1 || !bytes.Equal(cv1.Document, doc1) {
		t.Errorf("catalog 1 = %d %q", cv1.Version, cv1.Document)
	}
	sameTime(t, "catalog CreatedAt", cv1.CreatedAt, at)
	if len(pvs) != 2 || pvs[0].PlanKey != "pro" || pvs[0].Version != 1 || pvs[1].PlanKey != "basic" ||
		pvs[1].Version != 1 || pvs[0].CatalogVersion != 1 || pvs[0].ContentHash != "h1" || pvs[0].ID == pvs[1].ID {
		t.Fatalf("plan versions of catalog 1 = %+v", pvs)
	}
	proV1 := pvs[0]

	// pro unchanged, basic changed, team new.
	cv2, pvs, err := s.PutCatalog(ctx, store.PutCatalogParams{Document: []byte(`{"v":2}`), CreatedAt: at.Add(time.Hour),
		Plans: []store.PlanHash{{Key: "pro", ContentHash: "h1"}, {Key: "basic", ContentHash: "b2"}, {Key: "team", ContentHash: "t1"}}})
	must(t, err, "put catalog 2")
	if cv2.Version != 2 {
		t.Errorf("catalog 2 version = %d", cv2.Version)
	}
	if len(pvs) != 2 || pvs[0].PlanKey != "basic" || pvs[0].Version != 2 || pvs[0].CatalogVersion != 2 ||
		pvs[1].PlanKey != "team" || pvs[1].Version != 1 {
		t.Fatalf("plan versions of catalog 2 = %+v", pvs)
	}
	// Nothing changed: a catalog version, no plan versions.
	cv3, pvs, err := s.PutCatalog(ctx, store.PutCatalogParams{Document: []byte(`{"v":3}`), CreatedAt: at.Add(2 * time.Hour),
		Plans: []store.PlanHash{{Key: "pro", ContentHash: "h1"}, {Key: "basic", ContentHash: "b2"}}})
	must(t, err, "put catalog 3")
	if cv3.Version != 3 || len(pvs) != 0 {
		t.Fatalf("catalog 3 = %d with %+v, want 3 with no plan versions", cv3.Version, pvs)
	}
	// A plan changed back to an earlier content still gets a new version.
	_, pvs, err = s.PutCatalog(ctx, store.PutCatalogParams{Document: []byte(`{"v":4}`), CreatedAt: at.Add(3 * time.Hour),
		Plans: []store.PlanHash{{Key: "basic", ContentHash: "b1"}}})
	must(t, err, "put catalog 4")
	if len(pvs) != 1 || pvs[0].PlanKey != "basic" || pvs[0].Version != 3 || pvs[0].CatalogVersion != 4 {
		t.Fatalf("plan versions of catalog 4 = %+v", pvs)
	}

	latest, err := s.LatestCatalog(ctx)
	must(t, err, "latest catalog")
	if latest.Version != 4 || string(latest.Document) != `{"v":4}` {
		t.Errorf("latest catalog = %d %q", latest.Version, latest.Document)
	}
	got1, err := s.GetCatalog(ctx, 1)
	must(t, err, "get catalog 1")
	if !bytes.Equal(got1.Document, doc1) {
		t.Errorf("catalog 1 document = %q, want %q (byte for byte)", got1.Document, doc1)
	}
	sameTime(t, "catalog 1 CreatedAt", got1.CreatedAt, at)
	_, err = s.GetCatalog(ctx, 99)
	mustIs(t, err, store.ErrNotFound, "get catalog 99")

	gpv, err := s.GetPlanVersion(ctx, proV1.ID)
	must(t, err, "get plan version")
	if gpv.ID != proV1.ID || gpv.PlanKey != "pro" || gpv.Version != 1 || gpv.CatalogVersion != 1 || gpv.ContentHash != "h1" {
		t.Errorf("get plan version = %+v, want %+v", gpv, proV1)
	}
	sameTime(t, "plan version CreatedAt", gpv.CreatedAt, at)
	_, err = s.GetPlanVersion(ctx, proV1.ID+1000)
	mustIs(t, err, store.ErrNotFound, "get unknown plan version")

	lpv, err := s.LatestPlanVersion(ctx, "basic")
	must(t, err, "latest basic")
	if lpv.Version != 3 || lpv.ContentHash != "b1" || lpv.CatalogVersion != 4 {
		t.Errorf("latest basic = %+v", lpv)
	}
	_, err = s.LatestPlanVersion(ctx, "nope")
	mustIs(t, err, store.ErrNotFound, "latest unknown plan")

	all, err := s.ListPlanVersions(ctx)
	must(t, err, "list plan versions")
	var names []string
	for _, pv := range all {
		names = append(names, fmt.Sprintf("%s@%d", pv.PlanKey, pv.Version))
	}
	want := []string{"basic@1", "basic@2", "basic@3", "pro@1", "team@1"}
	if !slices.Equal(names, want) {
		t.Errorf("list plan versions = %v, want %v", names, want)
	}
}

// putPlan stores a catalog with one plan and returns its new plan version ID.
func putPlan(t *testing.T, s store.Store, key, hash string) int64 {
	t.Helper()
	_, pvs, err := s.PutCatalog(context.Background(), store.PutCatalogParams{
		Document: []byte(`{}`), CreatedAt: t0, Plans: []store.PlanHash{{Key: key, ContentHash: hash}}})
	must(t, err, "put catalog")
	if len(pvs) != 1 {
		t.Fatalf("put catalog created %d plan versions, want 1", len(pvs))
	}
	return pvs[0].ID
}

func testCustomerUpsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetCustomer(ctx, "cust")
	mustIs(t, err, store.ErrNotFound, "get unknown customer")

	created := time.Date(2026, 4, 1, 0, 0, 0, 42, tokyo)
	c, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: created})
	must(t, err, "create")
	if c.ID != "cust" || len(c.Metadata) != 0 || c.Limits != nil || len(c.Subscriptions) != 0 {
		t.Errorf("created = %+v, want empty metadata, no limits, no subscriptions", c)
	}
	sameTime(t, "CreatedAt", c.CreatedAt, created)
	sameTime(t, "UpdatedAt", c.UpdatedAt, created)

	limits := []byte(`{"requestsPerMinute":60}`)
	later := created.Add(time.Minute)
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: later,
		Metadata: map[string]string{"tier": "build", "name": "Ünïcode"}, Limits: limits})
	must(t, err, "update")
	if c.Metadata["tier"] != "build" || c.Metadata["name"] != "Ünïcode" || len(c.Metadata) != 2 ||
		!bytes.Equal(c.Limits, limits) {
		t.Errorf("updated = %+v", c)
	}
	sameTime(t, "CreatedAt after update", c.CreatedAt, created)
	sameTime(t, "UpdatedAt after update", c.UpdatedAt, later)

	// Nil metadata and limits keep the stored ones.
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: later.Add(time.Minute)})
	must(t, err, "update with nils")
	if c.Metadata["tier"] != "build" || len(c.Metadata) != 2 || !bytes.Equal(c.Limits, limits) {
		t.Errorf("after nil update = %+v, want metadata and limits kept", c)
	}
	got, err := s.GetCustomer(ctx, "cust")
	must(t, err, "get")
	if got.Metadata["tier"] != "build" || !bytes.Equal(got.Limits, limits) {
		t.Errorf("get = %+v", got)
	}
	sameTime(t, "UpdatedAt", got.UpdatedAt, later.Add(time.Minute))

	// Empty (non-nil) metadata and limits clear them.
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: later.Add(2 * time.Minute),
		Metadata: map[string]string{}, Limits: []byte{}})
	must(t, err, "clear")
	if len(c.Metadata) != 0 || c.Limits != nil {
		t.Errorf("after clear = %+v, want no metadata and nil limits", c)
	}
}

func testCustomerSubscriptions(t *testing.T, s store.Store) {
	ctx := context.Background()
	pv1 := putPlan(t, s, "pro", "h1")
	pv2 := putPlan(t, s, "pro", "h2")

	// A subscription to a missing plan version fails and writes nothing, not even the customer.
	_, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, Subscribe: true,
		PlanVersionID: pv2 + 1000, Start: t0})
	mustIs(t, err, store.ErrNotFound, "subscribe to missing plan version")
	_, err = s.GetCustomer(ctx, "cust")
	mustIs(t, err, store.ErrNotFound, "customer after failed subscribe")

	start1 := time.Date(2026, 5, 1, 0, 0, 0, 0, tokyo)
	c, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, Subscribe: true,
		PlanVersionID: pv1, Start: start1, Metadata: map[string]string{"k": "v"}})
	must(t, err, "create with subscription")
	if len(c.Subscriptions) != 1 || c.Subscriptions[0].PlanVersionID != pv1 || c.Metadata["k"] != "v" {
		t.Fatalf("created = %+v", c)
	}
	sameTime(t, "Start", c.Subscriptions[0].Start, start1)
	sameTime(t, "subscription CreatedAt", c.Subscriptions[0].CreatedAt, t0)

	// Later start, then an earlier start created afterwards, then a tie on start.
	start2 := start1.AddDate(0, 2, 0)
	start0 := start1.AddDate(0, -1, 0)
	for i, st := range []time.Time{start2, start0, start2} {
		_, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0.Add(time.Duration(i+1) * time.Hour),
			Subscribe: true, PlanVersionID: pv2, Start: st})
		must(t, err, "subscribe")
	}
	got, err := s.GetCustomer(ctx, "cust")
	must(t, err, "get")
	if got.Metadata["k"] != "v" {
		t.Errorf("metadata lost: %+v", got.Metadata)
	}
	if len(got.Subscriptions) != 4 {
		t.Fatalf("subscriptions = %+v, want 4", got.Subscriptions)
	}
	wantStarts := []time.Time{start0, start1, start2, start2}
	for i, sub := range got.Subscriptions {
		sameTime(t, fmt.Sprintf("subscription %d start", i), sub.Start, wantStarts[i])
	}
	if got.Subscriptions[2].ID >= got.Subscriptions[3].ID {
		t.Errorf("subscriptions with the same start not ordered by ID: %+v", got.Subscriptions)
	}
	if got.Subscriptions[0].PlanVersionID != pv2 || got.Subscriptions[1].PlanVersionID != pv1 {
		t.Errorf("subscriptions = %+v", got.Subscriptions)
	}
}

func testListCustomers(t *testing.T, s store.Store) {
	ctx := context.Background()
	pv := putPlan(t, s, "pro", "h")
	ids := []string{"c05", "c01", "c04", "c02", "c03", "C00", "c10"}
	for _, id := range ids {
		_, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: id, Now: t0, Subscribe: id == "c02",
			PlanVersionID: pv, Start: t0})
		must(t, err, "put "+id)
	}
	want := slices.Clone(ids)
	slices.Sort(want) // byte order: "C00" first
	var got []string
	after := ""
	for page := 0; ; page++ {
		cs, err := s.ListCustomers(ctx, after, 3)
		must(t, err, "list")
		if len(cs) > 3 {
			t.Fatalf("page of %d, limit 3", len(cs))
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			got = append(got, c.ID)
			if c.ID == "c02" && len(c.Subscriptions) != 1 {
				t.Errorf("c02 listed without its subscription: %+v", c)
			}
		}
		after = cs[len(cs)-1].ID
		if page > len(ids) {
			t.Fatal("pagination does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged = %v, want %v", got, want)
	}
	all, err := s.ListCustomers(ctx, "", 0)
	must(t, err, "list all")
	if len(all) != len(ids) {
		t.Errorf("limit 0 listed %d, want all %d", len(all), len(ids))
	}
	rest, err := s.ListCustomers(ctx, "c04", 100)
	must(t, err, "list after c04")
	if len(rest) != 2 || rest[0].ID != "c05" || rest[1].ID != "c10" {
		t.Errorf("after c04 = %v", rest)
	}
}

// event builds an event record; correlation may be empty.
func event(key, id, customer, correlation string, ts time.Time, pv int64, lines ...store.RatedLine) *store.EventRecord {
	e := &store.EventRecord{
		Key: key, ContentHash: []byte("hash:" + key), ID: id, EventType: "llm.completion",
		CustomerID: customer, CorrelationID: correlation, Timestamp: ts, ReceivedAt: ts.Add(time.Millisecond),
		Properties:    []byte(`{"model":"claude-sonnet-4-6"}`),
		Measurements:  []byte(`[{"metricKey":"input_tokens","value":1500}]`),
		PlanVersionID: pv, PeriodStart: t0, PeriodEnd: tEnd, Lines: lines,
	}
	for _, l := range lines {
		e.Amount = e.Amount.Add(l.Amount)
		e.Cost = e.Cost.Add(l.Cost)
	}
	return e
}

func line(charge, amount string) store.RatedLine {
	return store.RatedLine{Charge: charge, Type: "usage", Quantity: dec("1"), Amount: dec(amount), Cost: dec("0")}
}

func keysOf(evs []*store.EventRecord) []string {
	ks := make([]string, len(evs))
	for i, e := range evs {
		ks[i] = e.Key
	}
	return ks
}

func replayKeys(t *testing.T, s store.Store, p store.PeriodKey) []string {
	t.Helper()
	var ks []string
	var last int64
	err := s.ReplayPeriod(context.Background(), p, func(e *store.EventRecord) error {
		if e.Seq <= last {
			t.Errorf("replay out of sequence order: %d after %d", e.Seq, last)
		}
		last = e.Seq
		ks = append(ks, e.Key)
		return nil
	})
	must(t, err, "replay")
	return ks
}

func testInsertAssignsSeq(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.InsertEvents(ctx, nil), "insert nothing")
	b1 := []*store.EventRecord{
		event("k1", "e1", "cust", "", t0, 1, line("c", "1")),
		event("k2", "e2", "cust", "", t0, 1),
		event("k3", "e3", "cust", "", t0, 1, line("c", "1"), line("d", "2")),
	}
	must(t, s.InsertEvents(ctx, b1), "insert b1")
	for i := 1; i < len(b1); i++ {
		if b1[i].Seq <= b1[i-1].Seq || b1[0].Seq <= 0 {
			t.Fatalf("seqs not increasing in slice order: %d, %d, %d", b1[0].Seq, b1[1].Seq, b1[2].Seq)
		}
	}
	b2 := []*store.EventRecord{event("k4", "e4", "cust", "", t0, 1), event("k5", "e5", "cust", "", t0, 1)}
	must(t, s.InsertEvents(ctx, b2), "insert b2")
	if b2[0].Seq <= b1[2].Seq || b2[1].Seq <= b2[0].Seq {
		t.Fatalf("second batch seqs %d, %d not after %d", b2[0].Seq, b2[1].Seq, b1[2].Seq)
	}
	found, err := s.FindEvents(ctx, []string{"k1", "k2", "k3", "k4", "k5"})
	must(t, err, "find")
	for _, e := range append(b1, b2...) {
		sk, ok := found[e.Key]
		if !ok || sk.Seq != e.Seq || !bytes.Equal(sk.ContentHash, e.ContentHash) {
			t.Errorf("find %s = %+v (%v), want seq %d hash %q", e.Key, sk, ok, e.Seq, e.ContentHash)
		}
	}
	got := replayKeys(t, s, store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0})
	if !slices.Equal(got, []string{"k1", "k2", "k3", "k4", "k5"}) {
		t.Errorf("replay = %v", got)
	}
}

func testInsertConflictWritesNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	pk := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	must(t, s.InsertEvents(ctx, []*store.EventRecord{event("a", "a", "cust", "r-a", t0, 1, line("c", "1"))}), "insert a")

	// The stored key is last: everything before it must be rolled back too.
	b := event("b", "b", "cust", "r-b", t0, 1, line("c", "2"))
	c := event("c", "c", "cust", "r-c", t0, 1, line("c", "3"))
	dupA := event("a", "a2", "cust", "r-a2", t0, 1, line("c", "4"))
	err := s.InsertEvents(ctx, []*store.EventRecord{b, c, dupA})
	mustIs(t, err, store.ErrConflict, "batch with a stored key")
	if b.Seq != 0 || c.Seq != 0 || dupA.Seq != 0 {
		t.Errorf("failed batch wrote seqs back: %d %d %d", b.Seq, c.Seq, dupA.Seq)
	}
	// A key repeated inside one batch is a conflict too.
	d1 := event("d", "d1", "cust", "", t0, 1, line("c", "5"))
	d2 := event("d", "d2", "cust", "", t0, 1, line("c", "6"))
	mustIs(t, s.InsertEvents(ctx, []*store.EventRecord{d1, d2}), store.ErrConflict, "batch repeating a key")

	found, err := s.FindEvents(ctx, []string{"a", "b", "c", "d"})
	must(t, err, "find")
	if len(found) != 1 || found["a"].ContentHash == nil || !bytes.Equal(found["a"].ContentHash, []byte("hash:a")) {
		t.Errorf("after conflicts found = %v, want only the original a", found)
	}
	if got := replayKeys(t, s, pk); !slices.Equal(got, []string{"a"}) {
		t.Errorf("replay after conflicts = %v, want [a]", got)
	}
	for _, id := range []string{"b", "c", "a2", "d1", "d2"} {
		_, err := s.GetEvent(ctx, id)
		mustIs(t, err, store.ErrNotFound, "get event "+id+" of a failed batch")
	}
	rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "c", Type: "usage"})
	must(t, err, "attribution")
	if len(rows) != 1 || rows[0].Key != "r-a" || !rows[0].Amount.Equal(dec("1")) {
		t.Errorf("attribution after conflicts = %+v, want only r-a = 1 (no lines of failed batches)", rows)
	}

	// The store is usable afterwards and the rejected events can be stored.
	must(t, s.InsertEvents(ctx, []*store.EventRecord{b, c}), "insert b, c")
	if got := replayKeys(t, s, pk); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("replay = %v, want [a b c]", got)
	}
}

func testInsertRejectsBadInput(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := []struct {
		name string
		e    *store.EventRecord
	}{
		{"empty key", event("", "x", "cust", "", t0, 1)},
		{"NUL in customer", event("k1", "x", "cu\x00st", "", t0, 1)},
		{"invalid UTF-8 in properties", func() *store.EventRecord {
			e := event("k2", "x", "cust", "", t0, 1)
			e.Properties = []byte("{\"m\":\"\xff\"}")
			return e
		}()},
		{"timestamp out of range", event("k3", "x", "cust", "", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 1)},
		{"nil record", nil},
	}
	for _, tc := range bad {
		ok := event("fine-"+tc.name, "", "cust", "", t0, 1)
		err := s.InsertEvents(ctx, []*store.EventRecord{ok, tc.e})
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a plain error", tc.name, err)
		}
		if found, _ := s.FindEvents(ctx, []string{ok.Key}); len(found) != 0 {
			t.Errorf("%s: the valid event of the rejected batch was stored", tc.name)
		}
	}
}

func testFindEventsManyKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 2500
	var all []*store.EventRecord
	for i := 0; i < n; i += 500 {
		batch := make([]*store.EventRecord, 500)
		for j := range batch {
			k := fmt.Sprintf("key-%05d", i+j)
			batch[j] = event(k, "", "cust", "", t0, 1)
		}
		must(t, s.InsertEvents(ctx, batch), "insert")
		all = append(all, batch...)
	}
	keys := keysOf(all)
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("missing-%d", i))
	}
	keys = append(keys, "", "key-00001") // an empty key and a repeat
	found, err := s.FindEvents(ctx, keys)
	must(t, err, "find")
	if len(found) != n {
		t.Fatalf("found %d keys, want %d", len(found), n)
	}
	for _, e := range all {
		if sk := found[e.Key]; sk.Seq != e.Seq || !bytes.Equal(sk.ContentHash, e.ContentHash) {
			t.Fatalf("find %s = %+v, want seq %d", e.Key, sk, e.Seq)
		}
	}
	none, err := s.FindEvents(ctx, nil)
	must(t, err, "find nothing")
	if len(none) != 0 {
		t.Errorf("find nothing = %v", none)
	}
}

func sameEvent(t *testing.T, got store.EventRecord, want *store.EventRecord, withLines bool) {
	t.Helper()
	if got.Seq != want.Seq || got.Key != want.Key || got.ID != want.ID || got.EventType != want.EventType ||
		got.CustomerID != want.CustomerID || got.CorrelationID != want.CorrelationID ||
		got.PlanVersionID != want.PlanVersionID {
		t.Errorf("event = %+v\nwant    %+v", got, *want)
	}
	if !bytes.Equal(got.ContentHash, want.ContentHash) || !bytes.Equal(got.Properties, want.Properties) ||
		!bytes.Equal(got.Measurements, want.Measurements) {
		t.Errorf("event %s bytes: hash %q props %q meas %q, want %q %q %q", want.Key, got.ContentHash,
			got.Properties, got.Measurements, want.ContentHash, want.Properties, want.Measurements)
	}
	if !slices.Equal(got.Unmetered, want.Unmetered) {
		t.Errorf("event %s unmetered = %q, want %q", want.Key, got.Unmetered, want.Unmetered)
	}
	sameTime(t, "Timestamp", got.Timestamp, want.Timestamp)
	sameTime(t, "ReceivedAt", got.ReceivedAt, want.ReceivedAt)
	sameTime(t, "PeriodStart", got.PeriodStart, want.PeriodStart)
	sameTime(t, "PeriodEnd", got.PeriodEnd, want.PeriodEnd)
	sameDec(t, "Amount", got.Amount, want.Amount)
	sameDec(t, "Cost", got.Cost, want.Cost)
	if !withLines {
		if got.Lines != nil {
			t.Errorf("event %s has lines, want none", want.Key)
		}
		return
	}
	if len(got.Lines) != len(want.Lines) {
		t.Fatalf("event %s has %d lines, want %d", want.Key, len(got.Lines), len(want.Lines))
	}
	for i, l := range got.Lines {
		w := want.Lines[i]
		if l.Charge != w.Charge || l.Group != w.Group || l.Type != w.Type {
			t.Errorf("line %d = %+v, want %+v", i, l, w)
		}
		sameDec(t, fmt.Sprintf("line %d quantity", i), l.Quantity, w.Quantity)
		sameDec(t, fmt.Sprintf("line %d amount", i), l.Amount, w.Amount)
		sameDec(t, fmt.Sprintf("line %d cost", i), l.Cost, w.Cost)
	}
}

func testGetEventRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ts := time.Date(2026, 11, 28, 19, 0, 0, 123456789, tokyo)
	e := event(store.IDKey("evt_01"), "evt_01", "cust_abc", "req_abc123", ts, 7,
		store.RatedLine{Charge: "sonnet_in", Group: "claude-sonnet-4-6", Type: "usage",
			Quantity: dec("1500"), Amount: dec("0.000000000123456789"), Cost: dec("0.0045")},
		store.RatedLine{Charge: "huge", Type: "usage",
			Quantity: dec("0.5"), Amount: dec("12345678901234567890.5"), Cost: dec("-0.000000000000000001")},
		store.RatedLine{Charge: "volume", Group: "g", Type: "adjustment",
			Quantity: dec("-3"), Amount: dec("-1.25"), Cost: dec("0")},
	)
	e.Properties = []byte(`{"model": "claude-sonnet-4-6", "note":"café \u0000 \"q\""}`)
	e.Unmetered = []string{"cache_read_tokens", "reasoning_tokens"}
	e.ContentHash = []byte{0, 0xff, 0x10, 0}
	// An event without an ID and without lines, with zero period times.
	bare := event("type:corr", "", "cust_abc", "corr", ts.Add(time.Second), 0)
	bare.PeriodStart, bare.PeriodEnd = time.Time{}, time.Time{}
	bare.Properties, bare.Measurements = nil, nil
	must(t, s.InsertEvents(ctx, []*store.EventRecord{e, bare}), "insert")

	got, err := s.GetEvent(ctx, "evt_01")
	must(t, err, "get")
	sameEvent(t, got, e, true)
	if got.Amount.String() != dec("12345678901234567889.250000000123456789").String() {
		t.Errorf("event amount = %s", got.Amount)
	}
	if got.Lines[0].Amount.String() != "0.000000000123456789" || got.Lines[1].Amount.String() != "12345678901234567890.5" {
		t.Errorf("line amounts = %s, %s: not exact", got.Lines[0].Amount, got.Lines[1].Amount)
	}

	_, err = s.GetEvent(ctx, "")
	mustIs(t, err, store.ErrNotFound, "get event with empty id")
	_, err = s.GetEvent(ctx, "evt_missing")
	mustIs(t, err, store.ErrNotFound, "get unknown event")
	// GetEvent finds an event by its key, store.IDKey(id): an event with the ID stored under
	// another key is not found, nor is one stored under the ID's key with another ID.
	must(t, s.InsertEvents(ctx, []*store.EventRecord{
		event("other-key", "evt_02", "cust_abc", "", ts, 7),
		event(store.IDKey("evt_03"), "evt_04", "cust_abc", "", ts, 7),
	}), "insert events with other keys")
	for _, id := range []string{"evt_02", "evt_03", "evt_04"} {
		_, err = s.GetEvent(ctx, id)
		mustIs(t, err, store.ErrNotFound, "get event "+id+" not stored under IDKey(id)")
	}

	evs, err := s.EventsByCorrelation(ctx, "corr", 0)
	must(t, err, "by correlation")
	if len(evs) != 1 {
		t.Fatalf("by correlation = %d events", len(evs))
	}
	sameEvent(t, evs[0], bare, true)
	if evs[0].Lines != nil || evs[0].Properties != nil || evs[0].ID != "" {
		t.Errorf("bare event = %+v", evs[0])
	}
}

func testTimestampRange(t *testing.T, s store.Store) {
	ctx := context.Background()
	times := []time.Time{
		time.Date(1700, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Unix(0, 0),
		time.Unix(-1, 999999999),
		time.Date(2262, 1, 1, 23, 59, 59, 999999999, tokyo),
	}
	for i, ts := range times {
		e := event(store.IDKey(fmt.Sprintf("t%d", i)), fmt.Sprintf("t%d", i), "cust", "", ts, 1)
		e.PeriodStart = ts
		must(t, s.InsertEvents(ctx, []*store.EventRecord{e}), "insert")
		got, err := s.GetEvent(ctx, e.ID)
		must(t, err, "get")
		sameTime(t, "Timestamp", got.Timestamp, ts)
		sameTime(t, "PeriodStart", got.PeriodStart, ts)
	}
}

func testEventsByCorrelation(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Inserted out of timestamp order; the last two share a timestamp.
	e1 := event("k1", "e1", "cust", "run-1", t0.Add(3*time.Second), 1, line("c", "1"))
	e2 := event("k2", "e2", "cust", "run-1", t0.Add(1*time.Second), 1, line("c", "2"), line("d", "3"))
	e3 := event("k3", "e3", "cust", "run-2", t0.Add(2*time.Second), 1)
	e4 := event("k4", "e4", "cust", "run-1", t0.Add(5*time.Second), 1)
	e5 := event("k5", "e5", "cust", "run-1", t0.Add(5*time.Second), 1)
	must(t, s.InsertEvents(ctx, []*store.EventRecord{e1, e2, e3}), "insert")
	must(t, s.InsertEvents(ctx, []*store.EventRecord{e4, e5}), "insert")

	evs, err := s.EventsByCorrelation(ctx, "run-1", 0)
	must(t, err, "all")
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"e2", "e1", "e4", "e5"}) {
		t.Errorf("by correlation = %v, want [e2 e1 e4 e5] (timestamp, then sequence)", ids)
	}
	if len(evs) > 0 {
		sameEvent(t, evs[0], e2, true)
	}
	evs, err = s.EventsByCorrelation(ctx, "run-1", 2)
	must(t, err, "limit 2")
	if len(evs) != 2 || evs[0].ID != "e2" || evs[1].ID != "e1" {
		t.Errorf("limit 2 = %d events", len(evs))
	}
	for _, id := range []string{"nope", ""} {
		evs, err = s.EventsByCorrelation(ctx, id, 10)
		must(t, err, "unknown correlation")
		if len(evs) != 0 {
			t.Errorf("correlation %q = %d events, want none", id, len(evs))
		}
	}
}

func testReplayPeriod(t *testing.T, s store.Store) {
	ctx := context.Background()
	next := t0.AddDate(0, 1, 0)
	mk := func(key, cust string, pv int64, start time.Time) *store.EventRecord {
		e := event(key, key, cust, "", start.Add(time.Hour), pv, line("c", "1"))
		e.PeriodStart = start
		return e
	}
	must(t, s.InsertEvents(ctx, []*store.EventRecord{
		mk("m1", "cust", 1, t0), mk("x-cust", "other", 1, t0), mk("m2", "cust", 1, t0),
		mk("x-plan", "cust", 2, t0), mk("x-period", "cust", 1, next),
	}), "insert")
	must(t, s.InsertEvents(ctx, []*store.EventRecord{mk("m3", "cust", 1, t0)}), "insert")

	pk := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	if got := replayKeys(t, s, pk); !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Errorf("replay = %v, want [m1 m2 m3]", got)
	}
	for _, tc := range []struct {
		pk   store.PeriodKey
		want []string
	}{
		{store.PeriodKey{CustomerID: "other", PlanVersionID: 1, PeriodStart: t0}, []string{"x-cust"}},
		{store.PeriodKey{CustomerID: "cust", PlanVersionID: 2, PeriodStart: t0}, []string{"x-plan"}},
		{store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: next}, []string{"x-period"}},
		{store.PeriodKey{CustomerID: "cust", PlanVersionID: 3, PeriodStart: t0}, nil},
		// The same instant in another zone is the same period.
		{store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: next.In(tokyo)}, []string{"x-period"}},
	} {
		if got := replayKeys(t, s, tc.pk); !slices.Equal(got, tc.want) {
			t.Errorf("replay %+v = %v, want %v", tc.pk, got, tc.want)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err := s.ReplayPeriod(ctx, pk, func(*store.EventRecord) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("replay with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
	// fn may use the store while the replay runs.
	err = s.ReplayPeriod(ctx, pk, func(e *store.EventRecord) error {
		found, err := s.FindEvents(ctx, []string{e.Key})
		if err == nil && found[e.Key].Seq != e.Seq {
			err = fmt.Errorf("find %s during replay = %+v", e.Key, found)
		}
		return err
	})
	must(t, err, "replay calling the store")
}

func testListEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	from := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	must(t, s.InsertEvents(ctx, []*store.EventRecord{
		event("before", "before", "cust", "", from.Add(-time.Nanosecond), 1),
		event("at-from-b", "at-from-b", "cust", "", from, 1),
		event("mid", "mid", "cust", "", from.Add(time.Hour), 1),
		event("at-from-a", "at-from-a", "cust", "", from, 1),
		event("last", "last", "cust", "", to.Add(-time.Nanosecond), 1),
		event("at-to", "at-to", "cust", "", to, 1),
		event("other", "other", "other", "", from.Add(time.Hour), 1),
	}), "insert")
	var got []string
	err := s.ListEvents(ctx, "cust", from.In(tokyo), to, func(e *store.EventRecord) error {
		if e.Lines != nil {
			t.Errorf("ListEvents returned lines")
		}
		got = append(got, e.Key)
		return nil
	})
	must(t, err, "list")
	want := []string{"at-from-b", "at-from-a", "mid", "last"}
	if !slices.Equal(got, want) {
		t.Errorf("list [from, to) = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	err = s.ListEvents(ctx, "cust", from, to, func(*store.EventRecord) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("list with failing fn: %v, want stop", err)
	}
	got = nil
	must(t, s.ListEvents(ctx, "cust", to, to, func(e *store.EventRecord) error {
		got = append(got, e.Key)
		return nil
	}), "empty range")
	if len(got) != 0 {
		t.Errorf("empty range listed %v", got)
	}
}

func testAttribution(t *testing.T, s store.Store) {
	ctx := context.Background()
	pk := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	li := func(charge, group, typ, qty, amount string) store.RatedLine {
		return store.RatedLine{Charge: charge, Group: group, Type: typ, Quantity: dec(qty), Amount: dec(amount), Cost: dec("0")}
	}
	var evs []*store.EventRecord
	// req-1: many tiny amounts that floating point could not sum exactly.
	for i := range 1000 {
		evs = append(evs, event(fmt.Sprintf("r1-%d", i), fmt.Sprintf("r1-%d", i), "cust", "req-1", t0.Add(time.Duration(i)), 1,
			li("in", "sonnet", "usage", "0.1", "0.000000000123456789")))
	}
	// req-2: volume deltas, one negative, plus lines that must not count.
	evs = append(evs,
		event("r2-a", "r2-a", "cust", "req-2", t0, 1, li("in", "sonnet", "usage", "0.2", "0.1"), li("out", "sonnet", "usage", "1", "9")),
		event("r2-b", "r2-b", "cust", "req-2", t0, 1, li("in", "sonnet", "usage", "0.7", "0.2"), li("in", "haiku", "usage", "1", "9"), li("in", "sonnet", "maximum", "1", "9")),
		event("r2-c", "r2-c", "cust", "req-2", t0, 1, li("in", "sonnet", "usage", "12345678901234567890.5", "-0.30000000000000000001")),
	)
	// No correlation ID: attributed to "event:<id>".
	evs = append(evs, event("solo", "evt_solo", "cust", "", t0, 1, li("in", "sonnet", "usage", "3", "12345678901234567890.5")))
	// Same charge in another period, plan version or customer: excluded.
	other := event("o1", "o1", "cust", "req-1", t0, 2, li("in", "sonnet", "usage", "1", "9"))
	otherPeriod := event("o2", "o2", "cust", "req-1", t0, 1, li("in", "sonnet", "usage", "1", "9"))
	otherPeriod.PeriodStart = tEnd
	otherCust := event("o3", "o3", "cust2", "req-1", t0, 1, li("in", "sonnet", "usage", "1", "9"))
	evs = append(evs, other, otherPeriod, otherCust)
	for i := 0; i < len(evs); i += 400 {
		must(t, s.InsertEvents(ctx, evs[i:min(i+400, len(evs))]), "insert")
	}

	rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "in", Group: "sonnet", Type: "usage"})
	must(t, err, "attribution")
	want := []store.AttributionRow{
		{Key: "event:evt_solo", Events: 1, Quantity: dec("3"), Amount: dec("12345678901234567890.5")},
		{Key: "req-1", Events: 1000, Quantity: dec("100"), Amount: dec("0.000000123456789")},
		{Key: "req-2", Events: 3, Quantity: dec("12345678901234567891.4"), Amount: dec("-0.00000000000000000001")},
	}
	sameRows(t, rows, want)

	total := money.Zero
	for _, r := range rows {
		total = total.Add(r.Amount)
	}
	sameDec(t, "total", total, dec("12345678901234567890.50000012345678899999"))

	rows, err = s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "in", Group: "sonnet", Type: "maximum"})
	must(t, err, "attribution of another type")
	sameRows(t, rows, []store.AttributionRow{{Key: "req-2", Events: 1, Quantity: dec("1"), Amount: dec("9")}})
	rows, err = s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "nope", Type: "usage"})
	must(t, err, "attribution of unknown charge")
	if len(rows) != 0 {
		t.Errorf("unknown charge rows = %+v", rows)
	}
}

func sameRows(t *testing.T, got, want []store.AttributionRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("rows = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Key != want[i].Key || got[i].Events != want[i].Events ||
			!got[i].Quantity.Equal(want[i].Quantity) || !got[i].Amount.Equal(want[i].Amount) {
			t.Errorf("row %d = {%s %d %s %s}, want {%s %d %s %s}", i,
				got[i].Key, got[i].Events, got[i].Quantity, got[i].Amount,
				want[i].Key, want[i].Events, want[i].Quantity, want[i].Amount)
		}
	}
}

func testAttributionPagination(t *testing.T, s store.Store) {
	ctx := context.Background()
	pk := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	var evs []*store.EventRecord
	var wantKeys []string
	for i := range 25 {
		corr := fmt.Sprintf("req-%02d", i)
		wantKeys = append(wantKeys, corr)
		// Two events per key, one of them with two lines of the charge.
		evs = append(evs,
			event(corr+"/a", corr+"/a", "cust", corr, t0, 1, line("c", "1.5")),
			event(corr+"/b", corr+"/b", "cust", corr, t0, 1, line("c", "-0.25"), line("c", "0.75")))
	}
	// Keys that sort before "req-" in byte order and an uppercase one.
	evs = append(evs, event("solo", "A1", "cust", "", t0, 1, line("c", "1")),
		event("up", "up", "cust", "REQ", t0, 1, line("c", "1")))
	wantKeys = append([]string{"REQ", "event:A1"}, wantKeys...)
	must(t, s.InsertEvents(ctx, evs), "insert")

	var got []string
	after := ""
	for range 100 {
		rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "c", Type: "usage", After: after, Limit: 4})
		must(t, err, "page")
		if len(rows) > 4 {
			t.Fatalf("page of %d rows, limit 4", len(rows))
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			got = append(got, r.Key)
			if r.Key != "REQ" && r.Key != "event:A1" {
				sameRows(t, []store.AttributionRow{r}, []store.AttributionRow{{Key: r.Key, Events: 2, Quantity: dec("3"), Amount: dec("2")}})
			}
		}
		after = rows[len(rows)-1].Key
	}
	if !slices.Equal(got, wantKeys) {
		t.Errorf("paged keys = %v\nwant %v", got, wantKeys)
	}
	rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "c", Type: "usage", After: "req-23"})
	must(t, err, "after req-23, no limit")
	if len(rows) != 1 || rows[0].Key != "req-24" {
		t.Errorf("after req-23 = %+v", rows)
	}
}

// testAttributionManyEvents: thousands of compound events over many keys, paged in small pages,
// add up exactly to sums computed here, and events with lines of other charges only do not count.
func testAttributionManyEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	pk := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	const n, keys = 3000, 157
	want := map[string]*store.AttributionRow{}
	var evs []*store.EventRecord
	for i := range n {
		corr := fmt.Sprintf("req_%04d", (i*7919)%keys)
		id := fmt.Sprintf("e%05d", i)
		if i%10 == 3 {
			corr = "" // attributed to "event:<id>"
		}
		amt := dec(fmt.Sprintf("%d.%018d", i%5-2, i*104729))
		qty := dec(fmt.Sprintf("0.%03d", i%1000))
		lines := []store.RatedLine{
			{Charge: "other", Type: "usage", Quantity: dec("1"), Amount: dec("7")},
			{Charge: "in", Group: "g", Type: "usage", Quantity: qty, Amount: amt},
			{Charge: "in", Group: "g", Type: "maximum", Quantity: dec("1"), Amount: dec("7")},
		}
		if i%4 == 0 {
			lines = lines[:1] // no line of the invoice line: not counted
		}
		e := event(store.IDKey(id), id, "cust", corr, t0.Add(time.Duration(i)), 1, lines...)
		evs = append(evs, e)
		if i%4 == 0 {
			continue
		}
		k := e.AttributionKey()
		r := want[k]
		if r == nil {
			r = &store.AttributionRow{Key: k, Quantity: money.Zero, Amount: money.Zero}
			want[k] = r
		}
		r.Events++
		r.Quantity = r.Quantity.Add(qty)
		r.Amount = r.Amount.Add(amt)
	}
	for i := 0; i < len(evs); i += 500 {
		must(t, s.InsertEvents(ctx, evs[i:min(i+500, len(evs))]), "insert")
	}
	var wantRows []store.AttributionRow
	for _, r := range want {
		wantRows = append(wantRows, *r)
	}
	slices.SortFunc(wantRows, func(a, b store.AttributionRow) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	var got []store.AttributionRow
	after := ""
	for page := 0; ; page++ {
		if page > len(wantRows) {
			t.Fatal("pagination does not end")
		}
		rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "in", Group: "g", Type: "usage", After: after, Limit: 7})
		must(t, err, "page")
		if len(rows) > 7 {
			t.Fatalf("page of %d rows, limit 7", len(rows))
		}
		if len(rows) == 0 {
			break
		}
		got = append(got, rows...)
		after = rows[len(rows)-1].Key
	}
	sameRows(t, got, wantRows)
	all, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: pk, Charge: "in", Group: "g", Type: "usage"})
	must(t, err, "all")
	sameRows(t, all, wantRows)
}

func testConcurrentInsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	const (
		writers = 8
		n       = 120
		batch   = 5
	)
	key := func(i int) string { return fmt.Sprintf("k%03d", i) }
	var (
		mu        sync.Mutex
		winner    = map[string]int{}
		conflicts int
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer walks every key from its own offset, in batches, and retries the part
			// of a batch that lost a race, as ingestion does.
			for off := 0; off < n; off += batch {
				var pending []string
				for j := range batch {
					pending = append(pending, key((w*n/writers+off+j)%n))
				}
				for len(pending) > 0 {
					evs := make([]*store.EventRecord, len(pending))
					for i, k := range pending {
						evs[i] = event(k, k, "cust", k, t0, 1, line("c", "1"))
						evs[i].ContentHash = fmt.Appendf(nil, "writer-%d", w)
					}
					err := s.InsertEvents(ctx, evs)
					if err == nil {
						mu.Lock()
						for _, k := range pending {
							if prev, dup := winner[k]; dup {
								t.Errorf("key %s stored by writers %d and %d", k, prev, w)
							}
							winner[k] = w
						}
						mu.Unlock()
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Errorf("writer %d: %v, want nil or ErrConflict", w, err)
						return
					}
					mu.Lock()
					conflicts++
					mu.Unlock()
					found, err := s.FindEvents(ctx, pending)
					if err != nil {
						t.Errorf("writer %d: find: %v", w, err)
						return
					}
					var rest []string
					for _, k := range pending {
						if _, ok := found[k]; !ok {
							rest = append(rest, k)
						}
					}
					pending = rest
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(winner) != n {
		t.Fatalf("%d keys stored, want %d", len(winner), n)
	}
	if conflicts == 0 {
		t.Error("no writer lost a race; the test did not exercise conflicts")
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = key(i)
	}
	found, err := s.FindEvents(ctx, keys)
	must(t, err, "find")
	seqs := map[int64]bool{}
	for k, w := range winner {
		sk, ok := found[k]
		if !ok || string(sk.ContentHash) != fmt.Sprintf("writer-%d", w) {
			t.Errorf("key %s stored as %+v, want writer %d's", k, sk, w)
		}
		if seqs[sk.Seq] {
			t.Errorf("seq %d assigned twice", sk.Seq)
		}
		seqs[sk.Seq] = true
	}
	count := 0
	must(t, s.ListEvents(ctx, "cust", t0, tEnd, func(*store.EventRecord) error {
		count++
		return nil
	}), "list")
	if count != n {
		t.Errorf("%d events stored, want %d (each key exactly once)", count, n)
	}
	rows, err := s.Attribution(ctx, store.AttributionParams{
		PeriodKey: store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}, Charge: "c", Type: "usage"})
	must(t, err, "attribution")
	if len(rows) != n {
		t.Fatalf("attribution has %d keys, want %d", len(rows), n)
	}
	for _, r := range rows {
		if r.Events != 1 || !r.Amount.Equal(dec("1")) {
			t.Errorf("attribution %s = %d events, %s: lines of a lost batch were written", r.Key, r.Events, r.Amount)
		}
	}
}

// testInvalidTextLookups: text that can never be stored (NUL bytes, invalid UTF-8) is simply
// not found by lookups, and rejected with a plain error by writes, on every driver.
func testInvalidTextLookups(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, bad := range []string{"a\x00b", "\xff\xfe"} {
		_, err := s.GetCustomer(ctx, bad)
		mustIs(t, err, store.ErrNotFound, "GetCustomer")
		_, err = s.GetEvent(ctx, bad)
		mustIs(t, err, store.ErrNotFound, "GetEvent")
		_, err = s.LatestPlanVersion(ctx, bad)
		mustIs(t, err, store.ErrNotFound, "LatestPlanVersion")
		mustIs(t, s.RevokeAPIKey(ctx, bad, t0), store.ErrNotFound, "RevokeAPIKey")
		evs, err := s.EventsByCorrelation(ctx, bad, 0)
		if err != nil || len(evs) != 0 {
			t.Errorf("EventsByCorrelation(%q) = %d events, %v", bad, len(evs), err)
		}
		found, err := s.FindEvents(ctx, []string{bad})
		if err != nil || len(found) != 0 {
			t.Errorf("FindEvents(%q) = %v, %v", bad, found, err)
		}
		noCall := func(*store.EventRecord) error {
			t.Errorf("callback for customer %q", bad)
			return nil
		}
		must(t, s.ReplayPeriod(ctx, store.PeriodKey{CustomerID: bad, PlanVersionID: 1, PeriodStart: t0}, noCall), "ReplayPeriod")
		must(t, s.ListEvents(ctx, bad, t0, tEnd, noCall), "ListEvents")

		_, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: bad, Now: t0})
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutCustomer(%q) = %v, want a plain error", bad, err)
		}
		err = s.CreateAPIKey(ctx, store.APIKey{ID: "k", Name: bad, Hash: []byte("h"), CreatedAt: t0})
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateAPIKey with name %q = %v, want a plain error", bad, err)
		}
	}
	_, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "c", Now: t0, Limits: []byte("{not json")})
	if err == nil {
		t.Error("PutCustomer accepted limits that are not JSON")
	}
	if _, err := s.GetCustomer(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("customer stored despite invalid limits: %v", err)
	}
}

// testCanceledContext: a canceled context fails the call with an error that is
// context.Canceled, and writes nothing.
func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.InsertEvents(ctx, []*store.EventRecord{event("k", "k", "cust", "", t0, 1, line("c", "1"))})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("InsertEvents with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.GetCustomer(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetCustomer with a canceled context = %v, want context.Canceled", err)
	}
	found, err := s.FindEvents(context.Background(), []string{"k"})
	must(t, err, "find")
	if len(found) != 0 {
		t.Error("InsertEvents with a canceled context wrote the event")
	}
}

// testReplayPeriodLines: a replay returns each event's rated lines, exact and in order (the
// billing writer rebuilds tier discounts from them).
func testReplayPeriodLines(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.InsertEvents(ctx, []*store.EventRecord{
		event("rl1", "rl1", "cust-rl", "", t0, 1, line("c", "1.25"), line("tier:scale", "-0.125")),
		event("rl2", "rl2", "cust-rl", "", t0, 1),
	}), "insert")
	var got []string
	err := s.ReplayPeriod(ctx, store.PeriodKey{CustomerID: "cust-rl", PlanVersionID: 1, PeriodStart: t0}, func(e *store.EventRecord) error {
		for _, l := range e.Lines {
			got = append(got, e.Key+":"+l.Charge+"="+l.Amount.String())
		}
		return nil
	})
	must(t, err, "replay")
	if want := []string{"rl1:c=1.25", "rl1:tier:scale=-0.125"}; !reflect.DeepEqual(got, want) {
		t.Errorf("replayed lines = %v, want %v", got, want)
	}
}
