package billing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/sqlite"
	"github.com/levyhq/levy/internal/usage"
)

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type fixture struct {
	svc   *Service
	store store.Store
	clock *clock
	stop  func()
	path  string
}

func newFixture(t *testing.T, path string, opts Options) *fixture {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "levy.db")
	}
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)}
	opts.Now = clk.Now
	svc := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	ctx, cancel := context.WithCancel(context.Background())
	go svc.Run(ctx)
	f := &fixture{svc: svc, store: st, clock: clk, path: path}
	f.stop = func() { cancel(); <-svc.Stopped(); st.Close() }
	t.Cleanup(func() {
		if f.stop != nil {
			f.stop()
		}
	})
	return f
}

func (f *fixture) close() { f.stop(); f.stop = nil }

const catalogV1 = `currency: USD
meters: [{key: tokens}]
plans:
  - key: pro
    charges:
      - {key: tok, meter: tokens, model: perUnit, unitPrice: "1.00", per: 1000}
  - key: other
    charges:
      - {key: tok, meter: tokens, model: perUnit, unitPrice: "9.00", per: 1000}
`

func event(id, customer string, at time.Time, tokens int64) usage.Event {
	return usage.Event{ID: id, EventType: "call", CustomerID: customer, Timestamp: at, TimestampGiven: true,
		Measurements: []usage.Measurement{{MetricKey: "tokens", Value: money.QtyInt(tokens)}}}
}

func ingest(t *testing.T, f *fixture, evs ...usage.Event) IngestResult {
	t.Helper()
	res, err := f.svc.Ingest(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestPlanVersions: changing a plan makes a new version; a customer stays on its version until
// moved, and each event's lines name the version it was rated at.
func TestPlanVersions(t *testing.T) {
	f := newFixture(t, "", Options{})
	ctx := context.Background()
	if _, err := f.svc.ApplyCatalog(ctx, []byte(catalogV1)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ingest(t, f, event("e1", "c1", nov, 1000))

	// v2 of pro doubles the price; "other" is unchanged and keeps its version.
	res, err := f.svc.ApplyCatalog(ctx, []byte(strings.Replace(catalogV1, `unitPrice: "1.00"`, `unitPrice: "2.00"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]int64{}
	for _, p := range res.Plans {
		if p.Changed {
			changed[p.Plan] = p.Version
		}
	}
	if len(changed) != 1 || changed["pro"] != 2 {
		t.Fatalf("changed plans = %v, want pro v2 only", changed)
	}
	// c1 stays on v1: the next event is still priced at 1.00 per 1000.
	r := ingest(t, f, event("e2", "c1", nov.Add(time.Hour), 1000))
	if r.Events[0].Amount != "1" {
		t.Errorf("after v2, c1's event priced %s, want 1 (still v1)", r.Events[0].Amount)
	}
	// Putting the same plan again does not move it; naming version 2 does.
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.svc.GetCustomer(ctx, "c1")
	if len(c.Subscriptions) != 1 {
		t.Fatalf("subscriptions %+v", c.Subscriptions)
	}
	start := time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC)
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro", PlanVersion: 2, SubscriptionStart: &start}); err != nil {
		t.Fatal(err)
	}
	r = ingest(t, f, event("e3", "c1", start.Add(time.Hour), 1000), event("e4", "c1", nov.Add(2*time.Hour), 1000))
	if r.Events[0].Amount != "2" || r.Events[1].Amount != "1" {
		t.Errorf("after moving at %s: e3 %s (want 2, v2), e4 %s (want 1, dated before the move: v1)", start, r.Events[0].Amount, r.Events[1].Amount)
	}
	e3, _ := f.svc.GetEvent(ctx, "e3")
	e4, _ := f.svc.GetEvent(ctx, "e4")
	if e3.PlanVersionID == e4.PlanVersionID {
		t.Errorf("e3 and e4 name the same plan version %d", e3.PlanVersionID)
	}
	// A subscription cannot start before the current one.
	early := start.Add(-time.Hour)
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "other", SubscriptionStart: &early}); problem.KindOf(err) != problem.Invalid {
		t.Errorf("moving back in time: %v", err)
	}
}

// TestBatchAllOrNothing: an unknown customer, an event before the subscription, or a conflict
// anywhere in a batch rejects the whole batch and writes nothing.
func TestBatchAllOrNothing(t *testing.T) {
	f := newFixture(t, "", Options{})
	ctx := context.Background()
	f.svc.ApplyCatalog(ctx, []byte(catalogV1))
	f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"})
	at := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ingest(t, f, event("e1", "c1", at, 10))
	cases := []struct {
		name  string
		batch []usage.Event
		kind  problem.Kind
		field string
	}{
		{"unknown customer", []usage.Event{event("n1", "c1", at, 1), event("n2", "ghost", at, 1)}, problem.Invalid, "customerId"},
		{"before the subscription", []usage.Event{event("n1", "c1", at, 1), event("n3", "c1", at.AddDate(-1, 0, 0), 1)}, problem.Invalid, "timestamp"},
		{"conflict", []usage.Event{event("n1", "c1", at, 1), event("e1", "c1", at, 11)}, problem.Conflict, "id"},
		{"conflict inside the batch", []usage.Event{event("n1", "c1", at, 1), event("n1", "c1", at, 2)}, problem.Conflict, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Ingest(ctx, tc.batch)
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != tc.kind || len(pe.Fields) != 1 || pe.Fields[0].Field != tc.field || *pe.Fields[0].Index != 1 {
				t.Fatalf("err = %#v", err)
			}
			if _, err := f.store.GetEvent(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("n1 was written: %v", err)
			}
		})
	}
	sp, err := f.svc.Spend(ctx, "c1")
	if err != nil || sp.Spend != "0.01" || sp.Events != 1 {
		t.Errorf("spend = %+v, %v", sp, err)
	}
}

// TestDefaultPlan: with a default plan, an unknown customer is created on its first event.
func TestDefaultPlan(t *testing.T) {
	f := newFixture(t, "", Options{DefaultPlan: "pro"})
	ctx := context.Background()
	f.svc.ApplyCatalog(ctx, []byte(catalogV1))
	r := ingest(t, f, event("e1", "newbie", time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), 500))
	if r.Accepted != 1 || r.Events[0].Amount != "0.5" {
		t.Fatalf("%+v", r)
	}
	if _, err := f.svc.GetCustomer(ctx, "newbie"); err != nil {
		t.Error(err)
	}
}

// TestReplayAfterRestart: amounts after a restart come from replaying the ledger and equal the
// amounts before, including a graduated charge whose incremental amounts depend on order.
func TestReplayAfterRestart(t *testing.T) {
	const cat = `currency: USD
meters: [{key: tokens}]
plans:
  - key: pro
    charges:
      - {key: tok, meter: tokens, model: graduated, tiers: [{upTo: 100, unitPrice: "1"}, {unitPrice: "0.5"}]}
`
	f := newFixture(t, "", Options{})
	ctx := context.Background()
	f.svc.ApplyCatalog(ctx, []byte(cat))
	f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"})
	at := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ingest(t, f, event("a", "c1", at, 80), event("b", "c1", at, 40))
	before, _ := f.svc.InvoicePreview(ctx, "c1")
	f.close()

	g := newFixture(t, f.path, Options{})
	r := ingest(t, g, event("c", "c1", at, 10))
	// 80 + 40 = 120 before: 100 × 1 + 20 × 0.5 = 110; c adds 10 × 0.5.
	if r.Events[0].Amount != "5" {
		t.Errorf("after restart c priced %s, want 5 (the replayed state is past the first tier)", r.Events[0].Amount)
	}
	after, _ := g.svc.InvoicePreview(ctx, "c1")
	if before.PreciseTotal != "110" || after.PreciseTotal != "115" {
		t.Errorf("totals before %s, after %s; want 110 and 115", before.PreciseTotal, after.PreciseTotal)
	}
}

// TestConcurrentDuplicates: the same events from many goroutines at once are accepted exactly
// once; the others see duplicates.
func TestConcurrentDuplicates(t *testing.T) {
	f := newFixture(t, "", Options{})
	ctx := context.Background()
	f.svc.ApplyCatalog(ctx, []byte(catalogV1))
	f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"})
	at := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var batch []usage.Event
	for i := 0; i < 50; i++ {
		batch = append(batch, event("e"+money.QtyInt(int64(i)).String(), "c1", at, int64(i+1)))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := append([]usage.Event(nil), batch...)
			res, err := f.svc.Ingest(ctx, evs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			accepted += res.Accepted
			mu.Unlock()
		}()
	}
	wg.Wait()
	if accepted != 50 {
		t.Errorf("accepted %d events in total, want 50", accepted)
	}
	sp, _ := f.svc.Spend(ctx, "c1")
	// Σ (i+1) for i < 50 = 1275 tokens at 1.00 per 1000.
	if sp.Spend != "1.275" || sp.Events != 50 {
		t.Errorf("spend %+v", sp)
	}
}

// failingStore fails the next n InsertEvents calls, as a full disk or a lost database would.
type failingStore struct {
	store.Store
	mu   sync.Mutex
	fail int
}

func (f *failingStore) InsertEvents(ctx context.Context, evs []*store.EventRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("disk full")
	}
	return f.Store.InsertEvents(ctx, evs)
}

// TestCommitFailure: when the ledger cannot be written, the request gets 503 and nothing of it
// survives in the running figures; the retry is rated as if the failure never happened.
func TestCommitFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "levy.db")
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &failingStore{Store: st}
	svc := New(fs, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Now: func() time.Time { return time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-svc.Stopped() }()
	go svc.Run(ctx)
	const cat = `currency: USD
meters: [{key: tokens}]
plans:
  - key: pro
    charges:
      - {key: tok, meter: tokens, model: graduated, tiers: [{upTo: 100, unitPrice: "1"}, {unitPrice: "0.5"}]}
`
	if _, err := svc.ApplyCatalog(ctx, []byte(cat)); err != nil {
		t.Fatal(err)
	}
	svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "pro"})
	at := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	if _, err := svc.Ingest(ctx, []usage.Event{event("a", "c1", at, 90)}); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.fail = 1
	fs.mu.Unlock()
	_, err = svc.Ingest(ctx, []usage.Event{event("b", "c1", at, 50)})
	if problem.KindOf(err) != problem.Unavailable {
		t.Fatalf("failed commit answered %v, want Unavailable", err)
	}
	// The retry starts from 90 tokens (b was never stored): 10 × 1 + 40 × 0.5 = 30.
	res, err := svc.Ingest(ctx, []usage.Event{event("b", "c1", at, 50)})
	if err != nil || res.Accepted != 1 || res.Events[0].Amount != "30" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	sp, _ := svc.Spend(ctx, "c1")
	if sp.Spend != "120" || sp.Events != 2 {
		t.Errorf("spend %+v, want 120 over 2 events", sp)
	}
}
