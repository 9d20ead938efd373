package countertest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
)

// BenchmarkApply measures Apply of a compound event (spend, one event, five meters) to an
// existing customer and period: "serial" from one goroutine on one customer, "parallel" from
// GOMAXPROCS goroutines (b.RunParallel), each on its own customer so every Apply is applied.
// Each runs twice: "plain", the event alone, and "wallet", the same event also burning two
// existing grants and setting the tier, so the two lines of one run give the wallet's cost.
func BenchmarkApply(b *testing.B, open func(b *testing.B) counter.Store) {
	usage := map[string]int64{"input_tokens": 1500, "output_tokens": 800, "cache_read_tokens": 500,
		"cache_write_tokens": 100, "reasoning_tokens": 50}
	burns := map[string]int64{"grant-paid": 3_000_000, "grant-promo": 1_500_000}
	variants := []struct {
		name   string
		wallet map[string]int64
		tier   string
	}{
		{"plain", nil, ""},
		{"wallet", burns, "gold"},
	}
	// prepare grants the burned grants to a customer, as billing would before burning them.
	prepare := func(b *testing.B, s counter.Store, customerID string, wallet map[string]int64) {
		for id := range wallet {
			if _, err := s.Grant(context.Background(), counter.GrantParams{CustomerID: customerID, GrantID: id,
				Nanos: 1 << 62}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, v := range variants {
		b.Run("serial/"+v.name, func(b *testing.B) {
			s := open(b)
			ctx := context.Background()
			p := counter.ApplyParams{CustomerID: "bench-serial", Period: p1, SpendNanos: 4_500_000, Usage: usage,
				Events: 1, Wallet: v.wallet, Tier: v.tier}
			prepare(b, s, p.CustomerID, v.wallet)
			b.ReportAllocs()
			for b.Loop() {
				p.Seq++
				if _, err := s.Apply(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, v := range variants {
		b.Run("parallel/"+v.name, func(b *testing.B) {
			s := open(b)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				p := counter.ApplyParams{CustomerID: fmt.Sprintf("bench-par-%d", next.Add(1)), Period: p1,
					SpendNanos: 4_500_000, Usage: usage, Events: 1, Wallet: v.wallet, Tier: v.tier}
				for id := range v.wallet {
					if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: p.CustomerID, GrantID: id, Nanos: 1 << 62}); err != nil {
						b.Error(err)
						return
					}
				}
				for pb.Next() {
					p.Seq++
					if _, err := s.Apply(ctx, p); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAuthorize measures one Authorize decision on a customer with every dimension
// limited (rates, caps, concurrency, a wallet-limited row of a two-tier ladder, a token meter
// in the period), as the gateway would call it. Each call is admitted and holds a reservation
// for 50 ms of an injected clock that advances 1 ms per call, so about 50 stay open and each
// call also releases about one expired reservation: the steady state of a busy customer.
// Reservation IDs come from a ring prepared beforehand, so the benchmark itself allocates
// nothing per call. "serial" runs one goroutine on one customer; "parallel" GOMAXPROCS
// goroutines (b.RunParallel), each on its own customer; "parallel-one-customer" all of them on
// one customer (the contended case).
func BenchmarkAuthorize(b *testing.B, open func(b *testing.B) counter.Store) {
	row := limit.Limits{Window: 60_000, RequestsPerWindow: 1_000_000, TokensPerWindow: 1_000_000_000,
		MonthlyTokens: 1 << 50, MonthlySpend: 1 << 52, MaxConcurrent: 1000, WalletLimited: true}
	ladder := counter.TierLimits{"": row, "gold": row}
	base := time.Now().UTC().Truncate(time.Millisecond)
	prepare := func(b *testing.B, s counter.Store, customerID string) {
		ctx := context.Background()
		if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: customerID, GrantID: "paid", Nanos: 1 << 52}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: customerID, Seq: 1, Period: p1, SpendNanos: 4_500_000,
			Events: 1, Usage: map[string]int64{"input_tokens": 1500, "output_tokens": 800}, Tier: "gold"}); err != nil {
			b.Fatal(err)
		}
	}
	ring := func(prefix string) []string {
		ids := make([]string, 1024)
		for i := range ids {
			ids[i] = prefix + strconv.Itoa(i)
		}
		return ids
	}
	params := func(customerID string) counter.AuthorizeParams {
		return counter.AuthorizeParams{CustomerID: customerID, Period: p1,
			TokenMeters: []string{"input_tokens", "output_tokens"}, Limits: ladder,
			Estimate: limit.Usage{Tokens: 2500, Nanos: 3_000_000}, TTL: 50 * time.Millisecond}
	}
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		prepare(b, s, "bench-serial")
		ctx := context.Background()
		p := params("bench-serial")
		ids := ring("r")
		var i int64
		b.ReportAllocs()
		for b.Loop() {
			i++
			p.Now = base.Add(time.Duration(i) * time.Millisecond)
			p.ReservationID = ids[i%int64(len(ids))]
			r, err := s.Authorize(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			if !r.Allowed {
				b.Fatalf("call %d denied: %s", i, r.Reason)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := open(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			p := params(fmt.Sprintf("bench-par-%d", next.Add(1)))
			prepare(b, s, p.CustomerID)
			ids := ring("r")
			var i int64
			for pb.Next() {
				i++
				p.Now = base.Add(time.Duration(i) * time.Millisecond)
				p.ReservationID = ids[i%int64(len(ids))]
				r, err := s.Authorize(ctx, p)
				if err != nil || !r.Allowed {
					b.Errorf("call %d: %+v, %v", i, r.Reason, err)
					return
				}
			}
		})
	})
	b.Run("parallel-one-customer", func(b *testing.B) {
		s := open(b)
		prepare(b, s, "bench-shared")
		var next, clock atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			p := params("bench-shared")
			ids := ring(fmt.Sprintf("g%d-", next.Add(1)))
			var i int64
			for pb.Next() {
				i++
				p.Now = base.Add(time.Duration(clock.Add(1)) * time.Millisecond)
				p.ReservationID = ids[i%int64(len(ids))]
				if _, err := s.Authorize(ctx, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
