package forwardauth_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/counter/memory"
	"github.com/levyhq/levy/internal/forwardauth"
	"github.com/levyhq/levy/internal/forwardauth/authtest"
)

// tickClock moves 10 µs at every reading, so reservations (1 s TTL) expire as they would on a
// busy server and the memory store's expiry queue stays bounded.
type tickClock struct {
	t0 time.Time
	n  atomic.Int64
}

func (c *tickClock) Now() time.Time {
	return c.t0.Add(time.Duration(c.n.Add(1)) * 10 * time.Microsecond)
}

// discardWriter is a reusable ResponseWriter, so the benchmark measures the handler.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkForwardAuth is one check through the handler (ServeHTTP, no network) on the real
// stack: the key resolver (cached after the first call), the authorize service on the memory
// store and billing's in-memory plans. "authorize" is the decision alone: the handler's
// overhead is the difference.
func BenchmarkForwardAuth(b *testing.B) {
	l := authtest.Start(b, "")
	openKey := l.Customer(b, "cust_open", "open")
	limitedKey := l.Customer(b, "cust_limited", "limited")
	clk := &tickClock{t0: l.Clock.Now()}
	svc := authorize.New(memory.New(memory.Options{Now: clk.Now}), l.Billing,
		authorize.Options{Timeout: -1, Now: clk.Now, ReservationTTL: time.Second})
	h, err := forwardauth.New(forwardauth.Config{Customers: l.Customers, Authorizer: svc})
	if err != nil {
		b.Fatal(err)
	}
	request := func(key string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://levy/v1/forward-auth?mode=nginx", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set(forwardauth.HeaderModel, "gpt-5-mini")
		r.Header.Set(forwardauth.HeaderInputTokens, "1500")
		r.Header.Set(forwardauth.HeaderMaxTokens, "1024")
		r.Header.Set("X-Request-Id", "req_bench")
		return r
	}
	serve := func(b *testing.B, r *http.Request, want int) {
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, r)
			if w.status != want {
				b.Fatalf("status %d, want %d", w.status, want)
			}
		}
	}
	b.Run("allow", func(b *testing.B) { serve(b, request(openKey), http.StatusOK) })
	b.Run("deny", func(b *testing.B) {
		r := request(limitedKey)
		w := &discardWriter{h: http.Header{}}
		for range 3 { // use up the minute's 3 requests
			h.ServeHTTP(w, r)
		}
		serve(b, r, http.StatusForbidden) // nginx mode
	})
	b.Run("allow-parallel", func(b *testing.B) {
		r := request(openKey)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				h.ServeHTTP(w, r)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
					return
				}
			}
		})
	})
	b.Run("authorize", func(b *testing.B) {
		ctx := context.Background()
		req := authorize.Request{CustomerID: "cust_open", Model: "gpt-5-mini", EstimatedInputTokens: 1500, MaxOutputTokens: 1024, CorrelationID: "req_bench"}
		b.ReportAllocs()
		for b.Loop() {
			if res, err := svc.Authorize(ctx, req); err != nil || !res.Allowed() {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
}
