package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/config"
)

// TestServeMountsGatewayAndForwardAuth: `levy serve` serves the LLM gateway under /gateway/ and
// the forward-auth check at /v1/forward-auth, authenticating a key bound to a customer: a chat
// completion reaches the upstream with the gateway's provider key, its usage is billed from the
// response, and forward-auth answers for the same key.
func TestServeMountsGatewayAndForwardAuth(t *testing.T) {
	body, err := os.ReadFile("../../internal/gateway/provider/testdata/provider-fixtures/openai-chat-completion.json")
	if err != nil {
		t.Fatal(err)
	}
	var upstreamAuth string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer upstream.Close()
	catalog, err := os.ReadFile("../../examples/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), func(c *config.Config) {
		c.Gateway.OpenAIBaseURL = upstream.URL
		c.Gateway.OpenAIKey = "sk-upstream-secret"
	})
	if code := s.do("PUT", "/v1/catalog", "application/yaml", string(catalog), nil); code != 200 {
		t.Fatalf("apply: %d", code)
	}
	if code := s.do("PUT", "/v1/customers/cust_gw", "application/json", `{"plan": "payg"}`, nil); code != 200 {
		t.Fatalf("customer: %d", code)
	}
	var key struct{ Secret string }
	if code := s.do("POST", "/v1/keys", "application/json", `{"name": "customer:cust_gw", "scopes": ["authorize"]}`, &key); code != 201 && code != 200 || key.Secret == "" {
		t.Fatalf("key: %d %+v", code, key)
	}
	req, _ := http.NewRequest("POST", s.url+"/gateway/openai/v1/chat/completions",
		strings.NewReader(`{"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 100}`))
	req.Header.Set("Authorization", "Bearer "+key.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != string(body) {
		t.Fatalf("gateway: %d %s", resp.StatusCode, got)
	}
	if upstreamAuth != "Bearer sk-upstream-secret" {
		t.Errorf("upstream saw Authorization %q, want the gateway's provider key", upstreamAuth)
	}
	reqID := resp.Header.Get("Levy-Request-Id")
	if reqID == "" {
		t.Error("no Levy-Request-Id header")
	}
	// The usage event is ingested off the request path: wait for it.
	var page struct {
		Events []struct{ CustomerID, Amount string }
	}
	for deadline := time.Now().Add(5 * time.Second); len(page.Events) == 0; time.Sleep(20 * time.Millisecond) {
		s.do("GET", "/v1/events?correlationId="+reqID, "", "", &page)
		if time.Now().After(deadline) {
			t.Fatalf("no event billed for request %s", reqID)
		}
	}
	if ev := page.Events[0]; ev.CustomerID != "cust_gw" || ev.Amount == "" || ev.Amount == "0" {
		t.Errorf("billed event = %+v", ev)
	}
	fa, _ := http.NewRequest("GET", s.url+"/v1/forward-auth", nil)
	fa.Header.Set("Authorization", "Bearer "+key.Secret)
	fa.Header.Set("X-Levy-Model", "claude-sonnet-4-6")
	fa.Header.Set("X-Levy-Max-Tokens", "100")
	resp, err = http.DefaultClient.Do(fa)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Levy-Reservation-Id") == "" {
		t.Errorf("forward-auth: %d %v", resp.StatusCode, resp.Header)
	}
}
