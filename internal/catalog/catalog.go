// Package catalog parses, validates and compiles Levy's catalog: meters, the cost book and
// versioned plans of charges. A compiled Catalog is immutable and safe to share between
// goroutines.
//
// Behaviour at the edges:
//   - Every problem in a document is reported at once, each with its path, e.g.
//     "plans[0].charges[2].tiers[1].upTo: must exceed the previous tier's upTo (10000000)".
//   - Money and quantities are read exactly from the document's text; YAML numbers never pass
//     through float64.
//   - `per` must be a positive integer of the form 2^a·5^b (1, 10, 1000, 1000000, 1024, ...), so
//     that dividing by it always gives an exact decimal: no amount is rounded before the invoice.
//   - Tiers: `upTo` is inclusive, strictly increasing, and only the last tier may (and must)
//     omit it. Filters compare property text exactly; an absent property reads as "".
//   - A percentage of other charges may name any charges of the same plan except itself, as long
//     as no cycle forms; charges are rated in an order where each comes after those it depends on.
//   - A meter without `aggregation` sums. A derived meter (with `expression`) is fed by every event
//     that carries at least one of the measurements its formula reads (and matches its eventType
//     when one is given).
//   - Spend tiers: `threshold` is inclusive (a basis spend equal to it reaches the tier) and
//     strictly increasing over the tiers that are not manual, in ladder order; the first of them
//     has threshold 0 and is where every customer starts. Manual tiers have no threshold and are
//     reached only by a per-customer override. `discount` is a percent in [0, 100);
//     `limitMultiplier` (> 0) scales the plan limits a tier does not set itself, whole-number
//     limits rounded down (package tier applies it). `basis` defaults to periodSpend.
//   - Margin guard: every comparison of Breached is exact and uses no division; equal to a
//     maximum does not trip, below a minimum margin does. coolDown defaults to 15m.
package catalog

import (
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
)

// Aggregation is how a meter folds its events' values over a period.
type Aggregation string

// The meter aggregations.
const (
	Sum         Aggregation = "sum"
	Count       Aggregation = "count"
	Max         Aggregation = "max"
	Latest      Aggregation = "latest"
	UniqueCount Aggregation = "uniqueCount"
)

// Model is a pricing model.
type Model string

// The pricing models.
const (
	Flat          Model = "flat"
	PerUnit       Model = "perUnit"
	Graduated     Model = "graduated"
	Volume        Model = "volume"
	Package       Model = "package"
	IncludedQuota Model = "includedQuota"
	Percentage    Model = "percentage"
)

// Catalog is a compiled, immutable catalog.
type Catalog struct {
	Currency money.Currency
	Meters   []*Meter
	Costs    []*Cost
	Plans    []*Plan
	// Tiers is the spend-tier ladder; nil when the catalog has none.
	Tiers *Tiers
	// MarginGuard lists the margin-guard rules in document order.
	MarginGuard []*GuardRule
	Document    *Document

	meterByKey map[string]*Meter
	planByKey  map[string]*Plan
	// metricMeters lists, per measurement key, the meters it feeds (derived meters included).
	metricMeters map[string][]*Meter
	costsByMeter map[string][]*Cost
}

// Meter returns the meter with the key, or nil.
func (c *Catalog) Meter(key string) *Meter { return c.meterByKey[key] }

// Plan returns the plan with the key, or nil.
func (c *Catalog) Plan(key string) *Plan { return c.planByKey[key] }

// MetersFedBy returns the meters a measurement key feeds.
func (c *Catalog) MetersFedBy(metricKey string) []*Meter { return c.metricMeters[metricKey] }

// CountMeters returns the meters that count events (they need no measurement).
func (c *Catalog) CountMeters() []*Meter {
	var out []*Meter
	for _, m := range c.Meters {
		if m.Aggregation == Count && m.Expr == nil && m.MetricKey == "" {
			out = append(out, m)
		}
	}
	return out
}

// CostsFor returns the cost book entries of a meter, in document order (first match wins).
func (c *Catalog) CostsFor(meterKey string) []*Cost { return c.costsByMeter[meterKey] }

// Meter is a compiled meter.
type Meter struct {
	Index       int
	Key         string
	MetricKey   string // measurement key that feeds it; "" for count meters and derived meters
	EventType   string // "" matches every event type
	Aggregation Aggregation
	Property    string // uniqueCount: the property whose distinct values are counted
	Expr        *Expression
}

// Cost is one cost book entry: unitCost per `per` units of a meter, for events matching Filter.
type Cost struct {
	Index    int
	Meter    *Meter
	Filter   Filter
	UnitCost money.Decimal
	Per      money.Decimal
	UnitRate money.Decimal // UnitCost / Per, exact
}

// Plan is one version of a plan.
type Plan struct {
	Key               string
	Name              string
	Period            period.Unit
	MinimumCommitment *money.Decimal
	Limits            Limits
	Charges           []*Charge
	// Order lists charge indexes so that each percentage-of-charges charge comes after the
	// charges it depends on.
	Order []int
	// Properties lists every property name the plan's filters and price tables read.
	Properties []string
}

// Charge returns the charge with the key, or nil.
func (p *Plan) Charge(key string) *Charge {
	for _, c := range p.Charges {
		if c.Key == key {
			return c
		}
	}
	return nil
}

// Limits are a plan's enforcement limits; nil means unlimited.
type Limits struct {
	RequestsPerMinute *int64
	TokensPerMinute   *int64
	MonthlyTokens     *int64
	MonthlySpend      *money.Decimal
	MaxConcurrent     *int64
}

// Charge is one compiled charge.
type Charge struct {
	Index     int
	Key       string
	Name      string
	Model     Model
	Meter     *Meter // nil for flat and percentage charges
	EventType string // percentage of a property: only events of this type ("" any)
	Filter    Filter
	Pricing   *Pricing // the charge's own pricing; nil when only a price table prices it
	PriceBy   string   // property that selects a price table entry; "" for none
	Prices    map[string]*Pricing
	Minimum   *money.Decimal
	Maximum   *money.Decimal
	// OfProperty is set for a percentage of an event property.
	OfProperty string
	// OfCharges lists the charge indexes a percentage of charges applies to.
	OfCharges []int
}

// PricingFor returns the pricing for a price-table group ("" when the charge has no table), or
// nil when the table has neither the value nor a default.
func (c *Charge) PricingFor(group string) *Pricing {
	if c.PriceBy == "" {
		return c.Pricing
	}
	if p, ok := c.Prices[group]; ok {
		return p
	}
	return c.Pricing
}

// Tier is one rung of a graduated or volume price. UpTo nil means the open last tier.
type Tier struct {
	UpTo      *money.Decimal
	UnitPrice money.Decimal
	FlatFee   money.Decimal
	// UnitRate is UnitPrice / Per of the pricing, exact.
	UnitRate money.Decimal
}

// Pricing holds the parameters of a pricing model. Per is always set (default 1).
type Pricing struct {
	Amount            money.Decimal
	UnitPrice         money.Decimal
	Per               money.Decimal
	Tiers             []Tier
	PackageSize       money.Decimal
	PackagePrice      money.Decimal
	FreeUnits         money.Decimal
	Included          money.Decimal
	Rate              money.Decimal // percent
	FixedFee          money.Decimal
	MinPerTransaction *money.Decimal
	MaxPerTransaction *money.Decimal

	// UnitRate is UnitPrice / Per and RateFraction is Rate / 100, both exact.
	UnitRate     money.Decimal
	RateFraction money.Decimal
}

// Filter is a conjunction of property conditions; the empty filter matches everything.
type Filter []Condition

// Condition requires a property's text to be one of Values (or, with Negate, none of them).
type Condition struct {
	Property string
	Values   []string
	Negate   bool
}

// Props gives a property's text; ok is false when the event lacks it.
type Props interface {
	Get(name string) (string, bool)
}

// Match reports whether the properties satisfy every condition.
func (f Filter) Match(p Props) bool {
	for _, c := range f {
		v, _ := p.Get(c.Property)
		in := false
		for _, w := range c.Values {
			if v == w {
				in = true
				break
			}
		}
		if in == c.Negate {
			return false
		}
	}
	return true
}
