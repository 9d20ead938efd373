package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/simulate"
	"github.com/levyhq/levy/internal/usage"
)

func day(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

func mustJSON(s string) json.RawMessage { return json.RawMessage(s) }

// TestWalletBurnOrder: grants burn by priority, then earliest expiry, then creation; one event
// may exhaust several grants; an expired grant stops paying mid-period; the rest is uncovered,
// shown as a negative net balance and billed as amount due; the low-balance notice fires once.
func TestWalletBurnOrder(t *testing.T) {
	f := newFixture(t, "", Options{})
	ctx := context.Background()
	setupLadder(t, f, catalogV1Payg, "c1")
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{LowBalanceThreshold: mustJSON(`"5"`)}); err != nil {
		t.Fatal(err)
	}
	grant := func(id, amount string, prio int, expires *time.Time) {
		t.Helper()
		if _, err := f.svc.CreateGrant(ctx, "c1", GrantInput{ID: id, Amount: mustJSON(`"` + amount + `"`), Priority: prio, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(f.clock.Now().Add(time.Second)) // distinct creation times
	}
	nov20 := day(2026, 11, 20, 0)
	grant("A", "2", -1, nil)
	grant("B", "3", 0, &nov20)
	grant("C", "5", 0, nil)
	grant("D", "4", 0, nil)
	// Idempotent by ID: the same grant again is fine, another under the same ID conflicts.
	if _, err := f.svc.CreateGrant(ctx, "c1", GrantInput{ID: "D", Amount: mustJSON(`"4"`)}); err != nil {
		t.Errorf("repeating grant D: %v", err)
	}
	if _, err := f.svc.CreateGrant(ctx, "c1", GrantInput{ID: "D", Amount: mustJSON(`"7"`)}); err == nil {
		t.Error("grant D with another amount was accepted")
	}
	ingest(t, f, event("e1", "c1", day(2026, 11, 10, 0), 6_000)) // $6: A 2, B 3, C 1
	grant("E", "10", 0, &nov20)
	ingest(t, f, event("e2", "c1", day(2026, 11, 12, 0), 1_000)) // $1: E (expires first among priority 0)
	f.clock.Set(day(2026, 11, 22, 0))
	ingest(t, f, event("e3", "c1", day(2026, 11, 21, 0), 10_000)) // $10: E expired → C 4, D 4, 2 uncovered

	page, err := f.svc.Burns(ctx, "c1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range page.Items {
		id := b.GrantID
		if id == "" {
			id = "uncovered"
		}
		got = append(got, fmt.Sprintf("%s:%s=%s", strings.TrimPrefix(b.EventKey, "id:"), id, b.Amount))
	}
	want := "e1:A=2 e1:B=3 e1:C=1 e2:E=1 e3:C=4 e3:D=4 e3:uncovered=2"
	if strings.Join(got, " ") != want {
		t.Errorf("burns = %s\nwant    %s", strings.Join(got, " "), want)
	}
	w, err := f.svc.Wallet(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if w.Available != "0" || w.Expired != "9" || w.Uncovered != "2" || w.Net != "-2" || !w.BelowThreshold {
		t.Errorf("wallet = available %s expired %s uncovered %s net %s below %v; want 0, 9, 2, -2, true", w.Available, w.Expired, w.Uncovered, w.Net, w.BelowThreshold)
	}
	notes, err := f.svc.Notices(ctx, "c1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes.Items) != 1 || notes.Items[0].Kind != "low_balance" || notes.Items[0].EventKey != "id:e3" {
		t.Errorf("notices = %+v, want one low_balance from e3", notes.Items)
	}
	// A restart rebuilds the wallet from the ledger.
	path := f.path
	f.close()
	g := newFixture(t, path, Options{})
	g.clock.Set(day(2026, 11, 22, 0))
	w2, err := g.svc.Wallet(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if w2.Available != w.Available || w2.Net != w.Net || w2.Expired != w.Expired {
		t.Errorf("after restart wallet = %+v, want %+v", w2, w)
	}
	// The period's invoice applies the credits: 17.00 total, 15.00 from the wallet, 2.00 due.
	g.clock.Set(day(2026, 12, 1, 2))
	issued, err := g.svc.CloseDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != 1 || issued[0].Total != "17.00" || issued[0].WalletCredits != "15.00" || issued[0].AmountDue != "2.00" {
		t.Fatalf("issued = %+v, want one invoice of 17.00 with 15.00 credits and 2.00 due", issued)
	}
}

const catalogV1Payg = `currency: USD
meters: [{key: tokens}]
plans:
  - key: payg
    charges:
      - {key: tok, meter: tokens, model: perUnit, unitPrice: "1.00", per: 1000}
`

const closeCatalog = `currency: USD
meters: [{key: tokens}, {key: calls, aggregation: count, eventType: call}]
plans:
  - key: payg
    minimumCommitment: "10.00"
    charges:
      - {key: platform, model: flat, amount: "2.00"}
      - {key: tok, meter: tokens, model: graduated, per: 1000,
         tiers: [{upTo: 5000, unitPrice: "1.00"}, {unitPrice: "0.50"}]}
      - {key: calls, meter: calls, model: package, packageSize: 3, packagePrice: "0.10"}
`

// TestPeriodClose: periods anchored on the 31st close after the grace window, oldest first,
// with sequential numbers; an event late but inside the grace window is on its period's
// invoice; one after the close is billed in the open period as an adjustment naming its period,
// and the issued invoice never changes; the commitment true-up and the simulator agree.
func TestPeriodClose(t *testing.T) {
	f := newFixture(t, "", Options{Grace: time.Hour})
	ctx := context.Background()
	f.clock.Set(day(2026, 2, 1, 0))
	if _, err := f.svc.ApplyCatalog(ctx, []byte(closeCatalog)); err != nil {
		t.Fatal(err)
	}
	start := day(2026, 1, 31, 0)
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{Plan: "payg", SubscriptionStart: &start}); err != nil {
		t.Fatal(err)
	}
	var all []usage.Event
	send := func(evs ...usage.Event) {
		t.Helper()
		ingest(t, f, evs...)
		all = append(all, evs...)
	}
	send(event("feb1", "c1", day(2026, 2, 10, 0), 3_000), event("feb2", "c1", day(2026, 2, 27, 23), 4_000))
	// Feb 28, 00:30: the first period (Jan 31 – Feb 28) ended, but the grace window is open.
	f.clock.Set(day(2026, 2, 28, 0).Add(30 * time.Minute))
	if issued, err := f.svc.CloseDue(ctx); err != nil || len(issued) != 0 {
		t.Fatalf("inside the grace window: issued %d (%v), want none", len(issued), err)
	}
	send(event("late-in-grace", "c1", day(2026, 2, 27, 23).Add(30*time.Minute), 1_000))
	send(event("mar1", "c1", day(2026, 3, 5, 0), 1_000))
	f.clock.Set(day(2026, 2, 28, 1))
	issued, err := f.svc.CloseDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != 1 {
		t.Fatalf("issued %d invoices at the end of grace, want 1", len(issued))
	}
	jan := issued[0]
	if !jan.PeriodStart.Equal(start) || !jan.PeriodEnd.Equal(day(2026, 2, 28, 0)) || jan.Events != 3 {
		t.Errorf("first invoice covers %s – %s with %d events, want Jan 31 – Feb 28 with 3", jan.PeriodStart, jan.PeriodEnd, jan.Events)
	}
	// 8000 tokens: 5000 × 1.00 + 3000 × 0.50 per 1000 = 6.50; 3 calls = 1 package = 0.10;
	// platform 2.00: 8.60, trued up to the 10.00 commitment.
	if jan.Total != "10.00" || jan.AmountDue != "10.00" || jan.Number == 0 || jan.Status != "final" {
		t.Errorf("first invoice = total %s due %s number %d status %s, want 10.00 due 10.00", jan.Total, jan.AmountDue, jan.Number, jan.Status)
	}
	checkSimulated(t, f, closeCatalog, start, all[:3], jan)

	// Closing again changes nothing and issues nothing.
	if again, err := f.svc.CloseDue(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second close issued %d (%v)", len(again), err)
	}
	// A late event for the closed period, after its close: billed in the open period (Feb 28 –
	// Mar 31) as an adjustment naming the closed one.
	f.clock.Set(day(2026, 3, 10, 0))
	r := ingest(t, f, event("late-after-close", "c1", day(2026, 2, 20, 0), 2_000))
	// Rated on its own period's running quantities: 2000 more tokens in the second tier
	// (2 × 0.50) and a fourth call opening a second package of 3 (0.10).
	if r.Events[0].Amount != "1.1" {
		t.Errorf("late event rated %s, want 1.1", r.Events[0].Amount)
	}
	iv, err := f.svc.InvoicePreview(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var adj *struct{ l string }
	for _, l := range iv.Lines {
		if l.AdjustsPeriod != nil && l.Charge == "tok" {
			if !l.AdjustsPeriod.PeriodStart.Equal(start) || l.PreciseAmount != "1" || l.Charge != "tok" || l.Attribution == "" {
				t.Errorf("adjustment line = %+v", l)
			}
			adj = &struct{ l string }{l.Charge}
			// Its attribution finds the late event.
			p, err := attributionParams("c1", l.Attribution)
			if err != nil {
				t.Fatal(err)
			}
			page, err := f.svc.Attribution(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 1 || page.Items[0].CorrelationID != "event:late-after-close" || page.Items[0].PreciseAmount != "1" {
				t.Errorf("adjustment attribution = %+v", page.Items)
			}
		}
	}
	if adj == nil {
		t.Fatalf("the open period's preview has no adjustment line: %+v", iv.Lines)
	}
	again, err := f.svc.Invoice(ctx, jan.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(again)
	b, _ := json.Marshal(jan)
	if !bytes.Equal(a, b) {
		t.Errorf("the issued invoice changed:\n%s\n%s", a, b)
	}
	// The next period closes at its end with the adjustment on it, numbered next.
	f.clock.Set(day(2026, 3, 31, 1))
	issued, err = f.svc.CloseDue(ctx)
	if err != nil || len(issued) != 1 {
		t.Fatalf("closing the second period: %d (%v)", len(issued), err)
	}
	feb := issued[0]
	if feb.Number != jan.Number+1 || !feb.PeriodStart.Equal(day(2026, 2, 28, 0)) || !feb.PeriodEnd.Equal(day(2026, 3, 31, 0)) {
		t.Errorf("second invoice #%d covers %s – %s", feb.Number, feb.PeriodStart, feb.PeriodEnd)
	}
	// 1000 tokens 1.00 + 1 call 0.10 + platform 2.00 = 3.10 → commitment 10.00, plus the
	// adjustments 1.10 outside the commitment: 11.10.
	if feb.Total != "11.10" {
		t.Errorf("second invoice total %s, want 11.10: %+v", feb.Total, feb.Lines)
	}
	// CSV: one row per attributed key; the rows of each line add up to the line.
	data, err := f.svc.InvoiceCSV(ctx, feb.ID)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]money.Decimal{}
	lines := map[string]string{}
	for _, row := range rows[1:] {
		k := row[4] + "/" + row[6] + "/" + row[7]
		lines[k] = row[9]
		if row[14] != "" {
			sums[k] = sums[k].Add(money.MustParse(row[14]))
		}
	}
	for k, s := range sums {
		if !s.Equal(money.MustParse(lines[k])) {
			t.Errorf("CSV rows of %s add up to %s, line says %s", k, s, lines[k])
		}
	}
	list, err := f.svc.Invoices(ctx, "c1", "", 10)
	if err != nil || len(list.Items) != 2 || list.Items[0].ID != jan.ID {
		t.Errorf("invoice list = %+v (%v)", list, err)
	}
}

// checkSimulated compares an issued invoice with the simulator's invoice over the same events.
func checkSimulated(t *testing.T, f *fixture, doc string, anchor time.Time, evs []usage.Event, got FinalInvoice) {
	t.Helper()
	cat, err := catalog.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, ev := range evs {
		buf.Write(eventJSONL(ev))
	}
	res, err := simulate.Run(cat, &buf, "events", simulate.JSONL, simulate.Options{Anchor: anchor})
	if err != nil {
		t.Fatal(err)
	}
	invs := res.JSON().Invoices
	if len(invs) != 1 {
		t.Fatalf("the simulator made %d invoices", len(invs))
	}
	want := invs[0]
	if want.Total != got.Total || want.PreciseTotal != got.PreciseTotal || len(want.Lines) != len(got.Lines) {
		t.Fatalf("invoice total %s (%s), %d lines; simulator %s (%s), %d lines", got.Total, got.PreciseTotal, len(got.Lines), want.Total, want.PreciseTotal, len(want.Lines))
	}
	for i := range want.Lines {
		w, g := want.Lines[i], got.Lines[i]
		if w.Charge != g.Charge || w.Quantity != g.Quantity || w.PreciseAmount != g.PreciseAmount || w.Amount != g.Amount {
			t.Errorf("line %d = %+v, simulator %+v", i, g, w)
		}
	}
}

func eventJSONL(ev usage.Event) []byte {
	var m []string
	for _, x := range ev.Measurements {
		m = append(m, fmt.Sprintf(`{"metricKey":%q,"value":%s}`, x.MetricKey, x.Value.String()))
	}
	return []byte(fmt.Sprintf(`{"id":%q,"eventType":%q,"customerId":%q,"timestamp":%q,"measurements":[%s]}`+"\n",
		ev.ID, ev.EventType, ev.CustomerID, ev.Timestamp.Format(time.RFC3339Nano), strings.Join(m, ",")))
}
