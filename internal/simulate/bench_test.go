package simulate

import (
	"bytes"
	"runtime"
	"sync"
	"testing"

	"github.com/levyhq/levy/internal/usagegen"
)

var (
	benchOnce  sync.Once
	benchUsage []byte
)

// benchInput is 200,000 synthetic events (usagegen, seed 7, 1,000 customers), made once.
func benchInput(b *testing.B) []byte {
	benchOnce.Do(func() {
		var buf bytes.Buffer
		if err := usagegen.Write(&buf, usagegen.Config{Events: 200_000, Customers: 1000, Seed: 7, BatchPercent: 10, AgentPercent: 10}); err != nil {
			panic(err)
		}
		benchUsage = buf.Bytes()
	})
	return benchUsage
}

// BenchmarkSimulate prices 200,000 JSON-line events of the example catalog end to end (decode,
// dedupe, rate, price, round) on one plan and reports events/s and events/s per core used.
func BenchmarkSimulate(b *testing.B) {
	cat := loadCatalog(b, "../../examples/catalog.yaml")
	in := benchInput(b)
	for _, plan := range []string{"payg", "pro", "agent"} {
		b.Run(plan, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				res, err := Run(cat, bytes.NewReader(in), "bench", JSONL, Options{Plans: []string{plan}})
				if err != nil {
					b.Fatal(err)
				}
				if res.Events != 200_000 {
					b.Fatalf("events = %d", res.Events)
				}
			}
			perSec := float64(200_000*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(perSec, "events/s")
			b.ReportMetric(perSec/float64(runtime.GOMAXPROCS(0)), "events/s/core")
		})
	}
}
