package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// perUnit prices q at unitPrice per `per` units.
func perUnit(p *catalog.Pricing, q money.Decimal) money.Decimal {
	return q.Mul(p.UnitRate)
}
