package provider

import (
	"encoding/json"
	"testing"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		api     API
		status  int
		message string
		code    string
		want    string
	}{
		{OpenAIChat, 429, "Monthly spend limit reached.", "insufficient_quota",
			`{"error":{"message":"Monthly spend limit reached.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`},
		{OpenAIResponses, 429, "Too many requests.", "rate_limit_exceeded",
			`{"error":{"message":"Too many requests.","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`},
		{OpenAIChat, 400, `max_tokens: must be a non-negative integer`, "",
			`{"error":{"message":"max_tokens: must be a non-negative integer","type":"invalid_request_error","param":null,"code":null}}`},
		{OpenAIChat, 503, "Upstream unavailable.", "",
			`{"error":{"message":"Upstream unavailable.","type":"server_error","param":null,"code":null}}`},
		{AnthropicMessages, 429, "Spend limit <reached> & \"quoted\"", "ignored",
			`{"type":"error","error":{"type":"rate_limit_error","message":"Spend limit <reached> & \"quoted\""}}`},
		{AnthropicMessages, 400, "model: required", "",
			`{"type":"error","error":{"type":"invalid_request_error","message":"model: required"}}`},
		{AnthropicMessages, 402, "Out of credit.", "",
			`{"type":"error","error":{"type":"billing_error","message":"Out of credit."}}`},
		{AnthropicMessages, 529, "Overloaded.", "",
			`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded."}}`},
		{AnthropicMessages, 502, "Bad gateway.", "",
			`{"type":"error","error":{"type":"api_error","message":"Bad gateway."}}`},
		{AnthropicMessages, 422, "Unprocessable.", "",
			`{"type":"error","error":{"type":"invalid_request_error","message":"Unprocessable."}}`},
		{GeminiGenerateContent, 429, "Quota exceeded.", "",
			`{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}`},
		{GeminiGenerateContent, 400, "Bad.", "",
			`{"error":{"code":400,"message":"Bad.","status":"INVALID_ARGUMENT"}}`},
		{0, 401, "No key.", "invalid_api_key",
			`{"error":{"message":"No key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`},
	}
	for _, tt := range tests {
		got := ErrorBody(tt.api, tt.status, tt.message, tt.code)
		if string(got) != tt.want {
			t.Errorf("%v %d:\ngot  %s\nwant %s", tt.api, tt.status, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("%v %d: invalid JSON", tt.api, tt.status)
		}
	}
	// Control characters and invalid UTF-8 in a message still give valid JSON.
	if b := ErrorBody(AnthropicMessages, 400, "a\x00b\xffc\n", ""); !json.Valid(b) {
		t.Errorf("invalid JSON: %q", b)
	}
	if ErrorContentType != "application/json" {
		t.Errorf("ErrorContentType = %q", ErrorContentType)
	}
}
