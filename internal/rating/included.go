package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// includedQuota gives the first `included` units free and prices the rest per unit.
func includedQuota(p *catalog.Pricing, q money.Decimal) money.Decimal {
	over := q.Sub(p.Included)
	if !over.IsPositive() {
		return money.Zero
	}
	return over.Mul(p.UnitRate)
}
