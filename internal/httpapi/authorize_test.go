package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/httpapi"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

// decisionDoc is an authorize answer as a client reads it.
type decisionDoc struct {
	Decision          string
	ReservationID     string
	Tier              string
	Reason            string
	RetryAfterSeconds int64
	Never             bool
	FailOpen          bool
	Estimate          struct {
		Tokens int64
		Cost   string
	}
	Remaining map[string]quotaDoc
}

type quotaDoc struct {
	Limit        any // a JSON number for counts, a decimal string for money
	Remaining    any
	ResetSeconds int64
}

type limitsDoc struct {
	CustomerID, Plan, Tier, Currency string
	PlanVersionID                    int64
	PeriodStart, PeriodEnd           time.Time
	Limits                           map[string]any
	Remaining                        map[string]quotaDoc
	OpenReservations                 int
	Reservations                     []struct {
		ID, CorrelationID, TaskID string
		Tokens                    int64
		Cost                      string
		ExpiresAt                 time.Time
	}
}

func authorizeCall(key string, body any) call {
	return call{Method: "POST", Path: "/v1/authorize", Key: key, ContentType: "application/json", Body: jsonBody(body)}
}

func authReq(customer, model string, in, out int64, corr, task string) map[string]any {
	m := map[string]any{"customerId": customer, "model": model, "estimatedInputTokens": in, "maxOutputTokens": out}
	if corr != "" {
		m["correlationId"] = corr
	}
	if task != "" {
		m["taskId"] = task
	}
	return m
}

// num reads a count of the remaining object (a JSON number decoded into any).
func num(t testing.TB, v any) int64 {
	t.Helper()
	f, ok := v.(float64) // encoding/json's type for a number in an any; counts here are small
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	return int64(f)
}

// decimalOf reads a money figure of the remaining object (a decimal string).
func decimalOf(t testing.TB, v any) money.Decimal {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v (%T) is not a decimal string", v, v)
	}
	d, err := money.Parse(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return d
}

// exerciseAuthorize runs the authorize operations against the contract: an ALLOW with its
// reservation and figures, the live limits, release, settlement by the usage event, a DENY, the
// breakers, and the errors. It expects TestOpenAPIContract's customers: c1 on pro (60 requests a
// minute, a 1000.00 monthly spend cap) and c2 on basic with requestsPerMinute 10.
func exerciseAuthorize(t *testing.T, k *contract, srv *testServer) {
	admin := srv.Admin
	authz := func(body any, rc requestCheck, status int) (reply, decisionDoc) {
		t.Helper()
		r := k.exchange(authorizeCall(admin, body), rc, status)
		var d decisionDoc
		if r.Status == 200 || r.Status == 429 {
			r.json(t, &d)
		}
		return r, d
	}
	limits := func(id string) limitsDoc {
		t.Helper()
		r := k.exchange(call{Method: "GET", Path: "/v1/customers/" + id + "/limits", Key: admin}, reqValid, 200)
		var l limitsDoc
		r.json(t, &l)
		return l
	}
	post := func(path string, body any, rc requestCheck, status int) reply {
		t.Helper()
		c := call{Method: "POST", Path: path, Key: admin}
		if body != nil {
			c.ContentType, c.Body = "application/json", jsonBody(body)
		}
		return k.exchange(c, rc, status)
	}

	// An ALLOW holds a reservation. The estimate is the conservative bound: 1500 input tokens at
	// the graduated charge's highest unit price (3.60 per million) plus 1024 output tokens at
	// 18.00 per million.
	before := limits("c1")
	if before.OpenReservations != 0 || before.Plan != "pro" || before.Currency != "USD" {
		t.Fatalf("c1 limits before any authorize: %+v", before)
	}
	r, d := authz(authReq("c1", "claude-sonnet-4-6", 1500, 1024, "az-1", "run_1"), reqValid, 200)
	if d.Decision != "ALLOW" || !strings.HasPrefix(d.ReservationID, "rsv_") || d.FailOpen || d.Reason != "" {
		t.Fatalf("ALLOW: %s", r.Body)
	}
	if d.Estimate.Tokens != 2524 || !sameDec(t, d.Estimate.Cost, "0.023832") {
		t.Errorf("estimate: %+v", d.Estimate)
	}
	rpm, ok := d.Remaining["requests_per_minute"]
	if !ok || num(t, rpm.Limit) != 60 || num(t, rpm.Remaining) != 59 || rpm.ResetSeconds != 1 {
		t.Errorf("requests_per_minute: %s", r.Body)
	}
	spend, ok := d.Remaining["monthly_spend"]
	if !ok || !decimalOf(t, spend.Limit).Equal(money.MustParse("1000")) {
		t.Errorf("monthly_spend: %s", r.Body)
	}
	if len(d.Remaining) != 2 {
		t.Errorf("remaining lists unlimited dimensions: %s", r.Body)
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if _, err := strconv.ParseInt(r.Header.Get(h), 10, 64); err != nil {
			t.Errorf("%s = %q", h, r.Header.Get(h))
		}
	}
	if p := r.Header.Get("RateLimit-Policy"); !strings.Contains(p, `"requests_per_minute";q=60;w=60`) || !strings.Contains(p, `"monthly_spend";q=100000;w=2592000`) {
		t.Errorf("RateLimit-Policy %q", p)
	}
	if s := r.Header.Get("RateLimit"); !strings.Contains(s, `"requests_per_minute";r=59;t=1`) {
		t.Errorf("RateLimit %q", s)
	}
	if r.Header.Get("Levy-Fail-Open") != "" || r.Header.Get("Retry-After") != "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("ALLOW headers: %v", r.Header)
	}

	// The live limits show the reservation and the figures it took, without charging anything.
	l := limits("c1")
	if l.OpenReservations != 1 || len(l.Reservations) != 1 {
		t.Fatalf("limits after one ALLOW: %+v", l)
	}
	rv := l.Reservations[0]
	if rv.ID != d.ReservationID || rv.CorrelationID != "az-1" || rv.TaskID != "run_1" || rv.Tokens != 2524 || !sameDec(t, rv.Cost, "0.023832") ||
		!rv.ExpiresAt.Equal(testNow.Add(authorize.DefaultReservationTTL)) {
		t.Errorf("reservation: %+v", rv)
	}
	if num(t, l.Limits["requestsPerMinute"]) != 60 || !decimalOf(t, l.Limits["monthlySpend"]).Equal(money.MustParse("1000")) || len(l.Limits) != 2 {
		t.Errorf("limits in force: %+v", l.Limits)
	}
	if q := l.Remaining["requests_per_minute"]; num(t, q.Remaining) != 59 {
		t.Errorf("live requests_per_minute: %+v", q)
	}
	if !l.PeriodStart.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !l.PeriodEnd.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("period: %v – %v", l.PeriodStart, l.PeriodEnd)
	}
	// Held money: the spend headroom is the cap minus spend minus the held estimate.
	spent := decimalOf(t, spend.Limit).Sub(decimalOf(t, l.Remaining["monthly_spend"].Remaining))
	if !spent.Sub(money.MustParse("0.023832")).IsPositive() {
		t.Errorf("the spend headroom does not hold the reservation: spent+held %s", spent)
	}

	// Release: by body, then again (nothing left), then an unknown reservation by query.
	var rel struct{ Released bool }
	post("/v1/reservations/"+d.ReservationID+"/release", map[string]string{"customerId": "c1"}, reqValid, 200).json(t, &rel)
	if !rel.Released {
		t.Errorf("release of an open reservation: false")
	}
	post("/v1/reservations/"+d.ReservationID+"/release?customerId=c1", nil, reqValid, 200).json(t, &rel)
	if rel.Released {
		t.Errorf("a second release: true")
	}
	post("/v1/reservations/rsv_unknown/release?customerId=c1", nil, reqValid, 200).json(t, &rel)
	if rel.Released {
		t.Errorf("an unknown reservation: released")
	}
	if l := limits("c1"); l.OpenReservations != 0 {
		t.Errorf("after release: %+v", l)
	}
	k.problem(post("/v1/reservations/x/release", nil, reqValid, 400), 400, nil, "customerId")

	// Settlement: the usage event with the reservation's correlation ID ends it.
	_, d = authz(authReq("c1", "claude-sonnet-4-6", 200, 100, "az-2", ""), reqValid, 200)
	if d.Decision != "ALLOW" {
		t.Fatalf("second ALLOW: %+v", d)
	}
	if l := limits("c1"); l.OpenReservations != 1 {
		t.Fatalf("before settlement: %+v", l)
	}
	k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/json",
		Body: jsonBody(ev("az-evt-2", "c1", "az-2", "2026-11-28T11:59:00Z", map[string]any{"model": "claude-sonnet-4-6"}, "input_tokens", 180, "output_tokens", 90))}, reqValid, 200)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if l := limits("c1"); l.OpenReservations == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the usage event did not settle the reservation")
		}
	}

	// A DENY: c2 may make 10 requests a minute (its override); the clock is frozen, so the 11th
	// waits exactly 60/10 seconds.
	for i := range 10 {
		if _, d := authz(authReq("c2", "claude-haiku-4-5", 10, 10, "", ""), reqValid, 200); d.Decision != "ALLOW" {
			t.Fatalf("c2 call %d: %+v", i, d)
		}
	}
	r, d = authz(authReq("c2", "claude-haiku-4-5", 10, 10, "", ""), reqValid, 429)
	if d.Decision != "DENY" || d.Reason != "requests_per_minute" || d.RetryAfterSeconds != 6 || d.Never || d.ReservationID != "" {
		t.Errorf("DENY: %s", r.Body)
	}
	if r.Header.Get("Retry-After") != "6" || r.Header.Get("X-RateLimit-Remaining") != "0" || r.Header.Get("X-RateLimit-Limit") != "10" {
		t.Errorf("DENY headers: %v", r.Header)
	}
	if q := d.Remaining["requests_per_minute"]; num(t, q.Limit) != 10 || num(t, q.Remaining) != 0 {
		t.Errorf("DENY remaining: %s", r.Body)
	}
	if l := limits("c2"); l.OpenReservations != 10 {
		t.Errorf("the DENY changed the reservations: %d open", l.OpenReservations)
	}
	// A new override takes effect on the next decision. The bucket is kept in time (a GCRA
	// debt of 60 s, a full minute), so at 12 a minute it is still full: the wait is 60/12 s.
	k.exchange(customerCall(admin, "c2", `{"limits":{"requestsPerMinute":12}}`), reqValid, 200)
	r, d = authz(authReq("c2", "claude-haiku-4-5", 10, 10, "", ""), reqValid, 429)
	if q := d.Remaining["requests_per_minute"]; num(t, q.Limit) != 12 || d.RetryAfterSeconds != 5 {
		t.Errorf("after the override: %s", r.Body)
	}
	k.problem(k.exchange(customerCall(admin, "c2", `{"limits":{"requestsPerMinute":-1,"tokensPerMin":5}}`), reqAny, 400), 400, nil,
		"limits.requestsPerMinute", "limits.tokensPerMin")

	// Breakers: a task's, then the customer's; reset by both routes.
	ctx := context.Background()
	until := testNow.Add(time.Hour)
	if err := srv.Counters.TripBreaker(ctx, "c1", counter.BreakerTask, "run_9", until); err != nil {
		t.Fatal(err)
	}
	if _, d := authz(authReq("c1", "claude-sonnet-4-6", 10, 10, "", "run_9"), reqValid, 429); d.Reason != "task_margin_guard" {
		t.Errorf("an open task breaker: %+v", d)
	}
	if _, d := authz(authReq("c1", "claude-sonnet-4-6", 10, 10, "", "run_10"), reqValid, 200); d.Decision != "ALLOW" {
		t.Errorf("another task: %+v", d)
	}
	var reset struct {
		BreakerID string
		Reset     bool
	}
	post("/v1/breakers/c1/task/run_9/reset", nil, reqValid, 200).json(t, &reset)
	if !reset.Reset || reset.BreakerID != "c1/task/run_9" {
		t.Errorf("reset an open task breaker: %+v", reset)
	}
	if _, d := authz(authReq("c1", "claude-sonnet-4-6", 10, 10, "", "run_9"), reqValid, 200); d.Decision != "ALLOW" {
		t.Errorf("after the reset: %+v", d)
	}
	if err := srv.Counters.TripBreaker(ctx, "c1", counter.BreakerTask, "run_8", until); err != nil {
		t.Fatal(err)
	}
	if r := srv.do(call{Method: "POST", Path: "/v1/breakers/c1%2Ftask%2Frun_8/reset", Key: admin}); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"reset": true`)) {
		t.Errorf("reset by escaped breaker ID: %d %s", r.Status, r.Body)
	}
	if err := srv.Counters.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", until); err != nil {
		t.Fatal(err)
	}
	if _, d := authz(authReq("c1", "claude-sonnet-4-6", 10, 10, "", ""), reqValid, 429); d.Reason != "margin_guard" || d.RetryAfterSeconds != 3600 {
		t.Errorf("an open customer breaker: %+v", d)
	}
	post("/v1/breakers/c1/reset", nil, reqValid, 200).json(t, &reset)
	if !reset.Reset {
		t.Errorf("reset the customer breaker: %+v", reset)
	}
	post("/v1/breakers/c1/reset", nil, reqValid, 200).json(t, &reset)
	if reset.Reset {
		t.Errorf("a second reset: %+v", reset)
	}
	k.problem(post("/v1/breakers/a%20b/reset", nil, reqValid, 400), 400, nil, "breakerId")

	// Errors.
	k.problem(k.exchange(authorizeCall(admin, map[string]any{"model": "m"}), reqInvalid, 400), 400, nil, "customerId")
	k.problem(k.exchange(authorizeCall(admin, map[string]any{"customerId": "c1", "model": "m", "maxOutputTokens": -1, "colour": "red"}), reqInvalid, 400), 400, nil, "maxOutputTokens", "colour")
	k.problem(k.exchange(authorizeCall(admin, authReq("nobody", "m", 1, 1, "", "")), reqValid, 404), 404, nil)
	k.problem(k.exchange(authorizeCall(admin, authReq("c4", "m", 1, 1, "", "")), reqValid, 404), 404, nil) // no subscription
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/authorize", Key: admin, ContentType: "text/plain", Body: []byte(`{}`)}, reqInvalid, 415), 415, nil, "Content-Type")
	k.problem(k.exchange(call{Method: "GET", Path: "/v1/customers/nobody/limits", Key: admin}, reqValid, 404), 404, nil)
	k.problem(k.exchange(call{Method: "GET", Path: "/v1/customers/a%20b/limits", Key: admin}, reqInvalid, 400), 400, nil, "customerId")

	// The metrics count the decisions.
	if r := srv.do(call{Method: "GET", Path: "/metrics"}); !bytes.Contains(r.Body, []byte(`levy_authorize_decisions_total{decision="DENY",reason="requests_per_minute"} 2`)) {
		t.Errorf("metrics: no authorize DENY counted")
	}
}

// flakyCounters is a counter store the test can take down: while down, Authorize fails as an
// unreachable Redis does.
type flakyCounters struct {
	counter.Authorizer
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flakyCounters) Authorize(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return counter.AuthorizeResult{}, fmt.Errorf("redis: %w", counter.ErrUnavailable)
	}
	return f.Authorizer.Authorize(ctx, p)
}

func (f *flakyCounters) Release(ctx context.Context, customerID, reservationID string) (bool, error) {
	if f.down.Load() {
		return false, counter.ErrUnavailable
	}
	return f.Authorizer.Release(ctx, customerID, reservationID)
}

// TestAuthorizeFailOpen: with the counter store down, answers are ALLOW marked fail-open (body
// and header, no reservation, no quota figures) up to the safe capacity, then DENY with reason
// fail_open_capacity and the exact wait; release is a 503; the store back, decisions are normal.
func TestAuthorizeFailOpen(t *testing.T) {
	var flaky *flakyCounters
	srv := newTestServer(t, serverOptions{
		authorize:  authorize.Options{SafeRequestsPerMinute: 3},
		authorizer: func(a counter.Authorizer) counter.Authorizer { flaky = &flakyCounters{Authorizer: a}; return flaky },
	})
	k := newContract(t, srv)
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(testCatalog)},
		{Method: "PUT", Path: "/v1/customers/c1", ContentType: "application/json", Body: []byte(`{"plan":"pro"}`)},
	} {
		c.Key = srv.Admin
		mustStatus(t, c, srv.do(c), 200)
	}
	req := authReq("c1", "claude-sonnet-4-6", 100, 100, "fo", "")
	flaky.down.Store(true)
	for i := range 3 {
		r := k.exchange(authorizeCall(srv.Admin, req), reqValid, 200)
		var d decisionDoc
		r.json(t, &d)
		if d.Decision != "ALLOW" || !d.FailOpen || d.ReservationID != "" || len(d.Remaining) != 0 || d.Tier != "" {
			t.Errorf("fail-open call %d: %s", i, r.Body)
		}
		if r.Header.Get("Levy-Fail-Open") != "true" || r.Header.Get("X-RateLimit-Limit") != "" {
			t.Errorf("fail-open headers: %v", r.Header)
		}
	}
	// The safe capacity (3 a minute, a GCRA bucket) is spent: the next fits in 20 s.
	r := k.exchange(authorizeCall(srv.Admin, req), reqValid, 429)
	var d decisionDoc
	r.json(t, &d)
	if d.Decision != "DENY" || d.Reason != authorize.ReasonFailOpenCapacity || !d.FailOpen || d.RetryAfterSeconds != 20 || r.Header.Get("Retry-After") != "20" || r.Header.Get("Levy-Fail-Open") != "true" {
		t.Errorf("past the safe capacity: %s %v", r.Body, r.Header)
	}
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/reservations/rsv_x/release?customerId=c1", Key: srv.Admin}, reqValid, 503), 503, nil)
	if r := srv.do(call{Method: "GET", Path: "/metrics"}); !bytes.Contains(r.Body, []byte(`levy_authorize_fail_open_total{outcome="allowed"} 3`)) ||
		!bytes.Contains(r.Body, []byte(`levy_authorize_fail_open_total{outcome="denied"} 1`)) {
		t.Errorf("fail-open metrics missing")
	}
	flaky.down.Store(false)
	r = k.exchange(authorizeCall(srv.Admin, req), reqValid, 200)
	r.json(t, &d)
	if d.FailOpen || d.ReservationID == "" || r.Header.Get("Levy-Fail-Open") != "" {
		t.Errorf("with the store back: %s", r.Body)
	}
	if flaky.calls.Load() != 5 {
		t.Errorf("the store was asked %d times, want 5 (once per decision)", flaky.calls.Load())
	}
}

// TestAuthorizeWithoutCounterStore: a server without a counter store answers the authorize
// routes with 503 problems.
func TestAuthorizeWithoutCounterStore(t *testing.T) {
	srv := newTestServer(t, serverOptions{noCounters: true})
	for _, c := range []call{
		authorizeCall(srv.Admin, authReq("c1", "m", 1, 1, "", "")),
		{Method: "POST", Path: "/v1/reservations/r/release?customerId=c1", Key: srv.Admin},
		{Method: "GET", Path: "/v1/customers/c1/limits", Key: srv.Admin},
		{Method: "POST", Path: "/v1/breakers/c1/reset", Key: srv.Admin},
	} {
		checkProblem(t, srv.do(c), 503, nil)
	}
}

// TestAuthorizeExactUnderConcurrency: 60 requests a minute (the pro plan) and 150 concurrent
// requests through the handler: exactly 60 are allowed, and exactly 60 reservations are open.
func TestAuthorizeExactUnderConcurrency(t *testing.T) {
	srv := newTestServer(t, serverOptions{network: true})
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(testCatalog)},
		{Method: "PUT", Path: "/v1/customers/c1", ContentType: "application/json", Body: []byte(`{"plan":"pro"}`)},
	} {
		c.Key = srv.Admin
		mustStatus(t, c, srv.do(c), 200)
	}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for i := range 150 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := srv.do(authorizeCall(srv.Admin, authReq("c1", "claude-sonnet-4-6", 100, 100, "cc-"+strconv.Itoa(i), "")))
			switch r.Status {
			case 200:
				allowed.Add(1)
			case 429:
				denied.Add(1)
			default:
				t.Errorf("status %d: %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 60 || denied.Load() != 90 {
		t.Errorf("allowed %d, denied %d; want 60 and 90", allowed.Load(), denied.Load())
	}
	r := srv.do(call{Method: "GET", Path: "/v1/customers/c1/limits", Key: srv.Admin})
	var l limitsDoc
	r.json(t, &l)
	if l.OpenReservations != 60 {
		t.Errorf("%d open reservations, want 60", l.OpenReservations)
	}
}

// TestDecodeAuthorizeRequest: the fast decoder reads every field and names every bad one.
func TestDecodeAuthorizeRequest(t *testing.T) {
	good := []struct {
		body string
		want authorize.Request
	}{
		{`{"customerId":"c1","model":"m","estimatedInputTokens":1500,"maxOutputTokens":1024,"correlationId":"r1","taskId":"t1"}`,
			authorize.Request{CustomerID: "c1", Model: "m", EstimatedInputTokens: 1500, MaxOutputTokens: 1024, CorrelationID: "r1", TaskID: "t1"}},
		{` {"model":"gpt-5","customerId":"c.2@x"} `, authorize.Request{CustomerID: "c.2@x", Model: "gpt-5"}},
		{`{"customerId":"c1","model":"m\u00e9","estimatedInputTokens":null,"taskId":null}`, authorize.Request{CustomerID: "c1", Model: "mé"}},
		{`{"customerId":"c1","model":"m\u00e9","estimatedInputTokens":0,"maxOutputTokens":4503599627370495}`,
			authorize.Request{CustomerID: "c1", Model: "mé", MaxOutputTokens: 4503599627370495}},
		{`{"customerId":"c1","model":"m","correlationId":"\"quoted\" \\ \u2028"}`, authorize.Request{CustomerID: "c1", Model: "m", CorrelationID: "\"quoted\" \\ \u2028"}},
	}
	for _, g := range good {
		got, err := httpapi.DecodeAuthorizeRequest([]byte(g.body))
		if err != nil || got != g.want {
			t.Errorf("%s: %+v, %v; want %+v", g.body, got, err, g.want)
		}
	}
	bad := []struct {
		body   string
		fields []string
	}{
		{``, []string{"body"}},
		{`[]`, []string{"body"}},
		{`{"customerId":"c1","model":"m"} {}`, []string{"body"}},
		{`{"customerId":"c1","model":"m"`, []string{"body"}},
		{`{}`, []string{"customerId", "model"}},
		{`{"customerId":7,"model":true}`, []string{"customerId", "model"}},
		{`{"customerId":"c 1","model":""}`, []string{"customerId", "model"}},
		{`{"customerId":"` + strings.Repeat("c", 257) + `","model":"` + strings.Repeat("m", 257) + `"}`, []string{"customerId", "model"}},
		{`{"customerId":"c1","model":"m","estimatedInputTokens":-1,"maxOutputTokens":1.5}`, []string{"estimatedInputTokens", "maxOutputTokens"}},
		{`{"customerId":"c1","model":"m","estimatedInputTokens":1e3,"maxOutputTokens":"100"}`, []string{"estimatedInputTokens", "maxOutputTokens"}},
		{`{"customerId":"c1","model":"m","estimatedInputTokens":4503599627370496,"maxOutputTokens":99999999999999999999999}`, []string{"estimatedInputTokens", "maxOutputTokens"}},
		{`{"customerId":"c1","model":"m","estimatedInputTokens":-0.0,"maxOutputTokens":[1]}`, []string{"estimatedInputTokens", "maxOutputTokens"}},
		{`{"customerId":"c1","model":"m","correlationId":5,"taskId":{"id":"t"}}`, []string{"correlationId", "taskId"}},
		{`{"customerId":"c1","model":"m","correlationId":"` + strings.Repeat("r", 257) + `","taskId":"a\u0000b"}`, []string{"correlationId", "taskId"}},
		{"{\"customerId\":\"c1\",\"model\":\"m\xff\",\"taskId\":\"\xc3\"}", []string{"model", "taskId"}},
		{`{"customerId":"c1","model":"m","Model":"x","max_tokens":5}`, []string{"Model", "max_tokens"}},
		{`{"customerId":"c1","model":"m\n"}`, []string{"model"}},
		{`{"customerId":"c1","model":"m","customerId":"c2"}`, []string{"customerId"}},
		{`{"customerId":"c1","model":"m","estimatedInputTokens":1,"estimatedInputTokens":-5}`, []string{"estimatedInputTokens"}},
	}
	for _, b := range bad {
		_, err := httpapi.DecodeAuthorizeRequest([]byte(b.body))
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Kind != problem.Invalid {
			t.Errorf("%q: %v, want an Invalid problem", b.body, err)
			continue
		}
		for _, f := range b.fields {
			found := false
			for _, pf := range pe.Fields {
				found = found || pf.Field == f
			}
			if !found {
				t.Errorf("%q: the problem does not name %q: %+v", b.body, f, pe.Fields)
			}
		}
		if len(pe.Fields) != len(b.fields) {
			t.Errorf("%q: %d fields named, want %d: %+v", b.body, len(pe.Fields), len(b.fields), pe.Fields)
		}
	}
}

// FuzzAuthorizeRequest sends arbitrary bodies to POST /v1/authorize: never a 5xx or a panic;
// every refusal is a problem document; a body the decoder accepts is a valid request; every
// decision is a 200 ALLOW or a 429 DENY carrying the quota headers.
func FuzzAuthorizeRequest(f *testing.F) {
	srv := newTestServer(f, serverOptions{})
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(testCatalog)},
		{Method: "PUT", Path: "/v1/customers/c1", ContentType: "application/json", Body: []byte(`{"plan":"pro"}`)},
		{Method: "PUT", Path: "/v1/customers/c2", ContentType: "application/json", Body: []byte(`{"plan":"basic","limits":{"requestsPerMinute":0}}`)},
	} {
		c.Key = srv.Admin
		rec := httptest.NewRecorder()
		srv.API.ServeHTTP(rec, c.request(""))
		if rec.Code != 200 {
			f.Fatalf("setup %s %s: %d %s", c.Method, c.Path, rec.Code, rec.Body)
		}
	}
	for _, s := range []string{
		`{"customerId":"c1","model":"claude-sonnet-4-6","estimatedInputTokens":1500,"maxOutputTokens":1024,"correlationId":"r","taskId":"t"}`,
		`{"customerId":"c2","model":"m"}`, `{"customerId":"nobody","model":"m"}`, `{"customerId":"c1","model":"m","maxOutputTokens":4503599627370495}`,
		`{"customerId":"c1","model":"m","estimatedInputTokens":-1}`, `{"customerId":"c1","model":"m","estimatedInputTokens":1e400}`,
		`{"customerId":"c1","model":"m","estimatedInputTokens":NaN}`, `{"customerId":"c1","model":"m","x":1,"x":2}`,
		`{"customerId":"c1","model":"\ud800"}`, `{"customerId":"c1","model":"m\u0000"}`, "{\"customerId\":\"c1\",\"model\":\"\xff\"}",
		``, `null`, `[]`, `"x"`, `{`, `{"customerId":null,"model":null}`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, derr := httpapi.DecodeAuthorizeRequest(body)
		if derr == nil {
			if err := req.Validate(); err != nil {
				t.Fatalf("decoded an invalid request from %q: %v", body, err)
			}
		} else if problem.KindOf(derr) != problem.Invalid {
			t.Fatalf("%q: a decode error that is not Invalid: %v", body, derr)
		}
		c := call{Method: "POST", Path: "/v1/authorize", Key: srv.Admin, ContentType: "application/json", Body: body}
		rec := httptest.NewRecorder()
		srv.API.ServeHTTP(rec, c.request(""))
		switch {
		case rec.Code >= 500:
			t.Fatalf("%d on %q: %s", rec.Code, body, rec.Body)
		case rec.Code == 200 || rec.Code == 429:
			if derr != nil {
				t.Fatalf("a decision on a body the decoder refuses: %q", body)
			}
			if rec.Code == 429 && rec.Header().Get("Retry-After") == "" {
				t.Fatalf("a DENY without Retry-After: %q", body)
			}
		case !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json"):
			t.Fatalf("%d without a problem document on %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// BenchmarkAuthorizeHandler is the HTTP handler of POST /v1/authorize on the memory store,
// without the network: routing, the key check, decoding, the decision, the headers and the
// answer. Each decision's reservation expires after a millisecond of a clock that moves 10 µs
// per reading, so the store stays small.
func BenchmarkAuthorizeHandler(b *testing.B) {
	var ticks atomic.Int64
	now := func() time.Time { return testNow.Add(time.Duration(ticks.Add(1)) * 10 * time.Microsecond) }
	srv := newTestServer(b, serverOptions{now: now, authorize: authorize.Options{ReservationTTL: time.Millisecond}})
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench_%02d", i)
	}
	setup := []call{{Method: "PUT", Path: "/v1/catalog", ContentType: "application/yaml", Body: []byte(testCatalog)}}
	for _, id := range ids {
		setup = append(setup, customerCall("", id, `{"plan":"pro","limits":{"requestsPerMinute":1000000000,"tokensPerMinute":1000000000000,"monthlySpend":"1000000000"}}`))
	}
	for _, c := range setup {
		c.Key = srv.Admin
		mustStatus(b, c, srv.do(c), 200)
	}
	bodies := make([][]byte, len(ids))
	for i, id := range ids {
		bodies[i] = []byte(`{"customerId":"` + id + `","model":"claude-sonnet-4-6","estimatedInputTokens":1500,"maxOutputTokens":1024,"correlationId":"req_0123456789"}`)
	}
	// Each goroutine reuses one request (its body rewound) and one writer, so the figures are
	// the handler's own.
	type client struct {
		req  *http.Request
		body *rewinder
		w    *discardWriter
	}
	var next atomic.Int64
	newClient := func() *client {
		c := &client{body: &rewinder{b: bodies[next.Add(1)%int64(len(bodies))]}, w: newDiscardWriter()}
		c.req = httptest.NewRequest("POST", "/v1/authorize", nil)
		c.req.Body = c.body
		c.req.Header.Set("Authorization", "Bearer "+srv.Admin)
		c.req.Header.Set("Content-Type", "application/json")
		return c
	}
	one := func(b *testing.B, c *client) {
		c.body.off = 0
		clear(c.w.h)
		c.w.status = 0
		srv.API.ServeHTTP(c.w, c.req)
		if c.w.status != 200 {
			b.Fatalf("status %d", c.w.status)
		}
	}
	run := func(b *testing.B, parallel bool) {
		b.ReportAllocs()
		if !parallel {
			c := newClient()
			for b.Loop() {
				one(b, c)
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			c := newClient()
			for pb.Next() {
				one(b, c)
			}
		})
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// rewinder is a request body the benchmark rewinds between requests.
type rewinder struct {
	b   []byte
	off int
}

func (r *rewinder) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *rewinder) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status, so the benchmark measures the
// handler rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: http.Header{}} }

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.status = code }

// TestAppendNanos: the answer's money notation is exactly money.FromNanos(n).String(), quoted,
// for the edges and for random values.
func TestAppendNanos(t *testing.T) {
	vals := []int64{0, 1, -1, 9, 10, 999_999_999, 1_000_000_000, 1_000_000_001, -1_000_000_000, 1_500_000_000, 123_456_789_012,
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1, 4503599627370495}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		v := int64(rng.Uint64())
		if rng.IntN(2) == 0 {
			v %= 1_000_000_000_000
		}
		vals = append(vals, v)
	}
	for _, v := range vals {
		got := string(httpapi.AppendNanos(nil, v))
		if want := `"` + money.FromNanos(v).String() + `"`; got != want {
			t.Fatalf("appendNanos(%d) = %s, want %s", v, got, want)
		}
	}
}
