package main

// End-to-end tests of pre-flight authorize over HTTP (issue 5): exactness under concurrent
// requests on the in-process store and on Redis, settlement of a reservation by its usage
// event, release, the margin guard tripping on a looping agent, and failing open (bounded by
// the safe capacity) while a private Redis is stopped and then killed.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/testenv"
)

// authzCatalog: input tokens cost the provider 10.00 per million (1000 tokens: 0.01) and sell
// at 3.00; the margin guard trips a task whose cost exceeds 0.05. Plan "metered" allows 100
// requests a minute and 100.00 of spend a month; plan "open" is for load.
const authzCatalog = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
costs:
  - {meter: input_tokens, unitCost: "10.00", per: 1000000}
marginGuard:
  - {key: runaway, scope: task, maxCost: "0.05", coolDown: 10m}
plans:
  - key: metered
    limits: {requestsPerMinute: 100, monthlySpend: "100.00"}
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}
  - key: open
    limits: {requestsPerMinute: 1000000}
    charges:
      - {key: input, meter: input_tokens, model: perUnit, unitPrice: "3.00", per: 1000000}
      - {key: output, meter: output_tokens, model: perUnit, unitPrice: "15.00", per: 1000000}
`

// authzAnswer is one authorize answer as a client sees it.
type authzAnswer struct {
	Status  int
	Header  http.Header
	Latency time.Duration
	Body    struct {
		Decision          string
		ReservationID     string
		Reason            string
		RetryAfterSeconds int64
		FailOpen          bool
		Remaining         map[string]struct {
			Limit, Remaining any
			ResetSeconds     int64
		}
	}
	Raw []byte
	Err error
}

// authzClient posts authorize requests over keep-alive connections.
type authzClient struct {
	base, key string
	http      *http.Client
}

func newAuthzClient(base, key string, conns int) *authzClient {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &authzClient{base: base, key: key, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *authzClient) authorize(customer, corr, task string) authzAnswer {
	body := fmt.Sprintf(`{"customerId":%q,"model":"claude-sonnet-4-6","estimatedInputTokens":1000,"maxOutputTokens":500`, customer)
	if corr != "" {
		body += fmt.Sprintf(`,"correlationId":%q`, corr)
	}
	if task != "" {
		body += fmt.Sprintf(`,"taskId":%q`, task)
	}
	body += "}"
	return c.post("/v1/authorize", body)
}

func (c *authzClient) post(path, body string) authzAnswer {
	var a authzAnswer
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		a.Err = err
		return a
	}
	a.Raw, a.Err = io.ReadAll(resp.Body)
	resp.Body.Close()
	a.Latency = time.Since(start)
	a.Status, a.Header = resp.StatusCode, resp.Header
	if a.Status == 200 || a.Status == 429 {
		if err := json.Unmarshal(a.Raw, &a.Body); err != nil && a.Err == nil {
			a.Err = fmt.Errorf("decode %s: %w", a.Raw, err)
		}
	}
	return a
}

// limitsOf reads GET /v1/customers/{id}/limits.
type limitsView struct {
	OpenReservations int
	Reservations     []struct{ ID, CorrelationID, TaskID string }
	Remaining        map[string]struct {
		Limit, Remaining any
	}
}

func limitsOf(t *testing.T, s *server, customer string) limitsView {
	t.Helper()
	var l limitsView
	if code := s.do("GET", "/v1/customers/"+customer+"/limits", "", "", &l); code != 200 {
		t.Fatalf("limits of %s: %d", customer, code)
	}
	return l
}

// uniqueID returns prefix and 8 random hex digits: customers on a shared Redis never collide
// with another test's.
func uniqueID(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// startAuthzServer starts `levy serve` in-process on the in-process counter store or, with
// redis, on the test Redis, applies authzCatalog and creates the customers on plan.
func startAuthzServer(t *testing.T, redis bool, plan string, customers ...string) *server {
	t.Helper()
	var redisURL string
	if redis {
		redisURL = testenv.RedisURL(t)
	}
	s := startServer(t, t.TempDir(), func(c *config.Config) {
		c.RedisURL = redisURL
		// These tests check decisions, not latency: a deadline no loaded machine misses keeps
		// them from failing open (TestAuthorizeFailsOpenWhenRedisStops tests the 5 ms one).
		c.Authorize.Timeout = 5 * time.Second
	})
	if code := s.do("PUT", "/v1/catalog", "application/yaml", authzCatalog, nil); code != 200 {
		t.Fatalf("apply the catalog: %d", code)
	}
	for _, id := range customers {
		if code := s.do("PUT", "/v1/customers/"+id, "application/json", `{"plan":"`+plan+`"}`, nil); code != 200 {
			t.Fatalf("create %s: %d", id, code)
		}
	}
	return s
}

func forEachCounterStore(t *testing.T, f func(t *testing.T, redis bool)) {
	t.Run("memory", func(t *testing.T) { f(t, false) })
	t.Run("redis", func(t *testing.T) { f(t, true) })
}

// TestAuthorizeExactOverHTTP: 100 requests a minute, 200 concurrent HTTP requests: exactly
// 100 are allowed (more only if the window refilled while they ran, 600 ms per request), the
// rest are denied with Retry-After, every answer carries the quota headers, and exactly as many
// reservations as ALLOWs are open.
func TestAuthorizeExactOverHTTP(t *testing.T) {
	forEachCounterStore(t, func(t *testing.T, redis bool) {
		cust := uniqueID("exact_")
		s := startAuthzServer(t, redis, "metered", cust)
		c := newAuthzClient(s.url, s.key, 200)
		defer c.http.CloseIdleConnections()
		answers := make([]authzAnswer, 200)
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGate
				answers[i] = c.authorize(cust, fmt.Sprintf("exact-%d", i), "")
			}()
		}
		begin := time.Now()
		close(startGate)
		wg.Wait()
		window := time.Since(begin)
		allowed := 0
		for i, a := range answers {
			if a.Err != nil {
				t.Fatalf("request %d: %v", i, a.Err)
			}
			if a.Header.Get("X-RateLimit-Limit") != "100" || a.Header.Get("RateLimit-Policy") == "" {
				t.Errorf("request %d: quota headers %v", i, a.Header)
			}
			switch a.Status {
			case 200:
				allowed++
			case 429:
				if a.Body.Reason != "requests_per_minute" || a.Header.Get("Retry-After") == "" || a.Body.RetryAfterSeconds < 1 {
					t.Errorf("request %d: DENY %s %v", i, a.Raw, a.Header)
				}
			default:
				t.Fatalf("request %d: %d %s", i, a.Status, a.Raw)
			}
		}
		refills := int(window / (600 * time.Millisecond))
		t.Logf("%d allowed of 200 in %s", allowed, window)
		if allowed < 100 || allowed > 100+refills {
			t.Errorf("allowed %d of 200 concurrent requests at 100 a minute (the window allows %d refills)", allowed, refills)
		}
		if l := limitsOf(t, s, cust); l.OpenReservations != allowed {
			t.Errorf("%d open reservations after %d ALLOWs", l.OpenReservations, allowed)
		}
	})
}

// TestAuthorizeSettlement: an ALLOW's reservation is settled by the usage event with its
// correlation ID (the live limits then hold no reservation, and the spend headroom is the cap
// minus exactly the event's price), and a reservation of a cancelled call is released.
func TestAuthorizeSettlement(t *testing.T) {
	forEachCounterStore(t, func(t *testing.T, redis bool) {
		cust := uniqueID("settle_")
		s := startAuthzServer(t, redis, "metered", cust)
		c := newAuthzClient(s.url, s.key, 2)
		a := c.authorize(cust, "call-1", "")
		if a.Err != nil || a.Status != 200 || a.Body.ReservationID == "" {
			t.Fatalf("authorize: %d %s %v", a.Status, a.Raw, a.Err)
		}
		l := limitsOf(t, s, cust)
		if l.OpenReservations != 1 || l.Reservations[0].ID != a.Body.ReservationID || l.Reservations[0].CorrelationID != "call-1" {
			t.Fatalf("limits after ALLOW: %+v", l)
		}
		// The call used 800 input and 300 output tokens: 0.0024 + 0.0045 = 0.0069.
		ev := fmt.Sprintf(`{"id":"evt-call-1","eventType":"llm.completion","customerId":%q,"correlationId":"call-1","properties":{"model":"claude-sonnet-4-6"},"measurements":[{"metricKey":"input_tokens","value":800},{"metricKey":"output_tokens","value":300}]}`, cust)
		if code := s.do("POST", "/v1/events", "application/json", ev, nil); code != 200 {
			t.Fatalf("event: %d", code)
		}
		deadline := time.Now().Add(20 * time.Second)
		for l = limitsOf(t, s, cust); l.OpenReservations != 0; l = limitsOf(t, s, cust) {
			if time.Now().After(deadline) {
				t.Fatalf("the usage event did not settle the reservation: %+v", l)
			}
			time.Sleep(10 * time.Millisecond)
		}
		spend := l.Remaining["monthly_spend"]
		lim, _ := money.Parse(fmt.Sprint(spend.Limit))
		rem, _ := money.Parse(fmt.Sprint(spend.Remaining))
		if !lim.Sub(rem).Equal(money.MustParse("0.0069")) {
			t.Errorf("monthly_spend after settlement: limit %v remaining %v, want exactly 0.0069 used", spend.Limit, spend.Remaining)
		}
		var sp struct {
			Spend  string
			Events int64
		}
		s.do("GET", "/v1/customers/"+cust+"/spend", "", "", &sp)
		if sp.Events != 1 || !money.MustParse(sp.Spend).Equal(money.MustParse("0.0069")) {
			t.Errorf("spend: %+v", sp)
		}

		// A cancelled call: release, once.
		a = c.authorize(cust, "call-2", "")
		if a.Status != 200 {
			t.Fatalf("authorize call-2: %d %s", a.Status, a.Raw)
		}
		for i, want := range []string{`"released": true`, `"released": false`} {
			r := c.post("/v1/reservations/"+a.Body.ReservationID+"/release", `{"customerId":"`+cust+`"}`)
			if r.Status != 200 || !bytes.Contains(r.Raw, []byte(want)) {
				t.Errorf("release %d: %d %s, want %s", i, r.Status, r.Raw, want)
			}
		}
		if r := c.post("/v1/reservations/rsv_nothing/release?customerId="+cust, ""); r.Status != 200 || !bytes.Contains(r.Raw, []byte(`"released": false`)) {
			t.Errorf("unknown reservation: %d %s", r.Status, r.Raw)
		}
		if l := limitsOf(t, s, cust); l.OpenReservations != 0 {
			t.Errorf("after release: %+v", l)
		}
	})
}

// TestMarginGuardLoopingAgent: a looping agent whose calls grow (task run_1) trips the task
// breaker exactly when its cost passes 0.05 (0.05 itself does not); its next authorize is
// denied with task_margin_guard while another task is allowed; resetting the breaker allows
// it again.
func TestMarginGuardLoopingAgent(t *testing.T) {
	forEachCounterStore(t, func(t *testing.T, redis bool) {
		cust := uniqueID("agent_")
		s := startAuthzServer(t, redis, "open", cust)
		c := newAuthzClient(s.url, s.key, 2)
		trips := func() []map[string]any {
			var page struct {
				Items []struct {
					Kind string
					Data map[string]any
				}
			}
			s.do("GET", "/v1/customers/"+cust+"/notices", "", "", &page)
			var out []map[string]any
			for _, n := range page.Items {
				if n.Kind == "breaker_trip" {
					out = append(out, n.Data)
				}
			}
			return out
		}
		// Input tokens per step: the task's cost runs 0.01, 0.02, 0.035, 0.05, 0.051.
		steps := []int{1000, 1000, 1500, 1500, 100}
		for i, tokens := range steps {
			if a := c.authorize(cust, fmt.Sprintf("step-%d", i), "run_1"); a.Status != 200 {
				t.Fatalf("step %d: authorize before the breach: %d %s", i, a.Status, a.Raw)
			}
			ev := fmt.Sprintf(`{"id":"agent-%d","eventType":"llm.completion","customerId":%q,"correlationId":"step-%d","properties":{"model":"claude-sonnet-4-6","taskId":"run_1"},"measurements":[{"metricKey":"input_tokens","value":%d}]}`, i, cust, i, tokens)
			if code := s.do("POST", "/v1/events", "application/json", ev, nil); code != 200 {
				t.Fatalf("step %d: event %d", i, code)
			}
			// The trip is recorded with its event, in the same commit: it is there as soon as
			// the event is acknowledged, and not before the breach.
			got := trips()
			if i < len(steps)-1 && len(got) != 0 {
				t.Fatalf("the breaker tripped at step %d (cost not above 0.05 yet): %v", i, got)
			}
			if i == len(steps)-1 {
				if len(got) != 1 || got[0]["taskCost"] != "0.051" || got[0]["eventId"] != "agent-4" || got[0]["breakerId"] != cust+"/task/run_1" || got[0]["rule"] != "runaway" {
					t.Fatalf("the breach at 0.051 recorded %v", got)
				}
			}
		}
		// The breaker opens in the counter store right after the commit.
		deadline := time.Now().Add(20 * time.Second)
		for {
			a := c.authorize(cust, "", "run_1")
			if a.Status == 429 {
				if a.Body.Reason != "task_margin_guard" || a.Body.RetryAfterSeconds < 590 || a.Body.RetryAfterSeconds > 600 {
					t.Fatalf("the looping task's DENY: %s", a.Raw)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tripped task is still allowed: %d %s", a.Status, a.Raw)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if a := c.authorize(cust, "", "run_2"); a.Status != 200 {
			t.Errorf("another task: %d %s", a.Status, a.Raw)
		}
		if a := c.authorize(cust, "", ""); a.Status != 200 {
			t.Errorf("a call outside any task: %d %s", a.Status, a.Raw)
		}
		r := c.post("/v1/breakers/"+cust+"/task/run_1/reset", "")
		if r.Status != 200 || !bytes.Contains(r.Raw, []byte(`"reset": true`)) {
			t.Fatalf("reset: %d %s", r.Status, r.Raw)
		}
		if a := c.authorize(cust, "", "run_1"); a.Status != 200 {
			t.Errorf("after the reset: %d %s", a.Status, a.Raw)
		}
		if r := c.post("/v1/breakers/"+cust+"%2Ftask%2Frun_1/reset", ""); r.Status != 200 || !bytes.Contains(r.Raw, []byte(`"reset": false`)) {
			t.Errorf("a second reset: %d %s", r.Status, r.Raw)
		}
	})
}

// phaseResult summarises the answers of one phase of the fail-open test.
type phaseResult struct {
	answers              []authzAnswer
	allowed, failOpen    int
	capacityDenials      int
	elapsed              time.Duration
	latencies            []time.Duration
	maxLatency, p50, p99 time.Duration
}

// runPhase sends n authorize requests for one customer over conns connections.
func runPhase(c *authzClient, customer string, n, conns int) phaseResult {
	var res phaseResult
	res.answers = make([]authzAnswer, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				res.answers[i] = c.authorize(customer, "", "")
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	for _, a := range res.answers {
		if a.Err != nil {
			continue
		}
		res.latencies = append(res.latencies, a.Latency)
		if a.Status == 200 {
			res.allowed++
		}
		if a.Body.FailOpen {
			res.failOpen++
		}
		if a.Body.Reason == "fail_open_capacity" {
			res.capacityDenials++
		}
	}
	slices.Sort(res.latencies)
	if k := len(res.latencies); k > 0 {
		res.p50, res.p99, res.maxLatency = res.latencies[k/2], res.latencies[(k*99)/100], res.latencies[k-1]
	}
	return res
}

// TestAuthorizeFailsOpenWhenRedisStops runs the real binary on a private Redis with a 5 ms
// authorize timeout and a safe capacity of 20 requests a minute per customer. Redis is stopped
// (SIGSTOP) and then killed during a stream of authorize calls: every call is still answered,
// quickly, marked fail-open in the body and the header, and at most the safe capacity of each
// customer is allowed (the rest are DENY fail_open_capacity). Redis restarted, decisions are
// normal again.
func TestAuthorizeFailsOpenWhenRedisStops(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection test: builds the binary and stops Redis; skipped with -short")
	}
	rd := startPrivateRedis(t)
	bin := buildLevy(t)
	p := newProc(t, bin, t.TempDir(), "")
	p.env = append(p.env, "LEVY_REDIS_URL="+rd.url(), "LEVY_AUTHORIZE_TIMEOUT=5ms", "LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE=20",
		"LEVY_COUNTERS_RECONCILE_EVERY=-1s")
	p.mustStart()
	s := &server{url: p.url, key: p.key, t: t, httpc: &http.Client{Timeout: 30 * time.Second}}
	phases := []string{"warm", "normal", "stopped", "killed", "back"}
	customers := map[string]string{}
	for _, ph := range phases {
		customers[ph] = "fo_" + ph
	}
	if code := s.do("PUT", "/v1/catalog", "application/yaml", authzCatalog, nil); code != 200 {
		t.Fatalf("catalog: %d", code)
	}
	for _, id := range customers {
		if code := s.do("PUT", "/v1/customers/"+id, "application/json", `{"plan":"open"}`, nil); code != 200 {
			t.Fatalf("customer %s: %d", id, code)
		}
		// Load the customer into the server's caches, so later phases measure the decision.
		if code := s.do("GET", "/v1/customers/"+id+"/limits", "", "", nil); code != 200 {
			t.Fatalf("limits of %s: %d", id, code)
		}
	}
	c := newAuthzClient(p.url, p.key, 4)
	const n, conns = 60, 4
	const bound = 250 * time.Millisecond // the timeout is 5 ms; the machine is shared and loaded
	report := func(name string, r phaseResult) {
		t.Logf("%-8s %d requests in %s: %d allowed, %d fail-open, %d denied by safe capacity; latency p50 %s p99 %s max %s",
			name, len(r.answers), r.elapsed.Round(time.Millisecond), r.allowed, r.failOpen, r.capacityDenials,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.maxLatency.Round(10*time.Microsecond))
	}
	// With Redis up, answers are normal decisions. A loaded machine (CI, or -race suites beside
	// this one) delays round trips past the 5 ms timeout now and then, which rightly fails
	// open (and may even spend the safe capacity): that is logged, and must stay the exception.
	normal := func(name string, r phaseResult) {
		for i, a := range r.answers {
			if a.Err != nil {
				t.Fatalf("%s request %d: %v", name, i, a.Err)
			}
			ok := a.Status == 200 || a.Status == 429 && a.Body.FailOpen && a.Body.Reason == "fail_open_capacity"
			if !ok || a.Body.FailOpen != (a.Header.Get("Levy-Fail-Open") == "true") || (a.Status == 200 && a.Body.FailOpen == (a.Body.ReservationID != "")) {
				t.Errorf("%s request %d: %d %s %v", name, i, a.Status, a.Raw, a.Header)
			}
		}
		if decided := len(r.answers) - r.failOpen; decided < len(r.answers)/2 {
			t.Errorf("%s: only %d of %d answers were decided by Redis", name, decided, len(r.answers))
		} else if r.failOpen > 0 {
			t.Logf("%s: %d of %d answers failed open with Redis up (round trips slower than 5 ms on a loaded machine)", name, r.failOpen, len(r.answers))
		}
	}
	failingOpen := func(name string, r phaseResult) {
		for i, a := range r.answers {
			if a.Err != nil {
				t.Fatalf("%s request %d: no answer: %v", name, i, a.Err)
			}
			if !a.Body.FailOpen || a.Header.Get("Levy-Fail-Open") != "true" || a.Body.ReservationID != "" {
				t.Errorf("%s request %d: not marked fail-open: %d %s %v", name, i, a.Status, a.Raw, a.Header)
			}
			if a.Status == 429 && (a.Body.Reason != "fail_open_capacity" || a.Header.Get("Retry-After") == "") {
				t.Errorf("%s request %d: %s", name, i, a.Raw)
			}
			if a.Status != 200 && a.Status != 429 {
				t.Errorf("%s request %d: status %d %s", name, i, a.Status, a.Raw)
			}
		}
		// 20 a minute per customer with a burst of 20: one more per 3 s of the phase.
		limit := 20 + int(r.elapsed/(3*time.Second))
		if r.allowed < 20 || r.allowed > limit {
			t.Errorf("%s: %d fail-open ALLOWs, want between 20 and %d (the safe capacity)", name, r.allowed, limit)
		}
		if r.allowed+r.capacityDenials != len(r.answers) {
			t.Errorf("%s: %d allowed + %d denied by capacity ≠ %d", name, r.allowed, r.capacityDenials, len(r.answers))
		}
		if r.maxLatency > bound {
			t.Errorf("%s: an answer took %s (bound %s)", name, r.maxLatency, bound)
		}
	}

	// Open the pool's connections to Redis first, so the first phase measures decisions.
	report("warm-up", runPhase(c, customers["warm"], 20, conns))
	r := runPhase(c, customers["normal"], n, conns)
	report("normal", r)
	normal("normal", r)

	rd.signal(syscall.SIGSTOP)
	r = runPhase(c, customers["stopped"], n, conns)
	report("SIGSTOP", r)
	failingOpen("SIGSTOP", r)

	rd.kill() // SIGKILL works on a stopped process: connections are now refused
	r = runPhase(c, customers["killed"], n, conns)
	report("SIGKILL", r)
	failingOpen("SIGKILL", r)

	rd.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := c.authorize(customers["back"], "", "")
		if a.Err == nil && a.Status == 200 && !a.Body.FailOpen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decisions did not recover after Redis restarted: %d %s %v", a.Status, a.Raw, a.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = runPhase(c, customers["back"], n, conns)
	report("back", r)
	normal("back", r)

	var metrics bytes.Buffer
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`levy_authorize_fail_open_total{outcome="allowed"}`, `levy_authorize_fail_open_total{outcome="denied"}`} {
		if !bytes.Contains(metrics.Bytes(), []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	p.stop()
}
