package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
)

// ladderCatalog is testCatalog with a spend-tier ladder and a plan priced on output tokens
// only, so amounts are easy to follow: 100,000 output tokens cost 1.00.
const ladderCatalog = testCatalog + `  - key: ladder
    period: month
    limits: {requestsPerMinute: 60, monthlySpend: "100.00"}
    charges:
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "10.00", per: 1000000}
tiers:
  basis: periodSpend
  ladder:
    - {key: free, threshold: "0"}
    - {key: build, name: Build, threshold: "5.00", limits: {requestsPerMinute: 120}}
    - {key: scale, threshold: "50.00", limitMultiplier: "4", discount: "5"}
    - {key: enterprise, manual: true, limits: {requestsPerMinute: 10000}}
`

// sameDec reports whether two decimal strings hold the same value ("60" and "60.00" do).
func sameDec(t testing.TB, got, want string) bool {
	t.Helper()
	g, err := money.Parse(got)
	if err != nil {
		t.Errorf("%q is not a decimal: %v", got, err)
		return false
	}
	return g.Equal(money.MustParse(want))
}

// exerciseAccounts drives every operation of spend tiers, wallets, invoices and the counter
// store against srv through the contract k, checking each answer's figures. It applies
// ladderCatalog and creates customers w1 and w2 on the ladder plan, subscribed since October
// 2026 (the server's clock is testNow, late in November).
func exerciseAccounts(t *testing.T, k *contract, srv *testServer) {
	admin := srv.Admin
	ctx := context.Background()
	get := func(path string, rc requestCheck, status int) reply {
		t.Helper()
		return k.exchange(call{Method: "GET", Path: path, Key: admin}, rc, status)
	}
	send := func(method, path string, body any, rc requestCheck, status int) reply {
		t.Helper()
		c := call{Method: method, Path: path, Key: admin}
		if body != nil {
			c.ContentType, c.Body = "application/json", jsonBody(body)
		}
		return k.exchange(c, rc, status)
	}

	r := k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "application/yaml", Body: []byte(ladderCatalog)}, reqValid, 200)
	var applied struct {
		Plans []struct {
			Plan string
			ID   int64
		}
	}
	r.json(t, &applied)
	var ladderID int64
	for _, p := range applied.Plans {
		if p.Plan == "ladder" {
			ladderID = p.ID
		}
	}
	if ladderID == 0 {
		t.Fatalf("the ladder plan has no version: %s", r.Body)
	}
	r = send("PUT", "/v1/customers/w1", map[string]any{"plan": "ladder", "subscriptionStart": "2026-10-01T00:00:00Z", "lowBalanceThreshold": "45.00"}, reqValid, 200)
	var cust struct{ TierOverride, LowBalanceThreshold string }
	r.json(t, &cust)
	if !sameDec(t, cust.LowBalanceThreshold, "45") || cust.TierOverride != "" {
		t.Errorf("customer w1: %s", r.Body)
	}

	// Grants: 201 new, 200 the same again, 409 another grant under the id.
	r = send("POST", "/v1/customers/w1/wallet/grants", map[string]any{"id": "g1", "amount": "50.00", "note": "top-up"}, reqValid, 201)
	var g1 struct {
		ID, Amount, Remaining, Kind, Note string
		Priority                          int
	}
	r.json(t, &g1)
	if g1.ID != "g1" || !sameDec(t, g1.Amount, "50") || !sameDec(t, g1.Remaining, "50") || g1.Kind != "paid" || g1.Note != "top-up" {
		t.Errorf("grant g1: %s", r.Body)
	}
	first := r.Body
	if r = send("POST", "/v1/customers/w1/wallet/grants", map[string]any{"id": "g1", "amount": "50.00", "note": "top-up"}, reqValid, 200); !bytes.Equal(r.Body, first) {
		t.Errorf("the repeated grant answers %s, first %s", r.Body, first)
	}
	k.problem(send("POST", "/v1/customers/w1/wallet/grants", map[string]any{"id": "g1", "amount": "70.00"}, reqValid, 409), 409, nil, "id")
	r = send("POST", "/v1/customers/w1/wallet/grants", map[string]any{"amount": "10.00", "kind": "promotional", "expiresAt": "2026-12-31T00:00:00Z"}, reqValid, 201)
	var promo struct{ ID, Kind, ExpiresAt string }
	r.json(t, &promo)
	if !strings.HasPrefix(promo.ID, "grant_") || promo.Kind != "promotional" || promo.ExpiresAt != "2026-12-31T00:00:00Z" {
		t.Errorf("promotional grant: %s", r.Body)
	}
	k.problem(send("POST", "/v1/customers/w1/wallet/grants", map[string]any{"amount": "abc"}, reqInvalid, 400), 400, nil, "amount")
	k.problem(send("POST", "/v1/customers/nobody/wallet/grants", map[string]any{"amount": "1.00"}, reqValid, 404), 404, nil)
	// A customer without a subscription has no wallet to show: refused before anything is stored.
	send("PUT", "/v1/customers/w0", map[string]any{"metadata": map[string]string{"plan": "none yet"}}, reqValid, 200)
	k.problem(send("POST", "/v1/customers/w0/wallet/grants", map[string]any{"id": "early", "amount": "1.00"}, reqValid, 404), 404, nil)
	if gs, err := srv.Store.ListGrants(ctx, "w0"); err != nil || len(gs) != 0 {
		t.Errorf("a refused grant was stored: %v %v", gs, err)
	}
	var wal struct {
		Available, Uncovered, Net string
		BelowThreshold            bool
		Grants                    []struct{ ID, Remaining string }
	}
	get("/v1/customers/w1/wallet", reqValid, 200).json(t, &wal)
	if !sameDec(t, wal.Available, "60") || len(wal.Grants) != 2 || wal.BelowThreshold {
		t.Errorf("wallet before usage: %+v", wal)
	}

	// Usage: October $1, then November $6 (crosses build at 5.00) and $10 (the balance falls
	// below the 45.00 threshold). The promotional grant expires first, so it burns first.
	post := func(id, ts string, tokens int) {
		t.Helper()
		send("POST", "/v1/events", ev(id, "w1", "corr-"+id, ts, nil, "output_tokens", tokens), reqValid, 200)
	}
	post("w-oct", "2026-10-15T00:00:00Z", 100_000)
	post("w-nov1", "2026-11-10T00:00:00Z", 600_000)
	r = get("/v1/customers/w1/tier", reqValid, 200)
	var tier struct {
		Tier, Name, Override, Basis, BasisSpend, NextTier, NextThreshold string
		Limits                                                           map[string]string
	}
	r.json(t, &tier)
	if tier.Tier != "build" || tier.Name != "Build" || tier.Basis != "periodSpend" || !sameDec(t, tier.BasisSpend, "6") ||
		tier.NextTier != "scale" || !sameDec(t, tier.NextThreshold, "50") || tier.Limits["requestsPerMinute"] != "120" {
		t.Errorf("tier after 6.00 of November spend: %s", r.Body)
	}
	post("w-nov2", "2026-11-11T00:00:00Z", 1_000_000)
	get("/v1/customers/w1/wallet", reqValid, 200).json(t, &wal)
	if !sameDec(t, wal.Available, "43") || !sameDec(t, wal.Net, "43") || !wal.BelowThreshold {
		t.Errorf("wallet after 17.00 of usage: %+v", wal)
	}
	// Burns: the grants' burns add up to the usage; the cursor skips what was seen.
	if sum, pages := sumBurns(t, get, "w1", 100); !sum.Equal(money.MustParse("17")) || pages != 1 {
		t.Errorf("burns add up to %s over %d pages, want 17 on one", sum, pages)
	}
	var burns struct {
		Items []struct {
			EventSeq int64
			EventKey string
		}
	}
	get("/v1/customers/w1/wallet/burns", reqValid, 200).json(t, &burns)
	seen := 0
	for _, b := range burns.Items {
		if b.EventKey != "id:w-nov1" {
			continue
		}
		seen++
		if sum, _ := sumBurns(t, func(path string, rc requestCheck, status int) reply {
			return get(strings.Replace(path, "?", fmt.Sprintf("?after=%d&", b.EventSeq), 1), rc, status)
		}, "w1", 10); !sum.Equal(money.MustParse("10")) {
			t.Errorf("burns after w-nov1 add up to %s, want 10 (w-nov2's)", sum)
		}
	}
	if seen != 1 {
		t.Errorf("w-nov1 has %d burns, want 1: %+v", seen, burns.Items)
	}
	var notices struct {
		Items []struct {
			Kind string
			Data map[string]string
		}
	}
	get("/v1/customers/w1/notices", reqValid, 200).json(t, &notices)
	if len(notices.Items) != 1 || notices.Items[0].Kind != "low_balance" || notices.Items[0].Data["eventId"] != "w-nov2" {
		t.Errorf("notices: %+v", notices.Items)
	}
	get("/v1/customers/w1/notices?after=1&limit=10", reqValid, 200)

	// An override wins over the ladder and is recorded as a transition.
	r = send("PUT", "/v1/customers/w1", map[string]any{"tierOverride": "enterprise"}, reqValid, 200)
	r.json(t, &cust)
	if cust.TierOverride != "enterprise" || !sameDec(t, cust.LowBalanceThreshold, "45") {
		t.Errorf("customer with an override: %s", r.Body)
	}
	get("/v1/customers/w1/tier", reqValid, 200).json(t, &tier)
	if tier.Tier != "enterprise" || tier.Override != "enterprise" || tier.Limits["requestsPerMinute"] != "10000" {
		t.Errorf("tier with an override: %+v", tier)
	}
	k.problem(send("PUT", "/v1/customers/w1", map[string]any{"tierOverride": "platinum"}, reqAny, 400), 400, nil, "tierOverride")
	var reasons []string
	promotedBy := ""
	for after, pages := int64(0), 0; pages < 20; pages++ {
		var page struct {
			Items []struct{ From, To, Reason, EventID, CorrelationID string }
			Next  int64
		}
		get(fmt.Sprintf("/v1/customers/w1/tier-transitions?limit=1&after=%d", after), reqValid, 200).json(t, &page)
		for _, it := range page.Items {
			reasons = append(reasons, it.Reason+":"+it.From+">"+it.To)
			if it.Reason == "promotion" && it.To == "build" {
				promotedBy = it.EventID + "/" + it.CorrelationID
			}
		}
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	if promotedBy != "w-nov1/corr-w-nov1" || !strings.HasSuffix(strings.Join(reasons, " "), "override:build>enterprise") {
		t.Errorf("transitions %v (promotion by %q)", reasons, promotedBy)
	}

	// Close October now: 1.00 of usage, paid from the wallet.
	closeBody := map[string]any{"planVersionId": ladderID, "periodStart": "2026-10-01T00:00:00Z"}
	r = send("POST", "/v1/customers/w1/periods/close", closeBody, reqValid, 200)
	var inv struct {
		ID, Status, CustomerID, PeriodStart, Total, WalletCredits, AmountDue string
		Number                                                               int64
		Lines                                                                []struct{ Charge, Type, PreciseAmount string }
	}
	r.json(t, &inv)
	if inv.ID == "" || inv.Number < 1 || inv.Status != "final" || inv.PeriodStart != "2026-10-01T00:00:00Z" || inv.Total != "1.00" || inv.WalletCredits != "1.00" || inv.AmountDue != "0.00" {
		t.Errorf("October's invoice: %s", r.Body)
	}
	if again := send("POST", "/v1/customers/w1/periods/close", closeBody, reqValid, 200); !bytes.Contains(again.Body, []byte(`"id": "`+inv.ID+`"`)) {
		t.Errorf("closing October again: %s, want invoice %s", again.Body, inv.ID)
	}
	k.problem(send("POST", "/v1/customers/w1/periods/close", map[string]any{"planVersionId": ladderID, "periodStart": "2026-11-01T00:00:00Z"}, reqValid, 400), 400, nil, "periodStart")
	k.problem(send("POST", "/v1/customers/w1/periods/close", map[string]any{"planVersionId": ladderID, "periodStart": "2026-10-02T00:00:00Z"}, reqValid, 400), 400, nil, "periodStart")
	k.problem(send("POST", "/v1/customers/w1/periods/close", map[string]any{"planVersionId": ladderID + 100, "periodStart": "2026-10-01T00:00:00Z"}, reqValid, 400), 400, nil, "planVersionId")
	k.problem(send("POST", "/v1/customers/w1/periods/close", map[string]any{"periodStart": "2026-10-01T00:00:00Z"}, reqInvalid, 400), 400, nil, "planVersionId")
	k.problem(send("POST", "/v1/customers/w1/periods/close", map[string]any{"planVersionId": ladderID, "periodStart": "last month"}, reqInvalid, 400), 400, nil, "periodStart")

	// A late event for October is billed in November as an adjustment line naming October; its
	// attribution link (with the billed period) adds up to the line.
	post("w-late", "2026-10-20T00:00:00Z", 200_000)
	r = get("/v1/customers/w1/invoice-preview", reqValid, 200)
	var preview struct {
		Lines []struct {
			Charge, PreciseAmount, Attribution string
			AdjustsPeriod                      *struct{ PeriodStart string }
		}
	}
	r.json(t, &preview)
	adjusted := 0
	for _, l := range preview.Lines {
		if l.AdjustsPeriod == nil {
			continue
		}
		adjusted++
		if l.AdjustsPeriod.PeriodStart != "2026-10-01T00:00:00Z" || !sameDec(t, l.PreciseAmount, "2") || !strings.Contains(l.Attribution, "billedPeriodStart=") {
			t.Errorf("adjustment line: %+v", l)
		}
		var ap struct {
			Items []struct{ CorrelationID, PreciseAmount string }
		}
		get(l.Attribution, reqValid, 200).json(t, &ap)
		if len(ap.Items) != 1 || ap.Items[0].CorrelationID != "corr-w-late" || !sameDec(t, ap.Items[0].PreciseAmount, l.PreciseAmount) {
			t.Errorf("attribution of the adjustment line: %+v", ap.Items)
		}
	}
	if adjusted != 1 {
		t.Errorf("%d adjustment lines in the November preview: %s", adjusted, r.Body)
	}
	k.problem(get("/v1/customers/w1/attribution?planVersionId=1&periodStart=2026-10-01T00:00:00Z&charge=output&billedPlanVersionId=x&billedPeriodStart=2026-11-01T00:00:00Z", reqInvalid, 400), 400, nil, "billedPlanVersionId")
	k.problem(get("/v1/customers/w1/attribution?planVersionId=1&periodStart=2026-10-01T00:00:00Z&charge=output&billedPlanVersionId=1&billedPeriodStart=soon", reqInvalid, 400), 400, nil, "billedPeriodStart")

	// The invoice reads back as JSON, in a list, and as CSV whose rows add up to each line.
	var list struct {
		Items []struct{ ID string }
		Next  string
	}
	get("/v1/customers/w1/invoices", reqValid, 200).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != inv.ID {
		t.Errorf("w1's invoices: %+v", list)
	}
	get("/v1/customers/w1/invoices?limit=1&after="+url.QueryEscape(inv.ID), reqValid, 200)
	if r = get("/v1/invoices/"+inv.ID, reqValid, 200); !bytes.Contains(r.Body, []byte(`"amountDue": "0.00"`)) {
		t.Errorf("GET invoice: %s", r.Body)
	}
	k.problem(get("/v1/invoices/inv_nope", reqValid, 404), 404, nil)
	csvBody := k.exchange(call{Method: "GET", Path: "/v1/invoices/" + inv.ID, Key: admin, Accept: "text/csv"}, reqValid, 200)
	lines := k.exchange(call{Method: "GET", Path: "/v1/invoices/" + inv.ID + "/lines.csv", Key: admin}, reqValid, 200)
	if !strings.HasPrefix(csvBody.Header.Get("Content-Type"), "text/csv") || !bytes.Equal(csvBody.Body, lines.Body) {
		t.Errorf("Accept: text/csv answered %s %q; lines.csv %q", csvBody.Header.Get("Content-Type"), csvBody.Body, lines.Body)
	}
	checkInvoiceCSV(t, lines.Body, inv.ID)

	// The closer issues what is due: w2's October, and nothing on a second run.
	send("PUT", "/v1/customers/w2", map[string]any{"plan": "ladder", "subscriptionStart": "2026-10-01T00:00:00Z"}, reqValid, 200)
	send("POST", "/v1/events", ev("w2-oct", "w2", "", "2026-10-05T00:00:00Z", nil, "output_tokens", 50_000), reqValid, 200)
	var closed struct {
		Issued []struct{ CustomerID, PeriodStart, Total string }
	}
	send("POST", "/v1/admin/close", nil, reqValid, 200).json(t, &closed)
	if len(closed.Issued) != 1 || closed.Issued[0].CustomerID != "w2" || closed.Issued[0].PeriodStart != "2026-10-01T00:00:00Z" || closed.Issued[0].Total != "0.50" {
		t.Errorf("admin close issued %+v, want w2's October for 0.50", closed.Issued)
	}
	if r = send("POST", "/v1/admin/close", nil, reqValid, 200); !bytes.Contains(r.Body, []byte(`"issued": []`)) {
		t.Errorf("a second close issued again: %s", r.Body)
	}

	// Counters: agree with the ledger, then drift (a grant the ledger never saw) is found,
	// repaired, and gone.
	get("/v1/admin/counters", reqValid, 200)
	type checkResult struct {
		Customers, Drifted, Repaired int
		Drifts                       []struct{ CustomerID, Counter, Ledger, Store string }
	}
	var chk checkResult
	send("POST", "/v1/admin/counters/check", nil, reqValid, 200).json(t, &chk)
	if chk.Drifted != 0 || chk.Customers < 2 {
		t.Errorf("counters before any fault: %+v", chk)
	}
	if _, err := srv.Counters.Grant(ctx, counter.GrantParams{CustomerID: "w1", GrantID: "ghost", Nanos: 5_000_000_000}); err != nil {
		t.Fatal(err)
	}
	send("POST", "/v1/admin/counters/check?customerId=w1", nil, reqValid, 200).json(t, &chk)
	if chk.Customers != 1 || chk.Drifted != 1 || len(chk.Drifts) != 1 || chk.Drifts[0].Counter != "wallet:ghost" || chk.Drifts[0].Ledger != "0" || chk.Drifts[0].Store != "5" {
		t.Errorf("check after a ghost grant: %+v", chk)
	}
	send("POST", "/v1/admin/counters/check?customerId=w1&repair=true", nil, reqValid, 200).json(t, &chk)
	if chk.Drifted != 1 || chk.Repaired != 1 {
		t.Errorf("repair: %+v", chk)
	}
	send("POST", "/v1/admin/counters/check?repair=false", nil, reqValid, 200).json(t, &chk)
	if chk.Drifted != 0 {
		t.Errorf("drift left after the repair: %+v", chk)
	}
	if _, err := srv.Counters.Grant(ctx, counter.GrantParams{CustomerID: "w2", GrantID: "ghost", Nanos: 1_000_000_000}); err != nil {
		t.Fatal(err)
	}
	if r = send("POST", "/v1/admin/counters/rebuild?customerId=w2", nil, reqValid, 200); !bytes.Contains(r.Body, []byte(`"rebuilt": true`)) {
		t.Errorf("rebuild: %s", r.Body)
	}
	send("POST", "/v1/admin/counters/rebuild", nil, reqValid, 200)
	send("POST", "/v1/admin/counters/check", nil, reqValid, 200).json(t, &chk)
	if chk.Drifted != 0 {
		t.Errorf("drift left after the rebuild: %+v", chk)
	}
	k.problem(send("POST", "/v1/admin/counters/check?customerId=nobody", nil, reqValid, 404), 404, nil)
	k.problem(send("POST", "/v1/admin/counters/check?repair=maybe", nil, reqInvalid, 400), 400, nil, "repair")
}

// sumBurns pages through a customer's burn history with the given page size and returns the
// sum of the grants' burns and the number of pages read.
func sumBurns(t *testing.T, get func(path string, rc requestCheck, status int) reply, customer string, limit int) (money.Decimal, int) {
	t.Helper()
	sum, after := money.Zero, int64(0)
	for pages := 1; pages <= 50; pages++ {
		path := fmt.Sprintf("/v1/customers/%s/wallet/burns?limit=%d", customer, limit)
		if after > 0 {
			path += fmt.Sprintf("&after=%d", after)
		}
		var page struct {
			Items []struct{ GrantID, Amount string }
			Next  int64
		}
		get(path, reqValid, 200).json(t, &page)
		for _, b := range page.Items {
			if b.GrantID != "" {
				sum = sum.Add(money.MustParse(b.Amount))
			}
		}
		if page.Next == 0 {
			return sum, pages
		}
		after = page.Next
	}
	t.Fatalf("burns of %s: more than 50 pages", customer)
	return sum, 0
}

// TestBurnsPagingKeepsEveryBurn pages through a burn history one entry at a time, where one
// event burns two grants: every burn must be seen exactly once.
func TestBurnsPagingKeepsEveryBurn(t *testing.T) {
	srv := newTestServer(t, serverOptions{})
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(ladderCatalog)},
		{Method: "PUT", Path: "/v1/customers/b1", ContentType: "application/json", Body: []byte(`{"plan":"ladder"}`)},
		{Method: "POST", Path: "/v1/customers/b1/wallet/grants", ContentType: "application/json", Body: []byte(`{"id":"a","amount":"1.00","priority":-1}`)},
		{Method: "POST", Path: "/v1/customers/b1/wallet/grants", ContentType: "application/json", Body: []byte(`{"id":"b","amount":"5.00"}`)},
		{Method: "POST", Path: "/v1/events", ContentType: "application/json", Body: jsonBody(ev("b-1", "b1", "", "2026-11-20T00:00:00Z", nil, "output_tokens", 300_000))},
		{Method: "POST", Path: "/v1/events", ContentType: "application/json", Body: jsonBody(ev("b-2", "b1", "", "2026-11-21T00:00:00Z", nil, "output_tokens", 100_000))},
	} {
		c.Key = srv.Admin
		if r := srv.do(c); r.Status/100 != 2 {
			t.Fatalf("%s %s: %d %s", c.Method, c.Path, r.Status, r.Body)
		}
	}
	get := func(path string, _ requestCheck, status int) reply {
		c := call{Method: "GET", Path: path, Key: srv.Admin}
		r := srv.do(c)
		mustStatus(t, c, r, status)
		return r
	}
	// b-1 burns a (1.00) and b (2.00); b-2 burns b (1.00).
	whole, _ := sumBurns(t, get, "b1", 100)
	byOne, _ := sumBurns(t, get, "b1", 1)
	if !whole.Equal(money.MustParse("4")) {
		t.Fatalf("burns on one page add up to %s, want 4", whole)
	}
	if !byOne.Equal(whole) {
		t.Errorf("one burn per page adds up to %s, one page to %s", byOne, whole)
	}
}

// checkInvoiceCSV checks an invoice's CSV: the header, the invoice ID on every row, and that
// the precise amounts of each line's rows add up exactly to the line's precise amount.
func checkInvoiceCSV(t *testing.T, body []byte, id string) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("invoice CSV (%v): %q", err, body)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"invoice", "charge", "type", "line_precise_amount", "correlation_id", "precise_amount"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("the CSV header lacks %s: %v", h, rows[0])
		}
	}
	sums, lineAmount := map[string]money.Decimal{}, map[string]string{}
	for _, row := range rows[1:] {
		if row[col["invoice"]] != id {
			t.Errorf("row of another invoice: %v", row)
		}
		if row[col["correlation_id"]] == "" {
			continue
		}
		key := row[col["charge"]] + "/" + row[col["type"]]
		lineAmount[key] = row[col["line_precise_amount"]]
		s, ok := sums[key]
		if !ok {
			s = money.Zero
		}
		sums[key] = s.Add(money.MustParse(row[col["precise_amount"]]))
	}
	if len(sums) == 0 {
		t.Errorf("no attributed rows in %q", body)
	}
	for key, s := range sums {
		if !sameDec(t, s.String(), lineAmount[key]) {
			t.Errorf("line %s: rows add up to %s, the line is %s", key, s, lineAmount[key])
		}
	}
}

// TestCountersWithoutStore: a server without a counter store answers the counter operations
// with 503 problems rather than failing or pretending.
func TestCountersWithoutStore(t *testing.T) {
	srv := newTestServer(t, serverOptions{noCounters: true})
	for _, c := range []call{
		{Method: "GET", Path: "/v1/admin/counters"},
		{Method: "POST", Path: "/v1/admin/counters/check"},
		{Method: "POST", Path: "/v1/admin/counters/rebuild"},
	} {
		c.Key = srv.Admin
		checkProblem(t, srv.do(c), 503, nil)
	}
}

// TestInvoiceContentNegotiation: GET /v1/invoices/{id} answers CSV only when the Accept
// header prefers text/csv to JSON, and JSON otherwise (never a 406).
func TestInvoiceContentNegotiation(t *testing.T) {
	srv := newTestServer(t, serverOptions{})
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(ladderCatalog)},
		{Method: "PUT", Path: "/v1/customers/n1", ContentType: "application/json", Body: []byte(`{"plan":"ladder","subscriptionStart":"2026-10-01T00:00:00Z"}`)},
		{Method: "POST", Path: "/v1/events", ContentType: "application/json", Body: jsonBody(ev("n-oct", "n1", "", "2026-10-03T00:00:00Z", nil, "output_tokens", 1000))},
	} {
		c.Key = srv.Admin
		mustStatus(t, c, srv.do(c), 200)
	}
	c := call{Method: "POST", Path: "/v1/admin/close", Key: srv.Admin}
	r := srv.do(c)
	mustStatus(t, c, r, 200)
	var closed struct{ Issued []struct{ ID string } }
	r.json(t, &closed)
	if len(closed.Issued) != 1 {
		t.Fatalf("close: %s", r.Body)
	}
	cases := []struct {
		accept string
		csv    bool
	}{
		{"", false},
		{"application/json", false},
		{"text/csv", true},
		{"text/csv; charset=utf-8", true},
		{"application/json, text/csv;q=0.5", false},
		{"application/json;q=0.4, text/csv", true},
		{"*/*", false},
		{"text/csv;q=0, */*", false},
		{"*/*;q=0.1, text/csv", true},
		{"text/csv;q=0.5, */*;q=0.9", false},
		{"text/html", false},
		{"garbage;;;", false},
	}
	for _, tc := range cases {
		c := call{Method: "GET", Path: "/v1/invoices/" + closed.Issued[0].ID, Key: srv.Admin, Accept: tc.accept}
		r := srv.do(c)
		mustStatus(t, c, r, 200)
		gotCSV := strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv")
		if gotCSV != tc.csv {
			t.Errorf("Accept %q: Content-Type %s, want CSV %v", tc.accept, r.Header.Get("Content-Type"), tc.csv)
		}
		if gotCSV && !bytes.HasPrefix(r.Body, []byte("invoice,customer_id,")) || !gotCSV && !bytes.HasPrefix(r.Body, []byte("{")) {
			t.Errorf("Accept %q: body %q", tc.accept, clipBody(r.Body))
		}
	}
}
