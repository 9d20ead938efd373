package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchIngestCommand runs `levy bench ingest --setup` against the embedded server: the
// fixtures are created, every event is acknowledged and logged, and --json is machine-readable.
func TestBenchIngestCommand(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	ackLog := filepath.Join(t.TempDir(), "acked.txt")
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"bench", "ingest", "--url", s.url, "--key", s.key, "--setup",
		"--customers", "7", "--events", "450", "--batch", "40", "--connections", "3", "--warmup", "0s",
		"--json", "--ack-log", ackLog, "--run-id", "cmdtest"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var res struct {
		RunID          string           `json:"runId"`
		Events         int64            `json:"events"`
		Accepted       int64            `json:"accepted"`
		Requests       int64            `json:"requests"`
		EventsPerSec   float64          `json:"eventsPerSecond"`
		Errors         map[string]int64 `json:"errors"`
		Measurements   int              `json:"measurementsPerEvent"`
		ConnectionsOut int64            `json:"connectionsOpened"`
		Latency        struct {
			Count int64 `json:"count"`
			P50   int64 `json:"p50Micros"`
			P99   int64 `json:"p99Micros"`
			Max   int64 `json:"maxMicros"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if res.Events != 450 || res.Accepted != 450 || res.Requests != 12 || len(res.Errors) != 0 || res.Measurements != 5 {
		t.Errorf("result %+v", res)
	}
	if res.Latency.Count != 12 || res.Latency.P50 <= 0 || res.Latency.P99 > res.Latency.Max || res.ConnectionsOut > 3 {
		t.Errorf("latency %+v, %d connections", res.Latency, res.ConnectionsOut)
	}
	data, err := os.ReadFile(ackLog)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(string(data))
	if len(ids) != 450 || !strings.HasPrefix(ids[0], "evt_cmdtest_") {
		t.Errorf("ack log: %d ids, first %q", len(ids), ids[0])
	}
	var spend struct{ Events int64 }
	if code := s.do("GET", "/v1/customers/bench_0007/spend", "", "", &spend); code != 200 || spend.Events == 0 {
		t.Errorf("customer bench_0007: %d %+v", code, spend)
	}

	// The readable report, and a run that cannot succeed (no such customers): errors by status.
	out.Reset()
	errOut.Reset()
	code = Main(context.Background(), []string{"bench", "ingest", "--url", s.url, "--key", s.key, "--customer-prefix", "nobody_",
		"--events", "20", "--batch", "10", "--connections", "1"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "400: 2") || !strings.Contains(out.String(), "unknown customer") {
		t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}

	if code := Main(context.Background(), []string{"bench"}, &out, &errOut); code != 2 {
		t.Errorf("levy bench without a target: exit %d", code)
	}
}
