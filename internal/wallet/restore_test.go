package wallet

import (
	"testing"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

func burns(pairs ...string) []Burn {
	var out []Burn
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Burn{GrantID: pairs[i], Amount: d(pairs[i+1])})
	}
	return out
}

func TestRestoreRebuildsAWallet(t *testing.T) {
	grants := []Grant{g("a", "10", 0), g("b", "10", 1), g("c", "10", 2)}
	orig := mustNew(t, grants...)
	if err := orig.SetThreshold(d("4")); err != nil {
		t.Fatal(err)
	}
	// February: 4 from a. March: a burns 6, b 7, then 10 are refunded and 5 more burned.
	var march []Burn
	orig.Apply("2026-02", t0, d("4"))
	for _, amt := range []string{"6", "7", "-10", "5"} {
		march = append(march, orig.Apply("2026-03", t0, d(amt)).Burns...)
	}
	if got := fmtBurns(march); got != "a:6 b:7 b:-7 a:-3 a:3 b:2" {
		t.Fatalf("march burns %q", got)
	}

	w := mustNew(t, grants...)
	if err := w.SetThreshold(d("4")); err != nil {
		t.Fatal(err)
	}
	// Each grant's net burned total over all periods, as a SUM over the stored burns.
	for id, total := range map[string]string{"a": "10", "b": "2", "c": "0"} {
		if err := w.Restore(id, d(total)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.RestorePeriod(PeriodState{Key: "2026-03", Spend: d("8"), Uncovered: money.Zero, Burns: march}); err != nil {
		t.Fatal(err)
	}
	p, _ := w.Period("2026-03")
	if got := fmtBurns(p.Burns); got != "a:6 b:2" {
		t.Fatalf("restored burns %q, want a:6 b:2", got)
	}
	eq(t, "balance", w.Balance(t0).Available, d("18"))
	// Both wallets answer the next calls alike: usage, then a refund back through b and a.
	for _, amt := range []string{"9", "-12", "3"} {
		want, got := fmtResult(orig.Apply("2026-03", t0, d(amt))), fmtResult(w.Apply("2026-03", t0, d(amt)))
		if got != want {
			t.Fatalf("apply %s: rebuilt\n  %s\noriginal\n  %s", amt, got, want)
		}
	}
}

func TestRestorePeriodReplaysRefundsMostRecentFirst(t *testing.T) {
	w := mustNew(t, g("a", "10", 0), g("b", "10", 1))
	tests := []struct {
		name  string
		burns []Burn
		want  string
	}{
		{"refund takes the latest entry, then earlier ones", burns("a", "2", "b", "3", "a", "4", "a", "-5"), "a:1 b:3"},
		{"an emptied entry joins its neighbours", burns("a", "2", "b", "3", "a", "4", "b", "-3"), "a:6"},
		{"zero amounts are ignored", burns("a", "0", "b", "2", "a", "0"), "b:2"},
		{"everything refunded", burns("a", "2", "b", "3", "b", "-3", "a", "-2"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := PeriodState{Key: "p", Burns: tt.burns}
			ps.Spend = ps.Burned()
			if err := w.RestorePeriod(ps); err != nil {
				t.Fatal(err)
			}
			got, ok := w.Period("p")
			if !ok || fmtBurns(got.Burns) != tt.want {
				t.Fatalf("period burns %q, want %q", fmtBurns(got.Burns), tt.want)
			}
			eq(t, "spend", got.Spend, ps.Spend)
		})
	}
	// After "a:2 b:3 a:4 b:-3" the next refund takes a: the stack is a:6.
	if err := w.RestorePeriod(PeriodState{Key: "p", Spend: d("6"), Burns: burns("a", "2", "b", "3", "a", "4", "b", "-3")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Restore("a", d("6")); err != nil {
		t.Fatal(err)
	}
	if got := fmtBurns(w.Apply("p", t0, d("-1")).Burns); got != "a:-1" {
		t.Fatalf("refund %q, want a:-1", got)
	}
}

func TestRestoreRejectsBadInput(t *testing.T) {
	w := mustNew(t, g("a", "10", 0), g("b", "5", 1))
	tests := []struct {
		name  string
		call  func() error
		kind  problem.Kind
		field string
	}{
		{"unknown grant", func() error { return w.Restore("zz", d("1")) }, problem.NotFound, "grantId"},
		{"negative total", func() error { return w.Restore("a", d("-0.01")) }, problem.Invalid, "burned"},
		{"more than granted", func() error { return w.Restore("a", d("10.000001")) }, problem.Invalid, "burned"},
		{"negative uncovered", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("1"), Uncovered: d("-1"), Burns: burns("a", "2")})
		}, problem.Invalid, "uncovered"},
		{"unknown grant in burns", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("3"), Burns: burns("a", "2", "zz", "1")})
		}, problem.Invalid, "burns[1].grantId"},
		{"refund larger than the period's burns", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("1"), Burns: burns("a", "2", "b", "1", "b", "-2")})
		}, problem.Invalid, "burns[2].amount"},
		{"refund before the burn", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("0"), Burns: burns("a", "-2", "a", "2")})
		}, problem.Invalid, "burns[0].amount"},
		{"burns more than the grant", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("6"), Burns: burns("b", "3", "b", "3")})
		}, problem.Invalid, "burns[1].amount"},
		{"burns and uncovered do not add up to the spend", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("5"), Uncovered: d("1"), Burns: burns("a", "2")})
		}, problem.Invalid, "uncovered"},
		{"burns with a negative spend", func() error {
			return w.RestorePeriod(PeriodState{Key: "p", Spend: d("-2"), Burns: burns("a", "2")})
		}, problem.Invalid, "uncovered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			if kind, field := fieldOf(t, err); kind != tt.kind || field != tt.field {
				t.Fatalf("error %v: kind %v field %q, want %v %q", err, kind, field, tt.kind, tt.field)
			}
		})
	}
	// Nothing was changed by the rejected calls.
	b := w.Balance(t0)
	eq(t, "balance", b.Available, d("15"))
	if _, ok := w.Period("p"); ok {
		t.Fatal("a rejected RestorePeriod opened the period")
	}
	// A negative spend with nothing burned is a valid state.
	if err := w.RestorePeriod(PeriodState{Key: "p", Spend: d("-2")}); err != nil {
		t.Fatal(err)
	}
	if got := fmtBurns(w.Apply("p", t0, d("3")).Burns); got != "a:1" {
		t.Fatalf("after a restored negative spend: burns %q, want a:1", got)
	}
}
