package provider

import (
	"errors"
	"reflect"
	"testing"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// Expected usage of every non-streaming fixture, derived by hand from the fixture and
// llm-usage-accounting.md.
var jsonFixtures = []struct {
	file string
	api  API
	want Usage
}{
	{"provider-fixtures/openai-chat-completion.json", OpenAIChat, Usage{
		ResponseID: "chatcmpl-FIXTURE0000000000000000001", Model: "gpt-5-mini-2025-08-07",
		InputUncached: 86,  // prompt 2006 − cached 1920 − cache_write 0 (absent)
		Output:        300, // completion_tokens, reasoning 192 already inside
		CacheRead:     1920,
		Reasoning:     192,
	}},
	{"provider-fixtures/openai-responses.json", OpenAIResponses, Usage{
		ResponseID: "resp_FIXTURE00000000000000000000000000000000000001", Model: "gpt-5.4-2026-03-05",
		InputUncached: 238, // input 3310 − cached 3072 − cache_write 0
		Output:        412, // reasoning 320 inside
		CacheRead:     3072,
		Reasoning:     320,
	}},
	{"provider-fixtures/anthropic-message.json", AnthropicMessages, Usage{
		ResponseID: "msg_01FIXTURENonStream000000001", Model: "claude-sonnet-4-5-20250929",
		InputUncached: 42,   // input_tokens as is: it excludes cache reads and writes
		Output:        211,  // output_tokens
		CacheRead:     4096, // cache_read_input_tokens
		CacheWrite5m:  1024, // cache_creation 1536 = 1024 (5m) + 512 (1h)
		CacheWrite1h:  512,
	}},
	{"provider-fixtures/gemini-generate-content.json", GeminiGenerateContent, Usage{
		ResponseID: "FIXTUREgeminiResp0001", Model: "gemini-2.5-flash",
		InputUncached: 1114, // prompt 5210 − cached 4096 + toolUsePrompt 0
		Output:        740,  // candidates 143 + thoughts 597
		CacheRead:     4096,
		Reasoning:     597,
	}},
}

func TestExtractJSONFixtures(t *testing.T) {
	for _, tt := range jsonFixtures {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ExtractJSON(tt.api, fixture(t, tt.file))
			if err != nil {
				t.Fatalf("ExtractJSON: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestFixtureCosts prices every fixture's measurements with the per-MTok prices of
// llm-usage-accounting.md's "Expected costs" table and checks the documented totals: the
// measurements bill every token exactly once. reasoning_tokens are informational: unpriced.
func TestFixtureCosts(t *testing.T) {
	type prices map[string]string // metric key → USD per 1,000,000
	tests := []struct {
		file   string
		api    API
		stream bool
		prices prices
		cost   string
	}{
		{"provider-fixtures/openai-chat-completion.json", OpenAIChat, false,
			prices{MetricInputTokens: "0.25", MetricCacheReadTokens: "0.025", MetricOutputTokens: "2.00"}, "0.0006695"},
		{"provider-fixtures/openai-chat-completion-stream.sse", OpenAIChat, true,
			prices{MetricInputTokens: "0.15", MetricOutputTokens: "0.60"}, "0.00000885"},
		{"provider-fixtures/openai-responses.json", OpenAIResponses, false,
			prices{MetricInputTokens: "2.50", MetricCacheReadTokens: "0.25", MetricOutputTokens: "15"}, "0.007543"},
		{"provider-fixtures/anthropic-message.json", AnthropicMessages, false,
			prices{MetricInputTokens: "3", MetricCacheWrite5mTokens: "3.75", MetricCacheWrite1hTokens: "6",
				MetricCacheReadTokens: "0.30", MetricOutputTokens: "15"}, "0.0114318"},
		{"provider-fixtures/anthropic-message-stream.sse", AnthropicMessages, true,
			prices{MetricInputTokens: "1", MetricCacheReadTokens: "0.10", MetricOutputTokens: "5"}, "0.0005458"},
		{"provider-fixtures/anthropic-message-stream-legacy-delta.sse", AnthropicMessages, true,
			prices{MetricInputTokens: "3", MetricCacheWrite5mTokens: "3.75", MetricOutputTokens: "15"}, "0.009171"},
		{"provider-fixtures/gemini-generate-content.json", GeminiGenerateContent, false,
			prices{MetricInputTokens: "0.30", MetricCacheReadTokens: "0.03", MetricOutputTokens: "2.50"}, "0.00230708"},
	}
	million := money.MustParse("1000000")
	for _, tt := range tests {
		var u Usage
		if tt.stream {
			tap := NewStreamTap(tt.api, false)
			_, _ = tap.Write(fixture(t, tt.file))
			_, _ = tap.Flush()
			var complete bool
			if u, complete = tap.Usage(); !complete {
				t.Fatalf("%s: stream not complete", tt.file)
			}
		} else {
			var err error
			if u, err = ExtractJSON(tt.api, fixture(t, tt.file)); err != nil {
				t.Fatal(err)
			}
		}
		total := money.Zero
		for _, m := range u.Measurements() {
			if m.MetricKey == MetricReasoningTokens {
				continue
			}
			p, ok := tt.prices[m.MetricKey]
			if !ok {
				t.Errorf("%s: measurement %s has no price in the table", tt.file, m.MetricKey)
				continue
			}
			total = total.Add(m.Value.Decimal().Mul(money.MustParse(p)))
		}
		total = total.Div(million)
		if !total.Equal(money.MustParse(tt.cost)) {
			t.Errorf("%s: cost %s, want %s", tt.file, total, tt.cost)
		}
	}
}

func TestExtractJSONEdges(t *testing.T) {
	tests := []struct {
		name string
		api  API
		body string
		want Usage
	}{
		{"openai chat minimal: details absent", OpenAIChat,
			`{"id":"c1","model":"m","usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`,
			Usage{ResponseID: "c1", Model: "m", InputUncached: 10, Output: 3}},
		{"openai chat with cache write: subtracted from input, reported as 5m write", OpenAIChat,
			`{"usage":{"prompt_tokens":3000,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":1024,"cache_write_tokens":1500,"audio_tokens":null}}}`,
			// 3000 − 1024 − 1500 = 476
			Usage{InputUncached: 476, Output: 5, CacheRead: 1024, CacheWrite5m: 1500}},
		{"openai cached above prompt: clamped and flagged", OpenAIChat,
			`{"usage":{"prompt_tokens":100,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":128}}}`,
			Usage{InputUncached: 0, Output: 1, CacheRead: 128, Flags: FlagInconsistent}},
		{"openai total mismatch: parts billed, flagged", OpenAIChat,
			`{"usage":{"prompt_tokens":758,"completion_tokens":102,"total_tokens":1725}}`,
			Usage{InputUncached: 758, Output: 102, Flags: FlagInconsistent}},
		{"openai null details", OpenAIChat,
			`{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":null,"completion_tokens_details":null}}`,
			Usage{InputUncached: 1, Output: 2}},
		{"responses without input details (official stream example)", OpenAIResponses,
			`{"id":"resp_1","usage":{"input_tokens":37,"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}`,
			Usage{ResponseID: "resp_1", InputUncached: 37, Output: 11}},
		{"anthropic without split: all 5m, TTL unknown", AnthropicMessages,
			`{"usage":{"input_tokens":472,"cache_creation_input_tokens":2048,"cache_read_input_tokens":0,"output_tokens":5}}`,
			Usage{InputUncached: 472, Output: 5, CacheWrite5m: 2048, Flags: FlagCacheTTLUnknown}},
		{"anthropic null split: all 5m, TTL unknown", AnthropicMessages,
			`{"usage":{"input_tokens":1,"cache_creation_input_tokens":300,"cache_creation":null,"output_tokens":2}}`,
			Usage{InputUncached: 1, Output: 2, CacheWrite5m: 300, Flags: FlagCacheTTLUnknown}},
		{"anthropic split not summing to the total (the docs' 1h example): total wins", AnthropicMessages,
			`{"usage":{"input_tokens":50,"cache_creation_input_tokens":248,"cache_creation":{"ephemeral_5m_input_tokens":456,"ephemeral_1h_input_tokens":100},"output_tokens":9}}`,
			// 1h = min(100, 248) = 100; 5m = 248 − 100 = 148
			Usage{InputUncached: 50, Output: 9, CacheWrite5m: 148, CacheWrite1h: 100, Flags: FlagInconsistent}},
		{"anthropic 1h split above the total: capped", AnthropicMessages,
			`{"usage":{"input_tokens":0,"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":30},"output_tokens":1}}`,
			Usage{Output: 1, CacheWrite1h: 10, Flags: FlagInconsistent}},
		{"anthropic split without total", AnthropicMessages,
			`{"usage":{"input_tokens":3,"cache_creation":{"ephemeral_5m_input_tokens":7,"ephemeral_1h_input_tokens":11},"output_tokens":1}}`,
			Usage{InputUncached: 3, Output: 1, CacheWrite5m: 7, CacheWrite1h: 11}},
		{"anthropic web search, thinking details, cache pre-warm (max_tokens 0)", AnthropicMessages,
			`{"id":"msg_x","model":"claude-opus-4-7","content":[],"stop_reason":"max_tokens","usage":{"input_tokens":12,"cache_creation_input_tokens":4000,"cache_read_input_tokens":0,` +
				`"cache_creation":{"ephemeral_5m_input_tokens":4000,"ephemeral_1h_input_tokens":0},"output_tokens":0,` +
				`"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":2,"web_fetch_requests":1},"service_tier":"standard"}}`,
			Usage{ResponseID: "msg_x", Model: "claude-opus-4-7", InputUncached: 12, CacheWrite5m: 4000, ToolCalls: 2}},
		{"gemini with tool-use prompt and no candidates count", GeminiGenerateContent,
			`{"usageMetadata":{"promptTokenCount":100,"toolUsePromptTokenCount":20,"thoughtsTokenCount":7,"totalTokenCount":127}}`,
			// input 100 − 0 + 20 = 120; output 0 + 7
			Usage{InputUncached: 120, Output: 7, Reasoning: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractJSON(tt.api, []byte(tt.body))
			if err != nil {
				t.Fatalf("ExtractJSON: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestExtractJSONErrors(t *testing.T) {
	tests := []struct {
		api          API
		body         string
		field, msg   string
		noUsage      bool
		id, model    string
		unsupported  bool
		wantAnyError bool
	}{
		{api: OpenAIChat, body: `{"error":{"message":"x"}}`, field: "usage", msg: "missing: no usage reported", noUsage: true},
		{api: OpenAIResponses, body: `{"id":"resp_1","model":"gpt-5.4","status":"queued","usage":null}`, field: "usage", msg: "missing: no usage reported", noUsage: true, id: "resp_1", model: "gpt-5.4"},
		{api: AnthropicMessages, body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, field: "usage", msg: "missing: no usage reported", noUsage: true},
		{api: GeminiGenerateContent, body: `{"promptFeedback":{"blockReason":"SAFETY"}}`, field: "usageMetadata", msg: "missing: no usage reported", noUsage: true},
		{api: OpenAIChat, body: `{"usage":{"completion_tokens":1}}`, field: "usage.prompt_tokens", msg: "required"},
		{api: OpenAIChat, body: `{"usage":{"prompt_tokens":1}}`, field: "usage.completion_tokens", msg: "required"},
		{api: OpenAIChat, body: `{"usage":{"prompt_tokens":-1,"completion_tokens":1}}`, field: "usage.prompt_tokens", msg: "must be a non-negative integer"},
		{api: OpenAIChat, body: `{"usage":{"prompt_tokens":1.5,"completion_tokens":1}}`, field: "usage.prompt_tokens", msg: "must be a non-negative integer"},
		{api: OpenAIChat, body: `{"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":"3"}}}`, field: "usage.prompt_tokens_details.cached_tokens", msg: "must be a non-negative integer"},
		{api: OpenAIChat, body: `{"usage":{"prompt_tokens":1,"completion_tokens":1,"completion_tokens_details":[]}}`, field: "usage.completion_tokens_details", msg: "must be an object"},
		{api: OpenAIChat, body: `{"usage":7}`, field: "usage", msg: "must be an object"},
		{api: OpenAIResponses, body: `{"usage":{"input_tokens":1,"output_tokens":1,"input_tokens_details":{"cache_write_tokens":1e2}}}`, field: "usage.input_tokens_details.cache_write_tokens", msg: "must be a non-negative integer"},
		{api: OpenAIResponses, body: `{"usage":{"input_tokens":2000000000000000,"output_tokens":1}}`, field: "usage.input_tokens", msg: "must be at most 1000000000000000"},
		{api: AnthropicMessages, body: `{"usage":{"output_tokens":1}}`, field: "usage.input_tokens", msg: "required"},
		{api: AnthropicMessages, body: `{"usage":{"input_tokens":1}}`, field: "usage.output_tokens", msg: "required"},
		{api: AnthropicMessages, body: `{"usage":{"input_tokens":1,"output_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":-2}}}`, field: "usage.cache_creation.ephemeral_1h_input_tokens", msg: "must be a non-negative integer"},
		{api: AnthropicMessages, body: `{"usage":{"input_tokens":1,"output_tokens":1,"server_tool_use":"x"}}`, field: "usage.server_tool_use", msg: "must be an object"},
		{api: GeminiGenerateContent, body: `{"usageMetadata":{"promptTokenCount":true}}`, field: "usageMetadata.promptTokenCount", msg: "must be a non-negative integer"},
		{api: OpenAIChat, body: `{`, field: "", msg: "body is not valid JSON"},
		{api: OpenAIChat, body: `null`, field: "", msg: "body must be a JSON object"},
		{api: 0, body: `{}`, unsupported: true},
	}
	for _, tt := range tests {
		got, err := ExtractJSON(tt.api, []byte(tt.body))
		if tt.unsupported {
			if !errors.Is(err, ErrUnsupportedAPI) {
				t.Errorf("%s: err = %v, want ErrUnsupportedAPI", tt.body, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || fe.Message != tt.msg {
			t.Errorf("%v %s: err = %v, want %s: %s", tt.api, tt.body, err, tt.field, tt.msg)
			continue
		}
		if errors.Is(err, ErrNoUsage) != tt.noUsage {
			t.Errorf("%s: errors.Is(ErrNoUsage) = %v", tt.body, !tt.noUsage)
		}
		if got.ResponseID != tt.id || got.Model != tt.model {
			t.Errorf("%s: id %q model %q, want %q %q", tt.body, got.ResponseID, got.Model, tt.id, tt.model)
		}
	}
}

func TestMeasurements(t *testing.T) {
	m := func(k string, v int64) usage.Measurement {
		return usage.Measurement{MetricKey: k, Value: money.QtyInt(v)}
	}
	tests := []struct {
		u    Usage
		want []usage.Measurement
	}{
		{Usage{}, []usage.Measurement{m("input_tokens", 0), m("output_tokens", 0)}},
		{Usage{InputUncached: 5, Output: 0, CacheRead: 7},
			[]usage.Measurement{m("input_tokens", 5), m("output_tokens", 0), m("cache_read_tokens", 7)}},
		{Usage{InputUncached: 1, Output: 2, CacheWrite5m: 3, CacheWrite1h: 4, CacheRead: 5, Reasoning: 6, ToolCalls: 7},
			[]usage.Measurement{m("input_tokens", 1), m("output_tokens", 2), m("cache_write_5m_tokens", 3),
				m("cache_write_1h_tokens", 4), m("cache_read_tokens", 5), m("reasoning_tokens", 6), m("tool_calls", 7)}},
		{Usage{CacheWrite1h: 9, Reasoning: 1},
			[]usage.Measurement{m("input_tokens", 0), m("output_tokens", 0), m("cache_write_1h_tokens", 9), m("reasoning_tokens", 1)}},
	}
	for _, tt := range tests {
		if got := tt.u.Measurements(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.u, got, tt.want)
		}
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0:                                      "",
		FlagCacheTTLUnknown:                    "cache_ttl_unknown",
		FlagInconsistent:                       "inconsistent",
		FlagCacheTTLUnknown | FlagInconsistent: "cache_ttl_unknown|inconsistent",
	} {
		if got := f.String(); got != want {
			t.Errorf("Flags(%d) = %q, want %q", f, got, want)
		}
	}
}
