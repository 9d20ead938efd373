package rating

import (
	"sort"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// Rater rates events against one plan of a catalog. It is safe for concurrent use; the
// per-period figures live in a State, which is not.
type Rater struct {
	cat  *catalog.Catalog
	plan *catalog.Plan

	// chargesByMeter lists, per meter index, the plan's usage charges on it.
	chargesByMeter [][]*catalog.Charge
	pctProperty    []*catalog.Charge // percentage-of-property charges
	pctCharges     []*catalog.Charge // percentage-of-charges charges, in dependency order
	// dependents lists, per charge index, the percentage charges computed from it.
	dependents  [][]*catalog.Charge
	countMeters []*catalog.Meter
	derived     []*catalog.Meter

	mu      sync.RWMutex
	slotIDs map[slotKey]int
	slots   []slotInfo
}

type slotKey struct {
	charge int
	group  string
}

type slotInfo struct {
	charge  *catalog.Charge
	group   string
	pricing *catalog.Pricing
}

// NewRater prepares a rater for a plan of the catalog.
func NewRater(cat *catalog.Catalog, plan *catalog.Plan) *Rater {
	r := &Rater{
		cat:            cat,
		plan:           plan,
		chargesByMeter: make([][]*catalog.Charge, len(cat.Meters)),
		dependents:     make([][]*catalog.Charge, len(plan.Charges)),
		slotIDs:        map[slotKey]int{},
	}
	for _, m := range cat.Meters {
		switch {
		case m.Expr != nil:
			r.derived = append(r.derived, m)
		case m.Aggregation == catalog.Count && m.MetricKey == "":
			r.countMeters = append(r.countMeters, m)
		}
	}
	for _, ci := range plan.Order {
		c := plan.Charges[ci]
		switch {
		case c.Meter != nil:
			r.chargesByMeter[c.Meter.Index] = append(r.chargesByMeter[c.Meter.Index], c)
		case c.OfProperty != "":
			r.pctProperty = append(r.pctProperty, c)
		case len(c.OfCharges) > 0:
			r.pctCharges = append(r.pctCharges, c)
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

// State holds one period's running figures for one customer on one plan.
type State struct {
	Events int64
	slots  []*slot    // by rater slot id; nil where unused
	charge []chargeSt // by charge index
	// meterCost holds, per cost book entry, the quantity it prices.
	costQty map[int]money.Qty
	pctOf   map[int]money.Decimal // percentage-of-charges base per charge index
}

type chargeSt struct {
	raw     money.Decimal // sum of the charge's raw amounts (all groups)
	reached bool
}

type slot struct {
	qty      money.Qty
	latestAt time.Time
	uniq     map[string]struct{}
	amount   money.Decimal // raw cumulative amount charged so far (percentage of property: sum)
	started  bool
	costQty  map[int]money.Qty
}

// NewState returns an empty period state for the rater's plan.
func (r *Rater) NewState() *State {
	return &State{charge: make([]chargeSt, len(r.plan.Charges)), costQty: map[int]money.Qty{}}
}

// Line is one rated (event, charge) pair: what the event added to a charge.
type Line struct {
	Charge   string        // charge key
	Group    string        // price-table value ("" without a table)
	Type     LineType      // usage, or maximum for a cap's offset
	Quantity money.Decimal // what the event contributed to the charge's quantity
	Amount   money.Decimal // incremental amount (exact; may be negative for volume)
	Cost     money.Decimal // provider cost of Quantity from the cost book
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
)

// Result is what rating one event produced.
type Result struct {
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

// contribution is one (slot, value) an event feeds.
type contribution struct {
	charge *catalog.Charge
	group  string
	value  money.Qty
	text   string // uniqueCount: the property value
	pertx  money.Decimal
	costs  map[int]money.Qty
}

// Rate applies one event to the state and returns its rated lines with incremental amounts.
// The state must belong to the event's period.
func (r *Rater) Rate(st *State, ev *usage.Event) (Result, error) {
	return r.apply(st, ev, true)
}

// Accumulate applies one event to the state without computing incremental amounts; Price then
// gives the same totals as rating every event with Rate. It is the simulator's fast path.
func (r *Rater) Accumulate(st *State, ev *usage.Event) (Result, error) {
	return r.apply(st, ev, false)
}

func (r *Rater) apply(st *State, ev *usage.Event, incremental bool) (Result, error) {
	var res Result
	st.Events++
	reached := false
	feed := func(m *catalog.Meter, v money.Qty, text string) {
		cost := r.costEntry(m, ev)
		if cost >= 0 {
			st.costQty[cost] = st.costQty[cost].Add(v)
			if incremental {
				res.Cost = res.Cost.Add(costOf(r.cat.Costs[cost], v))
			}
		}
		for _, c := range r.chargesByMeter[m.Index] {
			if !c.Filter.Match(ev) {
				continue
			}
			group := ""
			if c.PriceBy != "" {
				group, _ = ev.Get(c.PriceBy)
			}
			p := c.PricingFor(group)
			if p == nil {
				continue
			}
			reached = true
			line := r.feedSlot(st, c, group, p, m, v, text, ev, incremental)
			if cost >= 0 {
				sl := st.slots[r.slot(c, group, p)]
				if sl.costQty == nil {
					sl.costQty = map[int]money.Qty{}
				}
				sl.costQty[cost] = sl.costQty[cost].Add(v)
				if incremental {
					line.Cost = costOf(r.cat.Costs[cost], v)
				}
			}
			if incremental {
				res.Lines = append(res.Lines, line)
				res.Lines = r.propagate(st, c, line.Amount, res.Lines)
			}
		}
	}
	for i := range ev.Measurements {
		ms := &ev.Measurements[i]
		meters := r.cat.MetersFedBy(ms.MetricKey)
		used := false
		for _, m := range meters {
			if m.Expr != nil {
				used = true
				continue // derived meters are evaluated once below
			}
			if m.EventType != "" && m.EventType != ev.EventType {
				continue
			}
			used = true
			switch m.Aggregation {
			case catalog.Count:
				feed(m, money.QtyInt(1), "")
			case catalog.UniqueCount:
				if pv, ok := ev.Get(m.Property); ok {
					feed(m, money.QtyInt(1), pv)
				}
			default:
				feed(m, ms.Value, "")
			}
		}
		if !used {
			res.Unmetered = append(res.Unmetered, ms.MetricKey)
		}
	}
	for _, m := range r.countMeters {
		if m.EventType == "" || m.EventType == ev.EventType {
			feed(m, money.QtyInt(1), "")
		}
	}
	for _, m := range r.derived {
		if m.EventType != "" && m.EventType != ev.EventType {
			continue
		}
		has := false
		for _, k := range m.Expr.Metrics {
			if _, ok := ev.Value(k); ok {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		v, err := m.Expr.Eval(func(k string) (money.Decimal, bool) {
			q, ok := ev.Value(k)
			return q.Decimal(), ok
		}, ev.PropertyMap())
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
		feed(m, money.QtyOf(v), text)
	}
	for _, c := range r.pctProperty {
		if c.EventType != "" && c.EventType != ev.EventType {
			continue
		}
		pv, ok := ev.Get(c.OfProperty)
		if !ok || !c.Filter.Match(ev) {
			continue
		}
		val, err := money.Parse(pv)
		if err != nil || val.IsNegative() {
			continue // not a number: the property is not a transaction amount
		}
		group := ""
		if c.PriceBy != "" {
			group, _ = ev.Get(c.PriceBy)
		}
		p := c.PricingFor(group)
		if p == nil {
			continue
		}
		reached = true
		line := r.feedSlot(st, c, group, p, nil, money.QtyOf(val), "", ev, incremental)
		if incremental {
			res.Lines = append(res.Lines, line)
			res.Lines = r.propagate(st, c, line.Amount, res.Lines)
		}
	}
	res.Unpriced = !reached
	return res, nil
}

// costEntry returns the index of the first cost book entry of the meter matching the event, or -1.
func (r *Rater) costEntry(m *catalog.Meter, ev *usage.Event) int {
	for _, c := range r.cat.CostsFor(m.Key) {
		if c.Filter.Match(ev) {
			return c.Index
		}
	}
	return -1
}

func costOf(c *catalog.Cost, q money.Qty) money.Decimal {
	return q.Decimal().Mul(c.UnitRate)
}

// feedSlot adds one event's value to a (charge, group) slot and returns its rated line. The
// line's Amount is only computed when incremental is set.
func (r *Rater) feedSlot(st *State, c *catalog.Charge, group string, p *catalog.Pricing, m *catalog.Meter,
	v money.Qty, text string, ev *usage.Event, incremental bool) Line {
	id := r.slot(c, group, p)
	for len(st.slots) <= id {
		st.slots = append(st.slots, nil)
	}
	sl := st.slots[id]
	if sl == nil {
		sl = &slot{}
		st.slots[id] = sl
	}
	before := sl.qty
	beforeAmt := sl.amount
	contributed := v
	switch {
	case c.OfProperty != "":
		sl.qty = sl.qty.Add(v)
		sl.amount = sl.amount.Add(perTransaction(p, v.Decimal()))
	case m.Aggregation == catalog.Sum || m.Aggregation == catalog.Count:
		sl.qty = sl.qty.Add(v)
	case m.Aggregation == catalog.Max:
		if !sl.started || v.Cmp(sl.qty) > 0 {
			sl.qty = v
		}
	case m.Aggregation == catalog.Latest:
		if !sl.started || !ev.Timestamp.Before(sl.latestAt) {
			sl.qty = v
			sl.latestAt = ev.Timestamp
		}
	case m.Aggregation == catalog.UniqueCount:
		if sl.uniq == nil {
			sl.uniq = map[string]struct{}{}
		}
		sl.uniq[text] = struct{}{}
		sl.qty = money.QtyInt(int64(len(sl.uniq)))
	}
	if m != nil && m.Aggregation != catalog.Sum && m.Aggregation != catalog.Count {
		contributed = sl.qty.Sub(before)
	}
	wasStarted := sl.started
	sl.started = true
	st.charge[c.Index].reached = true
	line := Line{Charge: c.Key, Group: group, Type: LineUsage, Quantity: contributed.Decimal()}
	if !incremental {
		return line
	}
	var delta money.Decimal
	if c.OfProperty != "" {
		delta = sl.amount.Sub(beforeAmt)
	} else {
		after := Cumulative(c.Model, p, sl.qty.Decimal())
		prev := money.Zero
		if wasStarted {
			prev = Cumulative(c.Model, p, before.Decimal())
		}
		delta = after.Sub(prev)
		sl.amount = after
	}
	line.Amount = delta
	return line
}

// propagate applies a charge's raw incremental amount to the charge's running total, appends a
// maximum-offset line when a cap binds, and feeds percentage-of-charges dependents.
func (r *Rater) propagate(st *State, c *catalog.Charge, raw money.Decimal, lines []Line) []Line {
	cs := &st.charge[c.Index]
	before := cs.raw
	cs.raw = cs.raw.Add(raw)
	effective := raw
	if c.Maximum != nil {
		capBefore := money.Min(before, *c.Maximum)
		capAfter := money.Min(cs.raw, *c.Maximum)
		effective = capAfter.Sub(capBefore)
		if off := effective.Sub(raw); !off.IsZero() {
			lines = append(lines, Line{Charge: c.Key, Type: LineMaximum, Amount: off})
		}
	}
	for _, d := range r.dependents[c.Index] {
		p := d.Pricing
		add := percentOf(p, effective)
		if st.pctOf == nil {
			st.pctOf = map[int]money.Decimal{}
		}
		st.pctOf[d.Index] = st.pctOf[d.Index].Add(effective)
		st.charge[d.Index].reached = true
		lines = append(lines, Line{Charge: d.Key, Type: LineUsage, Quantity: effective, Amount: add})
		lines = r.propagate(st, d, add, lines)
	}
	return lines
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
