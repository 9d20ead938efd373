package forwardauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/forwardauth"
	"github.com/levyhq/levy/internal/forwardauth/authtest"
	"github.com/levyhq/levy/internal/store"
)

// authServer is the forward-auth handler over the real decision stack, on a real listener.
type authServer struct {
	levy *authtest.Levy
	srv  *httptest.Server
	h    *forwardauth.Handler
}

func newAuthServer(t testing.TB, mutate func(*forwardauth.Config)) *authServer {
	t.Helper()
	l := authtest.Start(t, "")
	cfg := forwardauth.Config{Customers: l.Customers, Authorizer: l.Authorize, Log: l.Log}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := forwardauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/forward-auth", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &authServer{levy: l, srv: srv, h: h}
}

// check sends one sub-request; query is appended to the path (e.g. "?mode=nginx").
func (a *authServer) check(t testing.TB, method, query string, kv ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+"/v1/forward-auth"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func wantHeader(t testing.TB, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s = %q, want %q (all: %v)", name, got, want, resp.Header)
	}
}

func TestAllowThenDeny(t *testing.T) {
	a := newAuthServer(t, nil)
	key := a.levy.Customer(t, "cust_a", "limited")
	for i := range 3 {
		resp, body := a.check(t, http.MethodGet, "", "Authorization", "Bearer "+key, forwardauth.HeaderModel, "gpt-5-mini",
			"X-Request-Id", "req_"+string(rune('1'+i)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d %s", i+1, resp.StatusCode, body)
		}
		wantHeader(t, resp, forwardauth.HeaderCustomerID, "cust_a")
		wantHeader(t, resp, forwardauth.HeaderCorrelationOut, "req_"+string(rune('1'+i)))
		wantHeader(t, resp, "X-RateLimit-Limit", "3")
		wantHeader(t, resp, "X-RateLimit-Remaining", string(rune('2'-i)))
		wantHeader(t, resp, "Cache-Control", "no-store")
		rsv := resp.Header.Get(forwardauth.HeaderReservationID)
		if !strings.HasPrefix(rsv, "rsv_") {
			t.Fatalf("call %d: reservation %q", i+1, rsv)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil || out["decision"] != "ALLOW" || out["reservationId"] != rsv {
			t.Fatalf("call %d: body %s (%v)", i+1, body, err)
		}
	}
	// The reservations are really held, under the correlation IDs the checks carried.
	st, err := a.levy.Authorize.Limits(context.Background(), "cust_a")
	if err != nil {
		t.Fatal(err)
	}
	var corr []string
	for _, r := range st.Reservations {
		corr = append(corr, r.CorrelationID)
	}
	if len(corr) != 3 || !strings.Contains(strings.Join(corr, ","), "req_2") {
		t.Fatalf("open reservations' correlation IDs %v, want req_1..3", corr)
	}

	resp, body := a.check(t, http.MethodPost, "", "X-Api-Key", key, forwardauth.HeaderModel, "gpt-5-mini")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th call: %d %s", resp.StatusCode, body)
	}
	wantHeader(t, resp, "Retry-After", "20") // 3 a minute: the next slot opens 20 s after the first
	wantHeader(t, resp, forwardauth.HeaderDenyReason, "requests_per_minute")
	wantHeader(t, resp, "X-RateLimit-Remaining", "0")
	wantHeader(t, resp, forwardauth.HeaderReservationID, "")
	wantHeader(t, resp, forwardauth.HeaderDeny, "")
	var out struct {
		Decision          string
		Reason            string
		RetryAfterSeconds int64
		CustomerID        string
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Decision != "DENY" || out.Reason != "requests_per_minute" ||
		out.RetryAfterSeconds != 20 || out.CustomerID != "cust_a" {
		t.Fatalf("deny body %s (%v)", body, err)
	}

	// nginx mode: the same DENY as a 403 with the marker, by query or by header.
	for _, m := range []struct{ query, header string }{{"?mode=nginx", ""}, {"", "nginx"}, {"?mode=NGINX", "ignored"}} {
		kv := []string{"Authorization", "Bearer " + key, forwardauth.HeaderModel, "gpt-5-mini"}
		if m.header != "" {
			kv = append(kv, forwardauth.HeaderMode, m.header)
		}
		resp, body = a.check(t, http.MethodGet, m.query, kv...)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("nginx mode %+v: %d %s", m, resp.StatusCode, body)
		}
		wantHeader(t, resp, forwardauth.HeaderDeny, "1")
		wantHeader(t, resp, forwardauth.HeaderStatus, "429")
		wantHeader(t, resp, "Retry-After", "20")
	}

	// The slot opens after exactly the Retry-After.
	a.levy.Clock.Advance(19 * time.Second)
	if resp, _ = a.check(t, http.MethodGet, "", "Authorization", "Bearer "+key, forwardauth.HeaderModel, "m"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 19 s: %d, want 429", resp.StatusCode)
	}
	wantHeader(t, resp, "Retry-After", "1")
	a.levy.Clock.Advance(time.Second)
	if resp, _ = a.check(t, http.MethodGet, "?mode=nginx", "Authorization", "Bearer "+key, forwardauth.HeaderModel, "m"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 20 s: %d, want 200", resp.StatusCode)
	}
	wantHeader(t, resp, forwardauth.HeaderDeny, "")
}

func TestTokenEstimate(t *testing.T) {
	a := newAuthServer(t, nil)
	key := a.levy.Customer(t, "cust_t", "tokens") // 10,000 tokens a minute
	send := func(kv ...string) *http.Response {
		resp, _ := a.check(t, http.MethodGet, "", append([]string{"Authorization", "Bearer " + key, forwardauth.HeaderModel, "gpt-5-mini"}, kv...)...)
		return resp
	}
	// 6,000 in + 3,000 out: 9,000 held.
	if resp := send(forwardauth.HeaderInputTokens, "6000", forwardauth.HeaderMaxTokens, "3000"); resp.StatusCode != 200 {
		t.Fatalf("9,000 tokens: %d", resp.StatusCode)
	}
	// 1,001 more would pass 10,000.
	if resp := send(forwardauth.HeaderInputTokens, "1", forwardauth.HeaderMaxTokens, "1000"); resp.StatusCode != 429 ||
		resp.Header.Get(forwardauth.HeaderDenyReason) != "tokens_per_minute" {
		t.Fatalf("1,001 more tokens: %d %v", resp.StatusCode, resp.Header)
	}
	// Body bytes: 2,400 bytes are 800 tokens, + 200 out = 1,000: exactly the rest.
	if resp := send(forwardauth.HeaderBodyBytes, "2400", forwardauth.HeaderMaxTokens, "200"); resp.StatusCode != 200 {
		t.Fatalf("exactly the rest: %d", resp.StatusCode)
	}
	// Without X-Levy-Max-Tokens the default output (4,096) is held.
	a.levy.Clock.Advance(time.Minute)
	if resp := send(forwardauth.HeaderInputTokens, "5905"); resp.StatusCode != 429 {
		t.Fatalf("5,905 + 4,096 of 10,000: %d", resp.StatusCode)
	}
	if resp := send(forwardauth.HeaderInputTokens, "5904"); resp.StatusCode != 200 {
		t.Fatalf("5,904 + 4,096 of 10,000: %d", resp.StatusCode)
	}
	if resp := send(forwardauth.HeaderInputTokens, "1", forwardauth.HeaderMaxTokens, "0"); resp.StatusCode != 429 {
		t.Fatalf("past 10,000 by the default output: %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	a := newAuthServer(t, nil)
	key := a.levy.Customer(t, "cust_e", "open")
	unbound := a.levy.Key(t, "ops team", store.ScopeAuthorize)
	readOnly := a.levy.Key(t, "customer:cust_e", store.ScopeRead)
	ghost := a.levy.Key(t, "customer:ghost", store.ScopeAuthorize)
	model := []string{forwardauth.HeaderModel, "gpt-5-mini"}
	for _, tc := range []struct {
		name    string
		kv      []string
		status  int
		fields  []string
		problem string
	}{
		{"no key", model, 401, nil, "unauthorized"},
		{"unknown key", append([]string{"Authorization", "Bearer levy_nope"}, model...), 401, nil, "unauthorized"},
		{"key bound to no customer", append([]string{"Authorization", "Bearer " + unbound}, model...), 403, nil, "forbidden"},
		{"key without the authorize scope", append([]string{"Authorization", "Bearer " + readOnly}, model...), 403, nil, "forbidden"},
		{"customer without a subscription", append([]string{"Authorization", "Bearer " + ghost}, model...), 403, nil, "forbidden"},
		{"no model", []string{"Authorization", "Bearer " + key}, 400, []string{forwardauth.HeaderModel}, "invalid"},
		{"bad figures", append([]string{"Authorization", "Bearer " + key, forwardauth.HeaderMaxTokens, "-5", forwardauth.HeaderInputTokens, "1.5"}, model...),
			400, []string{forwardauth.HeaderInputTokens, forwardauth.HeaderMaxTokens}, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, query := range []string{"", "?mode=nginx"} {
				resp, body := a.check(t, http.MethodGet, query, tc.kv...)
				want := tc.status
				if query != "" && want != 401 {
					want = 403
					wantHeader(t, resp, forwardauth.HeaderStatus, strconv.Itoa(tc.status))
				}
				if resp.StatusCode != want {
					t.Fatalf("%q: status %d, want %d: %s", query, resp.StatusCode, want, body)
				}
				wantHeader(t, resp, forwardauth.HeaderDeny, "")
				wantHeader(t, resp, "Content-Type", "application/problem+json")
				if tc.status == 401 {
					wantHeader(t, resp, "WWW-Authenticate", `Bearer realm="levy"`)
				}
				var p struct {
					Type   string
					Status int
					Detail string
					Errors []struct{ Field, Message string }
				}
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatalf("body %s: %v", body, err)
				}
				if p.Status != tc.status || p.Type != "https://levy.dev/problems/"+tc.problem || p.Detail == "" {
					t.Fatalf("problem %+v", p)
				}
				var fields []string
				for _, f := range p.Errors {
					fields = append(fields, f.Field)
				}
				if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
					t.Fatalf("problem fields %v, want %v", fields, tc.fields)
				}
			}
		})
	}

	resp, body := a.check(t, http.MethodGet, "?mode=apache", "Authorization", "Bearer "+key)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"field":"mode"`) {
		t.Fatalf("unknown mode: %d %s", resp.StatusCode, body)
	}
	resp, body = a.check(t, http.MethodHead, "", append([]string{"Authorization", "Bearer " + key}, model...)...)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
}

func TestDefaultModelAndGeneratedCorrelation(t *testing.T) {
	a := newAuthServer(t, func(c *forwardauth.Config) { c.DefaultModel = "gpt-5-mini" })
	key := a.levy.Customer(t, "cust_d", "open")
	resp, body := a.check(t, http.MethodGet, "", "Authorization", "Bearer "+key)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	corr := resp.Header.Get(forwardauth.HeaderCorrelationOut)
	if !strings.HasPrefix(corr, "fwd_") {
		t.Fatalf("generated correlation ID %q", corr)
	}
	st, err := a.levy.Authorize.Limits(context.Background(), "cust_d")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Reservations) != 1 || st.Reservations[0].CorrelationID != corr || st.Reservations[0].ID != resp.Header.Get(forwardauth.HeaderReservationID) {
		t.Fatalf("reservations %+v, want one under %s", st.Reservations, corr)
	}
}
