package main

// Fault-injection tests of the counter store (DESIGN.md invariant 4): a private Redis is
// stopped with SIGSTOP under load, the levy process is killed while events are committed to the
// ledger but not applied to the counters, Redis resumes and the restarted server catches up;
// then Redis is killed outright (losing every counter) and restarted empty, and the reconciler
// rebuilds the counters from the ledger. After each fault the counters equal the ledger exactly.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/loadgen"
	"github.com/levyhq/levy/internal/testenv"
)

// redisProc is a private redis-server this test may stop and kill without disturbing the
// shared one other tests use.
type redisProc struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *redisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Skip(t, "redis-server binary", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisProc{t: t, bin: bin, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			r.cmd.Process.Signal(syscall.SIGCONT)
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

func (r *redisProc) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisProc) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("private redis did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisProc) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

func (r *redisProc) kill() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// counterStatus reads the applier's position (it does not touch the counter store).
func counterStatus(t *testing.T, p *proc) (int, billing.CounterStatus) {
	t.Helper()
	var st billing.CounterStatus
	req, _ := http.NewRequest("GET", p.url+"/v1/admin/counters", nil)
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st
}

// counterCheck asks the server to compare its counters with the ledger.
func counterCheck(t *testing.T, p *proc) (billing.CounterCheck, billing.CounterStatus) {
	t.Helper()
	_, st := counterStatus(t, p)
	req, _ := http.NewRequest("POST", p.url+"/v1/admin/counters/check", nil)
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("counters check: %s %s", resp.Status, body)
	}
	var c billing.CounterCheck
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c, st
}

// waitConverged waits until the counters have caught up with the ledger and equal it exactly.
func waitConverged(t *testing.T, p *proc, what string) billing.CounterCheck {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, st := counterCheck(t, p)
		if !st.Behind && c.Drifted == 0 && c.Lagging == 0 && c.Customers > 0 {
			t.Logf("%s: counters equal the ledger for %d customers (cursor %d)", what, c.Customers, st.Cursor)
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the counters did not converge: status %+v, check %+v", what, st, c)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCountersConvergeAfterFaults: PostgreSQL + a private Redis under load.
func TestCountersConvergeAfterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection test: builds the binary and stops Redis; skipped with -short")
	}
	bin := buildLevy(t)
	dbURL := freshSchema(t, "levy_faults_")
	rd := startPrivateRedis(t)
	dir := t.TempDir()
	p := newProc(t, bin, dir, dbURL)
	p.env = append(p.env, "LEVY_REDIS_URL="+rd.url(), "LEVY_COUNTERS_APPLY_TIMEOUT=200ms",
		"LEVY_COUNTERS_RECONCILE_EVERY=1s", "LEVY_COUNTERS_REPAIR=true")
	p.mustStart()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	anchor := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	customers := loadgen.CustomerIDs("fault_", 12)
	if err := loadgen.Setup(ctx, p.url, p.key, loadgen.SetupOptions{Customers: customers, SubscriptionStart: anchor}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)

	// load runs the generator until stop is closed, retrying failed requests with the same ids.
	load := func(runID string, stop chan struct{}, acked *atomic.Int64) *loadgen.Result {
		gen := loadgen.Generator{Seed: seed, RunID: runID, Customers: customers, Start: anchor.Add(30 * time.Minute), Step: 100 * time.Microsecond}
		res, err := loadgen.Run(ctx, loadgen.Config{
			URL: p.url, Key: p.key, Generator: gen, Batch: 20, Connections: 4,
			Stop: stop, Duration: 90 * time.Second, Retries: -1, Timeout: 20 * time.Second,
			Progress: func(pr loadgen.Progress) { acked.Store(pr.Events) }, ProgressEvery: 5 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	waitFor := func(acked *atomic.Int64, n int64) {
		base := acked.Load()
		for acked.Load() < base+n && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Fault 1: Redis stops answering (SIGSTOP) mid-load. Ingestion keeps acknowledging; the
	// levy process is then killed while events sit in the ledger unapplied; Redis resumes; the
	// restarted server catches up from its durable cursor.
	var acked atomic.Int64
	stop := make(chan struct{})
	done := make(chan *loadgen.Result)
	go func() { done <- load("stop", stop, &acked) }()
	waitFor(&acked, 500)
	rd.signal(syscall.SIGSTOP)
	t.Log("redis stopped (SIGSTOP)")
	waitFor(&acked, 1000) // acknowledged while Redis is frozen: in the ledger only
	// The applier must have noticed: it is behind the ledger when the process dies.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, st := counterStatus(t, p); st.Behind {
			t.Logf("counters behind the ledger at cursor %d (%s)", st.Cursor, st.LastError)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("with Redis stopped, the applier never fell behind")
		}
	}
	p.kill()
	t.Log("levy killed with events committed but not applied")
	rd.signal(syscall.SIGCONT)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(&acked, 500)
	close(stop)
	res := <-done
	if res.LostBatches != 0 || res.Interrupted {
		t.Fatalf("load: %+v", res)
	}
	waitConverged(t, p, "after SIGSTOP and a kill")

	// Fault 2: Redis is killed under load and comes back empty: every counter is lost. The
	// reconciler (repair on) rebuilds each customer from the ledger.
	acked.Store(0)
	stop = make(chan struct{})
	go func() { done <- load("kill", stop, &acked) }()
	waitFor(&acked, 500)
	rd.kill()
	t.Log("redis killed")
	waitFor(&acked, 500)
	rd.start()
	t.Log("redis restarted empty")
	waitFor(&acked, 500)
	close(stop)
	res = <-done
	if res.LostBatches != 0 || res.Interrupted {
		t.Fatalf("load: %+v", res)
	}
	waitConverged(t, p, "after Redis was killed and restarted empty")
	// The periodic reconciler ran (it is what repaired the lost counters) and exports its figures.
	mresp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !bytes.Contains(metrics, []byte("levy_counter_drift_customers ")) || bytes.Contains(metrics, []byte("levy_counter_checks_total 0\n")) ||
		!bytes.Contains(metrics, []byte("levy_counter_checks_total ")) {
		t.Errorf("the reconciler's metrics are missing or it never ran:\n%s", grepLines(metrics, "levy_counter_"))
	}
	p.stop()
	b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
	if !bytes.Contains(b, []byte("counters")) {
		t.Logf("server log has no counters warning; log tail:\n%s", tail(b, 2000))
	}
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
