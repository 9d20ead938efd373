package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// graduated prices the units inside each tier at that tier's price and adds the flatFee of every
// tier the quantity reaches into (the first tier always).
func graduated(p *catalog.Pricing, q money.Decimal) money.Decimal {
	total := money.Zero
	lower := money.Zero
	for i := range p.Tiers {
		t := &p.Tiers[i]
		if i > 0 && !q.GreaterThan(lower) {
			break // the quantity does not reach into this tier
		}
		upper := q
		if t.UpTo != nil && t.UpTo.LessThan(q) {
			upper = *t.UpTo
		}
		if units := upper.Sub(lower); units.IsPositive() && !t.UnitRate.IsZero() {
			total = total.Add(units.Mul(t.UnitRate))
		}
		if !t.FlatFee.IsZero() {
			total = total.Add(t.FlatFee)
		}
		if t.UpTo == nil {
			break
		}
		lower = *t.UpTo
	}
	return total
}
