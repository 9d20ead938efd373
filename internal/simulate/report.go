package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/levyhq/levy/internal/invoice"
	"github.com/levyhq/levy/internal/money"
)

// JSON shapes of `levy simulate --json` (DESIGN.md's simulator contract, extended).

// JSONReport is the document `levy simulate --json` prints.
type JSONReport struct {
	Invoices   []JSONInvoice   `json:"invoices"`
	Comparison *JSONComparison `json:"comparison,omitempty"`
	Summary    JSONSummary     `json:"summary"`
}

// JSONInvoice is one invoice.
type JSONInvoice = invoice.Document

// JSONComparison compares plans per customer and in total.
type JSONComparison struct {
	Baseline  string                 `json:"baseline"`
	Customers []JSONCustomerCompare  `json:"customers"`
	Totals    map[string]JSONFigures `json:"totals"`
}

// JSONCustomerCompare is one customer's figures on each plan.
type JSONCustomerCompare struct {
	CustomerID string                 `json:"customerId"`
	Plans      map[string]JSONFigures `json:"plans"`
}

// JSONFigures are revenue, cost and margin on one plan, and the revenue difference to the
// baseline (the first plan).
type JSONFigures struct {
	Revenue    string `json:"revenue"`
	Cost       string `json:"cost"`
	Margin     string `json:"margin"`
	Difference string `json:"difference"`
}

// JSONSummary counts what was read.
type JSONSummary struct {
	Events     int64            `json:"events"`
	Duplicates int64            `json:"duplicates"`
	Unmetered  map[string]int64 `json:"unmeteredMeasurements"`
	Unpriced   map[string]int64 `json:"unpricedEvents"`
}

// figures sums revenue (rounded totals), cost and margin.
type figures struct{ revenue, cost money.Decimal }

func (f figures) json(base money.Decimal, cur money.Currency) JSONFigures {
	return JSONFigures{
		Revenue:    f.revenue.StringFixed(cur.Minor),
		Cost:       f.cost.String(),
		Margin:     f.revenue.Sub(f.cost).String(),
		Difference: f.revenue.Sub(base).StringFixed(cur.Minor),
	}
}

type comparison struct {
	customers []string
	byCust    map[string]map[string]figures
	totals    map[string]figures
}

func (r *Result) compare() comparison {
	c := comparison{byCust: map[string]map[string]figures{}, totals: map[string]figures{}}
	for _, iv := range r.Invoices {
		m := c.byCust[iv.CustomerID]
		if m == nil {
			m = map[string]figures{}
			c.byCust[iv.CustomerID] = m
			c.customers = append(c.customers, iv.CustomerID)
		}
		f := m[iv.Plan]
		f.revenue = f.revenue.Add(iv.Total)
		f.cost = f.cost.Add(iv.Cost)
		m[iv.Plan] = f
		t := c.totals[iv.Plan]
		t.revenue = t.revenue.Add(iv.Total)
		t.cost = t.cost.Add(iv.Cost)
		c.totals[iv.Plan] = t
	}
	sort.Strings(c.customers)
	return c
}

// JSON builds the --json document.
func (r *Result) JSON() JSONReport {
	cur := r.Currency
	out := JSONReport{Invoices: []JSONInvoice{}, Summary: JSONSummary{
		Events: r.Events, Duplicates: r.Duplicates, Unmetered: r.Unmetered, Unpriced: r.Unpriced,
	}}
	for _, iv := range r.Invoices {
		out.Invoices = append(out.Invoices, iv.Document(iv.CustomerID, iv.Plan, 0, iv.Period, nil))
	}
	if len(r.Plans) > 1 {
		c := r.compare()
		base := r.Plans[0]
		jc := &JSONComparison{Baseline: base, Totals: map[string]JSONFigures{}}
		for _, id := range c.customers {
			cc := JSONCustomerCompare{CustomerID: id, Plans: map[string]JSONFigures{}}
			for _, p := range r.Plans {
				cc.Plans[p] = c.byCust[id][p].json(c.byCust[id][base].revenue, cur)
			}
			jc.Customers = append(jc.Customers, cc)
		}
		for _, p := range r.Plans {
			jc.Totals[p] = c.totals[p].json(c.totals[base].revenue, cur)
		}
		out.Comparison = jc
	}
	return out
}

// WriteJSON prints the --json document.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.JSON())
}

// WriteTable prints the result for people: every invoice with its lines when one plan is priced,
// and a side-by-side comparison of revenue, cost and margin per customer when several are.
func (r *Result) WriteTable(w io.Writer) error {
	cur := r.Currency
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	if len(r.Plans) == 1 {
		for _, iv := range r.Invoices {
			fmt.Fprintf(w, "%s on %s, %s to %s (%d events)\n", iv.CustomerID, iv.Plan,
				iv.Period.Start.UTC().Format("2006-01-02"), iv.Period.End.UTC().Format("2006-01-02"), iv.Events)
			fmt.Fprintln(tw, "charge\tgroup\ttype\tquantity\tprecise amount\tamount "+cur.Code+"\t")
			for _, l := range iv.Lines {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Charge, l.Group, l.Type, l.Quantity.String(), l.Amount.String(), l.Rounded.StringFixed(cur.Minor))
			}
			fmt.Fprintf(tw, "total\t\t\t\t%s\t%s\t\n", iv.PreciseTotal.String(), iv.Total.StringFixed(cur.Minor))
			fmt.Fprintf(tw, "cost\t\t\t\t%s\t\t\n", iv.Cost.String())
			fmt.Fprintf(tw, "margin\t\t\t\t%s\t\t\n", iv.Margin().String())
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
	} else {
		c := r.compare()
		base := r.Plans[0]
		hdr := []string{"customer"}
		for _, p := range r.Plans {
			hdr = append(hdr, p+" revenue", p+" cost", p+" margin")
			if p != base {
				hdr = append(hdr, p+" vs "+base)
			}
		}
		fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
		row := func(name string, m map[string]figures) {
			cells := []string{name}
			for _, p := range r.Plans {
				f := m[p]
				cells = append(cells, f.revenue.StringFixed(cur.Minor), money.Format(f.cost, cur), money.Format(f.revenue.Sub(f.cost), cur))
				if p != base {
					cells = append(cells, signed(f.revenue.Sub(m[base].revenue), cur))
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
		for _, id := range c.customers {
			row(id, c.byCust[id])
		}
		row("TOTAL", c.totals)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nRevenue is the sum of invoice totals in %s; cost is the provider cost from the cost book, rounded for display.\n", cur.Code)
	}
	fmt.Fprintf(w, "%d events priced", r.Events)
	if r.Duplicates > 0 {
		fmt.Fprintf(w, ", %d duplicates ignored", r.Duplicates)
	}
	fmt.Fprintln(w)
	if len(r.Unmetered) > 0 {
		keys := make([]string, 0, len(r.Unmetered))
		for k := range r.Unmetered {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "note: measurement %q (on %d events) feeds no meter of the catalog\n", k, r.Unmetered[k])
		}
	}
	for _, p := range r.Plans {
		if n := r.Unpriced[p]; n > 0 {
			fmt.Fprintf(w, "note: %d events reached no charge of plan %s\n", n, p)
		}
	}
	return nil
}

func signed(d money.Decimal, cur money.Currency) string {
	s := d.StringFixed(cur.Minor)
	if d.IsPositive() {
		return "+" + s
	}
	return s
}
