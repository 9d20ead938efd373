// Package memory is the in-process counter store: the embedded default, rebuilt from the
// durable store at start. Customers are spread over fixed shards, each with its own mutex, so
// concurrent Applies for different customers rarely contend; an Apply to an existing customer
// and period with known meters and grants allocates nothing. A customer's wallet is a map of
// grant ID to balance, expiry (Unix milliseconds, as the Redis driver keeps it) and the granted
// marker; like Redis it never drops a grant by itself, only Rebuild does.
//
// The authorize path (authorize.go) runs under the same shard lock as Apply, so a decision
// reads the period usage, spend, wallet and tier and applies its increments in one step, and a
// settlement happens in the Apply that counts the event. It calls package limit directly
// (Decide, Release, GCRAAdjust): the arithmetic is limit's, bit for bit. A denial writes
// nothing, and creates no customer; an ALLOW to a known customer allocates nothing once its
// maps have grown. Expired reservations are found through a min-heap ordered like the Redis
// driver's sorted set (expiry, then ID), so both drivers release the same ones first; heap
// entries of reservations settled or released earlier are dropped when their instant passes.
// Task breakers are dropped lazily, at the customer's next TripBreaker after their until.
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
	tier      string
	wallet    map[string]*grant
	auth      *authState // nil until the first ALLOW or breaker trip
}

// grant is one wallet entry: present once the grant was granted or burned.
type grant struct {
	nanos     int64
	expiresMs int64 // Unix milliseconds; meaningful when hasExpiry
	hasExpiry bool
	granted   bool
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
	wall := s.now()
	now := wall.UnixNano()
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
	for id, burn := range p.Wallet {
		var bal int64
		if g := cur.wallet[id]; g != nil {
			bal = g.nanos
		}
		if _, ok := counter.AddNanos(bal, -burn); !ok { // burn > MinInt64: validated
			return counter.Applied{}, overflow(p.CustomerID, "balance of grant "+id)
		}
	}

	if c == nil {
		c = &customer{}
		sh.customers[p.CustomerID] = c
	}
	c.watermark = p.Seq
	c.lifetime = life
	if p.Tier != "" {
		c.tier = p.Tier
	}
	for id, burn := range p.Wallet {
		if burn == 0 {
			continue
		}
		g := c.grant(id)
		g.nanos -= burn // checked above
	}
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
	settled := false
	if p.CorrelationID != "" && c.auth != nil {
		at := wall
		if !p.Now.IsZero() {
			at = p.Now
		}
		settled = c.auth.settle(p.CorrelationID, p.Tokens, at.UnixMilli())
	}
	return counter.Applied{Applied: true, Watermark: p.Seq, Settled: settled}, nil
}

// grant returns the customer's wallet entry for id, creating it (balance zero, no expiry, not
// granted) if needed.
func (c *customer) grant(id string) *grant {
	g := c.wallet[id]
	if g == nil {
		if c.wallet == nil {
			c.wallet = make(map[string]*grant, 2)
		}
		g = &grant{}
		c.wallet[id] = g
	}
	return g
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
	return &overflowError{op: "apply to", customerID: customerID, what: what}
}

type overflowError struct{ op, customerID, what string }

func (e *overflowError) Error() string {
	return e.op + " customer " + quote(e.customerID) + ": " + e.what + ": " + counter.ErrOverflow.Error()
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
	snap := counter.Snapshot{Watermark: c.watermark, LifetimeSpendNanos: c.lifetime, Tier: c.tier}
	if len(c.wallet) > 0 {
		snap.Grants = make(map[string]counter.GrantCounter, len(c.wallet))
		for id, g := range c.wallet {
			gc := counter.GrantCounter{Nanos: g.nanos}
			if g.hasExpiry {
				gc.ExpiresAt = counter.ExpiryTime(g.expiresMs)
			}
			snap.Grants[id] = gc
		}
	}
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
	c := &customer{watermark: p.Watermark, lifetime: p.LifetimeSpendNanos, tier: p.Tier}
	for id, gc := range p.Grants {
		g := c.grant(id)
		g.nanos, g.granted = gc.Nanos, true
		g.expiresMs, g.hasExpiry = counter.ExpiryMillis(gc.ExpiresAt)
	}
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
	if old := sh.customers[p.CustomerID]; old != nil {
		c.auth = old.auth // the authorize state is not derived from the ledger
	}
	sh.customers[p.CustomerID] = c
	sh.mu.Unlock()
	return nil
}

// Grant implements counter.Store.
func (s *Store) Grant(ctx context.Context, p counter.GrantParams) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	sh := s.shard(p.CustomerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[p.CustomerID]
	var g *grant
	if c != nil {
		g = c.wallet[p.GrantID]
	}
	if g != nil && g.granted {
		return false, nil
	}
	var bal int64
	if g != nil {
		bal = g.nanos
	}
	sum, ok := counter.AddNanos(bal, p.Nanos)
	if !ok {
		return false, &overflowError{op: "grant to", customerID: p.CustomerID, what: "balance of grant " + p.GrantID}
	}
	if c == nil {
		c = &customer{}
		sh.customers[p.CustomerID] = c
	}
	if g == nil {
		g = c.grant(p.GrantID)
	}
	g.nanos, g.granted = sum, true
	g.expiresMs, g.hasExpiry = counter.ExpiryMillis(p.ExpiresAt)
	return true, nil
}

// SetTier implements counter.Store.
func (s *Store) SetTier(ctx context.Context, customerID, tier string) error {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil {
		if tier == "" {
			return nil
		}
		c = &customer{}
		sh.customers[customerID] = c
	}
	c.tier = tier
	return nil
}

// Close implements counter.Store; the memory store holds nothing to release.
func (s *Store) Close() error { return nil }

func quote(s string) string { return strconv.Quote(s) }
