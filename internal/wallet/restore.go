package wallet

import (
	"fmt"
	"slices"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

// PeriodState is one billing period as the wallet sees it. Period returns it; RestorePeriod
// takes it back.
type PeriodState struct {
	Key string
	// Spend is the period's running total: the sum of every amount applied to it.
	Spend money.Decimal
	// Uncovered is the usage no grant could pay, billed as amount due; never negative.
	Uncovered money.Decimal
	// Burns are the period's grant movements in the order they happened. Period returns them
	// compacted: only burns not yet refunded, oldest first, all positive. RestorePeriod also
	// accepts the full history (burns and refunds, as stored from each Result, in ledger order).
	Burns []Burn
}

// Burned is the period's net amount burned from grants.
func (p PeriodState) Burned() money.Decimal {
	s := money.Zero
	for _, b := range p.Burns {
		s = s.Add(b.Amount)
	}
	return s
}

// ByGrant is the period's net amount burned per grant, in the order grants first appear in
// Burns; grants whose net is zero are left out.
func (p PeriodState) ByGrant() []Burn {
	var out []Burn
	idx := map[string]int{}
	for _, b := range p.Burns {
		i, ok := idx[b.GrantID]
		if !ok {
			i = len(out)
			idx[b.GrantID] = i
			out = append(out, Burn{GrantID: b.GrantID, Amount: money.Zero})
		}
		out[i].Amount = out[i].Amount.Add(b.Amount)
	}
	return slices.DeleteFunc(out, func(b Burn) bool { return b.Amount.IsZero() })
}

// Period returns the state of the period key, and false when no amount was ever applied to it
// (nor restored).
func (w *Wallet) Period(key string) (PeriodState, bool) {
	p := w.periods[key]
	if p == nil {
		return PeriodState{Key: key, Spend: money.Zero, Uncovered: money.Zero}, false
	}
	return PeriodState{Key: key, Spend: p.spend, Uncovered: p.uncovered, Burns: slices.Clone(p.stack)}, true
}

// Restore sets a grant's net burned total over all periods (the sum of its stored burns, refunds
// counted negative), so its remaining balance is Amount − burned. It replaces any earlier value
// and does not touch the per-period burns (RestorePeriod does). An unknown grant is NotFound;
// a total below zero or above the grant's Amount is Invalid.
func (w *Wallet) Restore(grantID string, burned money.Decimal) error {
	g := w.byID[grantID]
	if g == nil {
		return &problem.Error{Kind: problem.NotFound, Message: fmt.Sprintf("no grant %q in the wallet", grantID),
			Fields: []problem.Field{{Field: "grantId", Message: "unknown grant"}}}
	}
	if burned.IsNegative() {
		return problem.Invalidf("burned", "must not be negative (got %s)", burned)
	}
	if burned.GreaterThan(g.Amount) {
		return problem.Invalidf("burned", "%s exceeds grant %q's amount %s", burned, grantID, g.Amount)
	}
	g.burned = burned
	return nil
}

// RestorePeriod replaces the state of the period p.Key. Burns are replayed in order: a positive
// amount is a burn, a negative one refunds that grant's most recent burns in the period, which
// rebuilds exactly the order later refunds will follow. It does not touch grants' burned totals
// (Restore does). Errors name the field: an unknown grant, a refund larger than what the grant
// burned in the period so far, a negative uncovered amount, or burns + uncovered that differ
// from max(0, spend).
func (w *Wallet) RestorePeriod(p PeriodState) error {
	if p.Uncovered.IsNegative() {
		return problem.Invalidf("uncovered", "must not be negative (got %s)", p.Uncovered)
	}
	ps := newPeriodState()
	ps.spend, ps.uncovered = p.Spend, p.Uncovered
	sum := money.Zero
	for i, b := range p.Burns {
		field := fmt.Sprintf("burns[%d]", i)
		g := w.byID[b.GrantID]
		if g == nil {
			return problem.Invalidf(field+".grantId", "unknown grant %q", b.GrantID)
		}
		switch b.Amount.Sign() {
		case 1:
			if ps.byGrant[b.GrantID].Add(b.Amount).GreaterThan(g.Amount) {
				return problem.Invalidf(field+".amount", "grant %q would burn more than its amount %s in the period", b.GrantID, g.Amount)
			}
			ps.push(b.GrantID, b.Amount)
		case -1:
			if ps.byGrant[b.GrantID].LessThan(b.Amount.Neg()) {
				return problem.Invalidf(field+".amount", "refunds %s to grant %q, which burned %s in the period so far",
					b.Amount.Neg(), b.GrantID, ps.byGrant[b.GrantID])
			}
			ps.unburn(b.GrantID, b.Amount.Neg())
		}
		sum = sum.Add(b.Amount)
	}
	if want := money.Max(money.Zero, p.Spend); !sum.Add(p.Uncovered).Equal(want) {
		return problem.Invalidf("uncovered", "burns %s + uncovered %s must equal max(0, spend) = %s", sum, p.Uncovered, want)
	}
	w.periods[p.Key] = ps
	return nil
}

// unburn removes amt of grant id from the stack, most recent entries first. The caller has
// checked the grant burned at least amt in the period.
func (p *periodState) unburn(id string, amt money.Decimal) {
	p.byGrant[id] = p.byGrant[id].Sub(amt)
	for i := len(p.stack) - 1; i >= 0 && amt.IsPositive(); i-- {
		if p.stack[i].GrantID != id {
			continue
		}
		take := money.Min(p.stack[i].Amount, amt)
		p.stack[i].Amount = p.stack[i].Amount.Sub(take)
		amt = amt.Sub(take)
	}
	// Drop emptied entries and merge the neighbours they separated.
	out := p.stack[:0]
	for _, b := range p.stack {
		if b.Amount.IsZero() {
			continue
		}
		if n := len(out); n > 0 && out[n-1].GrantID == b.GrantID {
			out[n-1].Amount = out[n-1].Amount.Add(b.Amount)
			continue
		}
		out = append(out, b)
	}
	p.stack = out
}
