package provider

import (
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		api  API
		body string
		want Request
	}{
		{
			name: "openai chat with media, tool calls and tools",
			api:  OpenAIChat,
			body: `{"model":"gpt-5-mini","messages":[{"role":"system","content":"You are terse."},` +
				`{"role":"user","content":[{"type":"text","text":"Summarise this invoice."},` +
				`{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},` +
				`{"role":"tool","tool_call_id":"call_1","content":"Sunny"}],` +
				`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],` +
				`"max_completion_tokens":512,"stream":true,"stream_options":{"include_usage":true},"n":2}`,
			// text bytes: "You are terse." 14 + "Summarise this invoice." 23 + tool_calls JSON 104
			// + "Sunny" 5 + tools JSON 86 = 232; ceil(232/3) = 78; 4 messages × 4 = 16;
			// 1 image × 1600. 78 + 16 + 1600 = 1694.
			want: Request{Model: "gpt-5-mini", MaxOutputTokens: 512, Choices: 2, Stream: true,
				IncludeUsage: true, EstimatedInputTokens: 1694},
		},
		{
			name: "anthropic with system blocks, thinking, tool use, text document and image",
			api:  AnthropicMessages,
			body: `{"model":"claude-sonnet-4-6","max_tokens":1024,"system":[{"type":"text","text":"Be brief."}],` +
				`"messages":[{"role":"user","content":"Hi there"},` +
				`{"role":"assistant","content":[{"type":"thinking","thinking":"ok","signature":"sig"},` +
				`{"type":"tool_use","id":"t1","name":"lookup","input":{"q":"x"}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"42"},` +
				`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Résumé"}},` +
				`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}],` +
				`"tools":[{"name":"lookup","description":"Find a record.","input_schema":{"type":"object"}}],"stream":false}`,
			// text bytes: "Be brief." 9 + "Hi there" 8 + "ok" 2 + tool_use JSON 63 + "42" 2
			// + "Résumé" 8 (UTF-8) + tools JSON 83 = 175; ceil(175/3) = 59; system + 3
			// messages = 4 × 4 = 16; 1 image × 1600. 59 + 16 + 1600 = 1675.
			want: Request{Model: "claude-sonnet-4-6", MaxOutputTokens: 1024, Choices: 1,
				EstimatedInputTokens: 1675},
		},
		{
			name: "responses with instructions and function call items",
			api:  OpenAIResponses,
			body: `{"model":"gpt-5.4","instructions":"Be funny.","input":[` +
				`{"role":"user","content":[{"type":"input_text","text":"Tell me a joke."}]},` +
				`{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},` +
				`{"type":"function_call_output","call_id":"c1","output":"done"}],"max_output_tokens":300,"stream":true}`,
			// text bytes: "Be funny." 9 + "Tell me a joke." 15 + function_call JSON 67 + "done" 4
			// = 95; ceil(95/3) = 32; instructions + 3 items = 4 × 4 = 16. 32 + 16 = 48.
			want: Request{Model: "gpt-5.4", MaxOutputTokens: 300, Choices: 1, Stream: true,
				EstimatedInputTokens: 48},
		},
		{
			name: "responses with a string input and nothing else",
			api:  OpenAIResponses,
			body: `{"model":"gpt-5.4","input":"Tell me a joke."}`,
			// ceil(15/3) = 5, plus 1 message × 4 = 9.
			want: Request{Model: "gpt-5.4", Choices: 1, EstimatedInputTokens: 9},
		},
		{
			name: "chat: the larger of max_tokens and max_completion_tokens; nulls are absent",
			api:  OpenAIChat,
			body: `{"model":"m","messages":[],"max_tokens":700,"max_completion_tokens":200,"n":null,"stream":null,"stream_options":null}`,
			want: Request{Model: "m", MaxOutputTokens: 700, Choices: 1},
		},
		{
			name: "chat: include_usage false, max null",
			api:  OpenAIChat,
			body: `{"model":"m","messages":[],"max_completion_tokens":null,"stream":true,"stream_options":{"include_usage":false}}`,
			want: Request{Model: "m", Choices: 1, Stream: true},
		},
		{
			name: "escaped keys are read as the provider reads them",
			api:  AnthropicMessages,
			body: `{"mod\u0065l":"claude-haiku-4-5","messages":[],"max_tokens":0}`,
			want: Request{Model: "claude-haiku-4-5", Choices: 1},
		},
		{
			name: "fields of other APIs are not read",
			api:  OpenAIResponses,
			body: `{"model":"gpt-5.4","messages":"not read","max_tokens":-5,"stream_options":7,"system":1}`,
			want: Request{Model: "gpt-5.4", Choices: 1},
		},
		{
			name: "anthropic without max_tokens reports 0",
			api:  AnthropicMessages,
			body: `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"abc"}]}`,
			// ceil(3/3) = 1, plus 4.
			want: Request{Model: "claude-haiku-4-5", Choices: 1, EstimatedInputTokens: 5},
		},
		{
			name: "the largest accepted max",
			api:  OpenAIChat,
			body: `{"model":"m","messages":[],"max_tokens":1000000000000000}`,
			want: Request{Model: "m", MaxOutputTokens: MaxCount, Choices: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.api, []byte(tt.body))
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	longModel := `"` + strings.Repeat("m", 1025) + `"`
	tests := []struct {
		api       API
		body      string
		field     string
		message   string
		errString string
	}{
		{OpenAIChat, `not json`, "", "body is not valid JSON", "body is not valid JSON"},
		{OpenAIChat, ``, "", "body is not valid JSON", ""},
		{OpenAIChat, `[1]`, "", "body must be a JSON object", ""},
		{OpenAIChat, `{"messages":[]}`, "model", "required", "model: required"},
		{OpenAIChat, `{"model":"","messages":[]}`, "model", "required", ""},
		{OpenAIChat, `{"model":null,"messages":[]}`, "model", "required", ""},
		{OpenAIChat, `{"model":5,"messages":[]}`, "model", "must be a string", ""},
		{OpenAIChat, `{"model":` + longModel + `,"messages":[]}`, "model", "longer than 1024 bytes", ""},
		{OpenAIChat, `{"model":"a","model":"b","messages":[]}`, "model", "duplicate key", "model: duplicate key"},
		{OpenAIChat, `{"model":"a","mod\u0065l":"b","messages":[]}`, "model", "duplicate key", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":-1}`, "max_tokens", "must be a non-negative integer", "max_tokens: must be a non-negative integer"},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":1.5}`, "max_tokens", "must be a non-negative integer", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":100.0}`, "max_tokens", "must be a non-negative integer", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":1e3}`, "max_tokens", "must be a non-negative integer", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":"10"}`, "max_tokens", "must be a non-negative integer", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":NaN}`, "max_tokens", "must be a non-negative integer", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":1000000000000001}`, "max_tokens", "must be at most 1000000000000000", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":99999999999999999999}`, "max_tokens", "must be at most 1000000000000000", ""},
		{AnthropicMessages, `{"model":"m","messages":[],"max_tokens":1,"max_tokens":2}`, "max_tokens", "duplicate key", ""},
		{OpenAIChat, `{"model":"m","messages":[],"max_completion_tokens":-3}`, "max_completion_tokens", "must be a non-negative integer", ""},
		{OpenAIResponses, `{"model":"m","max_output_tokens":true}`, "max_output_tokens", "must be a non-negative integer", ""},
		{OpenAIChat, `{"model":"m","messages":[],"n":0}`, "n", "must be a positive integer", ""},
		{OpenAIChat, `{"model":"m","messages":[],"stream":"yes"}`, "stream", "must be a boolean", ""},
		{OpenAIChat, `{"model":"m","messages":[],"stream":true,"stream":false}`, "stream", "duplicate key", ""},
		{OpenAIChat, `{"model":"m","messages":[],"stream_options":1}`, "stream_options", "must be an object", ""},
		{OpenAIChat, `{"model":"m","messages":[],"stream_options":{"include_usage":"true"}}`, "stream_options.include_usage", "must be a boolean", ""},
		{OpenAIChat, `{"model":"m","messages":[],"stream_options":{"include_usage":true,"include_usage":false}}`, "stream_options.include_usage", "duplicate key", ""},
		{OpenAIChat, `{"model":"m"}`, "messages", "required", ""},
		{AnthropicMessages, `{"model":"m","messages":null}`, "messages", "required", ""},
		{OpenAIChat, `{"model":"m","messages":"hi"}`, "messages", "must be an array", ""},
		{AnthropicMessages, `{"model":"m","messages":[{"role":"user","content":"x"},1]}`, "messages[1]", "must be an object", "messages[1]: must be an object"},
		{AnthropicMessages, `{"model":"m","messages":[],"system":5}`, "system", "must be a string or an array", ""},
		{OpenAIResponses, `{"model":"m","input":5}`, "input", "must be a string or an array", ""},
		{OpenAIResponses, `{"model":"m","instructions":{}}`, "instructions", "must be a string or an array", ""},
		{OpenAIResponses, `{"model":"m","tools":{}}`, "tools", "must be an array", ""},
		{OpenAIChat, `{"model":"m","messages":[],"functions":"f"}`, "functions", "must be an array", ""},
		{OpenAIResponses, `{"model":"m","input":"a","input":"b"}`, "input", "duplicate key", ""},
	}
	for _, tt := range tests {
		_, err := ParseRequest(tt.api, []byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%v %s: err = %v, want a *FieldError", tt.api, tt.body, err)
			continue
		}
		if fe.Field != tt.field || fe.Message != tt.message {
			t.Errorf("%v %.80s: got field %q message %q, want %q %q", tt.api, tt.body, fe.Field, fe.Message, tt.field, tt.message)
		}
		if tt.errString != "" && err.Error() != tt.errString {
			t.Errorf("%v %s: Error() = %q, want %q", tt.api, tt.body, err.Error(), tt.errString)
		}
	}
}

func TestParseRequestUnsupportedAPI(t *testing.T) {
	for _, api := range []API{0, GeminiGenerateContent, 42} {
		if _, err := ParseRequest(api, []byte(`{"model":"m","messages":[]}`)); !errors.Is(err, ErrUnsupportedAPI) {
			t.Errorf("ParseRequest(%v): err = %v, want ErrUnsupportedAPI", api, err)
		}
	}
}

// TestEstimateGrowsWithText checks the estimate follows the documented formula at the rounding
// edge: every third byte adds a token.
func TestEstimateGrowsWithText(t *testing.T) {
	for n := 0; n <= 10; n++ {
		body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("a", n) + `"}]}`
		r, err := ParseRequest(OpenAIChat, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want := int64((n+2)/3 + 4) // ceil(n/3) + one message
		if r.EstimatedInputTokens != want {
			t.Errorf("%d bytes: estimate %d, want %d", n, r.EstimatedInputTokens, want)
		}
	}
	if got := EstimateInputTokens(0, 0, 0); got != 0 {
		t.Errorf("EstimateInputTokens(0,0,0) = %d", got)
	}
	if got := EstimateInputTokens(7, 2, 3); got != 3+8+4800 {
		t.Errorf("EstimateInputTokens(7,2,3) = %d, want %d", got, 3+8+4800)
	}
}

func TestEnsureStreamUsage(t *testing.T) {
	tests := []struct {
		name     string
		in, want string
		injected bool
	}{
		{"absent: appended as the last member",
			`{"model":"m","stream":true,"messages":[]}`,
			`{"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}}`, true},
		{"absent, pretty printed: formatting kept",
			"{\n  \"model\": \"m\",\n  \"stream\": true\n}",
			"{\n  \"model\": \"m\",\n  \"stream\": true,\"stream_options\":{\"include_usage\":true}\n}", true},
		{"only stream",
			`{"stream":true}`,
			`{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"null options replaced",
			`{"stream":true,"stream_options":null,"model":"m"}`,
			`{"stream":true,"stream_options":{"include_usage":true},"model":"m"}`, true},
		{"other options kept",
			`{"stream":true,"stream_options":{"include_obfuscation":false},"model":"m"}`,
			`{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"model":"m"}`, true},
		{"empty options",
			`{"stream":true,"stream_options":{}}`,
			`{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"empty options with space",
			`{"stream":true,"stream_options":{ }}`,
			`{"stream":true,"stream_options":{"include_usage":true }}`, true},
		{"false becomes true",
			`{"stream_options": {"include_usage": false, "x": [1,{"include_usage":false}]}, "stream": true}`,
			`{"stream_options": {"include_usage": true, "x": [1,{"include_usage":false}]}, "stream": true}`, true},
		{"null becomes true",
			`{"stream":true,"stream_options":{"include_usage":null}}`,
			`{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"escaped key found",
			`{"stream":true,"stream_\u006fptions":{"include_usage":false}}`,
			`{"stream":true,"stream_\u006fptions":{"include_usage":true}}`, true},
		{"strings with braces and escaped quotes are skipped",
			`{"messages":[{"content":"}\"{,\\"}],"stream":true}`,
			`{"messages":[{"content":"}\"{,\\"}],"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"already asked", `{"stream":true,"stream_options":{"include_usage":true}}`,
			`{"stream":true,"stream_options":{"include_usage":true}}`, false},
		{"not streaming", `{"model":"m","stream":false}`, `{"model":"m","stream":false}`, false},
		{"stream absent", `{"model":"m"}`, `{"model":"m"}`, false},
		{"stream null", `{"model":"m","stream":null}`, `{"model":"m","stream":null}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got, injected, err := EnsureStreamUsage(in)
			if err != nil {
				t.Fatalf("EnsureStreamUsage: %v", err)
			}
			if string(got) != tt.want || injected != tt.injected {
				t.Errorf("got %s, %v\nwant %s, %v", got, injected, tt.want, tt.injected)
			}
			if string(in) != tt.in {
				t.Errorf("input modified: %s", in)
			}
		})
	}
}

func TestEnsureStreamUsageErrors(t *testing.T) {
	tests := []struct{ body, field, message string }{
		{`nope`, "", "body is not valid JSON"},
		{`"x"`, "", "body must be a JSON object"},
		{`{"stream":1}`, "stream", "must be a boolean"},
		{`{"stream":true,"stream":true}`, "stream", "duplicate key"},
		{`{"stream":true,"stream_options":[]}`, "stream_options", "must be an object"},
		{`{"stream":true,"stream_options":{},"stream_options":{}}`, "stream_options", "duplicate key"},
		{`{"stream":true,"stream_options":{"include_usage":1}}`, "stream_options.include_usage", "must be a boolean"},
		{`{"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`, "stream_options.include_usage", "duplicate key"},
	}
	for _, tt := range tests {
		_, _, err := EnsureStreamUsage([]byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || fe.Message != tt.message {
			t.Errorf("%s: err = %v, want %s: %s", tt.body, err, tt.field, tt.message)
		}
	}
}

// TestEnsureStreamUsageKeepsFields checks a rewritten request still parses the same, now asks
// for usage, and every other top-level member is untouched.
func TestEnsureStreamUsageKeepsFields(t *testing.T) {
	in := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true,` +
		`"max_completion_tokens":64,"temperature":0.2,"stream_options":{"include_obfuscation":false}}`)
	out, injected, err := EnsureStreamUsage(in)
	if err != nil || !injected {
		t.Fatalf("EnsureStreamUsage: %v, %v", injected, err)
	}
	before, err := ParseRequest(OpenAIChat, in)
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseRequest(OpenAIChat, out)
	if err != nil {
		t.Fatal(err)
	}
	if !after.IncludeUsage || before.IncludeUsage {
		t.Errorf("IncludeUsage before %v after %v", before.IncludeUsage, after.IncludeUsage)
	}
	after.IncludeUsage = false
	if before != after {
		t.Errorf("request changed: %+v → %+v", before, after)
	}
	assertSameMembersExceptStreamOptions(t, in, out)
}

func assertSameMembersExceptStreamOptions(tb testing.TB, in, out []byte) {
	tb.Helper()
	var pa, pb fastjson.Parser
	a, err := pa.ParseBytes(in)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := pb.ParseBytes(out)
	if err != nil {
		tb.Fatalf("rewritten body does not parse: %v\n%s", err, out)
	}
	if b.Type() != fastjson.TypeObject {
		tb.Fatalf("rewritten body is not an object: %s", out)
	}
	if !b.GetBool("stream_options", "include_usage") {
		tb.Errorf("stream_options.include_usage not true in %s", out)
	}
	if got, want := members(b, "stream_options"), members(a, "stream_options"); got != want {
		tb.Errorf("members changed:\n%s\n%s", want, got)
	}
	if so := a.Get("stream_options"); so != nil && so.Type() == fastjson.TypeObject {
		if got, want := members(b.Get("stream_options"), "include_usage"), members(so, "include_usage"); got != want {
			tb.Errorf("stream_options members changed:\n%s\n%s", want, got)
		}
	}
}

// members lists an object's members in order, but skip, as compact JSON.
func members(v *fastjson.Value, skip string) string {
	o, _ := v.Object()
	var buf []byte
	o.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) == skip {
			return
		}
		buf = append(buf, k...)
		buf = append(buf, '=')
		buf = v.MarshalTo(buf)
		buf = append(buf, ';')
	})
	return string(buf)
}
