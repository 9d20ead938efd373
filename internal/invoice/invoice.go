// Package invoice turns a priced period into invoice figures. It is the one place Levy rounds
// money.
//
// Behaviour at the edges:
//   - Every line's exact amount is rounded half away from zero to the currency's minor unit
//     (money.Round); the invoice total is the sum of the rounded line amounts, so a reader can
//     add the lines up, and PreciseTotal keeps the exact sum.
//   - A minimum-commitment true-up line is the exception: its rounded amount is whatever brings
//     the rounded total to the commitment exactly (never below 0), so a customer with a $500
//     commitment is billed $500.00, not $500.01 from rounding the other lines.
package invoice

import (
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
)

// Line is one invoice line: the exact priced line and its rounded amount.
type Line struct {
	rating.PricedLine
	Rounded money.Decimal
}

// Figures are a period's invoice lines and totals.
type Figures struct {
	Currency     money.Currency
	Lines        []Line
	PreciseTotal money.Decimal
	Total        money.Decimal
	Cost         money.Decimal
	Events       int64
}

// Margin is the precise total less the provider cost.
func (f *Figures) Margin() money.Decimal { return f.PreciseTotal.Sub(f.Cost) }

// Round rounds a priced period into invoice figures.
func Round(p rating.Priced, cur money.Currency) Figures {
	f := Figures{Currency: cur, PreciseTotal: p.Total, Cost: p.Cost, Events: p.Events, Lines: make([]Line, len(p.Lines))}
	total := money.Zero
	commitment := -1
	for i, l := range p.Lines {
		f.Lines[i] = Line{PricedLine: l}
		if l.Type == rating.LineCommitment {
			commitment = i
			continue
		}
		f.Lines[i].Rounded = money.Round(l.Amount, cur)
		total = total.Add(f.Lines[i].Rounded)
	}
	if commitment >= 0 {
		// The plan total equals the commitment exactly; round the commitment itself once and
		// let the true-up take up the other lines' rounding.
		target := money.Round(p.Total, cur)
		r := money.Max(target.Sub(total), money.Zero)
		f.Lines[commitment].Rounded = r
		total = total.Add(r)
	}
	f.Total = total
	return f
}
