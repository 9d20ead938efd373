// Package tier evaluates a catalog's spend-tier ladder: which tier a customer is in as its spend
// grows, the limits that tier gives it, and the discount it earns. It is pure (no I/O, no clock,
// no state of its own) and cheap enough for the billing writer to call on every ingested event.
//
// Behaviour at the edges:
//   - Thresholds are inclusive: a basis spend equal to a tier's threshold reaches the tier.
//   - One transition per tier crossed: an event that takes the basis past two thresholds yields
//     two promotions, in ladder order (free→build, then build→scale).
//   - Promotion is sticky: a falling basis (volume pricing, negative amounts, refunds) never
//     demotes. Only a new basis period demotes, and only on the periodSpend basis (Reset); on
//     lifetimeSpend a customer never moves down the ladder.
//   - A per-customer override (a tier key set by hand, the only way into a manual tier) wins over
//     the ladder: while it is set, spend moves nobody and a period reset demotes nobody. Clearing
//     it puts the customer back on the ladder at the tier its basis implies.
//   - A current tier of "" (a new customer) or a key the ladder lacks (a tier removed by a catalog
//     change) reads as the ladder's base tier, the first one that is not manual. An override
//     naming a key the ladder lacks is ignored, as if unset.
//   - A nil ladder (a catalog without tiers) yields no transitions, no discount, and the plan's
//     limits unchanged.
//   - Limits: a tier's absolute limit wins, then limitMultiplier × the plan's limit, then the
//     plan's limit. Multiplied whole-number limits are rounded down (120 × 0.75 = 90,
//     3 × 0.5 = 1) and capped at MaxLimit; monthlySpend is multiplied exactly, never rounded. An
//     unlimited (absent) plan limit stays unlimited whatever the multiplier.
//   - Discount is exact (amount × discount / 100, negated) and never rounded: the invoice rounds.
//     The event whose spend promotes a customer was rated at the tier it was in before it; the
//     new tier's discount applies to amounts rated after the promotion.
package tier

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// Reason says why a customer changed tier.
type Reason string

// The transition reasons.
const (
	// ReasonPromotion: the basis spend reached the next tier's threshold.
	ReasonPromotion Reason = "promotion"
	// ReasonPeriodReset: a new basis period began on the periodSpend basis.
	ReasonPeriodReset Reason = "period_reset"
	// ReasonOverride: a per-customer override was set, changed or cleared.
	ReasonOverride Reason = "override"
)

// Transition is one change of a customer's tier.
type Transition struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason Reason `json:"reason"`
}

// MaxLimit is the largest whole-number limit a multiplier can produce; it is also the largest a
// catalog accepts.
const MaxLimit int64 = 9_000_000_000_000_000_000

// Evaluate returns the transitions an event causes: basisBefore and basisAfter are the
// customer's basis spend before and after the event, current is the tier the customer is in and
// override the tier set by hand ("" for none). The customer's tier after the event is the last
// transition's To, or current when there is none.
//
// A customer has reached every basis value it had in the period, so without an override the
// target is the highest ladder tier whose threshold is at most the larger of basisBefore and
// basisAfter; if that is above the current tier, Evaluate promotes one tier at a time up to it.
// A current tier behind its basis (a lost update, a lowered threshold) therefore catches up on
// the next event. With an override set, the only possible transition is current → override. A
// manual current tier with no override (the override was cleared) moves straight back to the
// target. To apply an override change at once, call Evaluate with basisBefore == basisAfter.
func Evaluate(t *catalog.Tiers, basisBefore, basisAfter money.Decimal, current, override string) []Transition {
	if t == nil || len(t.Ladder) == 0 {
		return nil
	}
	from := resolve(t, current)
	if o := t.Tier(override); o != nil {
		if o == from {
			return nil
		}
		return []Transition{{From: from.Key, To: o.Key, Reason: ReasonOverride}}
	}
	peak := money.Max(basisBefore, basisAfter)
	if from.Manual {
		return []Transition{{From: from.Key, To: implied(t, peak).Key, Reason: ReasonOverride}}
	}
	// Thresholds increase along the ladder, so only the tiers above the current one need a look,
	// and the first one out of reach ends the climb.
	var out []Transition
	for _, st := range t.Ladder[from.Index+1:] {
		if st.Manual || st.Threshold == nil {
			continue
		}
		if peak.LessThan(*st.Threshold) {
			break
		}
		out = append(out, Transition{From: from.Key, To: st.Key, Reason: ReasonPromotion})
		from = st
	}
	return out
}

// Reset returns the transitions a new basis period causes. On the periodSpend basis the basis
// restarts at 0, so a customer above the base tier is demoted to it in one transition; on
// lifetimeSpend nothing changes. An override still wins: a customer under one is not demoted
// (and one not yet in the override's tier moves to it).
func Reset(t *catalog.Tiers, current, override string) []Transition {
	if t == nil || len(t.Ladder) == 0 {
		return nil
	}
	from := resolve(t, current)
	if o := t.Tier(override); o != nil {
		if o == from {
			return nil
		}
		return []Transition{{From: from.Key, To: o.Key, Reason: ReasonOverride}}
	}
	if t.Basis != catalog.PeriodSpend {
		return nil
	}
	base := t.Base()
	if from == base {
		return nil
	}
	return []Transition{{From: from.Key, To: base.Key, Reason: ReasonPeriodReset}}
}

// Current returns the tier whose limits and discount apply to the customer: the override's
// when it names a tier of the ladder, else current's, else the base tier. It is nil only for a
// nil ladder.
func Current(t *catalog.Tiers, current, override string) *catalog.SpendTier {
	if t == nil || len(t.Ladder) == 0 {
		return nil
	}
	if o := t.Tier(override); o != nil {
		return o
	}
	return resolve(t, current)
}

// resolve reads a stored tier key: a key the ladder lacks ("" included) is the base tier.
func resolve(t *catalog.Tiers, key string) *catalog.SpendTier {
	if st := t.Tier(key); st != nil {
		return st
	}
	return t.Base()
}

// implied returns the highest tier that is not manual whose threshold is at most basis; below
// every threshold (a negative basis) it is the base tier.
func implied(t *catalog.Tiers, basis money.Decimal) *catalog.SpendTier {
	out := t.Base()
	for _, st := range t.Ladder {
		if st.Manual || st.Threshold == nil {
			continue
		}
		if basis.LessThan(*st.Threshold) {
			break
		}
		out = st
	}
	return out
}

// EffectiveLimits returns the limits a plan's customer has in tier st: for each limit, the
// tier's absolute value when it sets one, else the plan's scaled by the tier's limitMultiplier
// (whole numbers rounded down, capped at MaxLimit; money exact), else the plan's. A nil tier
// leaves the plan's limits. Per-customer overrides are the caller's to apply on top. The
// result shares no pointer with plan or st.
func EffectiveLimits(plan catalog.Limits, st *catalog.SpendTier) catalog.Limits {
	var mult *money.Decimal
	var abs catalog.Limits
	if st != nil {
		mult, abs = st.LimitMultiplier, st.Limits
	}
	return catalog.Limits{
		RequestsPerMinute: intLimit(plan.RequestsPerMinute, abs.RequestsPerMinute, mult),
		TokensPerMinute:   intLimit(plan.TokensPerMinute, abs.TokensPerMinute, mult),
		MonthlyTokens:     intLimit(plan.MonthlyTokens, abs.MonthlyTokens, mult),
		MonthlySpend:      decLimit(plan.MonthlySpend, abs.MonthlySpend, mult),
		MaxConcurrent:     intLimit(plan.MaxConcurrent, abs.MaxConcurrent, mult),
	}
}

var maxLimit = money.QtyInt(MaxLimit).Decimal()

func intLimit(plan, abs *int64, mult *money.Decimal) *int64 {
	var v int64
	switch {
	case abs != nil:
		v = *abs
	case plan == nil:
		return nil
	case mult == nil:
		v = *plan
	default:
		d := money.QtyInt(*plan).Decimal().Mul(*mult).Floor()
		switch {
		case d.GreaterThan(maxLimit):
			v = MaxLimit
		case d.IsNegative():
			v = 0
		default:
			v = d.IntPart()
		}
	}
	return &v
}

func decLimit(plan, abs *money.Decimal, mult *money.Decimal) *money.Decimal {
	var v money.Decimal
	switch {
	case abs != nil:
		v = *abs
	case plan == nil:
		return nil
	case mult == nil:
		v = *plan
	default:
		v = plan.Mul(*mult)
	}
	return &v
}

// Discount returns the tier's discount on an amount rated while the customer is in it, as a
// negative amount to add to it: −amount × discount / 100, exact and unrounded. A negative
// amount (a credit) gets a positive discount line, so discounts stay proportional to what they
// apply to. A nil tier or a tier without discount gives 0.
func Discount(st *catalog.SpendTier, amount money.Decimal) money.Decimal {
	if st == nil || st.DiscountFraction.IsZero() {
		return money.Zero
	}
	return amount.Mul(st.DiscountFraction).Neg()
}
