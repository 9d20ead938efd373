package levymw_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/forwardauth/authtest"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/pkg/levymw"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// levyEnv is a real Levy server in process and a service guarded by the middleware.
type levyEnv struct {
	levy *authtest.Levy
	url  string
	key  string // the service's key (authorize scope)
}

func newLevy(t *testing.T) *levyEnv {
	l := authtest.Start(t, "")
	return &levyEnv{levy: l, url: l.ServeAPI(t), key: l.Key(t, "service", store.ScopeAuthorize)}
}

// describeFromHeaders reads the check from test headers.
func describeFromHeaders(r *http.Request) (levymw.Request, error) {
	if r.Header.Get("X-Fail") != "" {
		return levymw.Request{}, errors.New("cannot describe")
	}
	if r.Header.Get("X-Customer") == "" {
		return levymw.Request{}, &levymw.Error{Status: http.StatusUnauthorized, Detail: "sign in first"}
	}
	req := levymw.Request{CustomerID: r.Header.Get("X-Customer"), Model: "gpt-5-mini", MaxOutputTokens: 100,
		CorrelationID: r.Header.Get("X-Correlation")}
	if r.Header.Get("X-Negative") != "" {
		req.MaxOutputTokens = -1
	}
	return req, nil
}

// app is the guarded handler: it records the decisions it saw and releases on request.
type app struct {
	mu        sync.Mutex
	decisions []levymw.Decision
	released  []bool
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, ok := levymw.FromContext(r.Context())
	if !ok {
		http.Error(w, "no decision", http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.decisions = append(a.decisions, d)
	a.mu.Unlock()
	if r.Header.Get("X-Release") != "" {
		for range 2 { // the second release finds nothing
			ok, err := levymw.Release(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			a.mu.Lock()
			a.released = append(a.released, ok)
			a.mu.Unlock()
		}
	}
	io.WriteString(w, "served")
}

func (a *app) seen() []levymw.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]levymw.Decision(nil), a.decisions...)
}

func serveApp(t *testing.T, cfg levymw.Config) (*app, *httptest.Server) {
	t.Helper()
	if cfg.Describe == nil {
		cfg.Describe = describeFromHeaders
	}
	cfg.Log = quiet
	c, err := levymw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	srv := httptest.NewServer(c.Middleware(a))
	t.Cleanup(srv.Close)
	return a, srv
}

func get(t *testing.T, srv *httptest.Server, kv ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMiddlewareAllowDenyRelease(t *testing.T) {
	e := newLevy(t)
	e.levy.Customer(t, "cust_1", "limited")
	a, srv := serveApp(t, levymw.Config{URL: e.url, APIKey: e.key})

	for i := range 3 {
		resp, body := get(t, srv, "X-Customer", "cust_1", "X-Correlation", "")
		if resp.StatusCode != 200 || body != "served" {
			t.Fatalf("call %d: %d %q", i+1, resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-RateLimit-Remaining"); got != string(rune('2'-i)) {
			t.Fatalf("call %d: X-RateLimit-Remaining %q", i+1, got)
		}
		d := a.seen()[i]
		if !d.Allowed || !strings.HasPrefix(d.ReservationID, "rsv_") || d.CustomerID != "cust_1" || d.FailOpen ||
			!strings.HasPrefix(d.CorrelationID, "mw_") || resp.Header.Get(levymw.HeaderCorrelationID) != d.CorrelationID {
			t.Fatalf("call %d: decision %+v, header %q", i+1, d, resp.Header.Get(levymw.HeaderCorrelationID))
		}
	}
	// Levy holds the three reservations under the correlation IDs the middleware generated.
	st, err := e.levy.Authorize.Limits(context.Background(), "cust_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Reservations) != 3 {
		t.Fatalf("%d reservations open, want 3", len(st.Reservations))
	}
	for _, r := range st.Reservations {
		if !strings.HasPrefix(r.CorrelationID, "mw_") || r.Estimate.Tokens != 100 {
			t.Fatalf("reservation %+v", r)
		}
	}

	resp, body := get(t, srv, "X-Customer", "cust_1")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "20" {
		t.Fatalf("4th call: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	var out struct {
		Error struct {
			Type              string
			Reason            string
			RetryAfterSeconds int
		}
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Error.Reason != "requests_per_minute" || out.Error.RetryAfterSeconds != 20 {
		t.Fatalf("deny body %q (%v)", body, err)
	}
	if len(a.seen()) != 3 {
		t.Fatal("the denied call reached the handler")
	}

	// Release gives a reservation back (once).
	e.levy.Clock.Advance(20 * time.Second)
	if resp, body = get(t, srv, "X-Customer", "cust_1", "X-Release", "1", "X-Correlation", "corr_rel"); resp.StatusCode != 200 {
		t.Fatalf("release call: %d %q", resp.StatusCode, body)
	}
	if a.released[0] != true || a.released[1] != false {
		t.Fatalf("releases %v, want [true false]", a.released)
	}
	st, _ = e.levy.Authorize.Limits(context.Background(), "cust_1")
	for _, r := range st.Reservations {
		if r.CorrelationID == "corr_rel" {
			t.Fatalf("released reservation still open: %+v", r)
		}
	}
	if len(st.Reservations) != 3 {
		t.Fatalf("%d reservations open, want the first 3", len(st.Reservations))
	}
}

func TestMiddlewareRefusals(t *testing.T) {
	e := newLevy(t)
	e.levy.Customer(t, "cust_2", "open")
	_, srv := serveApp(t, levymw.Config{URL: e.url, APIKey: e.key})
	_, wrongKey := serveApp(t, levymw.Config{URL: e.url, APIKey: "levy_not_a_key"})
	readOnly := e.levy.Key(t, "reader", store.ScopeRead)
	_, noScope := serveApp(t, levymw.Config{URL: e.url, APIKey: readOnly})
	for _, tc := range []struct {
		name   string
		srv    *httptest.Server
		kv     []string
		status int
		want   string
	}{
		{"describe error", srv, []string{"X-Fail", "1"}, 400, "cannot describe"},
		{"describe status", srv, nil, 401, "sign in first"},
		{"unknown customer", srv, []string{"X-Customer", "cust_nobody"}, 403, "no subscription"},
		{"bad figures", srv, []string{"X-Customer", "cust_2", "X-Negative", "1"}, 400, "maxOutputTokens"},
		{"service key unknown", wrongKey, []string{"X-Customer", "cust_2"}, 500, "misconfigured"},
		{"service key without the authorize scope", noScope, []string{"X-Customer", "cust_2"}, 500, "misconfigured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.srv, tc.kv...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %q, want %d containing %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

// deadLevy returns the URL of a port nothing listens on.
func deadLevy(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// fakeLevy answers every call with handler (for failures a real server does not produce).
func fakeLevy(t *testing.T, handler http.HandlerFunc) string {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestUnavailable(t *testing.T) {
	hang := fakeLevy(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices the client leaving only once the body is read
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	broken := fakeLevy(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusBadGateway) })
	notLevy := fakeLevy(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") })
	for _, tc := range []struct{ name, url string }{
		{"connection refused", deadLevy(t)}, {"past the timeout", hang}, {"5xx", broken}, {"not Levy's answer", notLevy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Fail closed: 503 with Retry-After, the handler never runs.
			a, srv := serveApp(t, levymw.Config{URL: tc.url, APIKey: "k", Timeout: 50 * time.Millisecond})
			resp, body := get(t, srv, "X-Customer", "cust_3")
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || len(a.seen()) != 0 {
				t.Fatalf("fail closed: %d %v %q", resp.StatusCode, resp.Header, body)
			}
			// Fail open: allowed, marked, nothing held.
			a, srv = serveApp(t, levymw.Config{URL: tc.url, APIKey: "k", Timeout: 50 * time.Millisecond, FailOpen: true})
			resp, body = get(t, srv, "X-Customer", "cust_3")
			if resp.StatusCode != 200 || len(a.seen()) != 1 {
				t.Fatalf("fail open: %d %q", resp.StatusCode, body)
			}
			if d := a.seen()[0]; !d.Allowed || !d.FailOpen || d.ReservationID != "" || d.CorrelationID == "" {
				t.Fatalf("fail-open decision %+v", d)
			}
			// The client reports the failure itself.
			c, _ := levymw.New(levymw.Config{URL: tc.url, APIKey: "k", Timeout: 50 * time.Millisecond, Log: quiet})
			if _, err := c.Authorize(context.Background(), levymw.Request{CustomerID: "c", Model: "m"}); !errors.Is(err, levymw.ErrUnavailable) {
				t.Fatalf("Authorize: %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestClient(t *testing.T) {
	e := newLevy(t)
	e.levy.Customer(t, "cust_4", "limited")
	c, err := levymw.New(levymw.Config{URL: e.url + "/", APIKey: e.key, FailOpen: true, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := levymw.Request{CustomerID: "cust_4", Model: "gpt-5-mini", EstimatedInputTokens: 10, MaxOutputTokens: 20, CorrelationID: "c1", TaskID: "run_1"}
	var ids []string
	for range 3 {
		d, err := c.Authorize(ctx, req)
		if err != nil || !d.Allowed || d.CorrelationID != "c1" || d.Header.Get("X-Ratelimit-Limit") != "3" {
			t.Fatalf("Authorize: %+v %v", d, err)
		}
		ids = append(ids, d.ReservationID)
	}
	d, err := c.Authorize(ctx, req)
	if err != nil || d.Allowed || d.Reason != "requests_per_minute" || d.RetryAfter != 20*time.Second || d.FailOpen || d.Header.Get("Retry-After") != "20" {
		t.Fatalf("4th: %+v %v", d, err)
	}
	// A refusal is an error even with FailOpen: FailOpen is for outages only.
	if _, err := c.Authorize(ctx, levymw.Request{CustomerID: "cust_nobody", Model: "m"}); err == nil {
		t.Fatal("unknown customer: no error")
	} else if le := (*levymw.Error)(nil); !errors.As(err, &le) || le.Status != 404 || errors.Is(err, levymw.ErrUnavailable) {
		t.Fatalf("unknown customer: %v", err)
	}
	ok, err := c.Release(ctx, "cust_4", ids[1])
	if err != nil || !ok {
		t.Fatalf("Release: %v %v", ok, err)
	}
	if ok, err = c.Release(ctx, "cust_4", ids[1]); err != nil || ok {
		t.Fatalf("second Release: %v %v", ok, err)
	}
	st, _ := e.levy.Authorize.Limits(ctx, "cust_4")
	if len(st.Reservations) != 2 {
		t.Fatalf("%d open reservations after one release, want 2", len(st.Reservations))
	}
}

func TestNewValidates(t *testing.T) {
	_, err := levymw.New(levymw.Config{URL: "ftp://x", APIKey: "a b", Timeout: -1})
	for _, want := range []string{"URL", "APIKey", "Timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("New: %v, want it to name %s", err, want)
		}
	}
	if _, err := levymw.New(levymw.Config{}); err == nil || !strings.Contains(err.Error(), "URL: required") {
		t.Fatalf("New(empty): %v", err)
	}
	c, err := levymw.New(levymw.Config{URL: "http://127.0.0.1:1", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Middleware without Describe did not panic")
		}
	}()
	c.Middleware(http.NotFoundHandler())
}
