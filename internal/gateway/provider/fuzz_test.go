package provider

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var fuzzAPIs = []API{0, OpenAIChat, OpenAIResponses, AnthropicMessages, GeminiGenerateContent}

func fuzzAPI(b uint8) API { return fuzzAPIs[int(b)%len(fuzzAPIs)] }

var requestSeeds = []string{
	`{"model":"gpt-5-mini","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}],"max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":false},"n":2,"tools":[{"type":"function"}]}`,
	`{"model":"claude-haiku-4-5","max_tokens":10,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","content":[{"type":"text","text":"r"}]}]}]}`,
	`{"model":"gpt-5.4","instructions":"i","input":[{"type":"function_call","arguments":"{}"},"x",3],"max_output_tokens":null}`,
	`{"model":"m","model":"n","messages":[]}`,
	`{"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}`,
	`{"stream_\u006fptions":{},"stream":true}`,
	`{"model":"m","messages":[],"max_tokens":99999999999999999999}`,
	`{"a":"}\"{","stream":true , "stream_options" : null }`,
	`[`, `{}`, ``, `{"model":NaN}`,
}

func FuzzParseRequest(f *testing.F) {
	for i, s := range requestSeeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, apiByte uint8, body []byte) {
		api := fuzzAPI(apiByte)
		r, err := ParseRequest(api, body)
		r2, err2 := ParseRequest(api, body)
		if r != r2 || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %+v %v / %+v %v", r, err, r2, err2)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) && !errors.Is(err, ErrUnsupportedAPI) {
				t.Fatalf("error of an unexpected type: %v", err)
			}
			return
		}
		if r.Model == "" || r.MaxOutputTokens < 0 || r.MaxOutputTokens > MaxCount || r.Choices < 1 || r.EstimatedInputTokens < 0 {
			t.Fatalf("out of range: %+v", r)
		}
		if api != OpenAIChat && (r.IncludeUsage || r.Choices != 1) {
			t.Fatalf("chat-only fields set for %v: %+v", api, r)
		}
	})
}

func FuzzEnsureStreamUsage(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		out, injected, err := EnsureStreamUsage(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error of an unexpected type: %v", err)
			}
			return
		}
		if !injected {
			if !bytes.Equal(out, body) {
				t.Fatal("body changed without injection")
			}
			return
		}
		assertSameMembersExceptStreamOptions(t, body, out)
		// Idempotent: a rewritten body already asks for usage.
		again, injected2, err := EnsureStreamUsage(out)
		if err != nil || injected2 || !bytes.Equal(again, out) {
			t.Fatalf("second rewrite: %v %v", injected2, err)
		}
	})
}

func FuzzExtractJSON(f *testing.F) {
	for _, tt := range jsonFixtures {
		f.Add(uint8(tt.api), fixture(f, tt.file))
	}
	f.Add(uint8(AnthropicMessages), []byte(`{"usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":9}}}`))
	f.Add(uint8(OpenAIChat), []byte(`{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1000000000000000,"cache_write_tokens":1000000000000000}}}`))
	f.Fuzz(func(t *testing.T, apiByte uint8, body []byte) {
		u, err := ExtractJSON(fuzzAPI(apiByte), body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) && !errors.Is(err, ErrUnsupportedAPI) {
				t.Fatalf("error of an unexpected type: %v", err)
			}
			return
		}
		checkUsage(t, u)
	})
}

func checkUsage(t *testing.T, u Usage) {
	t.Helper()
	for _, n := range []int64{u.InputUncached, u.Output, u.CacheRead, u.CacheWrite5m, u.CacheWrite1h, u.Reasoning, u.ToolCalls} {
		if n < 0 {
			t.Fatalf("negative count: %+v", u)
		}
	}
	ms := u.Measurements()
	if len(ms) < 2 || ms[0].MetricKey != MetricInputTokens || ms[1].MetricKey != MetricOutputTokens {
		t.Fatalf("measurements %v", ms)
	}
}

// FuzzStreamTap checks the tap never panics, that how the bytes are split never changes the
// output or the usage, that without dropping the output is the input, and that dropping only
// ever removes bytes.
func FuzzStreamTap(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.sse")
	for i, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for api := range uint8(4) {
			f.Add(api, i%2 == 0, uint64(i*7+1), b)
		}
	}
	f.Add(uint8(OpenAIChat), true, uint64(3), []byte("data: {\"choices\":[],\"usage\":{}}\r\n\r\ndata: x\r\r\n\n"))
	f.Fuzz(func(t *testing.T, apiByte uint8, drop bool, seed uint64, data []byte) {
		api := fuzzAPI(apiByte)
		ref := NewStreamTap(api, drop)
		refOut := feed(t, ref, data, whole)
		refUsage, refComplete := ref.Usage()
		checkUsage(t, refUsage)

		s := seed | 1
		tap := NewStreamTap(api, drop)
		out := feed(t, tap, data, func() int {
			s ^= s << 13
			s ^= s >> 7
			s ^= s << 17
			return int(s % 67)
		})
		u, complete := tap.Usage()
		if !bytes.Equal(out, refOut) || u != refUsage || complete != refComplete || tap.HasUsage() != ref.HasUsage() {
			t.Fatalf("split changed the result:\n%q\n%q\n%+v\n%+v", out, refOut, u, refUsage)
		}
		if !(drop && api == OpenAIChat) && !bytes.Equal(out, data) {
			t.Fatalf("pass-through changed bytes")
		}
		if len(out) > len(data) {
			t.Fatalf("output longer than input")
		}
	})
}
