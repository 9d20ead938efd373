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

const walletUsage = `Usage:
  levy wallet grant <customer> --amount 50.00 [--priority N] [--expires RFC3339] [--kind paid|promotional] [--id ID] [--note TEXT]
  levy wallet show <customer> [--json]

grant adds prepaid credit to a customer's wallet (POST /v1/customers/{id}/wallet/grants).
With --id the command is safe to repeat: the same grant again changes nothing, another grant
under the same id is refused. show prints the balance and every grant.`

// walletGrant is a grant as the server answers it.
type walletGrant struct {
	ID        string     `json:"id"`
	Amount    string     `json:"amount"`
	Remaining string     `json:"remaining"`
	Burned    string     `json:"burned"`
	Priority  int        `json:"priority"`
	ExpiresAt *time.Time `json:"expiresAt"`
	Expired   bool       `json:"expired"`
	Kind      string     `json:"kind"`
	Note      string     `json:"note"`
}

func runWallet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, walletUsage)
		return errUsage
	}
	fs := newFlagSet("wallet "+args[0], stderr, walletUsage)
	cf := addClientFlags(fs)
	switch args[0] {
	case "grant":
		amount := fs.String("amount", "", "the credit, a positive decimal such as 50.00 (required)")
		priority := fs.Int("priority", 0, "burn order: lower burns first")
		expires := fs.String("expires", "", "when the grant expires, RFC 3339 (default: never)")
		kind := fs.String("kind", "paid", "paid or promotional")
		id := fs.String("id", "", "an ID that makes the grant safe to repeat (default: generated)")
		note := fs.String("note", "", "a note kept with the grant")
		customer, err := parseWithArg(fs, args[1:], "customer ID")
		if err != nil {
			return err
		}
		if *amount == "" {
			fmt.Fprintln(stderr, "levy wallet grant: --amount is required")
			fs.Usage()
			return errUsage
		}
		in := map[string]any{"amount": *amount, "kind": *kind}
		if *priority != 0 {
			in["priority"] = *priority
		}
		if *expires != "" {
			t, err := time.Parse(time.RFC3339Nano, *expires)
			if err != nil {
				return fmt.Errorf("--expires must be an RFC 3339 time such as 2026-12-31T23:59:59Z")
			}
			in["expiresAt"] = t
		}
		if *id != "" {
			in["id"] = *id
		}
		if *note != "" {
			in["note"] = *note
		}
		body, _ := json.Marshal(in)
		status, data, err := cf.send(ctx, http.MethodPost, "/v1/customers/"+url.PathEscape(customer)+"/wallet/grants", "application/json", "", body)
		if err != nil {
			return err
		}
		var g walletGrant
		if err := json.Unmarshal(data, &g); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		if status == http.StatusOK {
			fmt.Fprintf(stdout, "grant %s already exists with the same content; nothing changed\n", g.ID)
			return nil
		}
		fmt.Fprintf(stdout, "granted %s to %s (grant %s: %s)\n", g.Amount, customer, g.ID, describeGrant(g))
		return nil
	case "show":
		asJSON := fs.Bool("json", false, "print the server's JSON")
		customer, err := parseWithArg(fs, args[1:], "customer ID")
		if err != nil {
			return err
		}
		_, data, err := cf.send(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(customer)+"/wallet", "", "", nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeRaw(stdout, data)
		}
		var w struct {
			Currency            string        `json:"currency"`
			Available           string        `json:"available"`
			Uncovered           string        `json:"uncovered"`
			Net                 string        `json:"net"`
			Expired             string        `json:"expired"`
			LowBalanceThreshold string        `json:"lowBalanceThreshold"`
			BelowThreshold      bool          `json:"belowThreshold"`
			Grants              []walletGrant `json:"grants"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		fmt.Fprintf(stdout, "wallet of %s (%s)\n", customer, w.Currency)
		fmt.Fprintf(stdout, "  available  %s\n", w.Available)
		fmt.Fprintf(stdout, "  uncovered  %s  (this period's usage no grant covered)\n", w.Uncovered)
		fmt.Fprintf(stdout, "  net        %s\n", w.Net)
		fmt.Fprintf(stdout, "  expired    %s\n", w.Expired)
		if w.LowBalanceThreshold != "" {
			state := "above it"
			if w.BelowThreshold {
				state = "BELOW it"
			}
			fmt.Fprintf(stdout, "  low-balance threshold %s: %s\n", w.LowBalanceThreshold, state)
		}
		if len(w.Grants) == 0 {
			fmt.Fprintln(stdout, "no grants")
			return nil
		}
		fmt.Fprintf(stdout, "%-32s %14s %14s  %s\n", "GRANT", "AMOUNT", "REMAINING", "DETAILS")
		for _, g := range w.Grants {
			fmt.Fprintf(stdout, "%-32s %14s %14s  %s\n", g.ID, g.Amount, g.Remaining, describeGrant(g))
		}
		return nil
	}
	fmt.Fprintln(stderr, walletUsage)
	return errUsage
}

// describeGrant is a grant's kind, priority, expiry and note in one line.
func describeGrant(g walletGrant) string {
	s := fmt.Sprintf("%s, priority %d", g.Kind, g.Priority)
	switch {
	case g.Expired:
		s += ", expired " + g.ExpiresAt.UTC().Format(time.RFC3339)
	case g.ExpiresAt != nil:
		s += ", expires " + g.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if g.Note != "" {
		s += fmt.Sprintf(", note %q", g.Note)
	}
	return s
}
