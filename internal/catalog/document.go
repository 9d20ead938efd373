package catalog

import (
	"encoding/json"
	"fmt"

	"github.com/levyhq/levy/internal/money"
	"go.yaml.in/yaml/v3"
)

// Document is the catalog as users write it (YAML or JSON, camelCase keys). It is the form
// stored and served back by the API; Build turns it into an immutable Catalog.
type Document struct {
	Currency string     `yaml:"currency" json:"currency"`
	Meters   []MeterDoc `yaml:"meters,omitempty" json:"meters,omitempty"`
	Costs    []CostDoc  `yaml:"costs,omitempty" json:"costs,omitempty"`
	Plans    []PlanDoc  `yaml:"plans,omitempty" json:"plans,omitempty"`
	// Tiers is the spend-tier ladder; nil means the catalog has none.
	Tiers *TiersDoc `yaml:"tiers,omitempty" json:"tiers,omitempty"`
	// MarginGuard lists the breakers the authorize path trips when cost outruns price.
	MarginGuard []GuardRuleDoc `yaml:"marginGuard,omitempty" json:"marginGuard,omitempty"`
}

// TiersDoc declares the spend-tier ladder that promotes customers as their spend grows.
type TiersDoc struct {
	Basis  string         `yaml:"basis,omitempty" json:"basis,omitempty"`
	Ladder []SpendTierDoc `yaml:"ladder,omitempty" json:"ladder,omitempty"`
}

// SpendTierDoc declares one rung of the spend-tier ladder.
type SpendTierDoc struct {
	Key             string     `yaml:"key" json:"key"`
	Name            string     `yaml:"name,omitempty" json:"name,omitempty"`
	Threshold       *Dec       `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	Manual          bool       `yaml:"manual,omitempty" json:"manual,omitempty"`
	Limits          *LimitsDoc `yaml:"limits,omitempty" json:"limits,omitempty"`
	LimitMultiplier *Dec       `yaml:"limitMultiplier,omitempty" json:"limitMultiplier,omitempty"`
	Discount        *Dec       `yaml:"discount,omitempty" json:"discount,omitempty"`
}

// GuardRuleDoc declares one margin-guard rule. Task rules use maxCost and/or maxCostToPrice
// (with minCost); customer rules use minMargin and afterSpend. CoolDown is a Go duration
// ("10m", "1h30m").
type GuardRuleDoc struct {
	Key            string `yaml:"key" json:"key"`
	Scope          string `yaml:"scope" json:"scope"`
	MaxCost        *Dec   `yaml:"maxCost,omitempty" json:"maxCost,omitempty"`
	MaxCostToPrice *Dec   `yaml:"maxCostToPrice,omitempty" json:"maxCostToPrice,omitempty"`
	MinCost        *Dec   `yaml:"minCost,omitempty" json:"minCost,omitempty"`
	MinMargin      *Dec   `yaml:"minMargin,omitempty" json:"minMargin,omitempty"`
	AfterSpend     *Dec   `yaml:"afterSpend,omitempty" json:"afterSpend,omitempty"`
	CoolDown       string `yaml:"coolDown,omitempty" json:"coolDown,omitempty"`
}

// MeterDoc declares a meter.
type MeterDoc struct {
	Key         string `yaml:"key" json:"key"`
	Name        string `yaml:"name,omitempty" json:"name,omitempty"`
	MetricKey   string `yaml:"metricKey,omitempty" json:"metricKey,omitempty"`
	EventType   string `yaml:"eventType,omitempty" json:"eventType,omitempty"`
	Aggregation string `yaml:"aggregation,omitempty" json:"aggregation,omitempty"`
	Property    string `yaml:"property,omitempty" json:"property,omitempty"`
	Expression  string `yaml:"expression,omitempty" json:"expression,omitempty"`
}

// CostDoc is one entry of the cost book: what a meter's quantity costs the provider.
type CostDoc struct {
	Meter    string    `yaml:"meter" json:"meter"`
	Filter   FilterDoc `yaml:"filter,omitempty" json:"filter,omitempty"`
	UnitCost *Dec      `yaml:"unitCost" json:"unitCost"`
	Per      *Dec      `yaml:"per,omitempty" json:"per,omitempty"`
}

// PlanDoc declares a plan.
type PlanDoc struct {
	Key               string      `yaml:"key" json:"key"`
	Name              string      `yaml:"name,omitempty" json:"name,omitempty"`
	Period            string      `yaml:"period,omitempty" json:"period,omitempty"`
	MinimumCommitment *Dec        `yaml:"minimumCommitment,omitempty" json:"minimumCommitment,omitempty"`
	Limits            *LimitsDoc  `yaml:"limits,omitempty" json:"limits,omitempty"`
	Charges           []ChargeDoc `yaml:"charges,omitempty" json:"charges,omitempty"`
}

// LimitsDoc holds a plan's enforcement limits. Absent means unlimited.
type LimitsDoc struct {
	RequestsPerMinute *Dec `yaml:"requestsPerMinute,omitempty" json:"requestsPerMinute,omitempty"`
	TokensPerMinute   *Dec `yaml:"tokensPerMinute,omitempty" json:"tokensPerMinute,omitempty"`
	MonthlyTokens     *Dec `yaml:"monthlyTokens,omitempty" json:"monthlyTokens,omitempty"`
	MonthlySpend      *Dec `yaml:"monthlySpend,omitempty" json:"monthlySpend,omitempty"`
	MaxConcurrent     *Dec `yaml:"maxConcurrent,omitempty" json:"maxConcurrent,omitempty"`
}

// PricingDoc holds the fields of the pricing models. Which ones apply depends on the charge's
// model; a price table entry overrides the charge's own.
type PricingDoc struct {
	Amount            *Dec      `yaml:"amount,omitempty" json:"amount,omitempty"`
	UnitPrice         *Dec      `yaml:"unitPrice,omitempty" json:"unitPrice,omitempty"`
	Per               *Dec      `yaml:"per,omitempty" json:"per,omitempty"`
	Tiers             []TierDoc `yaml:"tiers,omitempty" json:"tiers,omitempty"`
	PackageSize       *Dec      `yaml:"packageSize,omitempty" json:"packageSize,omitempty"`
	PackagePrice      *Dec      `yaml:"packagePrice,omitempty" json:"packagePrice,omitempty"`
	FreeUnits         *Dec      `yaml:"freeUnits,omitempty" json:"freeUnits,omitempty"`
	Included          *Dec      `yaml:"included,omitempty" json:"included,omitempty"`
	Rate              *Dec      `yaml:"rate,omitempty" json:"rate,omitempty"`
	FixedFee          *Dec      `yaml:"fixedFee,omitempty" json:"fixedFee,omitempty"`
	MinPerTransaction *Dec      `yaml:"minPerTransaction,omitempty" json:"minPerTransaction,omitempty"`
	MaxPerTransaction *Dec      `yaml:"maxPerTransaction,omitempty" json:"maxPerTransaction,omitempty"`
}

// ChargeDoc declares one priced component of a plan.
type ChargeDoc struct {
	Key        string    `yaml:"key" json:"key"`
	Name       string    `yaml:"name,omitempty" json:"name,omitempty"`
	Model      string    `yaml:"model" json:"model"`
	Meter      string    `yaml:"meter,omitempty" json:"meter,omitempty"`
	EventType  string    `yaml:"eventType,omitempty" json:"eventType,omitempty"`
	Filter     FilterDoc `yaml:"filter,omitempty" json:"filter,omitempty"`
	PricingDoc `yaml:",inline"`
	Of         *OfDoc                `yaml:"of,omitempty" json:"of,omitempty"`
	Minimum    *Dec                  `yaml:"minimum,omitempty" json:"minimum,omitempty"`
	Maximum    *Dec                  `yaml:"maximum,omitempty" json:"maximum,omitempty"`
	PriceBy    string                `yaml:"priceBy,omitempty" json:"priceBy,omitempty"`
	Prices     map[string]PricingDoc `yaml:"prices,omitempty" json:"prices,omitempty"`
	Default    *PricingDoc           `yaml:"defaultPrice,omitempty" json:"defaultPrice,omitempty"`
}

// TierDoc is one rung of a graduated or volume price.
type TierDoc struct {
	UpTo      *Dec `yaml:"upTo,omitempty" json:"upTo,omitempty"`
	UnitPrice *Dec `yaml:"unitPrice,omitempty" json:"unitPrice,omitempty"`
	FlatFee   *Dec `yaml:"flatFee,omitempty" json:"flatFee,omitempty"`
}

// OfDoc names what a percentage charge is a percentage of.
type OfDoc struct {
	Property string   `yaml:"property,omitempty" json:"property,omitempty"`
	Charges  []string `yaml:"charges,omitempty" json:"charges,omitempty"`
}

// FilterDoc maps a property name to the values it must have: a single value, a list of values,
// or {notIn: [values]} for every value but those (an absent property counts as "").
type FilterDoc map[string]FilterValue

// FilterValue is one property condition.
type FilterValue struct {
	In    []string `yaml:"in,omitempty" json:"in,omitempty"`
	NotIn []string `yaml:"notIn,omitempty" json:"notIn,omitempty"`
}

// UnmarshalYAML accepts a scalar, a sequence of scalars, or a mapping with in / notIn.
func (f *FilterValue) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		f.In = []string{n.Value}
		return nil
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: filter values must be scalars", c.Line)
			}
			f.In = append(f.In, c.Value)
		}
		return nil
	case yaml.MappingNode:
		type plain FilterValue
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*f = FilterValue(p)
		return nil
	}
	return fmt.Errorf("line %d: a filter value must be a value, a list or {in|notIn: [...]}", n.Line)
}

// MarshalYAML writes the compact form back.
func (f FilterValue) MarshalYAML() (any, error) {
	if len(f.NotIn) == 0 && len(f.In) == 1 {
		return f.In[0], nil
	}
	if len(f.NotIn) == 0 {
		return f.In, nil
	}
	type plain FilterValue
	return plain(f), nil
}

// MarshalJSON writes the compact form back.
func (f FilterValue) MarshalJSON() ([]byte, error) {
	v, _ := f.MarshalYAML()
	return json.Marshal(v)
}

// Dec is a decimal as written in the document: a decimal string or a bare number, read exactly
// from its text (never through float64).
type Dec struct {
	Text  string
	Value money.Decimal
	Err   error
	Line  int
}

// UnmarshalYAML keeps the scalar's text and parses it exactly. Parse errors are kept and
// reported by validation with the field's path.
func (d *Dec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		d.Err = fmt.Errorf("must be a decimal number")
		d.Line = n.Line
		return nil
	}
	d.Text = n.Value
	d.Line = n.Line
	d.Value, d.Err = money.Parse(n.Value)
	if d.Err != nil {
		d.Err = fmt.Errorf("must be a decimal number (got %q)", n.Value)
	}
	return nil
}

// MarshalYAML writes the decimal back as a string, the catalog's money convention.
func (d Dec) MarshalYAML() (any, error) { return d.Value.String(), nil }

// MarshalJSON writes the decimal back as a JSON string.
func (d Dec) MarshalJSON() ([]byte, error) { return json.Marshal(d.Value.String()) }

// D is a convenience constructor for documents built in code.
func D(s string) *Dec {
	v, err := money.Parse(s)
	return &Dec{Text: s, Value: v, Err: err}
}
