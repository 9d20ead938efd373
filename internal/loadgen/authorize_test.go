package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
)

func TestAuthorizeCatalogCompiles(t *testing.T) {
	cat, err := catalog.Load([]byte(AuthorizeCatalog))
	if err != nil {
		t.Fatal(err)
	}
	p := cat.Plan(AuthorizePlan)
	if p == nil || cat.Plan(Plan) == nil {
		t.Fatalf("plans %q and %q must both be there", AuthorizePlan, Plan)
	}
	l := p.Limits
	if l.RequestsPerMinute == nil || l.TokensPerMinute == nil || l.MonthlyTokens == nil || l.MonthlySpend == nil || l.MaxConcurrent == nil {
		t.Errorf("every limit must be set so every decision checks it: %+v", l)
	}
}

// fakeAuthorize is a server that answers authorize requests in a fixed pattern: a DENY every
// third request, a fail-open ALLOW every fifth, a 500 for customer "broken"; it records what it
// was sent.
type fakeAuthorize struct {
	mu        sync.Mutex
	corrs     map[string]bool
	customers map[string]int
	released  map[string]bool
	n         int
}

func (f *fakeAuthorize) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/v1/reservations/") {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/reservations/"), "/release")
		if r.URL.Query().Get("customerId") == "" {
			http.Error(w, "no customer", 400)
			return
		}
		fmt.Fprintf(w, "{\n  \"released\": %v\n}\n", !f.released[id])
		f.released[id] = true
		return
	}
	if r.URL.Path != "/v1/authorize" || r.Header.Get("Authorization") != "Bearer k" {
		http.Error(w, "bad request line", 400)
		return
	}
	var in struct {
		CustomerID, Model, CorrelationID      string
		EstimatedInputTokens, MaxOutputTokens int64
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Model != "m" || in.EstimatedInputTokens != 7 || in.MaxOutputTokens != 9 {
		http.Error(w, fmt.Sprintf("bad body %+v %v", in, err), 400)
		return
	}
	if f.corrs[in.CorrelationID] {
		http.Error(w, "correlation ID repeated", 400)
		return
	}
	f.corrs[in.CorrelationID] = true
	f.customers[in.CustomerID]++
	if in.CustomerID == "broken" {
		http.Error(w, "boom", 500)
		return
	}
	f.n++
	w.Header().Set("Content-Type", "application/json")
	switch {
	case f.n%3 == 0:
		w.WriteHeader(429)
		fmt.Fprint(w, `{"decision":"DENY","reason":"requests_per_minute","retryAfterSeconds":1,"failOpen":false}`)
	case f.n%5 == 0:
		w.Header().Set("Levy-Fail-Open", "true")
		fmt.Fprint(w, `{"decision":"ALLOW","failOpen":true}`)
	default:
		fmt.Fprintf(w, `{"decision":"ALLOW","reservationId":"rsv_%d","failOpen":false}`, f.n)
	}
}

func TestRunAuthorize(t *testing.T) {
	f := &fakeAuthorize{corrs: map[string]bool{}, customers: map[string]int{}, released: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := RunAuthorize(context.Background(), AuthorizeConfig{
		URL: srv.URL, Key: "k", Customers: []string{"a", "b", "c", "broken"}, Model: "m", InputTokens: 7, OutputTokens: 9,
		Connections: 4, Requests: 120, Release: true, RunID: "t",
	})
	if err != nil {
		t.Fatal(err)
	}
	// 120 requests over 4 customers: 30 each; the 30 of "broken" fail.
	for _, c := range []string{"a", "b", "c", "broken"} {
		if f.customers[c] != 30 {
			t.Errorf("customer %s got %d requests, want 30", c, f.customers[c])
		}
	}
	// The server answers the 90 good requests in turn: every third is a DENY (30), every fifth
	// that is not a DENY fails open (12).
	if res.Decisions != 90 || res.Denied != 30 || res.Allowed != 60 || res.FailOpen != 12 || res.Reasons["requests_per_minute"] != 30 {
		t.Errorf("decisions %d allowed %d denied %d fail-open %d reasons %v", res.Decisions, res.Allowed, res.Denied, res.FailOpen, res.Reasons)
	}
	// Every ALLOW with a reservation was released once: 60 minus the 12 fail-open ones.
	if res.Released != 48 || len(f.released) != 48 {
		t.Errorf("released %d (server saw %d)", res.Released, len(f.released))
	}
	if res.Failed != 30 || res.Errors["500"] != 30 || !strings.Contains(res.ErrorSamples["500"], "boom") {
		t.Errorf("errors %v %v", res.Errors, res.ErrorSamples)
	}
	if res.Latency.Count != 90 || res.MeasuredDecisions != 90 || res.Latency.P50 <= 0 || res.Latency.P99 > res.Latency.Max || res.DecisionsPerSecond <= 0 {
		t.Errorf("latency %+v, %d measured, %.0f/s", res.Latency, res.MeasuredDecisions, res.DecisionsPerSecond)
	}
	if res.Dials < 1 || res.Dials > 4 {
		t.Errorf("%d connections opened for 4", res.Dials)
	}
	if len(f.corrs) != 120 {
		t.Errorf("%d distinct correlation IDs for 120 requests", len(f.corrs))
	}
}

func TestRunAuthorizeBounds(t *testing.T) {
	f := &fakeAuthorize{corrs: map[string]bool{}, customers: map[string]int{}, released: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, bad := range []AuthorizeConfig{
		{URL: srv.URL, Key: "k", Requests: 1},
		{URL: srv.URL, Key: "k", Customers: []string{"a"}},
		{URL: "ftp://x", Key: "k", Customers: []string{"a"}, Requests: 1},
		{URL: srv.URL, Key: "k", Customers: []string{"a"}, Requests: -1},
	} {
		if _, err := RunAuthorize(context.Background(), bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	// A Stop-bounded run with a warmup: the warmup's decisions count but are not measured.
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	res, err := RunAuthorize(context.Background(), AuthorizeConfig{URL: srv.URL, Key: "k", Customers: []string{"a"}, Model: "m",
		InputTokens: 7, OutputTokens: 9, Stop: stop, Warmup: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decisions == 0 || res.MeasuredDecisions >= res.Decisions || res.Latency.Count != res.MeasuredDecisions {
		t.Errorf("stop-bounded run: %d decisions, %d measured", res.Decisions, res.MeasuredDecisions)
	}
}
