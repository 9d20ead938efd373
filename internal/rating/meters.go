package rating

import (
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// MeterValue is one meter's value in one event. Text is the counted property value of a
// uniqueCount meter.
type MeterValue struct {
	Meter *catalog.Meter
	Value money.Qty
	Text  string
}

// MeterValues returns every meter value an event feeds, by the same rules rating uses: a
// measurement feeds the meters of its key (matching their eventType), count meters count the
// event, derived meters evaluate their formula when the event carries one of its measurements.
func MeterValues(cat *catalog.Catalog, ev *usage.Event, out []MeterValue) ([]MeterValue, error) {
	for _, ms := range ev.Measurements {
		for _, m := range cat.MetersFedBy(ms.MetricKey) {
			if m.Expr != nil || (m.EventType != "" && m.EventType != ev.EventType) {
				continue
			}
			switch m.Aggregation {
			case catalog.Count:
				out = append(out, MeterValue{Meter: m, Value: money.QtyInt(1)})
			case catalog.UniqueCount:
				if pv, ok := ev.Get(m.Property); ok {
					out = append(out, MeterValue{Meter: m, Value: money.QtyInt(1), Text: pv})
				}
			default:
				out = append(out, MeterValue{Meter: m, Value: ms.Value})
			}
		}
	}
	for _, m := range cat.Meters {
		if m.EventType != "" && m.EventType != ev.EventType {
			continue
		}
		switch {
		case m.Expr == nil && m.Aggregation == catalog.Count && m.MetricKey == "":
			out = append(out, MeterValue{Meter: m, Value: money.QtyInt(1)})
		case m.Expr == nil && m.Aggregation == catalog.UniqueCount && m.MetricKey == "":
			if pv, ok := ev.Get(m.Property); ok {
				out = append(out, MeterValue{Meter: m, Value: money.QtyInt(1), Text: pv})
			}
		case m.Expr != nil:
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
			}, propsFor(m.Expr, ev))
			if err != nil {
				return out, err
			}
			if v.IsNegative() {
				v = money.Zero
			}
			text := ""
			if m.Aggregation == catalog.UniqueCount {
				text, _ = ev.Get(m.Property)
			}
			out = append(out, MeterValue{Meter: m, Value: money.QtyOf(v), Text: text})
		}
	}
	return out, nil
}

// propsFor returns the event's properties as a map when the formula reads them.
func propsFor(e *catalog.Expression, ev *usage.Event) map[string]string {
	if !e.UsesProperties {
		return nil
	}
	return ev.PropertyMap()
}
