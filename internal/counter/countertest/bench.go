package countertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/levyhq/levy/internal/counter"
)

// BenchmarkApply measures Apply of a compound event (spend, one event, five meters) to an
// existing customer and period: "serial" from one goroutine on one customer, "parallel" from
// GOMAXPROCS goroutines (b.RunParallel), each on its own customer so every Apply is applied.
func BenchmarkApply(b *testing.B, open func(b *testing.B) counter.Store) {
	usage := map[string]int64{"input_tokens": 1500, "output_tokens": 800, "cache_read_tokens": 500,
		"cache_write_tokens": 100, "reasoning_tokens": 50}
	b.Run("serial", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		p := counter.ApplyParams{CustomerID: "bench-serial", Period: p1, SpendNanos: 4_500_000, Usage: usage, Events: 1}
		b.ReportAllocs()
		for b.Loop() {
			p.Seq++
			if _, err := s.Apply(ctx, p); err != nil {
				b.Fatal(err)
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
			p := counter.ApplyParams{CustomerID: fmt.Sprintf("bench-par-%d", next.Add(1)), Period: p1,
				SpendNanos: 4_500_000, Usage: usage, Events: 1}
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
