package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

const countersUsage = `Usage:
  levy counters check [--customer ID] [--repair] [--json]
  levy counters rebuild [--customer ID]

check compares the counter store (spend, usage, tiers, wallets) with the ledger and prints
every drift; it exits with status 1 when any customer drifted (also with --repair, which
rebuilds the drifted customers' counters from the ledger), 0 when all agree.
rebuild replaces the counters of one customer, or of every customer, with what the ledger
implies.`

// errDrift is returned by `levy counters check` when counters disagree with the ledger; the
// drifts are already printed, so Main only sets the exit status.
var errDrift = errors.New("the counters drifted from the ledger")

func runCounters(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, countersUsage)
		return errUsage
	}
	fs := newFlagSet("counters "+args[0], stderr, countersUsage)
	cf := addClientFlags(fs)
	customer := fs.String("customer", "", "one customer (default: every customer)")
	query := func(extra url.Values) string {
		q := url.Values{}
		if *customer != "" {
			q.Set("customerId", *customer)
		}
		for k, v := range extra {
			q[k] = v
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	}
	switch args[0] {
	case "check":
		repair := fs.Bool("repair", false, "rebuild the drifted customers' counters from the ledger")
		asJSON := fs.Bool("json", false, "print the server's JSON")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		extra := url.Values{}
		if *repair {
			extra.Set("repair", "true")
		}
		_, data, err := cf.send(ctx, http.MethodPost, "/v1/admin/counters/check"+query(extra), "", "", nil)
		if err != nil {
			return err
		}
		var res struct {
			Customers int `json:"customers"`
			Drifted   int `json:"drifted"`
			Lagging   int `json:"lagging"`
			Repaired  int `json:"repaired"`
			Drifts    []struct {
				CustomerID string `json:"customerId"`
				Counter    string `json:"counter"`
				Ledger     string `json:"ledger"`
				Store      string `json:"store"`
			} `json:"drifts"`
		}
		if err := json.Unmarshal(data, &res); err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		if *asJSON {
			if err := writeRaw(stdout, data); err != nil {
				return err
			}
		} else {
			for _, d := range res.Drifts {
				fmt.Fprintf(stdout, "drift  %s  %s: ledger %s, counter store %s\n", d.CustomerID, d.Counter, d.Ledger, d.Store)
			}
			fmt.Fprintf(stdout, "%d customers checked: %d drifted, %d lagging (still being applied)", res.Customers, res.Drifted, res.Lagging)
			if *repair {
				fmt.Fprintf(stdout, ", %d repaired", res.Repaired)
			}
			fmt.Fprintln(stdout)
		}
		if res.Drifted > 0 {
			return errDrift
		}
		return nil
	case "rebuild":
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if err := cf.call(ctx, http.MethodPost, "/v1/admin/counters/rebuild"+query(nil), "", nil, nil); err != nil {
			return err
		}
		if *customer != "" {
			fmt.Fprintf(stdout, "rebuilt the counters of %s from the ledger\n", *customer)
		} else {
			fmt.Fprintln(stdout, "rebuilt the counters of every customer from the ledger")
		}
		return nil
	}
	fmt.Fprintln(stderr, countersUsage)
	return errUsage
}
