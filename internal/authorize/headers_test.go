package authorize

import (
	"net/http"
	"testing"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/money"
)

// checkHeaders compares every header written with want, exactly.
func checkHeaders(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k := range h {
		if _, ok := want[http.CanonicalHeaderKey(k)]; !ok {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected header %s: %q", k, h.Get(k))
			}
		}
	}
}

func canon(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}

func TestHeadersOfAnAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")
	res := e.authorize(t, call("c1"))
	// Free tier: 60 rpm, 100,000 tpm, 5M tokens and $100 a month, 2 in flight. After one call
	// of 2524 tokens and $0.023832: the RPM bucket is whole again in 1 s, the TPM one in
	// 2524 × 60000/100000 = 1514.4 ms (1.515 s); the period ends in 2 d 14 h = 223,200 s and
	// lasts 30 days (2,592,000 s); $99.976168 remaining is 9998 cents (money.Round). The
	// tightest is concurrency (1 of 2).
	h := http.Header{}
	res.Headers(h)
	checkHeaders(t, h, canon(map[string]string{
		"X-RateLimit-Limit":     "2",
		"X-RateLimit-Remaining": "1",
		"X-RateLimit-Reset":     "0",
		"RateLimit-Policy": `"monthly_spend";q=10000;w=2592000, "monthly_tokens";q=5000000;w=2592000, ` +
			`"tokens_per_minute";q=100000;w=60, "requests_per_minute";q=60;w=60, "max_concurrent";q=2;qu="concurrent-requests"`,
		"RateLimit": `"monthly_spend";r=9998;t=223200, "monthly_tokens";r=4997476;t=223200, ` +
			`"tokens_per_minute";r=97476;t=2, "requests_per_minute";r=59;t=1, "max_concurrent";r=1;t=0`,
	}))

	h = http.Header{}
	res.OpenAIHeaders(h)
	checkHeaders(t, h, canon(map[string]string{
		"x-ratelimit-limit-requests":     "60",
		"x-ratelimit-remaining-requests": "59",
		"x-ratelimit-reset-requests":     "1s",
		"x-ratelimit-limit-tokens":       "100000",
		"x-ratelimit-remaining-tokens":   "97476",
		"x-ratelimit-reset-tokens":       "1.515s",
	}))

	h = http.Header{}
	res.AnthropicHeaders(h)
	checkHeaders(t, h, canon(map[string]string{
		"anthropic-ratelimit-requests-limit":     "60",
		"anthropic-ratelimit-requests-remaining": "59",
		"anthropic-ratelimit-requests-reset":     "2026-11-28T10:00:01Z",
		"anthropic-ratelimit-tokens-limit":       "100000",
		"anthropic-ratelimit-tokens-remaining":   "97476",
		"anthropic-ratelimit-tokens-reset":       "2026-11-28T10:00:02Z", // 10:00:01.515 rounded up
	}))
}

func TestHeadersOfADeny(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "open", 1, `{"requestsPerMinute": 1, "tokensPerMinute": 10000}`)
	e.authorize(t, call("c1"))
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != "requests_per_minute" {
		t.Fatalf("%+v", res)
	}
	// The headline is the denying dimension, though max_concurrent (1 of 2 left) is as tight.
	h := http.Header{}
	res.Headers(h)
	checkHeaders(t, h, canon(map[string]string{
		"X-RateLimit-Limit":     "1",
		"X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset":     "60",
		"RateLimit-Policy":      `"tokens_per_minute";q=10000;w=60, "requests_per_minute";q=1;w=60, "max_concurrent";q=2;qu="concurrent-requests"`,
		"RateLimit":             `"tokens_per_minute";r=7476;t=16, "requests_per_minute";r=0;t=60, "max_concurrent";r=1;t=0`,
		"Retry-After":           "60",
	}))
	h = http.Header{}
	res.OpenAIHeaders(h)
	checkHeaders(t, h, canon(map[string]string{
		"x-ratelimit-limit-requests":     "1",
		"x-ratelimit-remaining-requests": "0",
		"x-ratelimit-reset-requests":     "1m0s",
		"x-ratelimit-limit-tokens":       "10000",
		"x-ratelimit-remaining-tokens":   "7476",
		"x-ratelimit-reset-tokens":       "15.144s",
		"Retry-After":                    "60",
	}))
	h = http.Header{}
	res.AnthropicHeaders(h)
	checkHeaders(t, h, canon(map[string]string{
		"anthropic-ratelimit-requests-limit":     "1",
		"anthropic-ratelimit-requests-remaining": "0",
		"anthropic-ratelimit-requests-reset":     "2026-11-28T10:01:00Z",
		"anthropic-ratelimit-tokens-limit":       "10000",
		"anthropic-ratelimit-tokens-remaining":   "7476",
		"anthropic-ratelimit-tokens-reset":       "2026-11-28T10:00:16Z",
		"Retry-After":                            "60",
	}))
}

func TestHeadersWhenFailingOpen(t *testing.T) {
	t.Parallel()
	allow := Result{Decision: Allow, FailOpen: true}
	deny := Result{Decision: Deny, Reason: ReasonFailOpenCapacity, RetryAfterSeconds: 20, FailOpen: true}
	for _, write := range []func(*Result, http.Header){(*Result).Headers, (*Result).OpenAIHeaders, (*Result).AnthropicHeaders} {
		h := http.Header{}
		write(&allow, h)
		checkHeaders(t, h, map[string]string{"Levy-Fail-Open": "true"})
		h = http.Header{}
		write(&deny, h)
		checkHeaders(t, h, map[string]string{"Levy-Fail-Open": "true", "Retry-After": "20"})
	}
}

func TestHeaderFiguresAreStructuredFieldIntegers(t *testing.T) {
	t.Parallel()
	res := Result{Decision: Allow, currency: money.Currency{Code: "JPY", Minor: 0}, periodSeconds: 86400, head: limit.DimMonthlyTokens, headOK: true}
	res.Remaining[limit.DimMonthlyTokens] = Quota{Active: true, Limit: limit.MaxValue, Remaining: limit.MaxValue - 1, ResetSeconds: 5}
	// ¥1,234.5 of spend left: 1235 yen at the currency's minor unit (money.Round).
	res.Remaining[limit.DimMonthlySpend] = Quota{Active: true, Limit: 2_000_000_000_000, Remaining: 1_234_500_000_000, ResetSeconds: 5}
	h := http.Header{}
	res.Headers(h)
	checkHeaders(t, h, map[string]string{
		"X-Ratelimit-Limit":     "999999999999999",
		"X-Ratelimit-Remaining": "999999999999999",
		"X-Ratelimit-Reset":     "5",
		"Ratelimit-Policy":      `"monthly_spend";q=2000;w=86400, "monthly_tokens";q=999999999999999;w=86400`,
		"Ratelimit":             `"monthly_spend";r=1235;t=5, "monthly_tokens";r=999999999999999;t=5`,
	})
}

// headersResult is an ALLOW with every dimension of headerDims limited, spend included.
func headersResult(tb testing.TB) Result {
	tb.Helper()
	e := newEnv(tb, loadCatalog(tb, ladderCatalog), Options{})
	e.plans.put(tb, "c1", "payg", 1, "")
	return e.authorize(tb, call("c1"))
}

// Headers writes canonical keys straight into the map and shares one string and one backing
// array between the values: two allocations when no figure needs rounding (counts, and amounts
// in whole cents), not one per Set and per figure.
func TestHeadersAllocations(t *testing.T) {
	res := Result{Decision: Deny, RetryAfterSeconds: 3, FailOpen: false, currency: usd(t), periodSeconds: 2_592_000,
		head: limit.DimTPM, headOK: true}
	for _, dim := range headerDims {
		res.Remaining[dim] = Quota{Active: true, Limit: 100_000_000_000, Remaining: 40_000_000_000, ResetSeconds: 7}
	}
	h := make(http.Header, 8)
	if n := testing.AllocsPerRun(100, func() { res.Headers(h) }); n > 2 {
		t.Errorf("Headers allocates %v times per call, want at most 2", n)
	}
	if got := h.Get("RateLimit"); got != `"monthly_spend";r=4000;t=7, "monthly_tokens";r=40000000000;t=7, `+
		`"tokens_per_minute";r=40000000000;t=7, "requests_per_minute";r=40000000000;t=7, "max_concurrent";r=40000000000;t=7` {
		t.Errorf("RateLimit = %q", got)
	}
	if got := h.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After = %q", got)
	}
	for k := range h {
		if k != http.CanonicalHeaderKey(k) {
			t.Errorf("header key %q is not canonical", k)
		}
	}
}

// BenchmarkHeaders is the headers of a real ALLOW with every dimension limited: its spend
// remaining is not a whole number of cents, so money.Round runs once.
func BenchmarkHeaders(b *testing.B) {
	res := headersResult(b)
	b.ReportAllocs()
	for b.Loop() {
		res.Headers(make(http.Header, 8))
	}
}

func usd(t testing.TB) money.Currency {
	t.Helper()
	c, err := money.LookupCurrency("USD")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
