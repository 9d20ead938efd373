package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/usage"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestModelAlias(t *testing.T) {
	for in, want := range map[string]string{
		"gpt-5-mini-2025-08-07":      "gpt-5-mini",
		"gpt-4o-mini-2024-07-18":     "gpt-4o-mini",
		"claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
		"claude-haiku-4-5-20251001":  "claude-haiku-4-5",
		"o1-2024-12-17":              "o1",
		"gpt-5.4":                    "gpt-5.4",
		"claude-sonnet-4-5":          "claude-sonnet-4-5",
		"claude-3-7-sonnet-latest":   "claude-3-7-sonnet-latest",
		"-2025-08-07":                "-2025-08-07", // nothing would be left
		"-20250929":                  "-20250929",
		"model-2025-13-07":           "model-2025-13-07", // month 13
		"model-2025-08-00":           "model-2025-08-00", // day 0
		"model-20251301":             "model-20251301",
		"model-2025_08-07":           "model-2025_08-07",
		"model-2025-8-07":            "model-2025-8-07",
		"model-x0250929":             "model-x0250929",
		"model-1234":                 "model-1234",
		"":                           "",
	} {
		if got := ModelAlias(in); got != want {
			t.Errorf("ModelAlias(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzModelAlias(f *testing.F) {
	for _, s := range []string{"gpt-5-mini-2025-08-07", "claude-sonnet-4-5-20250929", "-2025-08-07", "x-99999999", "a-2025-12-31"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ModelAlias(s)
		if !strings.HasPrefix(s, got) {
			t.Fatalf("ModelAlias(%q) = %q: not a prefix", s, got)
		}
		if cut := len(s) - len(got); cut != 0 && cut != 9 && cut != 11 {
			t.Fatalf("ModelAlias(%q) = %q: cut %d bytes", s, got, cut)
		}
		if s != "" && got == "" {
			t.Fatalf("ModelAlias(%q) is empty", s)
		}
	})
}

func TestCustomerFromKeyName(t *testing.T) {
	for name, want := range map[string]string{
		"customer:cust_abc":       "cust_abc",
		"customer:a.b@c:d-e":      "a.b@c:d-e",
		"customer:":               "",
		"customer: cust":          "",
		"Customer:cust_abc":       "",
		"ops":                     "",
		"customer:" + long(257):   "",
		"customer:" + long(256):   long(256),
		"customer:cust/../x":      "",
		"prefix customer:cust_ab": "",
	} {
		got, ok := CustomerFromKeyName(name)
		if got != want || ok != (want != "") {
			t.Errorf("CustomerFromKeyName(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

func long(n int) string { return strings.Repeat("c", n) }

func FuzzCustomerFromKeyName(f *testing.F) {
	for _, s := range []string{"customer:cust_abc", "customer:", "ops", "customer:é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, ok := CustomerFromKeyName(name)
		if ok != (id != "") {
			t.Fatalf("%q: ok %v with id %q", name, ok, id)
		}
		if ok && (name != CustomerKeyPrefix+id || !billing.ValidCustomerID(id)) {
			t.Fatalf("%q: id %q", name, id)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	err := Config{
		OpenAIBaseURL: "ftp://x", AnthropicBaseURL: "https://api.anthropic.com?x=1",
		MaxBodyBytes: -1, MeterWorkers: -2, DefaultMaxOutputTokens: provider.MaxCount + 1, EventType: "bad\ttype",
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"openAIBaseURL", "anthropicBaseURL", "maxBodyBytes", "meterWorkers", "defaultMaxOutputTokens", "eventType"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	_, err = New(Config{}, Deps{})
	for _, field := range []string{"deps.Customers", "deps.Authorizer", "deps.Ingester"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("New without deps: %v, want %s named", err, field)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.openai.com":        "https://api.openai.com",
		"https://api.openai.com/":       "https://api.openai.com",
		"https://api.openai.com/v1":     "https://api.openai.com",
		"https://api.openai.com/v1/":    "https://api.openai.com",
		"http://proxy:8080/openai/v1/":  "http://proxy:8080/openai",
		"http://127.0.0.1:9/some/path/": "http://127.0.0.1:9/some/path",
	} {
		if got, err := baseURL(in); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api.openai.com", "/v1", "ftp://x", "https://x/#f", "https://x/?q", "http://"} {
		if _, err := baseURL(bad); err == nil {
			t.Errorf("baseURL(%q) accepted", bad)
		}
	}
}

func TestRoute(t *testing.T) {
	for path, want := range map[string]provider.API{
		"/openai/v1/chat/completions":  provider.OpenAIChat,
		"/openai/v1/responses":         provider.OpenAIResponses,
		"/anthropic/v1/messages":       provider.AnthropicMessages,
		"/v1/chat/completions":         provider.OpenAIChat,
		"/v1/responses":                provider.OpenAIResponses,
		"/v1/messages":                 provider.AnthropicMessages,
		"/openai/v1/messages":          0,
		"/anthropic/v1/responses":      0,
		"/openai/v1/chat/completions/": 0,
		"/openaix/v1/responses":        0,
		"/v1/responses/resp_1":         0,
		"/v1/messages/batches":         0,
		"/openai":                      0,
		"/":                            0,
	} {
		api, known, _ := route(path)
		if api != want || known != (want != 0) {
			t.Errorf("route(%q) = %v, %v; want %v", path, api, known, want)
		}
	}
	if _, _, anth := route("/anthropic/v1/models"); !anth {
		t.Error("an unknown Anthropic path is not answered in Anthropic's format")
	}
}

// keyStore is a KeyStore over a map, counting lookups.
type keyStore struct {
	mu      sync.Mutex
	keys    map[string]store.APIKey // by hash
	lookups int
}

func (k *keyStore) APIKeyByHash(ctx context.Context, hash []byte) (store.APIKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	if key, ok := k.keys[string(hash)]; ok {
		return key, nil
	}
	return store.APIKey{}, store.ErrNotFound
}

// TestKeyNameResolverCache: positive answers are cached for the TTL, so a revoked key stops
// working once it expires; failures are not cached.
func TestKeyNameResolverCache(t *testing.T) {
	ks := &keyStore{keys: map[string]store.APIKey{}}
	secret := "levy_secret"
	h := sha256Sum(secret)
	ks.keys[string(h)] = store.APIKey{Name: "customer:c1", Scopes: []store.Scope{store.ScopeAuthorize}}
	r := NewKeyNameResolver(ks, time.Minute)
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	for range 3 {
		if id, err := r.Customer(context.Background(), secret); err != nil || id != "c1" {
			t.Fatalf("Customer = %q, %v", id, err)
		}
	}
	if ks.lookups != 1 {
		t.Errorf("%d store lookups for 3 calls within the TTL, want 1", ks.lookups)
	}
	delete(ks.keys, string(h)) // revoked
	if _, err := r.Customer(context.Background(), secret); err != nil {
		t.Errorf("within the TTL the cached key still works: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Customer(context.Background(), secret); problem.KindOf(err) != problem.Unauthorized {
		t.Errorf("after the TTL, a revoked key: %v, want Unauthorized", err)
	}
	if _, err := r.Customer(context.Background(), ""); problem.KindOf(err) != problem.Unauthorized {
		t.Errorf("no key: %v", err)
	}
	n := ks.lookups
	r.Customer(context.Background(), "levy_unknown")
	r.Customer(context.Background(), "levy_unknown")
	if ks.lookups != n+2 {
		t.Errorf("failures were cached: %d lookups for 2 calls", ks.lookups-n)
	}
}

// flakyIngester fails its first calls with an error of a kind, then passes to the real service.
type flakyIngester struct {
	next  Ingester
	fails int
	kind  problem.Kind
	mu    sync.Mutex
	calls int
}

func (f *flakyIngester) Ingest(ctx context.Context, evs []usage.Event) (billing.IngestResult, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.fails
	f.mu.Unlock()
	if fail {
		return billing.IngestResult{}, problem.New(f.kind, "injected failure")
	}
	return f.next.Ingest(ctx, evs)
}

// TestMeterRetries: a transient ingest failure is retried until the event is stored; a
// permanent one is given up at once, counted and logged.
func TestMeterRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fails  int
		kind   problem.Kind
		stored bool
		calls  int
		counts map[string]float64
	}{
		{"transient", 2, problem.Unavailable, true, 3, map[string]float64{eventRetried: 2, eventIngested: 1, eventFailed: 0}},
		{"out of attempts", 10, problem.Internal, false, 3, map[string]float64{eventRetried: 2, eventIngested: 0, eventFailed: 1}},
		{"permanent", 10, problem.Invalid, false, 1, map[string]float64{eventRetried: 0, eventIngested: 0, eventFailed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "payg", Config{})
			fl := &flakyIngester{next: e.svc, fails: tc.fails, kind: tc.kind}
			g, err := New(Config{OpenAIBaseURL: e.up.srv.URL, OpenAIKey: upstreamOpenAIKey, MeterAttempts: 3, MeterBackoff: time.Millisecond},
				Deps{Customers: NewKeyNameResolver(e.st, 0), Authorizer: e.auth, Ingester: fl})
			if err != nil {
				t.Fatal(err)
			}
			rec := serveOnce(t, g, "/v1/chat/completions", `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`, e.key)
			if err := g.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.GetEvent(context.Background(), billChat.id)
			if stored := err == nil; stored != tc.stored {
				t.Errorf("stored = %v (%v), want %v", stored, err, tc.stored)
			}
			if fl.calls != tc.calls {
				t.Errorf("%d ingest attempts, want %d", fl.calls, tc.calls)
			}
			for result, want := range tc.counts {
				if got := value(g.m.events.WithLabelValues(result)); got != want {
					t.Errorf("events{%s} = %v, want %v", result, got, want)
				}
			}
			if rec.Code != 200 {
				t.Errorf("the client's answer depends on ingestion: %d", rec.Code)
			}
		})
	}
}

// TestMeterQueueFull: with no room in the queue the event is dropped, counted, and the client
// is not held up.
func TestMeterQueueFull(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	block := make(chan struct{})
	blocked := ingesterFunc(func(ctx context.Context, evs []usage.Event) (billing.IngestResult, error) {
		<-block
		return e.svc.Ingest(ctx, evs)
	})
	g, err := New(Config{OpenAIBaseURL: e.up.srv.URL, OpenAIKey: upstreamOpenAIKey, MeterQueue: 1, MeterWorkers: 1,
		MeterBatch: 1, MeterLinger: -1},
		Deps{Customers: NewKeyNameResolver(e.st, 0), Authorizer: e.auth, Ingester: blocked})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`
	// The worker takes the first event and blocks; the second waits in the queue; the third
	// finds it full.
	serveOnce(t, g, "/v1/chat/completions", body, e.key)
	waitFor(t, func() bool { return value(g.m.queue) == 0 })
	serveOnce(t, g, "/v1/chat/completions", body, e.key)
	serveOnce(t, g, "/v1/chat/completions", body, e.key)
	if got := value(g.m.events.WithLabelValues(eventDropped)); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	close(block)
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// serveOnce drives a gateway's handler directly with one POST carrying the Levy key.
func serveOnce(t *testing.T, g *Gateway, path, body, key string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

type ingesterFunc func(ctx context.Context, evs []usage.Event) (billing.IngestResult, error)

func (f ingesterFunc) Ingest(ctx context.Context, evs []usage.Event) (billing.IngestResult, error) {
	return f(ctx, evs)
}

// waitFor polls a condition that a goroutine makes true (not a timing assertion: the deadline
// only stops a broken test from hanging).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never became true")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestErrorKinds(t *testing.T) {
	if !permanent(problem.New(problem.Conflict, "x")) || permanent(errors.New("disk full")) || permanent(problem.New(problem.Unavailable, "x")) {
		t.Error("permanent() misclassifies")
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestMeterSplitsRefusedBatch: a batch refused for good (all or nothing) is ingested event by
// event, so only the bad event is lost.
func TestMeterSplitsRefusedBatch(t *testing.T) {
	rec := &recorder{}
	picky := ingesterFunc(func(ctx context.Context, evs []usage.Event) (billing.IngestResult, error) {
		for _, ev := range evs {
			if ev.ID == "bad" {
				return billing.IngestResult{}, problem.Invalidf("events[0].customerId", "unknown")
			}
		}
		return rec.Ingest(ctx, evs)
	})
	var work tracker
	cfg := Config{MeterQueue: 10, MeterWorkers: 1, MeterLinger: time.Hour, MeterBatch: 3}
	cfg.setDefaults()
	m := newMetrics(nil)
	mt := newMeter(picky, discardLog(), m, cfg, &work)
	for _, id := range []string{"good1", "bad", "good2"} {
		mt.enqueue(usage.Event{ID: id, EventType: "llm.completion", CustomerID: "c"})
	}
	if err := work.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	mt.close()
	var ids []string
	for _, ev := range rec.take() {
		ids = append(ids, ev.ID)
	}
	if strings.Join(ids, ",") != "good1,good2" {
		t.Errorf("stored %v, want good1 and good2", ids)
	}
	if got := value(m.events.WithLabelValues(eventFailed)); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
}

// noFlush hides the ResponseWriter's Flusher, as a middleware without Unwrap does.
type noFlush struct{ http.ResponseWriter }

// TestStreamWithoutFlusher: a writer that cannot flush still gets the whole stream.
func TestStreamWithoutFlusher(t *testing.T) {
	e := newEnv(t, "payg", Config{})
	req := httptest.NewRequest(http.MethodPost, "/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("X-Api-Key", e.key)
	rec := httptest.NewRecorder()
	e.gw.ServeHTTP(noFlush{rec}, req)
	if rec.Code != 200 || rec.Body.String() != string(fixture(t, "anthropic-message-stream.sse")) {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}
	checkBill(t, e, billMessageStream, rec.Header().Get(HeaderRequestID), nil)
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
