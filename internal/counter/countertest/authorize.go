package countertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
)

// AuthHarness is what a driver's test gives the authorize suite: a store, and raw access to the
// authorize state a store keeps, so the shared vectors of package limit can start from any
// state, and so a test can see that a denial changed nothing at all.
type AuthHarness struct {
	// Open returns a new, empty store, closed when the test ends.
	Open func(t *testing.T) counter.Store
	// SetState overwrites a customer's raw authorize counters: RPM, TPM, ReservedTokens,
	// ReservedNanos, InFlight, BreakerUntil and, when taskID is set, TaskBreakerUntil of that
	// task (0 removes it). The other fields of st come from the period counters and the wallet
	// and are ignored.
	SetState func(t *testing.T, s counter.Store, customerID, taskID string, st limit.State)
	// State reads back those fields, raw.
	State func(t *testing.T, s counter.Store, customerID, taskID string) limit.State
	// Dump renders everything the store holds for a customer (every key and its value, type
	// and expiry on Redis); two dumps are equal iff nothing changed.
	Dump func(t *testing.T, s counter.Store, customerID string) string
}

// ExerciseAuthorize runs the authorize suite. Subtests run in parallel, each on its own store.
func ExerciseAuthorize(t *testing.T, h AuthHarness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h AuthHarness, s counter.Store)
	}{
		{"RequestsPerMinuteUnderConcurrency", testRPMUnderConcurrency},
		{"WalletUnderConcurrencyThenSettle", testWalletUnderConcurrency},
		{"DenyChangesNothing", testDenyChangesNothing},
		{"ReservationCyclesLeaveNothing", testReservationCycles},
		{"RetryAfterIsExact", testRetryAfterExact},
		{"SharedVectors", testSharedVectors},
		{"TierSwitch", testTierSwitch},
		{"Breakers", testBreakers},
		{"SettleOnApply", testSettleOnApply},
		{"ReleaseAndExpiry", testReleaseAndExpiry},
		{"LimitsReadsWithoutWriting", testLimitsReadOnly},
		{"WalletLimitedNeedsAGrant", testWalletLimitedNeedsGrant},
		{"ExactSums", testExactSums},
		{"RebuildKeepsAuthorizeState", testRebuildKeepsAuthState},
		{"InvalidParams", testAuthorizeInvalid},
		{"StoreClock", testStoreClock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h, h.Open(t))
		})
	}
}

const minute = 60_000 // ms

// clock0 is a test's base instant: the real time (periods p1 and p2 surround it, and Redis
// expires task breakers by its own clock), to the millisecond.
func clock0() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func ms(base time.Time, d int64) time.Time { return base.Add(time.Duration(d) * time.Millisecond) }

func params(customerID string, now time.Time, lim limit.Limits) counter.AuthorizeParams {
	return counter.AuthorizeParams{CustomerID: customerID, Now: now, Period: p1, TokenMeters: []string{"tok"},
		Limits: counter.TierLimits{"": lim}, TTL: time.Hour}
}

func authorize(t *testing.T, s counter.Store, p counter.AuthorizeParams) counter.AuthorizeResult {
	t.Helper()
	r, err := s.Authorize(context.Background(), p)
	must(t, err, "authorize "+p.ReservationID)
	return r
}

func wantAllowed(t *testing.T, r counter.AuthorizeResult, id string) {
	t.Helper()
	if !r.Allowed || r.ReservationID != id || r.Reason != limit.DimNone {
		t.Fatalf("authorize %s: got %+v, want ALLOW", id, r)
	}
}

func wantDenied(t *testing.T, r counter.AuthorizeResult, reason limit.Dimension, retryAfter int64) {
	t.Helper()
	if r.Allowed || r.Reason != reason || r.RetryAfter != retryAfter || r.ReservationID != "" {
		t.Fatalf("got allowed=%t reason=%s retryAfter=%d reservation=%q, want DENY %s after %d ms",
			r.Allowed, r.Reason, r.RetryAfter, r.ReservationID, reason, retryAfter)
	}
}

func open(t *testing.T, s counter.Store, id string) int64 {
	t.Helper()
	n, err := s.OpenReservations(context.Background(), id)
	must(t, err, "open reservations of "+id)
	return n
}

// wantHeld checks what open reservations hold: reserved tokens and nanos and in flight.
func wantHeld(t *testing.T, h AuthHarness, s counter.Store, id string, tokens, nanos, inFlight int64) {
	t.Helper()
	st := h.State(t, s, id, "")
	if st.ReservedTokens != tokens || st.ReservedNanos != nanos || st.InFlight != inFlight {
		t.Fatalf("customer %s holds %d tokens, %d nanos, %d in flight; want %d, %d, %d", id,
			st.ReservedTokens, st.ReservedNanos, st.InFlight, tokens, nanos, inFlight)
	}
}

// concurrently runs fn(i) for i in [0, n) on n goroutines released at once, and fails the test
// with the first error any returned.
func concurrently(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			if err := fn(i); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// 100 requests per minute and 1,000 concurrent calls at one instant: exactly 100 are allowed,
// every other one is denied with the exact wait, and the next unit comes back after 600 ms.
func testRPMUnderConcurrency(t *testing.T, h AuthHarness, s counter.Store) {
	now := clock0()
	p := params("c1", now, limit.Limits{Window: minute, RequestsPerWindow: 100})
	p.Estimate = limit.Usage{Tokens: 10, Nanos: 7}
	var allowed atomic.Int64
	concurrently(t, 1000, func(i int) error {
		q := p
		q.ReservationID = fmt.Sprintf("r%d", i)
		r, err := s.Authorize(context.Background(), q)
		switch {
		case err != nil:
			return err
		case r.Allowed:
			allowed.Add(1)
			if r.ReservationID != q.ReservationID {
				return fmt.Errorf("allowed %s, reservation %q", q.ReservationID, r.ReservationID)
			}
		case r.Reason != limit.DimRPM || r.RetryAfter != 600 || r.Never || r.Failed != 1<<limit.DimRPM:
			return fmt.Errorf("denied %s: %+v, want requests_per_minute after 600 ms", q.ReservationID, r.Decision)
		}
		return nil
	})
	if got := allowed.Load(); got != 100 {
		t.Fatalf("allowed %d of 1000, want exactly 100", got)
	}
	if n := open(t, s, "c1"); n != 100 {
		t.Fatalf("open reservations %d, want 100", n)
	}
	wantHeld(t, h, s, "c1", 1000, 700, 100)
	p.ReservationID, p.Now = "late", ms(now, 599)
	wantDenied(t, authorize(t, s, p), limit.DimRPM, 1)
	p.Now = ms(now, 600)
	wantAllowed(t, authorize(t, s, p), "late")
	p.ReservationID = "later"
	wantDenied(t, authorize(t, s, p), limit.DimRPM, 600)
}

// A $100 wallet (one grant) and $3 estimates from 64 concurrent clients: exactly 33 admitted,
// 31 denied for the wallet. Settling each admitted one with its actual $2.50 leaves the
// balance and the spend exact and nothing held.
func testWalletUnderConcurrency(t *testing.T, h AuthHarness, s counter.Store) {
	const dollar = 1_000_000_000
	now := clock0()
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "paid", Nanos: 100 * dollar})
	p := params("c1", now, limit.Limits{WalletLimited: true})
	p.Estimate = limit.Usage{Tokens: 2000, Nanos: 3 * dollar}
	var mu sync.Mutex
	var admitted []string
	concurrently(t, 64, func(i int) error {
		q := p
		q.ReservationID, q.CorrelationID = fmt.Sprintf("r%d", i), fmt.Sprintf("req-%d", i)
		r, err := s.Authorize(context.Background(), q)
		switch {
		case err != nil:
			return err
		case r.Allowed:
			mu.Lock()
			admitted = append(admitted, q.CorrelationID)
			mu.Unlock()
		case r.Reason != limit.DimWallet || r.RetryAfter != 0:
			return fmt.Errorf("denied %s: %+v, want wallet_balance", q.ReservationID, r.Decision)
		}
		return nil
	})
	if len(admitted) != 33 {
		t.Fatalf("admitted %d of 64, want exactly 33", len(admitted))
	}
	wantHeld(t, h, s, "c1", 33*2000, 99*dollar, 33)

	// The billing applier settles each one, in Seq order, with its actual cost.
	const actual = 2*dollar + dollar/2
	for i, corr := range admitted {
		a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: int64(i + 1), Period: p1, SpendNanos: actual,
			Events: 1, Usage: map[string]int64{"tok": 1800}, Wallet: map[string]int64{"paid": actual},
			CorrelationID: corr, Tokens: 1800, Now: now})
		if !a.Applied || !a.Settled {
			t.Fatalf("apply %d (%s): %+v, want applied and settled", i+1, corr, a)
		}
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
	if n := open(t, s, "c1"); n != 0 {
		t.Fatalf("open reservations after settlement: %d", n)
	}
	sn := snap(t, s, "c1", p1)
	wantWallet(t, sn, now, 100*dollar-33*actual, true)
	if sn.Period.SpendNanos != 33*actual || sn.Period.Usage["tok"] != 33*1800 {
		t.Fatalf("period after settlement: %+v", sn.Period)
	}
	ls, err := s.Limits(context.Background(), p)
	must(t, err, "limits")
	if q := ls.Quotas[limit.DimWallet]; q != (limit.Quota{Active: true, Limit: 17*dollar + dollar/2, Remaining: 17*dollar + dollar/2}) {
		t.Fatalf("wallet quota after settlement: %+v", q)
	}
	// $17.50 left admits exactly five more $3 requests.
	more := 0
	for i := range 10 {
		p.ReservationID = fmt.Sprintf("more%d", i)
		if authorize(t, s, p).Allowed {
			more++
		}
	}
	if more != 5 {
		t.Fatalf("after settlement %d more admitted, want 5", more)
	}
}

// A DENY changes nothing at all: the customer's whole state (every key on Redis) is the same
// before and after, whatever the reason. The expiry sweep is the one write a denied call may
// make; with nothing expired it makes none.
func testDenyChangesNothing(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "paid", Nanos: 50_000_000, ExpiresAt: p1.End})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "promo", Nanos: 1_000_000})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 4_000_000, Events: 1,
		Usage: map[string]int64{"tok": 5000, "other": 3}, Wallet: map[string]int64{"paid": 4_000_000}, Tier: "gold"})
	lim := limit.Limits{Window: minute, RequestsPerWindow: 2, TokensPerWindow: 10_000, MonthlyTokens: 20_000,
		MonthlySpend: 100_000_000, MaxConcurrent: 3, WalletLimited: true}
	p := params("c1", now, lim)
	p.Limits = counter.TierLimits{"gold": lim}
	p.Estimate = limit.Usage{Tokens: 1000, Nanos: 1_000_000}
	p.TaskID, p.CorrelationID = "run-1", "corr-a"
	for _, id := range []string{"a", "b"} {
		p.ReservationID = id
		wantAllowed(t, authorize(t, s, p), id)
		p.CorrelationID = "corr-b"
	}
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerTask, "run-bad", now.Add(time.Hour)), "trip")

	denials := []struct {
		name   string
		change func(q *counter.AuthorizeParams)
		reason limit.Dimension
	}{
		{"requests per minute", func(q *counter.AuthorizeParams) {}, limit.DimRPM},
		{"tokens per minute never fits", func(q *counter.AuthorizeParams) { q.Estimate.Tokens = 10_001 }, limit.DimTPM},
		{"monthly tokens", func(q *counter.AuthorizeParams) { q.Estimate.Tokens = 13_001; q.Limits["gold"] = withTPM(lim, 0) }, limit.DimMonthlyTokens},
		{"wallet", func(q *counter.AuthorizeParams) { q.Estimate.Nanos = 45_000_001 }, limit.DimWallet},
		{"monthly spend", func(q *counter.AuthorizeParams) { q.Estimate.Nanos = 96_000_001 }, limit.DimMonthlySpend},
		{"task breaker", func(q *counter.AuthorizeParams) { q.TaskID = "run-bad" }, limit.DimTaskBreaker},
	}
	for _, dn := range denials {
		before := h.Dump(t, s, "c1")
		q := p
		q.Limits = counter.TierLimits{"gold": lim}
		q.ReservationID = "denied-" + dn.name
		dn.change(&q)
		r := authorize(t, s, q)
		if r.Allowed || r.Reason != dn.reason || r.ExpiredReleased != 0 {
			t.Fatalf("%s: got %+v, want DENY %s", dn.name, r.Decision, dn.reason)
		}
		if after := h.Dump(t, s, "c1"); after != before {
			t.Fatalf("%s: a denial changed the store:\nbefore:\n%s\nafter:\n%s", dn.name, before, after)
		}
	}
	// The customer breaker, concurrency (an unknown customer's denial creates nothing), a
	// reservation ID already open, Limits, and a Release of nothing: no change either.
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", now.Add(time.Hour)), "trip")
	before := h.Dump(t, s, "c1")
	p.ReservationID = "denied-breaker"
	wantDenied(t, authorize(t, s, p), limit.DimBreaker, time.Hour.Milliseconds())
	p.ReservationID = "a"
	if _, err := s.Authorize(ctx, p); !errors.Is(err, counter.ErrInvalid) || !strings.Contains(err.Error(), "reservationId") {
		t.Fatalf("authorize with an open reservation ID: got %v, want ErrInvalid naming reservationId", err)
	}
	if _, err := s.Limits(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Release(ctx, "c1", "nothing"); ok || err != nil {
		t.Fatalf("release of nothing: %t, %v", ok, err)
	}
	if after := h.Dump(t, s, "c1"); after != before {
		t.Fatalf("a denial changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	nobody := h.Dump(t, s, "nobody")
	q := params("nobody", now, limit.Limits{MaxConcurrent: 1, WalletLimited: true})
	q.ReservationID, q.Estimate = "x", limit.Usage{Tokens: 1, Nanos: 1}
	q.Limits[""] = limit.Limits{MonthlyTokens: 1}
	q.Estimate.Tokens = 2
	if r := authorize(t, s, q); r.Allowed || r.Reason != limit.DimMonthlyTokens || !r.Never {
		t.Fatalf("unknown customer, estimate above the cap: %+v", r.Decision)
	}
	if after := h.Dump(t, s, "nobody"); after != nobody {
		t.Fatalf("a denial of an unknown customer created state:\n%s", after)
	}

	// The sweep is the exception: a denied call still releases what has expired.
	must2(s.ResetBreaker(ctx, "c1", counter.BreakerCustomer, ""))(t, "reset")
	p.ReservationID, p.Now = "late", now.Add(2*time.Hour) // a and b expired an hour ago
	p.Estimate.Nanos = 47_000_001                         // the whole balance and a nano
	r := authorize(t, s, p)
	if r.Allowed || r.Reason != limit.DimWallet || r.ExpiredReleased != 2 {
		t.Fatalf("denied after expiry: %+v, released %d; want wallet_balance and 2 released", r.Decision, r.ExpiredReleased)
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
	before = h.Dump(t, s, "c1")
	p.ReservationID = "later"
	if r := authorize(t, s, p); r.Allowed || r.ExpiredReleased != 0 {
		t.Fatalf("second denial: %+v", r)
	}
	if after := h.Dump(t, s, "c1"); after != before {
		t.Fatalf("a denial with nothing expired changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func withTPM(l limit.Limits, tpm int64) limit.Limits {
	l.TokensPerWindow = tpm
	return l
}

func must2[T any](_ T, err error) func(t *testing.T, what string) {
	return func(t *testing.T, what string) {
		t.Helper()
		must(t, err, what)
	}
}

// 10,000 reserve/settle/release/expire cycles with random cancellations on one customer from
// concurrent goroutines leave no open reservation and nothing held, and every admitted
// reservation ended exactly once.
func testReservationCycles(t *testing.T, h AuthHarness, s counter.Store) {
	const (
		workers = 8
		cycles  = 10_000
		ttl     = 25 // ms of the shared test clock
		// Few enough slots that some calls are denied for concurrency.
		maxConcurrent = 12
	)
	ctx := context.Background()
	base := clock0()
	var clockMs atomic.Int64 // the shared injected clock, in ms after base
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g", Nanos: 1 << 50})
	lim := limit.Limits{Window: minute, TokensPerWindow: 10_000_000_000, MaxConcurrent: maxConcurrent, WalletLimited: true,
		MonthlySpend: 1 << 52}
	var (
		applyMu sync.Mutex
		seq     int64
	)
	settle := func(corr string, tokens, nanos int64, at time.Time) (bool, error) {
		applyMu.Lock() // the billing applier applies one customer's events in Seq order
		defer applyMu.Unlock()
		seq++
		a, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c1", Seq: seq, Period: p1, SpendNanos: nanos, Events: 1,
			Usage: map[string]int64{"tok": tokens}, Wallet: map[string]int64{"g": nanos}, CorrelationID: corr,
			Tokens: tokens, Now: at})
		if err == nil && !a.Applied {
			err = fmt.Errorf("apply seq %d not applied", seq)
		}
		return a.Settled, err
	}
	var allowed, denied, settled, released, expired atomic.Int64
	concurrently(t, workers, func(w int) error {
		rng := rand.New(rand.NewPCG(20260301, uint64(w)))
		for i := range cycles / workers {
			now := ms(base, clockMs.Add(1))
			p := params("c1", now, lim)
			p.TTL = ttl * time.Millisecond
			p.ReservationID = fmt.Sprintf("w%d-%d", w, i)
			p.CorrelationID = "corr-" + p.ReservationID
			p.Estimate = limit.Usage{Tokens: 1 + rng.Int64N(2000), Nanos: 1 + rng.Int64N(1_000_000)}
			r, err := s.Authorize(ctx, p)
			if err != nil {
				return err
			}
			expired.Add(int64(r.ExpiredReleased))
			if !r.Allowed {
				if r.Reason != limit.DimConcurrency {
					return fmt.Errorf("cycle %s denied for %s", p.ReservationID, r.Reason)
				}
				denied.Add(1)
				continue
			}
			allowed.Add(1)
			actual := limit.Usage{Tokens: rng.Int64N(3000), Nanos: rng.Int64N(1_500_000)}
			switch k := rng.IntN(10); {
			case k < 4: // the usage event arrives
				ok, err := settle(p.CorrelationID, actual.Tokens, actual.Nanos, ms(base, clockMs.Load()))
				if err != nil {
					return err
				}
				if ok {
					settled.Add(1)
				}
			case k < 7: // cancelled
				ok, err := s.Release(ctx, "c1", p.ReservationID)
				if err != nil {
					return err
				}
				if ok {
					released.Add(1)
				}
				if again, err := s.Release(ctx, "c1", p.ReservationID); err != nil || again {
					return fmt.Errorf("second release of %s: %t, %v", p.ReservationID, again, err)
				}
			case k < 9: // abandoned: it expires
			default: // cancelled, and then the usage event arrives anyway: it settles nothing
				ok, err := s.Release(ctx, "c1", p.ReservationID)
				if err != nil {
					return err
				}
				if ok {
					released.Add(1)
				}
				if again, err := settle(p.CorrelationID, actual.Tokens, actual.Nanos, now); err != nil || again {
					return fmt.Errorf("settle after release of %s: %t, %v", p.ReservationID, again, err)
				}
			}
		}
		return nil
	})
	// Whatever is left expires; authorize calls an hour later sweep it.
	late := ms(base, clockMs.Load()+time.Hour.Milliseconds())
	for i := 0; open(t, s, "c1") > 0; i++ {
		if i > cycles {
			t.Fatalf("reservations never drain: %d open", open(t, s, "c1"))
		}
		p := params("c1", late, lim)
		p.ReservationID = fmt.Sprintf("drain-%d", i)
		r := authorize(t, s, p)
		expired.Add(int64(r.ExpiredReleased))
		if r.Allowed {
			if ok, err := s.Release(ctx, "c1", p.ReservationID); err != nil || !ok {
				t.Fatalf("release drain reservation: %t, %v", ok, err)
			}
		}
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
	if got := settled.Load() + released.Load() + expired.Load(); got != allowed.Load() {
		t.Fatalf("%d admitted but %d ended (%d settled, %d released, %d expired)", allowed.Load(), got,
			settled.Load(), released.Load(), expired.Load())
	}
	if allowed.Load()+denied.Load() != cycles || settled.Load() == 0 || released.Load() == 0 || expired.Load() == 0 {
		t.Fatalf("the mix did not happen: %d admitted, %d denied, %d settled, %d released, %d expired", allowed.Load(),
			denied.Load(), settled.Load(), released.Load(), expired.Load())
	}
	ls, err := s.Limits(ctx, params("c1", late, lim))
	must(t, err, "limits")
	if len(ls.Reservations) != 0 || ls.Quotas[limit.DimConcurrency].Remaining != maxConcurrent {
		t.Fatalf("limits after the cycles: %+v", ls)
	}
	t.Logf("%d admitted, %d denied, %d settled, %d released, %d expired", allowed.Load(), denied.Load(),
		settled.Load(), released.Load(), expired.Load())
}

// RetryAfter is the true wait: advancing the injected clock by RetryAfter admits the same call,
// by RetryAfter − 1 ms does not.
func testRetryAfterExact(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	check := func(t *testing.T, p counter.AuthorizeParams, reason limit.Dimension) {
		t.Helper()
		p.ReservationID = "probe"
		r := authorize(t, s, p)
		if r.Allowed || r.Reason != reason || r.RetryAfter <= 0 {
			t.Fatalf("want DENY %s with a wait, got %+v", reason, r.Decision)
		}
		wait := r.RetryAfter
		at := p.Now
		p.Now = ms(at, wait-1)
		if r := authorize(t, s, p); r.Allowed {
			t.Fatalf("allowed %d ms early (RetryAfter %d)", 1, wait)
		}
		p.Now = ms(at, wait)
		wantAllowed(t, authorize(t, s, p), "probe")
	}
	t.Run("requests, 7 per minute", func(t *testing.T) {
		p := params("rpm", now, limit.Limits{Window: minute, RequestsPerWindow: 7})
		for i := range 7 {
			p.ReservationID = fmt.Sprint(i)
			wantAllowed(t, authorize(t, s, p), p.ReservationID)
		}
		check(t, p, limit.DimRPM)
	})
	t.Run("tokens", func(t *testing.T) {
		p := params("tpm", now, limit.Limits{Window: minute, TokensPerWindow: 100_000})
		p.Estimate.Tokens = 70_001
		p.ReservationID = "big"
		wantAllowed(t, authorize(t, s, p), "big")
		p.Estimate.Tokens = 33_333
		check(t, p, limit.DimTPM)
	})
	t.Run("tokens and requests: the longer wait", func(t *testing.T) {
		p := params("both", now, limit.Limits{Window: minute, RequestsPerWindow: 3, TokensPerWindow: 9_000})
		p.Estimate.Tokens = 3_000
		for i := range 3 {
			p.ReservationID = fmt.Sprint(i)
			wantAllowed(t, authorize(t, s, p), p.ReservationID)
		}
		p.Estimate.Tokens = 4_000
		check(t, p, limit.DimTPM)
	})
	t.Run("breaker", func(t *testing.T) {
		until := now.Add(10*time.Minute + 500*time.Microsecond) // rounded up to the next ms
		must(t, s.TripBreaker(ctx, "brk", counter.BreakerCustomer, "", until), "trip")
		p := params("brk", now, limit.Limits{})
		p.ReservationID = "x"
		wantDenied(t, authorize(t, s, p), limit.DimBreaker, 10*60_000+1)
		check(t, p, limit.DimBreaker)
	})
	t.Run("a cap exhausted by settled usage waits for the period's end", func(t *testing.T) {
		apply(t, s, counter.ApplyParams{CustomerID: "cap", Seq: 1, Period: p1, Events: 1, Usage: map[string]int64{"tok": 1000}})
		p := params("cap", now, limit.Limits{MonthlyTokens: 1000})
		p.ReservationID = "x"
		wantDenied(t, authorize(t, s, p), limit.DimMonthlyTokens, p1.End.Sub(now).Milliseconds())
	})
}

// The shared vectors of package limit, reproduced through the store: each starts from its state
// (written raw through the harness, with usage, spend and balance from Apply and Grant) and
// must give limit's exact decision and leave limit's exact state.
func testSharedVectors(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	n := 0
	customer := func() string { n++; return fmt.Sprintf("v%d", n) }
	rowParams := func(id string, now time.Time, lim limit.Limits, est limit.Usage) counter.AuthorizeParams {
		p := params(id, now, lim)
		p.ReservationID, p.Estimate, p.TaskID = "r", est, "task"
		return p
	}
	// authFields keeps the fields the harness reads and writes.
	authFields := func(st limit.State) limit.State {
		return limit.State{RPM: st.RPM, TPM: st.TPM, ReservedTokens: st.ReservedTokens, ReservedNanos: st.ReservedNanos,
			InFlight: st.InFlight, BreakerUntil: st.BreakerUntil, TaskBreakerUntil: st.TaskBreakerUntil}
	}
	// setup gives a fresh customer the period usage, spend and balance of st.
	setup := func(t *testing.T, id string, st limit.State, ref counter.PeriodRef, wallet bool) {
		if wallet || st.Balance != 0 {
			grant(t, s, counter.GrantParams{CustomerID: id, GrantID: "g", Nanos: 1})
		}
		p := counter.ApplyParams{CustomerID: id, Seq: 1, Period: ref, SpendNanos: st.UsedNanos, Events: 1,
			Usage: map[string]int64{"tok": st.UsedTokens}}
		if burn := 1 - st.Balance; (wallet || st.Balance != 0) && burn != 0 {
			p.Wallet = map[string]int64{"g": burn}
		}
		apply(t, s, p)
	}

	t.Run("gcra", func(t *testing.T) {
		for _, v := range limit.GCRAVectors {
			t.Run(v.Name, func(t *testing.T) {
				if v.Limit == 0 {
					t.Skip("a limit of 0 is no limit in a decision")
				}
				id := customer()
				p := rowParams(id, time.UnixMilli(v.Now), limit.Limits{Window: v.Window, TokensPerWindow: v.Limit},
					limit.Usage{Tokens: v.Cost})
				if v.Window < 1 || v.Limit > limit.MaxWindowUnits/v.Window || v.Cost < 0 || v.Now < 0 || v.Now > limit.MaxTime {
					if _, err := s.Authorize(ctx, p); !errors.Is(err, counter.ErrInvalid) {
						t.Fatalf("outside the ranges: got %v, want ErrInvalid", err)
					}
					return
				}
				h.SetState(t, s, id, "", limit.State{TPM: v.TAT})
				r := authorize(t, s, p)
				q := r.Quotas[limit.DimTPM]
				if r.Allowed != v.Want.Allowed || r.Never != v.Want.Never || r.RetryAfter != v.Want.RetryAfter ||
					q.Remaining != v.Want.Remaining || q.ResetAfter != v.Want.ResetAfter {
					t.Fatalf("got %+v, want %+v", r.Decision, v.Want)
				}
				if got := h.State(t, s, id, "").TPM; got != v.Want.TAT {
					t.Fatalf("TAT %+v, want %+v", got, v.Want.TAT)
				}
			})
		}
	})

	t.Run("adjust", func(t *testing.T) {
		for _, v := range limit.AdjustVectors {
			t.Run(v.Name, func(t *testing.T) {
				est, actual := max(-v.Delta, 0), max(v.Delta, 0)
				if v.Window < 1 || v.Delta == math.MinInt64 || est > v.Limit {
					t.Skip("no reservation can carry this delta")
				}
				id := customer()
				p := rowParams(id, time.UnixMilli(v.Now), limit.Limits{Window: v.Window, TokensPerWindow: v.Limit},
					limit.Usage{Tokens: est})
				p.CorrelationID = "corr"
				wantAllowed(t, authorize(t, s, p), "r")
				st := h.State(t, s, id, "")
				st.TPM = v.TAT
				h.SetState(t, s, id, "", st)
				a := apply(t, s, counter.ApplyParams{CustomerID: id, Seq: 1, Period: p1, Events: 1,
					CorrelationID: "corr", Tokens: actual, Now: time.UnixMilli(v.Now)})
				if !a.Settled {
					t.Fatal("not settled")
				}
				if got := h.State(t, s, id, "").TPM; got != v.Want {
					t.Fatalf("TAT %+v, want %+v", got, v.Want)
				}
			})
		}
	})

	t.Run("cap", func(t *testing.T) {
		for _, v := range limit.CapVectors {
			for _, dim := range []limit.Dimension{limit.DimMonthlyTokens, limit.DimMonthlySpend} {
				t.Run(dim.String()+"/"+v.Name, func(t *testing.T) {
					if v.Limit < 1 || v.Cost < 0 || v.Cost > limit.MaxValue {
						t.Skip("outside the ranges of a decision (a limit of 0 is no limit)")
					}
					id := customer()
					var st limit.State
					lim := limit.Limits{MonthlyTokens: v.Limit}
					est := limit.Usage{Tokens: v.Cost}
					st.UsedTokens, st.ReservedTokens = v.Used, v.Reserved
					if dim == limit.DimMonthlySpend {
						lim = limit.Limits{MonthlySpend: v.Limit}
						est = limit.Usage{Nanos: v.Cost}
						st = limit.State{UsedNanos: v.Used, ReservedNanos: v.Reserved}
					}
					setup(t, id, st, p1, false)
					h.SetState(t, s, id, "", st)
					r := authorize(t, s, rowParams(id, clock0(), lim, est))
					if r.Allowed != v.WantAllowed || r.Quotas[dim].Remaining != v.WantRemaining {
						t.Fatalf("got allowed %t, remaining %d; want %t, %d", r.Allowed, r.Quotas[dim].Remaining,
							v.WantAllowed, v.WantRemaining)
					}
				})
			}
		}
	})

	t.Run("wallet", func(t *testing.T) {
		for _, v := range limit.WalletVectors {
			t.Run(v.Name, func(t *testing.T) {
				if v.Estimate > limit.MaxValue || v.Balance > limit.MaxValue {
					t.Skip("outside the ranges of a decision")
				}
				id := customer()
				st := limit.State{Balance: v.Balance, ReservedNanos: v.Reserved}
				setup(t, id, st, p1, true)
				h.SetState(t, s, id, "", st)
				r := authorize(t, s, rowParams(id, clock0(), limit.Limits{WalletLimited: true}, limit.Usage{Nanos: v.Estimate}))
				if r.Allowed != v.Want {
					t.Fatalf("got %+v, want allowed %t", r.Decision, v.Want)
				}
			})
		}
	})

	t.Run("concurrency", func(t *testing.T) {
		for _, v := range limit.ConcurrencyVectors {
			t.Run(v.Name, func(t *testing.T) {
				if v.Limit < 1 {
					t.Skip("a limit of 0 is no limit in a decision")
				}
				id := customer()
				h.SetState(t, s, id, "", limit.State{InFlight: v.InFlight})
				if r := authorize(t, s, rowParams(id, clock0(), limit.Limits{MaxConcurrent: v.Limit}, limit.Usage{})); r.Allowed != v.Want {
					t.Fatalf("got %+v, want allowed %t", r.Decision, v.Want)
				}
			})
		}
	})

	// The Decide, Settle and Release vectors share one instant in 2023; they are moved to now
	// (every instant by the same shift) so their period's counters are inside retention.
	now := clock0().UnixMilli()
	shift := func(x int64) int64 {
		if x == 0 {
			return 0
		}
		return x + now - 1_700_000_000_000
	}
	shiftState := func(st limit.State) limit.State {
		st.RPM.At, st.TPM.At = shift(st.RPM.At), shift(st.TPM.At)
		st.BreakerUntil, st.TaskBreakerUntil = shift(st.BreakerUntil), shift(st.TaskBreakerUntil)
		return st
	}
	periodEnding := func(end int64) counter.PeriodRef {
		if end == 0 {
			return p1
		}
		e := time.UnixMilli(shift(end)).UTC()
		return counter.PeriodRef{PlanVersionID: 9, Start: e.Add(-30 * 24 * time.Hour), End: e}
	}

	t.Run("decide", func(t *testing.T) {
		for _, v := range limit.DecideVectors {
			t.Run(v.Name, func(t *testing.T) {
				id := customer()
				ref := periodEnding(v.Request.PeriodEnd)
				p := rowParams(id, time.UnixMilli(shift(v.Now)), v.Request.Limits, v.Request.Estimate)
				p.Period = ref
				if v.Want.Reason == limit.DimInvalid {
					if v.Now < 0 {
						p.Now = time.UnixMilli(v.Now)
					}
					if _, err := s.Authorize(ctx, p); !errors.Is(err, counter.ErrInvalid) {
						t.Fatalf("got %v, want ErrInvalid", err)
					}
					return
				}
				st := shiftState(v.State)
				setup(t, id, st, ref, v.Request.Limits.WalletLimited)
				h.SetState(t, s, id, "task", st)
				r := authorize(t, s, p)
				got, want := r.Decision, v.Want
				got.State, want.State = limit.State{}, limit.State{}
				if diff := diffDecision(got, want); diff != "" {
					t.Fatalf("decision differs:%s", diff)
				}
				if gotSt, wantSt := h.State(t, s, id, "task"), authFields(shiftState(v.Want.State)); gotSt != wantSt {
					t.Fatalf("state after the decision\n got %+v\nwant %+v", gotSt, wantSt)
				}
				if r.Allowed {
					if n := open(t, s, id); n != 1 {
						t.Fatalf("open reservations %d, want 1", n)
					}
				}
			})
		}
	})

	t.Run("settle", func(t *testing.T) {
		for _, v := range limit.SettleVectors {
			t.Run(v.Name, func(t *testing.T) {
				id := customer()
				st := shiftState(v.State)
				setup(t, id, st, p1, v.Limits.WalletLimited)
				row := limit.Limits{Window: v.Limits.Window, TokensPerWindow: v.Limits.TokensPerWindow}
				p := rowParams(id, time.UnixMilli(shift(v.Now)), row, v.Reserved)
				p.CorrelationID = "corr"
				wantAllowed(t, authorize(t, s, p), "r")
				h.SetState(t, s, id, "", st)
				ap := counter.ApplyParams{CustomerID: id, Seq: 2, Period: p1, SpendNanos: v.Actual.Nanos, Events: 1,
					Usage: map[string]int64{"tok": v.Actual.Tokens}, CorrelationID: "corr", Tokens: v.Actual.Tokens,
					Now: time.UnixMilli(shift(v.Now))}
				if v.Limits.WalletLimited && v.Actual.Nanos != 0 {
					ap.Wallet = map[string]int64{"g": v.Actual.Nanos}
				}
				if a := apply(t, s, ap); !a.Settled {
					t.Fatalf("not settled: %+v", a)
				}
				want := shiftState(v.Want)
				if got := h.State(t, s, id, ""); got != authFields(want) {
					t.Fatalf("state after settlement\n got %+v\nwant %+v", got, authFields(want))
				}
				sn := snap(t, s, id, p1)
				bal, _ := sn.WalletNanos(time.UnixMilli(now))
				used := min(max(sn.Period.Usage["tok"], 0), limit.MaxValue)
				spend := min(max(sn.Period.SpendNanos, -limit.MaxValue), limit.MaxValue)
				bal = min(max(bal, -limit.MaxValue), limit.MaxValue)
				if used != want.UsedTokens || spend != want.UsedNanos || bal != want.Balance {
					t.Fatalf("used %d tokens, %d nanos, balance %d; want %d, %d, %d", used, spend, bal,
						want.UsedTokens, want.UsedNanos, want.Balance)
				}
				if n := open(t, s, id); n != 0 {
					t.Fatalf("open reservations %d, want 0", n)
				}
			})
		}
	})

	t.Run("release", func(t *testing.T) {
		for _, v := range limit.ReleaseVectors {
			t.Run(v.Name, func(t *testing.T) {
				id := customer()
				// A negative reservation (drift) is released as limit.Release clamps it: as 0.
				est := limit.Usage{Tokens: max(v.Reserved.Tokens, 0), Nanos: max(v.Reserved.Nanos, 0)}
				wantAllowed(t, authorize(t, s, rowParams(id, clock0(), limit.Limits{}, est)), "r")
				h.SetState(t, s, id, "", shiftState(v.State))
				if ok, err := s.Release(ctx, id, "r"); err != nil || !ok {
					t.Fatalf("release: %t, %v", ok, err)
				}
				if got, want := h.State(t, s, id, ""), authFields(shiftState(v.Want)); got != want {
					t.Fatalf("state after release\n got %+v\nwant %+v", got, want)
				}
			})
		}
	})
}

// diffDecision describes how two decisions differ, field by field, or returns "".
func diffDecision(got, want limit.Decision) string {
	var s string
	add := func(field string, g, w any) { s += fmt.Sprintf("\n  %s: got %+v, want %+v", field, g, w) }
	if got.Allowed != want.Allowed {
		add("Allowed", got.Allowed, want.Allowed)
	}
	if got.Reason != want.Reason {
		add("Reason", got.Reason, want.Reason)
	}
	if got.Never != want.Never {
		add("Never", got.Never, want.Never)
	}
	if got.Failed != want.Failed {
		add("Failed", fmt.Sprintf("%b", got.Failed), fmt.Sprintf("%b", want.Failed))
	}
	if got.RetryAfter != want.RetryAfter {
		add("RetryAfter", got.RetryAfter, want.RetryAfter)
	}
	if got.Reserved != want.Reserved {
		add("Reserved", got.Reserved, want.Reserved)
	}
	if got.State != want.State {
		add("State", got.State, want.State)
	}
	for d := range limit.NumDimensions {
		if got.Quotas[d] != want.Quotas[d] {
			add("Quotas["+d.String()+"]", got.Quotas[d], want.Quotas[d])
		}
	}
	return s
}

// The limits row follows the customer's tier, as Apply and SetTier set it; a tier without a
// row falls back to the row "".
func testTierSwitch(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	p := params("c1", now, limit.Limits{})
	p.Limits = counter.TierLimits{
		"":     {MaxConcurrent: 1},
		"gold": {MaxConcurrent: 3},
	}
	try := func(wantTier string, wantLimit int64, wantAllowed int) {
		t.Helper()
		allowed := 0
		for i := range 4 {
			p.ReservationID = fmt.Sprintf("%s-%d", wantTier, i)
			r := authorize(t, s, p)
			if r.Tier != wantTier || r.Quotas[limit.DimConcurrency].Limit != wantLimit {
				t.Fatalf("tier %q limit %d, want %q and %d", r.Tier, r.Quotas[limit.DimConcurrency].Limit, wantTier, wantLimit)
			}
			if r.Allowed {
				allowed++ // the slot stays held
			}
		}
		if allowed != wantAllowed {
			t.Fatalf("tier %q: %d allowed, want %d", wantTier, allowed, wantAllowed)
		}
		// Free every slot for the next tier.
		ls, err := s.Limits(ctx, p)
		must(t, err, "limits")
		for _, r := range ls.Reservations {
			must2(s.Release(ctx, "c1", r.ID))(t, "release")
		}
	}
	try("", 1, 1)
	must(t, s.SetTier(ctx, "c1", "gold"), "set tier")
	try("gold", 3, 3)
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Events: 1, Tier: "silver"})
	try("silver", 1, 1) // no row for silver: the row ""
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, Events: 1, Tier: "gold"})
	try("gold", 3, 3)
	must(t, s.SetTier(ctx, "c1", ""), "clear tier")
	try("", 1, 1)
	// A ladder without a row "" and a customer on no tier: nothing is limited.
	p.Limits = counter.TierLimits{"gold": {MaxConcurrent: 1}}
	p.ReservationID = "free"
	if r := authorize(t, s, p); !r.Allowed || r.Quotas[limit.DimConcurrency].Active {
		t.Fatalf("no row applies: %+v", r.Decision)
	}
}

// Breakers: a trip denies with margin_guard (customer) or task_margin_guard (that task only)
// until the breaker's instant; a reset allows again.
func testBreakers(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	p := params("c1", now, limit.Limits{})
	p.ReservationID = "a"
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", now.Add(10*time.Minute)), "trip")
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", now.Add(time.Minute)), "trip shorter")
	wantDenied(t, authorize(t, s, p), limit.DimBreaker, 600_000) // a trip never shortens an open breaker
	p.Now = now.Add(10 * time.Minute)
	wantAllowed(t, authorize(t, s, p), "a") // closed at its instant
	p.Now = now
	p.ReservationID = "b"
	wantDenied(t, authorize(t, s, p), limit.DimBreaker, 600_000)
	if ok, err := s.ResetBreaker(ctx, "c1", counter.BreakerCustomer, ""); err != nil || !ok {
		t.Fatalf("reset: %t, %v; want true", ok, err)
	}
	if ok, err := s.ResetBreaker(ctx, "c1", counter.BreakerCustomer, ""); err != nil || ok {
		t.Fatalf("second reset: %t, %v; want false", ok, err)
	}
	wantAllowed(t, authorize(t, s, p), "b")

	must(t, s.TripBreaker(ctx, "c1", counter.BreakerTask, "run-1", now.Add(5*time.Minute)), "trip task")
	p.ReservationID, p.TaskID = "c", "run-1"
	wantDenied(t, authorize(t, s, p), limit.DimTaskBreaker, 300_000)
	p.TaskID = "run-2"
	wantAllowed(t, authorize(t, s, p), "c")
	p.ReservationID, p.TaskID = "d", ""
	wantAllowed(t, authorize(t, s, p), "d")
	// Both open: the customer's breaker is the reason, the longer wait the wait.
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", now.Add(time.Minute)), "trip")
	p.ReservationID, p.TaskID = "e", "run-1"
	r := authorize(t, s, p)
	if r.Allowed || r.Reason != limit.DimBreaker || r.Failed != 1<<limit.DimBreaker|1<<limit.DimTaskBreaker || r.RetryAfter != 300_000 {
		t.Fatalf("both breakers open: %+v", r.Decision)
	}
	must2(s.ResetBreaker(ctx, "c1", counter.BreakerCustomer, ""))(t, "reset")
	p.Now = now.Add(5 * time.Minute)
	wantAllowed(t, authorize(t, s, p), "e") // the task breaker closed at its instant
	p.Now = now
	p.ReservationID = "f"
	wantDenied(t, authorize(t, s, p), limit.DimTaskBreaker, 300_000)
	if ok, err := s.ResetBreaker(ctx, "c1", counter.BreakerTask, "run-1"); err != nil || !ok {
		t.Fatalf("reset task: %t, %v; want true", ok, err)
	}
	if ok, err := s.ResetBreaker(ctx, "c1", counter.BreakerTask, "run-1"); err != nil || ok {
		t.Fatalf("second reset task: %t, %v; want false", ok, err)
	}
	wantAllowed(t, authorize(t, s, p), "f")
	// A breaker whose instant has passed is not open: resetting it reports false.
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerTask, "old", now.Add(-time.Minute)), "trip past")
	if ok, err := s.ResetBreaker(ctx, "c1", counter.BreakerTask, "old"); err != nil || ok {
		t.Fatalf("reset of a closed task breaker: %t, %v; want false", ok, err)
	}
	if ok, err := s.ResetBreaker(ctx, "nobody", counter.BreakerTask, "x"); err != nil || ok {
		t.Fatalf("reset for an unknown customer: %t, %v", ok, err)
	}

	for _, bad := range []struct{ scope, key, field string }{
		{"account", "", "scope"}, {counter.BreakerCustomer, "x", "key"}, {counter.BreakerTask, "", "key"},
	} {
		if err := s.TripBreaker(ctx, "c1", bad.scope, bad.key, now); !errors.Is(err, counter.ErrInvalid) || !strings.Contains(err.Error(), bad.field) {
			t.Fatalf("trip %q/%q: got %v, want ErrInvalid naming %s", bad.scope, bad.key, err, bad.field)
		}
		if _, err := s.ResetBreaker(ctx, "c1", bad.scope, bad.key); !errors.Is(err, counter.ErrInvalid) {
			t.Fatalf("reset %q/%q: got %v, want ErrInvalid", bad.scope, bad.key, err)
		}
	}
	if err := s.TripBreaker(ctx, "c1", counter.BreakerCustomer, "", time.Time{}); !errors.Is(err, counter.ErrInvalid) || !strings.Contains(err.Error(), "until") {
		t.Fatalf("trip without until: got %v", err)
	}
}

// Apply settles the reservation its CorrelationID names, in the same step as the event; a
// duplicate or failed Apply settles nothing.
func testSettleOnApply(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	lim := limit.Limits{Window: minute, TokensPerWindow: 1000, MaxConcurrent: 5}
	p := params("c1", now, lim)
	p.ReservationID, p.CorrelationID, p.Estimate = "r1", "k1", limit.Usage{Tokens: 100, Nanos: 40}
	wantAllowed(t, authorize(t, s, p), "r1")
	if got := h.State(t, s, "c1", "").TPM; got != (limit.TAT{At: now.UnixMilli() + 6000}) {
		t.Fatalf("TPM after 100 of 1000 tokens: %+v", got)
	}
	ev := counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 10, Events: 1}
	if a := apply(t, s, ev); a.Settled {
		t.Fatal("an event without a correlation ID settled something")
	}
	ev.CorrelationID, ev.Tokens, ev.Now = "k1", 300, ms(now, 1000)
	if a := apply(t, s, ev); a.Applied || a.Settled {
		t.Fatalf("duplicate apply: %+v, want neither applied nor settled", a)
	}
	ev.Seq, ev.SpendNanos = 2, math.MaxInt64
	if _, err := s.Apply(ctx, ev); !errors.Is(err, counter.ErrOverflow) {
		t.Fatalf("overflowing apply: %v", err)
	}
	if n := open(t, s, "c1"); n != 1 {
		t.Fatalf("after a duplicate and a failed apply: %d open, want 1", n)
	}
	wantHeld(t, h, s, "c1", 100, 40, 1)
	ev.SpendNanos = 10
	if a := apply(t, s, ev); !a.Applied || !a.Settled {
		t.Fatalf("settling apply: %+v", a)
	}
	// At +1000 the debt is 5000 ms; 200 tokens beyond the estimate add 12,000 ms.
	want := limit.GCRAAdjust(limit.TAT{At: now.UnixMilli() + 6000}, now.UnixMilli()+1000, minute, 1000, 200)
	if got := h.State(t, s, "c1", "").TPM; got != want || want != (limit.TAT{At: now.UnixMilli() + 18_000}) {
		t.Fatalf("TPM after settlement %+v, want %+v", got, want)
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
	ev.Seq = 3
	if a := apply(t, s, ev); !a.Applied || a.Settled {
		t.Fatalf("second settlement of k1: %+v", a)
	}
	// A correlation ID reused by a newer reservation points at the newer one.
	p.ReservationID, p.CorrelationID = "r2", "k2"
	wantAllowed(t, authorize(t, s, p), "r2")
	p.ReservationID = "r3"
	wantAllowed(t, authorize(t, s, p), "r3")
	ev.Seq, ev.CorrelationID, ev.Tokens = 4, "k2", 100
	if a := apply(t, s, ev); !a.Settled {
		t.Fatal("k2 not settled")
	}
	ls, err := s.Limits(ctx, p)
	must(t, err, "limits")
	if len(ls.Reservations) != 1 || ls.Reservations[0].ID != "r2" {
		t.Fatalf("open after settling k2: %+v, want r2 only", ls.Reservations)
	}
	ev.Seq = 5
	if a := apply(t, s, ev); a.Settled {
		t.Fatal("k2 settled twice")
	}
	if ok, err := s.Release(ctx, "c1", "r2"); err != nil || !ok {
		t.Fatalf("release r2: %t, %v", ok, err)
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
	// Releasing the older of two reservations that share a correlation ID keeps the index of
	// the newer one.
	p.CorrelationID = "k3"
	for _, id := range []string{"r4", "r5"} {
		p.ReservationID = id
		wantAllowed(t, authorize(t, s, p), id)
	}
	if ok, err := s.Release(ctx, "c1", "r4"); err != nil || !ok {
		t.Fatalf("release r4: %t, %v", ok, err)
	}
	ev.Seq, ev.CorrelationID = 6, "k3"
	if a := apply(t, s, ev); !a.Settled {
		t.Fatal("releasing r4 lost the index of r5")
	}
	if n := open(t, s, "c1"); n != 0 {
		t.Fatalf("open after settling r5: %d", n)
	}
}

// Release returns a reservation's hold once; expired reservations are released by the next
// Authorize, at most MaxExpiredPerCall at a time, oldest first.
func testReleaseAndExpiry(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	p := params("c1", now, limit.Limits{})
	p.Estimate = limit.Usage{Tokens: 10, Nanos: 100}
	p.ReservationID, p.TTL = "short", time.Second
	wantAllowed(t, authorize(t, s, p), "short")
	p.ReservationID, p.TTL = "long", 10*time.Second
	wantAllowed(t, authorize(t, s, p), "long")
	wantHeld(t, h, s, "c1", 20, 200, 2)
	if ok, err := s.Release(ctx, "c1", "short"); err != nil || !ok {
		t.Fatalf("release: %t, %v", ok, err)
	}
	if ok, err := s.Release(ctx, "c1", "short"); err != nil || ok {
		t.Fatalf("second release: %t, %v", ok, err)
	}
	wantHeld(t, h, s, "c1", 10, 100, 1)
	// A released reservation ID may be used again.
	p.ReservationID, p.TTL = "short", time.Hour
	wantAllowed(t, authorize(t, s, p), "short")
	must2(s.Release(ctx, "c1", "short"))(t, "release")
	// "long" expires at now+10s exactly: an Authorize at that instant releases it.
	p.ReservationID, p.Now = "next", ms(now, 9_999)
	if r := authorize(t, s, p); r.ExpiredReleased != 0 {
		t.Fatalf("released %d before the expiry", r.ExpiredReleased)
	}
	p.ReservationID, p.Now = "next2", ms(now, 10_000)
	if r := authorize(t, s, p); r.ExpiredReleased != 1 {
		t.Fatalf("released %d at the expiry, want 1", r.ExpiredReleased)
	}
	wantHeld(t, h, s, "c1", 20, 200, 2)
	if ok, err := s.Release(ctx, "c1", "long"); err != nil || ok {
		t.Fatalf("release of an expired reservation: %t, %v", ok, err)
	}
	// 20 expired at once: 16, then 4.
	p.TTL = time.Millisecond
	for i := range 20 {
		p.ReservationID = fmt.Sprintf("burst-%02d", i)
		wantAllowed(t, authorize(t, s, p), p.ReservationID)
	}
	p.TTL, p.Now = time.Hour, now.Add(24*time.Hour)
	for i, want := range []int{counter.MaxExpiredPerCall, 20 + 2 - counter.MaxExpiredPerCall, 0} {
		p.ReservationID = fmt.Sprintf("sweep-%d", i)
		if r := authorize(t, s, p); r.ExpiredReleased != want {
			t.Fatalf("sweep %d released %d, want %d", i, r.ExpiredReleased, want)
		}
	}
	if n := open(t, s, "c1"); n != 3 {
		t.Fatalf("open after the sweeps: %d, want the 3 sweep calls'", n)
	}
	wantHeld(t, h, s, "c1", 30, 300, 3)
	if ok, err := s.Release(ctx, "c1", ""); !errors.Is(err, counter.ErrInvalid) || ok {
		t.Fatalf("release without an ID: %t, %v", ok, err)
	}
}

// Limits reports the live quotas and the open reservations and writes nothing.
func testLimitsReadOnly(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g", Nanos: 1_000_000})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 300, Events: 1,
		Usage: map[string]int64{"tok": 50, "other": 7}, Wallet: map[string]int64{"g": 300}})
	lim := limit.Limits{Window: minute, RequestsPerWindow: 10, TokensPerWindow: 10_000, MonthlyTokens: 1000,
		MonthlySpend: 10_000, MaxConcurrent: 4, WalletLimited: true}
	p := params("c1", now, lim)
	p.Estimate = limit.Usage{Tokens: 20, Nanos: 30}
	for i, task := range []string{"t1", "", "t2"} {
		p.ReservationID, p.CorrelationID, p.TaskID = fmt.Sprintf("r%d", i), fmt.Sprintf("k%d", i), task
		p.TTL = time.Duration(3-i) * time.Minute
		wantAllowed(t, authorize(t, s, p), p.ReservationID)
	}
	before := h.Dump(t, s, "c1")
	q := p
	q.ReservationID, q.Estimate, q.TTL = "", limit.Usage{}, 0 // not needed by Limits
	q.Now = ms(now, 2*minute)                                 // r2 has expired by now: still listed
	ls, err := s.Limits(ctx, q)
	must(t, err, "limits")
	if after := h.Dump(t, s, "c1"); after != before {
		t.Fatalf("Limits changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The quotas are those a denied decision would report at that instant.
	st := limit.State{RPM: limit.TAT{At: now.UnixMilli() + 18_000}, TPM: limit.TAT{At: now.UnixMilli() + 360},
		UsedTokens: 50, ReservedTokens: 60, UsedNanos: 300, ReservedNanos: 90, InFlight: 3, Balance: 1_000_000 - 300}
	if got := h.State(t, s, "c1", ""); got.RPM != st.RPM || got.TPM != st.TPM {
		t.Fatalf("buckets %+v %+v, want %+v %+v", got.RPM, got.TPM, st.RPM, st.TPM)
	}
	wantQ := counter.LiveQuotas(st, limit.Request{Limits: lim, PeriodEnd: counter.PeriodEndMillis(p1)}, q.Now.UnixMilli())
	if ls.Quotas != wantQ || ls.Quotas[limit.DimRPM].Remaining != 10 || ls.Quotas[limit.DimMonthlyTokens].Remaining != 1000-50-60 ||
		ls.Quotas[limit.DimConcurrency].Remaining != 1 || ls.Quotas[limit.DimWallet].Remaining != 1_000_000-300-90 {
		t.Fatalf("quotas\n got %+v\nwant %+v", ls.Quotas, wantQ)
	}
	want := []counter.Reservation{
		{ID: "r2", CorrelationID: "k2", TaskID: "t2", Estimate: p.Estimate, ExpiresAt: now.Add(time.Minute)},
		{ID: "r1", CorrelationID: "k1", Estimate: p.Estimate, ExpiresAt: now.Add(2 * time.Minute)},
		{ID: "r0", CorrelationID: "k0", TaskID: "t1", Estimate: p.Estimate, ExpiresAt: now.Add(3 * time.Minute)},
	}
	if len(ls.Reservations) != len(want) {
		t.Fatalf("reservations %+v, want %+v", ls.Reservations, want)
	}
	for i, r := range ls.Reservations {
		w := want[i]
		if r.ID != w.ID || r.CorrelationID != w.CorrelationID || r.TaskID != w.TaskID || r.Estimate != w.Estimate ||
			!r.ExpiresAt.Equal(w.ExpiresAt) {
			t.Fatalf("reservation %d: %+v, want %+v", i, r, w)
		}
	}
	if ls.Tier != "" {
		t.Fatalf("tier %q", ls.Tier)
	}
	// An unknown customer has full quotas and nothing open.
	q.CustomerID = "nobody"
	ls, err = s.Limits(ctx, q)
	must(t, err, "limits")
	if ls.Quotas[limit.DimRPM].Remaining != 10 || ls.Quotas[limit.DimWallet].Active || len(ls.Reservations) != 0 {
		t.Fatalf("unknown customer: %+v", ls)
	}
}

// A wallet-limited row limits only a customer with a wallet: without any grant the customer is
// not wallet-limited; with only expired credit it is, and is denied.
func testWalletLimitedNeedsGrant(t *testing.T, h AuthHarness, s counter.Store) {
	now := clock0()
	p := params("c1", now, limit.Limits{WalletLimited: true})
	p.ReservationID, p.Estimate = "a", limit.Usage{Nanos: 1_000}
	r := authorize(t, s, p)
	if !r.Allowed || r.Quotas[limit.DimWallet].Active {
		t.Fatalf("no grants: %+v", r.Decision)
	}
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "old", Nanos: 1_000_000, ExpiresAt: now})
	p.ReservationID = "b"
	r = authorize(t, s, p)
	wantDenied(t, r, limit.DimWallet, 0)
	if q := r.Quotas[limit.DimWallet]; q != (limit.Quota{Active: true}) {
		t.Fatalf("expired credit: wallet quota %+v", q)
	}
	p.Now = ms(now, -1) // one ms before the expiry the credit counts
	wantAllowed(t, authorize(t, s, p), "b")
}

// Sums of stored int64 values (token meters, grant balances) are exact before they are
// clamped, however large the parts.
func testExactSums(t *testing.T, h AuthHarness, s counter.Store) {
	now := clock0()
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "a", Nanos: limit.MaxValue})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "b", Nanos: 2})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "c", Nanos: math.MaxInt64})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Events: 1,
		Usage:  map[string]int64{"tok": 1 << 62, "tok2": -(1 << 62) + 5, "tok3": 1<<53 + 1},
		Wallet: map[string]int64{"d": 10, "c": math.MaxInt64}})
	p := params("c1", now, limit.Limits{WalletLimited: true, MonthlyTokens: limit.MaxValue})
	p.TokenMeters = []string{"tok", "tok2"}
	p.ReservationID = "a"
	r := authorize(t, s, p)
	// Balance: (2^53 − 1) + 2 + 0 − 10 = 2^53 − 9, which a double sum would round.
	if q := r.Quotas[limit.DimWallet]; !r.Allowed || q.Limit != limit.MaxValue-8 {
		t.Fatalf("wallet quota %+v, want limit %d", q, limit.MaxValue-8)
	}
	if q := r.Quotas[limit.DimMonthlyTokens]; q.Remaining != limit.MaxValue-5 {
		t.Fatalf("token cap remaining %d, want %d (used 2^62 − 2^62 + 5)", q.Remaining, limit.MaxValue-5)
	}
	// Beyond the range the sums clamp.
	p.TokenMeters = []string{"tok", "tok3"}
	p.ReservationID = "b"
	if r := authorize(t, s, p); r.Allowed || r.Reason != limit.DimMonthlyTokens || r.State.UsedTokens != limit.MaxValue {
		t.Fatalf("used tokens beyond the range: %+v", r.Decision)
	}
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, Events: 1,
		Wallet: map[string]int64{"e": math.MaxInt64, "f": math.MaxInt64}})
	p.TokenMeters, p.ReservationID = nil, "c"
	if r := authorize(t, s, p); r.Allowed || r.Reason != limit.DimWallet || r.State.Balance != -limit.MaxValue {
		t.Fatalf("balance below the range: %+v", r.Decision)
	}
}

// Rebuild replaces the ledger's counters and leaves the authorize state alone.
func testRebuildKeepsAuthState(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	p := params("c1", now, limit.Limits{Window: minute, RequestsPerWindow: 5})
	p.ReservationID, p.CorrelationID, p.Estimate = "r", "k", limit.Usage{Tokens: 7, Nanos: 9}
	wantAllowed(t, authorize(t, s, p), "r")
	must(t, s.TripBreaker(ctx, "c1", counter.BreakerTask, "t", now.Add(time.Hour)), "trip")
	before := h.State(t, s, "c1", "t")
	must(t, s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c1", Watermark: 10, Tier: "gold"}), "rebuild")
	if got := h.State(t, s, "c1", "t"); got != before {
		t.Fatalf("authorize state after rebuild %+v, want %+v", got, before)
	}
	if n := open(t, s, "c1"); n != 1 {
		t.Fatalf("open after rebuild: %d", n)
	}
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 11, Period: p1, Events: 1, CorrelationID: "k"}); !a.Settled {
		t.Fatal("the reservation did not survive the rebuild")
	}
}

// Every invalid parameter is named by its path; nothing is read or written.
func testAuthorizeInvalid(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	now := clock0()
	good := params("c1", now, limit.Limits{Window: minute, RequestsPerWindow: 5})
	good.ReservationID = "r"
	cases := []struct {
		field  string
		change func(p *counter.AuthorizeParams)
	}{
		{"customerId", func(p *counter.AuthorizeParams) { p.CustomerID = "" }},
		{"reservationId", func(p *counter.AuthorizeParams) { p.ReservationID = "" }},
		{"now", func(p *counter.AuthorizeParams) { p.Now = time.Unix(-1, 0) }},
		{"now", func(p *counter.AuthorizeParams) { p.Now = time.UnixMilli(limit.MaxTime + 1) }},
		{"period", func(p *counter.AuthorizeParams) { p.Period.End = p.Period.Start }},
		{"tokenMeters[1]", func(p *counter.AuthorizeParams) { p.TokenMeters = []string{"a", ""} }},
		{"tokenMeters[2]", func(p *counter.AuthorizeParams) { p.TokenMeters = []string{"a", "b", "a"} }},
		{`limits["gold"].window`, func(p *counter.AuthorizeParams) {
			p.Limits = counter.TierLimits{"": {}, "gold": {RequestsPerWindow: 3}}
		}},
		{`limits[""].maxConcurrent`, func(p *counter.AuthorizeParams) { p.Limits = counter.TierLimits{"": {MaxConcurrent: -1}} }},
		{"estimate.tokens", func(p *counter.AuthorizeParams) { p.Estimate.Tokens = -1 }},
		{"estimate.nanos", func(p *counter.AuthorizeParams) { p.Estimate.Nanos = limit.MaxValue + 1 }},
		{"ttl", func(p *counter.AuthorizeParams) { p.TTL = time.Microsecond }},
	}
	before := h.Dump(t, s, "c1")
	for _, tc := range cases {
		p := good
		p.Limits = counter.TierLimits{"": good.Limits[""]}
		tc.change(&p)
		_, err := s.Authorize(ctx, p)
		if !errors.Is(err, counter.ErrInvalid) || !strings.Contains(err.Error(), tc.field+":") {
			t.Fatalf("%s: got %v, want ErrInvalid naming the field", tc.field, err)
		}
		var ie *limit.InvalidError
		if !errors.As(err, &ie) || len(ie.Fields) == 0 {
			t.Fatalf("%s: %v does not list its fields", tc.field, err)
		}
		if tc.field != "reservationId" && tc.field != "ttl" && !strings.HasPrefix(tc.field, "estimate") {
			if _, err := s.Limits(ctx, p); !errors.Is(err, counter.ErrInvalid) {
				t.Fatalf("limits with bad %s: got %v", tc.field, err)
			}
		}
	}
	if after := h.Dump(t, s, "c1"); after != before {
		t.Fatalf("invalid calls changed the store:\n%s", after)
	}
	// Limits needs no reservation ID, estimate or TTL.
	p := good
	p.ReservationID, p.TTL = "", 0
	if _, err := s.Limits(ctx, p); err != nil {
		t.Fatalf("limits: %v", err)
	}
	// Several bad fields are all named.
	p.CustomerID, p.TTL = "", -time.Second
	_, err := s.Authorize(ctx, p)
	for _, f := range []string{"customerId", "reservationId", "ttl"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Fatalf("all bad fields: %v does not name %s", err, f)
		}
	}
	if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Now: time.Unix(-5, 0)}); !errors.Is(err, counter.ErrInvalid) {
		t.Fatalf("apply with a bad now: %v", err)
	}
	if _, err := s.OpenReservations(ctx, ""); !errors.Is(err, counter.ErrInvalid) {
		t.Fatalf("open reservations without a customer: %v", err)
	}
}

// A zero Now is the store's clock (on Redis the server's): the reservation expires TTL after
// the call, and a zero ApplyParams.Now settles at the store's clock too.
func testStoreClock(t *testing.T, h AuthHarness, s counter.Store) {
	ctx := context.Background()
	p := params("c1", time.Time{}, limit.Limits{Window: minute, TokensPerWindow: 1000})
	p.ReservationID, p.CorrelationID, p.Estimate = "r", "k", limit.Usage{Tokens: 10}
	before := time.Now().Truncate(time.Millisecond)
	wantAllowed(t, authorize(t, s, p), "r")
	after := time.Now()
	ls, err := s.Limits(ctx, p)
	must(t, err, "limits")
	// The server may be another machine: allow its clock a few seconds of skew.
	const skew = 5 * time.Second
	if len(ls.Reservations) != 1 || ls.Reservations[0].ExpiresAt.Before(before.Add(p.TTL-skew)) ||
		ls.Reservations[0].ExpiresAt.After(after.Add(p.TTL+skew)) {
		t.Fatalf("reservation %+v, want it to expire %s after [%s, %s]", ls.Reservations, p.TTL, before, after)
	}
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Events: 1, CorrelationID: "k", Tokens: 10}); !a.Settled {
		t.Fatal("not settled at the store's clock")
	}
	wantHeld(t, h, s, "c1", 0, 0, 0)
}
