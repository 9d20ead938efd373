package wallet

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
)

type opKind int

const (
	opApply opKind = iota
	opAddGrant
	opSetThreshold
	opClearThreshold
)

// op is one call on a wallet.
type op struct {
	kind   opKind
	period string
	at     time.Time
	amount money.Decimal // the amount applied, or the threshold
	grant  Grant
}

func (o op) String() string {
	switch o.kind {
	case opAddGrant:
		exp := "never"
		if o.grant.ExpiresAt != nil {
			exp = o.grant.ExpiresAt.Sub(t0).String()
		}
		return fmt.Sprintf("AddGrant(%s %s prio %d expires %s)", o.grant.ID, o.grant.Amount, o.grant.Priority, exp)
	case opSetThreshold:
		return fmt.Sprintf("SetThreshold(%s)", o.amount)
	case opClearThreshold:
		return "ClearThreshold()"
	}
	return fmt.Sprintf("Apply(%s, %s, %s)", o.period, o.at.Sub(t0), o.amount)
}

func fmtResult(r Result) string {
	return fmt.Sprintf("%s %s [%s] uncovered %s balance %s -> %s crossed %v",
		r.PeriodKey, r.Amount, fmtBurns(r.Burns), r.UncoveredDelta, r.BalanceBefore, r.BalanceAfter, r.LowBalanceCrossed)
}

func fmtPeriod(p PeriodState) string {
	return fmt.Sprintf("%s spend %s uncovered %s [%s]", p.Key, p.Spend, p.Uncovered, fmtBurns(p.Burns))
}

// do runs one op and returns what it printed (for comparing wallets).
func do(t *testing.T, w *Wallet, o op) string {
	t.Helper()
	switch o.kind {
	case opAddGrant:
		if err := w.AddGrant(o.grant); err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		return o.String()
	case opSetThreshold:
		if err := w.SetThreshold(o.amount); err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		return o.String()
	case opClearThreshold:
		w.ClearThreshold()
		return o.String()
	}
	return fmtResult(w.Apply(o.period, o.at, o.amount))
}

// checkApply runs an Apply on w and checks the result against the state before and after.
func checkApply(t *testing.T, w *Wallet, o op) Result {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%v: %s", o, fmt.Sprintf(format, args...))
	}
	before, _ := w.Period(o.period)
	balBefore := w.Balance(o.at)
	threshold, hasThreshold := w.Threshold()

	res := w.Apply(o.period, o.at, o.amount)

	after, _ := w.Period(o.period)
	balAfter := w.Balance(o.at)
	if !res.BalanceBefore.Equal(balBefore.Available) || !res.BalanceAfter.Equal(balAfter.Available) {
		fail("balance %s -> %s, Balance says %s -> %s", res.BalanceBefore, res.BalanceAfter, balBefore.Available, balAfter.Available)
	}
	if want := before.Spend.Add(o.amount); !after.Spend.Equal(want) {
		fail("spend %s, want %s", after.Spend, want)
	}
	delta := money.Max(money.Zero, after.Spend).Sub(money.Max(money.Zero, before.Spend))
	if got := res.Burned().Add(res.UncoveredDelta); !got.Equal(delta) {
		fail("burns + uncovered delta = %s, want %s", got, delta)
	}
	if got := after.Uncovered.Sub(before.Uncovered); !got.Equal(res.UncoveredDelta) {
		fail("uncovered moved by %s, result says %s", got, res.UncoveredDelta)
	}
	usable := money.Zero // what the burns took from the usable balance
	for _, b := range res.Burns {
		if !b.Forfeited {
			usable = usable.Add(b.Amount)
		}
	}
	if want := res.BalanceBefore.Sub(usable); !res.BalanceAfter.Equal(want) {
		fail("balance after %s, want %s", res.BalanceAfter, want)
	}
	index := map[string]int{}
	for i, gb := range balBefore.Grants {
		index[gb.Grant.ID] = i
	}
	switch delta.Sign() {
	case 0:
		if len(res.Burns) != 0 || !res.UncoveredDelta.IsZero() {
			fail("nothing to do, yet %s", fmtResult(res))
		}
	case 1:
		last := -1
		for _, b := range res.Burns {
			gb := balBefore.Grants[index[b.GrantID]]
			switch {
			case !b.Amount.IsPositive() || b.Forfeited:
				fail("burn %s:%s forfeited %v", b.GrantID, b.Amount, b.Forfeited)
			case gb.Expired:
				fail("burned %s, expired at %s", b.GrantID, o.at)
			case b.Amount.GreaterThan(gb.Remaining):
				fail("burned %s from %s, which had %s", b.Amount, b.GrantID, gb.Remaining)
			case index[b.GrantID] <= last:
				fail("burns out of order: %s", fmtBurns(res.Burns))
			case b.Amount.LessThan(gb.Remaining) && b.GrantID != res.Burns[len(res.Burns)-1].GrantID:
				fail("grant %s not exhausted before the next one: %s", b.GrantID, fmtBurns(res.Burns))
			}
			last = index[b.GrantID]
		}
		if res.UncoveredDelta.IsNegative() {
			fail("usage lowered the uncovered amount")
		}
		if res.UncoveredDelta.IsPositive() && !balAfter.Available.IsZero() {
			fail("left %s uncovered with %s available", res.UncoveredDelta, balAfter.Available)
		}
	case -1:
		if want := money.Min(before.Uncovered, delta.Neg()).Neg(); !res.UncoveredDelta.Equal(want) {
			fail("uncovered delta %s, want %s (uncovered first)", res.UncoveredDelta, want)
		}
		// Refunds pop the period's burns from the most recent one.
		stack := slices.Clone(before.Burns)
		for i, b := range res.Burns {
			if len(stack) == 0 {
				fail("refunds more than the period burned: %s", fmtBurns(res.Burns))
			}
			top := &stack[len(stack)-1]
			r := b.Amount.Neg()
			switch {
			case !r.IsPositive():
				fail("refund %s:%s is not negative", b.GrantID, b.Amount)
			case b.GrantID != top.GrantID:
				fail("refunded %s, the most recent burn is %s (%s)", b.GrantID, top.GrantID, fmtBurns(before.Burns))
			case r.GreaterThan(top.Amount):
				fail("refunded %s to %s, the most recent burn was %s", r, b.GrantID, top.Amount)
			case r.LessThan(top.Amount) && i != len(res.Burns)-1:
				fail("partial refund before the last one: %s", fmtBurns(res.Burns))
			case b.Forfeited != balBefore.Grants[index[b.GrantID]].Expired:
				fail("refund to %s forfeited %v, expired %v", b.GrantID, b.Forfeited, !b.Forfeited)
			}
			top.Amount = top.Amount.Sub(r)
			if top.Amount.IsZero() {
				stack = stack[:len(stack)-1]
			}
		}
	}
	crossed := hasThreshold && !res.BalanceBefore.LessThan(threshold) && res.BalanceAfter.LessThan(threshold)
	if res.LowBalanceCrossed != crossed {
		fail("crossed %v with threshold %s (%v), balance %s -> %s", res.LowBalanceCrossed, threshold, hasThreshold,
			res.BalanceBefore, res.BalanceAfter)
	}
	return res
}

// checkState checks the invariants of the whole wallet; periods lists every period key used.
func checkState(t *testing.T, w *Wallet, at time.Time, periods []string) {
	t.Helper()
	b := w.Balance(at)
	avail, expired := money.Zero, money.Zero
	for i, gb := range b.Grants {
		id := gb.Grant.ID
		if !gb.Remaining.Add(gb.Burned).Equal(gb.Grant.Amount) {
			t.Fatalf("grant %s: remaining %s + burned %s != %s", id, gb.Remaining, gb.Burned, gb.Grant.Amount)
		}
		if gb.Remaining.IsNegative() || gb.Burned.IsNegative() {
			t.Fatalf("grant %s: remaining %s burned %s", id, gb.Remaining, gb.Burned)
		}
		if i > 0 && compareBurnOrder(&b.Grants[i-1].Grant, &gb.Grant) >= 0 {
			t.Fatalf("grants out of burn order at %d", i)
		}
		if gb.Expired {
			expired = expired.Add(gb.Remaining)
		} else {
			avail = avail.Add(gb.Remaining)
		}
	}
	if !avail.Equal(b.Available) || !expired.Equal(b.Expired) {
		t.Fatalf("available %s expired %s, grants add up to %s and %s", b.Available, b.Expired, avail, expired)
	}
	byGrant := map[string]money.Decimal{}
	for _, key := range periods {
		p, ok := w.Period(key)
		if !ok {
			continue
		}
		if p.Uncovered.IsNegative() {
			t.Fatalf("period %s: uncovered %s", key, p.Uncovered)
		}
		if got, want := p.Burned().Add(p.Uncovered), money.Max(money.Zero, p.Spend); !got.Equal(want) {
			t.Fatalf("period %s: burned %s + uncovered %s != max(0, spend %s)", key, p.Burned(), p.Uncovered, p.Spend)
		}
		for i, bn := range p.Burns {
			if !bn.Amount.IsPositive() || (i > 0 && p.Burns[i-1].GrantID == bn.GrantID) {
				t.Fatalf("period %s: burns not compacted: %s", key, fmtBurns(p.Burns))
			}
		}
		for _, bn := range p.ByGrant() {
			byGrant[bn.GrantID] = byGrant[bn.GrantID].Add(bn.Amount)
		}
	}
	for _, gb := range b.Grants {
		if !byGrant[gb.Grant.ID].Equal(gb.Burned) {
			t.Fatalf("grant %s burned %s, its periods' burns add up to %s", gb.Grant.ID, gb.Burned, byGrant[gb.Grant.ID])
		}
	}
}

// rebuild makes a wallet from w's stored state, as the billing service would after a restart.
// With history, each period is restored from every burn and refund in ledger order; without it,
// from the compacted burns Period returns.
func rebuild(t *testing.T, w *Wallet, periods []string, history map[string]*PeriodState) *Wallet {
	t.Helper()
	b := w.Balance(t0)
	grants := make([]Grant, len(b.Grants))
	for i, gb := range b.Grants {
		grants[len(grants)-1-i] = gb.Grant // any order
	}
	w2, err := New(grants)
	if err != nil {
		t.Fatal(err)
	}
	for _, gb := range b.Grants {
		if err := w2.Restore(gb.Grant.ID, gb.Burned); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range periods {
		p, ok := w.Period(key)
		if !ok {
			continue
		}
		if history != nil {
			p = *history[key]
		}
		if err := w2.RestorePeriod(p); err != nil {
			t.Fatalf("restore %s: %v", fmtPeriod(p), err)
		}
		if got, _ := w2.Period(key); fmtPeriod(got) != fmtPeriod(mustPeriod(w, key)) {
			t.Fatalf("restored period %s, want %s", fmtPeriod(got), fmtPeriod(mustPeriod(w, key)))
		}
	}
	if th, ok := w.Threshold(); ok {
		if err := w2.SetThreshold(th); err != nil {
			t.Fatal(err)
		}
	}
	return w2
}

func mustPeriod(w *Wallet, key string) PeriodState {
	p, _ := w.Period(key)
	return p
}

// exercise runs ops on a wallet built from grants, checking every call and the invariants after
// it; halfway it rebuilds two wallets from the stored state (compacted and full history) that
// must then answer every call identically; at the end a fresh run must repeat every result.
func exercise(t *testing.T, grants []Grant, ops []op) {
	t.Helper()
	w, err := New(grants)
	if err != nil {
		t.Fatal(err)
	}
	var periods []string
	history := map[string]*PeriodState{}
	var twins []*Wallet
	var out []string
	for i, o := range ops {
		if i == len(ops)/2 {
			twins = []*Wallet{rebuild(t, w, periods, nil), rebuild(t, w, periods, history)}
		}
		var line string
		if o.kind == opApply {
			res := checkApply(t, w, o)
			line = fmtResult(res)
			if !o.amount.IsZero() {
				h := history[o.period]
				if h == nil {
					h = &PeriodState{Key: o.period}
					history[o.period] = h
					periods = append(periods, o.period)
				}
				h.Spend = h.Spend.Add(o.amount)
				h.Uncovered = h.Uncovered.Add(res.UncoveredDelta)
				h.Burns = append(h.Burns, res.Burns...)
			}
		} else {
			line = do(t, w, o)
		}
		out = append(out, line)
		checkState(t, w, o.at, periods)
		for k, tw := range twins {
			if got := do(t, tw, o); got != line {
				t.Fatalf("op %d %v: rebuilt wallet %d answered\n  %s\nthe original\n  %s", i, o, k, got, line)
			}
			checkState(t, tw, o.at, periods)
		}
	}
	again, err := New(grants)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range ops {
		if got := do(t, again, o); got != out[i] {
			t.Fatalf("op %d %v: not deterministic:\n  %s\nthen\n  %s", i, o, out[i], got)
		}
	}
}

// randomAmount is a positive decimal with up to 3 digits after the point.
func randomAmount(r *rand.Rand, max int64) money.Decimal {
	return money.QtyInt(1 + r.Int64N(max)).Decimal().Shift(-int32(r.IntN(4)))
}

func randomGrant(r *rand.Rand, id string) Grant {
	gr := Grant{
		ID:        id,
		Amount:    randomAmount(r, 5000),
		Priority:  r.IntN(3),
		CreatedAt: t0.Add(-time.Duration(r.IntN(3)) * time.Hour),
		Kind:      []GrantKind{GrantKindPaid, GrantKindPromotional}[r.IntN(2)],
	}
	if r.IntN(3) > 0 {
		gr.ExpiresAt = ptr(t0.Add(time.Duration(1+r.IntN(12)) * 30 * time.Minute))
	}
	return gr
}

func randomOps(r *rand.Rand, n int) []op {
	ops := make([]op, 0, n)
	for i := range n {
		o := op{
			period: []string{"2026-02", "2026-03", "2026-04"}[r.IntN(3)],
			at:     t0.Add(time.Duration(r.IntN(420)) * time.Minute),
		}
		switch k := r.IntN(100); {
		case k < 55:
			o.amount = randomAmount(r, 3000)
		case k < 80:
			o.amount = randomAmount(r, 3000).Neg()
		case k < 83:
			o.amount = money.Zero
		case k < 93:
			o.kind, o.grant = opAddGrant, randomGrant(r, fmt.Sprintf("add%d", i))
		case k < 97:
			o.kind, o.amount = opSetThreshold, randomAmount(r, 4000)
		default:
			o.kind = opClearThreshold
		}
		ops = append(ops, o)
	}
	return ops
}

func TestRandomSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 3))
	for run := range 300 {
		grants := make([]Grant, r.IntN(6))
		for i := range grants {
			grants[i] = randomGrant(r, fmt.Sprintf("g%d", i))
		}
		ops := randomOps(r, 1+r.IntN(60))
		t.Run(fmt.Sprint(run), func(t *testing.T) { exercise(t, grants, ops) })
	}
}

// TestRandomSequencesRefundHeavy drives spends up and down around zero with few, small grants,
// so refunds, forfeits, uncovered amounts and negative spends all happen often.
func TestRandomSequencesRefundHeavy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for run := range 200 {
		grants := []Grant{randomGrant(r, "a"), randomGrant(r, "b")}
		ops := randomOps(r, 80)
		for i := range ops {
			if ops[i].kind == opApply && r.IntN(2) == 0 {
				ops[i].amount = ops[i].amount.Neg()
			}
		}
		t.Run(fmt.Sprint(run), func(t *testing.T) { exercise(t, grants, ops) })
	}
}

// decodeOps reads 4 bytes per op: a selector, a time, and a signed 16-bit amount whose scale the
// selector picks.
func decodeOps(data []byte) []op {
	var ops []op
	for i := 0; i+4 <= len(data) && len(ops) < 64; i += 4 {
		sel, tb := data[i], data[i+1]
		n := int64(int16(binary.BigEndian.Uint16(data[i+2:])))
		amount := money.QtyInt(n).Decimal().Shift(-int32(sel % 4))
		o := op{
			period: []string{"p0", "p1"}[sel>>7],
			at:     t0.Add(time.Duration(tb) * 3 * time.Minute),
			amount: amount,
		}
		switch (sel >> 2) % 16 {
		case 12, 13:
			o.kind = opAddGrant
			o.grant = Grant{ID: fmt.Sprintf("f%d", i), Amount: amount.Abs(), Priority: int(sel>>6) % 2,
				CreatedAt: t0.Add(-time.Minute), Kind: GrantKindPromotional}
			if o.grant.Amount.IsZero() {
				o.grant.Amount = money.QtyInt(1).Decimal()
			}
			if tb%3 != 0 {
				o.grant.ExpiresAt = ptr(o.at)
			}
		case 14:
			o.kind, o.amount = opSetThreshold, amount.Abs().Add(money.QtyInt(1).Decimal())
		case 15:
			o.kind = opClearThreshold
		}
		ops = append(ops, o)
	}
	return ops
}

// FuzzOperations runs decoded operation sequences on a wallet of three grants: no call panics,
// every invariant holds after every call, rebuilt wallets answer identically, and a second run
// repeats every result.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 10, 0, 50, 0, 20, 0xff, 0xf0, 0, 200, 0, 70})                     // burn, refund, burn after expiry
	f.Add([]byte{1, 0, 0x7f, 0xff, 2, 5, 0x80, 0x00, 3, 90, 0x7f, 0xff})              // exhaust all, refund past zero, back up
	f.Add([]byte{48, 7, 0, 40, 0, 8, 0, 90, 56, 0, 0, 30, 0, 1, 0, 5})                // add grant, burn, threshold, burn
	f.Add([]byte{128, 1, 0, 9, 0, 2, 0, 9, 128, 100, 0xff, 0x00, 0, 100, 0xff, 0x00}) // two periods
	f.Add([]byte{60, 3, 0, 0})                                                        // clear threshold only
	grants := []Grant{
		{ID: "a", Amount: money.QtyInt(100).Decimal(), CreatedAt: t0, Kind: GrantKindPaid, ExpiresAt: ptr(t0.Add(6 * time.Hour))},
		{ID: "b", Amount: money.QtyInt(250).Decimal().Shift(-1), Priority: 1, CreatedAt: t0, Kind: GrantKindPromotional},
		{ID: "c", Amount: money.QtyInt(7).Decimal(), CreatedAt: t0.Add(-time.Hour), Kind: GrantKindPaid, ExpiresAt: ptr(t0.Add(2 * time.Hour))},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		exercise(t, grants, decodeOps(data))
	})
}

func TestDecodeOpsCoversEveryKind(t *testing.T) {
	var data []byte
	for sel := range 256 {
		data = append(data, byte(sel), byte(sel), 0, 1)
	}
	seen := map[opKind]int{}
	for i := 0; i < len(data); i += 64 * 4 {
		for _, o := range decodeOps(data[i:]) {
			seen[o.kind]++
		}
	}
	for _, k := range []opKind{opApply, opAddGrant, opSetThreshold, opClearThreshold} {
		if seen[k] == 0 {
			t.Fatalf("no op of kind %d decoded: %v", k, seen)
		}
	}
	if !strings.Contains(decodeOps([]byte{0, 0, 0xff, 0xff})[0].amount.String(), "-") {
		t.Fatal("negative amounts are not decoded")
	}
}
