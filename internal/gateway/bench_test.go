package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkOverhead measures the latency the gateway adds over calling the upstream directly,
// with the in-process counter store and with the real Redis (LEVY_TEST_REDIS_URL), over
// loopback HTTP with keep-alive connections: each iteration makes one direct call and one
// call through the gateway (key lookup, body parse, authorize, forward, relay, metering queued
// to the real billing service on SQLite), alternating so that both see the same machine noise.
//
//   - json: a non-streaming chat completion, timed until the whole body is read;
//   - sse-ttfb: a streaming chat completion (the gateway asks upstream for usage and drops the
//     usage chunk), timed until the first byte of the body.
//
// It reports the p50 and p99 of both paths and their difference (added-p50-µs, added-p99-µs).
// Run: go test -run '^$' -bench Overhead -benchtime 5000x ./internal/gateway/
func BenchmarkOverhead(b *testing.B) {
	for _, counters := range []string{"memory", "redis"} {
		b.Run(counters, func(b *testing.B) { benchmarkOverhead(b, counters) })
	}
}

func benchmarkOverhead(b *testing.B, counters string) {
	for _, bc := range []struct {
		name string
		body string
		ttfb bool
	}{
		{"json", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"When are invoices generated?"}]}`, false},
		{"sse-ttfb", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnvOn(b, counters, "bench", Config{})
			e.up.chunk = 1 << 20 // the upstream answers in one write
			e.up.countOnly = true
			e.up.uniqueIDs = true // one event per call, as with a real provider
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
			direct := e.up.srv.URL + "/v1/chat/completions"
			viaGateway := e.srv.URL + "/gateway/openai/v1/chat/completions"
			call := func(url, auth string) time.Duration {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(bc.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", auth)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var d time.Duration
				if bc.ttfb {
					var one [1]byte
					if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
						b.Fatal(err)
					}
					d = time.Since(start)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				if !bc.ttfb {
					d = time.Since(start)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d from %s", resp.StatusCode, url)
				}
				return d
			}
			// Warm both paths: connections, pools, the customer's plan and key caches.
			for range 50 {
				call(direct, "Bearer "+upstreamOpenAIKey)
				call(viaGateway, "Bearer "+e.key)
			}
			d := make([]time.Duration, 0, b.N)
			g := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d = append(d, call(direct, "Bearer "+upstreamOpenAIKey))
				g = append(g, call(viaGateway, "Bearer "+e.key))
			}
			b.StopTimer()
			e.flush()
			if lost := value(e.gw.m.events.WithLabelValues(eventFailed)) + value(e.gw.m.events.WithLabelValues(eventDropped)); lost != 0 {
				b.Fatalf("%v usage events lost", lost)
			}
			dp50, dp99 := percentiles(d)
			gp50, gp99 := percentiles(g)
			b.ReportMetric(micro(dp50), "direct-p50-µs")
			b.ReportMetric(micro(dp99), "direct-p99-µs")
			b.ReportMetric(micro(gp50), "gateway-p50-µs")
			b.ReportMetric(micro(gp99), "gateway-p99-µs")
			b.ReportMetric(micro(gp50-dp50), "added-p50-µs")
			b.ReportMetric(micro(gp99-dp99), "added-p99-µs")
		})
	}
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)*50/100], s[len(s)*99/100]
}

func micro(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
