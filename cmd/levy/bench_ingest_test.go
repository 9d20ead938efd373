package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/loadgen"
)

// BenchmarkIngestHTTP runs the server in-process (serve, as `levy serve` does) with the load
// generator beside it, so `go test -cpuprofile` profiles the whole ingest path: HTTP, decoding,
// the group-commit writer, rating and the store. b.N is the number of compound events (five
// measurements each) sent; events/s and the per-request latency quantiles are reported.
//
//	go test -run '^$' -bench 'IngestHTTP/sqlite/batch=100/conns=8' -benchtime 200000x -cpuprofile cpu.out ./cmd/levy
//
// The profile includes the generator's own work (package loadgen and the HTTP client), which
// the server would not pay on a machine of its own.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{100, 10} {
			for _, conns := range []int{8, 32} {
				b.Run(fmt.Sprintf("%s/batch=%d/conns=%d", backend, batch, conns), func(b *testing.B) {
					var mutate func(*config.Config)
					if backend == "postgres" {
						dbURL := freshSchema(b, "levy_bench_")
						mutate = func(c *config.Config) { c.DatabaseURL = dbURL }
					}
					benchIngest(b, batch, conns, mutate)
				})
			}
		}
	}
}

var benchRun atomic.Int64

func benchIngest(b *testing.B, batch, conns int, mutate func(*config.Config)) {
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.LogLevel = "warn"
	cfg.AdminKey = "bench-admin-key-0123456789"
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard, io.Discard, listening) }()
	var url string
	select {
	case addr := <-listening:
		url = "http://" + addr
	case err := <-done:
		b.Fatalf("serve: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
	}()
	customers := loadgen.CustomerIDs("bench_", 100)
	if err := loadgen.Setup(context.Background(), url, cfg.AdminKey, loadgen.SetupOptions{Customers: customers}); err != nil {
		b.Fatal(err)
	}
	run := benchRun.Add(1)
	b.ReportAllocs()
	b.ResetTimer()
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		URL: url, Key: cfg.AdminKey,
		Generator: loadgen.Generator{Seed: uint64(run), RunID: fmt.Sprintf("b%d", run), Customers: customers},
		Batch:     batch, Connections: conns, Events: int64(b.N), Timeout: time.Minute,
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Events != int64(b.N) {
		b.Fatalf("%d of %d events acknowledged: %v %v", res.Events, b.N, res.Errors, res.ErrorSamples)
	}
	b.ReportMetric(res.EventsPerSecond, "events/s")
	b.ReportMetric(float64(res.Latency.P50), "p50-µs")
	b.ReportMetric(float64(res.Latency.P99), "p99-µs")
}
