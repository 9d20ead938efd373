package loadgen

// The authorize load generator, the engine behind `levy bench authorize`: a fixed number of
// keep-alive connections, each sending POST /v1/authorize back to back (the next request
// leaves when the previous answer is read), over a fixed set of customers.
//
// Behaviour at the edges:
//   - A run is bounded by Duration, Requests or Stop, whichever comes first (at least one is
//     required); a canceled ctx aborts at once and the Result so far has Interrupted set.
//   - A decision is a 200 (ALLOW) or a 429 (DENY); both count as answered, and fail-open
//     answers (Levy-Fail-Open: true) are counted as well. Anything else (another status, a
//     transport error) is an error, counted by status or kind and never retried: a load
//     generator that retried would hide the failures it is there to show.
//   - Latency is per decision, from sending the request to reading the last byte of the answer,
//     in integer microseconds (Histogram). Requests started within Warmup of the start are
//     answered and counted but left out of the rate and the latencies.
//   - With Release, every ALLOW that holds a reservation is followed on the same connection by
//     POST /v1/reservations/{id}/release (not timed, not counted as a decision), so the
//     customers' open reservations stay flat as a cancelling gateway's would.
//   - Requests are numbered in the order they start, over all connections; request n goes to
//     customer n mod len(Customers) and carries the correlation ID "<RunID>-<n>".

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AuthorizePlan is the plan of AuthorizeCatalog: the bench plan's prices with every limit but
// the wallet set high enough never to deny, so each decision checks (and charges) them all.
const AuthorizePlan = "bench_authorize"

// AuthorizeCatalog is Catalog with plan AuthorizePlan added. Applying it leaves plan bench as
// it is, so one server can run both benchmarks.
const AuthorizeCatalog = Catalog + `  - key: ` + AuthorizePlan + `
    period: month
    limits: {requestsPerMinute: 1000000000, tokensPerMinute: 1000000000000, monthlyTokens: 1000000000000000, monthlySpend: "1000000000", maxConcurrent: 1000000000}
    charges:
      - key: input
        meter: input_tokens
        model: graduated
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {tiers: [{upTo: 2000000, unitPrice: "3.60"}, {unitPrice: "3.00"}]}
          claude-haiku-4-5: {tiers: [{upTo: 2000000, unitPrice: "1.20"}, {unitPrice: "1.00"}]}
        defaultPrice: {tiers: [{upTo: 2000000, unitPrice: "6.00"}, {unitPrice: "5.00"}]}
      - key: output
        meter: output_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {unitPrice: "18.00"}
          claude-haiku-4-5: {unitPrice: "6.00"}
        defaultPrice: {unitPrice: "30.00"}
`

// AuthorizeConfig describes an authorize run.
type AuthorizeConfig struct {
	// URL is the server's base URL; Key an API key with the authorize scope (or admin).
	URL string
	Key string
	// Customers receive the requests in turn; at least one.
	Customers []string
	// Model, InputTokens and OutputTokens fill every request (defaults claude-sonnet-4-6,
	// 1500 and 1024).
	Model        string
	InputTokens  int64
	OutputTokens int64
	// RunID tags the correlation IDs (default "run").
	RunID string
	// Connections is the number of concurrent requests, each on its own keep-alive
	// connection; default 1.
	Connections int
	// Duration, Requests and Stop bound the run (0 or nil: no such bound).
	Duration time.Duration
	Requests int64
	Stop     <-chan struct{}
	// Warmup leaves the requests started within this long of the start out of the figures.
	Warmup time.Duration
	// Release releases each ALLOW's reservation after the answer (see the package notes).
	Release bool
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// Client, when set, sends the requests.
	Client *http.Client
}

// AuthorizeResult is a run's outcome. Counts cover the whole run; the rate and the latency
// cover the requests started after the warmup.
type AuthorizeResult struct {
	Connections int   `json:"connections"`
	Customers   int   `json:"customers"`
	Elapsed     int64 `json:"elapsedMicros"` // measured window

	Decisions int64            `json:"decisions"` // 200 and 429 answers
	Allowed   int64            `json:"allowed"`
	Denied    int64            `json:"denied"`
	FailOpen  int64            `json:"failOpen"` // of the decisions, those taken without the counter store
	Reasons   map[string]int64 `json:"denyReasons"`
	Released  int64            `json:"released"` // reservations released (Release)

	MeasuredDecisions  int64   `json:"measuredDecisions"`
	DecisionsPerSecond float64 `json:"decisionsPerSecond"`
	Latency            Latency `json:"latency"`

	Failed       int64             `json:"failedRequests"` // requests that got no decision
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"errorSamples,omitempty"`
	Dials        int64             `json:"connectionsOpened"`
	Interrupted  bool              `json:"interrupted,omitempty"`
}

type authWorker struct {
	r    *authRunner
	body []byte
	rsp  bytes.Buffer

	hist                                       Histogram
	decisions, allowed, denied, failOpen, meas int64
	released, failed                           int64
	reasons, errors                            map[string]int64
	samples                                    map[string]string
}

type authRunner struct {
	cfg      AuthorizeConfig
	client   *http.Client
	endpoint string
	base     string
	auth     string
	measFrom time.Time
	deadline time.Time
	sent     atomic.Int64
	ended    atomic.Bool
	dials    *atomic.Int64 // nil with a caller's Client
}

// RunAuthorize runs the load and returns what happened. It returns an error only for an
// invalid config; failed requests are in the result.
func RunAuthorize(ctx context.Context, cfg AuthorizeConfig) (*AuthorizeResult, error) {
	if cfg.Model == "" {
		cfg.Model = "claude-sonnet-4-6"
	}
	if cfg.InputTokens == 0 && cfg.OutputTokens == 0 {
		cfg.InputTokens, cfg.OutputTokens = 1500, 1024
	}
	if cfg.RunID == "" {
		cfg.RunID = "run"
	}
	if cfg.Connections == 0 {
		cfg.Connections = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	switch {
	case len(cfg.Customers) == 0:
		return nil, errors.New("loadgen: authorize needs at least one customer")
	case cfg.Connections < 1:
		return nil, errors.New("loadgen: Connections must be at least 1")
	case cfg.Duration < 0 || cfg.Requests < 0 || cfg.Warmup < 0 || cfg.InputTokens < 0 || cfg.OutputTokens < 0:
		return nil, errors.New("loadgen: Duration, Requests, Warmup and the token counts must not be negative")
	case cfg.Duration == 0 && cfg.Requests == 0 && cfg.Stop == nil:
		return nil, errors.New("loadgen: a run needs a bound: Duration, Requests or Stop")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("loadgen: URL %q must start with http:// or https://", cfg.URL)
	}
	r := &authRunner{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), auth: "Bearer " + cfg.Key}
	r.endpoint = r.base + "/v1/authorize"
	r.client = cfg.Client
	if r.client == nil {
		// The ingest runner's transport: one keep-alive connection per worker, dials counted.
		lr := &runner{cfg: Config{Connections: cfg.Connections, Timeout: cfg.Timeout}}
		r.client = &http.Client{Transport: lr.transport()}
		r.dials = &lr.dials
		defer r.client.CloseIdleConnections()
	}
	start := time.Now()
	r.measFrom = start.Add(cfg.Warmup)
	if cfg.Duration > 0 {
		r.deadline = start.Add(cfg.Duration)
	}
	workers := make([]*authWorker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &authWorker{r: r, reasons: map[string]int64{}, errors: map[string]int64{}, samples: map[string]string{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	end := time.Now()

	res := &AuthorizeResult{Connections: cfg.Connections, Customers: len(cfg.Customers), Reasons: map[string]int64{},
		Errors: map[string]int64{}, ErrorSamples: map[string]string{}, Interrupted: ctx.Err() != nil}
	if r.dials != nil {
		res.Dials = r.dials.Load()
	}
	var hist Histogram
	for _, w := range workers {
		hist.Merge(&w.hist)
		res.Decisions += w.decisions
		res.Allowed += w.allowed
		res.Denied += w.denied
		res.FailOpen += w.failOpen
		res.Released += w.released
		res.MeasuredDecisions += w.meas
		res.Failed += w.failed
		for k, v := range w.reasons {
			res.Reasons[k] += v
		}
		mergeErrors(res.Errors, res.ErrorSamples, w.errors, w.samples)
	}
	res.Latency = hist.summary()
	if end.After(r.measFrom) {
		el := end.Sub(r.measFrom)
		res.Elapsed = el.Microseconds()
		res.DecisionsPerSecond = float64(res.MeasuredDecisions) / el.Seconds()
	}
	return res, nil
}

// over reports whether no new request may start.
func (r *authRunner) over(ctx context.Context) bool {
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

func (w *authWorker) loop(ctx context.Context) {
	r := w.r
	cfg := &r.cfg
	for !r.over(ctx) {
		i := r.sent.Add(1) - 1 // the request's number in the run
		if cfg.Requests > 0 && i >= cfg.Requests {
			return
		}
		customer := cfg.Customers[i%int64(len(cfg.Customers))]
		w.body = append(w.body[:0], `{"customerId":"`...)
		w.body = append(w.body, customer...)
		w.body = append(w.body, `","model":"`...)
		w.body = append(w.body, cfg.Model...)
		w.body = append(w.body, `","estimatedInputTokens":`...)
		w.body = strconv.AppendInt(w.body, cfg.InputTokens, 10)
		w.body = append(w.body, `,"maxOutputTokens":`...)
		w.body = strconv.AppendInt(w.body, cfg.OutputTokens, 10)
		w.body = append(w.body, `,"correlationId":"`...)
		w.body = append(w.body, cfg.RunID...)
		w.body = append(w.body, '-')
		w.body = strconv.AppendInt(w.body, i, 10)
		w.body = append(w.body, `"}`...)

		started := time.Now()
		status, failOpen, err := w.post(ctx, r.endpoint, w.body)
		lat := time.Since(started)
		if err != nil || (status != http.StatusOK && status != http.StatusTooManyRequests) {
			w.fail(status, err)
			continue
		}
		w.decisions++
		if failOpen {
			w.failOpen++
		}
		if !started.Before(r.measFrom) {
			w.hist.Record(lat.Microseconds())
			w.meas++
		}
		if status == http.StatusTooManyRequests {
			w.denied++
			w.reasons[jsonString(w.rsp.Bytes(), `"reason":"`)]++
			continue
		}
		w.allowed++
		if cfg.Release {
			if id := jsonString(w.rsp.Bytes(), `"reservationId":"`); id != "" {
				w.release(ctx, customer, id)
			}
		}
	}
}

func (w *authWorker) release(ctx context.Context, customer, id string) {
	u := w.r.base + "/v1/reservations/" + id + "/release?customerId=" + customer
	status, _, err := w.post(ctx, u, nil)
	if err != nil || status != http.StatusOK {
		w.fail(status, err)
		return
	}
	if bytes.Contains(w.rsp.Bytes(), []byte(`"released": true`)) {
		w.released++
	}
}

func (w *authWorker) fail(status int, err error) {
	w.failed++
	if err != nil {
		w.errors[errorKind(err)]++
		return
	}
	key := strconv.Itoa(status)
	w.errors[key]++
	if _, ok := w.samples[key]; !ok {
		w.samples[key] = sample(w.rsp.Bytes())
	}
}

// post sends one request and reads the whole answer into w.rsp.
func (w *authWorker) post(ctx context.Context, u string, body []byte) (status int, failOpen bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", w.r.auth)
	resp, err := w.r.client.Do(req)
	if err != nil {
		return 0, false, err
	}
	w.rsp.Reset()
	_, err = w.rsp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	return resp.StatusCode, resp.Header.Get("Levy-Fail-Open") == "true", nil
}

// jsonString returns the string value that follows key (`"name":"`) in a compact JSON answer,
// without decoding it; "" when absent. The values read here (reason codes, reservation IDs)
// hold no escapes.
func jsonString(b []byte, key string) string {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return ""
	}
	return string(b[:j])
}
