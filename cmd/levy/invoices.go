package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

const invoicesUsage = `Usage:
  levy invoices list <customer> [--json]
  levy invoices show <invoice> [--csv | --json]

list prints a customer's final invoices, oldest period first. show prints one invoice line by
line; --csv prints its lines with their attribution (one row per correlation ID) as CSV.`

// finalInvoice is an issued invoice as the server answers it.
type finalInvoice struct {
	ID            string    `json:"id"`
	Number        int64     `json:"number"`
	IssuedAt      time.Time `json:"issuedAt"`
	CustomerID    string    `json:"customerId"`
	Plan          string    `json:"plan"`
	PlanVersion   int64     `json:"planVersion"`
	PeriodStart   time.Time `json:"periodStart"`
	PeriodEnd     time.Time `json:"periodEnd"`
	Currency      string    `json:"currency"`
	Total         string    `json:"total"`
	WalletCredits string    `json:"walletCredits"`
	AmountDue     string    `json:"amountDue"`
	Events        int64     `json:"events"`
	Lines         []struct {
		Charge        string `json:"charge"`
		Group         string `json:"group"`
		Type          string `json:"type"`
		Quantity      string `json:"quantity"`
		PreciseAmount string `json:"preciseAmount"`
		Amount        string `json:"amount"`
		AdjustsPeriod *struct {
			PeriodStart time.Time `json:"periodStart"`
		} `json:"adjustsPeriod"`
	} `json:"lines"`
}

// summary is one line about an invoice: number, ID, customer, period and the money.
func (f finalInvoice) summary() string {
	return fmt.Sprintf("#%-6d %-28s %-20s %s … %s  total %s %s, wallet %s, due %s",
		f.Number, f.ID, f.CustomerID, f.PeriodStart.UTC().Format(time.DateOnly), f.PeriodEnd.UTC().Format(time.DateOnly),
		f.Total, f.Currency, f.WalletCredits, f.AmountDue)
}

func runInvoices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, invoicesUsage)
		return errUsage
	}
	fs := newFlagSet("invoices "+args[0], stderr, invoicesUsage)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	switch args[0] {
	case "list":
		customer, err := parseWithArg(fs, args[1:], "customer ID")
		if err != nil {
			return err
		}
		var all []json.RawMessage
		var invs []finalInvoice
		for after := ""; ; {
			q := url.Values{"limit": {"100"}}
			if after != "" {
				q.Set("after", after)
			}
			var page struct {
				Items []json.RawMessage `json:"items"`
				Next  string            `json:"next"`
			}
			if err := cf.call(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(customer)+"/invoices?"+q.Encode(), "", nil, &page); err != nil {
				return err
			}
			for _, raw := range page.Items {
				var f finalInvoice
				if err := json.Unmarshal(raw, &f); err != nil {
					return fmt.Errorf("read the answer: %w", err)
				}
				all, invs = append(all, raw), append(invs, f)
			}
			if page.Next == "" || len(page.Items) == 0 {
				break
			}
			after = page.Next
		}
		if *asJSON {
			if all == nil {
				all = []json.RawMessage{}
			}
			out, _ := json.MarshalIndent(map[string]any{"invoices": all}, "", "  ")
			return writeRaw(stdout, append(out, '\n'))
		}
		if len(invs) == 0 {
			fmt.Fprintf(stdout, "%s has no invoices yet\n", customer)
			return nil
		}
		for _, f := range invs {
			fmt.Fprintln(stdout, f.summary())
		}
		return nil
	case "show":
		asCSV := fs.Bool("csv", false, "print the lines with their attribution as CSV")
		id, err := parseWithArg(fs, args[1:], "invoice ID")
		if err != nil {
			return err
		}
		path := "/v1/invoices/" + url.PathEscape(id)
		if *asCSV {
			_, data, err := cf.send(ctx, http.MethodGet, path+"/lines.csv", "", "text/csv", nil)
			if err != nil {
				return err
			}
			return writeRaw(stdout, data)
		}
		_, data, err := cf.send(ctx, http.MethodGet, path, "", "application/json", nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeRaw(stdout, data)
		}
		var f finalInvoice
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		fmt.Fprintf(stdout, "invoice #%d %s, issued %s\n", f.Number, f.ID, f.IssuedAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(stdout, "customer %s, plan %s v%d, period %s to %s, %d events\n\n", f.CustomerID, f.Plan, f.PlanVersion,
			f.PeriodStart.UTC().Format(time.RFC3339), f.PeriodEnd.UTC().Format(time.RFC3339), f.Events)
		fmt.Fprintf(stdout, "%-24s %-20s %-10s %18s %14s\n", "CHARGE", "GROUP", "TYPE", "QUANTITY", "AMOUNT")
		for _, l := range f.Lines {
			typ := l.Type
			if l.AdjustsPeriod != nil {
				typ += " (adjusts " + l.AdjustsPeriod.PeriodStart.UTC().Format(time.DateOnly) + ")"
			}
			fmt.Fprintf(stdout, "%-24s %-20s %-10s %18s %14s\n", l.Charge, l.Group, typ, l.Quantity, l.Amount)
		}
		fmt.Fprintf(stdout, "\n%-75s %14s\n", "total "+f.Currency, f.Total)
		fmt.Fprintf(stdout, "%-75s %14s\n", "wallet credits", "-"+f.WalletCredits)
		fmt.Fprintf(stdout, "%-75s %14s\n", "amount due", f.AmountDue)
		return nil
	}
	fmt.Fprintln(stderr, invoicesUsage)
	return errUsage
}

func runClose(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("close", stderr, "Usage: levy close [--json]\n\n"+
		"Closes every period that ended at least the grace window ago and has no invoice yet, now\n"+
		"(the server also does it every close.every), and prints the invoices issued.")
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, data, err := cf.send(ctx, http.MethodPost, "/v1/admin/close", "", "", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, data)
	}
	var res struct {
		Issued []finalInvoice `json:"issued"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if len(res.Issued) == 0 {
		fmt.Fprintln(stdout, "no period was due; no invoice issued")
		return nil
	}
	for _, f := range res.Issued {
		fmt.Fprintln(stdout, "issued "+f.summary())
	}
	fmt.Fprintf(stdout, "invoices: %d issued\n", len(res.Issued))
	return nil
}
