package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"go.yaml.in/yaml/v3"
)

// Problem is one validation finding, located by its path in the document.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in a catalog document.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid catalog: " + strings.Join(parts, "; ")
}

// Parse reads a catalog document from YAML or JSON, rejecting unknown keys. It does not
// validate; Build does.
func Parse(data []byte) (*Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc Document
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []Problem{{Message: "the catalog is empty"}}}
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var root yaml.Node
			_ = yaml.Unmarshal(data, &root)
			ps := make([]Problem, len(te.Errors))
			for i, e := range te.Errors {
				ps[i] = locate(&root, e)
			}
			return nil, &ValidationError{Problems: ps}
		}
		return nil, &ValidationError{Problems: []Problem{{Message: "not valid YAML or JSON: " + err.Error()}}}
	}
	return &doc, nil
}

// Load parses and builds a catalog.
func Load(data []byte) (*Catalog, error) {
	doc, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return Build(doc)
}

var (
	unknownField = regexp.MustCompile(`field (\S+) not found in type catalog\.(\w+)`)
	// wrongShape matches "cannot unmarshal !!str `maybe` into bool": the YAML kind, the value
	// (scalars only; cut to 7 bytes and "..." when longer than 10) and the Go type.
	wrongShape = regexp.MustCompile("(?s)cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// docNames names the document's types as a catalog author knows them.
var docNames = map[string]string{
	"Document": "the catalog", "MeterDoc": "a meter", "CostDoc": "a cost entry", "PlanDoc": "a plan",
	"LimitsDoc": "limits", "ChargeDoc": "a charge", "PricingDoc": "a price", "TierDoc": "a tier", "OfDoc": "of",
	"TiersDoc": "tiers", "SpendTierDoc": "a spend tier", "GuardRuleDoc": "a margin guard rule",
}

var lineOf = regexp.MustCompile(`^line (\d+): `)

// locate turns a YAML decoding message into a problem at the document path it concerns: the
// unknown key, or the key whose value has the wrong shape.
func locate(root *yaml.Node, msg string) Problem {
	m := lineOf.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: plainYAMLError(msg)}
	}
	line, _ := strconv.Atoi(m[1])
	rest := plainYAMLError(strings.TrimPrefix(msg, m[0]))
	key, kind, value := "", "", ""
	if sub := unknownField.FindStringSubmatch(strings.TrimPrefix(msg, m[0])); sub != nil {
		key = sub[1]
	} else if sub := wrongShape.FindStringSubmatch(msg); sub != nil {
		kind, value = sub[1], sub[2]
	}
	if path := pathAt(root, "", line, key, kind, value); path != "" {
		if key != "" {
			return Problem{Path: path, Message: "is not a known key"}
		}
		return Problem{Path: path, Message: rest}
	}
	return Problem{Message: m[0] + rest}
}

// pathAt finds the path of the mapping key named key on line or, with key "", of the entry
// whose value starts on line and has the YAML kind named by kind (map, seq or a scalar tag) and,
// for a scalar when value is not "", that value as the decoder quotes it.
func pathAt(n *yaml.Node, path string, line int, key, kind, value string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := pathAt(c, path, line, key, kind, value); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if key != "" && k.Line == line && k.Value == key {
				return p
			}
			if key == "" && v.Line == line && kindIs(v, kind) && valueIs(v, value) {
				return p
			}
			if q := pathAt(v, p, line, key, kind, value); q != "" {
				return q
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if q := pathAt(c, fmt.Sprintf("%s[%d]", path, i), line, key, kind, value); q != "" {
				return q
			}
		}
	}
	return ""
}

func kindIs(v *yaml.Node, kind string) bool {
	switch kind {
	case "map":
		return v.Kind == yaml.MappingNode
	case "seq":
		return v.Kind == yaml.SequenceNode
	case "":
		return true
	}
	return v.Kind == yaml.ScalarNode && v.ShortTag() == "!!"+kind
}

// valueIs reports whether a scalar's text is value as a decoding message quotes it: whole when
// short, its first 7 bytes and "..." when longer than 10. An empty value matches anything.
func valueIs(v *yaml.Node, value string) bool {
	if value == "" || v.Kind != yaml.ScalarNode {
		return true
	}
	if len(v.Value) > 10 {
		return len(value) == 10 && strings.HasSuffix(value, "...") && strings.HasPrefix(v.Value, value[:7])
	}
	return v.Value == value
}

// plainYAMLError rewrites a YAML decoding message without Go type names.
func plainYAMLError(msg string) string {
	msg = unknownField.ReplaceAllStringFunc(msg, func(m string) string {
		sub := unknownField.FindStringSubmatch(m)
		where := docNames[sub[2]]
		if where == "" {
			where = "this object"
		}
		return fmt.Sprintf("unknown key %q in %s", sub[1], where)
	})
	return wrongShape.ReplaceAllStringFunc(msg, func(m string) string {
		sub := wrongShape.FindStringSubmatch(m)
		kind := map[string]string{"map": "an object", "seq": "a list", "str": "a string", "int": "a number", "float": "a number", "bool": "true or false", "null": "null"}[sub[1]]
		target := "another type"
		switch t := sub[3]; {
		case strings.HasPrefix(t, "[]"):
			target = "a list"
		case strings.HasPrefix(t, "map["):
			target = "an object"
		case t == "string":
			target = "a string"
		case t == "bool":
			target = "true or false"
		default:
			if n, ok := docNames[strings.TrimPrefix(t, "catalog.")]; ok {
				target = n
			}
		}
		return fmt.Sprintf("found %s where %s belongs", kind, target)
	})
}

var keyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$`)

type builder struct {
	problems []Problem
}

func (b *builder) addf(path, format string, args ...any) {
	b.problems = append(b.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// dec validates an optional decimal field: it must parse and, unless allowNeg, be ≥ 0.
func (b *builder) dec(path string, d *Dec, allowNeg bool) (money.Decimal, bool) {
	if d == nil {
		return money.Zero, false
	}
	if d.Err != nil {
		b.addf(path, "%v", d.Err)
		return money.Zero, false
	}
	if !allowNeg && d.Value.IsNegative() {
		b.addf(path, "must not be negative (got %s)", d.Text)
		return money.Zero, false
	}
	return d.Value, true
}

func (b *builder) required(path string, d *Dec) money.Decimal {
	if d == nil {
		b.addf(path, "is required")
		return money.Zero
	}
	v, _ := b.dec(path, d, false)
	return v
}

func (b *builder) optPtr(path string, d *Dec) *money.Decimal {
	v, ok := b.dec(path, d, false)
	if !ok {
		return nil
	}
	return &v
}

// Build validates a document and compiles it. On any problem it returns a *ValidationError
// listing all of them.
func Build(doc *Document) (*Catalog, error) {
	b := &builder{}
	c := &Catalog{
		Document:     doc,
		meterByKey:   map[string]*Meter{},
		planByKey:    map[string]*Plan{},
		metricMeters: map[string][]*Meter{},
		costsByMeter: map[string][]*Cost{},
	}
	if doc.Currency == "" {
		b.addf("currency", "is required (an ISO 4217 code such as USD)")
	} else if cur, err := money.LookupCurrency(doc.Currency); err != nil {
		b.addf("currency", "%v", err)
	} else {
		c.Currency = cur
	}
	b.buildMeters(c, doc)
	b.buildCosts(c, doc)
	for i := range doc.Plans {
		path := fmt.Sprintf("plans[%d]", i)
		p := b.buildPlan(c, path, &doc.Plans[i])
		if p == nil {
			continue
		}
		if _, dup := c.planByKey[p.Key]; dup {
			b.addf(path+".key", "duplicate plan key %q", p.Key)
			continue
		}
		c.planByKey[p.Key] = p
		c.Plans = append(c.Plans, p)
	}
	if doc.Tiers != nil {
		b.buildTiers(c, doc.Tiers)
	}
	b.buildGuard(c, doc.MarginGuard)
	if len(b.problems) > 0 {
		return nil, &ValidationError{Problems: b.problems}
	}
	return c, nil
}

func (b *builder) buildMeters(c *Catalog, doc *Document) {
	for i, md := range doc.Meters {
		path := fmt.Sprintf("meters[%d]", i)
		if !keyPattern.MatchString(md.Key) {
			b.addf(path+".key", "must be a name of letters, digits, _ . : - starting with a letter or _ (got %q)", md.Key)
			continue
		}
		if _, dup := c.meterByKey[md.Key]; dup {
			b.addf(path+".key", "duplicate meter key %q", md.Key)
			continue
		}
		m := &Meter{Index: len(c.Meters), Key: md.Key, EventType: md.EventType, Property: md.Property}
		agg := md.Aggregation
		if agg == "" {
			agg = string(Sum)
		}
		switch a := Aggregation(agg); a {
		case Sum, Count, Max, Latest, UniqueCount:
			m.Aggregation = a
		default:
			b.addf(path+".aggregation", "must be one of sum, count, max, latest, uniqueCount (got %q)", md.Aggregation)
		}
		switch {
		case md.Expression != "":
			if md.MetricKey != "" {
				b.addf(path+".metricKey", "a derived meter takes its values from its expression, not a metricKey")
			}
			e, err := CompileExpression(md.Expression)
			switch {
			case err != nil:
				b.addf(path+".expression", "%v", err)
			case len(e.Metrics) == 0:
				b.addf(path+".expression", "must read at least one measurement (it is evaluated for events that carry one)")
			case m.Aggregation == Count:
				b.addf(path+".aggregation", "a derived meter computes a value per event; count events with a meter without expression")
			default:
				m.Expr = e
				for _, k := range e.Metrics {
					c.metricMeters[k] = append(c.metricMeters[k], m)
				}
			}
		case m.Aggregation == Count && md.MetricKey == "":
			// counts events of its type
		case m.Aggregation == UniqueCount:
			if md.Property == "" {
				b.addf(path+".property", "is required for uniqueCount (the property whose distinct values are counted)")
			}
			m.MetricKey = md.MetricKey
			if m.MetricKey != "" {
				c.metricMeters[m.MetricKey] = append(c.metricMeters[m.MetricKey], m)
			}
		default:
			m.MetricKey = md.MetricKey
			if m.MetricKey == "" {
				m.MetricKey = md.Key
			}
			c.metricMeters[m.MetricKey] = append(c.metricMeters[m.MetricKey], m)
		}
		if md.Property != "" && m.Aggregation != UniqueCount {
			b.addf(path+".property", "only a uniqueCount meter takes a property")
		}
		c.meterByKey[m.Key] = m
		c.Meters = append(c.Meters, m)
	}
}

func (b *builder) buildCosts(c *Catalog, doc *Document) {
	for i, cd := range doc.Costs {
		path := fmt.Sprintf("costs[%d]", i)
		m := c.meterByKey[cd.Meter]
		if m == nil {
			b.addf(path+".meter", "unknown meter %q", cd.Meter)
		}
		cost := &Cost{Index: len(c.Costs), Meter: m, Filter: b.filter(path+".filter", cd.Filter)}
		cost.UnitCost = b.required(path+".unitCost", cd.UnitCost)
		cost.Per = b.per(path+".per", cd.Per)
		cost.UnitRate = exactDiv(cost.UnitCost, cost.Per)
		if m != nil && m.Aggregation != Sum && m.Aggregation != Count {
			b.addf(path+".meter", "costs apply to sum and count meters, whose quantities add up per event (%q aggregates by %s)", m.Key, m.Aggregation)
		}
		if m != nil {
			c.costsByMeter[m.Key] = append(c.costsByMeter[m.Key], cost)
		}
		c.Costs = append(c.Costs, cost)
	}
}

// per validates a `per` divisor: a positive integer of the form 2^a·5^b, default 1.
func (b *builder) per(path string, d *Dec) money.Decimal {
	if d == nil {
		return money.MustParse("1")
	}
	v, ok := b.dec(path, d, false)
	if !ok {
		return money.MustParse("1")
	}
	if !v.IsInteger() || !v.IsPositive() {
		b.addf(path, "must be a positive whole number (got %s)", d.Text)
		return money.MustParse("1")
	}
	n := new(big.Int).Set(v.BigInt())
	for _, f := range []int64{2, 5} {
		bf := big.NewInt(f)
		r := new(big.Int)
		for {
			q, m := new(big.Int).QuoRem(n, bf, r)
			if m.Sign() != 0 {
				break
			}
			n = q
		}
	}
	if n.Cmp(big.NewInt(1)) != 0 {
		b.addf(path, "must be a power of ten (or of the form 2^a·5^b, like 1024) so prices divide exactly (got %s)", d.Text)
		return money.MustParse("1")
	}
	return v
}

func (b *builder) filter(path string, fd FilterDoc) Filter {
	if len(fd) == 0 {
		return nil
	}
	names := make([]string, 0, len(fd))
	for k := range fd {
		names = append(names, k)
	}
	sort.Strings(names)
	var f Filter
	for _, k := range names {
		v := fd[k]
		p := path + "." + k
		if k == "" {
			b.addf(path, "a property name must not be empty")
			continue
		}
		switch {
		case len(v.In) > 0 && len(v.NotIn) > 0:
			b.addf(p, "give either values (in) or notIn, not both")
		case len(v.In) > 0:
			f = append(f, Condition{Property: k, Values: v.In})
		case len(v.NotIn) > 0:
			f = append(f, Condition{Property: k, Values: v.NotIn, Negate: true})
		default:
			b.addf(p, "needs at least one value")
		}
	}
	return f
}

func (b *builder) buildPlan(c *Catalog, path string, pd *PlanDoc) *Plan {
	if !keyPattern.MatchString(pd.Key) {
		b.addf(path+".key", "must be a name of letters, digits, _ . : - starting with a letter or _ (got %q)", pd.Key)
		return nil
	}
	p := &Plan{Key: pd.Key, Name: pd.Name, Period: period.Month}
	if pd.Period != "" {
		u, err := period.ParseUnit(pd.Period)
		if err != nil {
			b.addf(path+".period", "%v", err)
		} else {
			p.Period = u
		}
	}
	p.MinimumCommitment = b.optPtr(path+".minimumCommitment", pd.MinimumCommitment)
	if pd.Limits != nil {
		p.Limits = b.limits(path+".limits", pd.Limits)
	}
	seen := map[string]int{}
	for i := range pd.Charges {
		cp := fmt.Sprintf("%s.charges[%d]", path, i)
		ch := b.buildCharge(c, cp, &pd.Charges[i])
		ch.Index = i
		if ch.Key != "" {
			if j, dup := seen[ch.Key]; dup {
				b.addf(cp+".key", "duplicate charge key %q (also charges[%d])", ch.Key, j)
			}
			seen[ch.Key] = i
		}
		p.Charges = append(p.Charges, ch)
	}
	// Resolve percentage-of-charges references and order the charges.
	for i, cd := range pd.Charges {
		if cd.Of == nil || len(cd.Of.Charges) == 0 {
			continue
		}
		cp := fmt.Sprintf("%s.charges[%d].of.charges", path, i)
		for k, ref := range cd.Of.Charges {
			j, ok := seen[ref]
			switch {
			case !ok:
				b.addf(fmt.Sprintf("%s[%d]", cp, k), "unknown charge %q in plan %q", ref, pd.Key)
			case j == i:
				b.addf(fmt.Sprintf("%s[%d]", cp, k), "a charge cannot be a percentage of itself")
			case p.Charges[j].Model == Flat:
				b.addf(fmt.Sprintf("%s[%d]", cp, k), "%q is a flat charge; a percentage applies to usage charges (raise the flat amount instead)", ref)
			default:
				p.Charges[i].OfCharges = append(p.Charges[i].OfCharges, j)
			}
		}
	}
	order, cyc := topoOrder(p.Charges)
	if cyc >= 0 {
		b.addf(fmt.Sprintf("%s.charges[%d].of.charges", path, cyc), "percentage charges refer to each other in a cycle")
	}
	p.Order = order
	props := map[string]bool{}
	for _, ch := range p.Charges {
		for _, cond := range ch.Filter {
			props[cond.Property] = true
		}
		if ch.PriceBy != "" {
			props[ch.PriceBy] = true
		}
		if ch.OfProperty != "" {
			props[ch.OfProperty] = true
		}
	}
	for k := range props {
		p.Properties = append(p.Properties, k)
	}
	sort.Strings(p.Properties)
	return p
}

func topoOrder(charges []*Charge) ([]int, int) {
	const (
		white = iota
		grey
		black
	)
	state := make([]int, len(charges))
	order := make([]int, 0, len(charges))
	cycle := -1
	var visit func(i int)
	visit = func(i int) {
		if state[i] == black {
			return
		}
		if state[i] == grey {
			if cycle < 0 {
				cycle = i
			}
			return
		}
		state[i] = grey
		for _, j := range charges[i].OfCharges {
			visit(j)
		}
		state[i] = black
		order = append(order, i)
	}
	for i := range charges {
		visit(i)
	}
	return order, cycle
}

func (b *builder) limits(path string, ld *LimitsDoc) Limits {
	var l Limits
	intLimit := func(name string, d *Dec) *int64 {
		v, ok := b.dec(path+"."+name, d, false)
		if !ok {
			return nil
		}
		if !v.IsInteger() || v.GreaterThan(money.MustParse("9000000000000000000")) {
			b.addf(path+"."+name, "must be a whole number (got %s)", d.Text)
			return nil
		}
		n := v.IntPart()
		return &n
	}
	l.RequestsPerMinute = intLimit("requestsPerMinute", ld.RequestsPerMinute)
	l.TokensPerMinute = intLimit("tokensPerMinute", ld.TokensPerMinute)
	l.MonthlyTokens = intLimit("monthlyTokens", ld.MonthlyTokens)
	l.MaxConcurrent = intLimit("maxConcurrent", ld.MaxConcurrent)
	l.MonthlySpend = b.optPtr(path+".monthlySpend", ld.MonthlySpend)
	return l
}

// fieldsOf lists which pricing fields a document sets, for "does not apply" checks.
func fieldsOf(pd *PricingDoc) map[string]bool {
	f := map[string]bool{}
	set := func(name string, d *Dec) {
		if d != nil {
			f[name] = true
		}
	}
	set("amount", pd.Amount)
	set("unitPrice", pd.UnitPrice)
	set("per", pd.Per)
	set("packageSize", pd.PackageSize)
	set("packagePrice", pd.PackagePrice)
	set("freeUnits", pd.FreeUnits)
	set("included", pd.Included)
	set("rate", pd.Rate)
	set("fixedFee", pd.FixedFee)
	set("minPerTransaction", pd.MinPerTransaction)
	set("maxPerTransaction", pd.MaxPerTransaction)
	if len(pd.Tiers) > 0 {
		f["tiers"] = true
	}
	return f
}

var modelFields = map[Model][]string{
	Flat:          {"amount"},
	PerUnit:       {"unitPrice", "per"},
	Graduated:     {"tiers", "per"},
	Volume:        {"tiers", "per"},
	Package:       {"packageSize", "packagePrice", "freeUnits"},
	IncludedQuota: {"included", "unitPrice", "per"},
	Percentage:    {"rate", "fixedFee", "minPerTransaction", "maxPerTransaction"},
}

func (b *builder) buildCharge(c *Catalog, path string, cd *ChargeDoc) *Charge {
	ch := &Charge{Key: cd.Key, Name: cd.Name, EventType: cd.EventType, PriceBy: cd.PriceBy}
	if !keyPattern.MatchString(cd.Key) {
		b.addf(path+".key", "must be a name of letters, digits, _ . : - starting with a letter or _ (got %q)", cd.Key)
	}
	m := Model(cd.Model)
	if _, ok := modelFields[m]; !ok {
		b.addf(path+".model", "must be one of flat, perUnit, graduated, volume, package, includedQuota, percentage (got %q)", cd.Model)
		return ch
	}
	ch.Model = m
	ch.Filter = b.filter(path+".filter", cd.Filter)
	ch.Minimum = b.optPtr(path+".minimum", cd.Minimum)
	ch.Maximum = b.optPtr(path+".maximum", cd.Maximum)
	if ch.Minimum != nil && ch.Maximum != nil && ch.Minimum.GreaterThan(*ch.Maximum) {
		b.addf(path+".maximum", "must not be below minimum (%s)", ch.Minimum.String())
	}
	switch m {
	case Flat:
		if cd.Meter != "" {
			b.addf(path+".meter", "a flat charge takes no meter")
		}
		if cd.PriceBy != "" {
			b.addf(path+".priceBy", "a flat charge has no price table")
		}
		if len(cd.Filter) > 0 {
			b.addf(path+".filter", "a flat charge has no events to filter")
		}
		if cd.Minimum != nil || cd.Maximum != nil {
			b.addf(path, "minimum and maximum apply to usage charges, not flat ones")
		}
	case Percentage:
		if cd.Of == nil || (cd.Of.Property == "") == (len(cd.Of.Charges) == 0) {
			b.addf(path+".of", "is required: give either {property: name} or {charges: [keys]}")
		} else if cd.Of.Property != "" {
			ch.OfProperty = cd.Of.Property
		} else if len(cd.Filter) > 0 || cd.PriceBy != "" {
			b.addf(path+".filter", "a percentage of other charges takes no filter or price table; filter the charges it names")
		}
		if cd.Meter != "" {
			b.addf(path+".meter", "a percentage charge takes no meter")
		}
	default:
		if cd.Meter == "" {
			b.addf(path+".meter", "is required for a %s charge", m)
		} else if ch.Meter = c.meterByKey[cd.Meter]; ch.Meter == nil {
			b.addf(path+".meter", "unknown meter %q", cd.Meter)
		}
	}
	if cd.EventType != "" && m != Percentage {
		b.addf(path+".eventType", "only a percentage charge takes eventType; a meter selects events for the others")
	}
	hasOwn := len(fieldsOf(&cd.PricingDoc)) > 0
	if cd.PriceBy == "" {
		if len(cd.Prices) > 0 || cd.Default != nil {
			b.addf(path+".priceBy", "is required when prices or defaultPrice is given")
		}
		ch.Pricing = b.pricing(path, m, &cd.PricingDoc, nil)
		return ch
	}
	if len(cd.Prices) == 0 {
		b.addf(path+".prices", "is required with priceBy: one entry per value of %q", cd.PriceBy)
	}
	// The charge's own fields act as the base every table entry inherits; defaultPrice, when
	// given, prices values the table lacks.
	base := &cd.PricingDoc
	ch.Prices = map[string]*Pricing{}
	keys := make([]string, 0, len(cd.Prices))
	for k := range cd.Prices {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		entry := cd.Prices[k]
		ch.Prices[k] = b.pricing(path+".prices."+k, m, merge(base, &entry), base)
	}
	if cd.Default != nil {
		ch.Pricing = b.pricing(path+".defaultPrice", m, merge(base, cd.Default), base)
	} else if hasOwn && complete(m, base) {
		ch.Pricing = b.pricing(path, m, base, nil)
	}
	return ch
}

// complete reports whether the charge's own fields price it without a table entry.
func complete(m Model, pd *PricingDoc) bool {
	switch m {
	case Flat:
		return pd.Amount != nil
	case PerUnit, IncludedQuota:
		return pd.UnitPrice != nil
	case Graduated, Volume:
		return len(pd.Tiers) > 0
	case Package:
		return pd.PackagePrice != nil
	case Percentage:
		return pd.Rate != nil
	}
	return false
}

// merge overlays a table entry on the charge's own fields.
func merge(base, over *PricingDoc) *PricingDoc {
	out := *base
	pick := func(dst **Dec, v *Dec) {
		if v != nil {
			*dst = v
		}
	}
	pick(&out.Amount, over.Amount)
	pick(&out.UnitPrice, over.UnitPrice)
	pick(&out.Per, over.Per)
	pick(&out.PackageSize, over.PackageSize)
	pick(&out.PackagePrice, over.PackagePrice)
	pick(&out.FreeUnits, over.FreeUnits)
	pick(&out.Included, over.Included)
	pick(&out.Rate, over.Rate)
	pick(&out.FixedFee, over.FixedFee)
	pick(&out.MinPerTransaction, over.MinPerTransaction)
	pick(&out.MaxPerTransaction, over.MaxPerTransaction)
	if len(over.Tiers) > 0 {
		out.Tiers = over.Tiers
	}
	return &out
}

// pricing validates the pricing fields for a model. inherited (may be nil) lists fields that came
// from the charge itself, so an entry is not blamed for them.
func (b *builder) pricing(path string, m Model, pd *PricingDoc, inherited *PricingDoc) *Pricing {
	allowed := map[string]bool{}
	for _, f := range modelFields[m] {
		allowed[f] = true
	}
	own := fieldsOf(pd)
	if inherited != nil {
		for f := range fieldsOf(inherited) {
			if !allowed[f] {
				delete(own, f) // reported once, on the charge
			}
		}
	}
	names := make([]string, 0, len(own))
	for f := range own {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if !allowed[f] {
			b.addf(path+"."+f, "does not apply to a %s charge (it takes %s)", m, strings.Join(modelFields[m], ", "))
		}
	}
	p := &Pricing{Per: b.per(path+".per", pd.Per)}
	switch m {
	case Flat:
		p.Amount = b.required(path+".amount", pd.Amount)
	case PerUnit:
		p.UnitPrice = b.required(path+".unitPrice", pd.UnitPrice)
	case IncludedQuota:
		p.UnitPrice = b.required(path+".unitPrice", pd.UnitPrice)
		p.Included = b.required(path+".included", pd.Included)
	case Package:
		p.PackagePrice = b.required(path+".packagePrice", pd.PackagePrice)
		p.PackageSize = b.required(path+".packageSize", pd.PackageSize)
		if pd.PackageSize != nil && pd.PackageSize.Err == nil && !p.PackageSize.IsPositive() {
			b.addf(path+".packageSize", "must be greater than 0")
		}
		if v, ok := b.dec(path+".freeUnits", pd.FreeUnits, false); ok {
			p.FreeUnits = v
		}
	case Graduated, Volume:
		p.Tiers = b.tiers(path+".tiers", pd.Tiers)
		for i := range p.Tiers {
			p.Tiers[i].UnitRate = exactDiv(p.Tiers[i].UnitPrice, p.Per)
		}
	case Percentage:
		p.Rate = b.required(path+".rate", pd.Rate)
		if v, ok := b.dec(path+".fixedFee", pd.FixedFee, false); ok {
			p.FixedFee = v
		}
		p.MinPerTransaction = b.optPtr(path+".minPerTransaction", pd.MinPerTransaction)
		p.MaxPerTransaction = b.optPtr(path+".maxPerTransaction", pd.MaxPerTransaction)
		if p.MinPerTransaction != nil && p.MaxPerTransaction != nil && p.MinPerTransaction.GreaterThan(*p.MaxPerTransaction) {
			b.addf(path+".maxPerTransaction", "must not be below minPerTransaction (%s)", p.MinPerTransaction.String())
		}
	}
	p.UnitRate = exactDiv(p.UnitPrice, p.Per)
	p.RateFraction = p.Rate.Shift(-2)
	return p
}

// exactDiv divides by a validated per (2^a·5^b), which always terminates: a quotient with
// enough places (the divisor's digit count times 4 covers every power of two and five) is exact.
func exactDiv(x, per money.Decimal) money.Decimal {
	if per.Equal(one) {
		return x
	}
	places := int32(-x.Exponent()) + int32(len(per.String()))*4
	return x.DivRound(per, places).Truncate(places)
}

var one = money.MustParse("1")

func (b *builder) tiers(path string, tds []TierDoc) []Tier {
	if len(tds) == 0 {
		b.addf(path, "needs at least one tier")
		return nil
	}
	out := make([]Tier, len(tds))
	var prev *money.Decimal
	for i, td := range tds {
		tp := fmt.Sprintf("%s[%d]", path, i)
		t := Tier{}
		if v, ok := b.dec(tp+".unitPrice", td.UnitPrice, false); ok {
			t.UnitPrice = v
		}
		if v, ok := b.dec(tp+".flatFee", td.FlatFee, false); ok {
			t.FlatFee = v
		}
		if td.UnitPrice == nil && td.FlatFee == nil {
			b.addf(tp, "needs a unitPrice, a flatFee or both")
		}
		last := i == len(tds)-1
		switch {
		case td.UpTo == nil && !last:
			b.addf(tp+".upTo", "is required on every tier but the last")
		case td.UpTo != nil && last:
			b.addf(tp+".upTo", "must be omitted on the last tier, which is open-ended")
		case td.UpTo != nil:
			if v, ok := b.dec(tp+".upTo", td.UpTo, false); ok {
				if prev != nil && !v.GreaterThan(*prev) {
					b.addf(tp+".upTo", "must exceed the previous tier's upTo (%s)", prev.String())
				} else if prev == nil && !v.IsPositive() {
					b.addf(tp+".upTo", "must be greater than 0")
				}
				vv := v
				t.UpTo = &vv
				prev = &vv
			}
		}
		out[i] = t
	}
	return out
}
