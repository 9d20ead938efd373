package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/usage"
)

// allowAll allows every call and records releases: the fuzz target is the gateway's own input
// handling, not the decision.
type allowAll struct {
	mu       sync.Mutex
	n        int
	released map[string]bool
}

func (a *allowAll) Authorize(ctx context.Context, r AuthorizeRequest) (Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return Decision{Allowed: true, ReservationID: r.CorrelationID}, nil
}

func (a *allowAll) Release(ctx context.Context, customerID, reservationID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.released[reservationID] = true
	return nil
}

// staticCustomer maps one key to one customer.
type staticCustomer struct{}

func (staticCustomer) Customer(ctx context.Context, key string) (string, error) {
	if key != "levy_fuzz" {
		return "", errMissingKey
	}
	return "cust_fuzz", nil
}

// recorder keeps the events handed to ingestion.
type recorder struct {
	mu  sync.Mutex
	evs []usage.Event
}

func (r *recorder) Ingest(ctx context.Context, evs []usage.Event) (billing.IngestResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	return billing.IngestResult{Accepted: len(evs)}, nil
}

func (r *recorder) take() []usage.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

// FuzzServe: whatever the body, the gateway answers 200 (forwarded) or a 4xx in the provider's
// format without panicking; a forwarded call yields exactly one valid usage event or, when the
// upstream refused it, a released reservation.
func FuzzServe(f *testing.F) {
	for _, s := range []struct {
		path byte
		body string
	}{
		{0, `{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}`},
		{0, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{0, `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false},"messages":[]}`},
		{1, `{"model":"gpt-5.4","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}`},
		{2, `{"model":"claude-haiku-4-5","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{2, `{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}`},
		{0, `{"model":"gpt-5-mini","n":1000000000000000,"max_tokens":1000000000000000,"messages":[]}`},
		{1, `{"model":null}`},
		{2, `[1,2]`},
		{0, ``},
	} {
		f.Add(s.path, []byte(s.body))
	}
	up := newFakeUpstream(f)
	up.countOnly = true
	auth := &allowAll{released: map[string]bool{}}
	rec := &recorder{}
	g, err := New(Config{OpenAIBaseURL: up.srv.URL, AnthropicBaseURL: up.srv.URL, OpenAIKey: upstreamOpenAIKey,
		AnthropicKey: upstreamAnthropicKey, MaxBodyBytes: 4096}, Deps{Customers: staticCustomer{}, Authorizer: auth, Ingester: rec})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.Close(context.Background()) })
	paths := []string{"/openai/v1/chat/completions", "/openai/v1/responses", "/anthropic/v1/messages"}
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer levy_fuzz")
		w := httptest.NewRecorder()
		before := up.count()
		g.ServeHTTP(w, req)
		if err := g.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs := rec.take()
		reqID := w.Header().Get(HeaderRequestID)
		forwarded := up.count() > before
		anthropicRoute := strings.HasPrefix(path, "/anthropic")
		switch {
		case w.Code == http.StatusOK:
			if len(evs) != 1 {
				t.Fatalf("%d events for a forwarded call", len(evs))
			}
			checkEventValid(t, evs[0], reqID)
		case !forwarded:
			if w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
			}
			providerError(t, anthropicRoute, w.Body.Bytes())
			if len(evs) != 0 {
				t.Fatalf("a rejected call was billed")
			}
		default: // the upstream refused what the gateway forwarded
			auth.mu.Lock()
			released := auth.released[reqID]
			auth.mu.Unlock()
			if !released || len(evs) != 0 {
				t.Fatalf("upstream answered %d: released %v, events %d", w.Code, released, len(evs))
			}
		}
	})
}

// checkEventValid checks an event against the limits ingestion enforces on decoded events.
func checkEventValid(t *testing.T, ev usage.Event, reqID string) {
	t.Helper()
	if !validText(ev.ID, usage.MaxStringLen) || ev.EventType != "llm.completion" || ev.CustomerID != "cust_fuzz" ||
		ev.CorrelationID != reqID || !ev.TimestampGiven {
		t.Fatalf("event %+v", ev)
	}
	seen := map[string]bool{}
	for _, p := range ev.Properties {
		if !validText(p.Key, usage.MaxStringLen) || !validText(p.Value, usage.MaxPropertyValue) || seen[p.Key] {
			t.Fatalf("property %q=%q", p.Key, p.Value)
		}
		seen[p.Key] = true
	}
	if len(ev.Measurements) < 2 {
		t.Fatalf("measurements %v", ev.Measurements)
	}
	for _, m := range ev.Measurements {
		if m.Value.Decimal().Sign() < 0 || seen["m:"+m.MetricKey] {
			t.Fatalf("measurement %s = %s", m.MetricKey, m.Value.Decimal())
		}
		seen["m:"+m.MetricKey] = true
	}
}
