package extauthz_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/levyhq/levy/internal/extauthz"
	"github.com/levyhq/levy/internal/forwardauth"
	"github.com/levyhq/levy/internal/forwardauth/authtest"
	"github.com/levyhq/levy/internal/gateway"
	"github.com/levyhq/levy/internal/gateway/provider"
)

// flakyResolver fails for one key with an error that is not a problem (a store outage).
type flakyResolver struct {
	forwardauth.CustomerResolver
	failKey string
}

func (r flakyResolver) Customer(ctx context.Context, key string) (string, error) {
	if key == r.failKey {
		return "", errors.New("store: connection reset")
	}
	return r.CustomerResolver.Customer(ctx, key)
}

// aliasRecorder is gateway.ModelAlias, recording what it was asked.
type aliasRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (a *aliasRecorder) alias(m string) string {
	a.mu.Lock()
	a.seen = append(a.seen, m)
	a.mu.Unlock()
	return gateway.ModelAlias(m)
}

type env struct {
	levy   *authtest.Levy
	client authv3.AuthorizationClient
	alias  *aliasRecorder
	stop   func() error
}

// newEnv serves the ext_authz service on a real 127.0.0.1 listener and dials it with a real
// gRPC client.
func newEnv(t *testing.T) *env {
	t.Helper()
	l := authtest.Start(t, "")
	e := &env{levy: l, alias: &aliasRecorder{}}
	srv, err := extauthz.New(forwardauth.Config{
		Customers: flakyResolver{CustomerResolver: l.Customers, failKey: "levy_outage"}, Authorizer: l.Authorize,
		ModelAlias: e.alias.alias, Log: l.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 5*time.Second) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = authv3.NewAuthorizationClient(conn)
	var once sync.Once
	var stopErr error
	e.stop = func() error {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case stopErr = <-served:
			case <-time.After(10 * time.Second):
				stopErr = errors.New("Serve did not return within 10 s of its context ending")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

// httpCheck builds a CheckRequest as Envoy's HTTP filter sends it.
func httpCheck(method, path string, hdr map[string]string, body string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "envoy-req-1", Method: method, Path: path, Host: "api.example", Scheme: "http",
			Headers: hdr, Body: body, Size: int64(len(body)), Protocol: "HTTP/1.1"},
	}}}
}

func (e *env) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func headerMap(opts []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, o := range opts {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			m["!append:"+o.GetHeader().GetKey()] = "set"
		}
		m[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return m
}

func TestAllowThenDeny(t *testing.T) {
	e := newEnv(t)
	key := e.levy.Customer(t, "cust_x", "limited")
	hdr := map[string]string{"authorization": "Bearer " + key, "x-levy-model": "gpt-5-mini", "x-request-id": "req_1", "levy-reservation-id": "rsv_forged"}
	var rsvs []string
	for i := range 3 {
		resp := e.check(t, httpCheck("GET", "/v1/models", hdr, ""))
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("call %d: %v", i+1, resp)
		}
		ok := resp.GetOkResponse()
		up, down := headerMap(ok.GetHeaders()), headerMap(ok.GetResponseHeadersToAdd())
		if up["levy-customer-id"] != "cust_x" || up["levy-correlation-id"] != "req_1" || !strings.HasPrefix(up["levy-reservation-id"], "rsv_") {
			t.Fatalf("call %d: upstream headers %v", i+1, up)
		}
		for k := range up {
			if strings.HasPrefix(k, "!append:") {
				t.Fatalf("call %d: %s would append to what the client sent", i+1, k)
			}
		}
		if down["x-ratelimit-limit"] != "3" || down["x-ratelimit-remaining"] != string(rune('2'-i)) || down["levy-correlation-id"] != "req_1" {
			t.Fatalf("call %d: client headers %v", i+1, down)
		}
		if _, leaked := down["levy-reservation-id"]; leaked {
			t.Fatalf("call %d: the reservation ID goes to the client: %v", i+1, down)
		}
		if slices.Contains(ok.GetHeadersToRemove(), "levy-reservation-id") {
			t.Fatalf("call %d: removes the header it sets: %v", i+1, ok.GetHeadersToRemove())
		}
		rsvs = append(rsvs, up["levy-reservation-id"])
	}
	st, err := e.levy.Authorize.Limits(context.Background(), "cust_x")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Reservations) != 3 {
		t.Fatalf("%d open reservations, want 3 (%v)", len(st.Reservations), rsvs)
	}

	resp := e.check(t, httpCheck("GET", "/v1/models", hdr, ""))
	if codes.Code(resp.GetStatus().GetCode()) != codes.ResourceExhausted {
		t.Fatalf("4th call: %v", resp)
	}
	d := resp.GetDeniedResponse()
	h := headerMap(d.GetHeaders())
	if d.GetStatus().GetCode() != 429 || h["retry-after"] != "20" || h["levy-deny-reason"] != "requests_per_minute" ||
		h["x-ratelimit-remaining"] != "0" || h["content-type"] != "application/json" {
		t.Fatalf("denial: status %v headers %v", d.GetStatus(), h)
	}
	var body struct {
		Decision          string
		Reason            string
		RetryAfterSeconds int
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Decision != "DENY" || body.RetryAfterSeconds != 20 {
		t.Fatalf("denial body %q (%v)", d.GetBody(), err)
	}
	e.levy.Clock.Advance(20 * time.Second)
	if resp := e.check(t, httpCheck("GET", "/v1/models", hdr, "")); resp.GetOkResponse() == nil {
		t.Fatalf("after Retry-After: %v", resp)
	}
}

// reservationTokens returns the tokens held by the customer's open reservation under corr.
func (e *env) reservationTokens(t *testing.T, customer, corr string) int64 {
	t.Helper()
	st, err := e.levy.Authorize.Limits(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Reservations {
		if r.CorrelationID == corr {
			return r.Estimate.Tokens
		}
	}
	t.Fatalf("no reservation under %s in %+v", corr, st.Reservations)
	return 0
}

func TestBody(t *testing.T) {
	e := newEnv(t)
	key := e.levy.Customer(t, "cust_b", "open")
	chat := `{"model":"gpt-5-mini-2025-08-07","max_completion_tokens":500,"n":2,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	parsed, err := provider.ParseRequest(provider.OpenAIChat, []byte(chat))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(corr string, extra ...string) map[string]string {
		m := map[string]string{"x-api-key": key, "x-levy-correlation-id": corr, "x-levy-model": "header-model", "x-levy-max-tokens": "1", "x-levy-input-tokens": "1"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}

	// The body wins over the headers: its estimate, its cap × n, its model through the alias.
	if resp := e.check(t, httpCheck("POST", "/v1/chat/completions?trace=1", hdr("c_body"), chat)); resp.GetOkResponse() == nil {
		t.Fatalf("chat body: %v", resp)
	}
	if got, want := e.reservationTokens(t, "cust_b", "c_body"), parsed.EstimatedInputTokens+1000; got != want {
		t.Fatalf("reserved %d tokens, want the body's estimate %d + 500 × 2", got, want)
	}
	if e.alias.seen[len(e.alias.seen)-1] != "gpt-5-mini-2025-08-07" {
		t.Fatalf("model alias asked %v, want the body's model last", e.alias.seen)
	}

	// raw_body (pack_as_bytes) reads the same; Anthropic without max_tokens gets the default.
	msg := `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`
	req := httpCheck("POST", "/v1/messages", hdr("c_raw"), "")
	req.Attributes.Request.Http.RawBody = []byte(msg)
	if resp := e.check(t, req); resp.GetOkResponse() == nil {
		t.Fatalf("raw body: %v", resp)
	}
	pm, _ := provider.ParseRequest(provider.AnthropicMessages, []byte(msg))
	if got, want := e.reservationTokens(t, "cust_b", "c_raw"), pm.EstimatedInputTokens+forwardauth.DefaultMaxOutputTokens; got != want {
		t.Fatalf("raw body reserved %d, want %d", got, want)
	}

	// A body Envoy cut short, or another route: the headers decide.
	if resp := e.check(t, httpCheck("POST", "/v1/chat/completions", hdr("c_partial", extauthz.PartialBodyHeader, "true"), chat[:100])); resp.GetOkResponse() == nil {
		t.Fatalf("partial body: %v", resp)
	}
	if got := e.reservationTokens(t, "cust_b", "c_partial"); got != 2 {
		t.Fatalf("partial body reserved %d, want the headers' 1 + 1", got)
	}
	noInput := hdr("c_size")
	delete(noInput, "x-levy-input-tokens")
	if resp := e.check(t, httpCheck("POST", "/v1/embeddings", noInput, strings.Repeat("x", 3001))); resp.GetOkResponse() == nil {
		t.Fatalf("other route: %v", resp)
	}
	if got := e.reservationTokens(t, "cust_b", "c_size"); got != 1001+1 {
		t.Fatalf("size estimate reserved %d, want ceil(3001/3) + 1", got)
	}

	// A whole body that does not parse is a 400 naming the JSON field.
	for _, tc := range []struct{ body, field string }{
		{`{"messages":[]}`, "model"},
		{`{"model":"m","messages":[],"max_completion_tokens":-1}`, "max_completion_tokens"},
		{`[1,2]`, "body"},
	} {
		resp := e.check(t, httpCheck("POST", "/v1/chat/completions", hdr("c_bad"), tc.body))
		d := resp.GetDeniedResponse()
		if codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || d.GetStatus().GetCode() != 400 ||
			!strings.Contains(d.GetBody(), `"field":"`+tc.field+`"`) {
			t.Fatalf("bad body %s: %v", tc.body, resp)
		}
	}
}

func TestNotDecisions(t *testing.T) {
	e := newEnv(t)
	key := e.levy.Customer(t, "cust_n", "open")
	for _, tc := range []struct {
		name   string
		req    *authv3.CheckRequest
		code   codes.Code
		status int32
		field  string
	}{
		{"no key", httpCheck("GET", "/", map[string]string{"x-levy-model": "m"}, ""), codes.Unauthenticated, 401, ""},
		{"unknown key", httpCheck("GET", "/", map[string]string{"authorization": "Bearer levy_nope", "x-levy-model": "m"}, ""), codes.Unauthenticated, 401, ""},
		{"no model", httpCheck("GET", "/", map[string]string{"authorization": "Bearer " + key}, ""), codes.InvalidArgument, 400, "X-Levy-Model"},
		{"bad figure", httpCheck("GET", "/", map[string]string{"authorization": "Bearer " + key, "x-levy-model": "m", "x-levy-max-tokens": "1e9"}, ""), codes.InvalidArgument, 400, "X-Levy-Max-Tokens"},
		{"no HTTP attributes", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, codes.InvalidArgument, 400, "attributes.request.http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.check(t, tc.req)
			d := resp.GetDeniedResponse()
			if codes.Code(resp.GetStatus().GetCode()) != tc.code || int32(d.GetStatus().GetCode()) != tc.status {
				t.Fatalf("got %v", resp)
			}
			h := headerMap(d.GetHeaders())
			if h["content-type"] != "application/problem+json" {
				t.Fatalf("headers %v", h)
			}
			if tc.status == 401 && h["www-authenticate"] != `Bearer realm="levy"` {
				t.Fatalf("401 without the challenge: %v", h)
			}
			if tc.field != "" && !strings.Contains(d.GetBody(), `"field":"`+tc.field+`"`) {
				t.Fatalf("body %s does not name %s", d.GetBody(), tc.field)
			}
		})
	}

	// Raw header maps (encode_raw_headers) are read too.
	req := httpCheck("GET", "/", nil, "")
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "authorization", RawValue: []byte("Bearer " + key)}, {Key: "x-levy-model", RawValue: []byte("m")},
	}}
	if resp := e.check(t, req); resp.GetOkResponse() == nil {
		t.Fatalf("raw header map: %v", resp)
	}

	// Levy cannot decide: a gRPC error, so Envoy's failure_mode_allow / status_on_error apply.
	_, err := e.client.Check(context.Background(), httpCheck("GET", "/", map[string]string{"x-api-key": "levy_outage", "x-levy-model": "m"}, ""))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("outage: %v, want Unavailable", err)
	}
}

func TestServeStops(t *testing.T) {
	e := newEnv(t)
	if err := e.stop(); err != nil {
		t.Fatalf("Serve after its context ended: %v", err)
	}
}
