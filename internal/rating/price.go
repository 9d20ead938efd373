package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

var one = money.MustParse("1")

// Cumulative returns the whole-period amount of quantity q under a usage model, before the
// charge's minimum and maximum. For flat it is the amount; percentage models are not functions
// of a quantity and return 0 here (see perTransaction and percentOf).
func Cumulative(m catalog.Model, p *catalog.Pricing, q money.Decimal) money.Decimal {
	switch m {
	case catalog.Flat:
		return flat(p)
	case catalog.PerUnit:
		return perUnit(p, q)
	case catalog.Graduated:
		return graduated(p, q)
	case catalog.Volume:
		return volume(p, q)
	case catalog.Package:
		return pkg(p, q)
	case catalog.IncludedQuota:
		return includedQuota(p, q)
	}
	return money.Zero
}

// Incremental returns the amount one event adds when it moves a charge's quantity from before
// to after: Cumulative(after) − Cumulative(before). It is negative only for volume pricing when
// the quantity crosses into a cheaper tier.
func Incremental(m catalog.Model, p *catalog.Pricing, before, after money.Decimal) money.Decimal {
	return Cumulative(m, p, after).Sub(Cumulative(m, p, before))
}
