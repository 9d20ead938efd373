package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// flat is the fixed amount of a period.
func flat(p *catalog.Pricing) money.Decimal {
	return p.Amount
}
