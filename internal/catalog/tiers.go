package catalog

import (
	"fmt"

	"github.com/levyhq/levy/internal/money"
)

// TierBasis is the spend a ladder's thresholds are compared with.
type TierBasis string

// The tier bases.
const (
	// PeriodSpend is the customer's spend in the current billing period; it restarts at 0 with
	// every period, and so does the ladder.
	PeriodSpend TierBasis = "periodSpend"
	// LifetimeSpend is everything the customer has spent since it was created; it never restarts.
	LifetimeSpend TierBasis = "lifetimeSpend"
)

// Tiers is the compiled spend-tier ladder. Package tier evaluates it.
type Tiers struct {
	Basis TierBasis
	// Ladder lists the tiers in document order. The tiers that are not manual have strictly
	// increasing thresholds in that order, and the first of them has threshold 0.
	Ladder []*SpendTier

	byKey map[string]*SpendTier
	base  *SpendTier
}

// Tier returns the tier with the key, or nil (also on a nil ladder).
func (t *Tiers) Tier(key string) *SpendTier {
	if t == nil {
		return nil
	}
	return t.byKey[key]
}

// Base returns the first tier that is not manual: the one with threshold 0, where every
// customer starts. It is nil only on a nil ladder.
func (t *Tiers) Base() *SpendTier {
	if t == nil {
		return nil
	}
	return t.base
}

// SpendTier is one rung of the spend-tier ladder.
type SpendTier struct {
	// Index is the tier's position in Ladder.
	Index int
	Key   string
	Name  string
	// Threshold is the basis spend (inclusive) from which a customer is in this tier. It is nil
	// exactly for manual tiers, which only a per-customer override reaches.
	Threshold *money.Decimal
	Manual    bool
	// Limits holds the limits the tier sets absolutely; a nil field is left to LimitMultiplier
	// and the plan.
	Limits Limits
	// LimitMultiplier (> 0) scales the plan's limits the tier does not set; nil leaves them as
	// they are.
	LimitMultiplier *money.Decimal
	// Discount is a percent in [0, 100) off amounts rated while the customer is in the tier;
	// DiscountFraction is Discount / 100, exact.
	Discount         money.Decimal
	DiscountFraction money.Decimal
}

var hundred = money.MustParse("100")

func (b *builder) buildTiers(c *Catalog, td *TiersDoc) {
	const path = "tiers"
	t := &Tiers{Basis: PeriodSpend, byKey: map[string]*SpendTier{}}
	switch TierBasis(td.Basis) {
	case "":
	case PeriodSpend, LifetimeSpend:
		t.Basis = TierBasis(td.Basis)
	default:
		b.addf(path+".basis", "must be periodSpend or lifetimeSpend (got %q)", td.Basis)
	}
	if len(td.Ladder) == 0 {
		b.addf(path+".ladder", "needs at least one tier")
		return
	}
	seen := map[string]int{}
	// prev is the threshold of the previous tier that is not manual, and prevText its text as
	// written, for messages.
	var prev *money.Decimal
	prevText := ""
	for i := range td.Ladder {
		sd := &td.Ladder[i]
		tp := fmt.Sprintf("%s.ladder[%d]", path, i)
		st := &SpendTier{Index: i, Key: sd.Key, Name: sd.Name, Manual: sd.Manual}
		if !keyPattern.MatchString(sd.Key) {
			b.addf(tp+".key", "must be a name of letters, digits, _ . : - starting with a letter or _ (got %q)", sd.Key)
		} else if j, dup := seen[sd.Key]; dup {
			b.addf(tp+".key", "duplicate tier key %q (also ladder[%d])", sd.Key, j)
		} else {
			seen[sd.Key] = i
			t.byKey[sd.Key] = st
		}
		switch {
		case sd.Manual && sd.Threshold != nil:
			b.addf(tp+".threshold", "a manual tier has no threshold: only a per-customer override reaches it")
		case sd.Manual:
		case sd.Threshold == nil:
			if prev == nil {
				b.addf(tp+".threshold", `is required: "0" on the first tier that is not manual, where every customer starts`)
			} else {
				b.addf(tp+".threshold", "is required on a tier that is not manual (the basis spend, inclusive, that promotes to it)")
			}
		default:
			v, ok := b.dec(tp+".threshold", sd.Threshold, false)
			if !ok {
				break
			}
			switch {
			case prev == nil && !v.IsZero():
				b.addf(tp+".threshold", "must be 0 on the first tier that is not manual, where every customer starts (got %s)", sd.Threshold.Text)
			case prev != nil && !v.GreaterThan(*prev):
				b.addf(tp+".threshold", "must exceed the previous tier's threshold (%s)", prevText)
			}
			vv := v
			st.Threshold = &vv
			prev, prevText = &vv, sd.Threshold.Text
		}
		if !sd.Manual && t.base == nil {
			t.base = st
		}
		if sd.Limits != nil {
			st.Limits = b.limits(tp+".limits", sd.Limits)
		}
		if v, ok := b.dec(tp+".limitMultiplier", sd.LimitMultiplier, true); ok {
			if !v.IsPositive() {
				b.addf(tp+".limitMultiplier", "must be greater than 0 (got %s)", sd.LimitMultiplier.Text)
			} else {
				st.LimitMultiplier = &v
			}
		}
		if v, ok := b.dec(tp+".discount", sd.Discount, false); ok {
			if v.GreaterThanOrEqual(hundred) {
				b.addf(tp+".discount", "must be below 100 (a percent off; got %s)", sd.Discount.Text)
			} else {
				st.Discount = v
				st.DiscountFraction = v.Shift(-2)
			}
		}
		t.Ladder = append(t.Ladder, st)
	}
	if t.base == nil {
		b.addf(path+".ladder", `needs a tier that is not manual, with threshold "0", where every customer starts`)
	}
	c.Tiers = t
}
