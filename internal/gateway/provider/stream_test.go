package provider

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// Expected usage of every stream fixture, derived by hand from the fixture and
// llm-usage-accounting.md.
var streamFixtures = []struct {
	file string
	api  API
	want Usage
}{
	{"provider-fixtures/openai-chat-completion-stream.sse", OpenAIChat, Usage{
		ResponseID: "chatcmpl-FIXTURE0000000000000000002", Model: "gpt-4o-mini-2024-07-18",
		InputUncached: 19, // prompt 19 − cached 0
		Output:        10, // completion_tokens
	}},
	{"provider-fixtures/anthropic-message-stream.sse", AnthropicMessages, Usage{
		ResponseID: "msg_01FIXTUREStream0000000001", Model: "claude-haiku-4-5-20251001",
		InputUncached: 25,   // message_start input_tokens (message_delta repeats 25)
		CacheRead:     4608, // cache_read_input_tokens
		Output:        12,   // message_delta's cumulative 12 replaces message_start's 1 (not 13)
	}},
	{"provider-fixtures/anthropic-message-stream-legacy-delta.sse", AnthropicMessages, Usage{
		ResponseID: "msg_01FIXTUREStreamLegacy00001", Model: "claude-sonnet-4-5-20250929",
		InputUncached: 472,  // from message_start; the legacy delta only carries output_tokens
		CacheWrite5m:  2048, // cache_creation_input_tokens without a TTL split → all 5m
		Output:        5,    // delta's 5 replaces message_start's 2 (not 7)
		Flags:         FlagCacheTTLUnknown,
	}},
	{"synthetic/openai-responses-stream.sse", OpenAIResponses, Usage{
		ResponseID: "resp_SYNTHETIC0000000000000000000000000000000000001", Model: "gpt-5.4-2026-03-05",
		InputUncached: 176, // input 1200 − cached 1024 − cache_write 0
		CacheRead:     1024,
		Output:        96, // reasoning 64 inside
		Reasoning:     64,
	}},
}

// feed writes in to the tap in pieces of the sizes next returns, then flushes, and returns all
// the bytes to forward.
func feed(tb testing.TB, tap *StreamTap, in []byte, next func() int) []byte {
	tb.Helper()
	var out []byte
	for len(in) > 0 {
		n := min(max(next(), 1), len(in))
		o, _ := tap.Write(in[:n])
		out = append(out, o...)
		in = in[n:]
	}
	o, _ := tap.Flush()
	return append(out, o...)
}

func whole() int { return 1 << 30 }

func TestStreamFixtures(t *testing.T) {
	for _, tt := range streamFixtures {
		t.Run(tt.file, func(t *testing.T) {
			in := fixture(t, tt.file)
			orig := bytes.Clone(in)
			tap := NewStreamTap(tt.api, false)
			out := feed(t, tap, in, whole)
			if !bytes.Equal(out, orig) {
				t.Errorf("output differs from input")
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("input modified")
			}
			got, complete := tap.Usage()
			if !complete || !tap.HasUsage() {
				t.Errorf("complete %v, HasUsage %v", complete, tap.HasUsage())
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// variants returns the fixture as given and with its line endings rewritten to CRLF and to a
// lone CR, which the SSE spec allows too.
func variants(in []byte) map[string][]byte {
	return map[string][]byte{
		"LF":   in,
		"CRLF": bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n")),
		"CR":   bytes.ReplaceAll(in, []byte("\n"), []byte("\r")),
	}
}

// TestStreamSplitInvariance feeds every fixture (and its CRLF and CR variants) in every piece
// size from 1 to 64 bytes and at random splits: output bytes and usage must be identical to
// feeding it whole.
func TestStreamSplitInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range streamFixtures {
		for vname, in := range variants(fixture(t, tt.file)) {
			for _, drop := range []bool{false, true} {
				ref := NewStreamTap(tt.api, drop)
				refOut := feed(t, ref, in, whole)
				refUsage, refComplete := ref.Usage()
				if refUsage != tt.want || !refComplete {
					t.Errorf("%s %s drop=%v: usage %+v complete %v, want %+v", tt.file, vname, drop, refUsage, refComplete, tt.want)
				}
				check := func(how string, next func() int) {
					tap := NewStreamTap(tt.api, drop)
					out := feed(t, tap, in, next)
					u, complete := tap.Usage()
					if !bytes.Equal(out, refOut) || u != refUsage || complete != refComplete {
						t.Errorf("%s %s drop=%v %s: output or usage differs\nout  %q\nwant %q\nusage %+v", tt.file, vname, drop, how, out, refOut, u)
					}
				}
				for size := 1; size <= 64; size++ {
					check("size "+itoa(size), func() int { return size })
				}
				for i := 0; i < 200; i++ {
					maxPiece := 1 + rng.IntN(len(in))
					check("random", func() int { return 1 + rng.IntN(maxPiece) })
				}
			}
		}
	}
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// events splits an LF-framed SSE transcript into its events, blank line included.
func events(in []byte) [][]byte {
	var evs [][]byte
	for len(in) > 0 {
		i := bytes.Index(in, []byte("\n\n"))
		if i < 0 {
			evs = append(evs, in)
			break
		}
		evs = append(evs, in[:i+2])
		in = in[i+2:]
	}
	return evs
}

// withoutUsageChunk is the transcript minus the one event whose choices are empty.
func withoutUsageChunk(tb testing.TB, in []byte) []byte {
	tb.Helper()
	var out []byte
	dropped := 0
	for _, ev := range events(in) {
		if bytes.Contains(ev, []byte(`"choices":[]`)) {
			dropped++
			continue
		}
		out = append(out, ev...)
	}
	if dropped != 1 {
		tb.Fatalf("transcript has %d usage chunks", dropped)
	}
	return out
}

func TestStreamDropUsageChunk(t *testing.T) {
	in := fixture(t, "provider-fixtures/openai-chat-completion-stream.sse")
	want := withoutUsageChunk(t, in)
	for vname, v := range variants(in) {
		wantV := want
		switch vname {
		case "CRLF":
			wantV = bytes.ReplaceAll(want, []byte("\n"), []byte("\r\n"))
		case "CR":
			wantV = bytes.ReplaceAll(want, []byte("\n"), []byte("\r"))
		}
		for size := 1; size <= 64; size++ {
			tap := NewStreamTap(OpenAIChat, true)
			out := feed(t, tap, v, func() int { return size })
			if !bytes.Equal(out, wantV) {
				t.Fatalf("%s size %d:\ngot  %q\nwant %q", vname, size, out, wantV)
			}
			u, complete := tap.Usage()
			if !complete || u != streamFixtures[0].want {
				t.Fatalf("%s size %d: usage %+v complete %v", vname, size, u, complete)
			}
		}
	}
	// The [DONE] marker and every content chunk, "usage":null and all, still reach the client.
	if !bytes.HasSuffix(want, []byte("data: [DONE]\n\n")) || bytes.Count(want, []byte(`"usage":null`)) != 4 {
		t.Fatalf("expected transcript is wrong: %s", want)
	}
}

func TestStreamDropIgnoredOutsideOpenAIChat(t *testing.T) {
	for _, tt := range streamFixtures[1:] {
		in := fixture(t, tt.file)
		tap := NewStreamTap(tt.api, true)
		if out := feed(t, tap, in, func() int { return 7 }); !bytes.Equal(out, in) {
			t.Errorf("%s: output differs from input", tt.file)
		}
	}
}

func TestStreamDropKeepsUsageCarriedByContentChunk(t *testing.T) {
	// Some OpenAI-compatible servers put usage on the last content chunk: it is read, and kept,
	// because the client needs its content.
	in := []byte(`data: {"id":"c9","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}` + "\n\n" +
		"data: [DONE]\n\n")
	tap := NewStreamTap(OpenAIChat, true)
	if out := feed(t, tap, in, whole); !bytes.Equal(out, in) {
		t.Errorf("output %q", out)
	}
	u, complete := tap.Usage()
	if want := (Usage{ResponseID: "c9", Model: "m", InputUncached: 4, Output: 1}); u != want || !complete {
		t.Errorf("usage %+v complete %v", u, complete)
	}
}

func TestStreamDropWithoutUsageChunk(t *testing.T) {
	in := withoutUsageChunk(t, fixture(t, "provider-fixtures/openai-chat-completion-stream.sse"))
	tap := NewStreamTap(OpenAIChat, true)
	if out := feed(t, tap, in, func() int { return 5 }); !bytes.Equal(out, in) {
		t.Errorf("output differs from input")
	}
	u, complete := tap.Usage()
	if complete || tap.HasUsage() {
		t.Errorf("complete %v HasUsage %v", complete, tap.HasUsage())
	}
	if want := (Usage{ResponseID: "chatcmpl-FIXTURE0000000000000000002", Model: "gpt-4o-mini-2024-07-18"}); u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
}

// lineEnd returns the index just past the data line that starts with prefix (its LF excluded):
// a stream cut at or after it holds that event's whole JSON.
func lineEnd(tb testing.TB, in []byte, prefix string) int {
	tb.Helper()
	i := bytes.Index(in, []byte(prefix))
	if i < 0 {
		tb.Fatalf("%q not found", prefix)
	}
	return i + bytes.IndexByte(in[i:], '\n')
}

// TestStreamTruncated cuts every fixture at every byte: the usage is what the events fully
// received (or, at Flush, fully written on their data line) had reported.
func TestStreamTruncated(t *testing.T) {
	type stage struct {
		from     int // cut at or after this byte
		want     Usage
		complete bool
		has      bool
	}
	anthropic := fixture(t, "provider-fixtures/anthropic-message-stream.sse")
	legacy := fixture(t, "provider-fixtures/anthropic-message-stream-legacy-delta.sse")
	chat := fixture(t, "provider-fixtures/openai-chat-completion-stream.sse")
	responses := fixture(t, "synthetic/openai-responses-stream.sse")
	const aID, aModel = "msg_01FIXTUREStream0000000001", "claude-haiku-4-5-20251001"
	const lID, lModel = "msg_01FIXTUREStreamLegacy00001", "claude-sonnet-4-5-20250929"
	const cID, cModel = "chatcmpl-FIXTURE0000000000000000002", "gpt-4o-mini-2024-07-18"
	const rID, rModel = "resp_SYNTHETIC0000000000000000000000000000000000001", "gpt-5.4-2026-03-05"
	tests := []struct {
		name   string
		api    API
		in     []byte
		stages []stage
	}{
		{"anthropic", AnthropicMessages, anthropic, []stage{
			{0, Usage{}, false, false},
			// message_start: input 25, cache read 4608, and its first output count 1.
			{lineEnd(t, anthropic, `data: {"type":"message_start"`), Usage{ResponseID: aID, Model: aModel, InputUncached: 25, CacheRead: 4608, Output: 1}, false, true},
			{lineEnd(t, anthropic, `data: {"type":"message_delta"`), streamFixtures[1].want, true, true},
		}},
		{"anthropic legacy", AnthropicMessages, legacy, []stage{
			{0, Usage{}, false, false},
			{lineEnd(t, legacy, `data: {"type":"message_start"`), Usage{ResponseID: lID, Model: lModel, InputUncached: 472, CacheWrite5m: 2048, Output: 2, Flags: FlagCacheTTLUnknown}, false, true},
			{lineEnd(t, legacy, `data: {"type":"message_delta"`), streamFixtures[2].want, true, true},
		}},
		{"openai chat", OpenAIChat, chat, []stage{
			{0, Usage{}, false, false},
			{lineEnd(t, chat, `data: {"id"`), Usage{ResponseID: cID, Model: cModel}, false, false},
			{lineEnd(t, chat, `data: {"id":"chatcmpl-FIXTURE0000000000000000002","object":"chat.completion.chunk","created":1767225601,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[]`), streamFixtures[0].want, true, true},
		}},
		{"openai responses", OpenAIResponses, responses, []stage{
			{0, Usage{}, false, false},
			{lineEnd(t, responses, `data: {"type":"response.created"`), Usage{ResponseID: rID, Model: rModel}, false, false},
			{lineEnd(t, responses, `data: {"type":"response.completed"`), streamFixtures[3].want, true, true},
		}},
	}
	for _, tt := range tests {
		for c := 0; c <= len(tt.in); c++ {
			st := tt.stages[0]
			for _, s := range tt.stages {
				if c >= s.from {
					st = s
				}
			}
			for _, size := range []int{1 << 30, 3} {
				tap := NewStreamTap(tt.api, false)
				out := feed(t, tap, tt.in[:c], func() int { return size })
				if !bytes.Equal(out, tt.in[:c]) {
					t.Fatalf("%s cut %d: output differs", tt.name, c)
				}
				u, complete := tap.Usage()
				if u != st.want || complete != st.complete || tap.HasUsage() != st.has {
					t.Fatalf("%s cut %d: usage %+v complete %v has %v; want %+v %v %v", tt.name, c, u, complete, tap.HasUsage(), st.want, st.complete, st.has)
				}
			}
		}
	}
}

// TestStreamTruncatedDrop cuts the OpenAI chat stream at every byte with dropUsageChunk: the
// client gets exactly the bytes received, minus the usage chunk once its JSON is whole.
func TestStreamTruncatedDrop(t *testing.T) {
	in := fixture(t, "provider-fixtures/openai-chat-completion-stream.sse")
	prefix := `data: {"id":"chatcmpl-FIXTURE0000000000000000002","object":"chat.completion.chunk","created":1767225601,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_560af6e559","choices":[]`
	us := bytes.Index(in, []byte(prefix))
	ule := lineEnd(t, in, prefix)
	ue := ule + 2 // the data line's LF and the blank line
	for c := 0; c <= len(in); c++ {
		var want []byte
		switch {
		case c < ule:
			want = in[:c]
		case c <= ue:
			want = in[:us]
		default:
			want = append(bytes.Clone(in[:us]), in[ue:c]...)
		}
		for _, size := range []int{1 << 30, 1, 10} {
			tap := NewStreamTap(OpenAIChat, true)
			if out := feed(t, tap, in[:c], func() int { return size }); !bytes.Equal(out, want) {
				t.Fatalf("cut %d size %d:\ngot  %q\nwant %q", c, size, out, want)
			}
		}
	}
}

func TestStreamAnthropicDeltaReplacesCarriedFields(t *testing.T) {
	// A newer message_delta repeats cumulative input and cache counts: they replace the
	// message_start values; fields it leaves out (the TTL split) are kept.
	in := "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_1","model":"claude-opus-4-7","usage":{"input_tokens":10,"cache_creation_input_tokens":600,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":500},"output_tokens":3}}}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":12,"cache_read_input_tokens":64,"output_tokens":40,"server_tool_use":{"web_search_requests":1}}}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":55,"server_tool_use":{"web_search_requests":3}}}` + "\n\n"
	tap := NewStreamTap(AnthropicMessages, false)
	feed(t, tap, []byte(in), whole)
	u, complete := tap.Usage()
	want := Usage{ResponseID: "msg_1", Model: "claude-opus-4-7", InputUncached: 12, CacheRead: 64,
		CacheWrite5m: 100, CacheWrite1h: 500, Output: 55, ToolCalls: 3}
	if u != want || !complete {
		t.Errorf("usage %+v complete %v, want %+v", u, complete, want)
	}
}

func TestStreamAnthropicErrorEvent(t *testing.T) {
	// Overloaded mid-stream: the input side of message_start is what is known.
	in := "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_2","model":"claude-haiku-4-5","usage":{"input_tokens":30,"output_tokens":1}}}` + "\n\n" +
		"event: error\n" +
		`data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` + "\n\n"
	tap := NewStreamTap(AnthropicMessages, false)
	feed(t, tap, []byte(in), whole)
	u, complete := tap.Usage()
	if want := (Usage{ResponseID: "msg_2", Model: "claude-haiku-4-5", InputUncached: 30, Output: 1}); u != want || complete {
		t.Errorf("usage %+v complete %v", u, complete)
	}
}

func TestStreamResponsesTerminalEvents(t *testing.T) {
	base := fixture(t, "synthetic/openai-responses-stream.sse")
	for _, term := range []string{"response.incomplete", "response.failed"} {
		in := bytes.ReplaceAll(base, []byte("response.completed"), []byte(term))
		tap := NewStreamTap(OpenAIResponses, false)
		feed(t, tap, in, func() int { return 11 })
		u, complete := tap.Usage()
		if u != streamFixtures[3].want || !complete {
			t.Errorf("%s: usage %+v complete %v", term, u, complete)
		}
	}
	// A failed response without usage: terminal, but nothing to bill from it.
	in := bytes.ReplaceAll(base, []byte("response.completed"), []byte("response.failed"))
	i := bytes.Index(in, []byte(`"usage":{"input_tokens":1200`))
	j := i + bytes.Index(in[i:], []byte("}}}")) + 2
	in = append(append(bytes.Clone(in[:i]), `"usage":null`...), in[j:]...)
	tap := NewStreamTap(OpenAIResponses, false)
	feed(t, tap, in, whole)
	u, complete := tap.Usage()
	if complete || tap.HasUsage() || u.ResponseID != streamFixtures[3].want.ResponseID {
		t.Errorf("failed without usage: %+v complete %v has %v\n%s", u, complete, tap.HasUsage(), in)
	}
}

func TestStreamFraming(t *testing.T) {
	const usageJSON = `{"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}`
	want := Usage{ResponseID: "c1", Model: "m", InputUncached: 7, Output: 2}
	tests := []struct {
		name, in, out string // out: what the client gets once the usage chunk is dropped
	}{
		{"no space after colon", "data:" + usageJSON + "\n\n", ""},
		{"comments and a BOM", "\xef\xbb\xbf: keep-alive\n\n: x\ndata: " + usageJSON + "\n: y\n\n", "\xef\xbb\xbf: keep-alive\n\n"},
		{"data split over lines (joined with LF)", "data: {\"id\":\"c1\",\"model\":\"m\",\ndata: \"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n", ""},
		{"a BOM before the first field", "\xef\xbb\xbfdata: " + usageJSON + "\n\n", ""},
		{"id and retry fields", "id: 5\nretry: 1000\ndata: " + usageJSON + "\n\n", ""},
		{"mixed line endings", "\r\n: c\r\rdata: " + usageJSON + "\r\n\r", "\r\n: c\r\r"},
		{"no final blank line (read at Flush)", "data: " + usageJSON + "\n", ""},
		{"no final line ending", "data: " + usageJSON, ""},
	}
	for _, tt := range tests {
		for size := 1; size <= len(tt.in); size++ {
			tap := NewStreamTap(OpenAIChat, true)
			out := feed(t, tap, []byte(tt.in), func() int { return size })
			u, complete := tap.Usage()
			if u != want || !complete || string(out) != tt.out {
				t.Fatalf("%s size %d: usage %+v complete %v out %q", tt.name, size, u, complete, out)
			}
		}
	}
	// Framing: a BOM-prefixed chunk, dropped; the comment events around it stay.
	tap := NewStreamTap(OpenAIChat, true)
	out := feed(t, tap, []byte(": a\n\ndata: "+usageJSON+"\n\n: b\n\n"), whole)
	if string(out) != ": a\n\n: b\n\n" {
		t.Errorf("out %q", out)
	}
}

func TestStreamBadUsageReported(t *testing.T) {
	in := []byte("data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":-4,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")
	tap := NewStreamTap(OpenAIChat, true)
	out, err := tap.Write(in)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "usage.prompt_tokens" {
		t.Errorf("err = %v, want usage.prompt_tokens", err)
	}
	// The malformed usage chunk is still the injected one: dropped; [DONE] forwarded.
	if string(out) != "data: [DONE]\n\n" {
		t.Errorf("out %q", out)
	}
	if _, complete := tap.Usage(); complete || tap.HasUsage() {
		t.Errorf("bad usage counted")
	}

	// Anthropic: a bad delta does not erase what message_start reported.
	a := NewStreamTap(AnthropicMessages, false)
	_, _ = a.Write([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"))
	_, err = a.Write([]byte("event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":9,\"output_tokens\":\"x\"}}\n\n"))
	if !errors.As(err, &fe) || fe.Field != "message_delta.usage.output_tokens" {
		t.Errorf("err = %v", err)
	}
	if u, complete := a.Usage(); u.InputUncached != 5 || u.Output != 1 || complete {
		t.Errorf("usage %+v complete %v", u, complete)
	}
}

func TestStreamEventTooLarge(t *testing.T) {
	big := `data: {"id":"c1","model":"m","choices":[{"delta":{"content":"` + strings.Repeat("x", 300) + `"}}],"usage":null}` + "\n\n"
	usageChunk := `data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}` + "\n\n"
	in := []byte(big + usageChunk)
	for _, drop := range []bool{false, true} {
		for _, size := range []int{1 << 30, 1, 17, 100, 299, 300} {
			tap := NewStreamTap(OpenAIChat, drop)
			tap.maxEvent = 200
			var out []byte
			sawErr := false
			rest := in
			for len(rest) > 0 {
				n := min(size, len(rest))
				o, err := tap.Write(rest[:n])
				if errors.Is(err, ErrEventTooLarge) {
					sawErr = true
				}
				out = append(out, o...)
				rest = rest[n:]
			}
			o, _ := tap.Flush()
			out = append(out, o...)
			want := in
			if drop {
				want = []byte(big)
			}
			if !bytes.Equal(out, want) || !sawErr {
				t.Errorf("drop %v size %d: sawErr %v out %q", drop, size, sawErr, out)
			}
			// The oversized event was not read (no id from it); the next one was.
			if u, complete := tap.Usage(); !complete || u.InputUncached != 3 || u.Output != 4 || u.ResponseID != "c1" {
				t.Errorf("drop %v size %d: usage %+v", drop, size, u)
			}
		}
	}
}

func TestStreamUntrackedAPI(t *testing.T) {
	in := fixture(t, "provider-fixtures/gemini-stream.sse")
	for _, api := range []API{GeminiGenerateContent, 0} {
		tap := NewStreamTap(api, true)
		if out := feed(t, tap, in, func() int { return 13 }); !bytes.Equal(out, in) {
			t.Errorf("%v: output differs", api)
		}
		if u, complete := tap.Usage(); u != (Usage{}) || complete || tap.HasUsage() {
			t.Errorf("%v: usage %+v", api, u)
		}
	}
}

func TestStreamWriteReturnsInputWithoutDrop(t *testing.T) {
	// Without dropUsageChunk every byte is forwarded at once, even mid-event.
	tap := NewStreamTap(AnthropicMessages, false)
	p := []byte("event: message_start\ndata: {\"type\":")
	out, err := tap.Write(p)
	if err != nil || &out[0] != &p[0] || len(out) != len(p) {
		t.Errorf("Write did not return its input")
	}
	// With it, a partial event is held until its blank line.
	d := NewStreamTap(OpenAIChat, true)
	if out, _ := d.Write([]byte("data: {\"id\":\"x\"}\n")); len(out) != 0 {
		t.Errorf("partial event forwarded: %q", out)
	}
	if out, _ := d.Write([]byte("\ndata: [DO")); string(out) != "data: {\"id\":\"x\"}\n\n" {
		t.Errorf("complete event not forwarded at once: %q", out)
	}
}
