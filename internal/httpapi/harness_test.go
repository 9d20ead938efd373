package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/counter"
	countermemory "github.com/levyhq/levy/internal/counter/memory"
	"github.com/levyhq/levy/internal/httpapi"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

// testNow is the fixed clock of every test server: late in November 2026, so the open monthly
// period is [2026-11-01, 2026-12-01).
var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// testCatalog is a small catalog that reaches every kind of line: a flat fee, per-unit and
// graduated usage charges, a price table (groups by model), a count meter on an event type, a
// derived meter and a cost book.
const testCatalog = `
currency: USD
meters:
  - {key: input_tokens, aggregation: sum}
  - {key: output_tokens, aggregation: sum}
  - {key: agent_runs, eventType: agent.run.completed, aggregation: count}
  - {key: credits, expression: "input_tokens * 0.001 + output_tokens * 0.004"}
costs:
  - {meter: input_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "3.00", per: 1000000}
plans:
  - key: pro
    name: Pro
    period: month
    minimumCommitment: "50.00"
    limits: {requestsPerMinute: 60, monthlySpend: "1000.00"}
    charges:
      - {key: platform, model: flat, amount: "20.00"}
      - key: input
        meter: input_tokens
        model: graduated
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {tiers: [{upTo: 10000000, unitPrice: "3.60"}, {unitPrice: "3.30"}]}
          claude-haiku-4-5: {tiers: [{unitPrice: "1.20"}]}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "18.00", per: 1000000}
      - {key: tasks, meter: agent_runs, model: perUnit, unitPrice: "0.50"}
  - key: basic
    period: month
    charges:
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "20.00", per: 1000000}
`

// testServer is a real Levy API over a SQLite store in a temporary directory, with the
// in-process counter store (as `levy serve` runs on the embedded store).
type testServer struct {
	t     testing.TB
	URL   string
	API   *httpapi.API
	Store store.Store
	// Counters is the counter store the service keeps in step with the ledger (nil with
	// noCounters); tests write to it directly to make it drift.
	Counters *countermemory.Store
	Admin    string // an admin key's secret
	srv      *httptest.Server
}

type serverOptions struct {
	maxBody    int64
	maxBatch   int
	network    bool        // start an httptest.Server (otherwise only API is set)
	ready      func() bool // the readiness hook (nil: always ready)
	noCounters bool        // run the service without a counter store (and so without authorize)
	// now is the clock of the service, the counter store and the API (default: testNow, fixed).
	now func() time.Time
	// authorize tunes the authorize service (Timeout is -1 unless set, as for the embedded
	// store).
	authorize authorize.Options
	// authorizer, when set, wraps the counter store the authorize service calls (to make it
	// fail).
	authorizer func(counter.Authorizer) counter.Authorizer
}

func newTestServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "levy.db"), sqlite.Options{Synchronous: sqlite.SynchronousNormal})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := o.now
	if now == nil {
		now = func() time.Time { return testNow }
	}
	reg := prometheus.NewRegistry()
	opts := billing.Options{Now: now, Metrics: billing.NewMetrics(reg)}
	var cs *countermemory.Store
	if !o.noCounters {
		cs = countermemory.New(countermemory.Options{Now: now})
		opts.Counters = cs
	}
	svc := billing.New(st, log, opts)
	runCtx, stop := context.WithCancel(context.Background())
	go svc.Run(runCtx)
	apiOpts := httpapi.Options{MaxBodyBytes: o.maxBody, MaxBatch: o.maxBatch, Now: now, Registry: reg}
	if cs != nil {
		ao := o.authorize
		if ao.Timeout == 0 {
			ao.Timeout = -1
		}
		ao.Registerer = reg
		var az counter.Authorizer = cs
		if o.authorizer != nil {
			az = o.authorizer(cs)
		}
		apiOpts.Authorize = authorize.New(az, svc, ao)
	}
	api := httpapi.New(svc, st, httpapi.NewAuthenticator(st, ""), log, apiOpts, o.ready)
	_, secret, err := httpapi.CreateKey(ctx, st, "test admin", []store.Scope{store.ScopeAdmin}, testNow)
	if err != nil {
		t.Fatalf("create admin key: %v", err)
	}
	ts := &testServer{t: t, API: api, Store: st, Counters: cs, Admin: secret}
	if o.network {
		ts.srv = httptest.NewServer(api)
		ts.URL = ts.srv.URL
	}
	t.Cleanup(func() {
		if ts.srv != nil {
			ts.srv.Close()
		}
		stop()
		<-svc.Stopped()
		if cs != nil {
			cs.Close()
		}
		st.Close()
	})
	return ts
}

// call is one HTTP exchange.
type call struct {
	Method      string
	Path        string // with the query
	Key         string // bearer secret; "" sends no Authorization header
	Auth        string // a raw Authorization header (overrides Key)
	ContentType string
	Accept      string
	Body        []byte
}

// reply is a response read whole.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problemDoc is the problem+json document as a client reads it.
type problemDoc struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"requestId"`
	Errors    []struct {
		Index   *int   `json:"index"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (c call) request(base string) *http.Request {
	var body io.Reader = http.NoBody
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	var req *http.Request
	if base == "" {
		req = httptest.NewRequest(c.Method, c.Path, body)
	} else {
		var err error
		if req, err = http.NewRequest(c.Method, base+c.Path, body); err != nil {
			panic(err)
		}
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	if c.Auth != "" {
		req.Header.Set("Authorization", c.Auth)
	}
	if c.ContentType != "" {
		req.Header.Set("Content-Type", c.ContentType)
	}
	if c.Accept != "" {
		req.Header.Set("Accept", c.Accept)
	}
	return req
}

// do sends c over the network (or to the handler when the server has none).
func (s *testServer) do(c call) reply {
	s.t.Helper()
	if s.srv == nil {
		rec := httptest.NewRecorder()
		s.API.ServeHTTP(rec, c.request(""))
		return reply{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	}
	resp, err := s.srv.Client().Do(c.request(s.URL))
	if err != nil {
		s.t.Fatalf("%s %s: %v", c.Method, c.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", c.Method, c.Path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func jsonBody(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustStatus(t testing.TB, c call, r reply, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d; body: %s", c.Method, c.Path, r.Status, want, clipBody(r.Body))
	}
}

func clipBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
