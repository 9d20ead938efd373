package usage

import (
	"bytes"
	"errors"
	"strconv"
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

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

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

// Decoder decodes events. It is not safe for concurrent use: it reuses its parser and buffers,
// and interns short repeated strings (event types, customer ids, property names and values,
// metric keys) so a stream of similar events allocates little.
type Decoder struct {
	p      fastjson.Parser
	buf    []byte
	errs   []FieldError
	intern map[string]string
	// prev remembers the last event's property names and metric keys by position: a stream of
	// events usually repeats them, and a byte comparison is cheaper than a map lookup.
	prevProps   []string
	prevMetrics []string
	prevType    string
}

// same returns prev[i] when it spells b.
func same(prev []string, i int, b []byte) (string, bool) {
	if i < len(prev) && prev[i] == string(b) {
		return prev[i], true
	}
	return "", false
}

const (
	internMaxLen     = 64
	internMaxEntries = 1 << 14
)

func (d *Decoder) str(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.intern == nil {
		d.intern = make(map[string]string, 256)
	}
	if len(d.intern) < internMaxEntries {
		d.intern[s] = s
	}
	return s
}

// DecodeBytes parses one JSON event into ev. now is the receipt time used when timestamp is
// absent.
func (d *Decoder) DecodeBytes(data []byte, now time.Time, ev *Event) error {
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return &InvalidError{Fields: []FieldError{{Field: "", Message: "not valid JSON: " + err.Error()}}}
	}
	return d.FromValue(v, now, ev)
}

// FromValue reads an event from a parsed JSON value with a fresh Decoder.
func FromValue(v *fastjson.Value, now time.Time, ev *Event) error {
	var d Decoder
	return d.FromValue(v, now, ev)
}

// FromValue reads an event from a parsed JSON value into ev, reusing ev's slices. Unknown
// top-level fields are ignored.
func (d *Decoder) FromValue(v *fastjson.Value, now time.Time, ev *Event) error {
	*ev = Event{Properties: ev.Properties[:0], Measurements: ev.Measurements[:0]}
	d.errs = d.errs[:0]
	obj, err := v.Object()
	if err != nil {
		return &InvalidError{Fields: []FieldError{{Field: "", Message: "an event must be a JSON object"}}}
	}
	if fv := obj.Get("id"); fv != nil {
		ev.ID = d.text(fv, "id", false)
	}
	if fv := obj.Get("eventType"); fv != nil {
		if b, err := fv.StringBytes(); err == nil && d.prevType != "" && string(b) == d.prevType {
			ev.EventType = d.prevType
		} else {
			ev.EventType = d.text(fv, "eventType", true)
			d.prevType = ev.EventType
		}
	}
	if fv := obj.Get("customerId"); fv != nil {
		ev.CustomerID = d.text(fv, "customerId", true)
	}
	if fv := obj.Get("correlationId"); fv != nil {
		ev.CorrelationID = d.text(fv, "correlationId", false)
	}
	if fv := obj.Get("timestamp"); fv != nil && fv.Type() != fastjson.TypeNull {
		d.timestamp(fv, ev)
	}
	if fv := obj.Get("properties"); fv != nil && fv.Type() != fastjson.TypeNull {
		d.properties(fv, ev)
	}
	if fv := obj.Get("measurements"); fv != nil && fv.Type() != fastjson.TypeNull {
		arr, err := fv.Array()
		switch {
		case err != nil:
			d.bad("measurements", "must be an array of {metricKey, value}")
		case len(arr) > MaxMeasurements:
			d.bad("measurements", "has "+strconv.Itoa(len(arr))+" entries; at most "+strconv.Itoa(MaxMeasurements)+" are allowed")
		default:
			for i, mv := range arr {
				d.measurement(ev, i, mv)
			}
		}
	}
	if ev.EventType == "" && !d.has("eventType") {
		d.bad("eventType", "is required")
	}
	if ev.CustomerID == "" && !d.has("customerId") {
		d.bad("customerId", "is required")
	}
	if ev.ID == "" && ev.CorrelationID == "" && !d.has("id") && !d.has("correlationId") {
		d.bad("id", "is required when correlationId is absent (one of them is the idempotency key)")
	}
	if !ev.TimestampGiven {
		ev.Timestamp = now.UTC()
	}
	if len(d.errs) > 0 {
		return &InvalidError{Fields: append([]FieldError(nil), d.errs...)}
	}
	return nil
}

func (d *Decoder) bad(field, msg string) {
	d.errs = append(d.errs, FieldError{Field: field, Message: msg})
}

func (d *Decoder) has(field string) bool {
	for _, e := range d.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func (d *Decoder) text(v *fastjson.Value, field string, intern bool) string {
	if v.Type() == fastjson.TypeNull {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		d.bad(field, "must be a string")
		return ""
	}
	if len(b) > MaxStringLen || !utf8.Valid(b) {
		d.bad(field, "must be at most "+strconv.Itoa(MaxStringLen)+" bytes of UTF-8")
		return ""
	}
	if hasControl(b) {
		d.bad(field, "must not contain control characters")
		return ""
	}
	if intern {
		return d.str(b)
	}
	return string(b)
}

func (d *Decoder) timestamp(v *fastjson.Value, ev *Event) {
	b, err := v.StringBytes()
	if err != nil {
		d.bad("timestamp", "must be an RFC 3339 time string")
		return
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		d.bad("timestamp", "must be an RFC 3339 time such as 2026-11-28T10:00:00Z (got "+strconv.Quote(clip(string(b)))+")")
		return
	}
	t = t.UTC()
	if t.Year() < 1970 || t.Year() > 9999 {
		d.bad("timestamp", "must be between 1970 and 9999")
		return
	}
	ev.Timestamp = t
	ev.TimestampGiven = true
}

func (d *Decoder) properties(v *fastjson.Value, ev *Event) {
	po, err := v.Object()
	if err != nil {
		d.bad("properties", "must be an object of property values")
		return
	}
	if po.Len() > MaxProperties {
		d.bad("properties", "has "+strconv.Itoa(po.Len())+" properties; at most "+strconv.Itoa(MaxProperties)+" are allowed")
		return
	}
	po.Visit(func(k []byte, pv *fastjson.Value) {
		if len(k) == 0 || len(k) > MaxStringLen || !utf8.Valid(k) || hasControl(k) {
			d.bad("properties", "a property name must be 1 to "+strconv.Itoa(MaxStringLen)+" bytes of UTF-8")
			return
		}
		var val string
		switch pv.Type() {
		case fastjson.TypeString:
			b, _ := pv.StringBytes()
			if len(b) > MaxPropertyValue || !utf8.Valid(b) {
				d.bad("properties."+string(k), "must be at most "+strconv.Itoa(MaxPropertyValue)+" bytes of UTF-8")
				return
			}
			if bytes.IndexByte(b, 0) >= 0 {
				d.bad("properties."+string(k), "must not contain NUL characters")
				return
			}
			val = d.str(b)
		case fastjson.TypeNumber:
			d.buf = pv.MarshalTo(d.buf[:0])
			val = d.str(d.buf)
		case fastjson.TypeTrue:
			val = "true"
		case fastjson.TypeFalse:
			val = "false"
		default:
			d.bad("properties."+string(k), "must be a string, number or boolean")
			return
		}
		for _, p := range ev.Properties {
			if p.Key == string(k) {
				d.bad("properties."+string(k), "appears twice")
				return
			}
		}
		i := len(ev.Properties)
		key, ok := same(d.prevProps, i, k)
		if !ok {
			key = d.str(k)
			if i < len(d.prevProps) {
				d.prevProps[i] = key
			} else if i == len(d.prevProps) {
				d.prevProps = append(d.prevProps, key)
			}
		}
		ev.Properties = append(ev.Properties, Property{Key: key, Value: val})
	})
}

func measurementField(i int, sub string) string {
	return "measurements[" + strconv.Itoa(i) + "]" + sub
}

func (d *Decoder) measurement(ev *Event, i int, mv *fastjson.Value) {
	mo, err := mv.Object()
	if err != nil {
		d.bad(measurementField(i, ""), "must be an object {metricKey, value}")
		return
	}
	var m Measurement
	kv := mo.Get("metricKey")
	if kv == nil || kv.Type() == fastjson.TypeNull {
		d.bad(measurementField(i, ".metricKey"), "is required")
		return
	}
	kb, err := kv.StringBytes()
	if err != nil || len(kb) == 0 || len(kb) > MaxStringLen || !utf8.Valid(kb) || hasControl(kb) {
		d.bad(measurementField(i, ".metricKey"), "must be a non-empty string of at most "+strconv.Itoa(MaxStringLen)+" bytes, without control characters")
		return
	}
	if key, ok := same(d.prevMetrics, i, kb); ok {
		m.MetricKey = key
	} else {
		m.MetricKey = d.str(kb)
		if i < len(d.prevMetrics) {
			d.prevMetrics[i] = m.MetricKey
		} else if i == len(d.prevMetrics) {
			d.prevMetrics = append(d.prevMetrics, m.MetricKey)
		}
	}
	vv := mo.Get("value")
	if vv == nil {
		d.bad(measurementField(i, ".value"), "is required")
		return
	}
	var raw []byte
	switch vv.Type() {
	case fastjson.TypeNumber:
		d.buf = vv.MarshalTo(d.buf[:0])
		raw = d.buf
	case fastjson.TypeString:
		raw, _ = vv.StringBytes()
	default:
		d.bad(measurementField(i, ".value"), "must be a number or a decimal string")
		return
	}
	q, err := money.ParseQty(raw)
	switch {
	case errors.Is(err, money.ErrRange):
		d.bad(measurementField(i, ".value"), "is out of range (at most "+strconv.Itoa(money.MaxDigits)+" digits, "+strconv.Itoa(money.MaxScale)+" after the point)")
		return
	case err != nil:
		d.bad(measurementField(i, ".value"), "must be a finite decimal number (got "+strconv.Quote(clip(string(raw)))+")")
		return
	case q.Sign() < 0:
		d.bad(measurementField(i, ".value"), "must not be negative (got "+clip(string(raw))+")")
		return
	}
	m.Value = q
	for _, o := range ev.Measurements {
		if o.MetricKey == m.MetricKey {
			d.bad(measurementField(i, ".metricKey"), strconv.Quote(m.MetricKey)+" appears twice in one event")
			return
		}
	}
	ev.Measurements = append(ev.Measurements, m)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// hasControl reports whether b holds an ASCII control character (NUL included). Identifiers,
// property names and metric keys may not: they are keys in the ledger and in URLs.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
