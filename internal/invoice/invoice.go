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
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
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

// Document is an invoice in the JSON shape shared by `levy simulate --json` and the server's
// invoice preview: exact amounts as decimal strings, rounded amounts with the currency's minor
// digits.
type Document struct {
	CustomerID   string    `json:"customerId"`
	Plan         string    `json:"plan"`
	PlanVersion  int64     `json:"planVersion,omitempty"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
	Currency     string    `json:"currency"`
	Lines        []DocLine `json:"lines"`
	PreciseTotal string    `json:"preciseTotal"`
	Total        string    `json:"total"`
	Cost         string    `json:"cost"`
	Margin       string    `json:"margin"`
	Events       int64     `json:"events"`
}

// DocLine is one invoice line of a Document. Attribution, when set, links to the API calls
// behind the line.
type DocLine struct {
	Charge        string `json:"charge"`
	Group         string `json:"group,omitempty"`
	Type          string `json:"type"`
	Quantity      string `json:"quantity"`
	PreciseAmount string `json:"preciseAmount"`
	Amount        string `json:"amount"`
	Cost          string `json:"cost,omitempty"`
	Attribution   string `json:"attribution,omitempty"`
	// AdjustsPeriod, on an adjustment line, names the closed period whose late events it bills.
	AdjustsPeriod *AdjustedPeriod `json:"adjustsPeriod,omitempty"`
}

// AdjustedPeriod names the period an adjustment line belongs to.
type AdjustedPeriod struct {
	PlanVersion int64     `json:"planVersionId"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// Document renders the figures of one (customer, plan, period). link, when not nil, gives the
// attribution link of an attributable line.
func (f *Figures) Document(customerID, plan string, planVersion int64, p period.Period, link func(l rating.PricedLine) string) Document {
	minor := f.Currency.Minor
	d := Document{
		CustomerID:   customerID,
		Plan:         plan,
		PlanVersion:  planVersion,
		PeriodStart:  p.Start.UTC(),
		PeriodEnd:    p.End.UTC(),
		Currency:     f.Currency.Code,
		Lines:        make([]DocLine, 0, len(f.Lines)),
		PreciseTotal: f.PreciseTotal.String(),
		Total:        f.Total.StringFixed(minor),
		Cost:         f.Cost.String(),
		Margin:       f.Margin().String(),
		Events:       f.Events,
	}
	for _, l := range f.Lines {
		dl := DocLine{
			Charge:        l.Charge,
			Group:         l.Group,
			Type:          string(l.Type),
			Quantity:      l.Quantity.String(),
			PreciseAmount: l.Amount.String(),
			Amount:        l.Rounded.StringFixed(minor),
		}
		if !l.Cost.IsZero() {
			dl.Cost = l.Cost.String()
		}
		if link != nil && l.Attributable {
			dl.Attribution = link(l.PricedLine)
		}
		if a := l.Adjusts; a != nil {
			dl.AdjustsPeriod = &AdjustedPeriod{PlanVersion: a.PlanVersionID, PeriodStart: a.Start.UTC(), PeriodEnd: a.End.UTC()}
		}
		d.Lines = append(d.Lines, dl)
	}
	return d
}
