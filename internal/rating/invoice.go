package rating

import (
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// PricedLine is one line of a period's price: a charge (or one price-table group of it), a cap
// or minimum adjustment, or the plan's commitment true-up. Amount is exact.
type PricedLine struct {
	Charge   string
	Group    string
	Type     LineType
	Quantity money.Decimal
	Amount   money.Decimal
	Cost     money.Decimal
	// Attributable is true when the line's amount is the sum of its events' rated lines of the
	// same (charge, group, type), so attribution to correlation IDs adds up to it exactly.
	Attributable bool
	// Adjusts, on an adjustment line, names the closed period whose late events the line bills.
	Adjusts *AdjustedPeriod
}

// AdjustedPeriod names the period an adjustment line belongs to.
type AdjustedPeriod struct {
	PlanVersionID int64
	Start, End    time.Time
}

// Priced is a period's whole price for one customer on one plan.
type Priced struct {
	Lines []PricedLine
	// Total is the exact sum of line amounts.
	Total money.Decimal
	// Cost is the provider cost of the period's usage; each event's quantity of a meter counts
	// once, however many charges price that meter.
	Cost   money.Decimal
	Events int64
}

// Price computes the period's lines from the state. It gives the same amounts whether the
// events were applied with Rate or with Accumulate.
func (r *Rater) Price(st *State) Priced {
	var out Priced
	out.Events = st.Events
	ids := r.sortedSlots(st)
	byCharge := make([][]int, len(r.plan.Charges))
	for _, id := range ids {
		ci := r.info(id).charge.Index
		byCharge[ci] = append(byCharge[ci], id)
	}
	// effective holds each charge's amount after its maximum, before its minimum: what
	// percentage-of-charges charges apply to.
	effective := make([]money.Decimal, len(r.plan.Charges))
	// periodLevel holds the part of each charge's amount no event paid.
	periodLevel := make([]money.Decimal, len(r.plan.Charges))
	lines := make([][]PricedLine, len(r.plan.Charges))
	for _, ci := range r.plan.Order {
		c := r.plan.Charges[ci]
		var ls []PricedLine
		raw := money.Zero
		switch {
		case c.Model == catalog.Flat:
			ls = append(ls, PricedLine{Charge: c.Key, Type: LineFlat, Quantity: one, Amount: c.Pricing.Amount})
			periodLevel[ci] = c.Pricing.Amount
			raw = c.Pricing.Amount
		case len(c.OfCharges) > 0:
			// The part of the base that events paid is attributable; the amounts of named charges
			// no event reached (a first-tier flat fee at zero usage) are period-level, and so is
			// the percentage of them, on a line of its own.
			base, periodBase := money.Zero, money.Zero
			for _, j := range c.OfCharges {
				base = base.Add(effective[j])
				periodBase = periodBase.Add(periodLevel[j])
			}
			eventBase := base.Sub(periodBase)
			onEvents := percentOf(c.Pricing, eventBase)
			if st.charge[ci].reached || !onEvents.IsZero() {
				ls = append(ls, PricedLine{Charge: c.Key, Type: LineUsage, Quantity: eventBase, Amount: onEvents, Attributable: st.charge[ci].reached})
			}
			raw = onEvents
			if !periodBase.IsZero() {
				onPeriod := percentOf(c.Pricing, periodBase)
				ls = append(ls, PricedLine{Charge: c.Key, Type: LineFlat, Quantity: periodBase, Amount: onPeriod})
				raw = raw.Add(onPeriod)
				periodLevel[ci] = onPeriod
			}
		default:
			for _, id := range byCharge[ci] {
				inf := r.info(id)
				sl := st.slots[id]
				amt := sl.amount
				if c.OfProperty == "" {
					amt = Cumulative(c.Model, inf.pricing, sl.qty.Decimal())
				}
				cost := money.Zero
				for _, cq := range sl.costs {
					cost = cost.Add(costOf(r.cat.Costs[cq.entry], cq.qty))
				}
				ls = append(ls, PricedLine{Charge: c.Key, Group: inf.group, Type: LineUsage, Quantity: sl.qty.Decimal(), Amount: amt, Cost: cost, Attributable: true})
				raw = raw.Add(amt)
			}
			if len(byCharge[ci]) == 0 && c.Pricing != nil && c.OfProperty == "" {
				if amt := Cumulative(c.Model, c.Pricing, money.Zero); !amt.IsZero() {
					ls = append(ls, PricedLine{Charge: c.Key, Type: LineUsage, Quantity: money.Zero, Amount: amt})
					raw = amt
					periodLevel[ci] = amt
				}
			}
		}
		eff := raw
		if c.Maximum != nil && raw.GreaterThan(*c.Maximum) {
			// The cap on what events paid is attributable (the same offsets Rate emits); the
			// rest of the cap falls on the period-level part.
			max := *c.Maximum
			period := periodLevel[ci]
			events := raw.Sub(period)
			if off := money.Min(events, max).Sub(events); !off.IsZero() {
				ls = append(ls, PricedLine{Charge: c.Key, Type: LineMaximum, Amount: off, Attributable: st.charge[ci].reached})
			}
			if off := max.Sub(money.Min(events, max)).Sub(period); !off.IsZero() {
				ls = append(ls, PricedLine{Charge: c.Key, Type: LineMaximum, Amount: off})
				periodLevel[ci] = period.Add(off)
			}
			eff = max
		}
		effective[ci] = eff
		if c.Minimum != nil && eff.LessThan(*c.Minimum) {
			ls = append(ls, PricedLine{Charge: c.Key, Type: LineMinimum, Amount: c.Minimum.Sub(eff)})
		}
		lines[ci] = ls
	}
	total := money.Zero
	for _, ls := range lines {
		for _, l := range ls {
			total = total.Add(l.Amount)
			out.Lines = append(out.Lines, l)
		}
	}
	if mc := r.plan.MinimumCommitment; mc != nil && total.LessThan(*mc) {
		l := PricedLine{Charge: "minimumCommitment", Type: LineCommitment, Amount: mc.Sub(total)}
		out.Lines = append(out.Lines, l)
		total = *mc
	}
	out.Total = total
	cost := money.Zero
	for k, q := range st.costQty {
		if !q.IsZero() {
			cost = cost.Add(costOf(r.cat.Costs[k], q))
		}
	}
	out.Cost = cost
	return out
}
