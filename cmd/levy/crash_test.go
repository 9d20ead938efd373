package main

// Crash and concurrency tests of the ingest path (DESIGN.md invariants 2 and 3): the real
// binary is killed with SIGKILL again and again under load from internal/loadgen, and 16
// clients send the same events at once; afterwards the ledger must hold every acknowledged event
// exactly once and the server's figures must equal the simulator's pricing of the ledger.

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/loadgen"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/simulate"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/postgres"
	"github.com/levyhq/levy/internal/store/sqlite"
	"github.com/levyhq/levy/internal/testenv"
	"github.com/levyhq/levy/internal/usage"
)

// TestCrashUnderLoad kills `levy serve` with SIGKILL at random moments while the load
// generator posts batches (retrying failed requests with the same event ids), restarts it on the
// same data each time, and then checks that (a) every event the client saw acknowledged is in
// the ledger, (b) none is there twice and the server's running spend agrees with the ledger, and
// (c) every customer's invoice preview equals the simulator's pricing of exactly the events the
// ledger holds. It runs on the embedded SQLite store and on PostgreSQL.
func TestCrashUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds the binary and kills it under load; skipped with -short")
	}
	bin := buildLevy(t)
	t.Run("sqlite", func(t *testing.T) {
		crashTest(t, bin, "")
	})
	t.Run("postgres", func(t *testing.T) {
		crashTest(t, bin, freshSchema(t, "levy_crash_"))
	})
}

// crashTest runs the crash scenario against a server on the embedded store (dbURL empty) or on
// the PostgreSQL database at dbURL.
func crashTest(t *testing.T, bin, dbURL string) {
	const kills = 5
	dir := t.TempDir()
	p := newProc(t, bin, dir, dbURL)
	p.mustStart()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	anchor := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	customers := loadgen.CustomerIDs("crash_", 20)
	if err := loadgen.Setup(ctx, p.url, p.key, loadgen.SetupOptions{Customers: customers, SubscriptionStart: anchor}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	gen := loadgen.Generator{Seed: seed, RunID: "crash", Customers: customers,
		Start: anchor.Add(30 * time.Minute), Step: 100 * time.Microsecond}

	// The killer: wait until the server acknowledges load, let it run for a random moment,
	// SIGKILL it, restart it on the same data; then let the load run on a healthy server for a
	// moment and stop it.
	var acked atomic.Int64
	stop := make(chan struct{})
	killerDone := make(chan struct{})
	killLog := []string{}
	var killErr error
	go func() {
		defer close(killerDone)
		defer close(stop)
		r := rand.New(rand.NewPCG(seed, 1))
		for i := 0; i < kills; i++ {
			base := acked.Load()
			for acked.Load() == base && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(time.Duration(200+r.IntN(1800)) * time.Millisecond)
			before := acked.Load()
			p.kill()
			killLog = append(killLog, fmt.Sprintf("kill %d after %d acknowledged events", i+1, before))
			if ctx.Err() != nil {
				return
			}
			if killErr = p.start(); killErr != nil {
				cancel()
				return
			}
		}
		base := acked.Load()
		for acked.Load() < base+500 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}()

	ackPath := filepath.Join(dir, "acked.log")
	ackFile, err := os.Create(ackPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.Run(ctx, loadgen.Config{
		URL: p.url, Key: p.key, Generator: gen,
		Batch: 50, Connections: 8,
		Stop: stop, Duration: 90 * time.Second, // Stop ends it; Duration is a backstop
		Retries: -1, Timeout: 20 * time.Second,
		AckLog:   ackFile,
		Progress: func(pr loadgen.Progress) { acked.Store(pr.Events) }, ProgressEvery: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ackFile.Close()
	<-killerDone
	for _, l := range killLog {
		t.Log(l)
	}
	if killErr != nil {
		t.Fatalf("restart after a kill: %v", killErr)
	}
	t.Logf("load: %d events acknowledged in %d requests; %d failed attempts %v, %d retries", res.Events, res.Requests, res.FailedRequests, res.Errors, res.Retries)
	if p.kills < kills {
		t.Fatalf("only %d kills happened", p.kills)
	}
	if res.Interrupted || res.LostBatches != 0 {
		t.Fatalf("the run did not get every batch acknowledged: %+v", res)
	}
	for k := range res.Errors {
		if k[0] >= '0' && k[0] <= '9' && k != "503" {
			t.Errorf("the server answered %s %d times (%s); only transport errors and 503 are expected around a crash", k, res.Errors[k], res.ErrorSamples[k])
		}
	}
	if res.FailedRequests == 0 {
		t.Error("no request failed: the kills did not hit the load")
	}

	// The server that survived the last kill: its figures, from state rebuilt partly by replay
	// and partly by live rating.
	api := &apiClient{t: t, base: p.url, key: p.key}
	live := api.figures(customers)
	p.stop()

	// What the ledger holds.
	ledger := readLedger(t, dbURL, filepath.Join(dir, "levy.db"), customers, anchor)
	ackedIDs := readLines(t, ackPath)
	if int64(len(ackedIDs)) != res.Events {
		t.Errorf("the ack log has %d ids; the run acknowledged %d events", len(ackedIDs), res.Events)
	}
	// (a) every acknowledged event is in the ledger.
	lost := 0
	for _, id := range ackedIDs {
		if _, ok := ledger.byID[id]; !ok {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged event %s is not in the ledger", id)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged events are missing from the ledger", lost, len(ackedIDs))
	}
	// (b) one row per id, each holding exactly the event that was sent.
	ledger.checkAgainstGenerator(t, &gen)
	// A batch stored by a request whose answer the kill swallowed comes back as duplicates on
	// its retry.
	t.Logf("ledger: %d events for %d acknowledged; %d were stored by a request whose answer was lost (their retry was a duplicate)",
		len(ledger.byID), len(ackedIDs), res.Duplicates)
	if res.Accepted+res.Duplicates != res.Events {
		t.Errorf("the answers count %d accepted and %d duplicates for %d acknowledged events", res.Accepted, res.Duplicates, res.Events)
	}

	// (c) the figures equal a recomputation from the ledger, on the server that survived the
	// crashes and on a fresh start that replays everything.
	want := simulateFigures(t, ledger.jsonl.Bytes(), customers, anchor)
	compareFigures(t, "after the crashes", live, want, ledger.amounts)
	p.mustStart()
	compareFigures(t, "after a clean restart", api.figures(customers), want, ledger.amounts)
	p.stop()
}

// TestConcurrentClientsExactlyOnce sends one set of events from 16 clients at once, each with
// its own batch size and order, abandoning some requests mid-flight and repeating some
// acknowledged ones: every event must count exactly once, so spend and every invoice preview
// equal the simulator's pricing of the distinct events.
func TestConcurrentClientsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("concurrency test: skipped with -short")
	}
	t.Run("sqlite", func(t *testing.T) {
		concurrencyTest(t, nil)
	})
	t.Run("postgres", func(t *testing.T) {
		dbURL := freshSchema(t, "levy_conc_")
		concurrencyTest(t, func(c *config.Config) { c.DatabaseURL = dbURL })
	})
}

func concurrencyTest(t *testing.T, mutate func(*config.Config)) {
	const (
		clients = 16
		events  = 3000
	)
	s := startServer(t, t.TempDir(), mutate)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	anchor := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	customers := loadgen.CustomerIDs("conc_", 10)
	if err := loadgen.Setup(ctx, s.url, s.key, loadgen.SetupOptions{Customers: customers, SubscriptionStart: anchor}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	gen := loadgen.Generator{Seed: seed, RunID: "conc", Customers: customers, Start: anchor.Add(time.Minute), Step: time.Millisecond}

	var wg sync.WaitGroup
	results := make([]*loadgen.Result, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := loadgen.Run(ctx, loadgen.Config{
				URL: s.url, Key: s.key, Generator: gen,
				Batch: 5 + 7*i, Connections: 1, Events: events,
				Shuffle: true, ShuffleSeed: seed + uint64(i),
				Retries: -1, CancelPercent: 15, CancelAfter: 3 * time.Millisecond, RepeatPercent: 15,
			})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	var accepted, dups, retries, repeats int64
	for i, res := range results {
		if res == nil {
			t.FailNow()
		}
		if res.Events != events || res.LostEvents != 0 || res.Interrupted {
			t.Errorf("client %d: %d events acknowledged, %d lost", i, res.Events, res.LostEvents)
		}
		for k, n := range res.Errors {
			if k != "canceled" && k != "timeout" {
				t.Errorf("client %d: %d × %s (%s)", i, n, k, res.ErrorSamples[k])
			}
		}
		accepted += res.Accepted
		dups += res.Duplicates
		retries += res.Retries
		repeats += res.Repeats
	}
	t.Logf("%d clients × %d events: %d accepted and %d duplicates reported; %d retries after abandoned requests, %d repeated requests",
		clients, events, accepted, dups, retries, repeats)
	// Abandoned requests may still have been stored, so "accepted" answers may be fewer than the
	// events, never more.
	if accepted > events {
		t.Errorf("the server answered accepted for %d events; there are only %d distinct events", accepted, events)
	}

	// The distinct events, as the simulator sees them.
	var jsonl bytes.Buffer
	for k := int64(0); k < events; k++ {
		jsonl.Write(gen.AppendEvent(nil, k, time.Time{}))
		jsonl.WriteByte('\n')
	}
	want := simulateFigures(t, jsonl.Bytes(), customers, anchor)
	api := &apiClient{t: t, base: s.url, key: s.key}
	got := api.figures(customers)
	var total int64
	for _, c := range customers {
		total += got[c].spend.Events
	}
	if total != events {
		t.Errorf("the server counts %d events; %d distinct events were sent", total, events)
	}
	compareFigures(t, "after concurrent clients", got, want, nil)
}

// --- the server as a subprocess ---

// buildLevy builds the levy binary into a temporary directory.
func buildLevy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "levy")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is `levy serve` running as a child process on a fixed port and data directory.
type proc struct {
	t      *testing.T
	bin    string
	env    []string
	url    string
	key    string
	log    *os.File
	cmd    *exec.Cmd
	exited chan struct{}
	kills  int
}

func newProc(t *testing.T, bin, dir, dbURL string) *proc {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var kb [16]byte
	crand.Read(kb[:])
	p := &proc{t: t, bin: bin, url: "http://" + addr, key: "crash_" + hex.EncodeToString(kb[:])}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEVY_") {
			p.env = append(p.env, kv)
		}
	}
	p.env = append(p.env, "LEVY_ADDR="+addr, "LEVY_DATA="+dir, "LEVY_ADMIN_KEY="+p.key,
		"LEVY_LOG_LEVEL=warn", "LEVY_SHUTDOWN_TIMEOUT=10s")
	if dbURL != "" {
		p.env = append(p.env, "LEVY_DATABASE_URL="+dbURL)
	}
	p.log, err = os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.kill()
		}
		p.log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(p.log.Name()); err == nil && len(b) > 0 {
				t.Logf("server log:\n%s", tail(b, 4000))
			}
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// mustStart starts the server and waits until it is ready, or fails the test.
func (p *proc) mustStart() {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatal(err)
	}
}

// start starts the server and waits until it is ready. It may run on any goroutine.
func (p *proc) start() error {
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start levy serve: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			p.cmd = nil
			b, _ := os.ReadFile(p.log.Name())
			return fmt.Errorf("levy serve exited at start (%v):\n%s", cmd.ProcessState, tail(b, 2000))
		default:
		}
		if resp, err := c.Get(p.url + "/readyz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("levy serve did not become ready in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
	p.kills++
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			p.t.Errorf("levy serve exited with %v after SIGTERM", p.cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		p.t.Error("levy serve did not exit within 30s of SIGTERM")
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
	p.cmd = nil
}

// freshSchema returns the PostgreSQL test URL with a search_path naming a new schema (created
// by the server at its first start), dropped when the test ends. Without PostgreSQL it skips or
// fails, as internal/testenv decides.
func freshSchema(t testing.TB, prefix string) string {
	base := testenv.DatabaseURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("LEVY_TEST_DATABASE_URL: %v", err)
	}
	var b [6]byte
	crand.Read(b[:])
	schema := prefix + hex.EncodeToString(b[:])
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return u.String()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// --- reading the ledger ---

type ledgerView struct {
	byID    map[string]*store.EventRecord
	rows    int
	jsonl   bytes.Buffer             // the events in the event shape, one a line
	amounts map[string]money.Decimal // per customer: the sum of its events' rated amounts
}

// readLedger opens the store the server used (after the server stopped) and reads every event
// of the customers in the first period.
func readLedger(t *testing.T, dbURL, sqlitePath string, customers []string, anchor time.Time) *ledgerView {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if dbURL != "" {
		st, err = postgres.Open(ctx, dbURL)
	} else {
		st, err = sqlite.Open(ctx, sqlitePath, sqlite.Options{})
	}
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer st.Close()
	l := &ledgerView{byID: map[string]*store.EventRecord{}, amounts: map[string]money.Decimal{}}
	for _, c := range customers {
		sum := money.Zero
		err := st.ListEvents(ctx, c, anchor.Add(-24*time.Hour), time.Now().Add(24*time.Hour), func(rec *store.EventRecord) error {
			r := *rec
			l.rows++
			if _, dup := l.byID[r.ID]; dup {
				t.Errorf("event %s is in the ledger twice", r.ID)
			}
			l.byID[r.ID] = &r
			sum = sum.Add(r.Amount)
			var ev usage.Event
			ev.ID, ev.EventType, ev.CustomerID, ev.CorrelationID, ev.Timestamp = r.ID, r.EventType, r.CustomerID, r.CorrelationID, r.Timestamp
			if err := usage.DecodeParts(r.Properties, r.Measurements, &ev); err != nil {
				return fmt.Errorf("event %s: %w", r.ID, err)
			}
			l.jsonl.Write(ev.AppendJSON(nil))
			l.jsonl.WriteByte('\n')
			return nil
		})
		if err != nil {
			t.Fatalf("read the ledger of %s: %v", c, err)
		}
		l.amounts[c] = sum
	}
	return l
}

// checkAgainstGenerator checks that every ledger event is one the generator made, stored with
// exactly the content it was sent with.
func (l *ledgerView) checkAgainstGenerator(t *testing.T, g *loadgen.Generator) {
	t.Helper()
	var dec usage.Decoder
	bad := 0
	for id, rec := range l.byID {
		k, ok := g.Index(id)
		if !ok {
			t.Errorf("the ledger holds %s, which the generator never made", id)
			bad++
			continue
		}
		var ev usage.Event
		if err := dec.DecodeBytes(g.AppendEvent(nil, k, time.Time{}), time.Now(), &ev); err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(ev.Canonical()); !bytes.Equal(h[:], rec.ContentHash) || rec.Key != ev.Key() {
			t.Errorf("event %s is stored with other content than was sent", id)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many bad ledger rows")
		}
	}
	if l.rows != len(l.byID) {
		t.Errorf("%d ledger rows for %d distinct ids", l.rows, len(l.byID))
	}
}

// --- the server's figures and the simulator's ---

type invoiceDoc struct {
	CustomerID   string    `json:"customerId"`
	Plan         string    `json:"plan"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
	Currency     string    `json:"currency"`
	Lines        []lineDoc `json:"lines"`
	PreciseTotal string    `json:"preciseTotal"`
	Total        string    `json:"total"`
	Cost         string    `json:"cost"`
	Margin       string    `json:"margin"`
	Events       int64     `json:"events"`
}

type lineDoc struct {
	Charge        string `json:"charge"`
	Group         string `json:"group,omitempty"`
	Type          string `json:"type"`
	Quantity      string `json:"quantity"`
	PreciseAmount string `json:"preciseAmount"`
	Amount        string `json:"amount"`
	Cost          string `json:"cost,omitempty"`
}

type spendDoc struct {
	PeriodStart  time.Time `json:"periodStart"`
	Spend        string    `json:"spend"`
	InvoiceTotal string    `json:"invoiceTotal"`
	Events       int64     `json:"events"`
}

type figures struct {
	invoice invoiceDoc
	spend   spendDoc
}

type apiClient struct {
	t    *testing.T
	base string
	key  string
	c    http.Client
}

func (a *apiClient) get(path string, out any) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
}

// figures reads every customer's invoice preview and spend.
func (a *apiClient) figures(customers []string) map[string]figures {
	out := map[string]figures{}
	for _, c := range customers {
		var f figures
		a.get("/v1/customers/"+c+"/invoice-preview", &f.invoice)
		a.get("/v1/customers/"+c+"/spend", &f.spend)
		out[c] = f
	}
	return out
}

// simulateFigures prices events (JSON lines) with the simulator on the bench plan, periods
// anchored at the subscriptions' start, and returns each customer's invoice of the first
// period (with a zero-event invoice for customers without events).
func simulateFigures(t *testing.T, jsonl []byte, customers []string, anchor time.Time) map[string]invoiceDoc {
	t.Helper()
	cat, err := catalog.Load([]byte(loadgen.Catalog))
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulate.Run(cat, bytes.NewReader(jsonl), "ledger", simulate.JSONL, simulate.Options{Plans: []string{loadgen.Plan}, Anchor: anchor})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if res.Duplicates != 0 {
		t.Errorf("the simulator found %d duplicate events in the ledger", res.Duplicates)
	}
	out := map[string]invoiceDoc{}
	for _, iv := range res.JSON().Invoices {
		if !iv.PeriodStart.Equal(anchor) {
			t.Errorf("the simulator priced %s in a period starting %s; all events lie in the one starting %s", iv.CustomerID, iv.PeriodStart, anchor)
			continue
		}
		b, _ := json.Marshal(iv)
		var d invoiceDoc
		json.Unmarshal(b, &d)
		out[iv.CustomerID] = d
	}
	for _, c := range customers {
		if _, ok := out[c]; !ok {
			out[c] = invoiceDoc{} // no events: compared by event count only
		}
	}
	return out
}

// compareFigures checks the server's preview of every customer against the simulator's invoice,
// on precise totals and line amounts, and its spend against the simulator's usage lines (and
// against the ledger's rated amounts when given).
func compareFigures(t *testing.T, when string, got map[string]figures, want map[string]invoiceDoc, ledgerAmounts map[string]money.Decimal) {
	t.Helper()
	bad := 0
	for c, w := range want {
		g := got[c]
		// Round-trip the preview through JSON so both sides have the same shape.
		b, _ := json.Marshal(g.invoice)
		var gi invoiceDoc
		json.Unmarshal(b, &gi)
		usage := money.Zero
		for _, l := range w.Lines {
			if l.Type == "usage" {
				usage = usage.Add(money.MustParse(l.PreciseAmount))
			}
		}
		switch {
		case w.Events == 0 && gi.Events == 0:
			continue
		case !reflect.DeepEqual(gi, w):
			bad++
			gj, _ := json.MarshalIndent(gi, "", " ")
			wj, _ := json.MarshalIndent(w, "", " ")
			t.Errorf("%s: %s: the invoice preview differs from the simulator's pricing of the ledger:\nserver:    %s\nsimulator: %s", when, c, gj, wj)
		case !money.MustParse(g.spend.Spend).Equal(usage) || g.spend.Events != w.Events || g.spend.InvoiceTotal != w.Total:
			bad++
			t.Errorf("%s: %s: spend %s (%d events, invoice total %s); the simulator's usage lines add up to %s (%d events, total %s)",
				when, c, g.spend.Spend, g.spend.Events, g.spend.InvoiceTotal, usage, w.Events, w.Total)
		case ledgerAmounts != nil && !ledgerAmounts[c].Equal(usage):
			bad++
			t.Errorf("%s: %s: the ledger's rated amounts add up to %s; the usage lines to %s", when, c, ledgerAmounts[c], usage)
		}
		if bad > 5 {
			t.Fatal("too many differences")
		}
	}
}
