package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// This file holds the cases of what issue 4 added: what events carry (burns, transitions,
// notices), late events billed into another period, scans, periods, adjustments, cursors,
// grants and invoices.

// ledgerTests are the cases of this file, run by Exercise.
var ledgerTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"CarriedRoundTrip", testCarriedRoundTrip},
	{"CarriedAllOrNothing", testCarriedAllOrNothing},
	{"CarriedRejectsBadInput", testCarriedRejectsBadInput},
	{"BilledRoundTrip", testBilledRoundTrip},
	{"ScanEvents", testScanEvents},
	{"EventPeriods", testEventPeriods},
	{"Adjustments", testAdjustments},
	{"AdjustmentsManyEvents", testAdjustmentsManyEvents},
	{"AttributionBilled", testAttributionBilled},
	{"Cursors", testCursors},
	{"TierTransitions", testTierTransitions},
	{"Grants", testGrants},
	{"ListBurnsPages", testListBurnsPages},
	{"ListNoticesPages", testListNoticesPages},
	{"Invoices", testInvoices},
	{"InvoicesConcurrent", testInvoicesConcurrent},
	{"CustomerTierAndLowBalance", testCustomerTierAndLowBalance},
	{"LedgerInvalidText", testLedgerInvalidText},
}

var (
	tPrev = t0.AddDate(0, -1, 0)
	tNext = tEnd.AddDate(0, 1, 0)
)

func sameBurn(t *testing.T, what string, got, want store.WalletBurn) {
	t.Helper()
	if got.CustomerID != want.CustomerID || got.GrantID != want.GrantID || got.EventSeq != want.EventSeq ||
		got.EventKey != want.EventKey || got.PlanVersionID != want.PlanVersionID {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
	sameTime(t, what+" At", got.At, want.At)
	sameTime(t, what+" PeriodStart", got.PeriodStart, want.PeriodStart)
	sameDec(t, what+" Amount", got.Amount, want.Amount)
}

func sameBurns(t *testing.T, what string, got, want []store.WalletBurn) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d burns, want %d:\n%+v", what, len(got), len(want), got)
	}
	for i := range got {
		sameBurn(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func sameTransition(t *testing.T, what string, got, want store.TierTransition) {
	t.Helper()
	if got.ID != want.ID || got.CustomerID != want.CustomerID || got.From != want.From || got.To != want.To ||
		got.Reason != want.Reason || got.Basis != want.Basis || got.EventSeq != want.EventSeq ||
		got.EventKey != want.EventKey || got.EventID != want.EventID || got.CorrelationID != want.CorrelationID {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
	sameTime(t, what+" At", got.At, want.At)
	sameTime(t, what+" BasisPeriodStart", got.BasisPeriodStart, want.BasisPeriodStart)
	sameDec(t, what+" Spend", got.Spend, want.Spend)
}

func sameNotice(t *testing.T, what string, got, want store.Notice) {
	t.Helper()
	if got.ID != want.ID || got.CustomerID != want.CustomerID || got.Kind != want.Kind ||
		got.EventSeq != want.EventSeq || got.EventKey != want.EventKey || !bytes.Equal(got.Data, want.Data) ||
		(got.Data == nil) != (want.Data == nil) {
		t.Errorf("%s = %+v (data %q)\nwant %+v (data %q)", what, got, got.Data, want, want.Data)
	}
	sameTime(t, what+" At", got.At, want.At)
}

// promotion is a promotion of cust from → to on the period basis of start.
func promotion(from, to string, start time.Time, spend string) store.TierTransition {
	return store.TierTransition{At: start.Add(time.Hour), From: from, To: to, Reason: store.ReasonPromotion,
		Basis: "periodSpend", BasisPeriodStart: start, Spend: dec(spend)}
}

// burn is a burn of grant in the period (pv 1, t0) at the event's time.
func burn(grant, amount string, at time.Time) store.WalletBurn {
	return store.WalletBurn{GrantID: grant, At: at, PlanVersionID: 1, PeriodStart: t0, Amount: dec(amount)}
}

func testCarriedRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ts := time.Date(2026, 11, 3, 4, 5, 6, 123456789, tokyo)
	e1 := event(store.IDKey("e1"), "e1", "cust", "req-1", ts, 1, line("c", "1.5"))
	e1.Burns = []store.WalletBurn{
		burn("g_paid", "0.000000000000000001", ts),
		{CustomerID: "cust", GrantID: "", At: ts, PlanVersionID: 2, PeriodStart: tEnd.In(tokyo),
			Amount: dec("-12345678901234567890.5")},
	}
	e1.Transitions = []store.TierTransition{promotion("free", "build", t0.In(tokyo), "100.000000001")}
	e1.Notices = []store.Notice{{Kind: store.NoticeLowBalance, At: ts, Data: []byte(`{"balance": "0.5", "note": "café"}`)}}
	e2 := event(store.IDKey("e2"), "e2", "cust", "", ts.Add(time.Second), 1, line("c", "1"))
	e3 := event("type:e3", "", "cust", "", ts.Add(2*time.Second), 1, line("c", "2"))
	e3.Burns = []store.WalletBurn{burn("g_promo", "3", ts.Add(2*time.Second))}
	e3.Transitions = []store.TierTransition{{At: ts, From: "build", To: "scale", Reason: store.ReasonPeriodReset,
		Basis: "lifetimeSpend", Spend: dec("0"), EventID: "given", CorrelationID: "given-corr"}}
	e3.Notices = []store.Notice{{CustomerID: "cust", Kind: "custom", At: time.Time{}}}
	other := event("other", "other", "cust2", "", ts, 1, line("c", "1"))
	other.Burns = []store.WalletBurn{burn("g_other", "1", ts)}
	must(t, s.InsertEvents(ctx, []*store.EventRecord{e1, e2, e3, other}), "insert")

	// What InsertEvents fills in on the passed structs.
	for _, e := range []*store.EventRecord{e1, e3} {
		for i, b := range e.Burns {
			if b.EventSeq != e.Seq || b.EventKey != e.Key || b.CustomerID != "cust" {
				t.Errorf("%s burn %d = %+v, want seq %d, key %s, customer cust", e.Key, i, b, e.Seq, e.Key)
			}
		}
		for i, tr := range e.Transitions {
			if tr.ID <= 0 || tr.EventSeq != e.Seq || tr.EventKey != e.Key || tr.CustomerID != "cust" {
				t.Errorf("%s transition %d = %+v, want an ID and the event's seq and key", e.Key, i, tr)
			}
		}
		for i, n := range e.Notices {
			if n.ID <= 0 || n.EventSeq != e.Seq || n.EventKey != e.Key || n.CustomerID != "cust" {
				t.Errorf("%s notice %d = %+v, want an ID and the event's seq and key", e.Key, i, n)
			}
		}
	}
	if e1.Transitions[0].EventID != "e1" || e1.Transitions[0].CorrelationID != "req-1" {
		t.Errorf("transition of e1 = %+v, want the event's ID and correlation ID", e1.Transitions[0])
	}
	if e3.Transitions[0].EventID != "given" || e3.Transitions[0].CorrelationID != "given-corr" {
		t.Errorf("transition of e3 = %+v, want the given event ID and correlation ID kept", e3.Transitions[0])
	}
	if e3.Transitions[0].ID <= e1.Transitions[0].ID || e3.Notices[0].ID <= e1.Notices[0].ID {
		t.Errorf("IDs not increasing in slice order: transitions %d, %d; notices %d, %d",
			e1.Transitions[0].ID, e3.Transitions[0].ID, e1.Notices[0].ID, e3.Notices[0].ID)
	}
	if e2.Burns != nil || e2.Transitions != nil || e2.Notices != nil {
		t.Errorf("e2 carries %+v %+v %+v after insert, want nothing", e2.Burns, e2.Transitions, e2.Notices)
	}

	// Everything reads back exactly as filled in.
	burns, err := s.ListBurns(ctx, "cust", 0, 0)
	must(t, err, "list burns")
	sameBurns(t, "burns", burns, []store.WalletBurn{e1.Burns[0], e1.Burns[1], e3.Burns[0]})
	if len(burns) > 1 && burns[1].Amount.String() != "-12345678901234567890.5" {
		t.Errorf("burn amount = %s, not exact", burns[1].Amount)
	}
	trs, err := s.TierTransitions(ctx, "cust", 0, 0)
	must(t, err, "transitions")
	if len(trs) != 2 {
		t.Fatalf("transitions = %+v, want 2", trs)
	}
	sameTransition(t, "transition 0", trs[0], e1.Transitions[0])
	sameTransition(t, "transition 1", trs[1], e3.Transitions[0])
	ns, err := s.ListNotices(ctx, "cust", 0, 0)
	must(t, err, "notices")
	if len(ns) != 2 {
		t.Fatalf("notices = %+v, want 2", ns)
	}
	sameNotice(t, "notice 0", ns[0], e1.Notices[0])
	sameNotice(t, "notice 1", ns[1], e3.Notices[0])
	if ns[1].Data != nil {
		t.Errorf("notice without data reads back %q, want nil", ns[1].Data)
	}

	// ScanEvents returns the burns with their events, and no lines.
	var scanned []store.EventRecord
	must(t, s.ScanEvents(ctx, store.ScanParams{CustomerID: "cust"}, func(e *store.EventRecord) error {
		scanned = append(scanned, *e)
		return nil
	}), "scan")
	if len(scanned) != 3 {
		t.Fatalf("scanned %d events, want 3", len(scanned))
	}
	for i, want := range []*store.EventRecord{e1, e2, e3} {
		sameEvent(t, scanned[i], want, false)
		sameBurns(t, "scanned burns of "+want.Key, scanned[i].Burns, want.Burns)
		if scanned[i].Transitions != nil || scanned[i].Notices != nil {
			t.Errorf("scan returned transitions or notices for %s", want.Key)
		}
	}
	if scanned[1].Burns != nil {
		t.Errorf("event without burns scanned with %+v", scanned[1].Burns)
	}

	// The other customer's records are its own.
	burns, err = s.ListBurns(ctx, "cust2", 0, 0)
	must(t, err, "list burns of cust2")
	sameBurns(t, "burns of cust2", burns, other.Burns)
	ns, err = s.ListNotices(ctx, "cust2", 0, 0)
	must(t, err, "notices of cust2")
	trs, err2 := s.TierTransitions(ctx, "cust2", 0, 0)
	must(t, err2, "transitions of cust2")
	if len(ns) != 0 || len(trs) != 0 {
		t.Errorf("cust2 has notices %+v and transitions %+v, want none", ns, trs)
	}
}

// ledgerCounts is what a customer has in the store, to check that a failed batch wrote nothing.
func ledgerCounts(t *testing.T, s store.Store, cust string) (events, burns, transitions, notices int) {
	t.Helper()
	ctx := context.Background()
	must(t, s.ScanEvents(ctx, store.ScanParams{CustomerID: cust}, func(*store.EventRecord) error {
		events++
		return nil
	}), "scan")
	bs, err := s.ListBurns(ctx, cust, 0, 0)
	must(t, err, "burns")
	ts, err := s.TierTransitions(ctx, cust, 0, 0)
	must(t, err, "transitions")
	ns, err := s.ListNotices(ctx, cust, 0, 0)
	must(t, err, "notices")
	return events, len(bs), len(ts), len(ns)
}

func testCarriedAllOrNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := event("a", "a", "cust", "", t0.Add(time.Hour), 1, line("c", "1"))
	a.Transitions = []store.TierTransition{promotion("free", "build", t0, "100")}
	must(t, s.InsertEvents(ctx, []*store.EventRecord{a}), "insert a")

	check := func(what string, wantEvents, wantTransitions int) {
		t.Helper()
		ev, bs, ts, ns := ledgerCounts(t, s, "cust")
		if ev != wantEvents || bs != 0 || ts != wantTransitions || ns != 0 {
			t.Errorf("%s: %d events, %d burns, %d transitions, %d notices; want %d, 0, %d, 0",
				what, ev, bs, ts, ns, wantEvents, wantTransitions)
		}
	}
	carrying := func(key string, tr ...store.TierTransition) *store.EventRecord {
		e := event(key, key, "cust", "", t0.Add(2*time.Hour), 1, line("c", "2"))
		e.Burns = []store.WalletBurn{burn("g", "2", e.Timestamp)}
		e.Notices = []store.Notice{{Kind: store.NoticeLowBalance, At: e.Timestamp}}
		e.Transitions = tr
		return e
	}

	// The same promotion again, carried by the last event of a batch: nothing at all is written.
	b := carrying("b")
	c := carrying("c", promotion("free", "build", t0, "150"))
	err := s.InsertEvents(ctx, []*store.EventRecord{b, c})
	mustIs(t, err, store.ErrConflict, "batch repeating a stored promotion")
	check("after a repeated promotion", 1, 1)
	if b.Seq != 0 || c.Seq != 0 || b.Burns[0].EventSeq != 0 || b.Burns[0].EventKey != "" ||
		b.Notices[0].ID != 0 || c.Transitions[0].ID != 0 || c.Transitions[0].EventSeq != 0 {
		t.Errorf("failed batch filled in records: %+v %+v %+v", b.Burns, b.Notices, c.Transitions)
	}

	// The same promotion twice within one batch.
	d1 := carrying("d1", promotion("build", "scale", t0, "500"))
	d2 := carrying("d2", promotion("build", "scale", t0, "501"))
	mustIs(t, s.InsertEvents(ctx, []*store.EventRecord{d1, d2}), store.ErrConflict, "batch repeating a promotion")
	check("after a promotion repeated within a batch", 1, 1)

	// A stored idempotency key after events that carry things.
	e := carrying("e", promotion("build", "scale", t0, "500"))
	dupA := carrying("a")
	mustIs(t, s.InsertEvents(ctx, []*store.EventRecord{e, dupA}), store.ErrConflict, "batch with a stored key")
	check("after a stored key", 1, 1)
	if e.Transitions[0].ID != 0 || e.Burns[0].EventSeq != 0 {
		t.Errorf("failed batch filled in records: %+v %+v", e.Transitions, e.Burns)
	}

	// The promotion in another basis period, a period reset with the same tiers, and overrides
	// (which may repeat) are all new.
	reset := promotion("free", "build", t0, "0")
	reset.Reason = store.ReasonPeriodReset
	override := store.TierTransition{At: t0, From: "free", To: "build", Reason: store.ReasonOverride, Spend: dec("0")}
	f := carrying("f", promotion("free", "build", tEnd, "100"), reset, override)
	g := carrying("g", override)
	must(t, s.InsertEvents(ctx, []*store.EventRecord{b, f, g}), "insert b, f, g")
	check2 := func() {
		ev, bs, ts, ns := ledgerCounts(t, s, "cust")
		if ev != 4 || bs != 3 || ts != 5 || ns != 3 {
			t.Errorf("after success: %d events, %d burns, %d transitions, %d notices; want 4, 3, 5, 3", ev, bs, ts, ns)
		}
	}
	check2()
	_, err = s.InsertTierTransition(ctx, store.TierTransition{CustomerID: "cust", At: t0, From: "free", To: "build",
		Reason: store.ReasonPeriodReset, Basis: "periodSpend", BasisPeriodStart: t0, Spend: dec("0")})
	mustIs(t, err, store.ErrConflict, "InsertTierTransition repeating a stored period reset")
	check2()
}

func testCarriedRejectsBadInput(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := []struct {
		name string
		edit func(e *store.EventRecord)
	}{
		{"burn of another customer", func(e *store.EventRecord) {
			e.Burns = []store.WalletBurn{{CustomerID: "other", Amount: dec("1")}}
		}},
		{"NUL in grant ID", func(e *store.EventRecord) { e.Burns = []store.WalletBurn{{GrantID: "g\x00"}} }},
		{"burn time out of range", func(e *store.EventRecord) {
			e.Burns = []store.WalletBurn{{At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}}
		}},
		{"unknown reason", func(e *store.EventRecord) {
			e.Transitions = []store.TierTransition{{From: "a", To: "b", Reason: "because"}}
		}},
		{"transition of another customer", func(e *store.EventRecord) {
			tr := promotion("a", "b", t0, "1")
			tr.CustomerID = "other"
			e.Transitions = []store.TierTransition{tr}
		}},
		{"invalid UTF-8 in tier", func(e *store.EventRecord) {
			e.Transitions = []store.TierTransition{promotion("\xff", "b", t0, "1")}
		}},
		{"notice data not JSON", func(e *store.EventRecord) {
			e.Notices = []store.Notice{{Kind: store.NoticeLowBalance, Data: []byte("{balance")}}
		}},
		{"notice without kind", func(e *store.EventRecord) { e.Notices = []store.Notice{{}} }},
		{"billed plan version without start", func(e *store.EventRecord) { e.BilledPlanVersionID = 2 }},
		{"billed start without plan version", func(e *store.EventRecord) { e.BilledPeriodStart = tEnd }},
	}
	for i, tc := range bad {
		ok := event(fmt.Sprintf("fine-%d", i), "", "cust", "", t0, 1)
		ok.Burns = []store.WalletBurn{burn("g", "1", t0)}
		e := event(fmt.Sprintf("bad-%d", i), "", "cust", "", t0, 1, line("c", "1"))
		tc.edit(e)
		err := s.InsertEvents(ctx, []*store.EventRecord{ok, e})
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a plain error", tc.name, err)
		}
		if ok.Seq != 0 || ok.Burns[0].EventSeq != 0 {
			t.Errorf("%s: rejected batch filled in seqs", tc.name)
		}
	}
	if ev, bs, ts, ns := ledgerCounts(t, s, "cust"); ev+bs+ts+ns != 0 {
		t.Errorf("rejected batches wrote %d events, %d burns, %d transitions, %d notices", ev, bs, ts, ns)
	}
}

// late is an event rated in (pv 1, start) and billed into (billedPV, billedStart).
func late(key, customer, correlation string, start time.Time, billedPV int64, billedStart time.Time, lines ...store.RatedLine) *store.EventRecord {
	e := event(key, key, customer, correlation, start.Add(time.Hour), 1, lines...)
	e.PeriodStart, e.PeriodEnd = start, start.AddDate(0, 1, 0)
	e.BilledPlanVersionID, e.BilledPeriodStart = billedPV, billedStart
	return e
}

func testBilledRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	lateEv := late(store.IDKey("late"), "cust", "corr", t0, 2, tEnd.In(tokyo), line("c", "1"))
	plain := late(store.IDKey("plain"), "cust", "corr", t0, 0, time.Time{}, line("c", "2"))
	// Billed where it is rated: stored as not billed elsewhere, read back as zero.
	same := late(store.IDKey("same"), "cust", "corr", t0, 1, t0.In(tokyo), line("c", "3"))
	lateEv.ID, plain.ID, same.ID = "late", "plain", "same"
	must(t, s.InsertEvents(ctx, []*store.EventRecord{lateEv, plain, same}), "insert")
	same.BilledPlanVersionID, same.BilledPeriodStart = 0, time.Time{}
	want := map[string]*store.EventRecord{lateEv.Key: lateEv, plain.Key: plain, same.Key: same}

	checkBilled := func(how string, got *store.EventRecord) {
		t.Helper()
		w := want[got.Key]
		if w == nil {
			t.Fatalf("%s returned unknown event %s", how, got.Key)
		}
		if got.BilledPlanVersionID != w.BilledPlanVersionID {
			t.Errorf("%s %s: BilledPlanVersionID = %d, want %d", how, got.Key, got.BilledPlanVersionID, w.BilledPlanVersionID)
		}
		sameTime(t, how+" "+got.Key+" BilledPeriodStart", got.BilledPeriodStart, w.BilledPeriodStart)
		sameTime(t, how+" "+got.Key+" PeriodStart", got.PeriodStart, w.PeriodStart)
	}
	for _, id := range []string{"late", "plain", "same"} {
		e, err := s.GetEvent(ctx, id)
		must(t, err, "get "+id)
		checkBilled("GetEvent", &e)
	}
	evs, err := s.EventsByCorrelation(ctx, "corr", 0)
	must(t, err, "by correlation")
	for i := range evs {
		checkBilled("EventsByCorrelation", &evs[i])
	}
	calls := 0
	collect := func(how string) func(*store.EventRecord) error {
		return func(e *store.EventRecord) error {
			calls++
			checkBilled(how, e)
			return nil
		}
	}
	must(t, s.ReplayPeriod(ctx, store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}, collect("ReplayPeriod")), "replay")
	must(t, s.ListEvents(ctx, "cust", t0, tEnd, collect("ListEvents")), "list")
	must(t, s.ScanEvents(ctx, store.ScanParams{}, collect("ScanEvents")), "scan")
	if len(evs) != 3 || calls != 9 {
		t.Errorf("read %d events by correlation and %d by replay, list and scan; want 3 and 9", len(evs), calls)
	}
}

func testScanEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []*store.EventRecord
	byCust := map[string][]*store.EventRecord{}
	for batch := range 3 {
		var evs []*store.EventRecord
		for i := range 7 {
			n := batch*7 + i
			cust := []string{"a", "b", "c"}[n%3]
			e := event(fmt.Sprintf("k%02d", n), fmt.Sprintf("e%02d", n), cust, "", t0.Add(time.Duration(n)*time.Minute), 1, line("c", "1"))
			for j := range n % 4 {
				e.Burns = append(e.Burns, burn(fmt.Sprintf("g%d", 3-j), fmt.Sprintf("%d.%d", n, j), e.Timestamp))
			}
			evs = append(evs, e)
			byCust[cust] = append(byCust[cust], e)
		}
		must(t, s.InsertEvents(ctx, evs), "insert")
		all = append(all, evs...)
	}
	scan := func(p store.ScanParams) []store.EventRecord {
		t.Helper()
		var got []store.EventRecord
		var last int64
		must(t, s.ScanEvents(ctx, p, func(e *store.EventRecord) error {
			if e.Seq <= last || e.Seq <= p.AfterSeq {
				t.Errorf("scan %+v: seq %d after %d (afterSeq %d)", p, e.Seq, last, p.AfterSeq)
			}
			last = e.Seq
			if e.Lines != nil {
				t.Errorf("scan returned lines of %s", e.Key)
			}
			got = append(got, *e)
			return nil
		}), fmt.Sprintf("scan %+v", p))
		return got
	}
	same := func(what string, got []store.EventRecord, want []*store.EventRecord) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
		}
		for i := range got {
			sameEvent(t, got[i], want[i], false)
			sameBurns(t, what+" burns of "+want[i].Key, got[i].Burns, want[i].Burns)
		}
	}
	same("all", scan(store.ScanParams{}), all)
	same("after the 5th", scan(store.ScanParams{AfterSeq: all[4].Seq}), all[5:])
	same("first 4", scan(store.ScanParams{Limit: 4}), all[:4])
	same("none after the last", scan(store.ScanParams{AfterSeq: all[len(all)-1].Seq}), nil)

	// One customer, page by page.
	var paged []store.EventRecord
	after := int64(0)
	for page := 0; ; page++ {
		if page > len(byCust["b"]) {
			t.Fatal("pagination does not end")
		}
		got := scan(store.ScanParams{CustomerID: "b", AfterSeq: after, Limit: 2})
		if len(got) > 2 {
			t.Fatalf("page of %d events, limit 2", len(got))
		}
		if len(got) == 0 {
			break
		}
		paged = append(paged, got...)
		after = got[len(got)-1].Seq
	}
	same("customer b by pages", paged, byCust["b"])
	same("unknown customer", scan(store.ScanParams{CustomerID: "nobody"}), nil)

	stop := errors.New("stop")
	calls := 0
	err := s.ScanEvents(ctx, store.ScanParams{}, func(*store.EventRecord) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("scan with failing fn: %v after %d calls, want stop after 1", err, calls)
	}
	// fn may use the store while the scan runs.
	must(t, s.ScanEvents(ctx, store.ScanParams{CustomerID: "a"}, func(e *store.EventRecord) error {
		bs, err := s.ListBurns(ctx, "a", e.Seq-1, 0)
		if err == nil && len(e.Burns) > 0 && (len(bs) == 0 || bs[0].EventSeq != e.Seq) {
			err = fmt.Errorf("burns after %d = %+v", e.Seq-1, bs)
		}
		return err
	}), "scan calling the store")
}

func testEventPeriods(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := func(key, cust string, pv int64, start, end time.Time) *store.EventRecord {
		e := event(key, key, cust, "", t0, pv, line("c", "1"))
		e.PeriodStart, e.PeriodEnd = start, end
		return e
	}
	var evs []*store.EventRecord
	// Many events per period, periods inserted out of order, two plan versions sharing a start,
	// a late event (its rated period counts), an event with zero period times.
	for i := range 30 {
		evs = append(evs,
			in(fmt.Sprintf("cur-%d", i), "cust", 2, tEnd, tNext),
			in(fmt.Sprintf("old-%d", i), "cust", 1, t0, tEnd),
			in(fmt.Sprintf("other-%d", i), "other", 1, tPrev, t0))
	}
	evs = append(evs,
		in("pv3", "cust", 3, tEnd, tNext),
		in("prev", "cust", 1, tPrev, t0),
		in("pv5", "cust", 5, tPrev, t0), // a later plan version with an earlier start
		in("zero", "cust", 0, time.Time{}, time.Time{}),
		late("late", "cust", "", tPrev.AddDate(0, -1, 0), 2, tEnd))
	must(t, s.InsertEvents(ctx, evs), "insert")
	got, err := s.EventPeriods(ctx, "cust")
	must(t, err, "periods")
	want := []store.PeriodRef{
		{PlanVersionID: 0},
		{PlanVersionID: 1, Start: tPrev.AddDate(0, -1, 0), End: tPrev},
		{PlanVersionID: 1, Start: tPrev, End: t0},
		{PlanVersionID: 5, Start: tPrev, End: t0},
		{PlanVersionID: 1, Start: t0, End: tEnd},
		{PlanVersionID: 2, Start: tEnd, End: tNext},
		{PlanVersionID: 3, Start: tEnd, End: tNext},
	}
	if len(got) != len(want) {
		t.Fatalf("periods = %+v\nwant %+v", got, want)
	}
	for i := range got {
		if got[i].PlanVersionID != want[i].PlanVersionID {
			t.Errorf("period %d plan version = %d, want %d", i, got[i].PlanVersionID, want[i].PlanVersionID)
		}
		sameTime(t, fmt.Sprintf("period %d start", i), got[i].Start, want[i].Start)
		sameTime(t, fmt.Sprintf("period %d end", i), got[i].End, want[i].End)
	}
	none, err := s.EventPeriods(ctx, "nobody")
	must(t, err, "periods of unknown customer")
	if len(none) != 0 {
		t.Errorf("unknown customer's periods = %+v", none)
	}
}

// adjRow is an expected adjustment row.
type adjRow struct {
	pv                    int64
	start                 time.Time
	charge, group, typ    string
	events                int64
	qty, amount, costWant string
}

func sameAdjustments(t *testing.T, got []store.AdjustmentRow, want []adjRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("adjustments = %+v\nwant %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Rated.PlanVersionID != w.pv || g.Charge != w.charge || g.Group != w.group || g.Type != w.typ || g.Events != w.events {
			t.Errorf("adjustment %d = %+v, want %+v", i, g, w)
		}
		sameTime(t, fmt.Sprintf("adjustment %d rated start", i), g.Rated.Start, w.start)
		sameTime(t, fmt.Sprintf("adjustment %d rated end", i), g.Rated.End, w.start.AddDate(0, 1, 0))
		sameDec(t, fmt.Sprintf("adjustment %d quantity", i), g.Quantity, dec(w.qty))
		sameDec(t, fmt.Sprintf("adjustment %d amount", i), g.Amount, dec(w.amount))
		sameDec(t, fmt.Sprintf("adjustment %d cost", i), g.Cost, dec(w.costWant))
	}
}

func testAdjustments(t *testing.T, s store.Store) {
	ctx := context.Background()
	billed := store.PeriodKey{CustomerID: "cust", PlanVersionID: 2, PeriodStart: tEnd}
	li := func(charge, group, typ, qty, amount, cost string) store.RatedLine {
		return store.RatedLine{Charge: charge, Group: group, Type: typ, Quantity: dec(qty), Amount: dec(amount), Cost: dec(cost)}
	}
	evs := []*store.EventRecord{
		// Rated in t0, billed into (2, tEnd): two events of in/g/usage, one with two such lines.
		late("l1", "cust", "", t0, 2, tEnd, li("in", "g", "usage", "1", "0.1", "0.01"), li("out", "", "usage", "2", "0.2", "0")),
		late("l2", "cust", "", t0, 2, tEnd.In(tokyo), li("in", "g", "usage", "3", "0.000000000000000001", "0"),
			li("in", "g", "usage", "4", "-0.3", "0.02")),
		// Rated in the period before: a row of its own, listed first.
		late("l3", "cust", "", tPrev, 2, tEnd, li("in", "g", "usage", "5", "12345678901234567890.5", "1")),
		// A late event without lines.
		late("l4", "cust", "", t0, 2, tEnd),
		// Not billed into (2, tEnd): billed elsewhere, billed where rated, another customer.
		late("x1", "cust", "", t0, 2, tNext, li("in", "g", "usage", "1", "9", "9")),
		late("x2", "cust", "", t0, 3, tEnd, li("in", "g", "usage", "1", "9", "9")),
		late("x3", "cust", "", t0, 0, time.Time{}, li("in", "g", "usage", "1", "9", "9")),
		late("x4", "other", "", t0, 2, tEnd, li("in", "g", "usage", "1", "9", "9")),
	}
	must(t, s.InsertEvents(ctx, evs), "insert")
	got, err := s.Adjustments(ctx, billed)
	must(t, err, "adjustments")
	sameAdjustments(t, got, []adjRow{
		{1, tPrev, "in", "g", "usage", 1, "5", "12345678901234567890.5", "1"},
		{1, t0, "in", "g", "usage", 2, "8", "-0.199999999999999999", "0.03"},
		{1, t0, "out", "", "usage", 1, "2", "0.2", "0"},
	})
	got, err = s.Adjustments(ctx, store.PeriodKey{CustomerID: "cust", PlanVersionID: 2, PeriodStart: t0})
	must(t, err, "adjustments of a period without late events")
	if len(got) != 0 {
		t.Errorf("adjustments of a period without late events = %+v", got)
	}
}

// testAdjustmentsManyEvents: thousands of late events over three rated periods and two charges
// add up exactly to sums computed here.
func testAdjustmentsManyEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	billed := store.PeriodKey{CustomerID: "cust", PlanVersionID: 7, PeriodStart: tNext}
	starts := []time.Time{tPrev, t0, tEnd}
	type key struct {
		start  int
		charge string
	}
	sums := map[key]*adjRow{}
	var evs []*store.EventRecord
	for i := range 2400 {
		si := (i * 7) % len(starts)
		charge := []string{"in", "out"}[i%2]
		qty := fmt.Sprintf("%d.%06d", i%13, i*31)
		amt := fmt.Sprintf("%d.%018d", i%7-3, i*104729)
		cost := fmt.Sprintf("0.%012d", i*7919)
		e := late(fmt.Sprintf("l%04d", i), "cust", "", starts[si], 7, tNext,
			store.RatedLine{Charge: charge, Type: "usage", Quantity: dec(qty), Amount: dec(amt), Cost: dec(cost)})
		evs = append(evs, e)
		k := key{si, charge}
		r := sums[k]
		if r == nil {
			r = &adjRow{pv: 1, start: starts[si], charge: charge, typ: "usage", qty: "0", amount: "0", costWant: "0"}
			sums[k] = r
		}
		r.events++
		r.qty = dec(r.qty).Add(dec(qty)).String()
		r.amount = dec(r.amount).Add(dec(amt)).String()
		r.costWant = dec(r.costWant).Add(dec(cost)).String()
	}
	for i := 0; i < len(evs); i += 600 {
		must(t, s.InsertEvents(ctx, evs[i:i+600]), "insert")
	}
	var want []adjRow
	for si := range starts {
		for _, c := range []string{"in", "out"} {
			want = append(want, *sums[key{si, c}])
		}
	}
	got, err := s.Adjustments(ctx, billed)
	must(t, err, "adjustments")
	sameAdjustments(t, got, want)
}

func testAttributionBilled(t *testing.T, s store.Store) {
	ctx := context.Background()
	rated := store.PeriodKey{CustomerID: "cust", PlanVersionID: 1, PeriodStart: t0}
	b1 := store.PeriodKey{CustomerID: "cust", PlanVersionID: 2, PeriodStart: tEnd}
	b2 := store.PeriodKey{CustomerID: "cust", PlanVersionID: 2, PeriodStart: tNext}
	evs := []*store.EventRecord{
		late("n1", "cust", "req-1", t0, 0, time.Time{}, line("c", "1")),
		late("n2", "cust", "req-2", t0, 0, time.Time{}, line("c", "2")),
		late("l1", "cust", "req-1", t0, 2, tEnd, line("c", "0.5")),
		late("l2", "cust", "req-3", t0, 2, tEnd, line("c", "0.25"), line("c", "0.25")),
		late("l3", "cust", "", t0, 2, tEnd, line("c", "0.125")),
		late("m1", "cust", "req-1", t0, 2, tNext, line("c", "7")),
		// Rated in another period and billed into b1: not in rated's attribution.
		late("o1", "cust", "req-1", tPrev, 2, tEnd, line("c", "9")),
	}
	must(t, s.InsertEvents(ctx, evs), "insert")
	attr := func(billed *store.PeriodKey, after string, limit int) []store.AttributionRow {
		t.Helper()
		rows, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: rated, Billed: billed, Charge: "c",
			Type: "usage", After: after, Limit: limit})
		must(t, err, "attribution")
		return rows
	}
	sameRows(t, attr(nil, "", 0), []store.AttributionRow{
		{Key: "req-1", Events: 1, Quantity: dec("1"), Amount: dec("1")},
		{Key: "req-2", Events: 1, Quantity: dec("1"), Amount: dec("2")},
	})
	wantB1 := []store.AttributionRow{
		{Key: "event:l3", Events: 1, Quantity: dec("1"), Amount: dec("0.125")},
		{Key: "req-1", Events: 1, Quantity: dec("1"), Amount: dec("0.5")},
		{Key: "req-3", Events: 1, Quantity: dec("2"), Amount: dec("0.5")},
	}
	sameRows(t, attr(&b1, "", 0), wantB1)
	// The billed period's customer may be left empty: it is the rated period's.
	sameRows(t, attr(&store.PeriodKey{PlanVersionID: 2, PeriodStart: tEnd.In(tokyo)}, "", 0), wantB1)
	sameRows(t, attr(&b1, "event:l3", 1), wantB1[1:2])
	sameRows(t, attr(&b2, "", 0), []store.AttributionRow{{Key: "req-1", Events: 1, Quantity: dec("1"), Amount: dec("7")}})

	_, err := s.Attribution(ctx, store.AttributionParams{PeriodKey: rated, Charge: "c", Type: "usage",
		Billed: &store.PeriodKey{CustomerID: "other", PlanVersionID: 2, PeriodStart: tEnd}})
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("attribution billed to another customer: %v, want a plain error", err)
	}
}

func testCursors(t *testing.T, s store.Store) {
	ctx := context.Background()
	get := func(name string, want int64) {
		t.Helper()
		v, err := s.Cursor(ctx, name)
		must(t, err, "cursor "+name)
		if v != want {
			t.Errorf("cursor %q = %d, want %d", name, v, want)
		}
	}
	get("counter", 0)
	must(t, s.SetCursor(ctx, "counter", 42), "set")
	get("counter", 42)
	must(t, s.SetCursor(ctx, "counter", 7), "set back")
	get("counter", 7)
	must(t, s.SetCursor(ctx, "Counter", -1), "set another")
	must(t, s.SetCursor(ctx, "ünï", 1<<62), "set a third")
	get("counter", 7)
	get("Counter", -1)
	get("ünï", 1<<62)
	get("other", 0)
	if err := s.SetCursor(ctx, "", 1); err == nil {
		t.Error("SetCursor with an empty name succeeded")
	}
}

func testTierTransitions(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 5, 1, 2, 3, 999999999, tokyo)
	var want []store.TierTransition
	for i := range 7 {
		for _, cust := range []string{"cust", "other"} {
			tr := store.TierTransition{CustomerID: cust, At: at.Add(time.Duration(i)), From: fmt.Sprintf("t%d", i),
				To: fmt.Sprintf("t%d", i+1), Reason: store.ReasonOverride, Spend: dec(fmt.Sprintf("%d.000000000000000001", i))}
			got, err := s.InsertTierTransition(ctx, tr)
			must(t, err, "insert transition")
			if got.ID <= 0 {
				t.Fatalf("transition ID = %d", got.ID)
			}
			tr.ID = got.ID
			sameTransition(t, "inserted", got, tr)
			if cust == "cust" {
				if len(want) > 0 && got.ID <= want[len(want)-1].ID {
					t.Errorf("transition IDs not increasing: %d after %d", got.ID, want[len(want)-1].ID)
				}
				want = append(want, tr)
			}
		}
	}
	var got []store.TierTransition
	after := int64(0)
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatal("pagination does not end")
		}
		trs, err := s.TierTransitions(ctx, "cust", after, 3)
		must(t, err, "page")
		if len(trs) > 3 {
			t.Fatalf("page of %d, limit 3", len(trs))
		}
		if len(trs) == 0 {
			break
		}
		got = append(got, trs...)
		after = trs[len(trs)-1].ID
	}
	if len(got) != len(want) {
		t.Fatalf("paged %d transitions, want %d", len(got), len(want))
	}
	for i := range got {
		sameTransition(t, fmt.Sprintf("transition %d", i), got[i], want[i])
	}
	for _, bad := range []store.TierTransition{
		{From: "a", To: "b", Reason: store.ReasonOverride},                         // no customer
		{CustomerID: "cust", From: "a", To: "b", Reason: "manual"},                 // unknown reason
		{CustomerID: "cust", From: "a", To: "b\x00", Reason: store.ReasonOverride}, // NUL
	} {
		_, err := s.InsertTierTransition(ctx, bad)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("InsertTierTransition(%+v) = %v, want a plain error", bad, err)
		}
	}
}

func sameGrant(t *testing.T, what string, got, want store.Grant) {
	t.Helper()
	if got.ID != want.ID || got.CustomerID != want.CustomerID || got.Priority != want.Priority ||
		got.Kind != want.Kind || got.Note != want.Note || (got.ExpiresAt == nil) != (want.ExpiresAt == nil) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
		return
	}
	sameDec(t, what+" Amount", got.Amount, want.Amount)
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	if got.ExpiresAt != nil {
		sameTime(t, what+" ExpiresAt", *got.ExpiresAt, *want.ExpiresAt)
	}
}

func testGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Date(2027, 1, 2, 3, 4, 5, 6, tokyo)
	var zero time.Time
	created := time.Date(2026, 11, 2, 0, 0, 0, 1, tokyo)
	g1 := store.Grant{ID: "g1", CustomerID: "cust", Amount: dec("100.000000000000000001"), Priority: 1,
		ExpiresAt: &exp, Kind: store.GrantPaid, Note: "Ünïcode note", CreatedAt: created}
	g0 := store.Grant{ID: "g0", CustomerID: "cust", Amount: dec("5"), Priority: -3, Kind: store.GrantPromotional,
		CreatedAt: created}
	g3 := store.Grant{ID: "g3", CustomerID: "cust", Amount: dec("0.01"), ExpiresAt: &zero, Kind: store.GrantPaid,
		CreatedAt: created.Add(-time.Nanosecond)}
	gx := store.Grant{ID: "gx", CustomerID: "other", Amount: dec("1"), Kind: store.GrantPaid, CreatedAt: t0}
	for _, g := range []store.Grant{g1, g0, g3, gx} {
		got, err := s.CreateGrant(ctx, g)
		must(t, err, "create "+g.ID)
		sameGrant(t, "created "+g.ID, got, g)
	}
	list, err := s.ListGrants(ctx, "cust")
	must(t, err, "list")
	if len(list) != 3 {
		t.Fatalf("grants = %+v, want 3", list)
	}
	for i, w := range []store.Grant{g3, g0, g1} { // by creation time, then ID
		sameGrant(t, fmt.Sprintf("grant %d", i), list[i], w)
	}
	if list[0].ExpiresAt == nil || !list[0].ExpiresAt.IsZero() || list[1].ExpiresAt != nil {
		t.Errorf("expiries = %v, %v; want a zero time and nil", list[0].ExpiresAt, list[1].ExpiresAt)
	}
	if list[2].Amount.String() != "100.000000000000000001" {
		t.Errorf("amount = %s, not exact", list[2].Amount)
	}

	// The same content again (retried later, the same amount written otherwise) returns the
	// stored grant.
	again := g1
	again.CreatedAt = created.Add(time.Hour)
	again.Amount = dec("100.0000000000000000010")
	expAgain := exp.UTC()
	again.ExpiresAt = &expAgain
	got, err := s.CreateGrant(ctx, again)
	must(t, err, "create the same grant again")
	sameGrant(t, "grant created again", got, g1)

	for name, edit := range map[string]func(g *store.Grant){
		"amount":   func(g *store.Grant) { g.Amount = dec("100") },
		"priority": func(g *store.Grant) { g.Priority = 2 },
		"expiry":   func(g *store.Grant) { g.ExpiresAt = nil },
		"expiry 2": func(g *store.Grant) { later := exp.Add(time.Nanosecond); g.ExpiresAt = &later },
		"kind":     func(g *store.Grant) { g.Kind = store.GrantPromotional },
		"note":     func(g *store.Grant) { g.Note = "" },
		"customer": func(g *store.Grant) { g.CustomerID = "other" },
	} {
		g := g1
		edit(&g)
		_, err := s.CreateGrant(ctx, g)
		mustIs(t, err, store.ErrConflict, "grant g1 with another "+name)
	}
	for name, edit := range map[string]func(g *store.Grant){
		"zero amount":     func(g *store.Grant) { g.Amount = money.Zero },
		"negative amount": func(g *store.Grant) { g.Amount = dec("-1") },
		"unknown kind":    func(g *store.Grant) { g.Kind = "gift" },
		"empty ID":        func(g *store.Grant) { g.ID = "" },
		"no customer":     func(g *store.Grant) { g.CustomerID = "" },
		"NUL in note":     func(g *store.Grant) { g.Note = "a\x00" },
	} {
		g := g1
		g.ID = "new"
		edit(&g)
		_, err := s.CreateGrant(ctx, g)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("grant with %s: %v, want a plain error", name, err)
		}
	}
	list, err = s.ListGrants(ctx, "cust")
	must(t, err, "list")
	if len(list) != 3 {
		t.Errorf("%d grants after conflicts and bad input, want 3", len(list))
	}
	list, err = s.ListGrants(ctx, "nobody")
	must(t, err, "list unknown")
	if len(list) != 0 {
		t.Errorf("unknown customer's grants = %+v", list)
	}
}

func testListBurnsPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []store.WalletBurn
	for batch := range 2 {
		var evs []*store.EventRecord
		for i := range 12 {
			n := batch*12 + i
			cust := "cust"
			if n%5 == 4 {
				cust = "other"
			}
			e := event(fmt.Sprintf("k%02d", n), "", cust, "", t0.Add(time.Duration(n)), 1, line("c", "1"))
			for j := range n % 4 { // 0 to 3 burns per event
				e.Burns = append(e.Burns, burn(fmt.Sprintf("g%d", (n+j)%3), fmt.Sprintf("%d.%d", n, j), e.Timestamp))
			}
			evs = append(evs, e)
		}
		must(t, s.InsertEvents(ctx, evs), "insert")
		for _, e := range evs {
			if e.CustomerID == "cust" {
				want = append(want, e.Burns...)
			}
		}
	}
	all, err := s.ListBurns(ctx, "cust", 0, 0)
	must(t, err, "all")
	sameBurns(t, "all", all, want)

	// A page is the first limit burns of the events after afterSeq, even when that splits an
	// event's burns; a caller paging by afterSeq drops the last event's burns from a full page,
	// as done here, and gets every burn exactly once.
	for _, limit := range []int{1, 2, 3, 5} {
		var got []store.WalletBurn
		after := int64(0)
		for page := 0; ; page++ {
			if page > len(want) {
				t.Fatal("pagination does not end")
			}
			bs, err := s.ListBurns(ctx, "cust", after, limit)
			must(t, err, "page")
			var wantPage []store.WalletBurn
			for _, b := range want {
				if b.EventSeq > after && len(wantPage) < limit {
					wantPage = append(wantPage, b)
				}
			}
			sameBurns(t, fmt.Sprintf("page after %d, limit %d", after, limit), bs, wantPage)
			if len(bs) < limit {
				got = append(got, bs...)
				break
			}
			last := bs[len(bs)-1].EventSeq
			keep := bs
			for len(keep) > 0 && keep[len(keep)-1].EventSeq == last {
				keep = keep[:len(keep)-1]
			}
			if len(keep) == 0 { // one event with more burns than the limit: take them all
				keep, err = s.ListBurns(ctx, "cust", after, 0)
				must(t, err, "rest")
				for i, b := range keep {
					if b.EventSeq != last {
						keep = keep[:i]
						break
					}
				}
			}
			got = append(got, keep...)
			after = keep[len(keep)-1].EventSeq
		}
		sameBurns(t, fmt.Sprintf("pages of %d", limit), got, want)
	}
	rest, err := s.ListBurns(ctx, "cust", want[len(want)/2].EventSeq, 0)
	must(t, err, "after the middle")
	var wantRest []store.WalletBurn
	for _, b := range want {
		if b.EventSeq > want[len(want)/2].EventSeq {
			wantRest = append(wantRest, b)
		}
	}
	sameBurns(t, "after the middle", rest, wantRest)
}

func testListNoticesPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	var evs []*store.EventRecord
	for i := range 9 {
		cust := "cust"
		if i%3 == 1 {
			cust = "other"
		}
		e := event(fmt.Sprintf("k%d", i), "", cust, "", t0.Add(time.Duration(i)), 1)
		for j := range i % 3 {
			e.Notices = append(e.Notices, store.Notice{Kind: store.NoticeLowBalance, At: e.Timestamp,
				Data: fmt.Appendf(nil, `{"i":%d,"j":%d}`, i, j)})
		}
		evs = append(evs, e)
	}
	must(t, s.InsertEvents(ctx, evs), "insert")
	var want []store.Notice
	for _, e := range evs {
		if e.CustomerID == "cust" {
			want = append(want, e.Notices...)
		}
	}
	var got []store.Notice
	after := int64(0)
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatal("pagination does not end")
		}
		ns, err := s.ListNotices(ctx, "cust", after, 2)
		must(t, err, "page")
		if len(ns) > 2 {
			t.Fatalf("page of %d, limit 2", len(ns))
		}
		if len(ns) == 0 {
			break
		}
		got = append(got, ns...)
		after = ns[len(ns)-1].ID
	}
	if len(got) != len(want) {
		t.Fatalf("paged %d notices, want %d", len(got), len(want))
	}
	for i := range got {
		sameNotice(t, fmt.Sprintf("notice %d", i), got[i], want[i])
	}
}

func sameInvoice(t *testing.T, what string, got, want store.Invoice) {
	t.Helper()
	if got.ID != want.ID || got.Number != want.Number || got.CustomerID != want.CustomerID ||
		got.PlanVersionID != want.PlanVersionID || got.Currency != want.Currency || !bytes.Equal(got.Document, want.Document) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
	sameTime(t, what+" PeriodStart", got.PeriodStart, want.PeriodStart)
	sameTime(t, what+" PeriodEnd", got.PeriodEnd, want.PeriodEnd)
	sameTime(t, what+" IssuedAt", got.IssuedAt, want.IssuedAt)
	sameDec(t, what+" Total", got.Total, want.Total)
	sameDec(t, what+" AmountDue", got.AmountDue, want.AmountDue)
}

func invoice(cust string, pv int64, start time.Time) store.Invoice {
	return store.Invoice{CustomerID: cust, PlanVersionID: pv, PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
		IssuedAt: start.AddDate(0, 1, 0).Add(time.Hour + time.Nanosecond), Currency: "USD",
		Total: dec("123.45"), AmountDue: dec("23.45"), Document: []byte(`{"lines": [], "note": "café"}`)}
}

func testInvoices(t *testing.T, s store.Store) {
	ctx := context.Background()
	create := func(inv store.Invoice, number int64) store.Invoice {
		t.Helper()
		got, err := s.CreateInvoice(ctx, inv)
		must(t, err, "create invoice")
		inv.Number, inv.ID = number, fmt.Sprintf("inv_%08d", number)
		sameInvoice(t, "created", got, inv)
		return got
	}
	i1 := invoice("cust", 1, t0.In(tokyo))
	i1.Total, i1.AmountDue = dec("12345678901234567890.5"), dec("-0.000000000000000001")
	i1.Document = nil
	v1 := create(i1, 1)
	v2 := create(invoice("cust", 1, tEnd), 2)
	_, err := s.CreateInvoice(ctx, invoice("cust", 1, t0))
	mustIs(t, err, store.ErrConflict, "second invoice of a period")
	for name, edit := range map[string]func(inv *store.Invoice){
		"no customer":         func(inv *store.Invoice) { inv.CustomerID = "" },
		"document not JSON":   func(inv *store.Invoice) { inv.Document = []byte("{") },
		"time out of range":   func(inv *store.Invoice) { inv.IssuedAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"NUL in the currency": func(inv *store.Invoice) { inv.Currency = "US\x00" },
	} {
		inv := invoice("cust", 9, tNext)
		edit(&inv)
		_, err := s.CreateInvoice(ctx, inv)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("invoice with %s: %v, want a plain error", name, err)
		}
	}
	// No number was used by the failures: numbers have no gaps.
	v3 := create(invoice("cust", 2, t0), 3)    // same start as v1, another plan version
	v4 := create(invoice("cust", 1, tPrev), 4) // an earlier period, created later
	v5 := create(invoice("other", 1, t0), 5)   // another customer's
	v6 := create(invoice("cust", 1, tNext), 6)

	got, err := s.GetInvoice(ctx, "inv_00000001")
	must(t, err, "get")
	sameInvoice(t, "get", got, v1)
	if got.Total.String() != "12345678901234567890.5" || got.Document != nil {
		t.Errorf("invoice 1 = total %s, document %q; want exact total and nil document", got.Total, got.Document)
	}
	_, err = s.GetInvoice(ctx, "inv_00000099")
	mustIs(t, err, store.ErrNotFound, "get unknown invoice")

	all, err := s.ListInvoices(ctx, "cust", "", 0)
	must(t, err, "list")
	want := []store.Invoice{v4, v1, v3, v2, v6} // by period start, then number
	if len(all) != len(want) {
		t.Fatalf("list = %d invoices, want %d", len(all), len(want))
	}
	for i := range all {
		sameInvoice(t, fmt.Sprintf("invoice %d", i), all[i], want[i])
	}
	var paged []string
	after := ""
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatal("pagination does not end")
		}
		invs, err := s.ListInvoices(ctx, "cust", after, 2)
		must(t, err, "page")
		if len(invs) > 2 {
			t.Fatalf("page of %d, limit 2", len(invs))
		}
		if len(invs) == 0 {
			break
		}
		for _, inv := range invs {
			paged = append(paged, inv.ID)
		}
		after = invs[len(invs)-1].ID
	}
	if !slices.Equal(paged, []string{v4.ID, v1.ID, v3.ID, v2.ID, v6.ID}) {
		t.Errorf("paged = %v", paged)
	}
	_, err = s.ListInvoices(ctx, "cust", "inv_00000099", 0)
	mustIs(t, err, store.ErrNotFound, "list after an unknown invoice")
	_, err = s.ListInvoices(ctx, "cust", v5.ID, 0)
	mustIs(t, err, store.ErrNotFound, "list after another customer's invoice")
	other, err := s.ListInvoices(ctx, "other", "", 0)
	must(t, err, "list other")
	if len(other) != 1 || other[0].ID != v5.ID {
		t.Errorf("other's invoices = %+v", other)
	}
}

// testInvoicesConcurrent: writers creating invoices at once, some for the same periods, get
// unique, gapless numbers and exactly one invoice per period.
func testInvoicesConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const (
		writers = 6
		periods = 8
	)
	var (
		mu        sync.Mutex
		numbers   = map[int64]string{}
		conflicts int
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range periods {
				// Each writer creates its own customer's periods and races the others for the
				// shared customer's.
				for _, cust := range []string{fmt.Sprintf("own-%d", w), "shared"} {
					start := t0.AddDate(0, (i+w)%periods, 0)
					inv, err := s.CreateInvoice(ctx, invoice(cust, 1, start))
					if errors.Is(err, store.ErrConflict) && cust == "shared" {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					mu.Lock()
					if prev, dup := numbers[inv.Number]; dup {
						t.Errorf("number %d given to %s and %s", inv.Number, prev, inv.CustomerID)
					}
					numbers[inv.Number] = fmt.Sprintf("%s@%s", inv.CustomerID, inv.PeriodStart.Format("2006-01"))
					if inv.ID != fmt.Sprintf("inv_%08d", inv.Number) {
						t.Errorf("invoice %d has ID %q", inv.Number, inv.ID)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	want := writers*periods + periods
	if len(numbers) != want || conflicts != (writers-1)*periods {
		t.Fatalf("%d invoices and %d conflicts, want %d and %d", len(numbers), conflicts, want, (writers-1)*periods)
	}
	for n := int64(1); n <= int64(want); n++ {
		if _, ok := numbers[n]; !ok {
			t.Errorf("number %d missing: numbers have a gap", n)
		}
	}
	shared, err := s.ListInvoices(ctx, "shared", "", 0)
	must(t, err, "list shared")
	if len(shared) != periods {
		t.Errorf("shared customer has %d invoices, want one per period (%d)", len(shared), periods)
	}
}

func testCustomerTierAndLowBalance(t *testing.T, s store.Store) {
	ctx := context.Background()
	ptr := func(s string) *string { return &s }
	decp := func(s string) *money.Decimal { d := dec(s); return &d }
	check := func(what string, c store.Customer, tier string, low *money.Decimal) {
		t.Helper()
		if c.TierOverride != tier || (c.LowBalance == nil) != (low == nil) ||
			(low != nil && !c.LowBalance.Equal(*low)) {
			t.Errorf("%s: tier %q, low balance %v; want %q, %v", what, c.TierOverride, c.LowBalance, tier, low)
		}
	}
	c, err := s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0})
	must(t, err, "create")
	check("created", c, "", nil)
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, TierOverride: ptr("scale"),
		SetLowBalance: true, LowBalance: decp("10.000000000000000001")})
	must(t, err, "set")
	check("set", c, "scale", decp("10.000000000000000001"))
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, Metadata: map[string]string{"k": "v"},
		LowBalance: decp("99")}) // LowBalance without SetLowBalance is ignored
	must(t, err, "update other fields")
	check("kept", c, "scale", decp("10.000000000000000001"))
	got, err := s.GetCustomer(ctx, "cust")
	must(t, err, "get")
	check("get", got, "scale", decp("10.000000000000000001"))
	if got.LowBalance.String() != "10.000000000000000001" {
		t.Errorf("low balance = %s, not exact", got.LowBalance)
	}
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, SetLowBalance: true, LowBalance: decp("0")})
	must(t, err, "zero threshold")
	check("zero threshold (not none)", c, "scale", decp("0"))
	c, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, TierOverride: ptr(""), SetLowBalance: true})
	must(t, err, "clear")
	check("cleared", c, "", nil)
	if c.Metadata["k"] != "v" {
		t.Errorf("metadata lost: %+v", c.Metadata)
	}
	_, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "new", Now: t0, TierOverride: ptr("build"),
		SetLowBalance: true, LowBalance: decp("-5.5")})
	must(t, err, "create with both")
	list, err := s.ListCustomers(ctx, "", 0)
	must(t, err, "list")
	if len(list) != 2 {
		t.Fatalf("list = %+v", list)
	}
	check("listed cust", list[0], "", nil)
	check("listed new", list[1], "build", decp("-5.5"))
	_, err = s.PutCustomer(ctx, store.PutCustomerParams{ID: "cust", Now: t0, TierOverride: ptr("a\x00")})
	if err == nil {
		t.Error("PutCustomer accepted a NUL in the tier override")
	}
}

// testLedgerInvalidText: lookups by text that can never be stored find nothing, on every driver.
func testLedgerInvalidText(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, bad := range []string{"a\x00b", "\xff\xfe"} {
		bs, err := s.ListBurns(ctx, bad, 0, 0)
		must(t, err, "ListBurns")
		ns, err := s.ListNotices(ctx, bad, 0, 0)
		must(t, err, "ListNotices")
		trs, err := s.TierTransitions(ctx, bad, 0, 0)
		must(t, err, "TierTransitions")
		gs, err := s.ListGrants(ctx, bad)
		must(t, err, "ListGrants")
		invs, err := s.ListInvoices(ctx, bad, "", 0)
		must(t, err, "ListInvoices")
		ps, err := s.EventPeriods(ctx, bad)
		must(t, err, "EventPeriods")
		adj, err := s.Adjustments(ctx, store.PeriodKey{CustomerID: bad, PlanVersionID: 1, PeriodStart: t0})
		must(t, err, "Adjustments")
		if len(bs)+len(ns)+len(trs)+len(gs)+len(invs)+len(ps)+len(adj) != 0 {
			t.Errorf("lookups of %q found something", bad)
		}
		must(t, s.ScanEvents(ctx, store.ScanParams{CustomerID: bad}, func(*store.EventRecord) error {
			t.Errorf("ScanEvents called back for %q", bad)
			return nil
		}), "ScanEvents")
		v, err := s.Cursor(ctx, bad)
		if err != nil || v != 0 {
			t.Errorf("Cursor(%q) = %d, %v; want 0", bad, v, err)
		}
		_, err = s.GetInvoice(ctx, bad)
		mustIs(t, err, store.ErrNotFound, "GetInvoice")
		_, err = s.ListInvoices(ctx, "cust", bad, 0)
		mustIs(t, err, store.ErrNotFound, "ListInvoices after an invalid cursor")
		if err := s.SetCursor(ctx, bad, 1); err == nil {
			t.Errorf("SetCursor(%q) succeeded", bad)
		}
	}
}
