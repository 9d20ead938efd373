package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
)

// designEvent is the event of DESIGN.md, verbatim.
const designEvent = `{
  "id": "evt_01J…",                      
  "eventType": "llm.completion",
  "customerId": "cust_abc",
  "timestamp": "2026-11-28T10:00:00Z",
  "properties": {"model": "claude-sonnet-4-6", "requestType": "standard"},
  "measurements": [
    {"metricKey": "input_tokens", "value": 1500},
    {"metricKey": "output_tokens", "value": 800},
    {"metricKey": "cache_read_tokens", "value": 500}
  ],
  "correlationId": "req_abc123"
}`

var receipt = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func decode(t *testing.T, s string) *Event {
	t.Helper()
	var d Decoder
	ev := &Event{}
	if err := d.DecodeBytes([]byte(s), receipt, ev); err != nil {
		t.Fatalf("DecodeBytes(%s): %v", s, err)
	}
	return ev
}

func qty(s string) money.Qty { return money.QtyOf(money.MustParse(s)) }

func TestDecodeDesignEvent(t *testing.T) {
	t.Parallel()
	ev := decode(t, designEvent)
	if ev.ID != "evt_01J…" || ev.EventType != "llm.completion" || ev.CustomerID != "cust_abc" || ev.CorrelationID != "req_abc123" {
		t.Errorf("ids = %q %q %q %q", ev.ID, ev.EventType, ev.CustomerID, ev.CorrelationID)
	}
	if !ev.TimestampGiven || !ev.Timestamp.Equal(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("timestamp = %v (given %v)", ev.Timestamp, ev.TimestampGiven)
	}
	if v, ok := ev.Get("model"); !ok || v != "claude-sonnet-4-6" {
		t.Errorf("model = %q, %v", v, ok)
	}
	if v, ok := ev.Get("requestType"); !ok || v != "standard" {
		t.Errorf("requestType = %q, %v", v, ok)
	}
	if v, ok := ev.Get("region"); ok || v != "" {
		t.Errorf("absent property = %q, %v", v, ok)
	}
	if len(ev.Properties) != 2 {
		t.Errorf("properties = %v", ev.Properties)
	}
	want := map[string]int64{"input_tokens": 1500, "output_tokens": 800, "cache_read_tokens": 500}
	if len(ev.Measurements) != len(want) {
		t.Fatalf("measurements = %v", ev.Measurements)
	}
	for k, w := range want {
		q, ok := ev.Value(k)
		if n, isInt := q.IsInt64(); !ok || !isInt || n != w {
			t.Errorf("%s = %v (%v)", k, q, ok)
		}
	}
	if _, ok := ev.Value("reasoning_tokens"); ok {
		t.Error("absent measurement reported present")
	}
	if got := ev.PropertyMap(); len(got) != 2 || got["model"] != "claude-sonnet-4-6" {
		t.Errorf("PropertyMap = %v", got)
	}
	if ev.Key() != "id:evt_01J…" {
		t.Errorf("Key = %q", ev.Key())
	}
}

func TestDecodeValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string // JSON text of the value
		want  string
	}{
		{"integer", `1500`, "1500"},
		{"zero", `0`, "0"},
		{"decimal string", `"1500"`, "1500"},
		{"fraction", `0.5`, "0.5"},
		{"fraction string", `"10000000.5"`, "10000000.5"},
		{"exponent", `1.5e3`, "1500"},
		{"exponent string", `"2E-3"`, "0.002"},
		{"exact beyond float64", `9007199254740993`, "9007199254740993"},
		{"beyond int64", `123456789012345678901234567890`, "123456789012345678901234567890"},
		{"tiny", `"0.000000000000000000000000000001"`, "0.000000000000000000000000000001"},
		{"float64-inexact decimal", `0.30000000000000001`, "0.30000000000000001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := decode(t, `{"eventType":"e","customerId":"c","id":"1","measurements":[{"metricKey":"m","value":`+tc.value+`}]}`)
			q, ok := ev.Value("m")
			if !ok || !q.Decimal().Equal(money.MustParse(tc.want)) {
				t.Errorf("value %s = %v, want %s", tc.value, q, tc.want)
			}
		})
	}
}

func TestDecodeProperties(t *testing.T) {
	t.Parallel()
	ev := decode(t, `{"eventType":"e","customerId":"c","correlationId":"r",
		"properties":{"s":"text","n":1.50,"i":-3,"e":1e3,"t":true,"f":false,"u":"ünï","empty":""}}`)
	want := map[string]string{"s": "text", "n": "1.50", "i": "-3", "e": "1e3", "t": "true", "f": "false", "u": "ünï", "empty": ""}
	for k, w := range want {
		if v, ok := ev.Get(k); !ok || v != w {
			t.Errorf("property %s = %q (%v), want %q", k, v, ok, w)
		}
	}
	if len(ev.Properties) != len(want) {
		t.Errorf("got %d properties, want %d", len(ev.Properties), len(want))
	}
	// null timestamp and properties are treated as absent; measurements may be absent.
	ev = decode(t, `{"eventType":"e","customerId":"c","correlationId":"r","timestamp":null,"properties":null}`)
	if ev.TimestampGiven || len(ev.Properties) != 0 || len(ev.Measurements) != 0 {
		t.Errorf("event = %+v", ev)
	}
}

func TestDecodeTimestamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		json  string // the timestamp member, or "" for none
		want  time.Time
		given bool
	}{
		{"absent defaults to receipt", ``, receipt, false},
		{"null defaults to receipt", `,"timestamp":null`, receipt, false},
		{"UTC", `,"timestamp":"2026-11-28T10:00:00Z"`, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), true},
		{"offset normalised to UTC", `,"timestamp":"2026-11-28T11:30:00+01:30"`, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), true},
		{"nanoseconds", `,"timestamp":"2026-11-28T10:00:00.123456789Z"`, time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var d Decoder
			var ev Event
			// The receipt time is given in another zone: the default is still UTC.
			now := receipt.In(time.FixedZone("X", -7*3600))
			if err := d.DecodeBytes([]byte(`{"eventType":"e","customerId":"c","id":"1"`+tc.json+`}`), now, &ev); err != nil {
				t.Fatal(err)
			}
			if !ev.Timestamp.Equal(tc.want) || ev.TimestampGiven != tc.given {
				t.Errorf("timestamp = %v given %v, want %v given %v", ev.Timestamp, ev.TimestampGiven, tc.want, tc.given)
			}
			if ev.Timestamp.Location() != time.UTC {
				t.Errorf("timestamp location = %v, want UTC", ev.Timestamp.Location())
			}
		})
	}
}

func fieldsOf(err error) []FieldError {
	var ie *InvalidError
	if !errors.As(err, &ie) {
		return nil
	}
	return ie.Fields
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	const ok = `"eventType":"e","customerId":"c","id":"1"`
	meas := func(s string) string { return `{` + ok + `,"measurements":[` + s + `]}` }
	long := strings.Repeat("x", MaxStringLen+1)
	var many []string
	for i := 0; i <= MaxMeasurements; i++ {
		many = append(many, fmt.Sprintf(`{"metricKey":"m%d","value":1}`, i))
	}
	var manyProps []string
	for i := 0; i <= MaxProperties; i++ {
		manyProps = append(manyProps, fmt.Sprintf(`"p%d":"v"`, i))
	}
	tests := []struct {
		name  string
		json  string
		field string
		msg   string
	}{
		{"not JSON", `{"eventType":`, "", "not valid JSON"},
		{"array instead of object", `[` + `{` + ok + `}]`, "", "must be a JSON object"},
		{"string instead of object", `"event"`, "", "must be a JSON object"},
		{"missing eventType", `{"customerId":"c","id":"1"}`, "eventType", "is required"},
		{"empty eventType", `{"eventType":"","customerId":"c","id":"1"}`, "eventType", "is required"},
		{"null eventType", `{"eventType":null,"customerId":"c","id":"1"}`, "eventType", "is required"},
		{"eventType a number", `{"eventType":5,"customerId":"c","id":"1"}`, "eventType", "must be a string"},
		{"eventType too long", `{"eventType":"` + long + `","customerId":"c","id":"1"}`, "eventType", "at most 256 bytes"},
		{"missing customerId", `{"eventType":"e","id":"1"}`, "customerId", "is required"},
		{"customerId a bool", `{"eventType":"e","customerId":true,"id":"1"}`, "customerId", "must be a string"},
		{"customerId an object", `{"eventType":"e","customerId":{"id":"c"},"id":"1"}`, "customerId", "must be a string"},
		{"neither id nor correlationId", `{"eventType":"e","customerId":"c"}`, "id", "is required when correlationId is absent"},
		{"empty id and correlationId", `{"eventType":"e","customerId":"c","id":"","correlationId":""}`, "id", "is required"},
		{"id a number", `{"eventType":"e","customerId":"c","id":1}`, "id", "must be a string"},
		{"correlationId a number", `{"eventType":"e","customerId":"c","correlationId":7}`, "correlationId", "must be a string"},
		{"bad timestamp", `{` + ok + `,"timestamp":"28/11/2026 10:00"}`, "timestamp", "RFC 3339"},
		{"timestamp without zone", `{` + ok + `,"timestamp":"2026-11-28T10:00:00"}`, "timestamp", "RFC 3339"},
		{"timestamp as a number", `{` + ok + `,"timestamp":1764324000}`, "timestamp", "must be an RFC 3339 time"},
		{"timestamp before 1970", `{` + ok + `,"timestamp":"1969-12-31T23:59:59Z"}`, "timestamp", "between 1970 and 9999"},
		{"properties an array", `{` + ok + `,"properties":["model"]}`, "properties", "must be an object"},
		{"properties a string", `{` + ok + `,"properties":"model=x"}`, "properties", "must be an object"},
		{"object property value", `{` + ok + `,"properties":{"model":{"name":"x"}}}`, "properties.model", "must be a string, number or boolean"},
		{"array property value", `{` + ok + `,"properties":{"model":["x"]}}`, "properties.model", "must be a string, number or boolean"},
		{"null property value", `{` + ok + `,"properties":{"model":null}}`, "properties.model", "must be a string, number or boolean"},
		{"duplicate property", `{` + ok + `,"properties":{"model":"a","model":"b"}}`, "properties.model", "appears twice"},
		{"too many properties", `{` + ok + `,"properties":{` + strings.Join(manyProps, ",") + `}}`, "properties", "at most 64"},
		{"property value too long", `{` + ok + `,"properties":{"p":"` + strings.Repeat("x", MaxPropertyValue+1) + `"}}`, "properties.p", "at most 1024 bytes"},
		{"measurements an object", `{` + ok + `,"measurements":{"metricKey":"m","value":1}}`, "measurements", "must be an array"},
		{"too many measurements", meas(strings.Join(many, ",")), "measurements", "at most 64"},
		{"measurement not an object", meas(`1500`), "measurements[0]", "must be an object"},
		{"missing metricKey", meas(`{"value":1}`), "measurements[0].metricKey", "is required"},
		{"metricKey a number", meas(`{"metricKey":1,"value":1}`), "measurements[0].metricKey", ""},
		{"missing value", meas(`{"metricKey":"m"}`), "measurements[0].value", "is required"},
		{"negative value", meas(`{"metricKey":"m","value":-1}`), "measurements[0].value", "must not be negative"},
		{"negative string value", meas(`{"metricKey":"m","value":"-0.5"}`), "measurements[0].value", "must not be negative"},
		{"NaN string", meas(`{"metricKey":"m","value":"NaN"}`), "measurements[0].value", "must be a finite decimal number"},
		{"bare NaN", meas(`{"metricKey":"m","value":NaN}`), "measurements[0].value", ""},
		{"Infinity string", meas(`{"metricKey":"m","value":"Infinity"}`), "measurements[0].value", "must be a finite decimal number"},
		{"empty string value", meas(`{"metricKey":"m","value":""}`), "measurements[0].value", "must be a finite decimal number"},
		{"padded string value", meas(`{"metricKey":"m","value":" 1"}`), "measurements[0].value", "must be a finite decimal number"},
		{"plus sign", meas(`{"metricKey":"m","value":"+1"}`), "measurements[0].value", "must be a finite decimal number"},
		{"hex string", meas(`{"metricKey":"m","value":"0x10"}`), "measurements[0].value", "must be a finite decimal number"},
		{"huge exponent", meas(`{"metricKey":"m","value":1e999999}`), "measurements[0].value", "out of range"},
		{"huge exponent string", meas(`{"metricKey":"m","value":"1e999999999"}`), "measurements[0].value", "out of range"},
		{"too many digits", meas(`{"metricKey":"m","value":"0.` + strings.Repeat("1", 41) + `"}`), "measurements[0].value", "out of range"},
		{"bool value", meas(`{"metricKey":"m","value":true}`), "measurements[0].value", "must be a number or a decimal string"},
		{"object value", meas(`{"metricKey":"m","value":{"n":1}}`), "measurements[0].value", "must be a number or a decimal string"},
		{"null value", meas(`{"metricKey":"m","value":null}`), "measurements[0].value", ""},
		{"duplicate metricKey", meas(`{"metricKey":"m","value":1},{"metricKey":"m","value":2}`), "measurements[1].metricKey", `"m" appears twice`},
		{"second measurement bad", meas(`{"metricKey":"a","value":1},{"metricKey":"b","value":"x"}`), "measurements[1].value", "must be a finite decimal number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var d Decoder
			var ev Event
			err := d.DecodeBytes([]byte(tc.json), receipt, &ev)
			if err == nil {
				t.Fatalf("accepted: %+v", ev)
			}
			fs := fieldsOf(err)
			if fs == nil {
				t.Fatalf("error %T %v is not an *InvalidError", err, err)
			}
			for _, f := range fs {
				if f.Field == tc.field && strings.Contains(f.Message, tc.msg) {
					if !strings.HasPrefix(err.Error(), "invalid event: ") {
						t.Errorf("error text %q", err)
					}
					if tc.field != "" && !strings.Contains(err.Error(), tc.field+": ") {
						t.Errorf("error text %q does not name the field %q", err, tc.field)
					}
					return
				}
			}
			t.Errorf("no error on field %q containing %q; got %v", tc.field, tc.msg, fs)
		})
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	t.Parallel()
	var d Decoder
	var ev Event
	err := d.DecodeBytes([]byte(`{"customerId":5,"timestamp":"yesterday","properties":{"a":[1]},
		"measurements":[{"metricKey":"m","value":-1},{"metricKey":"n","value":"NaN"}]}`), receipt, &ev)
	var fields []string
	for _, f := range fieldsOf(err) {
		fields = append(fields, f.Field)
	}
	for _, want := range []string{"eventType", "customerId", "timestamp", "properties.a", "measurements[0].value", "measurements[1].value"} {
		if !slices.Contains(fields, want) {
			t.Errorf("no error on %s; got %v", want, fields)
		}
	}
}

// TestDecodeTimestampBoundsAreUTC: an event's timestamp is stored in UTC, so the 1970..9999
// bound must hold in UTC. A local-time year inside the bounds whose UTC instant is outside is
// accepted today: "1970-01-01T00:00:00+01:00" is stored as 1969-12-31T23:00:00Z, and
// "9999-12-31T23:00:00-05:00" as year 10000, which RFC 3339 cannot even print.
func TestDecodeTimestampBoundsAreUTC(t *testing.T) {
	t.Parallel()
	for _, ts := range []string{"1970-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"} {
		t.Run(ts, func(t *testing.T) {
			t.Parallel()
			var d Decoder
			var ev Event
			err := d.DecodeBytes([]byte(`{"eventType":"e","customerId":"c","id":"1","timestamp":"`+ts+`"}`), receipt, &ev)
			if err == nil {
				t.Errorf("accepted %s as %v (UTC year %d, outside 1970..9999)", ts, ev.Timestamp, ev.Timestamp.UTC().Year())
			}
		})
	}
	// The bounds themselves, in UTC, are fine.
	for _, ts := range []string{"1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1970-01-01T01:00:00+01:00"} {
		decode(t, `{"eventType":"e","customerId":"c","id":"1","timestamp":"`+ts+`"}`)
	}
}

// TestDecoderReuse decodes a stream of varied events with one Decoder and checks that each
// matches a decode with a fresh Decoder (the decoder reuses buffers and interns strings).
func TestDecoderReuse(t *testing.T) {
	t.Parallel()
	docs := []string{
		designEvent,
		`{"eventType":"llm.completion","customerId":"cust_abc","correlationId":"r2","properties":{"model":"claude-haiku-4-5","requestType":"batch"},"measurements":[{"metricKey":"output_tokens","value":"7"},{"metricKey":"input_tokens","value":1}]}`,
		`{"eventType":"bad"}`,
		`{"eventType":"llm.completion","customerId":"cust_xyz","correlationId":"r3","properties":{"requestType":"standard","model":"claude-sonnet-4-6"},"measurements":[{"metricKey":"input_tokens","value":2.5}]}`,
		`{"eventType":"agent.run.completed","customerId":"cust_abc","id":"run_1","properties":{"n":12}}`,
		`{"eventType":"llm.completion","customerId":"cust_abc","correlationId":"r4","properties":{"model":"claude-sonnet-4-6","n":13},"measurements":[{"metricKey":"input_tokens","value":9},{"metricKey":"cache_read_tokens","value":3}]}`,
	}
	var shared Decoder
	ev := &Event{}
	for i := 0; i < 3; i++ {
		for j, doc := range docs {
			errShared := shared.DecodeBytes([]byte(doc), receipt, ev)
			var fresh Decoder
			want := &Event{}
			errFresh := fresh.DecodeBytes([]byte(doc), receipt, want)
			if (errShared == nil) != (errFresh == nil) {
				t.Fatalf("doc %d: shared decoder error %v, fresh %v", j, errShared, errFresh)
			}
			if errShared != nil {
				if errShared.Error() != errFresh.Error() {
					t.Fatalf("doc %d: errors differ: %v vs %v", j, errShared, errFresh)
				}
				continue
			}
			if !sameEvent(ev, want) {
				t.Fatalf("doc %d, pass %d: reused decoder gave %+v, fresh %+v", j, i, *ev, *want)
			}
		}
	}
}

func sameEvent(a, b *Event) bool {
	if a.ID != b.ID || a.EventType != b.EventType || a.CustomerID != b.CustomerID || a.CorrelationID != b.CorrelationID ||
		!a.Timestamp.Equal(b.Timestamp) || a.TimestampGiven != b.TimestampGiven ||
		len(a.Properties) != len(b.Properties) || len(a.Measurements) != len(b.Measurements) {
		return false
	}
	for i := range a.Properties {
		if a.Properties[i] != b.Properties[i] {
			return false
		}
	}
	for i := range a.Measurements {
		if a.Measurements[i].MetricKey != b.Measurements[i].MetricKey || a.Measurements[i].Value.Cmp(b.Measurements[i].Value) != 0 {
			return false
		}
	}
	return true
}

// encodeEvent writes an event back as JSON in the event shape: a test-only encoder.
func encodeEvent(ev *Event) []byte {
	var b bytes.Buffer
	str := func(s string) {
		j, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		b.Write(j)
	}
	b.WriteString(`{"eventType":`)
	str(ev.EventType)
	b.WriteString(`,"customerId":`)
	str(ev.CustomerID)
	if ev.ID != "" {
		b.WriteString(`,"id":`)
		str(ev.ID)
	}
	if ev.CorrelationID != "" {
		b.WriteString(`,"correlationId":`)
		str(ev.CorrelationID)
	}
	if ev.TimestampGiven {
		b.WriteString(`,"timestamp":`)
		str(ev.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	if len(ev.Properties) > 0 {
		b.WriteString(`,"properties":{`)
		for i, p := range ev.Properties {
			if i > 0 {
				b.WriteByte(',')
			}
			str(p.Key)
			b.WriteByte(':')
			str(p.Value)
		}
		b.WriteByte('}')
	}
	if len(ev.Measurements) > 0 {
		b.WriteString(`,"measurements":[`)
		for i, m := range ev.Measurements {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"metricKey":`)
			str(m.MetricKey)
			b.WriteString(`,"value":`)
			if i%2 == 0 {
				b.WriteString(m.Value.String()) // a bare JSON number
			} else {
				str(m.Value.String()) // a decimal string
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes()
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	ev := decode(t, designEvent)
	back := decode(t, string(encodeEvent(ev)))
	if !sameEvent(ev, back) || ev.ContentHash() != back.ContentHash() {
		t.Errorf("round trip changed the event: %+v vs %+v", ev, back)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(designEvent))
	f.Add([]byte(`{"eventType":"e","customerId":"c","correlationId":"r","measurements":[{"metricKey":"m","value":"1.50"}]}`))
	f.Add([]byte(`{"eventType":"e","customerId":"c","id":"x","properties":{"n":1e3,"b":true,"s":"\u00e9\n"},"timestamp":"2026-01-01T00:00:00.5+02:00"}`))
	f.Add([]byte(`{"eventType":"e","customerId":"c","id":"x","measurements":[{"metricKey":"a","value":1e999999}]}`))
	f.Add([]byte(`{"eventType":"e","customerId":"c","id":"x","measurements":[{"metricKey":"a","value":0.000000000000000000000000000001},{"metricKey":"b","value":"123456789012345678901234567890"}]}`))
	f.Add([]byte(`{"eventType":"e","customerId":"c","id":"x","properties":{"a":"1","a":"2"}}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`{"eventType":"e","customerId":"c","id":"x","properties":{"k":-0.0e-0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		var ev Event
		if err := d.DecodeBytes(data, receipt, &ev); err != nil {
			if fieldsOf(err) == nil {
				t.Fatalf("error %T %v is not an *InvalidError", err, err)
			}
			return
		}
		if ev.EventType == "" || ev.CustomerID == "" || (ev.ID == "" && ev.CorrelationID == "") {
			t.Fatalf("accepted an event without its required fields: %+v", ev)
		}
		for _, m := range ev.Measurements {
			if m.Value.Sign() < 0 {
				t.Fatalf("accepted a negative value: %+v", ev)
			}
		}
		enc := encodeEvent(&ev)
		var d2 Decoder
		var back Event
		if err := d2.DecodeBytes(enc, receipt.Add(time.Hour), &back); err != nil {
			t.Fatalf("re-encoded event %s does not decode: %v", enc, err)
		}
		if ev.ContentHash() != back.ContentHash() {
			t.Fatalf("content hash changed over a round trip:\n%s\n%s", data, enc)
		}
		if !bytes.Equal(ev.Canonical(), back.Canonical()) {
			t.Fatalf("canonical form changed over a round trip:\n%s\n%s", data, enc)
		}
		if ev.Key() != back.Key() {
			t.Fatalf("key changed: %q vs %q", ev.Key(), back.Key())
		}
	})
}
