package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/levyhq/levy/internal/store"
)

// providerError decodes an error body in either provider's format and checks its shape.
func providerError(t *testing.T, anthropicRoute bool, body []byte) (typ, msg string) {
	t.Helper()
	if anthropicRoute {
		var b struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.Type != "error" || b.Error.Type == "" {
			t.Fatalf("not an Anthropic error body: %s", body)
		}
		return b.Error.Type, b.Error.Message
	}
	var b struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error == nil || b.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s", body)
	}
	return b.Error.Type, b.Error.Message
}

// TestUpstreamErrorBeforeAnyToken: an upstream error answer is relayed as it is, the
// reservation is released, and nothing is billed.
func TestUpstreamErrorBeforeAnyToken(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"openai 500", "/openai/v1/chat/completions", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`, 500},
		{"anthropic stream 529", "/anthropic/v1/messages",
			`{"model":"claude-haiku-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, 529},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "payg", Config{})
			e.up.status = tc.status
			resp, body := e.post(tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want the upstream's %d", resp.StatusCode, tc.status)
			}
			anthropicRoute := strings.HasPrefix(tc.path, "/anthropic")
			if typ, _ := providerError(t, anthropicRoute, body); typ != map[bool]string{false: "server_error", true: "overloaded_error"}[anthropicRoute] {
				t.Errorf("the upstream's error body was not relayed: %s", body)
			}
			checkReleasedOnly(t, e, resp.Header.Get(HeaderRequestID))
		})
	}
}

// checkReleasedOnly: the call's one reservation was released and no event was billed.
func checkReleasedOnly(t *testing.T, e *env, requestID string) {
	t.Helper()
	e.flush()
	reqs, released := e.auth.calls()
	held := e.auth.reservations()
	if len(reqs) != 1 || len(held) != 1 || len(released) != 1 || released[0] != held[0] {
		t.Errorf("authorize calls %d, reservations %v, released %v; want the one reservation released", len(reqs), held, released)
	}
	if n := e.openReservations(); n != 0 {
		t.Errorf("%d reservations open after the release", n)
	}
	if evs := e.eventsOf(requestID); len(evs) != 0 {
		t.Errorf("billed %v, want nothing", evs)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	e := newEnv(t, "payg", Config{OpenAIBaseURL: closed})
	resp, body := e.post("/openai/v1/responses", `{"model":"gpt-5.4","input":"hi"}`)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	typ, msg := providerError(t, false, body)
	if typ != "server_error" || !strings.Contains(msg, resp.Header.Get(HeaderRequestID)) {
		t.Errorf("error %s %q", typ, msg)
	}
	checkReleasedOnly(t, e, resp.Header.Get(HeaderRequestID))
}

// TestUpstreamBreaksMidStream: the client gets the provider's own error event after what was
// relayed, and is billed for what was reported before the break.
func TestUpstreamBreaksMidStream(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	e.up.cutAt, e.up.abort = `"text":"Hello"`, true
	client := anthropicClient(e)
	var raw *http.Response
	stream := client.Messages.NewStreaming(context.Background(), messageParams("claude-haiku-4-5"), anthropicoption.WithResponseInto(&raw))
	var msg anthropic.Message
	for stream.Next() {
		msg.Accumulate(stream.Current())
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "broke off") {
		t.Errorf("the SDK saw %v, want the gateway's error event", err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "Hello" {
		t.Errorf("the relayed part was lost: %+v", msg.Content)
	}
	checkBill(t, e, bill{
		id: billMessageStream.id, model: "claude-haiku-4-5",
		measurements: map[string]string{"input_tokens": "25", "cache_read_tokens": "4608", "output_tokens": "1"},
		amount:       "0.00058896", cost: "0.0004908",
	}, raw.Header.Get(HeaderRequestID), map[string]string{PropMetering: "partial"})

	// The raw bytes: everything relayed, then the error event.
	_, body := e.post("/anthropic/v1/messages",
		`{"model":"claude-haiku-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	want := ""
	for _, ev := range sseEvents(fixture(t, "anthropic-message-stream.sse")) {
		want += string(ev)
		if strings.Contains(string(ev), `"text":"Hello"`) {
			break
		}
	}
	if !strings.HasPrefix(string(body), want+"\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") ||
		!strings.HasSuffix(string(body), "\n\n") {
		t.Errorf("body %q", body)
	}
}

// TestKeys: the client's key must be a Levy key bound to a customer, with the authorize or
// ingest scope; nothing is forwarded otherwise.
func TestKeys(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	unbound := e.createKey("ops", store.ScopeAuthorize)
	readOnly := e.createKey(CustomerKeyPrefix+testCustomer, store.ScopeRead)
	admin := e.createKey(CustomerKeyPrefix+testCustomer, store.ScopeAdmin)
	ingest := e.createKey(CustomerKeyPrefix+testCustomer, store.ScopeIngest)
	ghost := e.createKey(CustomerKeyPrefix+"ghost", store.ScopeAuthorize)
	const chat = `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`
	const msgs = `{"model":"claude-haiku-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name      string
		anthropic bool
		header    []string
		status    int
		typ       string
	}{
		{"openai no key", false, []string{"Authorization", ""}, 401, "invalid_request_error"},
		{"anthropic no key", true, []string{"X-Api-Key", ""}, 401, "authentication_error"},
		{"unknown key", false, []string{"Authorization", "Bearer levy_nope"}, 401, "invalid_request_error"},
		{"unbound key", true, []string{"X-Api-Key", unbound}, 403, "permission_error"},
		{"read scope", false, []string{"Authorization", "Bearer " + readOnly}, 403, "invalid_request_error"},
		{"admin scope", false, []string{"Authorization", "Bearer " + admin}, 403, "invalid_request_error"},
		{"customer without subscription", true, []string{"X-Api-Key", ghost}, 403, "permission_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, body := "/openai/v1/chat/completions", chat
			if tc.anthropic {
				path, body = "/anthropic/v1/messages", msgs
			}
			resp, b := e.post(path, body, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if typ, _ := providerError(t, tc.anthropic, b); typ != tc.typ {
				t.Errorf("type %s, want %s", typ, tc.typ)
			}
		})
	}
	if n := len(e.up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	// An ingest-scoped key bound to the customer works, on either header.
	if resp, b := e.post("/anthropic/v1/messages", msgs, "X-Api-Key", "", "Authorization", "Bearer "+ingest); resp.StatusCode != 200 {
		t.Errorf("ingest key: %d %s", resp.StatusCode, b)
	}
}

// TestBadRequests: bad input gets a 4xx in the provider's format naming the field, and is not
// forwarded.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, "payg", Config{MaxBodyBytes: 256})
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		mention                  string
	}{
		{"not JSON", "POST", "/openai/v1/chat/completions", `{"model":`, nil, 400, "not valid JSON"},
		{"negative max_tokens", "POST", "/openai/v1/chat/completions",
			`{"model":"gpt-5-mini","max_tokens":-1,"messages":[]}`, nil, 400, "max_tokens"},
		{"no messages", "POST", "/anthropic/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":8}`, nil, 400, "messages"},
		{"stream not a boolean", "POST", "/openai/v1/chat/completions",
			`{"model":"gpt-5-mini","stream":"yes","messages":[]}`, nil, 400, "stream"},
		{"too large", "POST", "/openai/v1/responses", `{"model":"gpt-5.4","input":"` + strings.Repeat("x", 300) + `"}`, nil, 413, "larger than 256"},
		{"long task id", "POST", "/openai/v1/responses", `{"model":"gpt-5.4","input":"hi"}`,
			[]string{HeaderTaskID, strings.Repeat("t", 300)}, 400, HeaderTaskID},
		{"GET", "GET", "/openai/v1/chat/completions", ``, nil, 405, "POST"},
		{"unknown openai path", "POST", "/openai/v1/models", `{}`, nil, 404, "/v1/chat/completions"},
		{"unknown anthropic path", "POST", "/anthropic/v1/messages/count_tokens", `{}`, nil, 404, "/v1/messages"},
		{"wrong provider", "POST", "/openai/v1/messages", `{}`, nil, 404, "/v1/messages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.srv.URL+"/gateway"+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+e.key)
			req.Header.Set("X-Api-Key", e.key)
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			if _, err := b.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b.String())
			}
			_, msg := providerError(t, strings.HasPrefix(tc.path, "/anthropic"), b.Bytes())
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q does not mention %q", msg, tc.mention)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q", resp.Header.Get("Allow"))
			}
		})
	}
	if n := len(e.up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	if reqs, _ := e.auth.calls(); len(reqs) != 0 {
		t.Errorf("bad requests were authorized: %v", reqs)
	}
}

// TestAuthorizeRequest: what the gateway asks the decision, and the task ID on the event.
func TestAuthorizeRequest(t *testing.T) {
	e := newEnv(t, "payg", Config{DefaultMaxOutputTokens: 2000})
	// "Say hello" is 9 bytes: ceil(9/3) + 4 = 7 estimated input tokens.
	resp, b := e.post("/openai/v1/chat/completions",
		`{"model":"gpt-5-mini-2025-08-07","n":3,"max_completion_tokens":100,"messages":[{"role":"user","content":"Say hello"}]}`,
		HeaderTaskID, "run_42")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	e.post("/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}`)
	e.post("/openai/v1/responses", `{"model":"gpt-5.4","input":"Say hello"}`)
	reqs, _ := e.auth.calls()
	want := []AuthorizeRequest{
		{CustomerID: testCustomer, Model: "gpt-5-mini", EstimatedInputTokens: 7, MaxOutputTokens: 300, TaskID: "run_42"},
		{CustomerID: testCustomer, Model: "claude-sonnet-4-5", EstimatedInputTokens: 7, MaxOutputTokens: 50},
		{CustomerID: testCustomer, Model: "gpt-5.4", EstimatedInputTokens: 7, MaxOutputTokens: 2000}, // no cap: the default
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d authorize calls, want %d", len(reqs), len(want))
	}
	for i := range want {
		got := reqs[i]
		if !strings.HasPrefix(got.CorrelationID, "req_") {
			t.Errorf("call %d: correlation ID %q", i, got.CorrelationID)
		}
		got.CorrelationID = ""
		if got != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, got, want[i])
		}
	}
	if reqs[0].CorrelationID != resp.Header.Get(HeaderRequestID) {
		t.Errorf("authorize CorrelationID %s, Levy-Request-Id %s", reqs[0].CorrelationID, resp.Header.Get(HeaderRequestID))
	}
	e.flush()
	if got := e.event(billChat.id).Properties[PropTaskID]; got != "run_42" {
		t.Errorf("taskId property %q", got)
	}
}

// TestClose: Close waits for the usage events of finished calls, then refuses new calls.
func TestClose(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	resp, _ := e.post("/openai/v1/chat/completions", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := e.eventsOf(resp.Header.Get(HeaderRequestID)); len(evs) != 1 {
		t.Errorf("after Close, %d events for the call, want 1", len(evs))
	}
	resp, b := e.post("/openai/v1/chat/completions", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d %s", resp.StatusCode, b)
	}
}

// TestReusedResponseID: an upstream that answers every call with the same response id (as some
// OpenAI-compatible servers do) still gets each call billed once: whichever event is stored
// first keeps the provider-derived id, the other is billed under its request ID.
func TestReusedResponseID(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	const chat = `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`
	first, _ := e.post("/openai/v1/chat/completions", chat)
	second, _ := e.post("/openai/v1/chat/completions", chat)
	e.flush()
	owner := e.event(billChat.id).CorrelationID
	other := map[string]string{
		first.Header.Get(HeaderRequestID):  second.Header.Get(HeaderRequestID),
		second.Header.Get(HeaderRequestID): first.Header.Get(HeaderRequestID),
	}[owner]
	if other == "" {
		t.Fatalf("%s belongs to %s, neither call", billChat.id, owner)
	}
	again := e.event("gateway:" + other)
	if again.CorrelationID != other || again.Properties[PropResponseID] != billChat.id || again.Amount != billChat.amount ||
		!mapsEqual(again.Measurements, billChat.measurements) {
		t.Errorf("the other call billed as %+v", again)
	}
	for _, id := range []string{owner, other} {
		if n := len(e.eventsOf(id)); n != 1 {
			t.Errorf("%d events for %s, want 1", n, id)
		}
	}
	e.settled()
}
