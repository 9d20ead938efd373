package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/usage"
)

func TestCatalogCompiles(t *testing.T) {
	cat, err := catalog.Load([]byte(Catalog))
	if err != nil {
		t.Fatal(err)
	}
	if cat.Plan(Plan) == nil {
		t.Fatalf("the catalog has no plan %q", Plan)
	}
	for _, k := range MetricKeys {
		if len(cat.MetersFedBy(k)) == 0 {
			t.Errorf("no meter reads %s", k)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(500) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram must answer 0")
	}
	// Small values are exact.
	for v := int64(1); v <= 1000; v++ {
		h.Record(v)
	}
	if got := h.Quantile(500); got != 500 {
		t.Errorf("p50 of 1..1000 = %d, want 500", got)
	}
	if got := h.Quantile(990); got != 990 {
		t.Errorf("p99 of 1..1000 = %d, want 990", got)
	}
	if h.Min() != 1 || h.Max() != 1000 || h.Mean() != 500 || h.Count() != 1000 {
		t.Errorf("min %d max %d mean %d count %d", h.Min(), h.Max(), h.Mean(), h.Count())
	}

	// Large values: every quantile within 0.2% of the sorted sample's, merged from parts.
	r := rand.New(rand.NewPCG(1, 2))
	var parts [4]Histogram
	var all []int64
	for i := 0; i < 100000; i++ {
		v := r.Int64N(1 << uint(1+r.IntN(34)))
		all = append(all, v)
		parts[i%4].Record(v)
	}
	var m Histogram
	for i := range parts {
		m.Merge(&parts[i])
	}
	slices.Sort(all)
	for _, pm := range []int{1, 100, 500, 900, 990, 999, 1000} {
		rank := max((int64(len(all))*int64(pm)+999)/1000, 1)
		want := all[rank-1]
		got := m.Quantile(pm)
		if got < want || got-want > want/500+1 {
			t.Errorf("quantile %d‰ = %d, sorted sample says %d", pm, got, want)
		}
	}
	if m.Max() != all[len(all)-1] || m.Min() != all[0] || m.Count() != int64(len(all)) {
		t.Errorf("merged min/max/count wrong")
	}
	// Bucket edges round-trip.
	for _, v := range []int64{1023, 1024, 1025, 2047, 2048, 1 << 40, 1<<40 - 1} {
		if hi := bucketHigh(bucketOf(v)); hi < v || bucketOf(hi) != bucketOf(v) || bucketOf(hi+1) == bucketOf(v) {
			t.Errorf("bucket of %d: high %d", v, hi)
		}
	}
}

func testGen() Generator {
	return Generator{Seed: 7, RunID: "t1", Customers: CustomerIDs("c_", 5),
		Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Step: time.Millisecond}
}

func TestGeneratorEventsAreValidAndDeterministic(t *testing.T) {
	g := testGen()
	body := g.AppendBatch(nil, 0, 500, time.Time{})
	var dec usage.Decoder
	evs, err := dec.DecodeBatch(body, usage.Native, time.Now(), 1000)
	if err != nil {
		t.Fatalf("the server's decoder refuses a generated batch: %v", err)
	}
	if len(evs) != 500 {
		t.Fatalf("%d events decoded", len(evs))
	}
	for k, ev := range evs {
		if len(ev.Measurements) != len(MetricKeys) {
			t.Fatalf("event %d has %d measurements", k, len(ev.Measurements))
		}
		for i, m := range ev.Measurements {
			if m.MetricKey != MetricKeys[i] || m.Value.Sign() <= 0 {
				t.Errorf("event %d measurement %d: %s = %s", k, i, m.MetricKey, m.Value)
			}
		}
		if idx, ok := g.Index(ev.ID); !ok || idx != int64(k) {
			t.Errorf("Index(%q) = %d, %v", ev.ID, idx, ok)
		}
		if !ev.Timestamp.Equal(g.Timestamp(int64(k))) {
			t.Errorf("event %d at %s, want %s", k, ev.Timestamp, g.Timestamp(int64(k)))
		}
		in, _ := ev.Value("output_tokens")
		re, _ := ev.Value("reasoning_tokens")
		if re.Cmp(in) > 0 {
			t.Errorf("event %d: more reasoning than output tokens", k)
		}
	}
	if again := g.AppendBatch(nil, 0, 500, time.Time{}); !bytes.Equal(body, again) {
		t.Error("the same generator made different bytes")
	}
	// A batch is the concatenation of its events, whatever the batch boundaries.
	one := g.AppendEvent(nil, 123, time.Time{})
	if !bytes.Contains(g.AppendBatch(nil, 120, 130, time.Time{}), one) {
		t.Error("event 123 differs between batches")
	}
	if _, ok := g.Index("evt_other_0000000001"); ok {
		t.Error("Index accepted another run's id")
	}
	// Wall-clock mode: the timestamp given is used, at millisecond precision.
	g.Start = time.Time{}
	ts := time.Date(2026, 11, 3, 4, 5, 6, 789654321, time.UTC)
	if e := g.Event(3, ts); !e.Timestamp.Equal(ts.Truncate(time.Millisecond)) {
		t.Errorf("wall-clock timestamp %s", e.Timestamp)
	}
	if err := (&Generator{RunID: "a b", Customers: []string{"c"}}).validate(); err == nil {
		t.Error("a RunID with a space was accepted")
	}
}

// fakeServer imitates POST /v1/events: it stores events by id (refusing a changed body for an
// id) and fails requests on demand.
type fakeServer struct {
	mu       sync.Mutex
	stored   map[string][32]byte // id → hash of the event's JSON
	requests int
	fail     func(n int) string // "" ok, "503", "503-after-store", "drop", "400"
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/events" || r.Header.Get("Authorization") != "Bearer k" {
		http.Error(w, "bad request line", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var evs []json.RawMessage
	if err := json.Unmarshal(body, &evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests++
	mode := ""
	if f.fail != nil {
		mode = f.fail(f.requests)
	}
	store := func() (acc, dup int, conflict bool) {
		for _, e := range evs {
			var head struct{ ID string }
			json.Unmarshal(e, &head)
			h := sha256.Sum256(e)
			if prev, ok := f.stored[head.ID]; ok {
				if prev != h {
					conflict = true
				}
				dup++
				continue
			}
			f.stored[head.ID] = h
			acc++
		}
		return
	}
	var acc, dup int
	var conflict bool
	switch mode {
	case "", "503-after-store":
		acc, dup, conflict = store()
	}
	f.mu.Unlock()
	switch {
	case conflict:
		http.Error(w, `{"status":409}`, http.StatusConflict)
	case mode == "503" || mode == "503-after-store":
		http.Error(w, `{"status":503}`, http.StatusServiceUnavailable)
	case mode == "400":
		http.Error(w, `{"status":400,"detail":"nope"}`, http.StatusBadRequest)
	case mode == "drop":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\n  \"accepted\": %d,\n  \"duplicates\": %d,\n  \"events\": []\n}\n", acc, dup)
	}
}

func readLines(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestRunRetriesWithSameIDs fails a third of the requests in every way a crashing server
// can (an error after or before storing, a dropped connection) and checks that the run retries
// them with the same bytes, acknowledges every event exactly once in the ack log, and counts
// the failures by cause.
func TestRunRetriesWithSameIDs(t *testing.T) {
	f := &fakeServer{stored: map[string][32]byte{}, fail: func(n int) string {
		return []string{"", "503", "", "drop", "", "503-after-store"}[n%6]
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var ack bytes.Buffer
	res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Generator: testGen(), Batch: 7,
		Connections: 4, Events: 1000, Retries: -1, AckLog: &ack, RepeatPercent: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1000 || res.LostEvents != 0 || res.LostBatches != 0 {
		t.Errorf("events %d lost %d", res.Events, res.LostEvents)
	}
	ids := readLines(t, ack.Bytes())
	if len(ids) != 1000 {
		t.Fatalf("ack log has %d ids, want 1000", len(ids))
	}
	seen := map[string]bool{}
	g := testGen()
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s acknowledged twice in the log", id)
		}
		seen[id] = true
		if _, ok := g.Index(id); !ok {
			t.Errorf("unexpected id %s", id)
		}
	}
	if len(f.stored) != 1000 {
		t.Errorf("server stored %d events", len(f.stored))
	}
	if res.Errors["503"] == 0 || res.Errors["connection closed"]+res.Errors["connection reset"] == 0 {
		t.Errorf("errors by cause: %v", res.Errors)
	}
	if res.Errors["409"] != 0 {
		t.Errorf("a retry changed an event's content: %v", res.Errors)
	}
	// Events stored by a request answered 503 come back as duplicates on the retry.
	if res.Accepted > 1000 || res.Accepted+res.Duplicates != res.Events+res.RepeatEvents {
		t.Errorf("accepted %d + duplicates %d ≠ events %d + repeated %d", res.Accepted, res.Duplicates, res.Events, res.RepeatEvents)
	}
	if res.Repeats == 0 || res.Duplicates == 0 {
		t.Errorf("repeats %d duplicates %d", res.Repeats, res.Duplicates)
	}
	if res.Latency.Count != res.Requests || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("latency %+v for %d requests", res.Latency, res.Requests)
	}
}

func TestRunFinalStatusIsNotRetried(t *testing.T) {
	f := &fakeServer{stored: map[string][32]byte{}, fail: func(n int) string {
		if n == 2 {
			return "400"
		}
		return ""
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var ack bytes.Buffer
	res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Generator: testGen(), Batch: 10,
		Connections: 1, Events: 50, Retries: 5, AckLog: &ack})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["400"] != 1 || res.LostBatches != 1 || res.LostEvents != 10 || res.Events != 40 || res.Retries != 0 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(res.ErrorSamples["400"], "nope") {
		t.Errorf("error sample %q", res.ErrorSamples["400"])
	}
	if n := len(readLines(t, ack.Bytes())); n != 40 {
		t.Errorf("ack log has %d ids, want 40", n)
	}
}

func TestRunBounds(t *testing.T) {
	f := &fakeServer{stored: map[string][32]byte{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	g := testGen()
	g.Start = time.Time{} // wall clock
	start := time.Now()
	res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Generator: g, Batch: 10, Connections: 2,
		Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a 300ms run took %s", el)
	}
	if res.Events == 0 || res.MeasuredEvents > res.Events || res.EventsPerSecond <= 0 || res.Dials > 2 {
		t.Errorf("result %+v", res)
	}

	stop := make(chan struct{})
	time.AfterFunc(100*time.Millisecond, func() { close(stop) })
	if _, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Generator: g, Stop: stop}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err = Run(ctx, Config{URL: srv.URL, Key: "k", Generator: g, Duration: time.Hour})
	if err != nil || !res.Interrupted {
		t.Errorf("canceled run: %v, %+v", err, res)
	}

	for _, bad := range []Config{
		{URL: srv.URL, Generator: g},                                       // unbounded
		{URL: "127.0.0.1:1", Generator: g, Events: 1},                      // no scheme
		{URL: srv.URL, Generator: g, Duration: time.Second, Shuffle: true}, // shuffle without count
		{URL: srv.URL, Generator: Generator{RunID: "x"}, Events: 1},        // no customers
		{URL: srv.URL, Generator: g, Events: 1, CancelPercent: 5},          // cancel without retries
	} {
		if _, err := Run(context.Background(), bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

// TestRunShuffledClientsAgree runs clients with different batch sizes and orders over the same
// events with cancellations and repeats: the server must end up with each event once.
func TestRunShuffledClientsAgree(t *testing.T) {
	f := &fakeServer{stored: map[string][32]byte{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Generator: testGen(), Batch: 3 + 4*i,
				Connections: 2, Events: 300, Shuffle: true, ShuffleSeed: uint64(i), Retries: -1,
				CancelPercent: 20, RepeatPercent: 10})
			if err != nil {
				t.Error(err)
				return
			}
			if res.Events != 300 || res.Errors["409"] != 0 {
				t.Errorf("client %d: %+v", i, res)
			}
		}()
	}
	wg.Wait()
	if len(f.stored) != 300 {
		t.Errorf("stored %d events, want 300", len(f.stored))
	}
}

func TestJSONInt(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want int64
		ok   bool
	}{
		{`{"accepted":12,"duplicates":3}`, 12, true},
		{"{\n  \"accepted\": 100,\n", 100, true},
		{`{"duplicates":3}`, 0, false},
		{`{"accepted":"x"}`, 0, false},
	} {
		got, ok := jsonInt([]byte(c.doc), `"accepted"`)
		if got != c.want || ok != c.ok {
			t.Errorf("jsonInt(%q) = %d, %v", c.doc, got, ok)
		}
	}
}
