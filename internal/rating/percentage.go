package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// percentOf returns rate percent of base: base × rate / 100, exact.
func percentOf(p *catalog.Pricing, base money.Decimal) money.Decimal {
	return base.Mul(p.RateFraction)
}

// perTransaction prices one event's property value: value × rate/100 + fixedFee, clamped to the
// per-transaction bounds.
func perTransaction(p *catalog.Pricing, value money.Decimal) money.Decimal {
	a := value.Mul(p.RateFraction).Add(p.FixedFee)
	if p.MinPerTransaction != nil && a.LessThan(*p.MinPerTransaction) {
		a = *p.MinPerTransaction
	}
	if p.MaxPerTransaction != nil && a.GreaterThan(*p.MaxPerTransaction) {
		a = *p.MaxPerTransaction
	}
	return a
}
