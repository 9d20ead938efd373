// Package billing is Levy's service layer: it applies catalogs as plan versions, keeps customers
// and their subscriptions, ingests events into the durable ledger rating each one the moment it
// arrives, and answers spend, usage, invoice previews and attribution from the ledger.
//
// Behaviour at the edges:
//   - Ingestion is all or nothing per request: every event of a batch is validated, resolved to
//     its customer's subscription and checked for idempotency before any is written; one bad
//     event rejects the whole batch and writes nothing.
//   - A 2xx means durable: events and their rated lines are committed in one transaction before
//     the answer. Concurrent requests are committed together (group commit) by one writer, which
//     also fixes the order events are rated in.
//   - Idempotency: an event whose key is stored with the same content is a duplicate (acknowledged,
//     no effect); the same key with other content is a conflict (409) for the whole request.
//   - Each event is rated incrementally against its customer's running quantities for the period
//     at the plan version its subscription names at the event's timestamp. The running figures
//     live in memory and are rebuilt from the ledger by replaying a period's events in the order
//     they were rated, so a restart changes no amount.
//   - A subscription runs from its start until the next subscription's start; its periods are
//     anchored at its start. By default a new subscription starts at the beginning of the
//     current calendar period, so usage of the current month is billed on the new plan.
//   - This node assumes it is the only writer for its customers: incremental amounts computed on
//     two nodes for one customer at once could disagree with replay, so route a customer's
//     events to one node at a time. The counter store (Redis) shares the running figures the
//     authorize path reads, not the rating state.
//   - The counter store is applied after commit, never before: it may lag the ledger (catching
//     up from a durable cursor) but is never ahead of it; customers without a wallet grant
//     record no burns, and a wallet counts usage from its first grant on.
//   - Period close runs on the writer: an invoice holds exactly the events committed before it;
//     later events for the period are billed in the open period as adjustments.
package billing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/store"
)

// Options configure a Service.
type Options struct {
	// DefaultPlan subscribes unknown customers on their first event; empty rejects them.
	DefaultPlan string
	// MaxGroup caps the events one group commit writes.
	MaxGroup int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Metrics receives ingestion figures; nil disables them.
	Metrics *Metrics
	// Counters, when set, is kept in step with the ledger (see CounterOptions).
	Counters       counter.Store
	CounterOptions CounterOptions
	// Grace is how long after a period ends its late events are still billed in it; the
	// period is closed (invoiced) once it has passed. Default 1h.
	Grace time.Duration
}

// Service is the billing service. Start its writer with Run.
type Service struct {
	store store.Store
	log   *slog.Logger
	opts  Options
	now   func() time.Time

	catMu    sync.RWMutex
	catalogs map[int64]*catalog.Catalog
	plans    map[int64]*planRef

	custMu    sync.Mutex
	customers map[string]*store.Customer

	perMu   sync.Mutex
	periods map[store.PeriodKey]*periodState

	queue   chan *ingestRequest
	ctl     chan func()
	stopped chan struct{}

	closeMu sync.Mutex
	closed  map[string]map[store.PeriodKey]string // customer → closed period → invoice ID

	acctMu   sync.Mutex
	accounts map[string]*account

	counters counter.Store
	applier  *applier
}

// planRef is a plan version ready to rate with.
type planRef struct {
	version store.PlanVersion
	cat     *catalog.Catalog
	plan    *catalog.Plan
	rater   *rating.Rater
}

// New returns a service over a store.
func New(st store.Store, log *slog.Logger, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 5000
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Hour
	}
	s := &Service{
		store:     st,
		log:       log,
		opts:      opts,
		now:       opts.Now,
		catalogs:  map[int64]*catalog.Catalog{},
		plans:     map[int64]*planRef{},
		customers: map[string]*store.Customer{},
		periods:   map[store.PeriodKey]*periodState{},
		queue:     make(chan *ingestRequest, 1024),
		ctl:       make(chan func()),
		stopped:   make(chan struct{}),
		closed:    map[string]map[store.PeriodKey]string{},
		accounts:  map[string]*account{},
		counters:  opts.Counters,
	}
	if opts.Counters != nil {
		s.applier = newApplier(s, opts.Counters, opts.CounterOptions)
	}
	return s
}

// Run runs the ingestion writer until ctx is done, then finishes the requests already queued.
//
// The writer is pipelined: while one group's transaction commits, the next group is gathered,
// checked and rated (on the running states, which already hold the committing group). At most
// one commit is in flight; replies go out when their commit returns. If a commit fails, the
// group rated on top of it is rated again from the ledger before it is committed.
func (s *Service) Run(ctx context.Context) {
	defer close(s.stopped) // last: after the applier has applied what the writer committed
	var wg sync.WaitGroup
	if s.applier != nil {
		actx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		go func() { defer wg.Done(); s.applier.run(actx) }()
		// The applier stops after the writer, so the last commits are applied.
		defer func() { cancel(); wg.Wait() }()
	}
	var prev *inflight
	for {
		var req *ingestRequest
		if prev == nil {
			select {
			case req = <-s.queue:
			case fn := <-s.ctl:
				fn()
				continue
			case <-ctx.Done():
				s.drain()
				return
			}
		} else {
			select {
			case req = <-s.queue:
			case fn := <-s.ctl:
				s.finish(prev, <-prev.done)
				prev = nil
				fn()
				continue
			case err := <-prev.done:
				s.finish(prev, err)
				prev = nil
				continue
			case <-ctx.Done():
				s.finish(prev, <-prev.done)
				s.drain()
				return
			}
		}
		prev = s.step(s.gather(req), prev)
	}
}

// drain processes what is still queued, one group at a time, without pipelining.
func (s *Service) drain() {
	for {
		select {
		case req := <-s.queue:
			s.processGroup(s.gather(req))
		default:
			return
		}
	}
}

// Stopped is closed once Run has returned.
func (s *Service) Stopped() <-chan struct{} { return s.stopped }
