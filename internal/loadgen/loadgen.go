// Package loadgen is Levy's ingestion load generator, the engine behind `levy bench ingest` and
// the crash and concurrency tests: it posts synthetic compound events (five measurements each)
// to a running server's POST /v1/events in batches, over a fixed number of keep-alive
// connections, and measures what the server acknowledges.
//
// Behaviour at the edges:
//   - A run is bounded: it ends when Duration has elapsed, when Events events have been sent,
//     or when Stop is closed, whichever comes first (at least one bound is required). No new
//     batch starts after that; batches in flight finish their attempts. A canceled ctx aborts
//     everything at once.
//   - A batch is events [lo, hi) of the Generator, built once: every retry of it sends the same
//     bytes, so the same ids and content, as a real client must. Transport errors (refused or
//     reset connections, timeouts), 429 and 5xx are retried with capped exponential backoff,
//     up to Retries times (forever, until ctx is done, when negative); other statuses are final.
//   - A batch is acknowledged only by a 2xx answer. Only then are its ids counted and written to
//     AckLog, one per line; an event whose requests all failed may or may not have been stored.
//   - Latency is measured per acknowledged request, from the first byte sent to the last byte of
//     the answer read, in integer microseconds (Histogram). Failed attempts are counted by cause
//     (the HTTP status, or the kind of transport error) and not timed.
//   - Traffic goes only to Config.URL. Nothing here uses floating point except the per-second
//     rates of the Result.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes a run.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:7070.
	URL string
	// Key is the API key sent as a bearer token (scope ingest or admin).
	Key string
	// Generator makes the events.
	Generator Generator
	// Batch is the number of events per request; default 100.
	Batch int
	// Connections is the number of concurrent requests, each on its own keep-alive
	// connection; default 8.
	Connections int
	// Duration ends the run after this long (0: no time bound).
	Duration time.Duration
	// Events ends the run after events [First, First+Events) were sent (0: no count bound).
	Events int64
	// First is the index of the first event.
	First int64
	// Stop, when closed, ends the run like Duration elapsing.
	Stop <-chan struct{}
	// Warmup excludes requests started within this long of the start from the rates and
	// latencies (they are still sent, acknowledged and logged).
	Warmup time.Duration
	// Retries is how many times a failed request is retried; negative retries until ctx is
	// done. Default 0: no retry.
	Retries int
	// Timeout bounds one request; default 30s.
	Timeout time.Duration
	// AckLog, when set, receives the id of every acknowledged event, one per line. Writes are
	// serialised and buffered; Run flushes before returning.
	AckLog io.Writer
	// Shuffle sends the batches of a count-bounded run in an order drawn from ShuffleSeed
	// instead of in index order.
	Shuffle     bool
	ShuffleSeed uint64
	// RepeatPercent is the share of acknowledged requests sent once more (as a client that
	// lost the answer would); the repeat must be acknowledged as duplicates.
	RepeatPercent int
	// CancelPercent is the share of first attempts abandoned by the client after a random
	// delay of up to CancelAfter (default 2ms) and then retried, as a client timing out would.
	// Needs Retries ≠ 0.
	CancelPercent int
	CancelAfter   time.Duration
	// Client, when set, sends the requests (its transport decides the connections).
	Client *http.Client
	// Progress, when set, is called about every ProgressEvery (default 1s) with the figures so far.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a running run.
type Progress struct {
	Elapsed        time.Duration
	Events         int64 // acknowledged events
	Requests       int64 // acknowledged requests
	FailedRequests int64
}

// Result is a run's outcome. Rates and latencies cover the requests started after the warmup;
// counts cover the whole run.
type Result struct {
	Batch        int   `json:"batch"`
	Connections  int   `json:"connections"`
	Measurements int   `json:"measurementsPerEvent"`
	Elapsed      int64 `json:"elapsedMicros"` // measured window

	Events     int64 `json:"events"`     // acknowledged events (2xx), warmup included
	Accepted   int64 `json:"accepted"`   // of which the server reported accepted
	Duplicates int64 `json:"duplicates"` // and duplicates
	Requests   int64 `json:"requests"`   // acknowledged requests, warmup included, repeats not
	// Repeats counts acknowledged repeats of acknowledged requests (RepeatPercent) and
	// RepeatEvents their events; Accepted + Duplicates = Events + RepeatEvents.
	Repeats      int64 `json:"repeats,omitempty"`
	RepeatEvents int64 `json:"repeatEvents,omitempty"`

	MeasuredEvents   int64   `json:"measuredEvents"`
	MeasuredRequests int64   `json:"measuredRequests"`
	EventsPerSecond  float64 `json:"eventsPerSecond"`
	BatchesPerSecond float64 `json:"batchesPerSecond"`
	Latency          Latency `json:"latency"`

	FailedRequests int64             `json:"failedRequests"` // attempts that got no 2xx
	Retries        int64             `json:"retries"`
	Errors         map[string]int64  `json:"errors"`                 // failed attempts by status or transport error
	ErrorSamples   map[string]string `json:"errorSamples,omitempty"` // the first answer of each status
	LostBatches    int64             `json:"unacknowledgedBatches"`  // batches given up on
	LostEvents     int64             `json:"unacknowledgedEvents"`
	Dials          int64             `json:"connectionsOpened"`
	Interrupted    bool              `json:"interrupted,omitempty"`
}

// Latency summarises acknowledgement latency per request, in microseconds.
type Latency struct {
	Count int64 `json:"count"`
	Min   int64 `json:"minMicros"`
	Mean  int64 `json:"meanMicros"`
	P50   int64 `json:"p50Micros"`
	P90   int64 `json:"p90Micros"`
	P99   int64 `json:"p99Micros"`
	P999  int64 `json:"p999Micros"`
	Max   int64 `json:"maxMicros"`
}

func (h *Histogram) summary() Latency {
	return Latency{Count: h.Count(), Min: h.Min(), Mean: h.Mean(), P50: h.Quantile(500), P90: h.Quantile(900),
		P99: h.Quantile(990), P999: h.Quantile(999), Max: h.Max()}
}

// worker is one connection's loop and its private figures.
type worker struct {
	r   *runner
	rnd rng
	buf []byte
	ids []byte
	rsp bytes.Buffer

	hist                                      Histogram
	events, accepted, dups, requests, repeats int64
	repeatEvents                              int64
	measEvents, measRequests                  int64
	failed, retries, lostBatches, lostEvents  int64
	errors                                    map[string]int64
	samples                                   map[string]string
}

type runner struct {
	cfg      Config
	client   *http.Client
	endpoint string
	auth     string
	start    time.Time
	measFrom time.Time
	deadline time.Time
	nBatches int64 // 0: unbounded
	perm     []int64
	next     atomic.Int64
	ended    atomic.Bool
	dials    atomic.Int64

	ackMu sync.Mutex
	ack   *bufio.Writer

	liveEvents, liveRequests, liveFailed atomic.Int64
}

// Run runs the load and returns what happened. It returns an error only for an invalid
// Config or a failure to write AckLog; failed requests are in the Result. When ctx is canceled
// the Result so far is returned with Interrupted set.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Batch == 0 {
		cfg.Batch = 100
	}
	if cfg.Connections == 0 {
		cfg.Connections = 8
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.CancelAfter == 0 {
		cfg.CancelAfter = 2 * time.Millisecond
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = time.Second
	}
	switch {
	case cfg.Batch < 1:
		return nil, errors.New("loadgen: Batch must be at least 1")
	case cfg.Connections < 1:
		return nil, errors.New("loadgen: Connections must be at least 1")
	case cfg.Duration < 0 || cfg.Events < 0 || cfg.First < 0 || cfg.Warmup < 0:
		return nil, errors.New("loadgen: Duration, Events, First and Warmup must not be negative")
	case cfg.Duration == 0 && cfg.Events == 0 && cfg.Stop == nil:
		return nil, errors.New("loadgen: a run needs a bound: Duration, Events or Stop")
	case cfg.Shuffle && cfg.Events == 0:
		return nil, errors.New("loadgen: Shuffle needs Events")
	case cfg.RepeatPercent < 0 || cfg.RepeatPercent > 100 || cfg.CancelPercent < 0 || cfg.CancelPercent > 100:
		return nil, errors.New("loadgen: RepeatPercent and CancelPercent must be 0 to 100")
	case cfg.CancelPercent > 0 && cfg.Retries == 0:
		return nil, errors.New("loadgen: CancelPercent needs Retries")
	}
	if err := cfg.Generator.validate(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("loadgen: URL %q must start with http:// or https://", cfg.URL)
	}
	r := &runner{cfg: cfg, endpoint: strings.TrimRight(cfg.URL, "/") + "/v1/events", auth: "Bearer " + cfg.Key}
	r.client = cfg.Client
	if r.client == nil {
		r.client = &http.Client{Transport: r.transport()}
		defer r.client.CloseIdleConnections()
	}
	if cfg.Events > 0 {
		r.nBatches = (cfg.Events + int64(cfg.Batch) - 1) / int64(cfg.Batch)
	}
	if cfg.Shuffle {
		r.perm = make([]int64, r.nBatches)
		for i := range r.perm {
			r.perm[i] = int64(i)
		}
		s := rng{s: cfg.ShuffleSeed}
		for i := len(r.perm) - 1; i > 0; i-- {
			j := s.intn(int64(i + 1))
			r.perm[i], r.perm[j] = r.perm[j], r.perm[i]
		}
	}
	if cfg.AckLog != nil {
		r.ack = bufio.NewWriterSize(cfg.AckLog, 256<<10)
	}

	r.start = time.Now()
	r.measFrom = r.start.Add(cfg.Warmup)
	if cfg.Duration > 0 {
		r.deadline = r.start.Add(cfg.Duration)
	}
	workers := make([]*worker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, rnd: rng{s: cfg.ShuffleSeed ^ uint64(i+1)*0x2545f4914f6cdd1d ^ uint64(r.start.UnixNano())},
			errors: map[string]int64{}, samples: map[string]string{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	done := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					cfg.Progress(Progress{Elapsed: time.Since(r.start), Events: r.liveEvents.Load(),
						Requests: r.liveRequests.Load(), FailedRequests: r.liveFailed.Load()})
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	end := time.Now()

	res := &Result{Batch: cfg.Batch, Connections: cfg.Connections, Measurements: len(MetricKeys),
		Errors: map[string]int64{}, ErrorSamples: map[string]string{}, Dials: r.dials.Load(),
		Interrupted: ctx.Err() != nil}
	var hist Histogram
	for _, w := range workers {
		hist.Merge(&w.hist)
		res.Events += w.events
		res.Accepted += w.accepted
		res.Duplicates += w.dups
		res.Requests += w.requests
		res.Repeats += w.repeats
		res.RepeatEvents += w.repeatEvents
		res.MeasuredEvents += w.measEvents
		res.MeasuredRequests += w.measRequests
		res.FailedRequests += w.failed
		res.Retries += w.retries
		res.LostBatches += w.lostBatches
		res.LostEvents += w.lostEvents
		mergeErrors(res.Errors, res.ErrorSamples, w.errors, w.samples)
	}
	res.Latency = hist.summary()
	if end.After(r.measFrom) {
		el := end.Sub(r.measFrom)
		res.Elapsed = el.Microseconds()
		res.EventsPerSecond = float64(res.MeasuredEvents) / el.Seconds()
		res.BatchesPerSecond = float64(res.MeasuredRequests) / el.Seconds()
	}
	if r.ack != nil {
		if err := r.ack.Flush(); err != nil {
			return res, fmt.Errorf("loadgen: write the ack log: %w", err)
		}
	}
	return res, nil
}

func (r *runner) transport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	n := r.cfg.Connections
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			r.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          n,
		MaxIdleConnsPerHost:   n,
		MaxConnsPerHost:       n,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: r.cfg.Timeout,
	}
}

// over reports whether the run has ended: no new batch may start.
func (r *runner) over(ctx context.Context) bool {
	if r.ended.Load() {
		return true
	}
	end := ctx.Err() != nil || !r.deadline.IsZero() && !time.Now().Before(r.deadline)
	if !end && r.cfg.Stop != nil {
		select {
		case <-r.cfg.Stop:
			end = true
		default:
		}
	}
	if end {
		r.ended.Store(true)
	}
	return end
}

// claim returns the next batch's event range, or ok false when there is none left.
func (r *runner) claim() (lo, hi int64, ok bool) {
	i := r.next.Add(1) - 1
	if r.nBatches > 0 {
		if i >= r.nBatches {
			return 0, 0, false
		}
		if r.perm != nil {
			i = r.perm[i]
		}
	}
	lo = r.cfg.First + i*int64(r.cfg.Batch)
	hi = lo + int64(r.cfg.Batch)
	if r.cfg.Events > 0 {
		hi = min(hi, r.cfg.First+r.cfg.Events)
	}
	return lo, hi, true
}

func (w *worker) loop(ctx context.Context) {
	r := w.r
	g := &r.cfg.Generator
	for !r.over(ctx) {
		lo, hi, ok := r.claim()
		if !ok {
			return
		}
		var ts time.Time
		if g.Start.IsZero() {
			ts = time.Now()
		}
		w.buf = g.AppendBatch(w.buf[:0], lo, hi, ts)
		n := hi - lo
		if !w.send(ctx, n, false) {
			w.lostBatches++
			w.lostEvents += n
			continue
		}
		if r.ack != nil {
			w.ids = w.ids[:0]
			for k := lo; k < hi; k++ {
				w.ids = g.AppendID(w.ids, k)
				w.ids = append(w.ids, '\n')
			}
			r.ackMu.Lock()
			r.ack.Write(w.ids) // an error sticks in the bufio.Writer and surfaces at Flush
			r.ackMu.Unlock()
		}
		if r.cfg.RepeatPercent > 0 && w.rnd.intn(100) < int64(r.cfg.RepeatPercent) && ctx.Err() == nil {
			w.send(ctx, n, true)
		}
	}
}

// send posts w.buf until it is acknowledged or given up on, and reports whether it was
// acknowledged.
func (w *worker) send(ctx context.Context, n int64, repeat bool) bool {
	r := w.r
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			w.retries++
		}
		cancelEarly := attempt == 0 && !repeat && r.cfg.CancelPercent > 0 && w.rnd.intn(100) < int64(r.cfg.CancelPercent)
		started := time.Now()
		status, accepted, dups, err := w.post(ctx, cancelEarly)
		if err == nil && status/100 == 2 {
			lat := time.Since(started)
			w.accepted += accepted
			w.dups += dups
			if repeat {
				w.repeats++
				w.repeatEvents += n
				return true
			}
			w.events += n
			w.requests++
			r.liveEvents.Add(n)
			r.liveRequests.Add(1)
			if !started.Before(r.measFrom) {
				w.hist.Record(lat.Microseconds())
				w.measEvents += n
				w.measRequests++
			}
			return true
		}
		w.failed++
		r.liveFailed.Add(1)
		var key string
		retryable := true
		if err != nil {
			key = errorKind(err)
		} else {
			key = strconv.Itoa(status)
			retryable = status == http.StatusTooManyRequests || status/100 == 5
			if _, ok := w.samples[key]; !ok {
				w.samples[key] = sample(w.rsp.Bytes())
			}
		}
		w.errors[key]++
		if !retryable || ctx.Err() != nil || r.cfg.Retries >= 0 && attempt >= r.cfg.Retries {
			return false
		}
		// Capped exponential backoff with jitter: 10ms, 20ms, … 500ms.
		back := min(10*time.Millisecond<<min(attempt, 6), 500*time.Millisecond)
		back = back/2 + time.Duration(w.rnd.intn(int64(back/2)+1))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(back):
		}
	}
}

// post sends w.buf once. On a 2xx it returns the accepted and duplicate counts of the answer;
// the answer body is left in w.rsp.
func (w *worker) post(ctx context.Context, cancelEarly bool) (status int, accepted, dups int64, err error) {
	r := w.r
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if cancelEarly {
		t := time.AfterFunc(time.Duration(w.rnd.intn(int64(r.cfg.CancelAfter)+1)), cancel)
		defer t.Stop()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(w.buf))
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", r.auth)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	w.rsp.Reset()
	_, err = w.rsp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode/100 == 2 {
		b := w.rsp.Bytes()
		accepted, _ = jsonInt(b, `"accepted"`)
		dups, _ = jsonInt(b, `"duplicates"`)
	}
	return resp.StatusCode, accepted, dups, nil
}

// jsonInt finds `"name": <integer>` in a JSON document without decoding it (the ingest answer
// lists these counts before the per-event results).
func jsonInt(b []byte, name string) (int64, bool) {
	i := bytes.Index(b, []byte(name))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(name):]
	j := 0
	for j < len(b) && (b[j] == ' ' || b[j] == ':' || b[j] == '\n' || b[j] == '\t' || b[j] == '\r') {
		j++
	}
	var v int64
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		v = v*10 + int64(b[k]-'0')
		k++
	}
	return v, k > j
}

func sample(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// errorKind names a transport error for the error counts.
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport error"
}

// mergeErrors adds a worker's failed attempts by status into a result's, keeping the first
// sample answer of each status.
func mergeErrors(errs map[string]int64, samples map[string]string, werrs map[string]int64, wsamples map[string]string) {
	for k, v := range werrs {
		errs[k] += v
	}
	for k, v := range wsamples {
		if _, ok := samples[k]; !ok {
			samples[k] = v
		}
	}
}
