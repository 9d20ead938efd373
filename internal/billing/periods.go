package billing

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/usage"
)

// periodState is the running rating state of one (customer, plan version, period).
type periodState struct {
	mu     sync.Mutex
	ready  bool
	ref    *planRef
	period period.Period
	st     *rating.State
	// spend is the sum of the period's rated event amounts (after tier discounts).
	spend money.Decimal
	// discounts sums the tier discount lines of the period's events by charge ("tier:<key>").
	discounts map[string]*discountSum
}

// discountSum is one tier's discount over a period: the amounts it applied to and the discount.
type discountSum struct {
	base, amount money.Decimal
}

func (ps *periodState) addDiscount(charge string, base, amount money.Decimal) {
	if ps.discounts == nil {
		ps.discounts = map[string]*discountSum{}
	}
	d := ps.discounts[charge]
	if d == nil {
		d = &discountSum{base: money.Zero, amount: money.Zero}
		ps.discounts[charge] = d
	}
	d.base = d.base.Add(base)
	d.amount = d.amount.Add(amount)
}

// state returns the period's state, replaying the ledger the first time it is needed. The
// returned state is locked; the caller unlocks it.
func (s *Service) state(ctx context.Context, key store.PeriodKey, ref *planRef, p period.Period) (*periodState, error) {
	s.perMu.Lock()
	ps := s.periods[key]
	if ps == nil {
		ps = &periodState{ref: ref, period: p}
		s.periods[key] = ps
	}
	s.perMu.Unlock()
	ps.mu.Lock()
	if ps.ready {
		return ps, nil
	}
	ps.st = ref.rater.NewState()
	ps.spend = money.Zero
	ps.discounts = nil
	var ev usage.Event
	err := s.store.ReplayPeriod(ctx, key, func(r *store.EventRecord) error {
		if err := recordToEvent(r, &ev); err != nil {
			return err
		}
		if _, err := ref.rater.Rate(ps.st, &ev); err != nil {
			return err
		}
		ps.spend = ps.spend.Add(r.Amount)
		for _, l := range r.Lines {
			if l.Type == string(rating.LineDiscount) {
				ps.addDiscount(l.Charge, l.Quantity, l.Amount)
			}
		}
		return nil
	})
	if err != nil {
		ps.mu.Unlock()
		s.dropState(key)
		return nil, fmt.Errorf("replay %s/%d/%s: %w", key.CustomerID, key.PlanVersionID, key.PeriodStart.Format(time.RFC3339), err)
	}
	ps.ready = true
	return ps, nil
}

// dropState forgets a period's in-memory state; the next use replays it from the ledger.
func (s *Service) dropState(key store.PeriodKey) {
	s.perMu.Lock()
	delete(s.periods, key)
	s.perMu.Unlock()
}

func recordToEvent(r *store.EventRecord, ev *usage.Event) error {
	ev.ID, ev.EventType, ev.CustomerID, ev.CorrelationID = r.ID, r.EventType, r.CustomerID, r.CorrelationID
	ev.Timestamp, ev.TimestampGiven = r.Timestamp, true
	return usage.DecodeParts(r.Properties, r.Measurements, ev)
}

// periodOf resolves where an event is rated: its customer's subscription at the event's time,
// that subscription's plan version and the period containing the time.
func (s *Service) periodOf(ctx context.Context, c *store.Customer, t time.Time) (store.PeriodKey, *planRef, period.Period, error) {
	sub := subscriptionAt(c, t)
	if sub == nil {
		return store.PeriodKey{}, nil, period.Period{}, errBeforeSubscription
	}
	ref, err := s.plan(ctx, sub.PlanVersionID)
	if err != nil {
		return store.PeriodKey{}, nil, period.Period{}, err
	}
	p := period.Schedule{Unit: ref.plan.Period, Anchor: sub.Start}.At(t)
	return store.PeriodKey{CustomerID: c.ID, PlanVersionID: sub.PlanVersionID, PeriodStart: p.Start}, ref, p, nil
}
