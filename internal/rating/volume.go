package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// volume prices the whole quantity at the tier containing it (upTo inclusive) plus its flatFee.
func volume(p *catalog.Pricing, q money.Decimal) money.Decimal {
	t := containingTier(p.Tiers, q)
	return q.Mul(t.UnitRate).Add(t.FlatFee)
}

func containingTier(tiers []catalog.Tier, q money.Decimal) *catalog.Tier {
	for i := range tiers {
		if tiers[i].UpTo == nil || !q.GreaterThan(*tiers[i].UpTo) {
			return &tiers[i]
		}
	}
	return &tiers[len(tiers)-1]
}
