package authorize

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/levyhq/levy/internal/counter"
)

func TestFailOpenIsBoundedBySafeCapacity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{SafeRequestsPerMinute: 3})
	e.plans.put(t, "c1", "payg", 1, "")
	e.plans.put(t, "c2", "payg", 1, "")
	e.fault.set(fmt.Errorf("eval script: %w", counter.ErrUnavailable), false)

	// A burst of the full safe capacity, per customer, then one every 20 s.
	for i := range 3 {
		res := e.authorize(t, call("c1"))
		if res.Decision != Allow || !res.FailOpen || res.ReservationID != "" || res.Tier != "" {
			t.Fatalf("call %d: %+v, want a fail-open ALLOW without a reservation", i, res)
		}
	}
	res := e.authorize(t, call("c1"))
	if res.Decision != Deny || res.Reason != ReasonFailOpenCapacity || !res.FailOpen || res.RetryAfterSeconds != 20 {
		t.Fatalf("fourth: %+v, want DENY fail_open_capacity, Retry-After 20 s", res)
	}
	if res := e.authorize(t, call("c2")); res.Decision != Allow {
		t.Fatalf("another customer: %+v, want its own capacity", res)
	}
	e.clock.Advance(20*time.Second - time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Deny || res.RetryAfterSeconds != 1 {
		t.Fatalf("1 ms early: %+v, want DENY with 1 s", res)
	}
	e.clock.Advance(time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Allow || !res.FailOpen {
		t.Fatalf("on time: %+v, want a fail-open ALLOW", res)
	}

	// The store is back: decisions are its own again, with reservations.
	e.fault.set(nil, false)
	res = e.authorize(t, call("c1"))
	if res.Decision != Allow || res.FailOpen || res.ReservationID == "" || res.Tier != "free" {
		t.Fatalf("recovered: %+v", res)
	}

	m := e.svc.metrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"fail-open allowed", value(m.failOpenAllowed), 5},
		{"fail-open denied", value(m.failOpenDenied), 2},
		{"ALLOW fail_open", value(m.allowFailOpen), 5},
		{"DENY fail_open_capacity", value(m.denyFailOpen), 2},
		{"ALLOW", value(m.allow), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	observed := uint64(0)
	for _, f := range families {
		if f.GetName() == "levy_authorize_duration_seconds" {
			observed = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if observed != 8 {
		t.Errorf("latency observations = %d, want 8", observed)
	}
}

func TestFailOpenRetryAfterIsTheGCRAWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{SafeRequestsPerMinute: 7})
	e.plans.put(t, "c1", "payg", 1, "")
	e.fault.set(counter.ErrUnavailable, false)
	for range 7 {
		e.authorize(t, call("c1"))
	}
	// 7 a minute: one every 8571 3/7 ms, so 8572 ms: 9 s rounded up.
	if res := e.authorize(t, call("c1")); res.RetryAfterSeconds != 9 {
		t.Fatalf("%+v, want Retry-After 9 s", res)
	}
	e.clock.Advance(8571 * time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Deny || res.RetryAfterSeconds != 1 {
		t.Fatalf("at 8571 ms: %+v, want DENY", res)
	}
	e.clock.Advance(time.Millisecond)
	if res := e.authorize(t, call("c1")); res.Decision != Allow {
		t.Fatalf("at 8572 ms: %+v, want ALLOW", res)
	}
}

func TestFailOpenCauses(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name  string
		err   error
		block bool
	}{
		{"unavailable", fmt.Errorf("redis: %w", counter.ErrUnavailable), false},
		{"refused connection", fmt.Errorf("dial: %w", refused), false},
		{"network timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{"too slow", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, loadCatalog(t, ladderCatalog), Options{Timeout: 2 * time.Millisecond})
			e.plans.put(t, "c1", "payg", 1, "")
			e.fault.set(tc.err, tc.block)
			res := e.authorize(t, call("c1"))
			if res.Decision != Allow || !res.FailOpen {
				t.Fatalf("%+v, want a fail-open ALLOW", res)
			}
		})
	}
}

func TestNotAnOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")

	// The caller gave up: that is its error, not a decision.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.fault.set(nil, true)
	if res, err := e.svc.Authorize(ctx, call("c1")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %+v, %v; want context.Canceled", res, err)
	}
	// A store that rejects the call is a bug to surface, not an outage to paper over.
	e.fault.set(fmt.Errorf("%w: bad", counter.ErrInvalid), false)
	if _, err := e.svc.Authorize(context.Background(), call("c1")); !errors.Is(err, counter.ErrInvalid) {
		t.Errorf("err = %v, want counter.ErrInvalid", err)
	}
	if value(e.svc.metrics.failOpenAllowed) != 0 {
		t.Error("counted as fail-open")
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// gated holds every Authorize until open is closed, and records the context it was given.
type gated struct {
	counter.Authorizer
	open     chan struct{}
	deadline chan time.Time
	done     chan error // the context's error when the call went on, then the call's error
	calls    atomic.Int64
}

func (g *gated) Authorize(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	g.calls.Add(1)
	dl, _ := ctx.Deadline()
	g.deadline <- dl
	<-g.open
	cerr := ctx.Err()
	r, err := g.Authorizer.Authorize(ctx, p)
	g.done <- errors.Join(cerr, err)
	return r, err
}

// A store slower than Options.Timeout fails the decision open, but the call itself runs under
// CallTimeout, not the short budget, and completes in the background (so a Redis connection is
// never abandoned mid-reply); its reservation ends as an unreported one does.
func TestSlowCallFinishesInTheBackground(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")
	g := &gated{Authorizer: e.store, open: make(chan struct{}), deadline: make(chan time.Time, 1), done: make(chan error, 1)}
	svc := New(g, e.plans, Options{Timeout: time.Millisecond, Now: e.clock.Now})
	before := time.Now()
	res, err := svc.Authorize(context.Background(), call("c1"))
	if err != nil || res.Decision != Allow || !res.FailOpen || res.ReservationID != "" {
		t.Fatalf("%+v, %v; want a fail-open ALLOW", res, err)
	}
	if dl := <-g.deadline; dl.Sub(before) < CallTimeout {
		t.Errorf("the store's deadline is %v after the call began, want at least CallTimeout (%v)", dl.Sub(before), CallTimeout)
	}
	close(g.open)
	if err := <-g.done; err != nil {
		t.Fatalf("the background call: %v, want it to complete", err)
	}
	if n, err := e.store.OpenReservations(context.Background(), "c1"); err != nil || n != 1 {
		t.Fatalf("open reservations %d, %v; want the background call's one", n, err)
	}
}

// With MaxInFlight store calls outstanding (slow ones still finishing included), a decision
// that gets no slot within its Timeout fails open without asking the store.
func TestMaxInFlightFailsOpenWithoutACall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loadCatalog(t, ladderCatalog), Options{})
	e.plans.put(t, "c1", "payg", 1, "")
	g := &gated{Authorizer: e.store, open: make(chan struct{}), deadline: make(chan time.Time, 2), done: make(chan error, 2)}
	svc := New(g, e.plans, Options{Timeout: time.Millisecond, MaxInFlight: 1, Now: e.clock.Now})
	for i := range 2 {
		res, err := svc.Authorize(context.Background(), call("c1"))
		if err != nil || res.Decision != Allow || !res.FailOpen {
			t.Fatalf("call %d: %+v, %v; want a fail-open ALLOW", i, res, err)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("the store was called %d times, want 1: the second decision should not wait on it", n)
	}
	close(g.open)
	if err := <-g.done; err != nil {
		t.Fatal(err)
	}
}
