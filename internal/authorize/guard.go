package authorize

import (
	"context"
	"strings"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/guard"
	"github.com/levyhq/levy/internal/problem"
)

// Trip is one margin-guard trip: the breaker to open and until when. Package guard evaluates
// the rules and the billing writer opens the breakers (counter.Authorizer.TripBreaker, which
// never shortens an open breaker); this service enforces them.
type Trip = guard.Trip

// taskSep separates a customer ID from a task ID in a breaker ID. Customer IDs never hold a
// "/", so the first occurrence is the separator.
const taskSep = "/task/"

// BreakerID names a breaker: the customer ID for the customer's breaker, and
// "<customerId>/task/<taskId>" for one task's.
func BreakerID(customerID, taskID string) string { return guard.BreakerID(customerID, taskID) }

// ParseBreakerID reads a breaker ID (see BreakerID) into the customer and the counter store's
// scope and key. Errors are Invalid problems naming "breakerId".
func ParseBreakerID(id string) (customerID, scope, key string, err error) {
	customerID, task, isTask := strings.Cut(id, taskSep)
	if !validCustomerID(customerID) {
		return "", "", "", problem.Invalidf("breakerId", "must be <customerId> or <customerId>/task/<taskId>, with a customer ID of 1 to 256 letters, digits or _ . : @ -")
	}
	if !isTask {
		return customerID, counter.BreakerCustomer, "", nil
	}
	if !validText(task, false) {
		return "", "", "", problem.Invalidf("breakerId", "the task ID after /task/ must be 1 to 256 characters, no control characters")
	}
	return customerID, counter.BreakerTask, task, nil
}

// ResetBreaker closes a breaker, named as BreakerID names it. It reports false when the
// breaker was not open. Errors: Invalid for a malformed ID, Unavailable when the counter
// store cannot be reached.
func (s *Service) ResetBreaker(ctx context.Context, breakerID string) (bool, error) {
	customerID, scope, key, err := ParseBreakerID(breakerID)
	if err != nil {
		return false, err
	}
	ok, err := s.counters.ResetBreaker(ctx, customerID, scope, key)
	if err != nil {
		return false, storeError("reset breaker "+breakerID, err)
	}
	return ok, nil
}
