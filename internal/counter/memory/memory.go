// Package memory is the in-process counter store: the embedded default, rebuilt from the
// durable store at start. Customers are spread over fixed shards, each with its own mutex, so
// concurrent Applies for different customers rarely contend; an Apply to an existing customer
// and period with known meters allocates nothing.
package memory

import (
	"context"
	"hash/maphash"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/counter"
)

// Interface guard.
var _ counter.Store = (*Store)(nil)

// shardCount is a power of two so a hash picks a shard with a mask.
const shardCount = 256

// Options configure a Store. The zero value works.
type Options struct {
	// Retention is how long a period's counters are kept after its End (default
	// counter.DefaultRetention).
	Retention time.Duration
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
}

// Store is the in-process counter store.
type Store struct {
	seed      maphash.Seed
	retention time.Duration
	now       func() time.Time
	shards    [shardCount]shard
}

type shard struct {
	mu        sync.Mutex
	customers map[string]*customer
	_         [40]byte // keep neighbouring shards' mutexes off one cache line
}

type customer struct {
	watermark int64
	lifetime  int64
	periods   map[periodKey]*period
}

// periodKey identifies a period by its plan version and start instant (not time.Time, whose
// location pointer would make equal instants differ as map keys).
type periodKey struct {
	planVersionID int64
	start         int64 // Unix nanos
}

type period struct {
	expireAt int64 // Unix nanos: End + retention
	spend    int64
	events   int64
	usage    map[string]int64
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{seed: maphash.MakeSeed(), retention: opts.Retention, now: opts.Now}
	if s.retention <= 0 {
		s.retention = counter.DefaultRetention
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].customers = make(map[string]*customer)
	}
	return s
}

func (s *Store) shard(id string) *shard {
	return &s.shards[maphash.String(s.seed, id)&(shardCount-1)]
}

func keyOf(r counter.PeriodRef) periodKey {
	return periodKey{planVersionID: r.PlanVersionID, start: r.Start.UnixNano()}
}

func (s *Store) expireAt(r counter.PeriodRef) int64 { return r.End.Add(s.retention).UnixNano() }

// Apply implements counter.Store.
func (s *Store) Apply(ctx context.Context, p counter.ApplyParams) (counter.Applied, error) {
	if err := p.Validate(); err != nil {
		return counter.Applied{}, err
	}
	if err := ctx.Err(); err != nil {
		return counter.Applied{}, err
	}
	now := s.now().UnixNano()
	sh := s.shard(p.CustomerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[p.CustomerID]
	if c != nil && p.Seq <= c.watermark {
		return counter.Applied{Applied: false, Watermark: c.watermark}, nil
	}
	var cur customer
	if c != nil {
		cur = *c
	}
	// Check every sum before changing anything, so an overflow leaves no trace.
	life, ok := counter.AddNanos(cur.lifetime, p.SpendNanos)
	if !ok {
		return counter.Applied{}, overflow(p.CustomerID, "lifetime spend")
	}
	key := keyOf(p.Period)
	expireAt := s.expireAt(p.Period)
	keep := expireAt > now // a period past its retention is not kept (as on Redis)
	var pr *period
	if cur.periods != nil {
		pr = cur.periods[key]
		if pr != nil && pr.expireAt <= now {
			delete(cur.periods, key)
			pr = nil
		}
	}
	var old period
	if pr != nil {
		old = *pr
	}
	spend, ok := counter.AddNanos(old.spend, p.SpendNanos)
	if !ok {
		return counter.Applied{}, overflow(p.CustomerID, "period spend")
	}
	events, ok := counter.AddNanos(old.events, p.Events)
	if !ok {
		return counter.Applied{}, overflow(p.CustomerID, "period events")
	}
	for m, q := range p.Usage {
		if _, ok := counter.AddNanos(old.usage[m], q); !ok {
			return counter.Applied{}, overflow(p.CustomerID, "usage of meter "+m)
		}
	}

	if c == nil {
		c = &customer{}
		sh.customers[p.CustomerID] = c
	}
	c.watermark = p.Seq
	c.lifetime = life
	if keep {
		if pr == nil {
			s.prune(c, now)
			if c.periods == nil {
				c.periods = make(map[periodKey]*period, 2)
			}
			pr = &period{}
			c.periods[key] = pr
		}
		pr.expireAt = expireAt
		pr.spend, pr.events = spend, events
		for m, q := range p.Usage {
			if q == 0 {
				continue
			}
			if pr.usage == nil {
				pr.usage = make(map[string]int64, len(p.Usage))
			}
			v := pr.usage[m] + q // checked above
			if v == 0 {
				delete(pr.usage, m)
			} else {
				pr.usage[m] = v
			}
		}
	}
	return counter.Applied{Applied: true, Watermark: p.Seq}, nil
}

// prune drops the customer's periods past their retention; it runs when a period is created, so
// memory stays bounded by the periods still retained.
func (s *Store) prune(c *customer, now int64) {
	for k, pr := range c.periods {
		if pr.expireAt <= now {
			delete(c.periods, k)
		}
	}
}

func overflow(customerID, what string) error {
	return &overflowError{customerID: customerID, what: what}
}

type overflowError struct{ customerID, what string }

func (e *overflowError) Error() string {
	return "apply to customer " + quote(e.customerID) + ": " + e.what + ": " + counter.ErrOverflow.Error()
}
func (e *overflowError) Unwrap() error { return counter.ErrOverflow }

// Snapshot implements counter.Store.
func (s *Store) Snapshot(ctx context.Context, customerID string, ref counter.PeriodRef) (counter.Snapshot, error) {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return counter.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return counter.Snapshot{}, err
	}
	now := s.now().UnixNano()
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil {
		return counter.Snapshot{}, nil
	}
	snap := counter.Snapshot{Watermark: c.watermark, LifetimeSpendNanos: c.lifetime}
	if pr := c.periods[keyOf(ref)]; pr != nil && pr.expireAt > now {
		snap.Period = counter.PeriodCounters{SpendNanos: pr.spend, Events: pr.events}
		if len(pr.usage) > 0 {
			snap.Period.Usage = maps.Clone(pr.usage)
		}
	}
	return snap, nil
}

// Rebuild implements counter.Store.
func (s *Store) Rebuild(ctx context.Context, p counter.RebuildParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now().UnixNano()
	c := &customer{watermark: p.Watermark, lifetime: p.LifetimeSpendNanos}
	for ref, pc := range p.Periods {
		exp := s.expireAt(ref)
		if exp <= now {
			continue
		}
		if c.periods == nil {
			c.periods = make(map[periodKey]*period, len(p.Periods))
		}
		pr := &period{expireAt: exp, spend: pc.SpendNanos, events: pc.Events}
		for m, q := range pc.Usage {
			if q == 0 {
				continue
			}
			if pr.usage == nil {
				pr.usage = make(map[string]int64, len(pc.Usage))
			}
			pr.usage[m] = q
		}
		c.periods[keyOf(ref)] = pr
	}
	sh := s.shard(p.CustomerID)
	sh.mu.Lock()
	sh.customers[p.CustomerID] = c
	sh.mu.Unlock()
	return nil
}

// Close implements counter.Store; the memory store holds nothing to release.
func (s *Store) Close() error { return nil }

func quote(s string) string { return strconv.Quote(s) }
