package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// pkg sells whole packages: ceil((q − freeUnits) / packageSize) × packagePrice, never below 0.
func pkg(p *catalog.Pricing, q money.Decimal) money.Decimal {
	billable := q.Sub(p.FreeUnits)
	if !billable.IsPositive() {
		return money.Zero
	}
	n, r := billable.QuoRem(p.PackageSize, 0)
	if !r.IsZero() {
		n = n.Add(one)
	}
	return n.Mul(p.PackagePrice)
}
