package rating

import (
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// Rater rates events against one plan of a catalog. It is safe for concurrent use; the
// per-period figures live in a State, which is not.
//
// Routing an event (which meters it feeds, which charges and price-table groups those reach,
// which cost book entries apply) depends only on its event type and the properties the catalog
// reads, so it is computed once per such signature and cached.
type Rater struct {
	cat  *catalog.Catalog
	plan *catalog.Plan

	// chargesByMeter lists, per meter index, the plan's usage charges on it.
	chargesByMeter [][]*catalog.Charge
	pctProperty    []*catalog.Charge // percentage-of-property charges
	// dependents lists, per charge index, the percentage charges computed from it.
	dependents [][]*catalog.Charge
	// props lists the properties routing reads (filters, price tables, cost filters).
	props []string

	mu      sync.RWMutex
	slotIDs map[slotKey]int
	slots   []slotInfo
	routes  map[string]*route
}

// maxRoutes bounds the route cache; past it, routes are computed per event.
const maxRoutes = 1 << 16

type slotKey struct {
	charge int
	group  string
}

type slotInfo struct {
	charge  *catalog.Charge
	group   string
	pricing *catalog.Pricing
}

// route is the precomputed fan-out of events with one signature.
type route struct {
	byMetric map[string][]meterRoute
	count    []meterRoute // count and property uniqueCount meters, fed by every event of the type
	derived  []meterRoute // derived meters, evaluated per event
	pct      []chargeRoute
	// unmetered marks measurement keys that feed no meter (derived meters included).
	metered map[string]bool
}

type meterRoute struct {
	meter   *catalog.Meter
	cost    int // cost book entry index, -1 for none
	charges []chargeRoute
}

type chargeRoute struct {
	charge  *catalog.Charge
	group   string
	pricing *catalog.Pricing
	slot    int
}

// NewRater prepares a rater for a plan of the catalog.
func NewRater(cat *catalog.Catalog, plan *catalog.Plan) *Rater {
	r := &Rater{
		cat:            cat,
		plan:           plan,
		chargesByMeter: make([][]*catalog.Charge, len(cat.Meters)),
		dependents:     make([][]*catalog.Charge, len(plan.Charges)),
		slotIDs:        map[slotKey]int{},
		routes:         map[string]*route{},
	}
	props := map[string]bool{}
	for _, p := range plan.Properties {
		props[p] = true
	}
	for _, c := range cat.Costs {
		for _, cond := range c.Filter {
			props[cond.Property] = true
		}
	}
	for p := range props {
		r.props = append(r.props, p)
	}
	sort.Strings(r.props)
	for _, ci := range plan.Order {
		c := plan.Charges[ci]
		switch {
		case c.Meter != nil:
			r.chargesByMeter[c.Meter.Index] = append(r.chargesByMeter[c.Meter.Index], c)
		case c.OfProperty != "":
			r.pctProperty = append(r.pctProperty, c)
		case len(c.OfCharges) > 0:
			for _, j := range c.OfCharges {
				r.dependents[j] = append(r.dependents[j], c)
			}
		}
	}
	return r
}

// Plan returns the rater's plan.
func (r *Rater) Plan() *catalog.Plan { return r.plan }

// Catalog returns the rater's catalog.
func (r *Rater) Catalog() *catalog.Catalog { return r.cat }

// slot returns the id of a (charge, group) slot, creating it on first use.
func (r *Rater) slot(c *catalog.Charge, group string, p *catalog.Pricing) int {
	k := slotKey{c.Index, group}
	r.mu.RLock()
	id, ok := r.slotIDs[k]
	r.mu.RUnlock()
	if ok {
		return id
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.slotIDs[k]; ok {
		return id
	}
	id = len(r.slots)
	r.slots = append(r.slots, slotInfo{charge: c, group: group, pricing: p})
	r.slotIDs[k] = id
	return id
}

func (r *Rater) info(id int) slotInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.slots[id]
}

// routeFor returns the cached route of the event's signature, building it on first use.
func (r *Rater) routeFor(ev *usage.Event) *route {
	var kb [256]byte
	key := binary.AppendUvarint(kb[:0], uint64(len(ev.EventType)))
	key = append(key, ev.EventType...)
	for _, p := range r.props {
		// Length-prefixed, so values holding any bytes cannot make two signatures collide.
		if v, ok := ev.Get(p); ok {
			key = binary.AppendUvarint(key, uint64(len(v))+1)
			key = append(key, v...)
		} else {
			key = append(key, 0)
		}
	}
	r.mu.RLock()
	rt := r.routes[string(key)]
	r.mu.RUnlock()
	if rt != nil {
		return rt
	}
	rt = r.buildRoute(ev)
	r.mu.Lock()
	if len(r.routes) < maxRoutes {
		r.routes[string(key)] = rt
	}
	r.mu.Unlock()
	return rt
}

func (r *Rater) buildRoute(ev *usage.Event) *route {
	rt := &route{byMetric: map[string][]meterRoute{}, metered: map[string]bool{}}
	mr := func(m *catalog.Meter) meterRoute {
		out := meterRoute{meter: m, cost: -1}
		for _, c := range r.cat.CostsFor(m.Key) {
			if c.Filter.Match(ev) {
				out.cost = c.Index
				break
			}
		}
		for _, c := range r.chargesByMeter[m.Index] {
			if cr, ok := r.chargeRoute(c, ev); ok {
				out.charges = append(out.charges, cr)
			}
		}
		return out
	}
	for _, m := range r.cat.Meters {
		if m.EventType != "" && m.EventType != ev.EventType {
			continue
		}
		switch {
		case m.Expr != nil:
			for _, k := range m.Expr.Metrics {
				rt.metered[k] = true
			}
			// A formula nothing prices or costs is not worth evaluating for this plan.
			if route := mr(m); len(route.charges) > 0 || route.cost >= 0 {
				rt.derived = append(rt.derived, route)
			}
		case m.MetricKey == "":
			rt.count = append(rt.count, mr(m))
		default:
			rt.byMetric[m.MetricKey] = append(rt.byMetric[m.MetricKey], mr(m))
			rt.metered[m.MetricKey] = true
		}
	}
	for _, c := range r.pctProperty {
		if c.EventType != "" && c.EventType != ev.EventType {
			continue
		}
		if cr, ok := r.chargeRoute(c, ev); ok {
			rt.pct = append(rt.pct, cr)
		}
	}
	return rt
}

// chargeRoute resolves how a charge prices an event: whether its filter matches, which
// price-table group the event falls in, and that group's pricing (ok is false when the charge
// does not price the event).
func (r *Rater) chargeRoute(c *catalog.Charge, ev *usage.Event) (chargeRoute, bool) {
	if !c.Filter.Match(ev) {
		return chargeRoute{}, false
	}
	group := ""
	if c.PriceBy != "" {
		group, _ = ev.Get(c.PriceBy)
	}
	p := c.PricingFor(group)
	if p == nil {
		return chargeRoute{}, false
	}
	return chargeRoute{charge: c, group: group, pricing: p, slot: r.slot(c, group, p)}, true
}

// State holds one period's running figures for one customer on one plan.
type State struct {
	Events  int64
	slots   []*slot     // by rater slot id; nil where unused
	charge  []chargeSt  // by charge index
	costQty []money.Qty // by cost book entry: the quantity it prices
}

type chargeSt struct {
	raw     money.Decimal // sum of the charge's raw incremental amounts (all groups)
	reached bool
}

type slot struct {
	qty      money.Qty
	latestAt time.Time
	uniq     map[string]struct{}
	amount   money.Decimal // raw cumulative amount so far (percentage of a property: the sum)
	priced   bool          // amount is the cumulative price of qty (kept by Rate, not Accumulate)
	started  bool
	costs    []costQty
}

type costQty struct {
	entry int
	qty   money.Qty
}

// NewState returns an empty period state for the rater's plan.
func (r *Rater) NewState() *State {
	return &State{charge: make([]chargeSt, len(r.plan.Charges)), costQty: make([]money.Qty, len(r.cat.Costs))}
}

// Line is one rated (event, charge) pair: what the event added to a charge.
type Line struct {
	Charge   string        // charge key
	Group    string        // price-table value ("" without a table)
	Type     LineType      // usage, or maximum for a cap's offset
	Quantity money.Decimal // what the event contributed to the charge's quantity
	Amount   money.Decimal // incremental amount (exact; may be negative for volume)
	Cost     money.Decimal // provider cost of Quantity from the cost book

	charge int // the charge's index in its plan, for ordering
}

// LineType tells what an invoice or rated line is.
type LineType string

// Line types.
const (
	LineUsage      LineType = "usage"
	LineFlat       LineType = "flat"
	LineMaximum    LineType = "maximum"
	LineMinimum    LineType = "minimum"
	LineCommitment LineType = "commitment"
	// LineDiscount is a spend tier's discount on the amounts rated after a promotion.
	LineDiscount LineType = "discount"
)

// Result is what rating one event produced.
type Result struct {
	// Lines has one line per (charge, group, type) the event reached, in plan order.
	Lines []Line
	// Cost is the provider cost of the event's measured quantities (each meter counted once).
	Cost money.Decimal
	// Unmetered lists measurement keys no meter uses.
	Unmetered []string
	// Unpriced is true when the event reached no charge of the plan.
	Unpriced bool
}

// Amount sums the result's line amounts.
func (res *Result) Amount() money.Decimal {
	a := money.Zero
	for _, l := range res.Lines {
		a = a.Add(l.Amount)
	}
	return a
}

// Rate applies one event to the state and returns its rated lines with incremental amounts.
// The state must belong to the event's period.
func (r *Rater) Rate(st *State, ev *usage.Event) (Result, error) {
	res, err := r.apply(st, ev, true)
	res.Lines = mergeLines(res.Lines)
	return res, err
}

// Accumulate applies one event to the state without computing incremental amounts; Price then
// gives the same totals as rating every event with Rate. It is the simulator's fast path.
func (r *Rater) Accumulate(st *State, ev *usage.Event) (Result, error) {
	return r.apply(st, ev, false)
}

func (r *Rater) apply(st *State, ev *usage.Event, incremental bool) (Result, error) {
	var res Result
	st.Events++
	rt := r.routeFor(ev)
	reached := false
	for i := range ev.Measurements {
		ms := &ev.Measurements[i]
		mrs, ok := rt.byMetric[ms.MetricKey]
		if !ok && !rt.metered[ms.MetricKey] {
			res.Unmetered = append(res.Unmetered, ms.MetricKey)
			continue
		}
		for k := range mrs {
			mr := &mrs[k]
			v, text := ms.Value, ""
			switch mr.meter.Aggregation {
			case catalog.Count:
				v = money.QtyInt(1)
			case catalog.UniqueCount:
				pv, ok := ev.Get(mr.meter.Property)
				if !ok {
					continue
				}
				v, text = money.QtyInt(1), pv
			}
			reached = r.feedMeter(st, &res, mr, v, text, ev, incremental) || reached
		}
	}
	for k := range rt.count {
		mr := &rt.count[k]
		text := ""
		if mr.meter.Aggregation == catalog.UniqueCount {
			pv, ok := ev.Get(mr.meter.Property)
			if !ok {
				continue
			}
			text = pv
		}
		reached = r.feedMeter(st, &res, mr, money.QtyInt(1), text, ev, incremental) || reached
	}
	for k := range rt.derived {
		mr := &rt.derived[k]
		m := mr.meter
		has := false
		for _, key := range m.Expr.Metrics {
			if _, ok := ev.Value(key); ok {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		v, err := m.Expr.Eval(func(key string) (money.Decimal, bool) {
			q, ok := ev.Value(key)
			return q.Decimal(), ok
		}, propsFor(m.Expr, ev))
		if err != nil {
			return res, err
		}
		if v.IsNegative() {
			v = money.Zero
		}
		text := ""
		if m.Aggregation == catalog.UniqueCount {
			text, _ = ev.Get(m.Property)
		}
		reached = r.feedMeter(st, &res, mr, money.QtyOf(v), text, ev, incremental) || reached
	}
	for k := range rt.pct {
		cr := &rt.pct[k]
		pv, _ := ev.Get(cr.charge.OfProperty)
		val, err := money.Parse(pv)
		if err != nil || val.IsNegative() {
			continue // not a number: the property is not a transaction amount
		}
		reached = true
		line := r.feedSlot(st, cr, nil, money.QtyOf(val), "", ev, incremental)
		if incremental {
			res.Lines = append(res.Lines, line)
			res.Lines = r.propagate(st, cr.charge, line.Amount, res.Lines)
		}
	}
	res.Unpriced = !reached
	return res, nil
}

// feedMeter records one meter value of an event: its cost, and each charge it reaches.
func (r *Rater) feedMeter(st *State, res *Result, mr *meterRoute, v money.Qty, text string, ev *usage.Event, incremental bool) bool {
	if mr.cost >= 0 {
		st.costQty[mr.cost] = st.costQty[mr.cost].Add(v)
		if incremental {
			res.Cost = res.Cost.Add(costOf(r.cat.Costs[mr.cost], v))
		}
	}
	for k := range mr.charges {
		cr := &mr.charges[k]
		line := r.feedSlot(st, cr, mr.meter, v, text, ev, incremental)
		if mr.cost >= 0 {
			sl := st.slots[cr.slot]
			found := false
			for j := range sl.costs {
				if sl.costs[j].entry == mr.cost {
					sl.costs[j].qty = sl.costs[j].qty.Add(v)
					found = true
					break
				}
			}
			if !found {
				sl.costs = append(sl.costs, costQty{entry: mr.cost, qty: v})
			}
			if incremental {
				line.Cost = costOf(r.cat.Costs[mr.cost], v)
			}
		}
		if incremental {
			res.Lines = append(res.Lines, line)
			res.Lines = r.propagate(st, cr.charge, line.Amount, res.Lines)
		}
	}
	return len(mr.charges) > 0
}

func costOf(c *catalog.Cost, q money.Qty) money.Decimal {
	return q.Decimal().Mul(c.UnitRate)
}

// feedSlot adds one event's value to a (charge, group) slot and returns its rated line. The
// line's Amount is only computed when incremental is set.
func (r *Rater) feedSlot(st *State, cr *chargeRoute, m *catalog.Meter, v money.Qty, text string, ev *usage.Event, incremental bool) Line {
	c, p := cr.charge, cr.pricing
	for len(st.slots) <= cr.slot {
		st.slots = append(st.slots, nil)
	}
	sl := st.slots[cr.slot]
	if sl == nil {
		sl = &slot{}
		st.slots[cr.slot] = sl
	}
	before := sl.qty
	beforeAmt := sl.amount
	contributed := v
	switch {
	case m == nil: // percentage of a property
		sl.qty = sl.qty.Add(v)
		sl.amount = sl.amount.Add(perTransaction(p, v.Decimal()))
	case m.Aggregation == catalog.Sum || m.Aggregation == catalog.Count:
		sl.qty = sl.qty.Add(v)
	case m.Aggregation == catalog.Max:
		if !sl.started || v.Cmp(sl.qty) > 0 {
			sl.qty = v
		}
		contributed = sl.qty.Sub(before)
	case m.Aggregation == catalog.Latest:
		if !sl.started || !ev.Timestamp.Before(sl.latestAt) {
			sl.qty = v
			sl.latestAt = ev.Timestamp
		}
		contributed = sl.qty.Sub(before)
	case m.Aggregation == catalog.UniqueCount:
		if sl.uniq == nil {
			sl.uniq = map[string]struct{}{}
		}
		sl.uniq[text] = struct{}{}
		sl.qty = money.QtyInt(int64(len(sl.uniq)))
		contributed = sl.qty.Sub(before)
	}
	wasStarted := sl.started
	sl.started = true
	r.markReached(st, c)
	if !incremental {
		sl.priced = false
		return Line{}
	}
	line := Line{Charge: c.Key, Group: cr.group, Type: LineUsage, Quantity: contributed.Decimal(), charge: c.Index}
	switch {
	case m == nil:
		line.Amount = sl.amount.Sub(beforeAmt)
	case c.Model == catalog.PerUnit:
		// Linear: the difference of the cumulative amounts is the contribution times the rate.
		line.Amount = line.Quantity.Mul(p.UnitRate)
	default:
		after := Cumulative(c.Model, p, sl.qty.Decimal())
		prev := money.Zero
		if wasStarted {
			if sl.priced {
				prev = sl.amount // Cumulative(before), kept from the previous event
			} else {
				prev = Cumulative(c.Model, p, before.Decimal())
			}
		}
		line.Amount = after.Sub(prev)
		sl.amount, sl.priced = after, true
	}
	return line
}

// markReached records that an event reached a charge, and so every percentage charged on it.
func (r *Rater) markReached(st *State, c *catalog.Charge) {
	if st.charge[c.Index].reached {
		return
	}
	st.charge[c.Index].reached = true
	for _, d := range r.dependents[c.Index] {
		r.markReached(st, d)
	}
}

// propagate applies a charge's raw incremental amount to the charge's running total, appends a
// maximum-offset line when a cap binds, and feeds percentage-of-charges dependents.
func (r *Rater) propagate(st *State, c *catalog.Charge, raw money.Decimal, lines []Line) []Line {
	cs := &st.charge[c.Index]
	before := cs.raw
	cs.raw = cs.raw.Add(raw)
	effective := raw
	if c.Maximum != nil {
		effective = money.Min(cs.raw, *c.Maximum).Sub(money.Min(before, *c.Maximum))
		if off := effective.Sub(raw); !off.IsZero() {
			lines = append(lines, Line{Charge: c.Key, Type: LineMaximum, Amount: off, charge: c.Index})
		}
	}
	for _, d := range r.dependents[c.Index] {
		add := percentOf(d.Pricing, effective)
		st.charge[d.Index].reached = true
		lines = append(lines, Line{Charge: d.Key, Type: LineUsage, Quantity: effective, Amount: add, charge: d.Index})
		lines = r.propagate(st, d, add, lines)
	}
	return lines
}

// mergeLines folds lines of the same (charge, group, type) into one and orders them by the
// charges' places in the plan (usage before a cap's offset within a charge).
func mergeLines(lines []Line) []Line {
	if len(lines) < 2 {
		return lines
	}
	out := lines[:0:0]
	for _, l := range lines {
		merged := false
		for i := range out {
			if out[i].Charge == l.Charge && out[i].Group == l.Group && out[i].Type == l.Type {
				out[i].Quantity = out[i].Quantity.Add(l.Quantity)
				out[i].Amount = out[i].Amount.Add(l.Amount)
				out[i].Cost = out[i].Cost.Add(l.Cost)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].charge < out[j].charge })
	return out
}

// sortedSlots returns the state's used slot ids ordered by charge then group.
func (r *Rater) sortedSlots(st *State) []int {
	var ids []int
	for id, sl := range st.slots {
		if sl != nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool {
		ia, ib := r.info(ids[a]), r.info(ids[b])
		if ia.charge.Index != ib.charge.Index {
			return ia.charge.Index < ib.charge.Index
		}
		return ia.group < ib.group
	})
	return ids
}
