package authorize

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

// The measurement keys an authorized call's usage event carries for its estimate.
const (
	MetricInputTokens  = "input_tokens"
	MetricOutputTokens = "output_tokens"
)

// TokenMetricKeys are the measurement keys whose meters count as tokens for the monthly token
// cap: what the gateway records for one LLM call.
var TokenMetricKeys = []string{"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"}

// source is the quantity a component prices.
type source uint8

const (
	srcInput   source = iota // EstimatedInputTokens
	srcOutput                // MaxOutputTokens
	srcOne                   // 1: a count or uniqueCount meter the event feeds
	srcDerived               // a derived meter's formula over the two
)

// component is one usage charge an authorized call's event reaches, with the quantity that
// feeds it and the weight the percentage-of-charges charges built on it add.
type component struct {
	charge  *catalog.Charge
	src     source
	meter   *catalog.Meter // srcDerived: the meter whose formula gives the quantity
	model   catalog.Model
	pricing *catalog.Pricing
	// weight is 1 plus, for every chain of percentage-of-charges charges built on this one,
	// the product of their rates: the charge's amount a is billed a × weight in all.
	weight money.Decimal
	// maxRate is the highest unit rate (price per unit) the pricing can charge.
	maxRate money.Decimal
	// volExtra (volume) is the most one event can add beyond q × maxRate: the highest flat fee
	// plus the repricing of earlier units when the quantity crosses into a dearer tier.
	volExtra money.Decimal
	// lowers (graduated) holds each tier's lower bound (0 for the first tier) and fees its flat
	// fee, for the fees one event can newly reach.
	lowers, fees []money.Decimal
}

// bound is the most one event feeding q units to the component can add to the charge, before
// weight: the documented conservative bound of its pricing model (see the package doc).
func (c *component) bound(q money.Decimal) money.Decimal {
	if !q.IsPositive() {
		q = money.Zero
	}
	p := c.pricing
	switch c.model {
	case catalog.PerUnit, catalog.IncludedQuota:
		return q.Mul(p.UnitRate)
	case catalog.Graduated:
		return q.Mul(c.maxRate).Add(gradFees(c.lowers, c.fees, q))
	case catalog.Volume:
		return q.Mul(c.maxRate).Add(c.volExtra)
	case catalog.Package:
		if q.IsZero() {
			return money.Zero
		}
		n, r := q.QuoRem(p.PackageSize, 0)
		if !r.IsZero() {
			n = n.Add(one)
		}
		return n.Mul(p.PackagePrice)
	}
	return money.Zero
}

// gradFees is the most flat fees one event of q units can newly reach in a graduated price:
// the largest sum of fees over a run of tiers i, i+1, … whose lower bounds lie less than q
// above tier i's (tier i itself always counts: the period's first event pays the first tier's
// fee even at q = 0). An event moving the quantity from b to b+q newly reaches exactly the
// tiers whose lower bounds lie in [b, b+q), so no event can pay more.
func gradFees(lowers, fees []money.Decimal, q money.Decimal) money.Decimal {
	best := money.Zero
	for i := range fees {
		sum := fees[i]
		limit := lowers[i].Add(q)
		for j := i + 1; j < len(fees) && lowers[j].LessThan(limit); j++ {
			sum = sum.Add(fees[j])
		}
		if sum.GreaterThan(best) {
			best = sum
		}
	}
	return best
}

var (
	one     = money.MustParse("1")
	maxNano = money.FromNanos(limit.MaxValue)
)

// estimator computes a call's cost bound for one (plan version, model).
type estimator struct {
	comps []component
	// derived lists the derived meters the components read, evaluated once per call.
	derived []*catalog.Meter
	model   string
	fast    *fastEstimator // nil when the integer path cannot represent the components
}

// newEstimator prepares the estimate of calls for a model on a plan: every usage charge an
// event of eventType with properties {model: model} and measurements input_tokens and
// output_tokens reaches, by the rating engine's routing rules.
func newEstimator(cat *catalog.Catalog, plan *catalog.Plan, model, eventType string) *estimator {
	e := &estimator{model: model}
	props := modelProps(model)
	weights := chargeWeights(plan)
	byMeter := make(map[*catalog.Meter][]*catalog.Charge)
	for _, ci := range plan.Order {
		c := plan.Charges[ci]
		if c.Meter != nil {
			byMeter[c.Meter] = append(byMeter[c.Meter], c)
		}
	}
	add := func(m *catalog.Meter, src source) {
		for _, c := range byMeter[m] {
			if !c.Filter.Match(props) {
				continue
			}
			group := ""
			if c.PriceBy != "" {
				group, _ = props.Get(c.PriceBy)
			}
			p := c.PricingFor(group)
			if p == nil {
				continue
			}
			e.comps = append(e.comps, newComponent(c, p, m, src, weights[c.Index]))
		}
	}
	for _, key := range [...]string{MetricInputTokens, MetricOutputTokens} {
		src := srcInput
		if key == MetricOutputTokens {
			src = srcOutput
		}
		for _, m := range cat.MetersFedBy(key) {
			if m.Expr != nil || (m.EventType != "" && m.EventType != eventType) {
				continue
			}
			switch m.Aggregation {
			case catalog.Count:
				add(m, srcOne)
			case catalog.UniqueCount:
				if _, ok := props.Get(m.Property); ok {
					add(m, srcOne)
				}
			default:
				add(m, src)
			}
		}
	}
	for _, m := range cat.Meters {
		if m.EventType != "" && m.EventType != eventType {
			continue
		}
		switch {
		case m.Expr == nil && m.MetricKey == "" && m.Aggregation == catalog.Count:
			add(m, srcOne)
		case m.Expr == nil && m.MetricKey == "" && m.Aggregation == catalog.UniqueCount:
			if _, ok := props.Get(m.Property); ok {
				add(m, srcOne)
			}
		case m.Expr != nil && readsTokens(m.Expr):
			n := len(e.comps)
			add(m, srcDerived)
			if len(e.comps) > n {
				e.derived = append(e.derived, m)
			}
		}
	}
	e.fast = newFast(e.comps)
	return e
}

// readsTokens reports whether a formula reads one of the measurements an estimate supplies,
// which is what makes the rating engine evaluate it for the event.
func readsTokens(x *catalog.Expression) bool {
	for _, k := range x.Metrics {
		if k == MetricInputTokens || k == MetricOutputTokens {
			return true
		}
	}
	return false
}

// chargeWeights returns, per charge index, 1 + Σ over the percentage-of-charges charges that
// name it of their rate × their own weight: what billing one unit of the charge's amount adds
// to the invoice in all. plan.Order puts each percentage after the charges it names, so the
// reverse order sees every dependent's weight before the charges it depends on.
func chargeWeights(plan *catalog.Plan) []money.Decimal {
	w := make([]money.Decimal, len(plan.Charges))
	for i := range w {
		w[i] = one
	}
	for k := len(plan.Order) - 1; k >= 0; k-- {
		d := plan.Charges[plan.Order[k]]
		if len(d.OfCharges) == 0 || d.Pricing == nil {
			continue
		}
		add := d.Pricing.RateFraction.Mul(w[d.Index])
		for _, j := range d.OfCharges {
			w[j] = w[j].Add(add)
		}
	}
	return w
}

func newComponent(c *catalog.Charge, p *catalog.Pricing, m *catalog.Meter, src source, weight money.Decimal) component {
	comp := component{charge: c, src: src, model: c.Model, pricing: p, weight: weight, maxRate: p.UnitRate}
	if src == srcDerived {
		comp.meter = m
	}
	switch c.Model {
	case catalog.Graduated, catalog.Volume:
		comp.maxRate = money.Zero
		maxFee := money.Zero
		lower := money.Zero
		for i := range p.Tiers {
			t := &p.Tiers[i]
			comp.maxRate = money.Max(comp.maxRate, t.UnitRate)
			maxFee = money.Max(maxFee, t.FlatFee)
			comp.lowers = append(comp.lowers, lower)
			comp.fees = append(comp.fees, t.FlatFee)
			if t.UpTo != nil {
				lower = *t.UpTo
			}
		}
		if c.Model == catalog.Volume {
			// Crossing from tier i into a dearer tier j reprices the b ≤ upTo_i units already
			// counted at r_j − r_i more; fees are ≥ 0, so f_j − f_i ≤ the highest fee.
			extra := money.Zero
			for i := range p.Tiers {
				if p.Tiers[i].UpTo == nil {
					continue
				}
				for j := i + 1; j < len(p.Tiers); j++ {
					if d := p.Tiers[j].UnitRate.Sub(p.Tiers[i].UnitRate); d.IsPositive() {
						extra = money.Max(extra, p.Tiers[i].UpTo.Mul(d))
					}
				}
			}
			comp.volExtra = maxFee.Add(extra)
			comp.lowers, comp.fees = nil, nil
		}
	}
	return comp
}

// nanos returns the estimate of a call in nanos of the currency, rounded up: never below the
// exact bound. A bound beyond limit.MaxValue nanos is reported as limit.MaxValue.
func (e *estimator) nanos(in, out int64) (int64, error) {
	if e.fast != nil {
		return e.fast.nanos(in, out), nil
	}
	d, err := e.exact(in, out)
	if err != nil {
		return 0, err
	}
	return ceilNanos(d), nil
}

// exact is the bound as an exact decimal.
func (e *estimator) exact(in, out int64) (money.Decimal, error) {
	qIn, qOut := money.QtyInt(in).Decimal(), money.QtyInt(out).Decimal()
	derived, err := e.derivedValues(qIn, qOut)
	if err != nil {
		return money.Zero, err
	}
	total := money.Zero
	e.each(qIn, qOut, derived, func(c *component, b money.Decimal) {
		total = total.Add(b.Mul(c.weight))
	})
	return total, nil
}

// derivedValues evaluates the derived meters the components read: the formula over the two
// token measurements (the others absent, so 0) and the property model; a uniqueCount meter
// adds at most 1.
func (e *estimator) derivedValues(qIn, qOut money.Decimal) (map[*catalog.Meter]money.Decimal, error) {
	if len(e.derived) == 0 {
		return nil, nil
	}
	derived := make(map[*catalog.Meter]money.Decimal, len(e.derived))
	props := map[string]string{"model": e.model}
	for _, m := range e.derived {
		v, err := m.Expr.Eval(func(k string) (money.Decimal, bool) {
			switch k {
			case MetricInputTokens:
				return qIn, true
			case MetricOutputTokens:
				return qOut, true
			}
			return money.Zero, false
		}, props)
		if err != nil {
			return nil, fmt.Errorf("estimate: meter %s: %w", m.Key, err)
		}
		if m.Aggregation == catalog.UniqueCount {
			v = one
		}
		derived[m] = v
	}
	return derived, nil
}

// each calls f with every component and its bound (before weight) for the quantities.
func (e *estimator) each(qIn, qOut money.Decimal, derived map[*catalog.Meter]money.Decimal, f func(c *component, bound money.Decimal)) {
	for i := range e.comps {
		c := &e.comps[i]
		var q money.Decimal
		switch c.src {
		case srcInput:
			q = qIn
		case srcOutput:
			q = qOut
		case srcOne:
			q = one
		case srcDerived:
			q = derived[c.meter]
		}
		f(c, c.bound(q))
	}
}

// ceilNanos converts a non-negative amount to nanos rounded up: money.ToNanos rounds to the
// nearest nano (money.Round), and one nano is added when that fell short of the amount. The
// result is clamped to [0, limit.MaxValue].
func ceilNanos(d money.Decimal) int64 {
	if !d.IsPositive() {
		return 0
	}
	if d.GreaterThanOrEqual(maxNano) {
		return limit.MaxValue
	}
	n, ok := money.ToNanos(d)
	if !ok {
		return limit.MaxValue
	}
	if money.FromNanos(n).LessThan(d) {
		n++
	}
	return min(n, limit.MaxValue)
}

// fastEstimator is the integer form of an estimator without derived meters: every amount is
// an unsigned integer in units of 10^-scale, so an estimate is a few 128-bit multiply-adds and
// allocates nothing. It computes exactly what estimator.exact computes, rounded up to nanos.
type fastEstimator struct {
	div     uint64 // 10^(scale−9): units per nano
	a, b, c uint64 // total = in·a + out·b + c + steps
	steps   []fastStep
}

// fastStep is a component whose bound is not linear in its quantity: a graduated price's
// reachable fees (a step function of q) or a package price (⌈q/size⌉ × price).
type fastStep struct {
	input bool // the quantity is EstimatedInputTokens (else MaxOutputTokens)
	// Graduated fees: value[0] when q ≤ after[0] (or no after), value[k] when after[k−1] < q ≤
	// after[k] (q is a whole number, so "q > a decimal d" is "q > ⌊d⌋").
	after []int64
	value []uint64
	// Package: size > 0.
	size  int64
	price uint64
}

// newFast builds the integer form, or returns nil when some component needs decimals: a
// derived meter, a fractional package size, or amounts too fine or too large for 64 bits.
func newFast(comps []component) *fastEstimator {
	type pending struct {
		input  bool
		after  []int64
		values []money.Decimal
		size   int64
		price  money.Decimal
	}
	a, b, c := money.Zero, money.Zero, money.Zero
	var steps []pending
	for i := range comps {
		cp := &comps[i]
		if cp.src == srcDerived {
			return nil
		}
		if cp.src == srcOne {
			c = c.Add(cp.bound(one).Mul(cp.weight))
			continue
		}
		in := cp.src == srcInput
		linear := func(rate money.Decimal) {
			if in {
				a = a.Add(rate.Mul(cp.weight))
			} else {
				b = b.Add(rate.Mul(cp.weight))
			}
		}
		switch cp.model {
		case catalog.PerUnit, catalog.IncludedQuota:
			linear(cp.pricing.UnitRate)
		case catalog.Volume:
			linear(cp.maxRate)
			c = c.Add(cp.volExtra.Mul(cp.weight))
		case catalog.Graduated:
			linear(cp.maxRate)
			var after []int64
			seen := map[int64]bool{}
			for i := range cp.lowers {
				for j := i + 1; j < len(cp.lowers); j++ {
					t := floorInt(cp.lowers[j].Sub(cp.lowers[i]))
					if !seen[t] {
						seen[t] = true
						after = append(after, t)
					}
				}
			}
			sortInts(after)
			vals := []money.Decimal{gradFees(cp.lowers, cp.fees, money.Zero).Mul(cp.weight)}
			for _, t := range after {
				q := money.Zero
				if t < math.MaxInt64 {
					q = money.QtyInt(t + 1).Decimal()
				}
				vals = append(vals, gradFees(cp.lowers, cp.fees, q).Mul(cp.weight))
			}
			if !vals[len(vals)-1].IsZero() {
				steps = append(steps, pending{input: in, after: after, values: vals})
			}
		case catalog.Package:
			size := cp.pricing.PackageSize
			if !size.IsInteger() || !size.IsPositive() || size.GreaterThan(money.QtyInt(math.MaxInt64).Decimal()) {
				return nil
			}
			steps = append(steps, pending{input: in, size: size.IntPart(), price: cp.pricing.PackagePrice.Mul(cp.weight)})
		default:
			return nil
		}
	}
	scale := int32(9)
	grow := func(d money.Decimal) {
		if s := -trimmed(d).Exponent(); s > scale {
			scale = s
		}
	}
	grow(a)
	grow(b)
	grow(c)
	for _, s := range steps {
		for _, v := range s.values {
			grow(v)
		}
		grow(s.price)
	}
	if scale-9 > 19 { // 10^(scale−9) must fit a uint64
		return nil
	}
	ok := true
	toInt := func(d money.Decimal) uint64 {
		v := d.Shift(scale)
		if v.IsNegative() || !v.IsInteger() || v.GreaterThan(maxUint64) {
			ok = false
			return 0
		}
		return v.BigInt().Uint64()
	}
	f := &fastEstimator{div: pow10(scale - 9), a: toInt(a), b: toInt(b), c: toInt(c)}
	for _, s := range steps {
		st := fastStep{input: s.input, after: s.after, size: s.size, price: toInt(s.price)}
		for _, v := range s.values {
			st.value = append(st.value, toInt(v))
		}
		f.steps = append(f.steps, st)
	}
	if !ok {
		return nil
	}
	return f
}

var maxUint64 = money.MustParse("18446744073709551615")

// trimmed returns d without trailing zeros in its coefficient (the catalog keeps exact
// quotients at a fixed, generous scale), so its exponent is the scale it really needs.
func trimmed(d money.Decimal) money.Decimal {
	t, err := money.Parse(d.String())
	if err != nil {
		return d
	}
	return t
}

func pow10(n int32) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// floorInt is ⌊d⌋ for d ≥ 0, saturating at MaxInt64.
func floorInt(d money.Decimal) int64 {
	f := d.Floor()
	if f.GreaterThan(money.QtyInt(math.MaxInt64).Decimal()) {
		return math.MaxInt64
	}
	return f.IntPart()
}

func sortInts(s []int64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// u128 is an unsigned 128-bit accumulator that saturates instead of wrapping.
type u128 struct{ hi, lo uint64 }

func (x *u128) add(hi, lo uint64) {
	var c uint64
	x.lo, c = bits.Add64(x.lo, lo, 0)
	var c2 uint64
	x.hi, c2 = bits.Add64(x.hi, hi, c)
	if c2 != 0 {
		x.hi, x.lo = math.MaxUint64, math.MaxUint64
	}
}

func (x *u128) mulAdd(q int64, k uint64) {
	if q <= 0 || k == 0 {
		return
	}
	x.add(bits.Mul64(uint64(q), k))
}

func (f *fastEstimator) nanos(in, out int64) int64 {
	var t u128
	t.mulAdd(in, f.a)
	t.mulAdd(out, f.b)
	t.add(0, f.c)
	for i := range f.steps {
		s := &f.steps[i]
		q := out
		if s.input {
			q = in
		}
		if s.size > 0 {
			if q > 0 {
				t.mulAdd(q/s.size+b2i(q%s.size != 0), s.price)
			}
			continue
		}
		k := 0
		for k < len(s.after) && q > s.after[k] {
			k++
		}
		t.add(0, s.value[k])
	}
	if t.hi >= f.div {
		return limit.MaxValue // the quotient needs more than 64 bits
	}
	n, r := bits.Div64(t.hi, t.lo, f.div)
	if r != 0 {
		n++
	}
	if n == 0 && r != 0 { // n wrapped: it was MaxUint64
		return limit.MaxValue
	}
	if n > uint64(limit.MaxValue) {
		return limit.MaxValue
	}
	return int64(n)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// modelProps are the properties of an authorized call's event: the model, and nothing else.
type modelProps string

func (m modelProps) Get(name string) (string, bool) {
	if name == "model" {
		return string(m), true
	}
	return "", false
}
