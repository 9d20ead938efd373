package billing

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/guard"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/usage"
)

// CounterCursor is the name of the durable cursor that records how far the counter store has
// applied the ledger: every event with a sequence number at or below it is applied.
const CounterCursor = "counters"

// CounterOptions configure how the ledger is applied to the counter store.
type CounterOptions struct {
	// Durable is true when the counter store outlives the process (Redis): the cursor is then
	// stored in the ledger and catch-up starts from it. An in-process store starts empty, so it
	// is rebuilt from the whole ledger at start.
	Durable bool
	// Workers apply events of different customers in parallel (default 8); one customer's
	// events are always applied in sequence order by one worker.
	Workers int
	// Timeout bounds one Apply (default 2s).
	Timeout time.Duration
	// Retry is the wait before catching up again after a failure (default 1s).
	Retry time.Duration
	// CursorEvery is how often the durable cursor is saved (default 1s).
	CursorEvery time.Duration
}

// applier keeps the counter store in step with the ledger. Committed groups are handed to it in
// commit order and applied at once; when an apply fails (the store is down), it falls behind and
// catches up by reading the ledger after its cursor until it has nothing left to read. The
// counter store's per-customer watermark makes every re-apply a no-op, so catching up may
// safely apply an event twice.
type applier struct {
	s    *Service
	cs   counter.Store
	opts CounterOptions
	seed maphash.Seed

	groups chan []applyItem

	mu      sync.Mutex
	cursor  int64 // every event with seq <= cursor is applied
	behind  bool  // the cursor lags the ledger: catch up before applying handed-off groups
	saved   int64 // the cursor value last stored
	lastErr error
}

func newApplier(s *Service, cs counter.Store, opts CounterOptions) *applier {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.CursorEvery <= 0 {
		opts.CursorEvery = time.Second
	}
	return &applier{s: s, cs: cs, opts: opts, seed: maphash.MakeSeed(), groups: make(chan []applyItem, 4096), behind: true}
}

// applyItem is one committed event to apply, with its meter usage and tokens when the writer
// computed them while rating (so the applier need not decode the event again).
type applyItem struct {
	rec    *store.EventRecord
	usage  map[string]int64
	tokens int64
	known  bool
}

// handOff passes a committed group to the applier without blocking the writer: when the queue
// is full the group is dropped and the applier catches up from the ledger instead.
func (a *applier) handOff(recs []applyItem) {
	select {
	case a.groups <- recs:
	default:
		a.mu.Lock()
		a.behind = true
		a.mu.Unlock()
	}
}

// run applies handed-off groups and catches up until ctx is done.
func (a *applier) run(ctx context.Context) {
	if a.opts.Durable {
		c, err := a.s.store.Cursor(ctx, CounterCursor)
		if err != nil {
			a.s.log.Error("counters: read cursor; catching up from the start", "err", err)
		}
		a.mu.Lock()
		a.cursor, a.saved = c, c
		a.mu.Unlock()
	}
	if !a.opts.Durable {
		// An in-process store starts empty: bring every customer's grants and tier in first.
		err := a.s.eachCustomer(ctx, func(c store.Customer) error { return a.syncCustomer(ctx, c.ID) })
		if err != nil {
			a.s.log.Error("counters: load grants and tiers", "err", err)
		}
	}
	a.catchUp(ctx)
	retry := time.NewTimer(a.opts.Retry)
	defer retry.Stop()
	save := time.NewTicker(a.opts.CursorEvery)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			a.drain()
			a.saveCursor(context.Background())
			return
		case recs := <-a.groups:
			a.mu.Lock()
			behind := a.behind
			a.mu.Unlock()
			if behind {
				continue // the ledger holds them; catching up applies them
			}
			if err := a.apply(ctx, recs); err != nil {
				a.fail(err)
				continue
			}
			a.advance(recs[len(recs)-1].rec.Seq)
		case <-retry.C:
			a.catchUp(ctx)
			retry.Reset(a.opts.Retry)
		case <-save.C:
			a.saveCursor(ctx)
		}
	}
}

// drain applies the groups still queued when the service stops (unless behind: the next start
// catches up from the ledger).
func (a *applier) drain() {
	for {
		select {
		case recs := <-a.groups:
			a.mu.Lock()
			behind := a.behind
			a.mu.Unlock()
			if behind {
				continue
			}
			if err := a.apply(context.Background(), recs); err != nil {
				a.fail(err)
				continue
			}
			a.advance(recs[len(recs)-1].rec.Seq)
		default:
			return
		}
	}
}

func (a *applier) fail(err error) {
	a.mu.Lock()
	a.behind = true
	a.lastErr = err
	a.mu.Unlock()
	a.s.log.Warn("counters: apply failed; the ledger keeps the events and the counters catch up", "err", err)
	if m := a.s.opts.Metrics; m != nil {
		m.CounterFailures.Inc()
	}
}

func (a *applier) advance(seq int64) {
	a.mu.Lock()
	if seq > a.cursor {
		a.cursor = seq
	}
	a.mu.Unlock()
	if m := a.s.opts.Metrics; m != nil {
		m.CounterCursor.Set(float64(seq))
	}
}

func (a *applier) saveCursor(ctx context.Context) {
	if !a.opts.Durable {
		return
	}
	a.mu.Lock()
	c, saved := a.cursor, a.saved
	a.mu.Unlock()
	if c == saved {
		return
	}
	if err := a.s.store.SetCursor(ctx, CounterCursor, c); err != nil {
		a.s.log.Warn("counters: save cursor", "err", err)
		return
	}
	a.mu.Lock()
	a.saved = c
	a.mu.Unlock()
}

// catchUp applies the ledger after the cursor until a read finds nothing more; it leaves the
// applier behind if an apply fails. Groups dropped while behind were committed before they were
// dropped, so the final empty read has seen them.
func (a *applier) catchUp(ctx context.Context) {
	a.mu.Lock()
	behind := a.behind
	a.mu.Unlock()
	if !behind {
		return
	}
	const page = 2000
	touched := map[string]bool{}
	for ctx.Err() == nil {
		a.mu.Lock()
		after := a.cursor
		a.mu.Unlock()
		var recs []applyItem
		err := a.s.store.ScanEvents(ctx, store.ScanParams{AfterSeq: after, Limit: page}, func(r *store.EventRecord) error {
			c := *r
			recs = append(recs, applyItem{rec: &c})
			return nil
		})
		if err != nil {
			a.fail(fmt.Errorf("read the ledger after %d: %w", after, err))
			return
		}
		if len(recs) == 0 {
			a.mu.Lock()
			a.behind = false
			a.lastErr = nil
			a.mu.Unlock()
			a.syncTiers(ctx, touched)
			return
		}
		if err := a.apply(ctx, recs); err != nil {
			a.fail(err)
			return
		}
		for _, r := range recs {
			touched[r.rec.CustomerID] = true
		}
		a.advance(recs[len(recs)-1].rec.Seq)
	}
}

// syncTiers brings the grants and tier of customers whose events were applied by catching up
// (which carries neither) into the counter store: every grant (Grant adds each once, in any
// order with the burns) and the tier, from the writer's state or else the ledger.
func (a *applier) syncTiers(ctx context.Context, customers map[string]bool) {
	for id := range customers {
		if err := a.syncCustomer(ctx, id); err != nil {
			a.s.log.Warn("counters: sync grants and tier after catching up", "customer", id, "err", err)
		}
	}
}

func (a *applier) syncCustomer(ctx context.Context, id string) error {
	grants, err := a.s.store.ListGrants(ctx, id)
	if err != nil {
		return err
	}
	for _, g := range grants {
		a.s.counterGrant(ctx, g)
	}
	t, ok := a.s.loadedTier(id)
	if !ok {
		if t, err = a.s.storedTier(ctx, id); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	return a.cs.SetTier(cctx, id, t)
}

// apply applies records (in sequence order) with one worker per customer partition. A
// customer's events after a failed one are not applied: the watermark would otherwise skip the
// failed one for good.
func (a *applier) apply(ctx context.Context, recs []applyItem) error {
	parts := make([][]applyItem, a.opts.Workers)
	for _, r := range recs {
		i := int(maphash.String(a.seed, r.rec.CustomerID) % uint64(len(parts)))
		parts[i] = append(parts[i], r)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, part := range parts {
		if len(part) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := map[string]bool{}
			for _, r := range part {
				if failed[r.rec.CustomerID] {
					continue
				}
				if err := a.applyOne(ctx, r); err != nil {
					failed[r.rec.CustomerID] = true
					if errs[i] == nil {
						errs[i] = err
					}
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (a *applier) applyOne(ctx context.Context, it applyItem) error {
	r := it.rec
	var p counter.ApplyParams
	var err error
	if it.known {
		p, err = counterParamsWith(r, it.usage, it.tokens)
	} else {
		p, err = a.s.counterParams(ctx, r)
	}
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	start := time.Now()
	_, err = a.cs.Apply(cctx, p)
	if m := a.s.opts.Metrics; m != nil {
		m.CounterApply.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return fmt.Errorf("apply event %d of customer %q: %w", r.Seq, r.CustomerID, err)
	}
	return nil
}

// CounterStatus reports how far the counter store has applied the ledger.
type CounterStatus struct {
	Cursor    int64  `json:"cursor"`
	Behind    bool   `json:"behind"`
	LastError string `json:"lastError,omitempty"`
}

// CounterStatus returns the applier's position, or ok=false without a counter store.
func (s *Service) CounterStatus() (CounterStatus, bool) {
	a := s.applier
	if a == nil {
		return CounterStatus{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := CounterStatus{Cursor: a.cursor, Behind: a.behind}
	if a.lastErr != nil {
		st.LastError = a.lastErr.Error()
	}
	return st, true
}

// counterParams is one ledger event's contribution to the counter store: its rated amount and
// the usage of every meter it feeds in its rated period, its wallet burns and its last tier
// transition. Only sum and count meters are counted (max, latest and unique counts do not add
// up event by event). Meter quantities are held as integers: a fractional quantity is rounded half away
// from zero by money.Round.
func (s *Service) counterParams(ctx context.Context, r *store.EventRecord) (counter.ApplyParams, error) {
	usg, tokens, err := s.meterUsage(ctx, r)
	if err != nil {
		return counter.ApplyParams{}, err
	}
	return counterParamsWith(r, usg, tokens)
}

func counterParamsWith(r *store.EventRecord, usg map[string]int64, tokens int64) (counter.ApplyParams, error) {
	spend, ok := money.ToNanos(r.Amount)
	if !ok {
		return counter.ApplyParams{}, fmt.Errorf("event %d: amount %s does not fit the counter store", r.Seq, r.Amount)
	}
	p := counter.ApplyParams{
		CustomerID: r.CustomerID,
		Seq:        r.Seq,
		Period:     counter.PeriodRef{PlanVersionID: r.PlanVersionID, Start: r.PeriodStart, End: r.PeriodEnd},
		SpendNanos: spend,
		Events:     1,
	}
	p.Usage, p.Tokens, p.CorrelationID = usg, tokens, r.CorrelationID
	for _, b := range r.Burns {
		if b.GrantID == "" {
			continue
		}
		n, ok := money.ToNanos(b.Amount)
		if !ok {
			return counter.ApplyParams{}, fmt.Errorf("event %d: burn %s does not fit the counter store", r.Seq, b.Amount)
		}
		if p.Wallet == nil {
			p.Wallet = map[string]int64{}
		}
		p.Wallet[b.GrantID] += n
	}
	if n := len(r.Transitions); n > 0 {
		p.Tier = r.Transitions[n-1].To
	}
	return p, nil
}

var (
	unitCurrency = money.Currency{Code: "unit", Minor: 0}
	maxQty       = money.FromNanos(1 << 62).Shift(9)
)

// TokenMetrics are the measurement keys that count as tokens for the authorize path's token
// limits: what the LLM gateway records for one call (reasoning tokens are inside output).
var TokenMetrics = []string{"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"}

// meterUsage returns the integer usage of every meter the event feeds under its plan version,
// and the event's tokens (the sum of its TokenMetrics measurements, rounded to integers).
func (s *Service) meterUsage(ctx context.Context, r *store.EventRecord) (map[string]int64, int64, error) {
	ref, err := s.plan(ctx, r.PlanVersionID)
	if err != nil {
		return nil, 0, err
	}
	var ev usage.Event
	if err := recordToEvent(r, &ev); err != nil {
		return nil, 0, fmt.Errorf("event %d: %w", r.Seq, err)
	}
	u, tokens, err := eventUsage(ref.cat, &ev)
	if err != nil {
		return nil, 0, fmt.Errorf("event %d: %w", r.Seq, err)
	}
	return u, tokens, nil
}

// eventUsage returns the integer usage of every sum/count meter the event feeds in the catalog,
// and its tokens.
func eventUsage(cat *catalog.Catalog, ev *usage.Event) (map[string]int64, int64, error) {
	var tokens int64
	for _, k := range TokenMetrics {
		if q, ok := ev.Value(k); ok {
			d := money.Round(q.Decimal(), unitCurrency)
			if d.Abs().GreaterThan(maxQty) {
				return nil, 0, fmt.Errorf("%s %s does not fit the counter store", k, q)
			}
			tokens += d.IntPart()
		}
	}
	vals, err := rating.MeterValues(cat, ev, nil)
	if err != nil {
		return nil, 0, err
	}
	if len(vals) == 0 {
		return nil, tokens, nil
	}
	out := make(map[string]int64, len(vals))
	for _, v := range vals {
		if a := v.Meter.Aggregation; a != catalog.Sum && a != catalog.Count {
			continue // only additive meters have a running counter
		}
		d := money.Round(v.Value.Decimal(), unitCurrency)
		if !d.IsInteger() || d.Abs().GreaterThan(maxQty) {
			return nil, 0, fmt.Errorf("meter %s: quantity %s does not fit the counter store", v.Meter.Key, v.Value)
		}
		out[v.Meter.Key] += d.IntPart()
	}
	return out, tokens, nil
}

// tripBreakers opens the breakers of margin-guard trips in the counter store. The trips are
// recorded in the ledger with their events (notices of kind breaker_trip) whether or not this
// succeeds.
func (s *Service) tripBreakers(trips []guard.Trip) {
	az, ok := s.counters.(counter.Authorizer)
	if !ok {
		return
	}
	for _, t := range trips {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := az.TripBreaker(ctx, t.CustomerID, t.Scope, t.Key, t.Until)
		cancel()
		if err != nil {
			s.log.Warn("counters: trip margin-guard breaker", "breaker", t.BreakerID(), "rule", t.RuleKey, "err", err)
		}
	}
}
