package usage

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/levyhq/levy/internal/money"
	"github.com/valyala/fastjson"
)

// AppendJSONString appends s as a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, everything else as it is.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// AppendJSON appends the event in the event shape (DESIGN.md), values as decimal strings.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	field := func(name, v string) {
		if v == "" {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendJSONString(b, name)
		b = append(b, ':')
		b = AppendJSONString(b, v)
	}
	field("id", e.ID)
	field("eventType", e.EventType)
	field("customerId", e.CustomerID)
	field("timestamp", e.Timestamp.UTC().Format(time.RFC3339Nano))
	field("correlationId", e.CorrelationID)
	b = append(b, `,"properties":`...)
	b = e.AppendProperties(b)
	b = append(b, `,"measurements":`...)
	b = e.AppendMeasurements(b)
	return append(b, '}')
}

// AppendProperties appends the properties as a JSON object of strings.
func (e *Event) AppendProperties(b []byte) []byte {
	b = append(b, '{')
	for i, p := range e.Properties {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, p.Key)
		b = append(b, ':')
		b = AppendJSONString(b, p.Value)
	}
	return append(b, '}')
}

// AppendMeasurements appends the measurements as a JSON array of {metricKey, value} with values
// as decimal strings.
func (e *Event) AppendMeasurements(b []byte) []byte {
	b = append(b, '[')
	for i, m := range e.Measurements {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"metricKey":`...)
		b = AppendJSONString(b, m.MetricKey)
		b = append(b, `,"value":"`...)
		if n, ok := m.Value.IsInt64(); ok {
			b = strconv.AppendInt(b, n, 10)
		} else {
			b = append(b, m.Value.Decimal().String()...)
		}
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// DecodeParts rebuilds an event's properties and measurements from the JSON written by
// AppendProperties and AppendMeasurements (as the ledger stores them).
func DecodeParts(props, measurements []byte, ev *Event) error {
	var p fastjson.Parser
	ev.Properties = ev.Properties[:0]
	ev.Measurements = ev.Measurements[:0]
	if len(props) > 0 {
		v, err := p.ParseBytes(props)
		if err != nil {
			return err
		}
		o, err := v.Object()
		if err != nil {
			return err
		}
		o.Visit(func(k []byte, v *fastjson.Value) {
			b, _ := v.StringBytes()
			ev.Properties = append(ev.Properties, Property{Key: string(k), Value: string(b)})
		})
	}
	if len(measurements) > 0 {
		v, err := p.ParseBytes(measurements)
		if err != nil {
			return err
		}
		arr, err := v.Array()
		if err != nil {
			return err
		}
		for _, mv := range arr {
			q, err := money.ParseQty(mv.GetStringBytes("value"))
			if err != nil {
				return err
			}
			ev.Measurements = append(ev.Measurements, Measurement{MetricKey: string(mv.GetStringBytes("metricKey")), Value: q})
		}
	}
	return nil
}
