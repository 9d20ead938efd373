// Package guard evaluates the catalog's margin-guard rules against rated events: a ceiling on
// the provider cost of one task (an agent run), a ceiling on a task's cost relative to its
// price, and a floor on a customer's period margin once its spend passes a threshold. It is
// pure; the billing writer calls it on every rated event and the authorize path enforces the
// breakers it trips.
//
// Behaviour at the edges:
//   - Comparisons are exact and division-free (catalog.GuardRule.Breached): a cost equal to a
//     ceiling, or a ratio equal to the limit, does not trip.
//   - An event that adds neither cost nor price (both exactly 0) trips nothing: it changes no
//     figure a rule reads, and re-tripping on it would extend a cool-down no spending caused.
//     Any other event re-evaluates every rule, so a task still past its ceiling trips again
//     with its next costly event, extending the cool-down from that event.
//   - Task rules are skipped for events without a task; each trip lasts the rule's cool-down
//     from the event's processing time.
package guard

import (
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// Breaker scopes (the counter store's names).
const (
	ScopeCustomer = "customer"
	ScopeTask     = "task"
)

// Input is what billing knows after rating one event.
type Input struct {
	CustomerID string
	// TaskID is the event's task; "" skips task rules.
	TaskID string
	// EventCost and EventPrice are this event's provider cost and rated amount.
	EventCost, EventPrice money.Decimal
	// TaskCost and TaskPrice are the task's running totals, this event included.
	TaskCost, TaskPrice money.Decimal
	// PeriodSpend and PeriodCost are the customer's figures in the billed period, this event
	// included.
	PeriodSpend, PeriodCost money.Decimal
	// At is when the breaker trips: the cool-down runs from it.
	At time.Time
}

// Trip is one breached rule: the breaker to open and until when.
type Trip struct {
	CustomerID string `json:"customerId"`
	RuleKey    string `json:"rule"`
	// Scope is ScopeTask (Key is the task ID) or ScopeCustomer (Key "").
	Scope string    `json:"scope"`
	Key   string    `json:"key,omitempty"`
	Until time.Time `json:"until"`
}

// BreakerID names the breaker a trip opens: "<customerId>" or "<customerId>/task/<taskId>".
func (t Trip) BreakerID() string { return BreakerID(t.CustomerID, t.Key) }

// BreakerID names a customer's breaker, or one task's when taskID is not empty.
func BreakerID(customerID, taskID string) string {
	if taskID == "" {
		return customerID
	}
	return customerID + "/task/" + taskID
}

// Evaluate returns a Trip for every rule the event breaches, in rule order.
func Evaluate(rules []*catalog.GuardRule, in Input) []Trip {
	if len(rules) == 0 || (in.EventCost.IsZero() && in.EventPrice.IsZero()) {
		return nil
	}
	var trips []Trip
	for _, r := range rules {
		switch r.Scope {
		case catalog.GuardTask:
			if in.TaskID == "" || !r.Breached(in.TaskCost, in.TaskPrice, money.Zero) {
				continue
			}
			trips = append(trips, Trip{CustomerID: in.CustomerID, RuleKey: r.Key, Scope: ScopeTask, Key: in.TaskID, Until: in.At.Add(r.CoolDown)})
		case catalog.GuardCustomer:
			if !r.Breached(in.PeriodCost, money.Zero, in.PeriodSpend) {
				continue
			}
			trips = append(trips, Trip{CustomerID: in.CustomerID, RuleKey: r.Key, Scope: ScopeCustomer, Until: in.At.Add(r.CoolDown)})
		}
	}
	return trips
}
