package usage

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/levyhq/levy/internal/money"
	"github.com/valyala/fastjson"
)

// FieldError names the field of an event that is invalid and why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// InvalidError lists every problem of one event.
type InvalidError struct {
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Decoder decodes events. It is not safe for concurrent use; it reuses its parser.
type Decoder struct {
	p fastjson.Parser
}

// DecodeBytes parses one JSON event. now is the receipt time used when timestamp is absent.
func (d *Decoder) DecodeBytes(data []byte, now time.Time, ev *Event) error {
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return &InvalidError{Fields: []FieldError{{Field: "", Message: "not valid JSON: " + err.Error()}}}
	}
	return FromValue(v, now, ev)
}

// FromValue reads an event from a parsed JSON value into ev (whose slices it reuses).
func FromValue(v *fastjson.Value, now time.Time, ev *Event) error {
	*ev = Event{Properties: ev.Properties[:0], Measurements: ev.Measurements[:0]}
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	obj, err := v.Object()
	if err != nil {
		return &InvalidError{Fields: []FieldError{{Field: "", Message: "an event must be a JSON object"}}}
	}
	seenMeasurements := false
	obj.Visit(func(key []byte, fv *fastjson.Value) {
		switch string(key) {
		case "id":
			ev.ID = str(fv, "id", bad)
		case "eventType":
			ev.EventType = str(fv, "eventType", bad)
		case "customerId":
			ev.CustomerID = str(fv, "customerId", bad)
		case "correlationId":
			ev.CorrelationID = str(fv, "correlationId", bad)
		case "timestamp":
			if fv.Type() == fastjson.TypeNull {
				return
			}
			b, err := fv.StringBytes()
			if err != nil {
				bad("timestamp", "must be an RFC 3339 time string")
				return
			}
			t, err := time.Parse(time.RFC3339Nano, string(b))
			if err != nil {
				bad("timestamp", "must be an RFC 3339 time such as 2026-11-28T10:00:00Z (got %q)", clip(string(b)))
				return
			}
			if t.Year() < 1970 || t.Year() > 9999 {
				bad("timestamp", "must be between 1970 and 9999")
				return
			}
			ev.Timestamp = t.UTC()
			ev.TimestampGiven = true
		case "properties":
			if fv.Type() == fastjson.TypeNull {
				return
			}
			po, err := fv.Object()
			if err != nil {
				bad("properties", "must be an object of property values")
				return
			}
			if po.Len() > MaxProperties {
				bad("properties", "has %d properties; at most %d are allowed", po.Len(), MaxProperties)
				return
			}
			po.Visit(func(k []byte, pv *fastjson.Value) {
				name := "properties." + string(k)
				if len(k) == 0 || len(k) > MaxStringLen || !utf8.Valid(k) {
					bad(name, "a property name must be 1 to %d characters of UTF-8", MaxStringLen)
					return
				}
				var val string
				switch pv.Type() {
				case fastjson.TypeString:
					b, _ := pv.StringBytes()
					if len(b) > MaxPropertyValue || !utf8.Valid(b) {
						bad(name, "must be at most %d bytes of UTF-8", MaxPropertyValue)
						return
					}
					val = string(b)
				case fastjson.TypeNumber:
					val = string(pv.MarshalTo(nil))
				case fastjson.TypeTrue:
					val = "true"
				case fastjson.TypeFalse:
					val = "false"
				default:
					bad(name, "must be a string, number or boolean")
					return
				}
				for _, p := range ev.Properties {
					if p.Key == string(k) {
						bad(name, "appears twice")
						return
					}
				}
				ev.Properties = append(ev.Properties, Property{Key: string(k), Value: val})
			})
		case "measurements":
			seenMeasurements = true
			arr, err := fv.Array()
			if err != nil {
				bad("measurements", "must be an array of {metricKey, value}")
				return
			}
			if len(arr) > MaxMeasurements {
				bad("measurements", "has %d entries; at most %d are allowed", len(arr), MaxMeasurements)
				return
			}
			for i, mv := range arr {
				readMeasurement(ev, i, mv, bad)
			}
		}
	})
	_ = seenMeasurements
	if ev.EventType == "" {
		bad("eventType", "is required")
	}
	if ev.CustomerID == "" {
		bad("customerId", "is required")
	}
	if ev.ID == "" && ev.CorrelationID == "" && ev.EventType != "" {
		bad("id", "is required when correlationId is absent (one of them is the idempotency key)")
	}
	if !ev.TimestampGiven {
		ev.Timestamp = now.UTC()
	}
	if len(errs) > 0 {
		return &InvalidError{Fields: errs}
	}
	return nil
}

func readMeasurement(ev *Event, i int, mv *fastjson.Value, bad func(string, string, ...any)) {
	field := fmt.Sprintf("measurements[%d]", i)
	mo, err := mv.Object()
	if err != nil {
		bad(field, "must be an object {metricKey, value}")
		return
	}
	var m Measurement
	hasValue := false
	ok := true
	mo.Visit(func(k []byte, f *fastjson.Value) {
		switch string(k) {
		case "metricKey":
			m.MetricKey = str(f, field+".metricKey", bad)
		case "value":
			hasValue = true
			var raw []byte
			switch f.Type() {
			case fastjson.TypeNumber:
				raw = f.MarshalTo(nil)
			case fastjson.TypeString:
				raw, _ = f.StringBytes()
			default:
				bad(field+".value", "must be a number or a decimal string")
				ok = false
				return
			}
			q, err := money.ParseQty(raw)
			switch {
			case errors.Is(err, money.ErrRange):
				bad(field+".value", "is out of range (at most %d digits, %d after the point)", money.MaxDigits, money.MaxScale)
				ok = false
			case err != nil:
				bad(field+".value", "must be a finite decimal number (got %q)", clip(string(raw)))
				ok = false
			case q.Sign() < 0:
				bad(field+".value", "must not be negative (got %s)", clip(string(raw)))
				ok = false
			default:
				m.Value = q
			}
		}
	})
	if m.MetricKey == "" {
		bad(field+".metricKey", "is required")
		return
	}
	if !hasValue {
		bad(field+".value", "is required")
		return
	}
	if !ok {
		return
	}
	for _, o := range ev.Measurements {
		if o.MetricKey == m.MetricKey {
			bad(field+".metricKey", "%q appears twice in one event", m.MetricKey)
			return
		}
	}
	ev.Measurements = append(ev.Measurements, m)
}

func str(v *fastjson.Value, field string, bad func(string, string, ...any)) string {
	if v.Type() == fastjson.TypeNull {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		bad(field, "must be a string")
		return ""
	}
	if len(b) > MaxStringLen || !utf8.Valid(b) {
		bad(field, "must be at most %d bytes of UTF-8", MaxStringLen)
		return ""
	}
	return string(b)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
