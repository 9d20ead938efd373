// Package authtest starts the real decision stack the gateway integrations sit on, for their
// tests: the SQLite store in a temporary directory, the billing service with in-process counters,
// the authorize service and the key resolver the LLM gateway uses, all on one injected clock that
// only moves when a test moves it (so a Retry-After is an exact figure, not a race).
package authtest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/counter/memory"
	"github.com/levyhq/levy/internal/gateway"
	"github.com/levyhq/levy/internal/httpapi"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/sqlite"
)

// Catalog is the tests' default catalog. Plans differ only in their limits:
//   - limited: 3 requests a minute (the 4th call within a minute waits exactly 20 s);
//   - tokens: 10,000 tokens a minute;
//   - open: no limits.
const Catalog = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
plans:
  - key: limited
    period: month
    limits: {requestsPerMinute: 3}
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}
  - key: tokens
    period: month
    limits: {tokensPerMinute: 10000}
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}
  - key: open
    period: month
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}
`

// TB is the part of testing.TB the package uses, so examples (which have no *testing.T) can
// start a stack too.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Clock is a clock that moves only when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Levy is the running stack.
type Levy struct {
	Store     store.Store
	Billing   *billing.Service
	Counters  *memory.Store
	Authorize *authorize.Service
	// Customers resolves keys named "customer:<id>", as the LLM gateway does.
	Customers *gateway.KeyNameResolver
	Clock     *Clock
	Log       *slog.Logger
}

// Start starts the stack on catalogDoc (Catalog when empty); it stops when the test ends.
func Start(t TB, catalogDoc string) *Levy {
	t.Helper()
	if catalogDoc == "" {
		catalogDoc = Catalog
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "levy.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("%v", err)
	}
	clock := &Clock{t: time.Now().UTC().Truncate(time.Second)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cs := memory.New(memory.Options{Now: clock.Now})
	svc := billing.New(st, log, billing.Options{Counters: cs, Now: clock.Now})
	sctx, stop := context.WithCancel(ctx)
	go svc.Run(sctx)
	t.Cleanup(func() {
		stop()
		<-svc.Stopped()
		cs.Close()
		st.Close()
	})
	if _, err := svc.ApplyCatalog(ctx, []byte(catalogDoc)); err != nil {
		t.Fatalf("apply catalog: %v", err)
	}
	// Timeout -1: the in-process store never waits, and a deadline could fail a decision open
	// on a busy machine.
	auth := authorize.New(cs, svc, authorize.Options{Timeout: -1, Now: clock.Now})
	return &Levy{Store: st, Billing: svc, Counters: cs, Authorize: auth,
		Customers: gateway.NewKeyNameResolver(st, 0), Clock: clock, Log: log}
}

// Customer puts customer id on plan and returns a Levy key bound to it (named
// "customer:<id>", authorize scope), as a consumer of the gateway integrations holds.
func (l *Levy) Customer(t TB, id, plan string) string {
	t.Helper()
	if _, err := l.Billing.PutCustomer(context.Background(), id, billing.CustomerInput{Plan: plan}); err != nil {
		t.Fatalf("put customer %s: %v", id, err)
	}
	return l.Key(t, gateway.CustomerKeyPrefix+id, store.ScopeAuthorize)
}

// Key stores a new API key and returns its secret.
func (l *Levy) Key(t TB, name string, scopes ...store.Scope) string {
	t.Helper()
	_, secret, err := httpapi.CreateKey(context.Background(), l.Store, name, scopes, l.Clock.Now())
	if err != nil {
		t.Fatalf("create key %s: %v", name, err)
	}
	return secret
}

// ServeAPI serves Levy's HTTP API (POST /v1/authorize and the rest) over the stack on a real
// 127.0.0.1 listener until the test ends, and returns its base URL.
func (l *Levy) ServeAPI(t TB) string {
	t.Helper()
	api := httpapi.New(l.Billing, l.Store, httpapi.NewAuthenticator(l.Store, ""), l.Log,
		httpapi.Options{Authorize: l.Authorize, Now: l.Clock.Now}, func() bool { return true })
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv.URL
}
