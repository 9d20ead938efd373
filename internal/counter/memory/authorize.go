package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
)

// authState is one customer's authorize state: the rate buckets, what open reservations hold,
// the reservations themselves and the breakers. It is created by the first ALLOW or breaker
// trip, never by a denial, and Rebuild keeps it.
type authState struct {
	rpm, tpm limit.TAT
	rtok     int64 // reserved tokens
	rnan     int64 // reserved nanos
	infl     int64 // in flight
	brk      int64 // customer breaker until, Unix ms (0: closed)
	tasks    map[string]int64
	res      map[string]reservation
	corr     map[string]string // correlation ID -> reservation ID
	// exp is a min-heap of (expiresAt, ID), the order Redis's sorted set keeps. Entries of
	// reservations already settled or released stay until their instant passes and a sweep
	// drops them: an entry counts only while res holds its ID with the same expiresAt.
	exp []expEntry
}

type reservation struct {
	corr, task    string
	tokens, nanos int64
	expiresAt     int64 // Unix ms
	window, tpm   int64 // the TPM bucket settlement adjusts
}

type expEntry struct {
	at int64
	id string
}

func (c *customer) authState() *authState {
	if c.auth == nil {
		c.auth = &authState{tasks: map[string]int64{}, res: map[string]reservation{}, corr: map[string]string{}}
	}
	return c.auth
}

// Authorize implements counter.Authorizer.
func (s *Store) Authorize(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	if err := p.Validate(); err != nil {
		return counter.AuthorizeResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return counter.AuthorizeResult{}, err
	}
	wall := s.now()
	now := p.NowMillis(wall)
	sh := s.shard(p.CustomerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[p.CustomerID]
	var a *authState
	if c != nil {
		a = c.auth
	}
	if a != nil {
		if _, open := a.res[p.ReservationID]; open {
			return counter.AuthorizeResult{}, fmt.Errorf("%w: customer %q: reservationId: %q is already open",
				counter.ErrInvalid, p.CustomerID, p.ReservationID)
		}
	}
	var released int
	if a != nil {
		released = a.sweep(now, counter.MaxExpiredPerCall)
	}
	raw, tier, hasWallet := s.readState(c, &p, now, wall.UnixNano())
	req := p.Request(tier, hasWallet)
	d := limit.Decide(counter.DecisionState(raw, req.Limits, now), req, now)
	res := counter.AuthorizeResult{Decision: d, Tier: tier, ExpiredReleased: released}
	if !d.Allowed {
		return res, nil
	}
	if c == nil {
		c = &customer{}
		sh.customers[p.CustomerID] = c
	}
	a = c.authState()
	if req.Limits.RequestsPerWindow > 0 {
		a.rpm = d.State.RPM
	}
	if req.Limits.TokensPerWindow > 0 {
		a.tpm = d.State.TPM
	}
	a.rtok, a.rnan, a.infl = d.State.ReservedTokens, d.State.ReservedNanos, d.State.InFlight
	expiresAt := now + p.TTLMillis()
	a.res[p.ReservationID] = reservation{corr: p.CorrelationID, task: p.TaskID, tokens: p.Estimate.Tokens,
		nanos: p.Estimate.Nanos, expiresAt: expiresAt, window: req.Limits.Window, tpm: req.Limits.TokensPerWindow}
	if p.CorrelationID != "" {
		a.corr[p.CorrelationID] = p.ReservationID
	}
	a.push(expEntry{at: expiresAt, id: p.ReservationID})
	res.ReservationID = p.ReservationID
	return res, nil
}

// readState is the raw state a decision for p reads at now (Unix ms); wallNs is the store's
// clock, which decides a period's retention as everywhere else in this store. The balance (and
// hasWallet) are read only when the tier's row is wallet-limited, as the Redis script does.
func (s *Store) readState(c *customer, p *counter.AuthorizeParams, now, wallNs int64) (st limit.State, tier string, hasWallet bool) {
	if c == nil {
		return st, "", false
	}
	if a := c.auth; a != nil {
		st.RPM, st.TPM = a.rpm, a.tpm
		st.ReservedTokens, st.ReservedNanos, st.InFlight = a.rtok, a.rnan, a.infl
		st.BreakerUntil = a.brk
		if p.TaskID != "" {
			st.TaskBreakerUntil = a.tasks[p.TaskID]
		}
	}
	if pr := c.periods[keyOf(p.Period)]; pr != nil && pr.expireAt > wallNs {
		var used counter.Sum
		for _, m := range p.TokenMeters {
			used.Add(pr.usage[m])
		}
		st.UsedTokens = used.Clamp(-limit.MaxValue, limit.MaxValue)
		st.UsedNanos = pr.spend
	}
	if !p.Row(c.tier).WalletLimited {
		return st, c.tier, false // the balance is only read when the row needs it
	}
	var bal counter.Sum
	for _, g := range c.wallet {
		if g.hasExpiry && now >= g.expiresMs {
			continue
		}
		bal.Add(g.nanos)
	}
	st.Balance = bal.Clamp(-limit.MaxValue, limit.MaxValue)
	return st, c.tier, len(c.wallet) > 0
}

// sweep releases up to n reservations expired at now (expiresAt <= now), oldest first, and
// drops the heap entries of reservations that ended otherwise. It returns how many it released.
func (a *authState) sweep(now int64, n int) int {
	released := 0
	for len(a.exp) > 0 && a.exp[0].at <= now {
		e := a.exp[0]
		if r, ok := a.res[e.id]; ok && r.expiresAt == e.at {
			if released == n {
				break
			}
			a.release(e.id, r)
			released++
		}
		a.pop()
	}
	return released
}

// release ends reservation id as limit.Release does and forgets it.
func (a *authState) release(id string, r reservation) {
	st := limit.Release(limit.State{ReservedTokens: a.rtok, ReservedNanos: a.rnan, InFlight: a.infl},
		limit.Usage{Tokens: r.tokens, Nanos: r.nanos})
	a.rtok, a.rnan, a.infl = st.ReservedTokens, st.ReservedNanos, st.InFlight
	delete(a.res, id)
	if r.corr != "" && a.corr[r.corr] == id {
		delete(a.corr, r.corr)
	}
}

// settle ends the reservation correlationID names, if one is open, as limit.Settle does for a
// store whose usage, spend and wallet the ingest path keeps: Release, then the TPM bucket
// adjusted by the actual tokens minus the estimate. It reports whether one was open.
func (a *authState) settle(correlationID string, tokens, now int64) bool {
	id, ok := a.corr[correlationID]
	if !ok {
		return false
	}
	r, ok := a.res[id]
	if !ok { // cannot happen: release drops the index with the reservation
		delete(a.corr, correlationID)
		return false
	}
	a.release(id, r)
	if r.tpm > 0 {
		delta := min(max(tokens, 0), limit.MaxValue) - min(max(r.tokens, 0), limit.MaxValue)
		a.tpm = limit.GCRAAdjust(a.tpm, now, r.window, r.tpm, delta)
	}
	return true
}

func entryLess(x, y expEntry) bool { return x.at < y.at || (x.at == y.at && x.id < y.id) }

func (a *authState) push(e expEntry) {
	a.exp = append(a.exp, e)
	h := a.exp
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !entryLess(h[i], h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (a *authState) pop() {
	h := a.exp
	n := len(h) - 1
	h[0] = h[n]
	h[n] = expEntry{} // let the ID be collected
	h = h[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && entryLess(h[l], h[small]) {
			small = l
		}
		if r := l + 1; r < n && entryLess(h[r], h[small]) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	a.exp = h
}

// Release implements counter.Authorizer.
func (s *Store) Release(ctx context.Context, customerID, reservationID string) (bool, error) {
	if err := counter.ValidateReservation(customerID, reservationID); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil || c.auth == nil {
		return false, nil
	}
	r, ok := c.auth.res[reservationID]
	if !ok {
		return false, nil
	}
	c.auth.release(reservationID, r)
	return true, nil
}

// Limits implements counter.Authorizer.
func (s *Store) Limits(ctx context.Context, p counter.AuthorizeParams) (counter.LimitsState, error) {
	if err := p.ValidateLimits(); err != nil {
		return counter.LimitsState{}, err
	}
	if err := ctx.Err(); err != nil {
		return counter.LimitsState{}, err
	}
	wall := s.now()
	now := p.NowMillis(wall)
	sh := s.shard(p.CustomerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[p.CustomerID]
	raw, tier, hasWallet := s.readState(c, &p, now, wall.UnixNano())
	req := p.Request(tier, hasWallet)
	ls := counter.LimitsState{Tier: tier, Quotas: counter.LiveQuotas(counter.DecisionState(raw, req.Limits, now), req, now)}
	if c != nil && c.auth != nil && len(c.auth.res) > 0 {
		ls.Reservations = make([]counter.Reservation, 0, len(c.auth.res))
		for id, r := range c.auth.res {
			ls.Reservations = append(ls.Reservations, counter.Reservation{ID: id, CorrelationID: r.corr, TaskID: r.task,
				Estimate: limit.Usage{Tokens: r.tokens, Nanos: r.nanos}, ExpiresAt: counter.ExpiryTime(r.expiresAt)})
		}
		slices.SortFunc(ls.Reservations, func(x, y counter.Reservation) int {
			return cmp.Or(x.ExpiresAt.Compare(y.ExpiresAt), cmp.Compare(x.ID, y.ID))
		})
	}
	return ls, nil
}

// TripBreaker implements counter.Authorizer.
func (s *Store) TripBreaker(ctx context.Context, customerID, scope, key string, until time.Time) error {
	if err := counter.ValidateBreaker(customerID, scope, key, until, true); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ms := counter.BreakerUntilMillis(until)
	now := s.now().UnixMilli()
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil {
		c = &customer{}
		sh.customers[customerID] = c
	}
	a := c.authState()
	if scope == counter.BreakerCustomer {
		a.brk = max(a.brk, ms)
		return nil
	}
	for task, u := range a.tasks { // lazy expiry: closed task breakers go here
		if u <= now {
			delete(a.tasks, task)
		}
	}
	a.tasks[key] = max(a.tasks[key], ms)
	return nil
}

// ResetBreaker implements counter.Authorizer.
func (s *Store) ResetBreaker(ctx context.Context, customerID, scope, key string) (bool, error) {
	if err := counter.ValidateBreaker(customerID, scope, key, time.Time{}, false); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := s.now().UnixMilli()
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil || c.auth == nil {
		return false, nil
	}
	a := c.auth
	if scope == counter.BreakerCustomer {
		open := a.brk > now
		a.brk = 0
		return open, nil
	}
	u, ok := a.tasks[key]
	delete(a.tasks, key)
	return ok && u > now, nil
}

// OpenReservations implements counter.Authorizer.
func (s *Store) OpenReservations(ctx context.Context, customerID string) (int64, error) {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil || c.auth == nil {
		return 0, nil
	}
	return int64(len(c.auth.res)), nil
}
