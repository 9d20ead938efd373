package usage

import (
	"bytes"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
)

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"id wins", Event{ID: "evt_1", EventType: "e", CorrelationID: "r"}, "id:evt_1"},
		{"correlation", Event{EventType: "llm.completion", CorrelationID: "req_abc123"}, "corr:14:llm.completionreq_abc123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.ev.Key(); got != tc.want {
				t.Errorf("Key = %q, want %q", got, tc.want)
			}
		})
	}
	// An id key never equals a correlation key, and event types keep correlation ids apart.
	if (&Event{ID: "x"}).Key() == (&Event{EventType: "x"}).Key() {
		t.Error("an id key equals a correlation key")
	}
	e1 := Event{EventType: "e1", CorrelationID: "r"}
	e2 := Event{EventType: "e2", CorrelationID: "r"}
	if e1.Key() == e2.Key() {
		t.Error("the same correlationId under different event types must be different keys")
	}
}

func ev(mut ...func(*Event)) *Event {
	e := &Event{
		ID:             "evt_1",
		EventType:      "llm.completion",
		CustomerID:     "cust_abc",
		CorrelationID:  "req_abc123",
		Timestamp:      time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		TimestampGiven: true,
		Properties: []Property{
			{"model", "claude-sonnet-4-6"},
			{"requestType", "standard"},
		},
		Measurements: []Measurement{
			{"input_tokens", money.QtyInt(1500)},
			{"output_tokens", money.QtyInt(800)},
			{"cache_read_tokens", money.QtyInt(500)},
		},
	}
	for _, m := range mut {
		m(e)
	}
	return e
}

func TestContentHash(t *testing.T) {
	t.Parallel()
	base := ev()
	tests := []struct {
		name  string
		other *Event
		same  bool
	}{
		{"identical", ev(), true},
		{"properties reordered", ev(func(e *Event) {
			e.Properties = []Property{{"requestType", "standard"}, {"model", "claude-sonnet-4-6"}}
		}), true},
		{"measurements reordered", ev(func(e *Event) {
			e.Measurements = []Measurement{{"cache_read_tokens", money.QtyInt(500)}, {"input_tokens", money.QtyInt(1500)}, {"output_tokens", money.QtyInt(800)}}
		}), true},
		{"value held as a decimal", ev(func(e *Event) {
			e.Measurements[0].Value = money.QtyOf(money.MustParse("1.5e3"))
		}), true},
		{"value with trailing zeros", ev(func(e *Event) {
			e.Measurements[0].Value = money.QtyOf(money.MustParse("1500.000"))
		}), true},
		{"same instant in another zone", ev(func(e *Event) {
			e.Timestamp = e.Timestamp.In(time.FixedZone("X", 3600))
		}), true},
		{"value changed", ev(func(e *Event) { e.Measurements[1].Value = money.QtyInt(801) }), false},
		{"fractional value changed", ev(func(e *Event) { e.Measurements[1].Value = qty("800.000001") }), false},
		{"values swapped between metrics", ev(func(e *Event) {
			e.Measurements[0].Value, e.Measurements[1].Value = e.Measurements[1].Value, e.Measurements[0].Value
		}), false},
		{"measurement added", ev(func(e *Event) {
			e.Measurements = append(e.Measurements, Measurement{"reasoning_tokens", money.QtyInt(0)})
		}), false},
		{"measurement removed", ev(func(e *Event) { e.Measurements = e.Measurements[:2] }), false},
		{"property value changed", ev(func(e *Event) { e.Properties[0].Value = "claude-opus-4" }), false},
		{"property added", ev(func(e *Event) { e.Properties = append(e.Properties, Property{"region", "eu"}) }), false},
		{"property key and value swapped", ev(func(e *Event) { e.Properties[1] = Property{"standard", "requestType"} }), false},
		{"property moved into another", ev(func(e *Event) {
			e.Properties = []Property{{"model", "claude-sonnet-4-6requestType"}, {"", "standard"}}
		}), false},
		{"customer changed", ev(func(e *Event) { e.CustomerID = "cust_abd" }), false},
		{"event type changed", ev(func(e *Event) { e.EventType = "llm.embedding" }), false},
		{"correlation changed", ev(func(e *Event) { e.CorrelationID = "req_abc124" }), false},
		{"timestamp changed", ev(func(e *Event) { e.Timestamp = e.Timestamp.Add(time.Nanosecond) }), false},
		{"timestamp dropped", ev(func(e *Event) { e.TimestampGiven = false }), false},
		// 2^64 ns after the base timestamp: both are inside the decoder's 1970..9999 range.
		{"timestamp 2^64 ns later", ev(func(e *Event) {
			e.Timestamp = time.Unix(e.Timestamp.Unix()+18446744073, 709551616).UTC()
		}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := base.ContentHash() == tc.other.ContentHash(); got != tc.same {
				t.Errorf("ContentHash equal = %v, want %v", got, tc.same)
			}
			if got := bytes.Equal(base.Canonical(), tc.other.Canonical()); got != tc.same {
				t.Errorf("Canonical equal = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestContentHashDefaultedTimestamp: a retry of an event without a timestamp is decoded at a
// different receipt time, and must still hash as the same content.
func TestContentHashDefaultedTimestamp(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"eventType":"llm.completion","customerId":"c","correlationId":"r","properties":{"model":"m","n":1},
		"measurements":[{"metricKey":"input_tokens","value":1500},{"metricKey":"output_tokens","value":"800"}]}`)
	reordered := []byte(`{"measurements":[{"value":"800.0","metricKey":"output_tokens"},{"metricKey":"input_tokens","value":1.5e3}],
		"properties":{"n":"1","model":"m"},"correlationId":"r","customerId":"c","eventType":"llm.completion"}`)
	var d Decoder
	var a, b, c Event
	if err := d.DecodeBytes(doc, receipt, &a); err != nil {
		t.Fatal(err)
	}
	if err := d.DecodeBytes(doc, receipt.Add(90*time.Second), &b); err != nil {
		t.Fatal(err)
	}
	if err := d.DecodeBytes(reordered, receipt.Add(time.Hour), &c); err != nil {
		t.Fatal(err)
	}
	if a.Timestamp.Equal(b.Timestamp) {
		t.Fatal("the receipt time was not used as the timestamp")
	}
	if a.ContentHash() != b.ContentHash() || !bytes.Equal(a.Canonical(), b.Canonical()) {
		t.Error("the same event received at different times hashes differently")
	}
	if a.ContentHash() != c.ContentHash() || !bytes.Equal(a.Canonical(), c.Canonical()) {
		t.Error("the same event written differently (order, number forms, number vs string property) hashes differently")
	}
	var changed Event
	if err := d.DecodeBytes(bytes.Replace(doc, []byte("1500"), []byte("1501"), 1), receipt, &changed); err != nil {
		t.Fatal(err)
	}
	if a.ContentHash() == changed.ContentHash() {
		t.Error("a changed value hashes the same")
	}
}
