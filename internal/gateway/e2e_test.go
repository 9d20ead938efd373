package gateway

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/store"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// The end-to-end tests: the official OpenAI and Anthropic Go SDKs are the clients, the gateway
// is real and served over 127.0.0.1, the billing service is real on SQLite, and the upstream
// replays the provider fixtures byte for byte.

// bill is what the ledger must hold for one fixture's call, priced on testdata/catalog.yaml.
// Costs are the "Cost" column of llm-usage-accounting.md; amounts are list × 1.20.
type bill struct {
	id           string
	model        string
	measurements map[string]string
	amount, cost string
}

var (
	billChat = bill{
		id: "openai:chatcmpl-FIXTURE0000000000000000001", model: "gpt-5-mini",
		// 2006 prompt of which 1920 cached; 300 completion of which 192 reasoning.
		measurements: map[string]string{"input_tokens": "86", "cache_read_tokens": "1920", "output_tokens": "300", "reasoning_tokens": "192"},
		amount:       "0.0008034", cost: "0.0006695",
	}
	billChatStream = bill{
		id: "openai:chatcmpl-FIXTURE0000000000000000002", model: "gpt-4o-mini",
		measurements: map[string]string{"input_tokens": "19", "output_tokens": "10"},
		amount:       "0.00001062", cost: "0.00000885",
	}
	billResponses = bill{
		id: "openai:resp_FIXTURE00000000000000000000000000000000000001", model: "gpt-5.4",
		// 3310 input of which 3072 cached; 412 output of which 320 reasoning.
		measurements: map[string]string{"input_tokens": "238", "cache_read_tokens": "3072", "output_tokens": "412", "reasoning_tokens": "320"},
		amount:       "0.0090516", cost: "0.007543",
	}
	billMessage = bill{
		id: "anthropic:msg_01FIXTURENonStream000000001", model: "claude-sonnet-4-5",
		measurements: map[string]string{"input_tokens": "42", "cache_write_5m_tokens": "1024", "cache_write_1h_tokens": "512",
			"cache_read_tokens": "4096", "output_tokens": "211"},
		amount: "0.01371816", cost: "0.0114318",
	}
	billMessageStream = bill{
		id: "anthropic:msg_01FIXTUREStream0000000001", model: "claude-haiku-4-5",
		measurements: map[string]string{"input_tokens": "25", "cache_read_tokens": "4608", "output_tokens": "12"},
		amount:       "0.00065496", cost: "0.0005458",
	}
	billMessageLegacy = bill{
		id: "anthropic:msg_01FIXTUREStreamLegacy00001", model: "claude-sonnet-4-5",
		// No TTL split: the 2048 cache-write tokens are billed at the 5-minute rate.
		measurements: map[string]string{"input_tokens": "472", "cache_write_5m_tokens": "2048", "output_tokens": "5"},
		amount:       "0.0110052", cost: "0.009171",
	}
)

// checkBill compares the stored event with the expected bill and the request ID the client got.
func checkBill(t *testing.T, e *env, want bill, requestID string, props map[string]string) {
	t.Helper()
	e.flush()
	got := e.event(want.id)
	if got.CorrelationID != requestID || requestID == "" {
		t.Errorf("correlationId = %q, want the Levy-Request-Id %q", got.CorrelationID, requestID)
	}
	if !mapsEqual(got.Measurements, want.measurements) {
		t.Errorf("measurements = %v, want %v", got.Measurements, want.measurements)
	}
	if got.Amount != want.amount || got.Cost != want.cost {
		t.Errorf("amount, cost = %s, %s; want %s, %s", got.Amount, got.Cost, want.amount, want.cost)
	}
	if got.Properties[PropModel] != want.model {
		t.Errorf("model property = %q, want %q", got.Properties[PropModel], want.model)
	}
	for k, v := range props {
		if got.Properties[k] != v {
			t.Errorf("property %s = %q, want %q (all: %v)", k, got.Properties[k], v, got.Properties)
		}
	}
	if evs := e.eventsOf(requestID); len(evs) != 1 {
		t.Errorf("%d events for request %s, want 1", len(evs), requestID)
	}
	// The event carries the request ID as its correlationId: applied to the counters, it
	// settles the reservation the call held.
	e.settled()
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkUpstreamCredentials: the upstream got the gateway's provider key and nothing of the
// client's Levy key or Levy headers.
func checkUpstreamCredentials(t *testing.T, e *env) {
	t.Helper()
	reqs := e.up.requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	for _, r := range reqs {
		for k, vs := range r.Header {
			if strings.HasPrefix(k, "Levy-") {
				t.Errorf("upstream got header %s", k)
			}
			for _, v := range vs {
				if strings.Contains(v, e.key) {
					t.Errorf("upstream got the Levy key in %s", k)
				}
			}
		}
		if r.Path == "/v1/messages" {
			if r.Header.Get("X-Api-Key") != upstreamAnthropicKey {
				t.Errorf("upstream x-api-key = %q", r.Header.Get("X-Api-Key"))
			}
		} else if r.Header.Get("Authorization") != "Bearer "+upstreamOpenAIKey {
			t.Errorf("upstream Authorization = %q", r.Header.Get("Authorization"))
		}
	}
}

// checkLevyHeaders: the customer's limits (payg: 600 requests and 10,000,000 tokens a
// minute) in the route's SDK shape and the generic one; the upstream's account-level headers
// are gone, its other headers relayed.
func checkLevyHeaders(t *testing.T, h http.Header, anthropicRoute bool) {
	t.Helper()
	if !strings.HasPrefix(h.Get(HeaderRequestID), "req_") {
		t.Errorf("Levy-Request-Id = %q", h.Get(HeaderRequestID))
	}
	if h.Get("X-RateLimit-Limit") == "" || h.Get("X-RateLimit-Remaining") == "" ||
		!strings.Contains(h.Get("RateLimit-Policy"), `"requests_per_minute";q=600;w=60`) ||
		!strings.Contains(h.Get("RateLimit-Policy"), `"tokens_per_minute";q=10000000;w=60`) {
		t.Errorf("generic headers: %v", h)
	}
	want := map[string]string{}
	if anthropicRoute {
		want["Anthropic-Ratelimit-Requests-Limit"] = "600"
		want["Anthropic-Ratelimit-Requests-Remaining"] = "599"
		want["Anthropic-Ratelimit-Tokens-Limit"] = "10000000" // not the upstream's 280000
		want["Anthropic-Priority-Input-Tokens-Limit"] = ""
		want["Anthropic-Organization-Id"] = ""
		want["Request-Id"] = "req_upstream_anthropic"
		if _, err := time.Parse(time.RFC3339, h.Get("Anthropic-Ratelimit-Requests-Reset")); err != nil {
			t.Errorf("anthropic-ratelimit-requests-reset %q: %v", h.Get("Anthropic-Ratelimit-Requests-Reset"), err)
		}
	} else {
		want["X-Ratelimit-Limit-Requests"] = "600" // not the upstream's 30000
		want["X-Ratelimit-Remaining-Requests"] = "599"
		want["X-Ratelimit-Limit-Tokens"] = "10000000"
		want["Openai-Organization"] = ""
		want["Openai-Processing-Ms"] = "42"
		want["X-Request-Id"] = "req_upstream_openai"
		if _, err := time.ParseDuration(h.Get("X-Ratelimit-Reset-Requests")); err != nil {
			t.Errorf("x-ratelimit-reset-requests %q: %v", h.Get("X-Ratelimit-Reset-Requests"), err)
		}
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func openAIClient(e *env) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.openAIBase()), option.WithAPIKey(e.key), option.WithMaxRetries(0))
}

func anthropicClient(e *env) anthropic.Client {
	return anthropic.NewClient(anthropicoption.WithBaseURL(e.anthropicBase()), anthropicoption.WithAPIKey(e.key),
		anthropicoption.WithMaxRetries(0))
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}
}

func messageParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 1024,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))},
	}
}

func TestSDKOpenAIChat(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	client := openAIClient(e)
	var raw *http.Response
	resp, err := client.Chat.Completions.New(context.Background(), chatParams("gpt-5-mini"), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "chatcmpl-FIXTURE0000000000000000001" || resp.Usage.PromptTokens != 2006 ||
		resp.Usage.PromptTokensDetails.CachedTokens != 1920 || !strings.HasPrefix(resp.Choices[0].Message.Content, "Invoices are generated") {
		t.Errorf("the SDK read %+v", resp)
	}
	// The SDK keeps the body's JSON value, without the trailing newline.
	if resp.RawJSON() != strings.TrimSpace(string(fixture(t, "openai-chat-completion.json"))) {
		t.Error("the SDK's raw JSON differs from the upstream's body")
	}
	checkLevyHeaders(t, raw.Header, false)
	checkUpstreamCredentials(t, e)
	checkBill(t, e, billChat, raw.Header.Get(HeaderRequestID), map[string]string{
		PropProvider: "openai", PropAPI: "openai.chat", PropStream: "false", PropMetering: "reported",
		PropProviderModel: "gpt-5-mini-2025-08-07",
	})
}

func TestSDKOpenAIChatStream(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			e := newEnv(t, "payg", Config{})
			client := openAIClient(e)
			p := chatParams("gpt-4o-mini")
			if includeUsage {
				p.StreamOptions.IncludeUsage = openai.Bool(true)
			}
			var raw *http.Response
			stream := client.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&raw))
			var text strings.Builder
			usageChunks := 0
			for stream.Next() {
				ch := stream.Current()
				if len(ch.Choices) == 0 {
					usageChunks++
					if ch.Usage.PromptTokens != 19 || ch.Usage.CompletionTokens != 10 {
						t.Errorf("usage chunk %+v", ch.Usage)
					}
					continue
				}
				text.WriteString(ch.Choices[0].Delta.Content)
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != "Hello! How can I help you today?" {
				t.Errorf("streamed text %q", text.String())
			}
			// The client gets the usage chunk only when it asked for it; upstream always
			// gets the request for usage.
			if want := map[bool]int{false: 0, true: 1}[includeUsage]; usageChunks != want {
				t.Errorf("%d usage chunks reached the client, want %d", usageChunks, want)
			}
			if up := e.up.requests(); len(up) != 1 || !strings.Contains(string(up[0].Body), `"include_usage":true`) {
				t.Errorf("upstream body does not ask for usage: %s", up[0].Body)
			}
			checkLevyHeaders(t, raw.Header, false)
			checkBill(t, e, billChatStream, raw.Header.Get(HeaderRequestID), map[string]string{
				PropStream: "true", PropMetering: "reported", PropProviderModel: "gpt-4o-mini-2024-07-18",
			})
		})
	}
}

func TestSDKOpenAIResponses(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	client := openAIClient(e)
	var raw *http.Response
	resp, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "gpt-5.4",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("When does my plan renew?")},
	}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "resp_FIXTURE00000000000000000000000000000000000001" || resp.Usage.InputTokens != 3310 ||
		resp.Usage.OutputTokensDetails.ReasoningTokens != 320 {
		t.Errorf("the SDK read %+v", resp.Usage)
	}
	checkLevyHeaders(t, raw.Header, false)
	checkUpstreamCredentials(t, e)
	checkBill(t, e, billResponses, raw.Header.Get(HeaderRequestID), map[string]string{
		PropAPI: "openai.responses", PropStream: "false", PropMetering: "reported",
	})
}

func TestSDKAnthropicMessage(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	client := anthropicClient(e)
	var raw *http.Response
	msg, err := client.Messages.New(context.Background(), messageParams("claude-sonnet-4-5"), anthropicoption.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID != "msg_01FIXTURENonStream000000001" || msg.Usage.CacheReadInputTokens != 4096 ||
		msg.Usage.CacheCreation.Ephemeral1hInputTokens != 512 || msg.Usage.OutputTokens != 211 {
		t.Errorf("the SDK read %+v", msg.Usage)
	}
	checkLevyHeaders(t, raw.Header, true)
	checkUpstreamCredentials(t, e)
	checkBill(t, e, billMessage, raw.Header.Get(HeaderRequestID), map[string]string{
		PropProvider: "anthropic", PropAPI: "anthropic.messages", PropStream: "false", PropMetering: "reported",
		PropProviderModel: "claude-sonnet-4-5-20250929",
	})
}

func TestSDKAnthropicStream(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    bill
		model   string
		flags   string
	}{
		{"anthropic-message-stream.sse", billMessageStream, "claude-haiku-4-5", ""},
		{"anthropic-message-stream-legacy-delta.sse", billMessageLegacy, "claude-sonnet-4-5", "cache_ttl_unknown"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			e := newEnv(t, "payg", Config{})
			e.up.messagesStream = tc.fixture
			client := anthropicClient(e)
			var raw *http.Response
			stream := client.Messages.NewStreaming(context.Background(), messageParams(tc.model), anthropicoption.WithResponseInto(&raw))
			var msg anthropic.Message
			for stream.Next() {
				if err := msg.Accumulate(stream.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if "anthropic:"+msg.ID != tc.want.id || strconv.FormatInt(msg.Usage.OutputTokens, 10) != tc.want.measurements["output_tokens"] {
				t.Errorf("the SDK accumulated id %s, usage %+v", msg.ID, msg.Usage)
			}
			checkLevyHeaders(t, raw.Header, true)
			props := map[string]string{PropStream: "true", PropMetering: "reported", PropUsageFlags: tc.flags}
			checkBill(t, e, tc.want, raw.Header.Get(HeaderRequestID), props)
		})
	}
}

// TestRawBytes: the client gets exactly the bytes the upstream sent (less the usage chunk the
// gateway asked for on the client's behalf), with our headers, on every route and fixture.
func TestRawBytes(t *testing.T) {
	for _, counters := range []string{"memory", "redis"} {
		t.Run(counters, func(t *testing.T) { testRawBytes(t, counters) })
	}
}

func testRawBytes(t *testing.T, counters string) {
	const chat = `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`
	const msgs = `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, path, body, stream string
		want                     func(testing.TB) []byte
		bill                     bill
		contentType              string
	}{
		{"chat", "/openai/v1/chat/completions", chat, "",
			func(tb testing.TB) []byte { return fixture(tb, "openai-chat-completion.json") }, billChat, "application/json"},
		{"chat bare path", "/v1/chat/completions", chat, "",
			func(tb testing.TB) []byte { return fixture(tb, "openai-chat-completion.json") }, billChat, "application/json"},
		{"chat stream", "/openai/v1/chat/completions",
			`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "",
			func(tb testing.TB) []byte {
				return withoutUsageChunk(tb, fixture(tb, "openai-chat-completion-stream.sse"))
			},
			billChatStream, "text/event-stream; charset=utf-8"},
		{"chat stream with usage", "/openai/v1/chat/completions",
			`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "",
			func(tb testing.TB) []byte { return fixture(tb, "openai-chat-completion-stream.sse") },
			billChatStream, "text/event-stream; charset=utf-8"},
		{"responses", "/openai/v1/responses", `{"model":"gpt-5.4","input":"hi"}`, "",
			func(tb testing.TB) []byte { return fixture(tb, "openai-responses.json") }, billResponses, "application/json"},
		{"messages", "/anthropic/v1/messages", msgs, "",
			func(tb testing.TB) []byte { return fixture(tb, "anthropic-message.json") }, billMessage, "application/json"},
		{"messages stream", "/anthropic/v1/messages",
			`{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"anthropic-message-stream.sse",
			func(tb testing.TB) []byte { return fixture(tb, "anthropic-message-stream.sse") },
			billMessageStream, "text/event-stream; charset=utf-8"},
		{"messages legacy stream", "/anthropic/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			"anthropic-message-stream-legacy-delta.sse",
			func(tb testing.TB) []byte { return fixture(tb, "anthropic-message-stream-legacy-delta.sse") },
			billMessageLegacy, "text/event-stream; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvOn(t, counters, "payg", Config{})
			if tc.stream != "" {
				e.up.messagesStream = tc.stream
			}
			resp, body := e.post(tc.path, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if want := tc.want(t); string(body) != string(want) {
				t.Errorf("body differs from the upstream's:\n got %q\nwant %q", body, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.contentType)
			}
			checkLevyHeaders(t, resp.Header, strings.HasPrefix(tc.path, "/anthropic"))
			checkUpstreamCredentials(t, e)
			checkBill(t, e, tc.bill, resp.Header.Get(HeaderRequestID), nil)
		})
	}
}

// TestCancelMidStream: a client that hangs up mid-stream is billed for what was consumed.
func TestCancelMidStream(t *testing.T) {
	t.Run("anthropic", func(t *testing.T) {
		e := newEnv(t, "payg", Config{})
		e.up.cutAt = `"text":"Hello"` // the upstream stalls after the first text delta
		client := anthropicClient(e)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var raw *http.Response
		stream := client.Messages.NewStreaming(ctx, messageParams("claude-haiku-4-5"), anthropicoption.WithResponseInto(&raw))
		sawHello := false
		for stream.Next() {
			ev := stream.Current()
			if ev.Type == "content_block_delta" && ev.Delta.Text == "Hello" {
				sawHello = true
				cancel()
				break
			}
		}
		stream.Close()
		if !sawHello {
			t.Fatalf("the client never saw the first delta: %v", stream.Err())
		}
		// Billed from message_start: the input side in full and the output reported so far.
		checkBill(t, e, bill{
			id: billMessageStream.id, model: "claude-haiku-4-5",
			measurements: map[string]string{"input_tokens": "25", "cache_read_tokens": "4608", "output_tokens": "1"},
			amount:       "0.00058896", cost: "0.0004908",
		}, raw.Header.Get(HeaderRequestID), map[string]string{PropMetering: "partial"})
		if _, released := e.auth.calls(); len(released) != 0 {
			t.Errorf("a consumed call's reservation was released: %v", released)
		}
		if len(e.auth.reservations()) != 1 {
			t.Errorf("reservations %v", e.auth.reservations())
		}
	})
	t.Run("openai", func(t *testing.T) {
		e := newEnv(t, "payg", Config{})
		e.up.cutAt = `"content":"Hello"`
		client := openAIClient(e)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var raw *http.Response
		stream := client.Chat.Completions.NewStreaming(ctx, chatParams("gpt-4o-mini"), option.WithResponseInto(&raw))
		sawHello := false
		for stream.Next() {
			if ch := stream.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content == "Hello" {
				sawHello = true
				cancel()
				break
			}
		}
		stream.Close()
		if !sawHello {
			t.Fatalf("the client never saw the first delta: %v", stream.Err())
		}
		// OpenAI reports usage only at the end: the input estimate is billed, no output.
		// The SDK sent one user message "Say hello": ceil(9 bytes / 3) + 4 per message = 7.
		checkBill(t, e, bill{
			id: billChatStream.id, model: "gpt-4o-mini",
			measurements: map[string]string{"input_tokens": "7", "output_tokens": "0"},
			amount:       "0.00000126", cost: "0.00000105",
		}, raw.Header.Get(HeaderRequestID), map[string]string{PropMetering: "estimated"})
	})
}

// TestDeny: over the customer's limit the SDKs get a 429 in their provider's format, with
// Retry-After, and nothing reaches the upstream or the ledger.
func TestDeny(t *testing.T) {
	for _, counters := range []string{"memory", "redis"} {
		t.Run(counters, func(t *testing.T) { testDeny(t, counters) })
	}
}

func testDeny(t *testing.T, counters string) {
	e := newEnvOn(t, counters, "tight", Config{}) // one request a minute
	oa := openAIClient(e)
	ctx := context.Background()
	if _, err := oa.Chat.Completions.New(ctx, chatParams("gpt-5-mini")); err != nil {
		t.Fatal(err)
	}

	_, err := oa.Chat.Completions.New(ctx, chatParams("gpt-5-mini"))
	var oerr *openai.Error
	if !errors.As(err, &oerr) {
		t.Fatalf("second call: %v, want an *openai.Error", err)
	}
	if oerr.StatusCode != http.StatusTooManyRequests || oerr.Type != "rate_limit_error" || oerr.Code != "rate_limit_exceeded" ||
		!strings.Contains(oerr.Message, "requests_per_minute") {
		t.Errorf("OpenAI error %d %s %s %q", oerr.StatusCode, oerr.Type, oerr.Code, oerr.Message)
	}
	checkRetryAfter(t, oerr.Response.Header)
	if got := oerr.Response.Header.Get("X-Ratelimit-Remaining-Requests"); got != "0" {
		t.Errorf("x-ratelimit-remaining-requests = %q on a denial", got)
	}
	deniedID := oerr.Response.Header.Get(HeaderRequestID)

	ac := anthropicClient(e)
	_, err = ac.Messages.New(ctx, messageParams("claude-haiku-4-5"))
	var aerr *anthropic.Error
	if !errors.As(err, &aerr) {
		t.Fatalf("anthropic call: %v, want an *anthropic.Error", err)
	}
	if aerr.StatusCode != http.StatusTooManyRequests || aerr.Type() != "rate_limit_error" {
		t.Errorf("Anthropic error %d %s", aerr.StatusCode, aerr.Type())
	}
	checkRetryAfter(t, aerr.Response.Header)
	if got := aerr.Response.Header.Get("Anthropic-Ratelimit-Requests-Remaining"); got != "0" {
		t.Errorf("anthropic-ratelimit-requests-remaining = %q on a denial", got)
	}

	if n := len(e.up.requests()); n != 1 {
		t.Errorf("the upstream got %d requests, want 1 (denials are not forwarded)", n)
	}
	e.flush()
	e.event(billChat.id)
	if evs := e.eventsOf(deniedID); len(evs) != 0 {
		t.Errorf("a denied call was billed: %v", evs)
	}
}

func checkRetryAfter(t *testing.T, h http.Header) {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	// One request a minute, denied moments after the first: the wait is the rest of the minute.
	if err != nil || n < 1 || n > 60 {
		t.Errorf("Retry-After = %q, want 1..60 seconds", h.Get("Retry-After"))
	}
	if h.Get("X-Should-Retry") != "" {
		t.Errorf("x-should-retry = %q on a rate-limit denial", h.Get("X-Should-Retry"))
	}
}

// TestExampleCatalog: the repository's example catalog (payg: list × 1.20, the cost book at
// list) bills the fixtures exactly as docs/gateway.md says.
func TestExampleCatalog(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	ctx := context.Background()
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ApplyCatalog(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutCustomer(ctx, "cust_example", billing.CustomerInput{Plan: "payg"}); err != nil {
		t.Fatal(err)
	}
	e.key = e.createKey(CustomerKeyPrefix+"cust_example", store.ScopeAuthorize)
	for _, tc := range []struct {
		path, body string
		want       bill
	}{
		{"/openai/v1/chat/completions", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`, billChat},
		{"/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`, billMessage},
	} {
		resp, body := e.post(tc.path, tc.body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		e.flush()
		got := e.event(tc.want.id)
		if got.Amount != tc.want.amount || got.Cost != tc.want.cost || !mapsEqual(got.Measurements, tc.want.measurements) {
			t.Errorf("%s: amount %s cost %s %v; want %s, %s, %v", tc.path, got.Amount, got.Cost, got.Measurements,
				tc.want.amount, tc.want.cost, tc.want.measurements)
		}
	}
}
