package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/tier"
)

// TierStatus is a customer's spend tier as the hot path sees it.
type TierStatus struct {
	CustomerID string `json:"customerId"`
	// Tier is the tier in force: the override when one is set, else the ladder's.
	Tier     string `json:"tier"`
	Name     string `json:"name,omitempty"`
	Override string `json:"override,omitempty"`
	Basis    string `json:"basis"`
	// BasisSpend is the spend the ladder compares with its thresholds now.
	BasisSpend    string `json:"basisSpend"`
	LifetimeSpend string `json:"lifetimeSpend"`
	Discount      string `json:"discount"`
	// Next is the next tier up the ladder and the basis spend that reaches it.
	Next          string            `json:"nextTier,omitempty"`
	NextThreshold string            `json:"nextThreshold,omitempty"`
	Limits        map[string]string `json:"limits"`
}

// ladderOf returns the tier ladder and plan of the customer's subscription in force now.
func (s *Service) ladderOf(ctx context.Context, customerID string) (*catalog.Tiers, *planRef, store.PeriodKey, error) {
	_, key, ref, _, err := s.open(ctx, customerID)
	if err != nil {
		return nil, nil, key, err
	}
	return ref.cat.Tiers, ref, key, nil
}

// Tier returns the customer's current spend tier.
func (s *Service) Tier(ctx context.Context, customerID string) (TierStatus, error) {
	ladder, ref, key, err := s.ladderOf(ctx, customerID)
	if err != nil {
		return TierStatus{}, err
	}
	a, err := s.account(ctx, customerID)
	if err != nil {
		return TierStatus{}, err
	}
	defer a.mu.Unlock()
	st := TierStatus{CustomerID: customerID, Override: a.override, LifetimeSpend: a.lifetime.String(), Discount: "0", Basis: string(catalog.LifetimeSpend)}
	basis := a.lifetime
	if ladder == nil || ladder.Basis == catalog.PeriodSpend {
		st.Basis = string(catalog.PeriodSpend)
		basis = a.billed[key]
	}
	st.BasisSpend = basis.String()
	cur := tier.Current(ladder, a.tier, a.override)
	st.Limits = limitsJSON(tier.EffectiveLimits(ref.plan.Limits, cur))
	if cur == nil {
		return st, nil
	}
	st.Tier, st.Name, st.Discount = cur.Key, cur.Name, cur.Discount.String()
	for _, t := range ladder.Ladder[cur.Index+1:] {
		if !t.Manual {
			st.Next, st.NextThreshold = t.Key, t.Threshold.String()
			break
		}
	}
	return st, nil
}

func limitsJSON(l catalog.Limits) map[string]string {
	out := map[string]string{}
	i := func(k string, v *int64) {
		if v != nil {
			out[k] = fmt.Sprint(*v)
		}
	}
	i("requestsPerMinute", l.RequestsPerMinute)
	i("tokensPerMinute", l.TokensPerMinute)
	i("monthlyTokens", l.MonthlyTokens)
	i("maxConcurrent", l.MaxConcurrent)
	if l.MonthlySpend != nil {
		out["monthlySpend"] = l.MonthlySpend.String()
	}
	return out
}

// TransitionJSON is one recorded tier transition.
type TransitionJSON struct {
	ID               int64      `json:"id"`
	At               time.Time  `json:"at"`
	From             string     `json:"from"`
	To               string     `json:"to"`
	Reason           string     `json:"reason"`
	Basis            string     `json:"basis,omitempty"`
	BasisPeriodStart *time.Time `json:"basisPeriodStart,omitempty"`
	Spend            string     `json:"spend,omitempty"`
	EventSeq         int64      `json:"eventSeq,omitempty"`
	EventID          string     `json:"eventId,omitempty"`
	CorrelationID    string     `json:"correlationId,omitempty"`
}

// TransitionPage is one page of a customer's tier transitions.
type TransitionPage struct {
	Items []TransitionJSON `json:"items"`
	Next  int64            `json:"next,omitempty"`
}

// TierTransitions lists a customer's tier transitions, oldest first.
func (s *Service) TierTransitions(ctx context.Context, customerID string, after int64, limit int) (TransitionPage, error) {
	if c, err := s.cachedCustomer(ctx, customerID); err != nil {
		return TransitionPage{}, err
	} else if c == nil {
		return TransitionPage{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ts, err := s.store.TierTransitions(ctx, customerID, after, limit)
	if err != nil {
		return TransitionPage{}, err
	}
	page := TransitionPage{Items: make([]TransitionJSON, 0, len(ts))}
	for _, t := range ts {
		j := TransitionJSON{ID: t.ID, At: t.At.UTC(), From: t.From, To: t.To, Reason: t.Reason, Basis: t.Basis,
			EventSeq: t.EventSeq, EventID: t.EventID, CorrelationID: t.CorrelationID}
		if !t.BasisPeriodStart.IsZero() {
			b := t.BasisPeriodStart.UTC()
			j.BasisPeriodStart = &b
		}
		if t.Reason != store.ReasonOverride {
			j.Spend = t.Spend.String()
		}
		page.Items = append(page.Items, j)
	}
	if len(ts) == limit {
		page.Next = ts[len(ts)-1].ID
	}
	return page, nil
}

// setOverride applies a change of the customer's tier override: on the writer, so no event is
// rated half before and half after it; the transition is recorded and the counter store's tier
// set at once.
func (s *Service) setOverride(ctx context.Context, customerID, override string) error {
	ladder, _, _, err := s.ladderOf(ctx, customerID)
	if err != nil {
		return err
	}
	if override != "" && ladder.Tier(override) == nil {
		return problem.Invalidf("tierOverride", "the catalog's tier ladder has no tier %q", override)
	}
	basisOf := func(a *account) money.Decimal {
		if ladder != nil && ladder.Basis == catalog.PeriodSpend {
			return a.billed[a.basis]
		}
		return a.lifetime
	}
	basisName := ""
	if ladder != nil {
		basisName = string(ladder.Basis)
	}
	var ferr error
	err = s.control(ctx, func() {
		a, err := s.account(ctx, customerID)
		if err != nil {
			ferr = err
			return
		}
		defer a.mu.Unlock()
		basis := basisOf(a)
		now := s.now().UTC()
		for _, t := range tier.Evaluate(ladder, basis, basis, a.tier, override) {
			if _, err := s.store.InsertTierTransition(ctx, store.TierTransition{CustomerID: customerID, At: now, From: t.From, To: t.To, Reason: string(t.Reason), Basis: basisName, Spend: basis}); err != nil {
				ferr = err
				s.dropAccount(customerID)
				return
			}
			a.tier = t.To
			if m := s.opts.Metrics; m != nil {
				m.Transitions.WithLabelValues(string(t.Reason)).Inc()
			}
		}
		a.override = override
		if s.counters != nil {
			eff := a.tier
			if override != "" {
				eff = override
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := s.counters.SetTier(cctx, customerID, eff); err != nil {
				s.log.Warn("counters: set tier after an override; the reconciler repairs it", "customer", customerID, "err", err)
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// parseOptionalDecimal reads a JSON decimal string, number or null.
func parseOptionalDecimal(field string, raw json.RawMessage) (*money.Decimal, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	b := raw
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, problem.Invalidf(field, "must be a decimal string")
		}
		b = []byte(s)
	}
	d, err := money.ParseBytes(b)
	if err != nil {
		return nil, problem.Invalidf(field, "must be a decimal: %v", err)
	}
	return &d, nil
}
