package wallet

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

// GrantKind says how a grant came to the customer.
type GrantKind string

// The grant kinds.
const (
	GrantKindPaid        GrantKind = "paid"
	GrantKindPromotional GrantKind = "promotional"
)

// Grant is an amount of prepaid credit.
type Grant struct {
	ID string
	// Amount is the credit granted; it must be positive.
	Amount money.Decimal
	// Priority orders burning: a lower number burns first.
	Priority int
	// ExpiresAt is the first instant the grant can no longer burn; nil means never.
	ExpiresAt *time.Time
	// CreatedAt breaks ties in burn order; it must be set.
	CreatedAt time.Time
	Kind      GrantKind
}

// Validate reports the first problem with the grant, naming its field.
func (g Grant) Validate() error {
	return g.validate("")
}

func (g Grant) validate(prefix string) error {
	switch {
	case g.ID == "":
		return problem.Invalidf(prefix+"id", "is required")
	case !g.Amount.IsPositive():
		return problem.Invalidf(prefix+"amount", "must be positive (got %s)", g.Amount)
	case g.Kind != GrantKindPaid && g.Kind != GrantKindPromotional:
		return problem.Invalidf(prefix+"kind", "must be %q or %q (got %q)", GrantKindPaid, GrantKindPromotional, g.Kind)
	case g.CreatedAt.IsZero():
		return problem.Invalidf(prefix+"createdAt", "is required")
	case g.ExpiresAt != nil && !g.ExpiresAt.After(g.CreatedAt):
		return problem.Invalidf(prefix+"expiresAt", "must be after createdAt (%s is not after %s)",
			g.ExpiresAt.Format(time.RFC3339Nano), g.CreatedAt.Format(time.RFC3339Nano))
	}
	return nil
}

// expiredAt reports whether the grant can no longer burn at t.
func (g *Grant) expiredAt(t time.Time) bool {
	return g.ExpiresAt != nil && !t.Before(*g.ExpiresAt)
}

// clone copies the grant so the caller's ExpiresAt is never shared.
func (g Grant) clone() Grant {
	if g.ExpiresAt != nil {
		e := *g.ExpiresAt
		g.ExpiresAt = &e
	}
	return g
}

// compareBurnOrder orders grants by priority, earliest expiry (none last), oldest creation, ID.
func compareBurnOrder(a, b *Grant) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	switch {
	case a.ExpiresAt != nil && b.ExpiresAt == nil:
		return -1
	case a.ExpiresAt == nil && b.ExpiresAt != nil:
		return 1
	case a.ExpiresAt != nil:
		if c := a.ExpiresAt.Compare(*b.ExpiresAt); c != 0 {
			return c
		}
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Burn is one movement of credit: a positive Amount burns the grant, a negative one refunds it.
type Burn struct {
	GrantID string
	Amount  money.Decimal
	// Forfeited marks a refund to a grant already expired at the call's time: it returns to the
	// grant's ledger but never to the usable balance.
	Forfeited bool
}

// Result is what one Apply did.
type Result struct {
	PeriodKey string
	// Amount is the amount applied: the change of the period's running spend.
	Amount money.Decimal
	// Burns are the grant movements in the order they happened.
	Burns []Burn
	// UncoveredDelta is the change of the period's uncovered amount (amount due).
	UncoveredDelta money.Decimal
	// BalanceBefore and BalanceAfter are Balance(at).Available around the call.
	BalanceBefore, BalanceAfter money.Decimal
	// LowBalanceCrossed reports the balance going from ≥ threshold to < threshold.
	LowBalanceCrossed bool
}

// Burned is the net amount the call took from grants (burns minus refunds).
func (r Result) Burned() money.Decimal {
	s := money.Zero
	for _, b := range r.Burns {
		s = s.Add(b.Amount)
	}
	return s
}

type grantState struct {
	Grant
	burned money.Decimal // net over all periods; remaining = Amount − burned
}

func (g *grantState) remaining() money.Decimal { return g.Amount.Sub(g.burned) }

type periodState struct {
	spend     money.Decimal
	uncovered money.Decimal
	// stack holds the period's burns not yet refunded, oldest first, all positive; adjacent
	// entries name different grants.
	stack   []Burn
	byGrant map[string]money.Decimal
}

func newPeriodState() *periodState {
	return &periodState{byGrant: map[string]money.Decimal{}}
}

func (p *periodState) push(id string, amt money.Decimal) {
	if n := len(p.stack); n > 0 && p.stack[n-1].GrantID == id {
		p.stack[n-1].Amount = p.stack[n-1].Amount.Add(amt)
	} else {
		p.stack = append(p.stack, Burn{GrantID: id, Amount: amt})
	}
	p.byGrant[id] = p.byGrant[id].Add(amt)
}

// Wallet holds one customer's grants, their remaining balances and the per-period burns.
type Wallet struct {
	grants    []*grantState // in burn order
	byID      map[string]*grantState
	periods   map[string]*periodState
	threshold money.Decimal
	hasThresh bool
}

// New returns a wallet holding the grants, none of them burned yet. An invalid grant or a
// repeated ID is an error naming grants[i] and the field.
func New(grants []Grant) (*Wallet, error) {
	w := &Wallet{
		byID:    make(map[string]*grantState, len(grants)),
		periods: map[string]*periodState{},
	}
	for i, g := range grants {
		prefix := fmt.Sprintf("grants[%d].", i)
		if err := g.validate(prefix); err != nil {
			return nil, err
		}
		if _, dup := w.byID[g.ID]; dup {
			return nil, problem.Invalidf(prefix+"id", "repeats grant %q", g.ID)
		}
		gs := &grantState{Grant: g.clone()}
		w.byID[g.ID] = gs
		w.grants = append(w.grants, gs)
	}
	slices.SortFunc(w.grants, func(a, b *grantState) int { return compareBurnOrder(&a.Grant, &b.Grant) })
	return w, nil
}

// AddGrant adds an unburned grant. It pays only usage applied after it, never usage already
// uncovered. An existing ID is a Conflict error; an invalid grant an Invalid one.
func (w *Wallet) AddGrant(g Grant) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if _, dup := w.byID[g.ID]; dup {
		return &problem.Error{Kind: problem.Conflict, Message: fmt.Sprintf("grant %q already exists", g.ID),
			Fields: []problem.Field{{Field: "id", Message: "already exists"}}}
	}
	gs := &grantState{Grant: g.clone()}
	i, _ := slices.BinarySearchFunc(w.grants, gs, func(a, b *grantState) int { return compareBurnOrder(&a.Grant, &b.Grant) })
	w.grants = slices.Insert(w.grants, i, gs)
	w.byID[g.ID] = gs
	return nil
}

// SetThreshold sets the low-balance threshold; it must be positive.
func (w *Wallet) SetThreshold(threshold money.Decimal) error {
	if !threshold.IsPositive() {
		return problem.Invalidf("threshold", "must be positive (got %s)", threshold)
	}
	w.threshold, w.hasThresh = threshold, true
	return nil
}

// ClearThreshold removes the low-balance threshold: Apply no longer reports crossings.
func (w *Wallet) ClearThreshold() { w.threshold, w.hasThresh = money.Zero, false }

// Threshold returns the low-balance threshold and whether one is set.
func (w *Wallet) Threshold() (money.Decimal, bool) { return w.threshold, w.hasThresh }

// BelowThreshold reports whether a threshold is set and the balance at `at` is below it.
func (w *Wallet) BelowThreshold(at time.Time) bool {
	return w.hasThresh && w.available(at).LessThan(w.threshold)
}

func (w *Wallet) available(at time.Time) money.Decimal {
	s := money.Zero
	for _, g := range w.grants {
		if !g.expiredAt(at) {
			s = s.Add(g.remaining())
		}
	}
	return s
}

// Apply applies one rated usage amount, timestamped at, to the period periodKey: a positive
// amount burns grants eligible at `at` and leaves the rest uncovered, a negative one reduces the
// uncovered amount and then refunds this period's burns, most recent first. See the package doc
// for every edge.
func (w *Wallet) Apply(periodKey string, at time.Time, amount money.Decimal) Result {
	before := w.available(at)
	res := Result{PeriodKey: periodKey, Amount: amount, BalanceBefore: before, BalanceAfter: before}
	if amount.IsZero() {
		return res
	}
	p := w.periods[periodKey]
	if p == nil {
		p = newPeriodState()
		w.periods[periodKey] = p
	}
	covered := money.Max(money.Zero, p.spend)
	p.spend = p.spend.Add(amount)
	delta := money.Max(money.Zero, p.spend).Sub(covered)
	switch delta.Sign() {
	case 1:
		w.burn(p, at, delta, &res)
	case -1:
		w.refund(p, at, delta.Neg(), &res)
	}
	res.BalanceAfter = w.available(at)
	res.LowBalanceCrossed = w.hasThresh && !before.LessThan(w.threshold) && res.BalanceAfter.LessThan(w.threshold)
	return res
}

func (w *Wallet) burn(p *periodState, at time.Time, left money.Decimal, res *Result) {
	for _, g := range w.grants {
		if !left.IsPositive() {
			break
		}
		if g.expiredAt(at) {
			continue
		}
		rem := g.remaining()
		if !rem.IsPositive() {
			continue
		}
		take := money.Min(rem, left)
		g.burned = g.burned.Add(take)
		p.push(g.ID, take)
		res.Burns = append(res.Burns, Burn{GrantID: g.ID, Amount: take})
		left = left.Sub(take)
	}
	if left.IsPositive() {
		p.uncovered = p.uncovered.Add(left)
		res.UncoveredDelta = left
	}
}

func (w *Wallet) refund(p *periodState, at time.Time, left money.Decimal, res *Result) {
	if u := money.Min(p.uncovered, left); u.IsPositive() {
		p.uncovered = p.uncovered.Sub(u)
		res.UncoveredDelta = u.Neg()
		left = left.Sub(u)
	}
	// burned in the period + uncovered == max(0, spend) before the call, and the call lowers
	// max(0, spend) by no more than that sum, so the stack always holds enough.
	for left.IsPositive() && len(p.stack) > 0 {
		top := &p.stack[len(p.stack)-1]
		take := money.Min(top.Amount, left)
		g := w.byID[top.GrantID]
		g.burned = g.burned.Sub(take)
		p.byGrant[top.GrantID] = p.byGrant[top.GrantID].Sub(take)
		res.Burns = append(res.Burns, Burn{GrantID: top.GrantID, Amount: take.Neg(), Forfeited: g.expiredAt(at)})
		top.Amount = top.Amount.Sub(take)
		if top.Amount.IsZero() {
			p.stack = p.stack[:len(p.stack)-1]
		}
		left = left.Sub(take)
	}
}

// GrantBalance is one grant's state.
type GrantBalance struct {
	Grant Grant
	// Remaining is Amount minus Burned: what the grant can still pay, unless Expired.
	Remaining money.Decimal
	// Burned is the grant's net burned total over all periods.
	Burned money.Decimal
	// Expired reports the grant expired at the time asked: its Remaining is forfeited.
	Expired bool
}

// Balance is the wallet's balance at one instant.
type Balance struct {
	// Available is the sum of the remaining balances of the grants not expired.
	Available money.Decimal
	// Expired is the sum of the remaining balances of the expired grants (forfeited).
	Expired money.Decimal
	// Grants lists every grant, in burn order.
	Grants []GrantBalance
}

// Empty reports whether the wallet holds no grant at all (expired or exhausted ones count as
// held).
func (w *Wallet) Empty() bool { return len(w.grants) == 0 }

// Balance returns the balance at `at`.
func (w *Wallet) Balance(at time.Time) Balance {
	b := Balance{Available: money.Zero, Expired: money.Zero, Grants: make([]GrantBalance, 0, len(w.grants))}
	for _, g := range w.grants {
		rem := g.remaining()
		exp := g.expiredAt(at)
		if exp {
			b.Expired = b.Expired.Add(rem)
		} else {
			b.Available = b.Available.Add(rem)
		}
		b.Grants = append(b.Grants, GrantBalance{Grant: g.Grant.clone(), Remaining: rem, Burned: g.burned, Expired: exp})
	}
	return b
}

// NetBalance is Balance(at).Available minus the uncovered amount of the period periodKey (the
// open one). It is negative when settled usage outran the grants; see the package doc.
func (w *Wallet) NetBalance(periodKey string, at time.Time) money.Decimal {
	n := w.available(at)
	if p := w.periods[periodKey]; p != nil {
		n = n.Sub(p.uncovered)
	}
	return n
}
