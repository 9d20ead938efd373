// Package usage defines the usage event, Levy's one input: a compound record of an API call or
// an agent run carrying every measured quantity at once, and its JSON decoding.
//
// Behaviour at the edges:
//   - eventType and customerId are required; timestamp defaults to the receipt time given to the
//     decoder; measurement values are JSON numbers or decimal strings, finite and ≥ 0, read
//     exactly (never through float64) within money.Parse's limits.
//   - The idempotency key is id when present, else (eventType, correlationId); an event with
//     neither is invalid.
//   - Two events with the same key are the same event when their content agrees: eventType,
//     customerId, correlationId, properties and measurements (by value, in any order), and the
//     timestamp when the sender gave one. A defaulted timestamp is not content, so a retry of an
//     event without a timestamp is still a duplicate.
//   - Property values are text: strings as they are, numbers as written, booleans as
//     true/false. Objects, arrays and null are invalid. A metricKey may appear once per event.
package usage

import (
	"encoding/binary"
	"hash/maphash"
	"sort"
	"strconv"
	"time"

	"github.com/levyhq/levy/internal/money"
)

// Limits on one event, so a hostile sender cannot make an event unbounded.
const (
	MaxStringLen     = 256
	MaxProperties    = 64
	MaxMeasurements  = 64
	MaxPropertyValue = 1024
)

// Event is one usage event.
type Event struct {
	ID            string
	EventType     string
	CustomerID    string
	CorrelationID string
	Timestamp     time.Time
	// TimestampGiven is false when Timestamp was defaulted to the receipt time.
	TimestampGiven bool
	Properties     []Property
	Measurements   []Measurement
}

// Property is one event property as text.
type Property struct {
	Key   string
	Value string
}

// Measurement is one measured quantity of an event.
type Measurement struct {
	MetricKey string
	Value     money.Qty
}

// Get returns a property's text; it makes Event satisfy catalog.Props.
func (e *Event) Get(name string) (string, bool) {
	for i := range e.Properties {
		if e.Properties[i].Key == name {
			return e.Properties[i].Value, true
		}
	}
	return "", false
}

// Value returns a measurement's value.
func (e *Event) Value(metricKey string) (money.Qty, bool) {
	for i := range e.Measurements {
		if e.Measurements[i].MetricKey == metricKey {
			return e.Measurements[i].Value, true
		}
	}
	return money.Qty{}, false
}

// PropertyMap returns the properties as a map.
func (e *Event) PropertyMap() map[string]string {
	m := make(map[string]string, len(e.Properties))
	for _, p := range e.Properties {
		m[p.Key] = p.Value
	}
	return m
}

// Key returns the idempotency key: "id:<id>", or "corr:<len(eventType)>:<eventType><correlationId>"
// (length-prefixed, so no two pairs share a key).
func (e *Event) Key() string {
	if e.ID != "" {
		return "id:" + e.ID
	}
	return "corr:" + strconv.Itoa(len(e.EventType)) + ":" + e.EventType + e.CorrelationID
}

var hashSeed = maphash.MakeSeed()

// ContentHash hashes the event's content as defined in the package doc, for duplicate and
// conflict detection within one process. Properties and measurements are hashed one by one and
// combined by addition, so their order does not matter and nothing is sorted.
func (e *Event) ContentHash() uint64 {
	h := mix(maphash.String(hashSeed, e.ID), 1)
	h = mix(h, maphash.String(hashSeed, e.EventType))
	h = mix(h, maphash.String(hashSeed, e.CustomerID))
	h = mix(h, maphash.String(hashSeed, e.CorrelationID))
	if e.TimestampGiven {
		h = mix(mix(h, uint64(e.Timestamp.Unix())), uint64(e.Timestamp.Nanosecond()))
	}
	var sum uint64
	for _, p := range e.Properties {
		sum += mix(mix(maphash.String(hashSeed, p.Key), 'p'), maphash.String(hashSeed, p.Value))
	}
	for _, m := range e.Measurements {
		var v uint64
		if n, ok := m.Value.IsInt64(); ok {
			v = mix(uint64(n), 'i')
		} else {
			v = maphash.String(hashSeed, m.Value.Decimal().String())
		}
		sum += mix(mix(maphash.String(hashSeed, m.MetricKey), 'm'), v)
	}
	return mix(h, sum)
}

// mix combines two 64-bit values (a multiply-xorshift finaliser).
func mix(a, b uint64) uint64 {
	x := a ^ (b + 0x9e3779b97f4a7c15 + (a << 6) + (a >> 2))
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Canonical returns the event's content in a stable binary form, for storing and comparing
// across processes.
func (e *Event) Canonical() []byte {
	var b byteWriter
	e.writeContent(&b)
	return b
}

type stringWriter interface {
	WriteString(string) (int, error)
	WriteByte(byte) error
}

// KeyHash hashes the idempotency key without building it.
func (e *Event) KeyHash() uint64 {
	if e.ID != "" {
		return mix(maphash.String(hashSeed, e.ID), 'i')
	}
	return mix(mix(maphash.String(hashSeed, e.EventType), 'c'), maphash.String(hashSeed, e.CorrelationID))
}

type byteWriter []byte

func (b *byteWriter) WriteString(s string) (int, error) { *b = append(*b, s...); return len(s), nil }
func (b *byteWriter) WriteByte(c byte) error            { *b = append(*b, c); return nil }

func (e *Event) writeContent(w stringWriter) {
	str := func(s string) {
		var n [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(n[:], uint64(len(s)))
		w.WriteString(string(n[:k]))
		w.WriteString(s)
	}
	w.WriteByte(0)
	str(e.ID)
	str(e.EventType)
	str(e.CustomerID)
	str(e.CorrelationID)
	if e.TimestampGiven {
		str(e.Timestamp.UTC().Format(time.RFC3339Nano))
	} else {
		str("")
	}
	props := append([]Property(nil), e.Properties...)
	sort.Slice(props, func(i, j int) bool { return props[i].Key < props[j].Key })
	w.WriteByte(byte(len(props)))
	for _, p := range props {
		str(p.Key)
		str(p.Value)
	}
	ms := append([]Measurement(nil), e.Measurements...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].MetricKey < ms[j].MetricKey })
	w.WriteByte(byte(len(ms)))
	for _, m := range ms {
		str(m.MetricKey)
		str(m.Value.Decimal().String())
	}
}
