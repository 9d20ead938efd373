package usage

import (
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// BatchFormat is how a request body carries events.
type BatchFormat int

// Body formats.
const (
	// Native is one event, a JSON array of events, or {"events": [...]}.
	Native BatchFormat = iota
	// CloudEvent is one CloudEvent (application/cloudevents+json).
	CloudEvent
	// CloudEventBatch is a JSON array of CloudEvents (application/cloudevents-batch+json).
	CloudEventBatch
)

// BatchError reports every bad event of a batch by index and field.
type BatchError struct {
	// Body is set when the body as a whole is unreadable (not JSON, wrong shape, too many events).
	Body   string
	Events []IndexedFieldError
}

// IndexedFieldError is a FieldError of the event at Index.
type IndexedFieldError struct {
	Index int
	FieldError
}

func (e *BatchError) Error() string {
	if e.Body != "" {
		return e.Body
	}
	if len(e.Events) == 0 {
		return "invalid batch"
	}
	f := e.Events[0]
	return fmt.Sprintf("event %d: %s (and %d more problems)", f.Index, f.FieldError.Error(), len(e.Events)-1)
}

// DecodeBatch decodes a request body into events, validating all of them: if any is invalid it
// returns a *BatchError naming every bad event by index and field, and no events. maxEvents caps
// the batch.
func (d *Decoder) DecodeBatch(body []byte, format BatchFormat, now time.Time, maxEvents int) ([]Event, error) {
	v, err := d.p.ParseBytes(body)
	if err != nil {
		return nil, &BatchError{Body: "the body is not valid JSON: " + err.Error()}
	}
	var items []*fastjson.Value
	single := false
	switch v.Type() {
	case fastjson.TypeArray:
		items, _ = v.Array()
	case fastjson.TypeObject:
		if format == Native {
			if ev := v.Get("events"); ev != nil {
				arr, err := ev.Array()
				if err != nil {
					return nil, &BatchError{Body: `"events" must be an array of events`}
				}
				items = arr
				break
			}
		}
		items, single = []*fastjson.Value{v}, true
	default:
		return nil, &BatchError{Body: "the body must be an event object, an array of events or {\"events\": [...]}"}
	}
	if single && format == CloudEventBatch {
		return nil, &BatchError{Body: "application/cloudevents-batch+json takes a JSON array of CloudEvents"}
	}
	if len(items) == 0 {
		return nil, &BatchError{Body: "the batch has no events"}
	}
	if len(items) > maxEvents {
		return nil, &BatchError{Body: "the batch has " + strconv.Itoa(len(items)) + " events; at most " + strconv.Itoa(maxEvents) + " are allowed per request"}
	}
	events := make([]Event, len(items))
	var bad []IndexedFieldError
	for i, it := range items {
		var err error
		if format == Native {
			err = d.FromValue(it, now, &events[i])
		} else {
			err = d.fromCloudEvent(it, now, &events[i])
		}
		if ie, ok := err.(*InvalidError); ok {
			for _, f := range ie.Fields {
				bad = append(bad, IndexedFieldError{Index: i, FieldError: f})
			}
		} else if err != nil {
			bad = append(bad, IndexedFieldError{Index: i, FieldError: FieldError{Message: err.Error()}})
		}
	}
	if len(bad) > 0 {
		return nil, &BatchError{Events: bad}
	}
	return events, nil
}

// fromCloudEvent maps a CloudEvent onto the event shape: id → id, type → eventType,
// subject (or data.customerId) → customerId, time → timestamp, and data's properties,
// measurements and correlationId as they are. specversion must be 1.0.
func (d *Decoder) fromCloudEvent(v *fastjson.Value, now time.Time, ev *Event) error {
	if v.Type() != fastjson.TypeObject {
		return &InvalidError{Fields: []FieldError{{Message: "a CloudEvent must be a JSON object"}}}
	}
	var errs []FieldError
	if sv := v.GetStringBytes("specversion"); string(sv) != "1.0" {
		errs = append(errs, FieldError{Field: "specversion", Message: `must be "1.0"`})
	}
	// Build a native event object from the CloudEvent's attributes and data.
	var a fastjson.Arena
	obj := a.NewObject()
	if data := v.Get("data"); data != nil && data.Type() == fastjson.TypeObject {
		o, _ := data.Object()
		o.Visit(func(k []byte, dv *fastjson.Value) { obj.Set(string(k), dv) })
	} else if data != nil && data.Type() != fastjson.TypeNull {
		errs = append(errs, FieldError{Field: "data", Message: "must be an object with measurements (and properties, correlationId)"})
	}
	set := func(from, to string) {
		if fv := v.Get(from); fv != nil {
			obj.Set(to, fv)
		}
	}
	set("id", "id")
	set("type", "eventType")
	set("time", "timestamp")
	if v.Get("subject") != nil {
		set("subject", "customerId")
	}
	if len(errs) > 0 {
		return &InvalidError{Fields: errs}
	}
	err := d.FromValue(obj, now, ev)
	if ie, ok := err.(*InvalidError); ok {
		for i := range ie.Fields {
			switch ie.Fields[i].Field {
			case "eventType":
				ie.Fields[i].Field = "type"
			case "customerId":
				ie.Fields[i].Field = "subject"
			case "timestamp":
				ie.Fields[i].Field = "time"
			case "id":
			default:
				if ie.Fields[i].Field != "" {
					ie.Fields[i].Field = "data." + ie.Fields[i].Field
				}
			}
		}
	}
	return err
}
