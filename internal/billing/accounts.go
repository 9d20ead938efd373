package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/guard"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/tier"
	"github.com/levyhq/levy/internal/wallet"
)

// account is a customer's running state across periods: lifetime spend, the spend of each
// billed period (the basis of a periodSpend ladder), the current spend tier and the prepaid
// wallet. The writer changes it while rating; readers lock mu. It is rebuilt from the ledger
// (events with their wallet burns, tier transitions, grants) the first time it is needed and
// after a failed commit.
type account struct {
	mu       sync.Mutex
	lifetime money.Decimal
	// billed is the spend per billed period; basis is the latest billed period seen (the open
	// one on a periodSpend ladder).
	billed map[store.PeriodKey]money.Decimal
	basis  store.PeriodKey
	// cost is the provider cost per billed period; tasks the running cost and price of each
	// task (agent run): both feed the margin guard.
	cost  map[store.PeriodKey]money.Decimal
	tasks map[string]*taskTotals
	// tier is the customer's current tier key ("" before any transition: the base tier).
	tier     string
	override string
	wallet   *wallet.Wallet
}

// taskTotals are one task's running figures.
type taskTotals struct {
	cost, price money.Decimal
	last        time.Time
}

// maxTasks bounds the tasks an account remembers; the least recently seen go first.
const maxTasks = 10_000

// TaskProperty is the event property that names an event's task (an agent run) for the margin
// guard.
const TaskProperty = "taskId"

func (a *account) task(id string, at time.Time) *taskTotals {
	t := a.tasks[id]
	if t == nil {
		if len(a.tasks) >= maxTasks {
			var oldest string
			var when time.Time
			for k, v := range a.tasks {
				if oldest == "" || v.last.Before(when) {
					oldest, when = k, v.last
				}
			}
			delete(a.tasks, oldest)
		}
		t = &taskTotals{cost: money.Zero, price: money.Zero}
		a.tasks[id] = t
	}
	if at.After(t.last) {
		t.last = at
	}
	return t
}

// walletKey is the wallet's name for a billed period.
func walletKey(k store.PeriodKey) string {
	return strconv.FormatInt(k.PlanVersionID, 10) + ":" + strconv.FormatInt(k.PeriodStart.UnixNano(), 10)
}

// billedKey is the period an event record is billed in.
func billedKey(r *store.EventRecord) store.PeriodKey {
	if r.BilledPlanVersionID != 0 {
		return store.PeriodKey{CustomerID: r.CustomerID, PlanVersionID: r.BilledPlanVersionID, PeriodStart: r.BilledPeriodStart.UTC()}
	}
	return store.PeriodKey{CustomerID: r.CustomerID, PlanVersionID: r.PlanVersionID, PeriodStart: r.PeriodStart.UTC()}
}

// account returns the customer's account, loading it from the ledger the first time. The
// returned account is locked; the caller unlocks it.
func (s *Service) account(ctx context.Context, customerID string) (*account, error) {
	s.acctMu.Lock()
	a := s.accounts[customerID]
	s.acctMu.Unlock()
	if a != nil {
		a.mu.Lock()
		return a, nil
	}
	a, err := s.loadAccount(ctx, customerID)
	if err != nil {
		return nil, err
	}
	s.acctMu.Lock()
	if cur := s.accounts[customerID]; cur != nil {
		a = cur
	} else {
		s.accounts[customerID] = a
	}
	s.acctMu.Unlock()
	a.mu.Lock()
	return a, nil
}

// dropAccount forgets a customer's account; the next use reloads it from the ledger.
func (s *Service) dropAccount(customerID string) {
	s.acctMu.Lock()
	delete(s.accounts, customerID)
	s.acctMu.Unlock()
}

func (s *Service) loadAccount(ctx context.Context, customerID string) (*account, error) {
	c, err := s.cachedCustomer(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("no customer %q", customerID)
	}
	a := &account{lifetime: money.Zero, billed: map[store.PeriodKey]money.Decimal{}, cost: map[store.PeriodKey]money.Decimal{},
		tasks: map[string]*taskTotals{}, override: c.TierOverride}
	grants, err := s.store.ListGrants(ctx, customerID)
	if err != nil {
		return nil, fmt.Errorf("grants of %q: %w", customerID, err)
	}
	wg := make([]wallet.Grant, len(grants))
	for i, g := range grants {
		wg[i] = walletGrant(g)
	}
	if a.wallet, err = wallet.New(wg); err != nil {
		return nil, fmt.Errorf("wallet of %q: %w", customerID, err)
	}
	if c.LowBalance != nil {
		if err := a.wallet.SetThreshold(*c.LowBalance); err != nil {
			return nil, err
		}
	}
	burned := map[string]money.Decimal{}
	periods := map[store.PeriodKey]*wallet.PeriodState{}
	err = s.store.ScanEvents(ctx, store.ScanParams{CustomerID: customerID}, func(r *store.EventRecord) error {
		a.lifetime = a.lifetime.Add(r.Amount)
		k := billedKey(r)
		a.billed[k] = a.billed[k].Add(r.Amount)
		a.cost[k] = a.cost[k].Add(r.Cost)
		if id := taskOf(r.Properties); id != "" {
			t := a.task(id, r.ReceivedAt)
			t.cost, t.price = t.cost.Add(r.Cost), t.price.Add(r.Amount)
		}
		if k.PeriodStart.After(a.basis.PeriodStart) || a.basis.CustomerID == "" {
			a.basis = k
		}
		ps := periods[k]
		if ps == nil {
			ps = &wallet.PeriodState{Key: walletKey(k), Spend: money.Zero, Uncovered: money.Zero}
			periods[k] = ps
		}
		// The wallet saw only the events rated while it held a grant, and each of those left
		// burn rows whose sum is the change of max(0, its period spend): so the period's spend
		// as the wallet knows it is what was burned plus what was left uncovered.
		for _, b := range r.Burns {
			ps.Spend = ps.Spend.Add(b.Amount)
			if b.GrantID == "" {
				ps.Uncovered = ps.Uncovered.Add(b.Amount)
				continue
			}
			burned[b.GrantID] = burned[b.GrantID].Add(b.Amount)
			ps.Burns = append(ps.Burns, wallet.Burn{GrantID: b.GrantID, Amount: b.Amount})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay account of %q: %w", customerID, err)
	}
	for id, b := range burned {
		if err := a.wallet.Restore(id, b); err != nil {
			return nil, fmt.Errorf("wallet of %q: %w", customerID, err)
		}
	}
	for _, ps := range periods {
		if err := a.wallet.RestorePeriod(*ps); err != nil {
			return nil, fmt.Errorf("wallet of %q: period %s: %w", customerID, ps.Key, err)
		}
	}
	if a.tier, err = s.lastTier(ctx, customerID); err != nil {
		return nil, err
	}
	return a, nil
}

// lastTier is the To of the customer's latest tier transition ("" when there is none).
func (s *Service) lastTier(ctx context.Context, customerID string) (string, error) {
	last := ""
	var after int64
	for {
		ts, err := s.store.TierTransitions(ctx, customerID, after, 500)
		if err != nil {
			return "", fmt.Errorf("tier transitions of %q: %w", customerID, err)
		}
		if len(ts) > 0 {
			last = ts[len(ts)-1].To
			after = ts[len(ts)-1].ID
		}
		if len(ts) < 500 {
			return last, nil
		}
	}
}

// storedTier is the customer's tier as the ledger records it: the override when set, else the
// latest transition's tier.
func (s *Service) storedTier(ctx context.Context, customerID string) (string, error) {
	c, err := s.store.GetCustomer(ctx, customerID)
	if err != nil {
		return "", err
	}
	t, err := s.lastTier(ctx, customerID)
	if err != nil {
		return "", err
	}
	if c.TierOverride != "" {
		return c.TierOverride, nil
	}
	return t, nil
}

// loadedTier is the tier of a customer whose account is loaded.
func (s *Service) loadedTier(customerID string) (string, bool) {
	s.acctMu.Lock()
	a := s.accounts[customerID]
	s.acctMu.Unlock()
	if a == nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.override != "" {
		return a.override, true
	}
	return a.tier, true
}

func walletGrant(g store.Grant) wallet.Grant {
	return wallet.Grant{ID: g.ID, Amount: g.Amount, Priority: g.Priority, ExpiresAt: g.ExpiresAt, CreatedAt: g.CreatedAt, Kind: wallet.GrantKind(g.Kind)}
}

// accountEffects is what an account adds to one rated event: the tier discount line, the
// transitions, the wallet burns and the notices.
type accountEffects struct {
	discount    *store.RatedLine
	transitions []store.TierTransition
	burns       []store.WalletBurn
	notices     []store.Notice
	trips       []guard.Trip
}

// applyAccount runs one event's amount through the customer's account: a new basis period
// first resets a periodSpend ladder, then the current tier's discount applies to the amount,
// then the basis spend moves (promoting through every threshold crossed), and last the
// discounted amount burns the wallet. It returns the discounted amount and the effects. The
// caller holds a locked.
func (s *Service) applyAccount(a *account, cat *catalog.Catalog, billed store.PeriodKey, at, now time.Time, amount, cost money.Decimal, ev eventRef) (money.Decimal, accountEffects) {
	ladder := cat.Tiers
	var fx accountEffects
	record := func(ts []tier.Transition, basis string, basisStart time.Time, spend money.Decimal) {
		for _, t := range ts {
			fx.transitions = append(fx.transitions, store.TierTransition{
				CustomerID: billed.CustomerID, At: now, From: t.From, To: t.To, Reason: string(t.Reason),
				Basis: basis, BasisPeriodStart: basisStart, Spend: spend,
				EventID: ev.id, CorrelationID: ev.correlationID,
			})
			a.tier = t.To
		}
	}
	periodBasis := ladder != nil && ladder.Basis == catalog.PeriodSpend
	if a.basis.CustomerID == "" || billed.PeriodStart.After(a.basis.PeriodStart) {
		if periodBasis && a.basis.CustomerID != "" {
			record(tier.Reset(ladder, a.tier, a.override), string(ladder.Basis), billed.PeriodStart, a.billed[billed])
		}
		a.basis = billed
	}
	if st := tier.Current(ladder, a.tier, a.override); st != nil && !amount.IsZero() {
		if d := tier.Discount(st, amount); !d.IsZero() {
			fx.discount = &store.RatedLine{Charge: "tier:" + st.Key, Type: "discount", Quantity: amount, Amount: d, Cost: money.Zero}
			amount = amount.Add(d)
		}
	}
	before, after := a.lifetime, a.lifetime.Add(amount)
	a.lifetime = after
	bBefore := a.billed[billed]
	a.billed[billed] = bBefore.Add(amount)
	if ladder != nil {
		switch {
		case !periodBasis:
			record(tier.Evaluate(ladder, before, after, a.tier, a.override), string(ladder.Basis), time.Time{}, after)
		case billed == a.basis:
			record(tier.Evaluate(ladder, bBefore, a.billed[billed], a.tier, a.override), string(ladder.Basis), billed.PeriodStart, a.billed[billed])
		}
	}
	// A customer without any grant has no wallet to burn: nothing is recorded (its usage is
	// billed on the invoice), so events of wallet-less customers carry no burn rows. The wallet
	// counts usage from its first grant on.
	var res wallet.Result
	if !a.wallet.Empty() {
		res = a.wallet.Apply(walletKey(billed), at, amount)
	}
	for _, b := range res.Burns {
		fx.burns = append(fx.burns, store.WalletBurn{CustomerID: billed.CustomerID, GrantID: b.GrantID, At: at, PlanVersionID: billed.PlanVersionID, PeriodStart: billed.PeriodStart, Amount: b.Amount})
	}
	if !a.wallet.Empty() && !res.UncoveredDelta.IsZero() {
		fx.burns = append(fx.burns, store.WalletBurn{CustomerID: billed.CustomerID, At: at, PlanVersionID: billed.PlanVersionID, PeriodStart: billed.PeriodStart, Amount: res.UncoveredDelta})
	}
	a.cost[billed] = a.cost[billed].Add(cost)
	in := guard.Input{CustomerID: billed.CustomerID, TaskID: ev.task, EventCost: cost, EventPrice: amount,
		PeriodSpend: a.billed[billed], PeriodCost: a.cost[billed], At: now}
	if ev.task != "" {
		t := a.task(ev.task, now)
		t.cost, t.price = t.cost.Add(cost), t.price.Add(amount)
		in.TaskCost, in.TaskPrice = t.cost, t.price
	}
	for _, tr := range guard.Evaluate(cat.MarginGuard, in) {
		fx.trips = append(fx.trips, tr)
		data, _ := json.Marshal(map[string]any{"rule": tr.RuleKey, "scope": tr.Scope, "key": tr.Key, "breakerId": tr.BreakerID(),
			"until": tr.Until, "eventId": ev.id, "correlationId": ev.correlationID,
			"taskCost": in.TaskCost.String(), "taskPrice": in.TaskPrice.String(), "periodSpend": in.PeriodSpend.String(), "periodCost": in.PeriodCost.String()})
		fx.notices = append(fx.notices, store.Notice{CustomerID: billed.CustomerID, Kind: NoticeBreakerTrip, At: now, Data: data})
	}
	if res.LowBalanceCrossed {
		th, _ := a.wallet.Threshold()
		data, _ := json.Marshal(map[string]string{"balance": res.BalanceAfter.String(), "threshold": th.String(), "eventId": ev.id, "correlationId": ev.correlationID})
		fx.notices = append(fx.notices, store.Notice{CustomerID: billed.CustomerID, Kind: store.NoticeLowBalance, At: now, Data: data})
	}
	return amount, fx
}

// eventRef names the event an account effect records.
type eventRef struct {
	id, correlationID, task string
}

// NoticeBreakerTrip is the notice kind of a margin-guard trip, recorded with its event.
const NoticeBreakerTrip = "breaker_trip"

// taskOf reads the task property of stored event properties ("" when absent or unreadable).
func taskOf(props []byte) string {
	if len(props) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(props, &m) != nil {
		return ""
	}
	if v, ok := m[TaskProperty].(string); ok {
		return v
	}
	return ""
}
