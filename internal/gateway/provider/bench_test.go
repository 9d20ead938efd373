package provider

import (
	"strings"
	"testing"
)

// BenchmarkStreamTap runs a fresh tap over each stream fixture, as the proxy does per response:
// whole, and in 64-byte reads (a worst case for events split across reads).
func BenchmarkStreamTap(b *testing.B) {
	for _, tt := range streamFixtures {
		in := fixture(b, tt.file)
		for _, drop := range []bool{false, true} {
			if drop && tt.api != OpenAIChat {
				continue
			}
			for _, chunk := range []int{len(in), 64} {
				name := tt.file[strings.LastIndexByte(tt.file, '/')+1:]
				name += map[bool]string{false: "", true: "/drop"}[drop]
				name += map[bool]string{false: "/64B", true: "/whole"}[chunk == len(in)]
				b.Run(name, func(b *testing.B) {
					b.SetBytes(int64(len(in)))
					b.ReportAllocs()
					for b.Loop() {
						tap := NewStreamTap(tt.api, drop)
						for p := in; len(p) > 0; {
							n := min(chunk, len(p))
							_, _ = tap.Write(p[:n])
							p = p[n:]
						}
						_, _ = tap.Flush()
						if _, complete := tap.Usage(); !complete {
							b.Fatal("incomplete")
						}
					}
				})
			}
		}
	}
}

// benchChatBody is a realistic chat request: a system prompt, a few turns and a tool.
var benchChatBody = []byte(`{"model":"gpt-5-mini","stream":true,"max_completion_tokens":1024,` +
	`"messages":[{"role":"system","content":"` + strings.Repeat("You are a billing assistant. ", 40) + `"},` +
	strings.Repeat(`{"role":"user","content":"How is my usage billed this month, and what is included in my plan?"},`+
		`{"role":"assistant","content":"Usage above the included quota is billed in arrears at the end of the period."},`, 10) +
	`{"role":"user","content":[{"type":"text","text":"And cached tokens?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}],` +
	`"tools":[{"type":"function","function":{"name":"get_invoice","description":"Fetch an invoice.","parameters":{"type":"object","properties":{"id":{"type":"string"}}}}}]}`)

func BenchmarkParseRequest(b *testing.B) {
	b.SetBytes(int64(len(benchChatBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(OpenAIChat, benchChatBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnsureStreamUsage(b *testing.B) {
	b.SetBytes(int64(len(benchChatBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := EnsureStreamUsage(benchChatBody); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkExtractJSON(b *testing.B) {
	for _, tt := range jsonFixtures {
		body := fixture(b, tt.file)
		b.Run(tt.file[strings.LastIndexByte(tt.file, '/')+1:], func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ExtractJSON(tt.api, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
