package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/counter"
	counterredis "github.com/levyhq/levy/internal/counter/redis"
	"github.com/levyhq/levy/internal/testenv"
)

// walletCatalog prices output tokens only: 100,000 of them cost 1.00.
const walletCatalog = `currency: USD
meters:
  - {key: output_tokens}
plans:
  - key: payg
    charges:
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "10.00", per: 1000000}
`

// startBillingServer runs `levy serve` for the wallet, invoice and counter commands: the
// background closer waits a day between runs (so only `levy close` closes periods in the
// test) and the grace window is 1ns (so last month is due at once). It applies walletCatalog
// and returns the server and the client flags that reach it.
func startBillingServer(t *testing.T, mutate func(*config.Config)) (*server, []string) {
	t.Helper()
	data := t.TempDir()
	s := startServer(t, data, func(c *config.Config) {
		c.Close.Every = 24 * time.Hour
		c.Close.Grace = time.Nanosecond
		if mutate != nil {
			mutate(c)
		}
	})
	catPath := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(walletCatalog), 0o600); err != nil {
		t.Fatal(err)
	}
	client := []string{"--url", s.url, "--data", data}
	if code, _, stderr := runCLI(t, append([]string{"apply", "-f", catPath}, client...)...); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	return s, client
}

// monthStart is the first instant of the calendar month months away from now's (UTC).
func monthStart(months int) time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, months, 0)
}

func postOutput(t *testing.T, s *server, id, customer string, at time.Time, tokens int) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"eventType":"llm.completion","customerId":%q,"correlationId":"corr-%s","timestamp":%q,"measurements":[{"metricKey":"output_tokens","value":%d}]}`,
		id, customer, id, at.Format(time.RFC3339), tokens)
	if code := s.do("POST", "/v1/events", "application/json", body, nil); code != 200 {
		t.Fatalf("event %s: %d", id, code)
	}
}

// TestWalletCommands drives `levy wallet grant` and `levy wallet show`: a grant, its
// idempotent repeat, a conflicting one, bad amounts, and the balance after usage burned the
// promotional grant first.
func TestWalletCommands(t *testing.T) {
	s, client := startBillingServer(t, nil)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, client...)...)
	}
	if code := s.do("PUT", "/v1/customers/cw", "application/json", `{"plan":"payg"}`, nil); code != 200 {
		t.Fatalf("customer: %d", code)
	}

	code, out, stderr := cli("wallet", "grant", "cw", "--amount", "50.00", "--id", "g1", "--note", "top up")
	if code != 0 || !strings.Contains(out, "granted 50 to cw") || !strings.Contains(out, "grant g1: paid, priority 0") || !strings.Contains(out, `note "top up"`) {
		t.Fatalf("grant: %d %q %q", code, out, stderr)
	}
	if code, out, stderr = cli("wallet", "grant", "cw", "--amount", "50.00", "--id", "g1", "--note", "top up"); code != 0 || !strings.Contains(out, "already exists") {
		t.Errorf("the same grant again: %d %q %q", code, out, stderr)
	}
	if code, _, stderr = cli("wallet", "grant", "cw", "--amount", "70.00", "--id", "g1"); code != 1 || !strings.Contains(stderr, "id: already used by another grant") {
		t.Errorf("another grant under g1: %d %q", code, stderr)
	}
	expires := time.Now().UTC().Add(30 * 24 * time.Hour).Truncate(time.Second)
	code, out, stderr = cli("wallet", "grant", "--amount", "10", "--kind", "promotional", "--priority", "-1", "--expires", expires.Format(time.RFC3339), "cw")
	if code != 0 || !strings.Contains(out, "promotional, priority -1, expires "+expires.Format(time.RFC3339)) {
		t.Errorf("promotional grant (customer after the flags): %d %q %q", code, out, stderr)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"amount not a decimal", []string{"wallet", "grant", "cw", "--amount", "abc"}, 1, "amount:"},
		{"amount negative", []string{"wallet", "grant", "cw", "--amount", "-5"}, 1, "amount:"},
		{"amount zero", []string{"wallet", "grant", "cw", "--amount", "0"}, 1, "amount:"},
		{"kind unknown", []string{"wallet", "grant", "cw", "--amount", "5", "--kind", "gift"}, 1, "kind:"},
		{"expires in the past", []string{"wallet", "grant", "cw", "--amount", "5", "--expires", "2020-01-01T00:00:00Z"}, 1, "expiresAt:"},
		{"expires not a time", []string{"wallet", "grant", "cw", "--amount", "5", "--expires", "soon"}, 1, "--expires"},
		{"unknown customer", []string{"wallet", "grant", "nobody", "--amount", "5"}, 1, `no customer "nobody"`},
		{"no amount", []string{"wallet", "grant", "cw"}, 2, "--amount is required"},
		{"no customer", []string{"wallet", "grant", "--amount", "5"}, 2, "give one customer ID"},
		{"two customers", []string{"wallet", "show", "cw", "cx"}, 2, "give one customer ID"},
		{"no subcommand", []string{"wallet"}, 2, "levy wallet grant"},
		{"unknown subcommand", []string{"wallet", "burn", "cw"}, 2, "levy wallet grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}

	// 3.00 of usage burns the promotional grant (priority -1) first.
	postOutput(t, s, "w1", "cw", time.Now().UTC().Add(-time.Minute), 300_000)
	code, out, stderr = cli("wallet", "show", "cw")
	if code != 0 || !strings.Contains(out, "available  57") || !strings.Contains(out, "net        57") {
		t.Fatalf("wallet show: %d %q %q", code, out, stderr)
	}
	var promoLine, g1Line string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "g1 "):
			g1Line = l
		case strings.HasPrefix(l, "grant_"):
			promoLine = l
		}
	}
	g1f, promof := strings.Fields(g1Line), strings.Fields(promoLine)
	if len(g1f) < 3 || len(promof) < 3 || g1f[1] != "50" || g1f[2] != "50" || promof[1] != "10" || promof[2] != "7" {
		t.Errorf("grants after 3.00 of usage: g1 %q, promotional %q", g1Line, promoLine)
	}
	code, out, _ = cli("wallet", "show", "cw", "--json")
	var w struct {
		Available string
		Grants    []struct{ ID, Remaining string }
	}
	if err := json.Unmarshal([]byte(out), &w); code != 0 || err != nil || w.Available != "57" || len(w.Grants) != 2 {
		t.Errorf("wallet show --json: %d %v %q", code, err, out)
	}
}

// TestInvoiceCommands drives `levy close`, `levy invoices list` and `levy invoices show` (as
// text, JSON and CSV) on last month's usage.
func TestInvoiceCommands(t *testing.T) {
	s, client := startBillingServer(t, nil)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, client...)...)
	}
	start := monthStart(-2)
	if code := s.do("PUT", "/v1/customers/ci", "application/json", `{"plan":"payg","subscriptionStart":"`+start.Format(time.RFC3339)+`"}`, nil); code != 200 {
		t.Fatalf("customer: %d", code)
	}
	if code, out, stderr := cli("invoices", "list", "ci"); code != 0 || !strings.Contains(out, "ci has no invoices yet") {
		t.Errorf("list before closing: %d %q %q", code, out, stderr)
	}
	if code := s.do("POST", "/v1/customers/ci/wallet/grants", "application/json", `{"id":"g1","amount":"1.00"}`, nil); code != 201 {
		t.Fatalf("grant: %d", code)
	}
	last := monthStart(-1)
	postOutput(t, s, "i1", "ci", last.Add(48*time.Hour), 250_000) // 2.50, 1.00 of it from the wallet
	postOutput(t, s, "i2", "ci", last.Add(72*time.Hour), 100_000) // 1.00
	postOutput(t, s, "i3", "ci", time.Now().UTC().Add(-time.Minute), 100_000)

	code, out, stderr := cli("close")
	if code != 0 || !strings.Contains(out, "issued #") || !strings.Contains(out, " ci ") || !strings.Contains(out, last.Format(time.DateOnly)) ||
		!strings.Contains(out, "total 3.50 USD, wallet 1.00, due 2.50") || !strings.Contains(out, "1 issued") {
		t.Fatalf("close: %d %q %q", code, out, stderr)
	}
	if code, out, _ = cli("close"); code != 0 || !strings.Contains(out, "no period was due") {
		t.Errorf("close again: %d %q", code, out)
	}
	code, out, stderr = cli("invoices", "list", "ci", "--json")
	var list struct {
		Invoices []struct{ ID, Total, AmountDue string }
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Invoices) != 1 || list.Invoices[0].AmountDue != "2.50" {
		t.Fatalf("invoices list --json: %d %v %q %q", code, err, out, stderr)
	}
	id := list.Invoices[0].ID
	if code, out, _ = cli("invoices", "list", "ci"); code != 0 || !strings.Contains(out, id) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("invoices list: %d %q", code, out)
	}
	code, out, stderr = cli("invoices", "show", id)
	if code != 0 || !strings.Contains(out, "invoice #") || !strings.Contains(out, "customer ci, plan payg v1") || !strings.Contains(out, "2 events") ||
		!strings.Contains(out, "output") || !strings.Contains(out, "-1.00") || !strings.HasSuffix(strings.TrimSpace(out), "2.50") {
		t.Errorf("invoices show: %d %q %q", code, out, stderr)
	}
	code, out, _ = cli("invoices", "show", id, "--csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "invoice,customer_id,") || !strings.Contains(out, ",corr-i1,1,250000,2.5") || !strings.Contains(out, ",corr-i2,1,100000,1") {
		t.Errorf("invoices show --csv: %d %q", code, out)
	}
	if code, out, _ = cli("invoices", "show", "--json", id); code != 0 || !strings.Contains(out, `"walletCredits": "1.00"`) {
		t.Errorf("invoices show --json: %d %q", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown invoice", []string{"invoices", "show", "inv_nope"}, 1, `no invoice "inv_nope"`},
		{"malformed invoice id", []string{"invoices", "show", "a b"}, 1, "invoiceId:"},
		{"unknown customer", []string{"invoices", "list", "nobody"}, 1, `no customer "nobody"`},
		{"no invoice id", []string{"invoices", "show"}, 2, "give one invoice ID"},
		{"no subcommand", []string{"invoices"}, 2, "levy invoices list"},
		{"close with an argument", []string{"close", "now"}, 2, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestCountersCommands drives `levy counters check` and `levy counters rebuild` on the
// embedded server (in-process counters): no drift, exit 0; unknown customers are errors.
func TestCountersCommands(t *testing.T) {
	s, client := startBillingServer(t, nil)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, client...)...)
	}
	s.do("PUT", "/v1/customers/cc", "application/json", `{"plan":"payg"}`, nil)
	postOutput(t, s, "c1", "cc", time.Now().UTC().Add(-time.Minute), 100_000)
	if code, out, stderr := cli("counters", "check"); code != 0 || !strings.Contains(out, "1 customers checked: 0 drifted") {
		t.Errorf("check: %d %q %q", code, out, stderr)
	}
	if code, out, stderr := cli("counters", "check", "--customer", "cc", "--json"); code != 0 || !strings.Contains(out, `"drifted": 0`) {
		t.Errorf("check --json: %d %q %q", code, out, stderr)
	}
	if code, out, stderr := cli("counters", "rebuild"); code != 0 || !strings.Contains(out, "every customer") {
		t.Errorf("rebuild: %d %q %q", code, out, stderr)
	}
	if code, out, stderr := cli("counters", "rebuild", "--customer", "cc"); code != 0 || !strings.Contains(out, "rebuilt the counters of cc") {
		t.Errorf("rebuild --customer: %d %q %q", code, out, stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"counters", "check", "--customer", "nobody"}, 1, `no customer "nobody"`},
		{[]string{"counters", "rebuild", "--customer", "nobody"}, 1, `no customer "nobody"`},
		{[]string{"counters", "check", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"counters"}, 2, "levy counters check"},
		{[]string{"counters", "fix"}, 2, "levy counters check"},
	} {
		if code, _, stderr := cli(tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// TestCountersCheckFindsDrift runs the server on Redis, makes a customer's counters drift (a
// grant the ledger never saw, written to Redis behind the server's back), and checks that
// `levy counters check` prints the drift and exits 1, that --repair rebuilds it, and that the
// next check is clean.
func TestCountersCheckFindsDrift(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	s, client := startBillingServer(t, func(c *config.Config) { c.RedisURL = redisURL })
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, client...)...)
	}
	// Redis outlives the test: a fresh customer ID keeps earlier runs' keys out of the way.
	cust := fmt.Sprintf("drift-%d", time.Now().UnixNano())
	if code := s.do("PUT", "/v1/customers/"+cust, "application/json", `{"plan":"payg"}`, nil); code != 200 {
		t.Fatalf("customer: %d", code)
	}
	postOutput(t, s, cust+"-e1", cust, time.Now().UTC().Add(-time.Minute), 100_000)
	if code, out, stderr := cli("counters", "check", "--customer", cust); code != 0 || !strings.Contains(out, "0 drifted") {
		t.Fatalf("check before the fault: %d %q %q", code, out, stderr)
	}

	ctx := context.Background()
	rs, err := counterredis.Open(ctx, redisURL, counterredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if _, err := rs.Grant(ctx, counter.GrantParams{CustomerID: cust, GrantID: "ghost", Nanos: 2_500_000_000}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli("counters", "check", "--customer", cust)
	if code != 1 || !strings.Contains(out, "drift  "+cust+"  wallet:ghost: ledger 0, counter store 2.5") || !strings.Contains(out, "1 drifted") {
		t.Errorf("check after the fault: %d %q %q", code, out, stderr)
	}
	code, out, stderr = cli("counters", "check", "--repair")
	if code != 1 || !strings.Contains(out, "wallet:ghost") || !strings.Contains(out, "1 repaired") {
		t.Errorf("check --repair: %d %q %q", code, out, stderr)
	}
	if code, out, stderr = cli("counters", "check"); code != 0 || !strings.Contains(out, "0 drifted") {
		t.Errorf("check after the repair: %d %q %q", code, out, stderr)
	}
	// The same drift again, restored by rebuild.
	if _, err := rs.Grant(ctx, counter.GrantParams{CustomerID: cust, GrantID: "ghost2", Nanos: 1}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ = cli("counters", "check", "--customer", cust); code != 1 {
		t.Errorf("check after the second fault: exit %d, want 1", code)
	}
	if code, out, stderr = cli("counters", "rebuild", "--customer", cust); code != 0 {
		t.Errorf("rebuild: %d %q %q", code, out, stderr)
	}
	if code, out, stderr = cli("counters", "check", "--customer", cust); code != 0 {
		t.Errorf("check after the rebuild: %d %q %q", code, out, stderr)
	}
}
