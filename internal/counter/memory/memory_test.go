package memory_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/counter/countertest"
	"github.com/levyhq/levy/internal/counter/memory"
)

func TestConformance(t *testing.T) {
	countertest.Exercise(t, func(t *testing.T) counter.Store {
		s := memory.New(memory.Options{})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestAuthorizeConformance(t *testing.T) {
	countertest.ExerciseAuthorize(t, countertest.AuthHarness{
		Open: func(t *testing.T) counter.Store {
			s := memory.New(memory.Options{})
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		SetState: func(t *testing.T, s counter.Store, customerID, taskID string, st limit.State) {
			memory.SetAuthState(s.(*memory.Store), customerID, taskID, st)
		},
		State: func(t *testing.T, s counter.Store, customerID, taskID string) limit.State {
			return memory.AuthState(s.(*memory.Store), customerID, taskID)
		},
		Dump: func(t *testing.T, s counter.Store, customerID string) string {
			return memory.Dump(s.(*memory.Store), customerID)
		},
	})
}

func BenchmarkAuthorize(b *testing.B) {
	countertest.BenchmarkAuthorize(b, func(b *testing.B) counter.Store { return memory.New(memory.Options{}) })
}

func BenchmarkApply(b *testing.B) {
	countertest.BenchmarkApply(b, func(b *testing.B) counter.Store { return memory.New(memory.Options{}) })
}

// The package promises that an Apply to an existing customer, period, meters and grants
// allocates nothing: the authorize path's embedded store must not feed the garbage collector.
func TestApplyExistingAllocatesNothing(t *testing.T) {
	s := memory.New(memory.Options{})
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour)
	p := counter.ApplyParams{CustomerID: "c", Period: counter.PeriodRef{PlanVersionID: 1, Start: start, End: start.Add(time.Hour)},
		SpendNanos: 10, Events: 1, Usage: map[string]int64{"in": 3, "out": 4},
		Wallet: map[string]int64{"g1": 5, "g2": -1}, Tier: "gold"}
	for _, id := range []string{"g1", "g2"} {
		if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: "c", GrantID: id, Nanos: 1 << 40}); err != nil {
			t.Fatal(err)
		}
	}
	p.Seq = 1
	if _, err := s.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		p.Seq++
		if _, err := s.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Apply allocates %.1f times per call, want 0", allocs)
	}
	sn, err := s.Snapshot(ctx, "c", p.Period)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1<<40) - 5*p.Seq; sn.Grants["g1"].Nanos != want || sn.Tier != "gold" {
		t.Fatalf("after %d applies: %+v, want g1 at %d", p.Seq, sn, want)
	}
}

// An ALLOW for a known customer, once its maps have grown, allocates nothing (the in-process
// authorize budget is 0 allocations per decision); nor does a DENY.
func TestAuthorizeAllocatesNothing(t *testing.T) {
	s := memory.New(memory.Options{})
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour)
	ref := counter.PeriodRef{PlanVersionID: 1, Start: start, End: start.Add(time.Hour)}
	if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: "c", GrantID: "g", Nanos: 1 << 52}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c", Seq: 1, Period: ref, Events: 1,
		Usage: map[string]int64{"in": 3}, Tier: "gold"}); err != nil {
		t.Fatal(err)
	}
	row := limit.Limits{Window: 60_000, RequestsPerWindow: 1 << 20, TokensPerWindow: 1 << 30, MonthlyTokens: 1 << 50,
		MonthlySpend: 1 << 50, MaxConcurrent: 1000, WalletLimited: true}
	p := counter.AuthorizeParams{CustomerID: "c", Period: ref, TokenMeters: []string{"in"},
		Limits: counter.TierLimits{"": row, "gold": row}, Estimate: limit.Usage{Tokens: 100, Nanos: 1000},
		TTL: 20 * time.Millisecond, CorrelationID: "k", TaskID: "t"}
	ids := make([]string, 256)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
	}
	var i int
	step := func() {
		i++
		p.Now = start.Add(time.Duration(i) * time.Millisecond)
		p.ReservationID = ids[i%len(ids)]
		r, err := s.Authorize(ctx, p)
		if err != nil || !r.Allowed {
			t.Fatalf("call %d: %+v, %v", i, r.Decision, err)
		}
	}
	for range 2000 { // grow the maps and the heap to their steady state
		step()
	}
	if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
		t.Fatalf("Authorize allocates %.1f times per ALLOW, want 0", allocs)
	}
	p.Estimate.Tokens, p.ReservationID = 1<<31, "denied" // above the TPM limit: denied
	deny := func() {
		if r, err := s.Authorize(ctx, p); err != nil || r.Allowed {
			t.Fatalf("%+v, %v", r.Decision, err)
		}
	}
	if allocs := testing.AllocsPerRun(1000, deny); allocs != 0 {
		t.Fatalf("Authorize allocates %.1f times per DENY, want 0", allocs)
	}
}
