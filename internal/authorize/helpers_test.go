package authorize

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/counter/memory"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
)

// t0 is the tests' clock start: inside the test period.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// testPeriod is the customers' open period.
var testPeriod = period.Period{Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}

// clock is an injected clock; tests move it by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// plans is a PlanSource built from a real compiled catalog: each customer is on a plan of it,
// with overrides JSON.
type plans struct {
	mu        sync.Mutex
	cat       *catalog.Catalog
	customers map[string]billing.CustomerPlan
}

func newPlans(cat *catalog.Catalog) *plans {
	return &plans{cat: cat, customers: map[string]billing.CustomerPlan{}}
}

func (p *plans) put(t testing.TB, customerID, planKey string, version int64, overrides string) {
	t.Helper()
	pl := p.cat.Plan(planKey)
	if pl == nil {
		t.Fatalf("no plan %q", planKey)
	}
	cp := billing.CustomerPlan{CustomerID: customerID, Catalog: p.cat, Plan: pl, PlanVersionID: version, Period: testPeriod}
	if overrides != "" {
		cp.Overrides = []byte(overrides)
	}
	p.mu.Lock()
	p.customers[customerID] = cp
	p.mu.Unlock()
}

func (p *plans) CustomerPlan(_ context.Context, customerID string, _ time.Time) (billing.CustomerPlan, error) {
	p.mu.Lock()
	cp, ok := p.customers[customerID]
	p.mu.Unlock()
	if !ok {
		return billing.CustomerPlan{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	return cp, nil
}

// faulty wraps a real store; while err is set, Authorize fails with it (or blocks until the
// context ends when block is set), and calls counts the Authorize calls that reached it.
type faulty struct {
	counter.Authorizer
	mu    sync.Mutex
	err   error
	block bool
	calls atomic.Int64
}

func (f *faulty) set(err error, block bool) {
	f.mu.Lock()
	f.err, f.block = err, block
	f.mu.Unlock()
}

func (f *faulty) Authorize(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	f.calls.Add(1)
	f.mu.Lock()
	err, block := f.err, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return counter.AuthorizeResult{}, ctx.Err()
	}
	if err != nil {
		return counter.AuthorizeResult{}, err
	}
	return f.Authorizer.Authorize(ctx, p)
}

func loadCatalog(t testing.TB, doc string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load([]byte(doc))
	if err != nil {
		t.Fatalf("load catalog: %v", err)
	}
	return c
}

func exampleCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile("../../examples/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return loadCatalog(t, string(data))
}

// env is a service on the memory store with an injected clock shared by both.
type env struct {
	svc   *Service
	store *memory.Store
	fault *faulty
	plans *plans
	clock *clock
	reg   *prometheus.Registry
}

func newEnv(t testing.TB, cat *catalog.Catalog, opts Options) *env {
	t.Helper()
	e := &env{clock: newClock(t0), plans: newPlans(cat), reg: prometheus.NewRegistry()}
	e.store = memory.New(memory.Options{Now: e.clock.Now})
	e.fault = &faulty{Authorizer: e.store}
	opts.Now = e.clock.Now
	opts.Registerer = e.reg
	if opts.Timeout == 0 {
		opts.Timeout = time.Second // the memory store never waits; a generous bound keeps -race runs deterministic
	}
	e.svc = New(e.fault, e.plans, opts)
	return e
}

func (e *env) authorize(t testing.TB, r Request) Result {
	t.Helper()
	res, err := e.svc.Authorize(context.Background(), r)
	if err != nil {
		t.Fatalf("Authorize(%+v): %v", r, err)
	}
	return res
}

// ladderCatalog has a spend-tier ladder, margin-guard rules and a plan with every limit.
const ladderCatalog = `
currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: cache_read_tokens}
  - {key: credits, expression: "input_tokens * 0.001"}
plans:
  - key: payg
    period: month
    limits: {requestsPerMinute: 60, tokensPerMinute: 100000, monthlyTokens: 5000000, monthlySpend: "100.00", maxConcurrent: 3}
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "18.00", per: 1000000}
  - key: open
    period: month
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.60", per: 1000000}
tiers:
  basis: periodSpend
  ladder:
    - {key: free, threshold: "0", limits: {maxConcurrent: 2}}
    - {key: build, threshold: "5.00", limits: {requestsPerMinute: 120, monthlySpend: "500.00"}}
    - {key: scale, threshold: "50.00", limitMultiplier: "0.5"}
    - {key: enterprise, manual: true, limits: {requestsPerMinute: 10000}}
marginGuard:
  - {key: runaway_task, scope: task, maxCost: "5.00", coolDown: 10m}
  - {key: task_ratio, scope: task, maxCostToPrice: "1.5", minCost: "0.50", coolDown: 20m}
  - {key: customer_margin, scope: customer, minMargin: "20", afterSpend: "100.00", coolDown: 1h}
`
