package provider

import (
	"errors"
	"strconv"
)

// API is one provider API the gateway understands. The zero value is not an API: every function
// given it answers ErrUnsupportedAPI (or, for NewStreamTap, passes bytes through untracked).
type API int

// The APIs. GeminiGenerateContent is supported by ExtractJSON and ErrorBody only: Route never
// returns it, ParseRequest and EnsureStreamUsage reject it, and a StreamTap forwards its bytes
// without tracking usage.
const (
	OpenAIChat API = iota + 1
	OpenAIResponses
	AnthropicMessages
	GeminiGenerateContent
)

// ErrUnsupportedAPI is returned for an API value a function does not handle.
var ErrUnsupportedAPI = errors.New("unsupported provider API")

// String names the API for logs and event properties.
func (a API) String() string {
	switch a {
	case OpenAIChat:
		return "openai.chat"
	case OpenAIResponses:
		return "openai.responses"
	case AnthropicMessages:
		return "anthropic.messages"
	case GeminiGenerateContent:
		return "gemini.generate_content"
	}
	return "API(" + strconv.Itoa(int(a)) + ")"
}

// Route maps an upstream request to the API it uses. Only POST to exactly /v1/chat/completions,
// /v1/responses or /v1/messages is metered: the method is compared case-sensitively, the path
// must carry no trailing slash and no query (pass URL.Path), and neighbours such as
// /v1/messages/count_tokens, /v1/messages/batches or GET /v1/responses/{id} answer false.
func Route(method, path string) (API, bool) {
	if method != "POST" {
		return 0, false
	}
	switch path {
	case "/v1/chat/completions":
		return OpenAIChat, true
	case "/v1/responses":
		return OpenAIResponses, true
	case "/v1/messages":
		return AnthropicMessages, true
	}
	return 0, false
}
