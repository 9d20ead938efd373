package authorize

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

// call is a request for the example size: 1500 input tokens and up to 1024 output tokens.
func call(customer string) Request {
	return Request{CustomerID: customer, Model: "claude-sonnet-4-6", EstimatedInputTokens: 1500, MaxOutputTokens: 1024}
}

// callNanos is call's estimate on ladderCatalog's payg: 1500 × 3.60/1M + 1024 × 18/1M = $0.023832.
const callNanos = 23_832_000

func TestAuthorizeRateLimitRetryAfterIsExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, `{"requestsPerMinute": 2, "maxConcurrent": 100}`)

	for i := range 2 {
		res := e.authorize(t, call("c1"))
		if res.Decision != Allow || !strings.HasPrefix(res.ReservationID, "rsv_") || len(res.ReservationID) != 36 {
			t.Fatalf("call %d: %+v, want ALLOW with a reservation", i, res)
		}
		if q := res.Remaining[limit.DimRPM]; !q.Active || q.Limit != 2 || q.Remaining != int64(1-i) || q.ResetSeconds != int64(30*(i+1)) {
			t.Errorf("call %d: requests_per_minute = %+v", i, q)
		}
		if res.Estimate != (limit.Usage{Tokens: 2524, Nanos: callNanos}) {
			t.Errorf("Estimate = %+v", res.Estimate)
		}
	}
	// Two per minute: the next request fits 30 s after the burst, not a millisecond before.
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != "requests_per_minute" || res.RetryAfterSeconds != 30 || res.ReservationID != "" || res.Never {
		t.Fatalf("third call: %+v, want DENY requests_per_minute after 30 s", res)
	}
	e.clock.Advance(30*time.Second - time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Deny || res.RetryAfterSeconds != 1 {
		t.Fatalf("1 ms early: %+v, want DENY with 1 s (1 ms rounded up)", res)
	}
	e.clock.Advance(time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("on time: %+v, want ALLOW", res)
	}
}

func TestAuthorizeAppliesTheStoresTier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")
	for _, tc := range []struct {
		stored, tier string
		rpm, conc    int64
		spend        int64
	}{
		{"", "free", 60, 2, 100_000_000_000},
		{"build", "build", 120, 3, 500_000_000_000},
		{"scale", "scale", 30, 1, 50_000_000_000},
		{"enterprise", "enterprise", 10_000, 3, 100_000_000_000},
		{"gone", "free", 60, 2, 100_000_000_000}, // a tier the ladder lacks reads as the base tier
	} {
		if err := e.store.SetTier(ctx, "c1", tc.stored); err != nil {
			t.Fatal(err)
		}
		res := e.authorize(t, call("c1"))
		if res.Decision != Allow || res.Tier != tc.tier {
			t.Fatalf("stored tier %q: %+v, want ALLOW in %s", tc.stored, res, tc.tier)
		}
		if got := res.Remaining[limit.DimRPM].Limit; got != tc.rpm {
			t.Errorf("tier %s: requests_per_minute limit %d, want %d", tc.tier, got, tc.rpm)
		}
		if got := res.Remaining[limit.DimConcurrency].Limit; got != tc.conc {
			t.Errorf("tier %s: max_concurrent limit %d, want %d", tc.tier, got, tc.conc)
		}
		if got := res.Remaining[limit.DimMonthlySpend].Limit; got != tc.spend {
			t.Errorf("tier %s: monthly_spend limit %d, want %d", tc.tier, got, tc.spend)
		}
		if _, err := e.svc.Release(ctx, "c1", res.ReservationID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuthorizeConcurrencyAndRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "") // free tier: 2 in flight
	a, b := e.authorize(t, call("c1")), e.authorize(t, call("c1"))
	if a.Decision != Allow || b.Decision != Allow || a.ReservationID == b.ReservationID {
		t.Fatalf("%+v / %+v, want two ALLOWs with distinct reservations", a, b)
	}
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != "max_concurrent" || res.RetryAfterSeconds != 1 {
		t.Fatalf("third: %+v, want DENY max_concurrent, Retry-After 1 s (when a reservation ends)", res)
	}
	if ok, err := e.svc.Release(ctx, "c1", a.ReservationID); err != nil || !ok {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if ok, err := e.svc.Release(ctx, "c1", a.ReservationID); err != nil || ok {
		t.Fatalf("second Release = %v, %v; want false, nil", ok, err)
	}
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("after release: %+v, want ALLOW", res)
	}
	if n, _ := e.store.OpenReservations(ctx, "c1"); n != 2 {
		t.Errorf("open reservations = %d, want 2", n)
	}
	for _, tc := range []struct{ customer, id, field string }{{"", "rsv_1", "customerId"}, {"c/1", "rsv_1", "customerId"}, {"c1", "", "reservationId"}} {
		_, err := e.svc.Release(ctx, tc.customer, tc.id)
		if fieldOf(err) != tc.field {
			t.Errorf("Release(%q, %q) = %v, want an Invalid problem naming %s", tc.customer, tc.id, err, tc.field)
		}
	}
}

func TestAuthorizeWalletHoldsEstimates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, `{"maxConcurrent": 100}`)
	// Two estimates of $0.023832 fit in $0.05; the third does not.
	if _, err := e.store.Grant(ctx, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 50_000_000}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		res := e.authorize(t, call("c1"))
		if res.Decision != Allow {
			t.Fatalf("%+v, want ALLOW", res)
		}
		ids = append(ids, res.ReservationID)
	}
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != "wallet_balance" {
		t.Fatalf("%+v, want DENY wallet_balance", res)
	}
	if q := res.Remaining[limit.DimWallet]; q.Limit != 50_000_000 || q.Remaining != 50_000_000-2*callNanos {
		t.Errorf("wallet = %+v", q)
	}
	if _, err := e.svc.Release(ctx, "c1", ids[0]); err != nil {
		t.Fatal(err)
	}
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("after release: %+v, want ALLOW", res)
	}
}

func TestAuthorizeDeniesWhatCanNeverPass(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "big", "payg", 1, "")
	e.plans.put(t, "zero", "payg", 1, `{"maxConcurrent": 0}`)
	// 150,000 tokens never fit 100,000 tokens per minute.
	res := e.authorize(t, Request{CustomerID: "big", Model: "m", EstimatedInputTokens: 100_000, MaxOutputTokens: 50_000})
	if res.Decision != Deny || res.Reason != "tokens_per_minute" || !res.Never || res.RetryAfterSeconds != 1 {
		t.Fatalf("%+v, want DENY tokens_per_minute, Never", res)
	}
	before := e.fault.calls.Load()
	res = e.authorize(t, call("zero"))
	if res.Decision != Deny || res.Reason != "max_concurrent" || !res.Never || res.RetryAfterSeconds != 1 || res.Tier != "" {
		t.Fatalf("%+v, want DENY max_concurrent, Never", res)
	}
	if e.fault.calls.Load() != before {
		t.Error("a limit of 0 in every tier must be decided without the store")
	}
	if n, _ := e.store.OpenReservations(context.Background(), "zero"); n != 0 {
		t.Errorf("open reservations = %d after a denial", n)
	}
}

func TestAuthorizeSpendCapAndCacheInvalidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, `{"monthlySpend": "0.05", "maxConcurrent": 100}`)
	for range 2 {
		if res := e.authorize(t, call("c1")); res.Decision != Allow {
			t.Fatalf("%+v, want ALLOW", res)
		}
	}
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != "monthly_spend" || res.RetryAfterSeconds != 1 {
		t.Fatalf("%+v, want DENY monthly_spend held by reservations (Retry-After 1 s)", res)
	}
	// New overrides take effect on the next call.
	e.plans.put(t, "c1", "payg", 1, `{"monthlySpend": "1", "maxConcurrent": 100}`)
	if res := e.authorize(t, call("c1")); res.Decision != Allow || res.Remaining[limit.DimMonthlySpend].Limit != 1_000_000_000 {
		t.Fatalf("after raising the cap: %+v, want ALLOW under $1", res)
	}
	// So does a move to another plan version: "open" has no limits but the tier's.
	e.plans.put(t, "c1", "open", 2, "")
	res = e.authorize(t, call("c1"))
	if res.Remaining[limit.DimMonthlySpend].Active || res.Remaining[limit.DimConcurrency].Limit != 2 {
		t.Fatalf("on plan open: %+v", res.Remaining)
	}
}

func TestAuthorizeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")
	e.plans.put(t, "typo", "payg", 1, `{"requestPerMinute": 5}`)
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name   string
		req    Request
		fields []string
	}{
		{"no customer", Request{Model: "m"}, []string{"customerId"}},
		{"bad customer", Request{CustomerID: "a/b", Model: "m"}, []string{"customerId"}},
		{"no model", Request{CustomerID: "c1"}, []string{"model"}},
		{"long model", Request{CustomerID: "c1", Model: long}, []string{"model"}},
		{"negative tokens", Request{CustomerID: "c1", Model: "m", EstimatedInputTokens: -1, MaxOutputTokens: -5}, []string{"estimatedInputTokens", "maxOutputTokens"}},
		{"too many tokens", Request{CustomerID: "c1", Model: "m", MaxOutputTokens: limit.MaxValue}, []string{"maxOutputTokens"}},
		{"control characters", Request{CustomerID: "c1", Model: "m", CorrelationID: "a\nb", TaskID: "\x7f"}, []string{"correlationId", "taskId"}},
		{"long task", Request{CustomerID: "c1", Model: "m", TaskID: long}, []string{"taskId"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Authorize(context.Background(), tc.req)
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Invalid {
				t.Fatalf("err = %v, want an Invalid problem", err)
			}
			var got []string
			for _, f := range pe.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
	if e.fault.calls.Load() != 0 {
		t.Error("an invalid request reached the store")
	}
	_, err := e.svc.Authorize(context.Background(), call("nobody"))
	if problem.KindOf(err) != problem.NotFound {
		t.Errorf("unknown customer: %v, want NotFound", err)
	}
	_, err = e.svc.Authorize(context.Background(), call("typo"))
	if fieldOf(err) != "limits.requestPerMinute" {
		t.Errorf("bad stored overrides: %v, want an Invalid problem naming limits.requestPerMinute", err)
	}
}

func TestLimitsShowsTheLiveState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 7, `{"monthlySpend": "20"}`)
	r := call("c1")
	r.CorrelationID, r.TaskID = "req_1", "run_1"
	res := e.authorize(t, r)
	st, err := e.svc.Limits(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Tier != "free" || st.Plan != "payg" || st.PlanVersionID != 7 || st.Period != testPeriod || st.Currency.Code != "USD" {
		t.Errorf("state = %+v", st)
	}
	l := st.Limits
	if l.RequestsPerMinute == nil || *l.RequestsPerMinute != 60 || l.MaxConcurrent == nil || *l.MaxConcurrent != 2 ||
		l.MonthlySpend == nil || !l.MonthlySpend.Equal(money.MustParse("20")) {
		t.Errorf("limits in force = %s", fmtLimits(l))
	}
	if q := st.Remaining[limit.DimConcurrency]; q.Limit != 2 || q.Remaining != 1 {
		t.Errorf("max_concurrent = %+v", q)
	}
	if q := st.Remaining[limit.DimMonthlySpend]; q.Limit != 20_000_000_000 || q.Remaining != 20_000_000_000-callNanos ||
		q.ResetAfter != testPeriod.End.Sub(t0) {
		t.Errorf("monthly_spend = %+v", q)
	}
	if len(st.Reservations) != 1 || st.Reservations[0].ID != res.ReservationID || st.Reservations[0].CorrelationID != "req_1" ||
		st.Reservations[0].TaskID != "run_1" || !st.Reservations[0].ExpiresAt.Equal(t0.Add(DefaultReservationTTL)) {
		t.Errorf("reservations = %+v", st.Reservations)
	}
	if _, err := e.svc.Limits(ctx, "nobody"); problem.KindOf(err) != problem.NotFound {
		t.Errorf("unknown customer: %v", err)
	}
	if _, err := e.svc.Limits(ctx, ""); fieldOf(err) != "customerId" {
		t.Errorf("empty customer: %v", err)
	}
}

func TestReservationsExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{ReservationTTL: time.Minute})
	e.plans.put(t, "c1", "payg", 1, "")
	e.authorize(t, call("c1"))
	e.authorize(t, call("c1"))
	if res := e.authorize(t, call("c1")); res.Decision != Deny {
		t.Fatalf("%+v, want DENY max_concurrent", res)
	}
	e.clock.Advance(time.Minute)
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("after the TTL: %+v, want ALLOW (both reservations expired)", res)
	}
	if n, _ := e.store.OpenReservations(ctx, "c1"); n != 1 {
		t.Errorf("open reservations = %d, want 1", n)
	}
}

// fieldOf returns the first field an Invalid problem names ("" otherwise).
func fieldOf(err error) string {
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.Invalid || len(pe.Fields) == 0 {
		return ""
	}
	return pe.Fields[0].Field
}

func TestReservationIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 3 * idsPerFill {
		id := newReservationID()
		if len(id) != 36 || !strings.HasPrefix(id, "rsv_") || strings.Trim(id[4:], "0123456789abcdef") != "" {
			t.Fatalf("id %q is not rsv_ and 32 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}

// TestAuthorizeIsExactUnderConcurrency: 1,000 concurrent requests at 100 a minute admit exactly
// 100, through the caches' first use included.
func TestAuthorizeIsExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, `{"requestsPerMinute": 100, "tokensPerMinute": 1000000000, "maxConcurrent": 100000}`)
	var wg sync.WaitGroup
	var allowed, denied atomic.Int64
	for range 1000 {
		wg.Go(func() {
			res, err := e.svc.Authorize(context.Background(), call("c1"))
			switch {
			case err != nil:
				t.Error(err)
			case res.Decision == Allow:
				allowed.Add(1)
			case res.Reason == "requests_per_minute":
				denied.Add(1)
			default:
				t.Errorf("unexpected %+v", res)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 || denied.Load() != 900 {
		t.Errorf("allowed %d, denied %d; want 100 and 900", allowed.Load(), denied.Load())
	}
	if n, _ := e.store.OpenReservations(context.Background(), "c1"); n != 100 {
		t.Errorf("open reservations = %d, want 100", n)
	}
}
