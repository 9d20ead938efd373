package authorize

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/guard"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
)

func d(s string) money.Decimal { return money.MustParse(s) }

func TestTripDeniesAndResetReopens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cat := loadCatalog(t, ladderCatalog)
	e := newEnv(t, cat, Options{})
	e.plans.put(t, "c1", "payg", 1, `{"maxConcurrent": 100}`)
	task := func(id string) Request { r := call("c1"); r.TaskID = id; return r }

	// A looping agent: its task passes both task rules; the trips merge to the later cool-down.
	trips := guard.Evaluate(cat.MarginGuard, guard.Input{CustomerID: "c1", TaskID: "run_42", EventCost: d("0.5"),
		EventPrice: d("0.1"), TaskCost: d("6"), TaskPrice: d("1"), At: t0})
	if len(trips) != 2 || trips[0].BreakerID() != "c1/task/run_42" {
		t.Fatalf("trips = %+v", trips)
	}
	for _, tr := range trips { // as the billing writer opens them
		if err := e.store.TripBreaker(ctx, tr.CustomerID, tr.Scope, tr.Key, tr.Until); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(15 * time.Minute) // past the 10 min rule, inside the 20 min one
	res := e.authorize(t, task("run_42"))
	if res.Decision != Deny || res.Reason != "task_margin_guard" || res.RetryAfterSeconds != 300 {
		t.Fatalf("%+v, want DENY task_margin_guard for the 5 minutes left", res)
	}
	if res := e.authorize(t, task("run_43")); res.Decision != Allow {
		t.Fatalf("another task: %+v, want ALLOW", res)
	}
	if ok, err := e.svc.ResetBreaker(ctx, "c1/task/run_42"); err != nil || !ok {
		t.Fatalf("ResetBreaker = %v, %v", ok, err)
	}
	if ok, err := e.svc.ResetBreaker(ctx, "c1/task/run_42"); err != nil || ok {
		t.Fatalf("second ResetBreaker = %v, %v; want false (not open)", ok, err)
	}
	if res := e.authorize(t, task("run_42")); res.Decision != Allow {
		t.Fatalf("after reset: %+v, want ALLOW", res)
	}

	// The customer's breaker denies every call, tasks or not, until reset.
	if err := e.store.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := e.authorize(t, call("c1")); res.Decision != Deny || res.Reason != "margin_guard" || res.RetryAfterSeconds != 3600 {
		t.Fatalf("%+v, want DENY margin_guard for an hour", res)
	}
	if ok, err := e.svc.ResetBreaker(ctx, "c1"); err != nil || !ok {
		t.Fatalf("ResetBreaker(c1) = %v, %v", ok, err)
	}
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("after reset: %+v", res)
	}
}

func TestParseBreakerID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id, customer, scope, key string
	}{
		{"cust_abc", "cust_abc", counter.BreakerCustomer, ""},
		{"cust_abc/task/run_42", "cust_abc", counter.BreakerTask, "run_42"},
		{"c/task/a/task/b", "c", counter.BreakerTask, "a/task/b"}, // the first separator; task IDs may hold anything printable
	} {
		c, s, k, err := ParseBreakerID(tc.id)
		if err != nil || c != tc.customer || s != tc.scope || k != tc.key {
			t.Errorf("ParseBreakerID(%q) = %q, %q, %q, %v", tc.id, c, s, k, err)
		}
		if s == counter.BreakerTask && BreakerID(c, k) != tc.id {
			t.Errorf("BreakerID does not round-trip %q", tc.id)
		}
	}
	for _, id := range []string{"", "cust/task/", "/task/run", "cust/tasks/run", "cust abc", "c/task/a\nb", strings.Repeat("c", 257)} {
		if _, _, _, err := ParseBreakerID(id); fieldOf(err) != "breakerId" {
			t.Errorf("ParseBreakerID(%q) = %v, want an Invalid problem naming breakerId", id, err)
		}
	}
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	if _, err := e.svc.ResetBreaker(context.Background(), "a b"); problem.KindOf(err) != problem.Invalid {
		t.Errorf("ResetBreaker of a bad ID: %v", err)
	}
}

func FuzzParseBreakerID(f *testing.F) {
	for _, s := range []string{"c", "c/task/t", "c/task/", "/task/t", "c/task/t/task/u", "é/task/x", "c/task/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		c, scope, key, err := ParseBreakerID(id)
		if err != nil {
			if fieldOf(err) != "breakerId" {
				t.Fatalf("error %v does not name breakerId", err)
			}
			return
		}
		if !validCustomerID(c) {
			t.Fatalf("customer %q accepted", c)
		}
		switch scope {
		case counter.BreakerCustomer:
			if key != "" || c != id {
				t.Fatalf("customer breaker %q → %q, %q", id, c, key)
			}
		case counter.BreakerTask:
			if key == "" || BreakerID(c, key) != id {
				t.Fatalf("task breaker %q → %q, %q", id, c, key)
			}
		default:
			t.Fatalf("scope %q", scope)
		}
	})
}
