package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// CustomerInput creates or updates a customer (PUT /v1/customers/{id}).
type CustomerInput struct {
	// Plan subscribes the customer to the latest version of this plan, unless the customer is
	// already on a version of it (then nothing changes unless PlanVersion says so).
	Plan string `json:"plan,omitempty"`
	// PlanVersion moves the customer to this version of Plan.
	PlanVersion int64 `json:"planVersion,omitempty"`
	// SubscriptionStart is when the new subscription starts (default: the start of the current
	// calendar period of the plan).
	SubscriptionStart *time.Time        `json:"subscriptionStart,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Limits            json.RawMessage   `json:"limits,omitempty"`
	// TierOverride sets a spend tier by hand (it wins over the ladder); "" clears it; absent
	// keeps it.
	TierOverride *string `json:"tierOverride,omitempty"`
	// LowBalanceThreshold is the wallet balance below which a low_balance notice is recorded
	// (a decimal string); null clears it; absent keeps it.
	LowBalanceThreshold json.RawMessage `json:"lowBalanceThreshold,omitempty"`
}

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,256}$`)

// ValidCustomerID reports whether id may name a customer.
func ValidCustomerID(id string) bool { return customerIDPattern.MatchString(id) }

// PutCustomer creates or updates a customer and, when the input names a plan it is not on,
// subscribes it.
func (s *Service) PutCustomer(ctx context.Context, id string, in CustomerInput) (store.Customer, error) {
	if !ValidCustomerID(id) {
		return store.Customer{}, problem.Invalidf("customerId", "must be 1 to 256 letters, digits or _ . : @ -")
	}
	if len(in.Metadata) > 64 {
		return store.Customer{}, problem.Invalidf("metadata", "at most 64 entries")
	}
	if in.Plan == "" && in.PlanVersion != 0 {
		return store.Customer{}, problem.Invalidf("plan", "is required with planVersion")
	}
	if string(in.Limits) == "null" {
		in.Limits = nil
	}
	if len(in.Limits) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in.Limits, &m); err != nil {
			return store.Customer{}, problem.Invalidf("limits", "must be an object of limit overrides")
		}
	}
	p := store.PutCustomerParams{ID: id, Metadata: in.Metadata, Now: s.now().UTC()}
	if len(in.Limits) > 0 {
		p.Limits = in.Limits
	}
	if len(in.LowBalanceThreshold) > 0 {
		th, err := parseOptionalDecimal("lowBalanceThreshold", in.LowBalanceThreshold)
		if err != nil {
			return store.Customer{}, err
		}
		if th != nil && !th.IsPositive() {
			return store.Customer{}, problem.Invalidf("lowBalanceThreshold", "must be positive (or null to clear it)")
		}
		p.SetLowBalance, p.LowBalance = true, th
	}
	if in.TierOverride != nil {
		if *in.TierOverride != "" && !customerIDPattern.MatchString(*in.TierOverride) {
			return store.Customer{}, problem.Invalidf("tierOverride", "must name a tier of the catalog's ladder")
		}
		p.TierOverride = in.TierOverride
	}
	existing, err := s.store.GetCustomer(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Customer{}, err
	}
	if in.Plan != "" {
		pv, err := s.resolvePlanVersion(ctx, in.Plan, in.PlanVersion)
		if err != nil {
			return store.Customer{}, err
		}
		var current *store.Subscription
		if n := len(existing.Subscriptions); n > 0 {
			current = &existing.Subscriptions[n-1]
		}
		move := current == nil || in.PlanVersion != 0 && current.PlanVersionID != pv.ID
		if current != nil && !move {
			cur, err := s.store.GetPlanVersion(ctx, current.PlanVersionID)
			if err != nil {
				return store.Customer{}, err
			}
			move = cur.PlanKey != pv.PlanKey
		}
		if move {
			ref, err := s.plan(ctx, pv.ID)
			if err != nil {
				return store.Customer{}, err
			}
			start := period.Schedule{Unit: ref.plan.Period, Anchor: period.CalendarAnchor}.At(s.now()).Start
			if in.SubscriptionStart != nil {
				start = in.SubscriptionStart.UTC()
				if start.Before(time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)) || start.After(maxStoredTime) {
					return store.Customer{}, problem.Invalidf("subscriptionStart", "must be between 1678 and 2262")
				}
			}
			if current != nil && start.Before(current.Start) {
				return store.Customer{}, problem.Invalidf("subscriptionStart", "must not be before the current subscription's start (%s)", current.Start.Format(time.RFC3339))
			}
			p.Subscribe, p.PlanVersionID, p.Start = true, pv.ID, start
		}
	}
	if in.TierOverride != nil && *in.TierOverride != "" {
		// Check the override against the ladder before anything is stored.
		if existing.ID == "" && !p.Subscribe {
			return store.Customer{}, problem.Invalidf("tierOverride", "needs a customer with a plan")
		}
		pvID := p.PlanVersionID
		if !p.Subscribe {
			pvID = existing.Subscriptions[len(existing.Subscriptions)-1].PlanVersionID
		}
		ref, err := s.plan(ctx, pvID)
		if err != nil {
			return store.Customer{}, err
		}
		if ref.cat.Tiers.Tier(*in.TierOverride) == nil {
			return store.Customer{}, problem.Invalidf("tierOverride", "the catalog's tier ladder has no tier %q", *in.TierOverride)
		}
	}
	overrideChanged := in.TierOverride != nil && *in.TierOverride != existing.TierOverride
	c, err := s.store.PutCustomer(ctx, p)
	if err != nil {
		return c, fmt.Errorf("store customer: %w", err)
	}
	s.custMu.Lock()
	s.customers[id] = &c
	s.custMu.Unlock()
	if p.SetLowBalance {
		err := s.control(ctx, func() {
			s.acctMu.Lock()
			a := s.accounts[id]
			s.acctMu.Unlock()
			if a == nil {
				return // loaded with the threshold when first needed
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if p.LowBalance == nil {
				a.wallet.ClearThreshold()
			} else {
				_ = a.wallet.SetThreshold(*p.LowBalance)
			}
		})
		if err != nil {
			return c, err
		}
	}
	if overrideChanged && len(c.Subscriptions) > 0 {
		if err := s.setOverride(ctx, id, c.TierOverride); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (s *Service) resolvePlanVersion(ctx context.Context, key string, version int64) (store.PlanVersion, error) {
	if version == 0 {
		pv, err := s.store.LatestPlanVersion(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return pv, problem.Invalidf("plan", "unknown plan %q", key)
		}
		return pv, err
	}
	all, err := s.store.ListPlanVersions(ctx)
	if err != nil {
		return store.PlanVersion{}, err
	}
	for _, pv := range all {
		if pv.PlanKey == key && pv.Version == version {
			return pv, nil
		}
	}
	return store.PlanVersion{}, problem.Invalidf("planVersion", "plan %q has no version %d", key, version)
}

// GetCustomer returns a customer.
func (s *Service) GetCustomer(ctx context.Context, id string) (store.Customer, error) {
	c, err := s.store.GetCustomer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, problem.New(problem.NotFound, "no customer %q", id)
	}
	return c, err
}

// ListCustomers pages through customers.
func (s *Service) ListCustomers(ctx context.Context, after string, limit int) ([]store.Customer, error) {
	return s.store.ListCustomers(ctx, after, limit)
}

// cachedCustomer returns a customer from the cache or the store (nil, nil when unknown).
func (s *Service) cachedCustomer(ctx context.Context, id string) (*store.Customer, error) {
	s.custMu.Lock()
	c := s.customers[id]
	s.custMu.Unlock()
	if c != nil {
		return c, nil
	}
	got, err := s.store.GetCustomer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.custMu.Lock()
	s.customers[id] = &got
	s.custMu.Unlock()
	return &got, nil
}

// subscriptionAt returns the subscription in force at t: the latest one started at or before t.
func subscriptionAt(c *store.Customer, t time.Time) *store.Subscription {
	for i := len(c.Subscriptions) - 1; i >= 0; i-- {
		if !c.Subscriptions[i].Start.After(t) {
			return &c.Subscriptions[i]
		}
	}
	return nil
}
