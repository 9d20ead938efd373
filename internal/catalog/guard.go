package catalog

import (
	"fmt"
	"time"

	"github.com/levyhq/levy/internal/money"
)

// GuardScope is what a margin-guard rule watches.
type GuardScope string

// The guard scopes.
const (
	// GuardTask watches one task (the authorize request's taskId): its provider cost and price.
	GuardTask GuardScope = "task"
	// GuardCustomer watches a customer's spend and cost in the current period.
	GuardCustomer GuardScope = "customer"
)

// DefaultCoolDown is how long a tripped breaker denies when a rule gives no coolDown.
const DefaultCoolDown = 15 * time.Minute

// GuardRule is one compiled margin-guard rule: a breaker the authorize path trips when cost
// outruns price, denying further calls of the task or customer for CoolDown.
type GuardRule struct {
	Index int
	Key   string
	Scope GuardScope
	// MaxCost (task) trips when the task's provider cost exceeds it; nil for none.
	MaxCost *money.Decimal
	// MaxCostToPrice (task) trips when the task's cost / price exceeds it, once the cost has
	// reached MinCost (0 when not given); nil for none.
	MaxCostToPrice *money.Decimal
	MinCost        money.Decimal
	// MinMargin (customer) is a percent: the rule trips when the customer's margin
	// (spend − cost) / spend × 100 falls below it, once spend has reached AfterSpend.
	MinMargin  money.Decimal
	AfterSpend money.Decimal
	CoolDown   time.Duration
}

// Breached reports whether the figures trip the rule. cost is the provider cost and price the
// rated amount of the task (task rules); spend and cost are the customer's period figures
// (customer rules, which ignore price; task rules ignore spend). All comparisons are exact and
// division-free:
//
//   - task, maxCost: cost > MaxCost (equal does not trip);
//   - task, maxCostToPrice, once cost ≥ MinCost: with price > 0, cost / price > MaxCostToPrice;
//     with price ≤ 0, any positive cost trips (nothing pays for it). Zero cost never trips the
//     ratio;
//   - customer: spend ≥ AfterSpend and (spend − cost) / spend × 100 < MinMargin. At spend 0
//     (afterSpend 0) the margin counts as below any minimum as soon as cost > 0.
func (r *GuardRule) Breached(cost, price, spend money.Decimal) bool {
	switch r.Scope {
	case GuardTask:
		if r.MaxCost != nil && cost.GreaterThan(*r.MaxCost) {
			return true
		}
		if r.MaxCostToPrice == nil || !cost.IsPositive() || cost.LessThan(r.MinCost) {
			return false
		}
		if !price.IsPositive() {
			return true
		}
		return cost.GreaterThan(r.MaxCostToPrice.Mul(price))
	case GuardCustomer:
		if spend.LessThan(r.AfterSpend) {
			return false
		}
		if !spend.IsPositive() {
			return cost.IsPositive()
		}
		// (spend − cost) / spend × 100 < minMargin, multiplied out by spend > 0.
		return spend.Sub(cost).Mul(hundred).LessThan(r.MinMargin.Mul(spend))
	}
	return false
}

func (b *builder) buildGuard(c *Catalog, rules []GuardRuleDoc) {
	seen := map[string]int{}
	for i := range rules {
		rd := &rules[i]
		path := fmt.Sprintf("marginGuard[%d]", i)
		r := &GuardRule{Index: i, Key: rd.Key, Scope: GuardScope(rd.Scope), CoolDown: DefaultCoolDown}
		if !keyPattern.MatchString(rd.Key) {
			b.addf(path+".key", "must be a name of letters, digits, _ . : - starting with a letter or _ (got %q)", rd.Key)
		} else if j, dup := seen[rd.Key]; dup {
			b.addf(path+".key", "duplicate guard rule key %q (also marginGuard[%d])", rd.Key, j)
		} else {
			seen[rd.Key] = i
		}
		only := func(field string, d *Dec, scope GuardScope) {
			if d != nil {
				b.addf(path+"."+field, "applies to %s rules only", scope)
			}
		}
		positive := func(field string, d *Dec) *money.Decimal {
			v, ok := b.dec(path+"."+field, d, true)
			if !ok {
				return nil
			}
			if !v.IsPositive() {
				b.addf(path+"."+field, "must be greater than 0 (got %s)", d.Text)
				return nil
			}
			return &v
		}
		switch r.Scope {
		case GuardTask:
			only("minMargin", rd.MinMargin, GuardCustomer)
			only("afterSpend", rd.AfterSpend, GuardCustomer)
			if rd.MaxCost == nil && rd.MaxCostToPrice == nil {
				b.addf(path, "a task rule needs maxCost, maxCostToPrice or both")
			}
			r.MaxCost = positive("maxCost", rd.MaxCost)
			r.MaxCostToPrice = positive("maxCostToPrice", rd.MaxCostToPrice)
			if rd.MinCost != nil && rd.MaxCostToPrice == nil {
				b.addf(path+".minCost", "applies to a ratio rule (with maxCostToPrice) only")
			} else if v, ok := b.dec(path+".minCost", rd.MinCost, false); ok {
				r.MinCost = v
			}
		case GuardCustomer:
			only("maxCost", rd.MaxCost, GuardTask)
			only("maxCostToPrice", rd.MaxCostToPrice, GuardTask)
			only("minCost", rd.MinCost, GuardTask)
			if rd.MinMargin == nil {
				b.addf(path+".minMargin", "is required for a customer rule (the lowest margin allowed, in percent)")
			} else if v, ok := b.dec(path+".minMargin", rd.MinMargin, false); ok {
				if v.GreaterThanOrEqual(hundred) {
					b.addf(path+".minMargin", "must be below 100 (a margin in percent; got %s)", rd.MinMargin.Text)
				}
				r.MinMargin = v
			}
			if rd.AfterSpend == nil {
				b.addf(path+".afterSpend", "is required for a customer rule (the period spend from which the margin is checked)")
			} else if v, ok := b.dec(path+".afterSpend", rd.AfterSpend, false); ok {
				r.AfterSpend = v
			}
		case "":
			b.addf(path+".scope", "is required: task or customer")
		default:
			b.addf(path+".scope", "must be task or customer (got %q)", rd.Scope)
		}
		if rd.CoolDown != "" {
			d, err := time.ParseDuration(rd.CoolDown)
			switch {
			case err != nil:
				b.addf(path+".coolDown", "must be a duration such as 90s, 10m or 1h30m (got %q)", rd.CoolDown)
			case d <= 0:
				b.addf(path+".coolDown", "must be greater than 0 (got %q)", rd.CoolDown)
			default:
				r.CoolDown = d
			}
		}
		c.MarginGuard = append(c.MarginGuard, r)
	}
}
