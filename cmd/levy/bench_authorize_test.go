package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchAuthorizeCommand runs `levy bench authorize --setup` against the embedded server:
// every request is decided and allowed, --release leaves no reservation open, --json is
// machine-readable, and a run against unknown customers reports its errors by status.
func TestBenchAuthorizeCommand(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"bench", "authorize", "--url", s.url, "--key", s.key, "--setup",
		"--customers", "5", "--requests", "200", "--connections", "4", "--warmup", "0s", "--release", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var res struct {
		Decisions, Allowed, Denied, FailOpen, Released, MeasuredDecisions int64
		DecisionsPerSecond                                                float64
		Errors                                                            map[string]int64
		Latency                                                           struct {
			Count int64 `json:"count"`
			P50   int64 `json:"p50Micros"`
			P99   int64 `json:"p99Micros"`
			Max   int64 `json:"maxMicros"`
		}
		ConnectionsOpened int64
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if res.Decisions != 200 || res.Allowed != 200 || res.Released != 200 || res.FailOpen != 0 || len(res.Errors) != 0 || res.MeasuredDecisions != 200 {
		t.Errorf("result %+v", res)
	}
	if res.Latency.Count != 200 || res.Latency.P50 <= 0 || res.Latency.P99 > res.Latency.Max || res.ConnectionsOpened > 4 || res.DecisionsPerSecond <= 0 {
		t.Errorf("latency %+v, %d connections, %.0f/s", res.Latency, res.ConnectionsOpened, res.DecisionsPerSecond)
	}
	for _, id := range []string{"bencha_0001", "bencha_0005"} {
		var l struct{ OpenReservations int }
		if code := s.do("GET", "/v1/customers/"+id+"/limits", "", "", &l); code != 200 || l.OpenReservations != 0 {
			t.Errorf("%s after a releasing run: %d, %d open reservations", id, code, l.OpenReservations)
		}
	}

	// Without --release the reservations stay open; the readable report.
	out.Reset()
	code = Main(context.Background(), []string{"bench", "authorize", "--url", s.url, "--key", s.key,
		"--customers", "5", "--requests", "50", "--connections", "2", "--warmup", "0s"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "decisions            50 (50 ALLOW, 0 DENY, 0 fail-open)") || !strings.Contains(out.String(), "decisions/s") {
		t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
	var l struct{ OpenReservations int }
	if s.do("GET", "/v1/customers/bencha_0003/limits", "", "", &l); l.OpenReservations != 10 {
		t.Errorf("bencha_0003 holds %d reservations after 10 unreleased ALLOWs", l.OpenReservations)
	}

	// Unknown customers: no decision, errors by status, exit 1.
	out.Reset()
	code = Main(context.Background(), []string{"bench", "authorize", "--url", s.url, "--key", s.key, "--customer-prefix", "nobody_",
		"--customers", "2", "--requests", "6", "--warmup", "0s"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "404: 6") || !strings.Contains(out.String(), "no customer") {
		t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
	if code := Main(context.Background(), []string{"bench", "authorize", "--connections", "0"}, &out, &errOut); code != 2 {
		t.Errorf("--connections 0: exit %d", code)
	}
}
