package wallet

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func d(s string) money.Decimal { return money.MustParse(s) }

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func ptr(t time.Time) *time.Time { return &t }

// g builds a paid grant created at t0 with no expiry.
func g(id, amount string, prio int) Grant {
	return Grant{ID: id, Amount: d(amount), Priority: prio, CreatedAt: t0, Kind: GrantKindPaid}
}

func (gr Grant) expires(t time.Time) Grant { gr.ExpiresAt = &t; return gr }
func (gr Grant) created(t time.Time) Grant { gr.CreatedAt = t; return gr }

func mustNew(t testing.TB, grants ...Grant) *Wallet {
	t.Helper()
	w, err := New(grants)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fmtBurns prints burns as "a:5 b:-3!" ("!" marks a forfeited refund).
func fmtBurns(bs []Burn) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.GrantID + ":" + b.Amount.String()
		if b.Forfeited {
			parts[i] += "!"
		}
	}
	return strings.Join(parts, " ")
}

func eq(t *testing.T, what string, got, want money.Decimal) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

// step is one Apply and what it must do.
type step struct {
	period    string
	at        int // minutes after t0
	amount    string
	burns     string // fmtBurns of the result
	uncovered string // UncoveredDelta
}

func runSteps(t *testing.T, w *Wallet, steps []step) {
	t.Helper()
	for i, s := range steps {
		p := s.period
		if p == "" {
			p = "2026-03"
		}
		res := w.Apply(p, at(s.at), d(s.amount))
		if got := fmtBurns(res.Burns); got != s.burns {
			t.Fatalf("step %d (apply %s): burns %q, want %q", i, s.amount, got, s.burns)
		}
		want := s.uncovered
		if want == "" {
			want = "0"
		}
		eq(t, fmt.Sprintf("step %d uncovered delta", i), res.UncoveredDelta, d(want))
	}
}

func TestBurnOrder(t *testing.T) {
	tests := []struct {
		name   string
		grants []Grant
		amount string
		want   string
	}{
		{
			name:   "lower priority number first",
			grants: []Grant{g("a", "10", 2), g("b", "10", 1), g("c", "10", 3)},
			amount: "25", want: "b:10 a:10 c:5",
		},
		{
			name:   "priority beats expiry and creation",
			grants: []Grant{g("a", "10", 0).created(at(-60)), g("b", "10", 1).expires(at(1)).created(at(-120))},
			amount: "12", want: "a:10 b:2",
		},
		{
			name: "same priority: earliest expiry first, no expiry last",
			grants: []Grant{
				g("never", "10", 0),
				g("late", "10", 0).expires(at(600)),
				g("soon", "10", 0).expires(at(60)),
			},
			amount: "25", want: "soon:10 late:10 never:5",
		},
		{
			name: "same priority and expiry: oldest creation first",
			grants: []Grant{
				g("new", "10", 0).expires(at(60)).created(at(-1)),
				g("old", "10", 0).expires(at(60)).created(at(-30)),
			},
			amount: "15", want: "old:10 new:5",
		},
		{
			name:   "everything equal: by ID",
			grants: []Grant{g("b", "10", 0), g("c", "10", 0), g("a", "10", 0)},
			amount: "21", want: "a:10 b:10 c:1",
		},
		{
			name:   "partial burn leaves the rest of the first grant",
			grants: []Grant{g("a", "10", 0), g("b", "10", 1)},
			amount: "9.999", want: "a:9.999",
		},
		{
			name:   "several grants exhausted by one event, the rest uncovered",
			grants: []Grant{g("a", "1.5", 0), g("b", "2.25", 1), g("c", "0.000001", 2)},
			amount: "10", want: "a:1.5 b:2.25 c:0.000001",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustNew(t, tt.grants...)
			res := w.Apply("p", t0, d(tt.amount))
			if got := fmtBurns(res.Burns); got != tt.want {
				t.Fatalf("burns %q, want %q", got, tt.want)
			}
			// Adding the grants one by one, in reverse, burns in the same order.
			w2 := mustNew(t)
			for i := len(tt.grants) - 1; i >= 0; i-- {
				if err := w2.AddGrant(tt.grants[i]); err != nil {
					t.Fatal(err)
				}
			}
			if got := fmtBurns(w2.Apply("p", t0, d(tt.amount)).Burns); got != tt.want {
				t.Fatalf("after AddGrant in reverse: burns %q, want %q", got, tt.want)
			}
			eq(t, "burned + uncovered", res.Burned().Add(res.UncoveredDelta), d(tt.amount))
		})
	}
}

func TestSeveralGrantsExhaustedThenUncovered(t *testing.T) {
	w := mustNew(t, g("a", "3", 0), g("b", "4", 1), g("c", "5", 2))
	runSteps(t, w, []step{
		{amount: "2", burns: "a:2"},
		{amount: "8", burns: "a:1 b:4 c:3"},
		{amount: "4", burns: "c:2", uncovered: "2"},
		{amount: "1", burns: "", uncovered: "1"},
	})
	b := w.Balance(t0)
	eq(t, "available", b.Available, d("0"))
	for _, gb := range b.Grants {
		if !gb.Remaining.IsZero() || !gb.Burned.Equal(gb.Grant.Amount) {
			t.Fatalf("grant %s: remaining %s burned %s", gb.Grant.ID, gb.Remaining, gb.Burned)
		}
	}
	p, _ := w.Period("2026-03")
	eq(t, "uncovered", p.Uncovered, d("3"))
	eq(t, "spend", p.Spend, d("15"))
	eq(t, "net balance", w.NetBalance("2026-03", t0), d("-3"))
}

func TestExpiryMidPeriod(t *testing.T) {
	exp := at(60)
	w := mustNew(t, g("promo", "10", 0).expires(exp), g("paid", "100", 1))
	runSteps(t, w, []step{
		{at: 30, amount: "3", burns: "promo:3"},
		{at: 59, amount: "1", burns: "promo:1"},
		{at: 60, amount: "2", burns: "paid:2"}, // exactly at expiry: not eligible
		{at: 61, amount: "1", burns: "paid:1"},
		{at: 45, amount: "1", burns: "promo:1"}, // back-dated event, judged at its own time
	})
	before := w.Balance(at(59))
	eq(t, "available before expiry", before.Available, d("102"))
	eq(t, "expired before expiry", before.Expired, d("0"))
	after := w.Balance(exp)
	eq(t, "available at expiry", after.Available, d("97"))
	eq(t, "expired at expiry", after.Expired, d("5"))
	for _, gb := range after.Grants {
		if gb.Expired != (gb.Grant.ID == "promo") {
			t.Fatalf("grant %s expired = %v", gb.Grant.ID, gb.Expired)
		}
	}
}

func TestRefunds(t *testing.T) {
	t.Run("most recently burned first, within and across events", func(t *testing.T) {
		w := mustNew(t, g("a", "10", 0), g("b", "10", 1), g("c", "10", 2))
		runSteps(t, w, []step{
			{amount: "8", burns: "a:8"},
			{amount: "7", burns: "a:2 b:5"},
			{amount: "-6", burns: "b:-5 a:-1"},
			{amount: "-3", burns: "a:-3"},
			{amount: "2", burns: "a:2"},
		})
		p, _ := w.Period("2026-03")
		if got := fmtBurns(p.Burns); got != "a:8" {
			t.Fatalf("period burns %q, want a:8", got)
		}
	})
	t.Run("time order, not priority order", func(t *testing.T) {
		w := mustNew(t, g("b", "10", 1))
		runSteps(t, w, []step{{amount: "3", burns: "b:3"}})
		if err := w.AddGrant(g("a", "5", 0)); err != nil {
			t.Fatal(err)
		}
		// a burns first from now on, so it was burned last: it is refunded first.
		runSteps(t, w, []step{
			{amount: "2", burns: "a:2"},
			{amount: "-4", burns: "a:-2 b:-2"},
		})
	})
	t.Run("never more than the period burned, never another period", func(t *testing.T) {
		w := mustNew(t, g("a", "10", 0), g("b", "10", 1))
		runSteps(t, w, []step{
			{period: "2026-02", amount: "4", burns: "a:4"},
			{period: "2026-03", amount: "6", burns: "a:6"},
			{period: "2026-03", amount: "7", burns: "b:7"},
			{period: "2026-03", amount: "-10", burns: "b:-7 a:-3"},
			{period: "2026-03", amount: "-5", burns: "a:-3"}, // spend goes to -2: only 3 to refund
			{period: "2026-03", amount: "-1", burns: ""},
		})
		b := w.Balance(t0)
		eq(t, "a remaining", b.Grants[0].Remaining, d("6")) // February's 4 stay burned
		eq(t, "b remaining", b.Grants[1].Remaining, d("10"))
		p, _ := w.Period("2026-03")
		eq(t, "spend", p.Spend, d("-3"))
		if len(p.Burns) != 0 || !p.Uncovered.IsZero() {
			t.Fatalf("period %+v, want nothing burned or uncovered", p)
		}
		// Usage first brings the spend back to zero, then burns.
		runSteps(t, w, []step{{period: "2026-03", amount: "5", burns: "a:2"}})
	})
	t.Run("uncovered first, then grants", func(t *testing.T) {
		w := mustNew(t, g("a", "5", 0))
		runSteps(t, w, []step{
			{amount: "8", burns: "a:5", uncovered: "3"},
			{amount: "-2", burns: "", uncovered: "-2"},
			{amount: "-4", burns: "a:-3", uncovered: "-1"},
		})
		eq(t, "balance", w.Balance(t0).Available, d("3"))
	})
	t.Run("a refund to an expired grant is forfeited", func(t *testing.T) {
		w := mustNew(t, g("e", "10", 0).expires(at(60)), g("f", "10", 1))
		runSteps(t, w, []step{
			{at: 10, amount: "12", burns: "e:10 f:2"},
		})
		res := w.Apply("2026-03", at(120), d("-5"))
		if got := fmtBurns(res.Burns); got != "f:-2 e:-3!" {
			t.Fatalf("burns %q, want %q", got, "f:-2 e:-3!")
		}
		eq(t, "balance before", res.BalanceBefore, d("8"))
		eq(t, "balance after", res.BalanceAfter, d("10")) // the 3 to e do not count
		b := w.Balance(at(120))
		eq(t, "expired", b.Expired, d("3"))
		eq(t, "e burned", b.Grants[0].Burned, d("7"))
		p, _ := w.Period("2026-03")
		eq(t, "period burned", p.Burned(), d("7"))
		// Before its expiry the grant holds the refund again.
		eq(t, "available before expiry", w.Balance(at(59)).Available, d("13"))
	})
}

func TestUncoveredStaysAfterAddGrant(t *testing.T) {
	w := mustNew(t, g("a", "5", 0))
	runSteps(t, w, []step{{amount: "8", burns: "a:5", uncovered: "3"}})
	eq(t, "net balance", w.NetBalance("2026-03", t0), d("-3"))
	if err := w.AddGrant(g("top-up", "10", 0).created(at(5))); err != nil {
		t.Fatal(err)
	}
	p, _ := w.Period("2026-03")
	eq(t, "uncovered after the top-up", p.Uncovered, d("3"))
	eq(t, "balance after the top-up", w.Balance(at(5)).Available, d("10"))
	eq(t, "net balance after the top-up", w.NetBalance("2026-03", at(5)), d("7"))
	runSteps(t, w, []step{
		{at: 6, amount: "4", burns: "top-up:4"},
		{at: 7, amount: "-5", burns: "top-up:-2", uncovered: "-3"},
	})
	eq(t, "net balance in another period", w.NetBalance("2026-04", at(7)), d("8"))
}

func TestZeroAmountDoesNothing(t *testing.T) {
	w := mustNew(t, g("a", "5", 0))
	res := w.Apply("p", t0, d("0.000"))
	if len(res.Burns) != 0 || !res.UncoveredDelta.IsZero() {
		t.Fatalf("result %+v", res)
	}
	eq(t, "balance before", res.BalanceBefore, d("5"))
	eq(t, "balance after", res.BalanceAfter, d("5"))
	if _, ok := w.Period("p"); ok {
		t.Fatal("a zero amount opened the period")
	}
}

func TestLowBalance(t *testing.T) {
	type lstep struct {
		at      int
		amount  string
		crossed bool
	}
	run := func(t *testing.T, w *Wallet, steps []lstep) {
		t.Helper()
		for i, s := range steps {
			res := w.Apply("p", at(s.at), d(s.amount))
			if res.LowBalanceCrossed != s.crossed {
				t.Fatalf("step %d (apply %s, balance %s -> %s): crossed %v, want %v",
					i, s.amount, res.BalanceBefore, res.BalanceAfter, res.LowBalanceCrossed, s.crossed)
			}
		}
	}
	t.Run("fires once and re-arms", func(t *testing.T) {
		w := mustNew(t, g("a", "30", 0))
		if err := w.SetThreshold(d("10")); err != nil {
			t.Fatal(err)
		}
		run(t, w, []lstep{
			{amount: "15"},                  // 30 -> 15
			{amount: "5"},                   // 15 -> 10: at the threshold is not below it
			{amount: "0.01", crossed: true}, // 10 -> 9.99
			{amount: "1"},                   // still below: no second signal
			{amount: "-2"},                  // refund: 8.99 -> 10.99, re-armed
			{amount: "1", crossed: true},    // 10.99 -> 9.99
			{amount: "50"},                  // 9.99 -> 0, uncovered
		})
		if !w.BelowThreshold(t0) {
			t.Fatal("BelowThreshold = false at 0")
		}
		if err := w.AddGrant(g("b", "20", 0)); err != nil {
			t.Fatal(err)
		}
		if w.BelowThreshold(t0) {
			t.Fatal("BelowThreshold = true at 20")
		}
		run(t, w, []lstep{
			{amount: "10"},               // 20 -> 10
			{amount: "3", crossed: true}, // 10 -> 7
		})
	})
	t.Run("expiry alone does not fire", func(t *testing.T) {
		w := mustNew(t, g("promo", "50", 0).expires(at(60)), g("a", "5", 1))
		if err := w.SetThreshold(d("10")); err != nil {
			t.Fatal(err)
		}
		run(t, w, []lstep{
			{at: 10, amount: "1"},  // 55 -> 54
			{at: 70, amount: "1"},  // after expiry: 5 -> 4, already below before the call
			{at: 80, amount: "-1"}, // 4 -> 5
		})
		if !w.BelowThreshold(at(80)) || w.BelowThreshold(at(59)) {
			t.Fatal("BelowThreshold does not follow expiry")
		}
	})
	t.Run("no threshold never fires", func(t *testing.T) {
		w := mustNew(t, g("a", "30", 0))
		run(t, w, []lstep{{amount: "29"}, {amount: "5"}})
		if err := w.SetThreshold(d("1")); err != nil {
			t.Fatal(err)
		}
		w.ClearThreshold()
		run(t, w, []lstep{{amount: "-30"}, {amount: "29.5"}})
		if _, ok := w.Threshold(); ok || w.BelowThreshold(t0) {
			t.Fatal("threshold still set")
		}
	})
}

// fieldOf returns the kind and first field of a problem error.
func fieldOf(t *testing.T, err error) (problem.Kind, string) {
	t.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *problem.Error", err, err)
	}
	if len(pe.Fields) == 0 {
		t.Fatalf("error %v names no field", err)
	}
	return pe.Kind, pe.Fields[0].Field
}

func TestNewRejectsBadGrants(t *testing.T) {
	ok := g("a", "1", 0)
	tests := []struct {
		name  string
		grant func(Grant) Grant
		field string
	}{
		{"no id", func(x Grant) Grant { x.ID = ""; return x }, "grants[1].id"},
		{"zero amount", func(x Grant) Grant { x.Amount = d("0"); return x }, "grants[1].amount"},
		{"negative amount", func(x Grant) Grant { x.Amount = d("-1"); return x }, "grants[1].amount"},
		{"unset amount", func(x Grant) Grant { x.Amount = money.Decimal{}; return x }, "grants[1].amount"},
		{"unknown kind", func(x Grant) Grant { x.Kind = "gift"; return x }, "grants[1].kind"},
		{"no creation time", func(x Grant) Grant { x.CreatedAt = time.Time{}; return x }, "grants[1].createdAt"},
		{"expires at creation", func(x Grant) Grant { x.ExpiresAt = ptr(x.CreatedAt); return x }, "grants[1].expiresAt"},
		{"expires before creation", func(x Grant) Grant { x.ExpiresAt = ptr(x.CreatedAt.Add(-1)); return x }, "grants[1].expiresAt"},
		{"repeated id", func(x Grant) Grant { x.ID = "a"; return x }, "grants[1].id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.grant(g("b", "2", 0))
			_, err := New([]Grant{ok, bad})
			if err == nil {
				t.Fatal("no error")
			}
			if kind, field := fieldOf(t, err); kind != problem.Invalid || field != tt.field {
				t.Fatalf("error %v: kind %v field %q, want invalid %q", err, kind, field, tt.field)
			}
			// AddGrant names the field without the index (a repeated id is a conflict there).
			w := mustNew(t, ok)
			err = w.AddGrant(bad)
			wantKind, wantField := problem.Invalid, strings.TrimPrefix(tt.field, "grants[1].")
			if tt.name == "repeated id" {
				wantKind = problem.Conflict
			}
			if kind, field := fieldOf(t, err); kind != wantKind || field != wantField {
				t.Fatalf("AddGrant error %v: kind %v field %q, want %v %q", err, kind, field, wantKind, wantField)
			}
			if n := len(w.Balance(t0).Grants); n != 1 {
				t.Fatalf("a rejected grant was added: %d grants", n)
			}
		})
	}
	if _, err := New(nil); err != nil {
		t.Fatalf("an empty wallet: %v", err)
	}
	if err := (Grant{ID: "p", Amount: d("1"), CreatedAt: t0, Kind: GrantKindPromotional}).Validate(); err != nil {
		t.Fatalf("promotional grant: %v", err)
	}
}

func TestGrantIsCopied(t *testing.T) {
	exp := at(60)
	gr := g("a", "10", 0)
	gr.ExpiresAt = &exp
	w := mustNew(t, gr)
	exp = at(600) // the caller's variable changes; the wallet's grant must not
	if res := w.Apply("p", at(120), d("1")); len(res.Burns) != 0 {
		t.Fatalf("burned %s after expiry", fmtBurns(res.Burns))
	}
	b := w.Balance(at(120))
	*b.Grants[0].Grant.ExpiresAt = at(900)
	if !w.Balance(at(120)).Grants[0].Expired {
		t.Fatal("editing a Balance view changed the wallet")
	}
}

func TestSetThresholdRejectsNonPositive(t *testing.T) {
	w := mustNew(t)
	for _, s := range []string{"0", "-1"} {
		err := w.SetThreshold(d(s))
		if kind, field := fieldOf(t, err); kind != problem.Invalid || field != "threshold" {
			t.Fatalf("threshold %s: %v", s, err)
		}
	}
	if _, ok := w.Threshold(); ok {
		t.Fatal("a rejected threshold was set")
	}
}

// BenchmarkApply burns and refunds over a wallet of 20 grants.
func BenchmarkApply(b *testing.B) {
	grants := make([]Grant, 20)
	for i := range grants {
		grants[i] = g(fmt.Sprintf("g%02d", i), "1000000", i%3).expires(at(1000 + i))
	}
	w := mustNew(b, grants...)
	amounts := []money.Decimal{d("12.5"), d("0.003"), d("-1.2"), d("40")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w.Apply("p", at(i%900), amounts[i%len(amounts)])
	}
}

func TestEmpty(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Empty() {
		t.Error("a wallet without grants is not Empty")
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := w.AddGrant(Grant{ID: "g", Amount: money.MustParse("1"), CreatedAt: at, Kind: GrantKindPaid}); err != nil {
		t.Fatal(err)
	}
	w.Apply("p", at, money.MustParse("5")) // exhausts it
	if w.Empty() {
		t.Error("a wallet holding an exhausted grant is Empty")
	}
}
