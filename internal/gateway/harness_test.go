package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/counter"
	countermemory "github.com/levyhq/levy/internal/counter/memory"
	counterredis "github.com/levyhq/levy/internal/counter/redis"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/sqlite"
	"github.com/levyhq/levy/internal/testenv"
)

// Upstream credentials the gateway holds; the fake upstream refuses anything else.
const (
	upstreamOpenAIKey    = "sk-upstream-openai"
	upstreamAnthropicKey = "sk-upstream-anthropic"
	testCustomer         = "cust_gw"
)

// fixture reads a provider fixture: the byte-for-byte copies of the shared fixtures kept by the
// provider package.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("provider", "testdata", "provider-fixtures", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sseEvents splits an SSE transcript into its events, each with its blank line.
func sseEvents(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:i+2])
		b = b[i+2:]
	}
	return out
}

// withoutUsageChunk is an OpenAI chat transcript as OpenAI sends it to a client that did not ask
// for usage: the fixture without its usage chunk (the event with empty choices and a usage).
func withoutUsageChunk(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var out []byte
	dropped := 0
	for _, ev := range sseEvents(b) {
		if bytes.Contains(ev, []byte(`"choices":[],"usage":{`)) {
			dropped++
			continue
		}
		out = append(out, ev...)
	}
	if dropped != 1 {
		tb.Fatalf("fixture has %d usage chunks, want 1", dropped)
	}
	return out
}

// upstreamRequest is what the fake upstream received.
type upstreamRequest struct {
	Path   string
	Header http.Header
	Body   []byte
}

// fakeUpstream replays the provider fixtures byte for byte: JSON bodies with their length,
// event streams in small writes, each flushed. It records every request.
type fakeUpstream struct {
	t   testing.TB
	srv *httptest.Server
	// chunk is the write size of a body (default 7 bytes: events split across writes).
	chunk int
	// messagesStream is the Anthropic stream fixture (default anthropic-message-stream.sse).
	messagesStream string
	// status, when set, answers every call with that status and a provider error body.
	status int
	// cutAt, when set, stops a stream after the first event containing it; the handler then
	// waits for the gateway to hang up (abort false) or breaks the connection (abort true).
	cutAt string
	abort bool

	// countOnly keeps a count of the requests, not the requests (the fuzz target sends many).
	countOnly bool
	// uniqueIDs gives every answer response ids of its own (the fixtures' "FIXTURE" becomes a
	// 7-digit count), as a real provider does; the bytes are then not the fixture's.
	uniqueIDs bool

	files map[string][]byte // the fixtures, read once: the handler must not call t's helpers

	mu  sync.Mutex
	got []upstreamRequest
	n   int
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	f := &fakeUpstream{t: t, chunk: 7, messagesStream: "anthropic-message-stream.sse", files: map[string][]byte{}}
	for _, name := range []string{"openai-chat-completion.json", "openai-chat-completion-stream.sse", "openai-responses.json",
		"anthropic-message.json", "anthropic-message-stream.sse", "anthropic-message-stream-legacy-delta.sse"} {
		f.files[name] = fixture(t, name)
	}
	f.files["openai-chat-completion-stream.sse without usage"] = withoutUsageChunk(t, f.files["openai-chat-completion-stream.sse"])
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fakeUpstream) requests() []upstreamRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]upstreamRequest(nil), f.got...)
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.n++
	n := f.n
	if !f.countOnly {
		f.got = append(f.got, upstreamRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	}
	f.mu.Unlock()

	anthropic := r.URL.Path == "/v1/messages"
	h := w.Header()
	if anthropic {
		h.Set("Request-Id", "req_upstream_anthropic")
		h.Set("Anthropic-Ratelimit-Requests-Limit", "4000")
		h.Set("Anthropic-Ratelimit-Tokens-Limit", "280000")
		h.Set("Anthropic-Priority-Input-Tokens-Limit", "10000")
		h.Set("Anthropic-Organization-Id", "org-upstream-secret")
		if r.Header.Get("X-Api-Key") != upstreamAnthropicKey || r.Header.Get("Authorization") != "" {
			f.fail(w, http.StatusUnauthorized, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
			return
		}
	} else {
		h.Set("X-Request-Id", "req_upstream_openai")
		h.Set("Openai-Processing-Ms", "42")
		h.Set("Openai-Organization", "org-upstream-secret")
		h.Set("X-Ratelimit-Limit-Requests", "30000")
		h.Set("X-Ratelimit-Limit-Tokens", "150000000")
		if r.Header.Get("Authorization") != "Bearer "+upstreamOpenAIKey || r.Header.Get("X-Api-Key") != "" {
			f.fail(w, http.StatusUnauthorized, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
	}
	if f.status != 0 {
		if anthropic {
			f.fail(w, f.status, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		} else {
			f.fail(w, f.status, `{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}`)
		}
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.fail(w, http.StatusBadRequest, `{"error":{"message":"bad json","type":"invalid_request_error","param":null,"code":null}}`)
		return
	}
	var name string
	switch {
	case r.URL.Path == "/v1/chat/completions" && req.Stream:
		name = "openai-chat-completion-stream.sse"
	case r.URL.Path == "/v1/chat/completions":
		name = "openai-chat-completion.json"
	case r.URL.Path == "/v1/responses":
		name = "openai-responses.json"
	case anthropic && req.Stream:
		name = f.messagesStream
	case anthropic:
		name = "anthropic-message.json"
	default:
		f.fail(w, http.StatusNotFound, `{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}`)
		return
	}
	if !anthropic && req.Stream && (req.StreamOptions == nil || !req.StreamOptions.IncludeUsage) {
		name += " without usage" // what OpenAI sends when usage was not asked for
	}
	data := f.files[name]
	if f.uniqueIDs {
		data = bytes.ReplaceAll(data, []byte("FIXTURE"), fmt.Appendf(nil, "%07d", n%10_000_000))
	}
	if !req.Stream {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		f.write(w, data)
		return
	}
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if f.cutAt == "" {
		f.write(w, data)
		return
	}
	for _, ev := range sseEvents(data) {
		f.write(w, ev)
		if bytes.Contains(ev, []byte(f.cutAt)) {
			break
		}
	}
	if f.abort {
		panic(http.ErrAbortHandler) // the test server breaks the connection mid-stream
	}
	select { // the gateway hangs up once its client has left
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
		f.t.Error("fake upstream: the gateway never hung up")
	}
}

// write sends b in small writes, flushing each.
func (f *fakeUpstream) write(w http.ResponseWriter, b []byte) {
	fl := w.(http.Flusher)
	for len(b) > 0 {
		n := min(f.chunk, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		fl.Flush()
		b = b[n:]
	}
}

func (f *fakeUpstream) fail(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// recordingAuthorizer records what the gateway asks the real decision and what it releases.
type recordingAuthorizer struct {
	next Authorizer

	mu        sync.Mutex
	requests  []AuthorizeRequest
	decisions []Decision
	released  []string
}

func (a *recordingAuthorizer) Authorize(ctx context.Context, r AuthorizeRequest) (Decision, error) {
	d, err := a.next.Authorize(ctx, r)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, r)
	a.decisions = append(a.decisions, d)
	return d, err
}

func (a *recordingAuthorizer) Release(ctx context.Context, customerID, reservationID string) error {
	a.mu.Lock()
	a.released = append(a.released, reservationID)
	a.mu.Unlock()
	return a.next.Release(ctx, customerID, reservationID)
}

func (a *recordingAuthorizer) calls() ([]AuthorizeRequest, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuthorizeRequest(nil), a.requests...), append([]string(nil), a.released...)
}

func (a *recordingAuthorizer) reservations() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, d := range a.decisions {
		if d.ReservationID != "" {
			ids = append(ids, d.ReservationID)
		}
	}
	return ids
}

// env is a gateway over the real services, as `levy serve` runs them on the embedded store:
// billing on SQLite with the in-process counter store, the authorize service deciding on it
// (settled by the usage events billing applies), served over 127.0.0.1 under /gateway in front
// of a fake upstream.
type env struct {
	t        testing.TB
	svc      *billing.Service
	st       store.Store
	counters counterStore
	gw       *Gateway
	srv      *httptest.Server
	up       *fakeUpstream
	auth     *recordingAuthorizer
	key      string // a Levy key bound to testCustomer
}

// counterStore is what both counter-store drivers are.
type counterStore interface {
	counter.Store
	counter.Authorizer
}

// newEnv builds an env on the in-process counter store whose customer is on plan. cfg's
// upstream URLs and keys are filled in.
func newEnv(t testing.TB, plan string, cfg Config) *env {
	t.Helper()
	return newEnvOn(t, "memory", plan, cfg)
}

// newEnvOn builds an env on the named counter store: "memory", or "redis" (the real server
// from LEVY_TEST_REDIS_URL, under a key prefix of its own; skipped loudly when unreachable).
func newEnvOn(t testing.TB, counters, plan string, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "levy.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cs counterStore = countermemory.New(countermemory.Options{})
	timeout := time.Duration(-1) // the in-process store never waits: no deadline
	if counters == "redis" {
		rs, err := counterredis.Open(ctx, testenv.RedisURL(t), counterredis.Options{Prefix: fmt.Sprintf("levytest:gateway:%d:", time.Now().UnixNano())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		// A generous deadline: on a loaded test machine the 5ms default would fail some
		// decisions open, and the tests check the figures of real decisions.
		cs, timeout = rs, time.Second
	}
	svc := billing.New(st, log, billing.Options{Counters: cs, CounterOptions: billing.CounterOptions{Durable: counters == "redis"}})
	sctx, stop := context.WithCancel(ctx)
	go svc.Run(sctx)
	catalogDoc, err := os.ReadFile(filepath.Join("testdata", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ApplyCatalog(ctx, catalogDoc); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutCustomer(ctx, testCustomer, billing.CustomerInput{Plan: plan}); err != nil {
		t.Fatal(err)
	}
	authSvc := authorize.New(cs, svc, authorize.Options{Timeout: timeout})
	e := &env{t: t, svc: svc, st: st, counters: cs, up: newFakeUpstream(t),
		auth: &recordingAuthorizer{next: ServiceAuthorizer(authSvc)}}
	e.key = e.createKey(CustomerKeyPrefix+testCustomer, store.ScopeAuthorize)
	if cfg.OpenAIBaseURL == "" {
		cfg.OpenAIBaseURL = e.up.srv.URL
	}
	if cfg.AnthropicBaseURL == "" {
		cfg.AnthropicBaseURL = e.up.srv.URL + "/v1/" // the trailing /v1/ is ignored
	}
	cfg.OpenAIKey, cfg.AnthropicKey = upstreamOpenAIKey, upstreamAnthropicKey
	e.gw, err = New(cfg, Deps{Customers: NewKeyNameResolver(st, 0), Authorizer: e.auth, Ingester: svc, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/gateway/", http.StripPrefix("/gateway", e.gw))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.gw.Close(cctx); err != nil {
			t.Errorf("gateway close: %v", err)
		}
		stop()
		<-svc.Stopped()
		st.Close()
	})
	return e
}

// createKey stores a Levy API key (as the HTTP API does: its SHA-256) and returns its secret.
func (e *env) createKey(name string, scopes ...store.Scope) string {
	e.t.Helper()
	secret := "levy_test_" + strings.NewReplacer(":", "_", " ", "_").Replace(name) + "_" + strconv.Itoa(int(time.Now().UnixNano()%1e9))
	h := sha256.Sum256([]byte(secret))
	err := e.st.CreateAPIKey(context.Background(), store.APIKey{
		ID: "key_" + strconv.FormatInt(time.Now().UnixNano(), 36), Name: name, Hash: h[:], Prefix: secret[:12],
		Scopes: scopes, CreatedAt: time.Now(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// openAIBase and anthropicBase are the base URLs the SDKs are given.
func (e *env) openAIBase() string    { return e.srv.URL + "/gateway/openai/v1/" }
func (e *env) anthropicBase() string { return e.srv.URL + "/gateway/anthropic/" }

// openReservations counts the customer's open reservations.
func (e *env) openReservations() int64 {
	e.t.Helper()
	n, err := e.counters.OpenReservations(context.Background(), testCustomer)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// settled waits until no reservation of the customer is open: the usage events, once applied
// to the counters, settle them (the deadline only stops a broken test from hanging).
func (e *env) settled() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.openReservations() != 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d reservations still open", e.openReservations())
		}
		time.Sleep(time.Millisecond)
	}
}

// flush waits until every call's usage event is in the ledger.
func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.gw.Flush(ctx); err != nil {
		e.t.Fatalf("flush: %v", err)
	}
}

// post sends a raw request to the gateway (path under /gateway) with the Levy key.
func (e *env) post(path, body string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/gateway"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(path, "/anthropic") {
		req.Header.Set("X-Api-Key", e.key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// ledgerEvent is a stored event as the tests compare it.
type ledgerEvent struct {
	ID, CorrelationID, Amount, Cost string
	Properties                      map[string]string
	Measurements                    map[string]string
}

// event reads a stored event by ID.
func (e *env) event(id string) ledgerEvent {
	e.t.Helper()
	r, err := e.svc.GetEvent(context.Background(), id)
	if err != nil {
		e.t.Fatalf("event %s: %v", id, err)
	}
	return toLedgerEvent(e.t, r)
}

// eventsOf reads the events of a correlation ID (a gateway request ID).
func (e *env) eventsOf(correlationID string) []ledgerEvent {
	e.t.Helper()
	rs, err := e.svc.EventsByCorrelation(context.Background(), correlationID, 10)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []ledgerEvent
	for _, r := range rs {
		out = append(out, toLedgerEvent(e.t, r))
	}
	return out
}

func toLedgerEvent(tb testing.TB, r store.EventRecord) ledgerEvent {
	tb.Helper()
	ev := ledgerEvent{ID: r.ID, CorrelationID: r.CorrelationID, Amount: r.Amount.String(), Cost: r.Cost.String(),
		Properties: map[string]string{}, Measurements: map[string]string{}}
	if err := json.Unmarshal(r.Properties, &ev.Properties); err != nil {
		tb.Fatalf("properties %s: %v", r.Properties, err)
	}
	var ms []struct {
		MetricKey string          `json:"metricKey"`
		Value     json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(r.Measurements, &ms); err != nil {
		tb.Fatalf("measurements %s: %v", r.Measurements, err)
	}
	for _, m := range ms {
		ev.Measurements[m.MetricKey] = strings.Trim(string(m.Value), `"`)
	}
	return ev
}
