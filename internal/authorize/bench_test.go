package authorize

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/counter/memory"
	"github.com/levyhq/levy/internal/problem"
)

// staticPlans is a read-only PlanSource, so the benchmark measures the service, not a lock.
type staticPlans map[string]billing.CustomerPlan

func (p staticPlans) CustomerPlan(_ context.Context, id string, _ time.Time) (billing.CustomerPlan, error) {
	cp, ok := p[id]
	if !ok {
		return cp, problem.New(problem.NotFound, "no customer %q", id)
	}
	return cp, nil
}

// benchService is the example catalog's payg plan on the memory store: every limit but the
// wallet active, for customers cust-0 … cust-(n-1); "denied" allows one request a minute, so
// every call after its first is denied.
func benchService(b *testing.B, n int, timeout time.Duration) (*Service, staticPlans) {
	cat := exampleCatalog(b)
	plans := staticPlans{}
	for i := range n {
		id := fmt.Sprintf("cust-%d", i)
		plans[id] = billing.CustomerPlan{CustomerID: id, Catalog: cat, Plan: cat.Plan("payg"), PlanVersionID: 1, Period: testPeriod,
			Overrides: []byte(`{"requestsPerMinute": 1000000000, "tokensPerMinute": 1000000000000, "monthlySpend": "1000000", "maxConcurrent": 1000000000}`)}
	}
	plans["denied"] = billing.CustomerPlan{CustomerID: "denied", Catalog: cat, Plan: cat.Plan("payg"), PlanVersionID: 1, Period: testPeriod,
		Overrides: []byte(`{"requestsPerMinute": 1}`)}
	var clk tickClock
	svc := New(memory.New(memory.Options{Now: clk.Now}), plans, Options{Timeout: timeout, Now: clk.Now, ReservationTTL: time.Second})
	return svc, plans
}

// tickClock moves 10 µs at every reading, without a lock: time passes as it does on a busy
// server, so the memory store's expiry queue holds a bounded number of entries (it keeps a
// released reservation's entry until its expiry instant).
type tickClock struct{ n atomic.Int64 }

func (c *tickClock) Now() time.Time { return t0.Add(time.Duration(c.n.Add(1)) * 10 * time.Microsecond) }

// BenchmarkAuthorize is one in-process decision on the memory store (Options.Timeout < 0, as
// cmd/levy wires the embedded store): an ALLOW, ALLOW then Release, a DENY, the same under parallel load
// over 64 customers, and the cost of the deadline a remote store needs.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	req := Request{CustomerID: "cust-0", Model: "claude-sonnet-4-6", EstimatedInputTokens: 1500, MaxOutputTokens: 1024, CorrelationID: "req_1"}
	allowRelease := func(b *testing.B, svc *Service) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := svc.Authorize(ctx, req)
			if err != nil || res.Decision != Allow {
				b.Fatalf("%+v, %v", res, err)
			}
			if _, err := svc.Release(ctx, req.CustomerID, res.ReservationID); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("allow", func(b *testing.B) {
		// Reservations end by expiring (the clock passes their 1 s TTL), as unreleased ones do.
		svc, _ := benchService(b, 1, -1)
		b.ReportAllocs()
		for b.Loop() {
			res, err := svc.Authorize(ctx, req)
			if err != nil || res.Decision != Allow {
				b.Fatalf("%+v, %v", res, err)
			}
		}
	})
	b.Run("allow+release", func(b *testing.B) {
		svc, _ := benchService(b, 1, -1)
		allowRelease(b, svc)
	})
	b.Run("allow+release/deadline", func(b *testing.B) {
		// A deadline long enough that a loaded machine never fails open: the context's cost.
		svc, _ := benchService(b, 1, time.Second)
		allowRelease(b, svc)
	})
	b.Run("deny", func(b *testing.B) {
		svc, _ := benchService(b, 1, -1)
		r := req
		r.CustomerID = "denied"
		if res, _ := svc.Authorize(ctx, r); res.Decision != Allow {
			b.Fatal("the first call should pass")
		}
		b.ReportAllocs()
		for b.Loop() {
			res, err := svc.Authorize(ctx, r)
			if err != nil || res.Decision != Deny {
				b.Fatalf("%+v, %v", res, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		svc, plans := benchService(b, 64, -1)
		ids := make([]string, 0, len(plans))
		for id := range plans {
			if id != "denied" {
				ids = append(ids, id)
			}
		}
		b.ReportAllocs()
		var next int64
		var mu = make(chan struct{}, 1)
		b.RunParallel(func(pb *testing.PB) {
			mu <- struct{}{}
			r := req
			r.CustomerID = ids[next%int64(len(ids))]
			next++
			<-mu
			for pb.Next() {
				res, err := svc.Authorize(ctx, r)
				if err != nil || res.Decision != Allow {
					b.Errorf("%+v, %v", res, err)
					return
				}
				if _, err := svc.Release(ctx, r.CustomerID, res.ReservationID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkEstimate is the cost bound alone: the integer path (payg) and the exact decimal
// path a priced derived meter takes (agent's credits).
func BenchmarkEstimate(b *testing.B) {
	cat := exampleCatalog(b)
	for _, plan := range []string{"payg", "pro", "agent"} {
		e := newEstimator(cat, cat.Plan(plan), "claude-sonnet-4-6", DefaultEventType)
		b.Run(plan, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.nanos(1500, 1024); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
