package provider

import (
	"bytes"
	"errors"

	"github.com/valyala/fastjson"
)

// MaxEventBytes is the largest SSE event a StreamTap buffers to read. A larger event (a
// Responses terminal event carrying megabytes of generated images, say) is forwarded unchanged
// but not read, and the Write that meets it reports ErrEventTooLarge.
const MaxEventBytes = 64 << 20

// ErrEventTooLarge reports an SSE event larger than MaxEventBytes: it was forwarded, not read.
var ErrEventTooLarge = errors.New("SSE event larger than MaxEventBytes: forwarded without reading its usage")

// StreamTap watches an SSE response stream on its way to the client: it reads the usage the
// provider reports and returns the bytes to forward. Feed it the upstream bytes exactly as read
// with Write, call Flush at EOF, and read Usage at any time. A StreamTap is not safe for
// concurrent use.
type StreamTap struct {
	api      API
	drop     bool
	maxEvent int

	// Framing state, carried from one Write to the next.
	atLineStart  bool // no byte of the current line seen yet
	crPending    bool // the last byte was a CR ending a line: an LF next belongs to that ending
	crEndedEvent bool // that line ending also ended an event...
	crDropped    bool // ...which was dropped
	started      bool // an event was dispatched (a BOM can only precede the first)
	oversize     bool // the current event outgrew maxEvent: forwarded, not buffered, not read
	pending      []byte
	out          []byte
	data         []byte
	err          error

	// What is known so far.
	id, model string
	oa        openAICounts
	an        anthropicCounts
	haveUsage bool
	complete  bool
}

// NewStreamTap returns a tap for a streaming response of api. dropUsageChunk (OpenAI chat only;
// ignored for the other APIs) removes from the client stream the usage chunk the gateway asked
// for with EnsureStreamUsage: the event whose "choices" is an empty array and whose "usage" is
// set. Every other event, including the "usage": null keys on content chunks, is forwarded as it
// came. An API the tap does not track (GeminiGenerateContent, an invalid value) is passed
// through with no usage.
func NewStreamTap(api API, dropUsageChunk bool) *StreamTap {
	return &StreamTap{
		api:         api,
		drop:        dropUsageChunk && api == OpenAIChat,
		maxEvent:    MaxEventBytes,
		atLineStart: true,
	}
}

// Write processes the next upstream bytes and returns the bytes to forward to the client now.
// Without dropUsageChunk it returns p itself: every byte is forwarded at once and the tap only
// reads a copy of any event that spans writes. With dropUsageChunk it returns the complete events
// of p (and of earlier writes) except the usage chunk, and holds back a trailing incomplete event
// until its blank line arrives; the returned slice is the tap's own buffer, valid until the next
// Write or Flush.
//
// The result is always to be forwarded, even when err is not nil: err reports a metering problem
// met in these bytes (an event whose usage could not be read, *FieldError; an event over
// MaxEventBytes, ErrEventTooLarge), never a reason to cut the client's stream.
func (t *StreamTap) Write(p []byte) ([]byte, error) {
	t.err = nil
	t.out = t.out[:0]
	i, start := 0, 0
	if t.crPending && len(p) > 0 {
		t.crPending = false
		if p[0] == '\n' {
			i = 1
			if t.crEndedEvent {
				// The LF completes the line ending of an event already handled: it goes
				// wherever that event went.
				start = 1
				if t.drop && !t.crDropped {
					t.out = append(t.out, '\n')
				}
			}
		}
	}
	eol := eolFinder{b: p, lf: -1}
	for i < len(p) {
		e := eol.next(i)
		if e < 0 {
			t.atLineStart = false
			break
		}
		blank := t.atLineStart && e == i
		next := e + 1
		cr := false
		if p[e] == '\r' {
			if next == len(p) {
				cr = true
			} else if p[next] == '\n' {
				next++
			}
		}
		i = next
		t.atLineStart = true
		dropped := false
		if blank {
			dropped = t.endEvent(p[start:next])
			start = next
		}
		if cr {
			t.crPending, t.crEndedEvent, t.crDropped = true, blank, dropped
		}
	}
	if start < len(p) {
		t.hold(p[start:])
	}
	if !t.drop {
		return p, t.err
	}
	return t.out, t.err
}

// Flush ends the stream: it reads a trailing event that never got its blank line (the provider
// did send it, so its usage counts) and returns the held bytes still to forward (none without
// dropUsageChunk). Framing restarts after it, should more bytes come; what the tap has learned
// is kept.
func (t *StreamTap) Flush() ([]byte, error) {
	t.err = nil
	t.out = t.out[:0]
	if len(t.pending) > 0 && !t.oversize {
		if !t.dispatch(t.pending) && t.drop {
			t.out = append(t.out, t.pending...)
		}
	}
	t.pending = t.pending[:0]
	t.oversize, t.crPending, t.atLineStart = false, false, true
	if !t.drop {
		return nil, t.err
	}
	return t.out, t.err
}

// Usage returns what is known so far and whether the terminal usage was seen: the OpenAI chat
// usage chunk, an Anthropic message_delta carrying usage, or a Responses response.completed,
// response.incomplete or response.failed carrying usage. A stream cut short reports what it had
// reported before it stopped: for Anthropic the message_start input and cache counts with the
// latest cumulative output count; for OpenAI nothing but the id and model (see HasUsage).
func (t *StreamTap) Usage() (u Usage, complete bool) {
	u = Usage{ResponseID: t.id, Model: t.model}
	if t.haveUsage {
		switch t.api {
		case OpenAIChat, OpenAIResponses:
			t.oa.fill(&u)
		case AnthropicMessages:
			t.an.fill(&u)
		}
	}
	return u, t.complete
}

// HasUsage reports whether any usage count was read. When false the call's usage is unknown (an
// OpenAI stream cut before its usage chunk, a client that did not ask for usage and got none),
// to be estimated or flagged, never billed as zero.
func (t *StreamTap) HasUsage() bool { return t.haveUsage }

// endEvent handles a complete event whose last bytes are seg, and reports whether it was dropped.
func (t *StreamTap) endEvent(seg []byte) bool {
	if t.oversize || len(t.pending)+len(seg) > t.maxEvent {
		if !t.oversize {
			t.err = ErrEventTooLarge
			if t.drop {
				t.out = append(t.out, t.pending...)
			}
		}
		if t.drop {
			t.out = append(t.out, seg...)
		}
		t.resetPending()
		return false
	}
	ev := seg
	if len(t.pending) > 0 {
		t.pending = append(t.pending, seg...)
		ev = t.pending
	}
	dropped := t.dispatch(ev)
	if t.drop && !dropped {
		t.out = append(t.out, ev...)
	}
	t.resetPending()
	return dropped
}

// hold keeps the bytes of an incomplete event.
func (t *StreamTap) hold(b []byte) {
	if !t.oversize && len(t.pending)+len(b) > t.maxEvent {
		t.oversize = true
		t.err = ErrEventTooLarge
		if t.drop {
			t.out = append(t.out, t.pending...)
		}
		t.pending = nil
	}
	if t.oversize {
		if t.drop {
			t.out = append(t.out, b...)
		}
		return
	}
	t.pending = append(t.pending, b...)
}

func (t *StreamTap) resetPending() {
	t.oversize = false
	if cap(t.pending) > 1<<20 {
		t.pending = nil // one large event should not pin its buffer for the rest of the stream
		return
	}
	t.pending = t.pending[:0]
}

var bom = []byte("\xef\xbb\xbf")

// eolFinder finds line endings (CR or LF) from a position that only moves forward, in time
// linear in len(b) overall: the next LF is remembered, and CRs are looked for only before it.
// Both searches are bytes.IndexByte, which is vectorised, unlike a search for either byte.
type eolFinder struct {
	b  []byte
	lf int // index of the next LF at or after the last position asked, len(b) if none; -1 unknown
}

// next returns the index of the first CR or LF at or after i, or -1.
func (f *eolFinder) next(i int) int {
	if f.lf < i {
		if k := bytes.IndexByte(f.b[i:], '\n'); k >= 0 {
			f.lf = i + k
		} else {
			f.lf = len(f.b)
		}
	}
	if k := bytes.IndexByte(f.b[i:f.lf], '\r'); k >= 0 {
		return i + k
	}
	if f.lf == len(f.b) {
		return -1
	}
	return f.lf
}

// dispatch reads one event's fields and lets the API's handler read it. It reports whether the
// event is the usage chunk to drop.
func (t *StreamTap) dispatch(ev []byte) bool {
	if !t.started {
		t.started = true
		ev = bytes.TrimPrefix(ev, bom)
	}
	var name, data []byte
	hasData, joined := false, false
	eol := eolFinder{b: ev, lf: -1}
	for i := 0; i < len(ev); {
		var line []byte
		k := eol.next(i)
		if k < 0 {
			line, i = ev[i:], len(ev)
		} else {
			line = ev[i:k]
			if ev[k] == '\r' && k+1 < len(ev) && ev[k+1] == '\n' {
				k++
			}
			i = k + 1
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value := line, []byte(nil)
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			field, value = line[:c], line[c+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			name = value
		case "data":
			switch {
			case !hasData:
				data, hasData = value, true
			default:
				if !joined {
					t.data = append(t.data[:0], data...)
					joined = true
				}
				t.data = append(append(t.data, '\n'), value...)
				data = t.data
			}
		}
	}
	if !hasData {
		return false
	}
	switch t.api {
	case OpenAIChat:
		return t.chatEvent(data)
	case AnthropicMessages:
		t.anthropicEvent(name, data)
	case OpenAIResponses:
		t.responsesEvent(name, data)
	}
	return false
}

func (t *StreamTap) fail(ferr *FieldError) {
	if t.err == nil {
		t.err = ferr
	}
}

var (
	doneData  = []byte("[DONE]")
	usageKey  = []byte(`"usage"`)
	usageNull = []byte(`"usage":null`)
)

// chatEvent reads an OpenAI chat chunk: the id and model from the first, usage from the one that
// carries it. It reports whether the chunk is the usage chunk to drop.
func (t *StreamTap) chatEvent(data []byte) bool {
	if bytes.Equal(data, doneData) {
		return false
	}
	// Content chunks carry no usage, or "usage":null when usage was asked for: once the id is
	// known they need no parsing. (A "usage" key inside a string is escaped, \"usage\", so the
	// count only sees keys.)
	if t.id != "" {
		if n := bytes.Count(data, usageKey); n == 0 || n == 1 && bytes.Contains(data, usageNull) {
			return false
		}
	}
	// Parsers come from the shared pool: a warm parser allocates nothing, and a tap lives for
	// one response only.
	sc := getScratch()
	defer putScratch(sc, len(data))
	v, err := sc.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return false
	}
	if t.id == "" {
		t.id, t.model = str(v.Get("id")), str(v.Get("model"))
	}
	uv := present(v.Get("usage"))
	if uv == nil {
		return false
	}
	var c openAICounts
	if ferr := c.read(OpenAIChat, uv, "usage"); ferr != nil {
		t.fail(ferr)
	} else {
		t.oa, t.haveUsage, t.complete = c, true, true
	}
	if !t.drop {
		return false
	}
	ch := v.Get("choices")
	if ch == nil || ch.Type() != fastjson.TypeArray {
		return false
	}
	a, _ := ch.Array()
	return len(a) == 0
}

// anthropicEvent reads message_start (id, model, input and cache counts, a first output count)
// and message_delta (cumulative counts that replace those seen before).
func (t *StreamTap) anthropicEvent(name, data []byte) {
	switch string(name) {
	case "", "message_start", "message_delta":
	default:
		return // content, ping, stop and error events carry no usage
	}
	sc := getScratch()
	defer putScratch(sc, len(data))
	v, err := sc.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return
	}
	typ, _ := stringOf(v.Get("type"))
	switch string(typ) {
	case "message_start":
		m := v.Get("message")
		if m == nil || m.Type() != fastjson.TypeObject {
			return
		}
		if t.id == "" {
			t.id, t.model = str(m.Get("id")), str(m.Get("model"))
		}
		if uv := present(m.Get("usage")); uv != nil {
			c := t.an
			if ferr := c.merge(uv, "message_start.message.usage"); ferr != nil {
				t.fail(ferr)
				return
			}
			t.an, t.haveUsage = c, true
		}
	case "message_delta":
		if uv := present(v.Get("usage")); uv != nil {
			c := t.an
			if ferr := c.merge(uv, "message_delta.usage"); ferr != nil {
				t.fail(ferr)
				return
			}
			t.an, t.haveUsage, t.complete = c, true, true
		}
	}
}

// responsesEvent reads the id and model from the first lifecycle event and usage from the
// terminal one.
func (t *StreamTap) responsesEvent(name, data []byte) {
	switch string(name) {
	case "", "response.created", "response.queued", "response.in_progress",
		"response.completed", "response.incomplete", "response.failed":
	default:
		return // deltas and item events carry no usage
	}
	sc := getScratch()
	defer putScratch(sc, len(data))
	v, err := sc.p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return
	}
	typ, _ := stringOf(v.Get("type"))
	terminal := false
	switch string(typ) {
	case "response.completed", "response.incomplete", "response.failed":
		terminal = true
	case "response.created", "response.queued", "response.in_progress":
	default:
		return
	}
	r := v.Get("response")
	if r == nil || r.Type() != fastjson.TypeObject {
		return
	}
	if t.id == "" {
		t.id = str(r.Get("id"))
	}
	if t.model == "" {
		t.model = str(r.Get("model"))
	}
	if !terminal {
		return
	}
	uv := present(r.Get("usage"))
	if uv == nil {
		return
	}
	var c openAICounts
	if ferr := c.read(OpenAIResponses, uv, "response.usage"); ferr != nil {
		t.fail(ferr)
		return
	}
	t.oa, t.haveUsage, t.complete = c, true, true
}
