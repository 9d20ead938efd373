package provider

import (
	"os"
	"path/filepath"
	"testing"
)

// fixture reads a file under testdata; provider fixtures are byte-for-byte copies of the shared
// ones (see testdata/README.md).
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestRoute(t *testing.T) {
	tests := []struct {
		method, path string
		want         API
		ok           bool
	}{
		{"POST", "/v1/chat/completions", OpenAIChat, true},
		{"POST", "/v1/responses", OpenAIResponses, true},
		{"POST", "/v1/messages", AnthropicMessages, true},
		{"GET", "/v1/chat/completions", 0, false},
		{"post", "/v1/messages", 0, false},
		{"POST", "/v1/messages/", 0, false},
		{"POST", "/v1/messages/count_tokens", 0, false},
		{"POST", "/v1/messages/batches", 0, false},
		{"GET", "/v1/responses/resp_1", 0, false},
		{"POST", "/v1/responses/resp_1/cancel", 0, false},
		{"POST", "/v1/completions", 0, false},
		{"POST", "/v1beta/models/gemini-2.5-flash:generateContent", 0, false},
		{"POST", "", 0, false},
	}
	for _, tt := range tests {
		got, ok := Route(tt.method, tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Route(%q, %q) = %v, %v; want %v, %v", tt.method, tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAPIString(t *testing.T) {
	for api, want := range map[API]string{
		OpenAIChat:            "openai.chat",
		OpenAIResponses:       "openai.responses",
		AnthropicMessages:     "anthropic.messages",
		GeminiGenerateContent: "gemini.generate_content",
		0:                     "API(0)",
		99:                    "API(99)",
	} {
		if got := api.String(); got != want {
			t.Errorf("API(%d).String() = %q, want %q", int(api), got, want)
		}
	}
}
