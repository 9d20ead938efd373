package billing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/levyhq/levy/internal/guard"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/usage"
)

var errBeforeSubscription = errors.New("before the customer's first subscription starts")

// Status is what happened to one event of a request.
type Status string

// Event outcomes.
const (
	Accepted  Status = "accepted"
	Duplicate Status = "duplicate"
)

// EventResult reports one event of an ingest request.
type EventResult struct {
	Index         int      `json:"index"`
	ID            string   `json:"id,omitempty"`
	CorrelationID string   `json:"correlationId,omitempty"`
	Status        Status   `json:"status"`
	Amount        string   `json:"amount,omitempty"`
	Cost          string   `json:"cost,omitempty"`
	Unmetered     []string `json:"unmetered,omitempty"`
}

// IngestResult reports an ingest request.
type IngestResult struct {
	Accepted   int           `json:"accepted"`
	Duplicates int           `json:"duplicates"`
	Events     []EventResult `json:"events"`
}

type ingestRequest struct {
	ctx    context.Context
	events []usage.Event
	keys   []string
	hashes [][]byte
	props  [][]byte // properties as stored, per event
	meas   [][]byte // measurements as stored, per event
	done   chan ingestReply
}

type ingestReply struct {
	res IngestResult
	err error
}

// Ingest validates, rates and durably stores a batch of decoded events, all or nothing. It
// returns once the batch is committed (or rejected). A canceled ctx abandons waiting, not the
// write: a batch already queued is still committed.
func (s *Service) Ingest(ctx context.Context, events []usage.Event) (IngestResult, error) {
	req := &ingestRequest{ctx: ctx, events: events, done: make(chan ingestReply, 1)}
	// Everything that needs no shared state is done here, on the request's goroutine, so the
	// single writer only looks up, rates and commits.
	req.keys = make([]string, len(events))
	req.hashes = make([][]byte, len(events))
	req.props = make([][]byte, len(events))
	req.meas = make([][]byte, len(events))
	for i := range events {
		req.keys[i] = events[i].Key()
		h := sha256.Sum256(events[i].Canonical())
		req.hashes[i] = h[:]
		req.props[i] = events[i].AppendProperties(nil)
		req.meas[i] = events[i].AppendMeasurements(nil)
	}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		return IngestResult{}, ctx.Err()
	case <-s.stopped:
		return IngestResult{}, problem.New(problem.Unavailable, "the server is shutting down")
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		return IngestResult{}, ctx.Err()
	}
}

// gather takes the first request and whatever else is already queued, up to MaxGroup events.
func (s *Service) gather(first *ingestRequest) []*ingestRequest {
	group := []*ingestRequest{first}
	n := len(first.events)
	for n < s.opts.MaxGroup {
		select {
		case r := <-s.queue:
			group = append(group, r)
			n += len(r.events)
		default:
			return group
		}
	}
	return group
}

// pending is one request's work within a group.
type pending struct {
	req     *ingestRequest
	res     IngestResult
	err     error
	records []*store.EventRecord
	counted []applyItem // parallel to records, for the counter applier
	trips   []guard.Trip
}

// inflight is a rated group whose commit is running.
type inflight struct {
	group   []*ingestRequest
	work    []*pending
	touched map[store.PeriodKey]bool
	keys    map[string][]byte // idempotency keys being written, with their content hashes
	done    chan error
}

// step rates a group while prev (if any) commits, then waits for prev and starts this group's
// commit. It returns the group now in flight, or nil when the group was settled synchronously.
func (s *Service) step(group []*ingestRequest, prev *inflight) *inflight {
	ctx := context.Background()
	var prior map[string][]byte
	if prev != nil {
		prior = prev.keys
	}
	work, touched, keys, err := s.rateGroup(ctx, group, prior)
	if prev != nil {
		perr := <-prev.done
		s.finish(prev, perr)
		if perr != nil {
			// This group was rated on states that held prev's events: rate it again.
			s.dropStates(touched)
			s.processGroup(group)
			return nil
		}
	}
	if err != nil {
		s.dropStates(touched)
		s.reply(group, work, err)
		return nil
	}
	in := &inflight{group: group, work: work, touched: touched, keys: keys, done: make(chan error, 1)}
	go func() { in.done <- s.commit(ctx, work) }()
	return in
}

// finish answers a group whose commit returned err. A conflict (another node stored a key
// between lookup and insert) is settled by processing the group again.
func (s *Service) finish(in *inflight, err error) {
	if err != nil {
		s.dropStates(in.touched)
		if errors.Is(err, store.ErrConflict) {
			s.processGroup(in.group)
			return
		}
	}
	s.reply(in.group, in.work, err)
}

func (s *Service) dropStates(touched map[store.PeriodKey]bool) {
	for key := range touched {
		s.dropState(key)
		s.dropAccount(key.CustomerID)
	}
}

// processGroup rates and commits a group synchronously, looking keys up again once after a
// conflict.
func (s *Service) processGroup(group []*ingestRequest) {
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		work, touched, _, err := s.rateGroup(ctx, group, nil)
		if err == nil {
			err = s.commit(ctx, work)
		}
		if err != nil {
			s.dropStates(touched)
		}
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			// Another writer stored one of these keys between lookup and insert: look again.
			continue
		}
		s.reply(group, work, err)
		return
	}
}

// reply answers every request of a group: its own rejection, the commit's or the rating's
// failure, or its result. Requests the rating did not reach (it failed first) get the failure.
func (s *Service) reply(group []*ingestRequest, work []*pending, err error) {
	for i, r := range group {
		var w *pending
		if i < len(work) {
			w = work[i]
		}
		switch {
		case w == nil: // the group failed before this request was reached
			s.count("rejected", len(r.events))
			r.done <- ingestReply{err: problem.New(problem.Unavailable, "the ledger could not be read or written; retry the request")}
		case w.err != nil:
			s.count("rejected", len(w.req.events))
			w.req.done <- ingestReply{err: w.err}
		case err != nil && len(w.records) > 0:
			s.count("rejected", len(w.req.events))
			s.log.Error("ingest commit failed", "err", err, "events", len(w.req.events))
			w.req.done <- ingestReply{err: problem.New(problem.Unavailable, "the ledger could not be written; retry the request")}
		default:
			s.count("accepted", w.res.Accepted)
			s.count("duplicate", w.res.Duplicates)
			w.req.done <- ingestReply{res: w.res}
		}
	}
	if err != nil && s.opts.Metrics != nil {
		s.opts.Metrics.CommitFails.Inc()
	}
	if err == nil && s.applier != nil {
		var recs []applyItem
		var trips []guard.Trip
		for _, w := range work {
			if w != nil && w.err == nil {
				recs = append(recs, w.counted...)
				trips = append(trips, w.trips...)
			}
		}
		if len(recs) > 0 {
			s.applier.handOff(recs)
		}
		if len(trips) > 0 {
			go s.tripBreakers(trips)
		}
	}
}

func (s *Service) count(outcome string, n int) {
	if s.opts.Metrics != nil && n > 0 {
		s.opts.Metrics.Events.WithLabelValues(outcome).Add(float64(n))
	}
}

// rateGroup checks idempotency for the whole group, resolves and rates each request's new
// events, and returns the work with the set of period states it changed.
func (s *Service) rateGroup(ctx context.Context, group []*ingestRequest, prior map[string][]byte) ([]*pending, map[store.PeriodKey]bool, map[string][]byte, error) {
	var keys []string
	for _, r := range group {
		keys = append(keys, r.keys...)
	}
	stored, err := s.store.FindEvents(ctx, keys)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	// The keys of the group still committing count as stored.
	for k, h := range prior {
		if _, ok := stored[k]; !ok {
			stored[k] = store.StoredKey{ContentHash: h}
		}
	}
	inGroup := map[string][]byte{}
	touched := map[store.PeriodKey]bool{}
	work := make([]*pending, len(group))
	for i, r := range group {
		w := &pending{req: r, res: IngestResult{Events: make([]EventResult, len(r.events))}}
		work[i] = w
		if err := r.ctx.Err(); err != nil {
			w.err = err
			continue
		}
		// 1. Idempotency: classify every event before writing any.
		fresh := make([]bool, len(r.events))
		var conflicts []problem.Field
		local := map[string][]byte{}
		for j := range r.events {
			ev := &r.events[j]
			w.res.Events[j] = EventResult{Index: j, ID: ev.ID, CorrelationID: ev.CorrelationID}
			prev, seen := local[r.keys[j]]
			if !seen {
				if sk, ok := stored[r.keys[j]]; ok {
					prev, seen = sk.ContentHash, true
				} else {
					prev, seen = inGroup[r.keys[j]]
				}
			}
			switch {
			case !seen:
				fresh[j] = true
				local[r.keys[j]] = r.hashes[j]
			case bytes.Equal(prev, r.hashes[j]):
				w.res.Events[j].Status = Duplicate
				w.res.Duplicates++
			default:
				field := "id"
				if ev.ID == "" {
					field = "correlationId"
				}
				conflicts = append(conflicts, problem.Field{Index: problem.At(j), Field: field,
					Message: "an event with this idempotency key and different content was already accepted"})
			}
		}
		if len(conflicts) > 0 {
			w.err = &problem.Error{Kind: problem.Conflict, Message: "the batch repeats an idempotency key with different content; nothing was accepted", Fields: conflicts}
			continue
		}
		// 2. Resolve every new event to its subscription and period.
		type target struct {
			key store.PeriodKey
			ref *planRef
			p   period.Period
		}
		targets := make([]target, len(r.events))
		var bad []problem.Field
		for j := range r.events {
			if !fresh[j] {
				continue
			}
			ev := &r.events[j]
			c, err := s.customerFor(ctx, ev)
			if err != nil {
				return work, touched, inGroup, err
			}
			if c == nil {
				bad = append(bad, problem.Field{Index: problem.At(j), Field: "customerId", Message: fmt.Sprintf("unknown customer %q: create it with PUT /v1/customers/{id}", ev.CustomerID)})
				continue
			}
			key, ref, p, err := s.periodOf(ctx, c, ev.Timestamp)
			if errors.Is(err, errBeforeSubscription) {
				bad = append(bad, problem.Field{Index: problem.At(j), Field: "timestamp", Message: fmt.Sprintf("is before customer %q's first subscription starts (%s)", c.ID, c.Subscriptions[0].Start.Format(time.RFC3339))})
				continue
			}
			if err != nil {
				return work, touched, inGroup, err
			}
			targets[j] = target{key, ref, p}
		}
		if len(bad) > 0 {
			w.err = &problem.Error{Kind: problem.Invalid, Message: "the batch has events that cannot be rated; nothing was accepted", Fields: bad}
			continue
		}
		// 3. Rate and record.
		now := s.now().UTC()
		for j := range r.events {
			if !fresh[j] {
				continue
			}
			ev := &r.events[j]
			t := targets[j]
			ps, err := s.state(ctx, t.key, t.ref, t.p)
			if err != nil {
				return work, touched, inGroup, err
			}
			touched[t.key] = true
			res, err := t.ref.rater.Rate(ps.st, ev)
			if err != nil {
				ps.mu.Unlock()
				return work, touched, inGroup, fmt.Errorf("rate event %d: %w", j, err)
			}
			amount := res.Amount()
			// A late event (its period is closed) is billed in the customer's open period as
			// an adjustment; its amounts still come from its own period's running state.
			billed := t.key
			closed, err := s.isClosed(ctx, t.key)
			if err != nil {
				ps.mu.Unlock()
				return work, touched, inGroup, err
			}
			if closed {
				c, err := s.cachedCustomer(ctx, ev.CustomerID)
				if err == nil {
					billed, _, _, err = s.periodOf(ctx, c, now)
				}
				if err != nil {
					ps.mu.Unlock()
					return work, touched, inGroup, fmt.Errorf("open period of %q for a late event: %w", ev.CustomerID, err)
				}
				touched[billed] = true
			}
			acct, err := s.account(ctx, ev.CustomerID)
			if err != nil {
				ps.mu.Unlock()
				return work, touched, inGroup, err
			}
			task, _ := ev.Get(TaskProperty)
			amount, fx := s.applyAccount(acct, t.ref.cat, billed, ev.Timestamp, now, amount, res.Cost, eventRef{ev.ID, ev.CorrelationID, task})
			acct.mu.Unlock()
			if fx.discount != nil {
				ps.addDiscount(fx.discount.Charge, fx.discount.Quantity, fx.discount.Amount)
			}
			ps.spend = ps.spend.Add(amount)
			ps.mu.Unlock()
			rec := &store.EventRecord{
				Key:           r.keys[j],
				ContentHash:   r.hashes[j],
				ID:            ev.ID,
				EventType:     ev.EventType,
				CustomerID:    ev.CustomerID,
				CorrelationID: ev.CorrelationID,
				Timestamp:     ev.Timestamp,
				ReceivedAt:    now,
				Properties:    r.props[j],
				Measurements:  r.meas[j],
				Unmetered:     res.Unmetered,
				PlanVersionID: t.key.PlanVersionID,
				PeriodStart:   t.p.Start,
				PeriodEnd:     t.p.End,
				Amount:        amount,
				Cost:          res.Cost,
			}
			for _, l := range res.Lines {
				rec.Lines = append(rec.Lines, store.RatedLine{Charge: l.Charge, Group: l.Group, Type: string(l.Type), Quantity: l.Quantity, Amount: l.Amount, Cost: l.Cost})
			}
			if fx.discount != nil {
				rec.Lines = append(rec.Lines, *fx.discount)
			}
			if closed {
				rec.BilledPlanVersionID, rec.BilledPeriodStart = billed.PlanVersionID, billed.PeriodStart
				if m := s.opts.Metrics; m != nil {
					m.LateEvents.Inc()
				}
			}
			rec.Burns, rec.Transitions, rec.Notices = fx.burns, fx.transitions, fx.notices
			w.trips = append(w.trips, fx.trips...)
			if m := s.opts.Metrics; m != nil {
				for _, tr := range fx.transitions {
					m.Transitions.WithLabelValues(tr.Reason).Inc()
				}
			}
			w.records = append(w.records, rec)
			if s.applier != nil {
				it := applyItem{rec: rec}
				if u, tk, err := eventUsage(t.ref.cat, ev); err == nil {
					it.usage, it.tokens, it.known = u, tk, true
				}
				w.counted = append(w.counted, it)
			}
			inGroup[r.keys[j]] = r.hashes[j]
			w.res.Events[j].Status = Accepted
			w.res.Events[j].Amount = amount.String()
			if !res.Cost.IsZero() {
				w.res.Events[j].Cost = res.Cost.String()
			}
			w.res.Events[j].Unmetered = res.Unmetered
			w.res.Accepted++
		}
	}
	return work, touched, inGroup, nil
}

// customerFor returns the event's customer, creating it on the default plan when configured.
func (s *Service) customerFor(ctx context.Context, ev *usage.Event) (*store.Customer, error) {
	c, err := s.cachedCustomer(ctx, ev.CustomerID)
	if err != nil || c != nil || s.opts.DefaultPlan == "" {
		return c, err
	}
	if !ValidCustomerID(ev.CustomerID) {
		return nil, nil
	}
	pv, err := s.store.LatestPlanVersion(ctx, s.opts.DefaultPlan)
	if err != nil {
		return nil, fmt.Errorf("default plan %q: %w", s.opts.DefaultPlan, err)
	}
	created, err := s.store.PutCustomer(ctx, store.PutCustomerParams{
		ID: ev.CustomerID, Subscribe: true, PlanVersionID: pv.ID, Start: period.CalendarAnchor, Now: s.now().UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("create customer %q: %w", ev.CustomerID, err)
	}
	s.custMu.Lock()
	s.customers[created.ID] = &created
	s.custMu.Unlock()
	return &created, nil
}

// commit writes every accepted event of the group in one transaction.
func (s *Service) commit(ctx context.Context, work []*pending) error {
	var all []*store.EventRecord
	for _, w := range work {
		if w.err == nil {
			all = append(all, w.records...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	start := time.Now()
	err := s.store.InsertEvents(ctx, all)
	if s.opts.Metrics != nil {
		s.opts.Metrics.CommitTime.Observe(time.Since(start).Seconds())
		s.opts.Metrics.GroupSize.Observe(float64(len(all)))
	}
	return err
}
