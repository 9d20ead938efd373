package billing

import (
	"context"
	"errors"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
)

// CustomerPlan is what the authorize path needs to know of a customer, from memory once loaded:
// the plan in force, its catalog, the open period and the customer's limit overrides.
type CustomerPlan struct {
	CustomerID    string
	Catalog       *catalog.Catalog
	Plan          *catalog.Plan
	PlanVersionID int64
	Period        period.Period
	// Overrides is the customer's limits JSON (an object of limit name → value), or nil.
	Overrides []byte
}

// CustomerPlan returns the customer's plan in force at t. Unknown customers and customers with
// no subscription at t are NotFound problems. After the first call for a customer it reads only
// in-memory caches (no SQL), until the customer or the catalog changes.
func (s *Service) CustomerPlan(ctx context.Context, customerID string, t time.Time) (CustomerPlan, error) {
	c, err := s.cachedCustomer(ctx, customerID)
	if err != nil {
		return CustomerPlan{}, err
	}
	if c == nil {
		return CustomerPlan{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	key, ref, p, err := s.periodOf(ctx, c, t)
	if errors.Is(err, errBeforeSubscription) {
		return CustomerPlan{}, problem.New(problem.NotFound, "customer %q has no subscription in force", customerID)
	}
	if err != nil {
		return CustomerPlan{}, err
	}
	return CustomerPlan{CustomerID: customerID, Catalog: ref.cat, Plan: ref.plan, PlanVersionID: key.PlanVersionID, Period: p, Overrides: c.Limits}, nil
}
