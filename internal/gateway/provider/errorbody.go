package provider

import (
	"bytes"
	"encoding/json"
)

// ErrorContentType is the content type of every ErrorBody.
const ErrorContentType = "application/json"

// ErrorBody returns an error body in the API's own format, for a request the gateway denies or
// rejects, so the client's SDK raises its usual error for the status:
//
//   - OpenAI (chat, Responses): {"error":{"message","type","param":null,"code"}}; code is null
//     when empty; type is insufficient_quota for a 429 whose code is insufficient_quota,
//     rate_limit_error for any other 429, server_error for 5xx, invalid_request_error otherwise.
//   - Anthropic: {"type":"error","error":{"type","message"}}; the type follows Anthropic's
//     table (400 invalid_request_error, 401 authentication_error, 402 billing_error,
//     403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
//     504 timeout_error, 529 overloaded_error, other 5xx api_error, other 4xx
//     invalid_request_error); Anthropic bodies have no code, so code is not sent.
//   - Gemini: {"error":{"code":status,"message","status"}} with the google.rpc status name.
//
// Any other API value gets the OpenAI shape.
func ErrorBody(api API, status int, message, code string) []byte {
	var v any
	switch api {
	case AnthropicMessages:
		type inner struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		}
		v = struct {
			Type  string `json:"type"`
			Error inner  `json:"error"`
		}{"error", inner{anthropicErrorType(status), message}}
	case GeminiGenerateContent:
		type inner struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		}
		v = struct {
			Error inner `json:"error"`
		}{inner{status, message, googleStatus(status)}}
	default:
		type inner struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		}
		var c *string
		if code != "" {
			c = &code
		}
		v = struct {
			Error inner `json:"error"`
		}{inner{message, openAIErrorType(status, code), nil, c}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // only strings and ints: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func openAIErrorType(status int, code string) string {
	switch {
	case status == 429 && code == "insufficient_quota":
		return "insufficient_quota"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 504:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

func googleStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}
