// Package countertest is the one conformance suite every counter.Store driver passes. A driver's
// test calls Exercise with a function that opens a fresh, empty store, and ExerciseAuthorize
// (authorize.go) with an AuthHarness that also gives raw access to the authorize state; a bug
// fixed in a driver first gets a case here, so both drivers keep behaving alike. BenchmarkApply
// and BenchmarkAuthorize (bench.go) are the shared benchmarks.
package countertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/counter"
)

// Exercise runs the suite. open must return a new, empty store each time it is called (or one
// whose customers no other test uses) and close it when the test ends (t.Cleanup); closing it
// twice must be harmless. Subtests run in parallel, each on its own store.
func Exercise(t *testing.T, open func(t *testing.T) counter.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s counter.Store)
	}{
		{"ApplyThenSnapshot", testApplyThenSnapshot},
		{"UnknownReadsZero", testUnknownReadsZero},
		{"SameSeqTwice", testSameSeqTwice},
		{"LowerSeqIsNoOp", testLowerSeqIsNoOp},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"ConcurrentOverlappingRanges", testConcurrentOverlappingRanges},
		{"NegativeSpend", testNegativeSpend},
		{"SeveralMeters", testSeveralMeters},
		{"PeriodsIndependent", testPeriodsIndependent},
		{"LifetimeSpansPeriods", testLifetimeSpansPeriods},
		{"ExpiredPeriodNotKept", testExpiredPeriodNotKept},
		{"Rebuild", testRebuild},
		{"RebuildLeavesOthersAlone", testRebuildLeavesOthersAlone},
		{"RebuildWhileApplying", testRebuildWhileApplying},
		{"OverflowChangesNothing", testOverflowChangesNothing},
		{"CustomerIDsDoNotCollide", testCustomerIDsDoNotCollide},
		{"InvalidInput", testInvalidInput},
		{"ManyCustomersConcurrently", testManyCustomersConcurrently},
		{"Close", testClose},
		{"WalletBurnsAndRefunds", testWalletBurnsAndRefunds},
		{"DuplicateSeqLeavesWalletAndTier", testDuplicateSeqLeavesWalletAndTier},
		{"GrantExactlyOnce", testGrantExactlyOnce},
		{"GrantAfterBurnConverges", testGrantAfterBurnConverges},
		{"WalletOverflowChangesNothing", testWalletOverflowChangesNothing},
		{"GrantOverflowChangesNothing", testGrantOverflowChangesNothing},
		{"ExpiryBoundary", testExpiryBoundary},
		{"RebuildReplacesWalletAndTier", testRebuildReplacesWalletAndTier},
		{"Tier", testTier},
		{"WalletConcurrently", testWalletConcurrently},
		{"WalletInvalidInput", testWalletInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// Periods are anchored near the real clock so they are inside every driver's retention.
var (
	start = time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	p1    = counter.PeriodRef{PlanVersionID: 7, Start: start, End: start.AddDate(0, 1, 0)}
	p2    = counter.PeriodRef{PlanVersionID: 7, Start: p1.End, End: p1.End.AddDate(0, 1, 0)}
	// Same start as p1, another plan version: another period.
	p1v8 = counter.PeriodRef{PlanVersionID: 8, Start: p1.Start, End: p1.End}
)

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func apply(t *testing.T, s counter.Store, p counter.ApplyParams) counter.Applied {
	t.Helper()
	a, err := s.Apply(context.Background(), p)
	must(t, err, fmt.Sprintf("apply %s seq %d", p.CustomerID, p.Seq))
	return a
}

func snap(t *testing.T, s counter.Store, customerID string, ref counter.PeriodRef) counter.Snapshot {
	t.Helper()
	sn, err := s.Snapshot(context.Background(), customerID, ref)
	must(t, err, "snapshot "+customerID)
	return sn
}

// equal compares every field of two snapshots; expiries compare as instants.
func equal(a, b counter.Snapshot) bool {
	return a.Watermark == b.Watermark && a.LifetimeSpendNanos == b.LifetimeSpendNanos &&
		a.Period.SpendNanos == b.Period.SpendNanos && a.Period.Events == b.Period.Events &&
		maps.Equal(a.Period.Usage, b.Period.Usage) && a.Tier == b.Tier &&
		maps.EqualFunc(a.Grants, b.Grants, func(x, y counter.GrantCounter) bool {
			return x.Nanos == y.Nanos && x.ExpiresAt.Equal(y.ExpiresAt)
		})
}

func wantSnap(t *testing.T, s counter.Store, customerID string, ref counter.PeriodRef, want counter.Snapshot) {
	t.Helper()
	if got := snap(t, s, customerID, ref); !equal(got, want) {
		t.Fatalf("snapshot %q period %d@%s:\n got %+v\nwant %+v", customerID, ref.PlanVersionID,
			ref.Start.Format(time.RFC3339), got, want)
	}
}

func testApplyThenSnapshot(t *testing.T, s counter.Store) {
	a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 4_500_000,
		Usage: map[string]int64{"input_tokens": 1500}, Events: 1})
	if !a.Applied || a.Watermark != 1 {
		t.Fatalf("first apply: got %+v, want applied at watermark 1", a)
	}
	a = apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1, SpendNanos: 500_000,
		Usage: map[string]int64{"input_tokens": 500}, Events: 1})
	if !a.Applied || a.Watermark != 3 {
		t.Fatalf("second apply (seq gap is fine): got %+v", a)
	}
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 5_000_000,
		Period: counter.PeriodCounters{SpendNanos: 5_000_000, Events: 2, Usage: map[string]int64{"input_tokens": 2000}}})
	// The same period named with a different location is the same period.
	tokyo := time.FixedZone("JST", 9*3600)
	inTokyo := counter.PeriodRef{PlanVersionID: p1.PlanVersionID, Start: p1.Start.In(tokyo), End: p1.End.In(tokyo)}
	wantSnap(t, s, "c1", inTokyo, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 5_000_000,
		Period: counter.PeriodCounters{SpendNanos: 5_000_000, Events: 2, Usage: map[string]int64{"input_tokens": 2000}}})
}

func testUnknownReadsZero(t *testing.T, s counter.Store) {
	wantSnap(t, s, "nobody", p1, counter.Snapshot{})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 9, Events: 1})
	wantSnap(t, s, "c1", p2, counter.Snapshot{Watermark: 1, LifetimeSpendNanos: 9})
}

func testSameSeqTwice(t *testing.T, s counter.Store) {
	p := counter.ApplyParams{CustomerID: "c1", Seq: 5, Period: p1, SpendNanos: 100,
		Usage: map[string]int64{"m": 3}, Events: 1}
	apply(t, s, p)
	a := apply(t, s, p)
	if a.Applied || a.Watermark != 5 {
		t.Fatalf("repeat: got %+v, want not applied at watermark 5", a)
	}
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 5, LifetimeSpendNanos: 100,
		Period: counter.PeriodCounters{SpendNanos: 100, Events: 1, Usage: map[string]int64{"m": 3}}})
}

// A Seq below the watermark is a no-op even if it was never applied: Apply is called in Seq
// order per customer and the watermark means "counted up to here".
func testLowerSeqIsNoOp(t *testing.T, s counter.Store) {
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 10, Period: p1, SpendNanos: 100, Events: 1})
	for _, seq := range []int64{1, 9, 10} {
		a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: seq, Period: p1, SpendNanos: 1000,
			Usage: map[string]int64{"m": 1}, Events: 1})
		if a.Applied || a.Watermark != 10 {
			t.Fatalf("seq %d under watermark 10: got %+v, want a no-op", seq, a)
		}
	}
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 10, LifetimeSpendNanos: 100,
		Period: counter.PeriodCounters{SpendNanos: 100, Events: 1}})
	// Watermarks compare as integers, not as text ("9" > "10" as text).
	a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 100, Period: p1, SpendNanos: 1, Events: 1})
	if !a.Applied || a.Watermark != 100 {
		t.Fatalf("seq 100 over watermark 10: got %+v", a)
	}
	big := int64(1)<<53 + 1 // not exact as a float64
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: big, Period: p1, Events: 1})
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: big - 1, Period: p1, Events: 1}); a.Applied || a.Watermark != big {
		t.Fatalf("seq 2^53 under watermark 2^53+1: got %+v", a)
	}
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: big + 1, Period: p1, Events: 1}); !a.Applied || a.Watermark != big+1 {
		t.Fatalf("seq 2^53+2 over watermark 2^53+1: got %+v", a)
	}
}

// 32 goroutines each apply the same events 1..n in order: every event is counted exactly once.
func testConcurrentDuplicates(t *testing.T, s counter.Store) {
	const workers, n = 32, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	appliedBy := map[int64]int{}
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for seq := int64(1); seq <= n; seq++ {
				a, err := s.Apply(context.Background(), counter.ApplyParams{CustomerID: "dup", Seq: seq, Period: p1,
					SpendNanos: seq * 1000, Usage: map[string]int64{"m": seq}, Events: 1})
				if err != nil {
					errs <- err
					return
				}
				if a.Applied {
					mu.Lock()
					appliedBy[seq]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= n; seq++ {
		if appliedBy[seq] != 1 {
			t.Fatalf("seq %d applied %d times, want exactly once", seq, appliedBy[seq])
		}
	}
	sum := int64(n * (n + 1) / 2)
	wantSnap(t, s, "dup", p1, counter.Snapshot{Watermark: n, LifetimeSpendNanos: sum * 1000,
		Period: counter.PeriodCounters{SpendNanos: sum * 1000, Events: n, Usage: map[string]int64{"m": sum}}})
}

// 32 goroutines apply overlapping ranges starting at different Seqs: a Seq overtaken by a higher
// one is dropped, but whatever is applied is applied once and the counters are exactly the sum
// of the applied Seqs.
func testConcurrentOverlappingRanges(t *testing.T, s counter.Store) {
	const workers, span = 32, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	appliedBy := map[int64]int{}
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for seq := int64(g*5 + 1); seq <= int64(g*5+span); seq++ {
				a, err := s.Apply(context.Background(), counter.ApplyParams{CustomerID: "ovl", Seq: seq, Period: p1,
					SpendNanos: seq, Usage: map[string]int64{"m": 2 * seq}, Events: 1})
				if err != nil {
					errs <- err
					return
				}
				if a.Applied {
					mu.Lock()
					appliedBy[seq]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var sum, count, max int64
	for seq, k := range appliedBy {
		if k != 1 {
			t.Fatalf("seq %d applied %d times, want at most once", seq, k)
		}
		sum += seq
		count++
		max = maxInt(max, seq)
	}
	if top := int64((workers-1)*5 + span); max != top {
		t.Fatalf("highest applied seq %d, want %d", max, top)
	}
	wantSnap(t, s, "ovl", p1, counter.Snapshot{Watermark: max, LifetimeSpendNanos: sum,
		Period: counter.PeriodCounters{SpendNanos: sum, Events: count, Usage: map[string]int64{"m": 2 * sum}}})
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func testNegativeSpend(t *testing.T, s counter.Store) {
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 3_000, Events: 1})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, SpendNanos: -5_000, Events: 1})
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 2, LifetimeSpendNanos: -2_000,
		Period: counter.PeriodCounters{SpendNanos: -2_000, Events: 2}})
}

func testSeveralMeters(t *testing.T, s counter.Store) {
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 1, Events: 1,
		Usage: map[string]int64{"input_tokens": 1500, "output_tokens": 800, "cache_read_tokens": 500, "zero": 0}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, SpendNanos: 1, Events: 1,
		Usage: map[string]int64{"input_tokens": 10, "reasoning_tokens": 7, "model:claude-sonnet-4-6": 1}})
	// A meter back at zero is omitted, like one never used.
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1, Events: 1,
		Usage: map[string]int64{"reasoning_tokens": -7}})
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 2,
		Period: counter.PeriodCounters{SpendNanos: 2, Events: 3, Usage: map[string]int64{
			"input_tokens": 1510, "output_tokens": 800, "cache_read_tokens": 500, "model:claude-sonnet-4-6": 1}}})
}

func testPeriodsIndependent(t *testing.T, s counter.Store) {
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 10, Events: 1,
		Usage: map[string]int64{"m": 1}})
	// A new period starts at zero.
	wantSnap(t, s, "c1", p2, counter.Snapshot{Watermark: 1, LifetimeSpendNanos: 10})
	wantSnap(t, s, "c1", p1v8, counter.Snapshot{Watermark: 1, LifetimeSpendNanos: 10})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p2, SpendNanos: 20, Events: 1,
		Usage: map[string]int64{"m": 2}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1v8, SpendNanos: 40, Events: 1,
		Usage: map[string]int64{"n": 4}})
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 70,
		Period: counter.PeriodCounters{SpendNanos: 10, Events: 1, Usage: map[string]int64{"m": 1}}})
	wantSnap(t, s, "c1", p2, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 70,
		Period: counter.PeriodCounters{SpendNanos: 20, Events: 1, Usage: map[string]int64{"m": 2}}})
	wantSnap(t, s, "c1", p1v8, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 70,
		Period: counter.PeriodCounters{SpendNanos: 40, Events: 1, Usage: map[string]int64{"n": 4}}})
}

func testLifetimeSpansPeriods(t *testing.T, s counter.Store) {
	seq := int64(0)
	var life int64
	for i, ref := range []counter.PeriodRef{p1, p2, p1v8} {
		for j := range 3 {
			seq++
			amt := int64((i+1)*100 + j)
			life += amt
			apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: seq, Period: ref, SpendNanos: amt, Events: 1})
		}
	}
	for _, ref := range []counter.PeriodRef{p1, p2, p1v8} {
		if got := snap(t, s, "c1", ref); got.LifetimeSpendNanos != life || got.Period.Events != 3 {
			t.Fatalf("period %d@%s: got %+v, want lifetime %d and 3 events", ref.PlanVersionID, ref.Start, got, life)
		}
	}
}

// A period whose End + retention is past keeps no counters; the watermark and lifetime spend
// still move.
func testExpiredPeriodNotKept(t *testing.T, s counter.Store) {
	old := counter.PeriodRef{PlanVersionID: 1, Start: start.AddDate(-2, 0, 0), End: start.AddDate(-2, 1, 0)}
	a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: old, SpendNanos: 5, Events: 1,
		Usage: map[string]int64{"m": 1}})
	if !a.Applied {
		t.Fatalf("apply to an expired period: got %+v, want applied", a)
	}
	wantSnap(t, s, "c1", old, counter.Snapshot{Watermark: 1, LifetimeSpendNanos: 5})
}

func testRebuild(t *testing.T, s counter.Store) {
	ctx := context.Background()
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 10, Events: 1, Usage: map[string]int64{"a": 1}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p2, SpendNanos: 20, Events: 1, Usage: map[string]int64{"b": 2}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1v8, SpendNanos: 30, Events: 1})
	// Replace: p1 gets new counters (its meter "a" is gone), p2 keeps being named with zeros,
	// p1v8 is not named and is dropped; the watermark may go down.
	must(t, s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c1", Watermark: 2, LifetimeSpendNanos: 1_000,
		Periods: map[counter.PeriodRef]counter.PeriodCounters{
			p1: {SpendNanos: 700, Events: 5, Usage: map[string]int64{"x": 9, "y": 0}},
			p2: {},
		}}), "rebuild")
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 2, LifetimeSpendNanos: 1_000,
		Period: counter.PeriodCounters{SpendNanos: 700, Events: 5, Usage: map[string]int64{"x": 9}}})
	wantSnap(t, s, "c1", p2, counter.Snapshot{Watermark: 2, LifetimeSpendNanos: 1_000})
	wantSnap(t, s, "c1", p1v8, counter.Snapshot{Watermark: 2, LifetimeSpendNanos: 1_000})
	// Apply continues from the rebuilt watermark.
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, SpendNanos: 1, Events: 1}); a.Applied {
		t.Fatalf("seq 2 after rebuild to watermark 2: got %+v, want a no-op", a)
	}
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1v8, SpendNanos: 1, Events: 1})
	wantSnap(t, s, "c1", p1v8, counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 1_001,
		Period: counter.PeriodCounters{SpendNanos: 1, Events: 1}})
	// Rebuilding to nothing empties the customer.
	must(t, s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c1"}), "rebuild to zero")
	for _, ref := range []counter.PeriodRef{p1, p2, p1v8} {
		wantSnap(t, s, "c1", ref, counter.Snapshot{})
	}
	// A customer that never existed can be rebuilt.
	must(t, s.Rebuild(ctx, counter.RebuildParams{CustomerID: "new", Watermark: 40, LifetimeSpendNanos: -3,
		Periods: map[counter.PeriodRef]counter.PeriodCounters{p2: {SpendNanos: -3, Events: 2}}}), "rebuild new")
	wantSnap(t, s, "new", p2, counter.Snapshot{Watermark: 40, LifetimeSpendNanos: -3,
		Period: counter.PeriodCounters{SpendNanos: -3, Events: 2}})
}

func testRebuildLeavesOthersAlone(t *testing.T, s counter.Store) {
	ids := []string{"c1", "c10", "c1:p", "{c1}", "c"}
	for i, id := range ids {
		apply(t, s, counter.ApplyParams{CustomerID: id, Seq: int64(i + 1), Period: p1, SpendNanos: int64(i + 1), Events: 1,
			Usage: map[string]int64{"m": int64(i + 1)}})
	}
	must(t, s.Rebuild(context.Background(), counter.RebuildParams{CustomerID: "c1", Watermark: 99}), "rebuild")
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 99})
	for i, id := range ids[1:] {
		n := int64(i + 2)
		wantSnap(t, s, id, p1, counter.Snapshot{Watermark: n, LifetimeSpendNanos: n,
			Period: counter.PeriodCounters{SpendNanos: n, Events: 1, Usage: map[string]int64{"m": n}}})
	}
}

func testOverflowChangesNothing(t *testing.T, s counter.Store) {
	ctx := context.Background()
	const near = math.MaxInt64 - 10
	cases := []struct {
		name  string
		setup counter.RebuildParams
		p     counter.ApplyParams
	}{
		{"lifetime spend", counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: near,
			Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: 1, Events: 1, Usage: map[string]int64{"a": 1}}}},
			counter.ApplyParams{Seq: 2, Period: p1, SpendNanos: 11, Events: 1, Usage: map[string]int64{"a": 1}}},
		{"period spend", counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: 1,
			Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: near, Events: 1, Usage: map[string]int64{"a": 1}}}},
			counter.ApplyParams{Seq: 2, Period: p1, SpendNanos: 11, Events: 1, Usage: map[string]int64{"a": 1}}},
		{"negative spend", counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: math.MinInt64 + 5,
			Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: 1, Events: 1}}},
			counter.ApplyParams{Seq: 2, Period: p1, SpendNanos: -6, Events: 1, Usage: map[string]int64{"a": 1}}},
		{"events", counter.RebuildParams{Watermark: 1,
			Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {Events: math.MaxInt64, Usage: map[string]int64{"a": 1}}}},
			counter.ApplyParams{Seq: 2, Period: p1, SpendNanos: 5, Events: 1, Usage: map[string]int64{"a": 1}}},
		{"one of several meters", counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: 1,
			Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: 1, Events: 1,
				Usage: map[string]int64{"a": 1, "b": 2, "c": near}}}},
			counter.ApplyParams{Seq: 2, Period: p1, SpendNanos: 5, Events: 1,
				Usage: map[string]int64{"a": 1, "b": 1, "c": 11, "d": 1, "e": 1}}},
		{"lifetime spend into a new period", counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: near},
			counter.ApplyParams{Seq: 2, Period: p2, SpendNanos: 11, Events: 1, Usage: map[string]int64{"a": 1}}},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("ovf-%d", i)
		tc.setup.CustomerID, tc.p.CustomerID = id, id
		must(t, s.Rebuild(ctx, tc.setup), tc.name+": rebuild")
		before1, before2 := snap(t, s, id, p1), snap(t, s, id, p2)
		_, err := s.Apply(ctx, tc.p)
		if !errors.Is(err, counter.ErrOverflow) {
			t.Fatalf("%s: got error %v, want ErrOverflow", tc.name, err)
		}
		if got := snap(t, s, id, p1); !equal(got, before1) {
			t.Fatalf("%s: period 1 changed by a failed apply:\n got %+v\nwant %+v", tc.name, got, before1)
		}
		if got := snap(t, s, id, p2); !equal(got, before2) {
			t.Fatalf("%s: period 2 changed by a failed apply:\n got %+v\nwant %+v", tc.name, got, before2)
		}
		// The store still works for the customer: a harmless next event is applied.
		a := apply(t, s, counter.ApplyParams{CustomerID: id, Seq: 2, Period: p2, Events: 1})
		if !a.Applied {
			t.Fatalf("%s: seq 2 after the failed apply: got %+v, want applied", tc.name, a)
		}
	}
}

func testCustomerIDsDoNotCollide(t *testing.T, s counter.Store) {
	ids := []string{"a", "a{b}", "a}{b", "{", "}", "{}", "{a}", "%7B", "%7D", "%", "%25", "a:b", "a:wm",
		"a}:wm", "a:p:7", "日本語", "é", "e\u0301", "a b", "a\x00b", "\xff\xfe", "cust_abc"}
	for i, id := range ids {
		n := int64(i + 1)
		apply(t, s, counter.ApplyParams{CustomerID: id, Seq: n, Period: p1, SpendNanos: n, Events: n,
			Usage: map[string]int64{"m": n}})
	}
	for i, id := range ids {
		n := int64(i + 1)
		wantSnap(t, s, id, p1, counter.Snapshot{Watermark: n, LifetimeSpendNanos: n,
			Period: counter.PeriodCounters{SpendNanos: n, Events: n, Usage: map[string]int64{"m": n}}})
	}
}

func testInvalidInput(t *testing.T, s counter.Store) {
	ctx := context.Background()
	good := counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 1, Events: 1}
	bad := map[string]func(p *counter.ApplyParams){
		"empty customer": func(p *counter.ApplyParams) { p.CustomerID = "" },
		"seq zero":       func(p *counter.ApplyParams) { p.Seq = 0 },
		"seq negative":   func(p *counter.ApplyParams) { p.Seq = -1 },
		"end = start":    func(p *counter.ApplyParams) { p.Period.End = p.Period.Start },
		"end < start":    func(p *counter.ApplyParams) { p.Period.End = p.Period.Start.Add(-time.Hour) },
		"empty meter":    func(p *counter.ApplyParams) { p.Usage = map[string]int64{"": 1} },
	}
	for name, mutate := range bad {
		p := good
		mutate(&p)
		if _, err := s.Apply(ctx, p); !errors.Is(err, counter.ErrInvalid) {
			t.Errorf("apply with %s: got %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.Snapshot(ctx, "", p1); !errors.Is(err, counter.ErrInvalid) {
		t.Errorf("snapshot of empty customer: got %v, want ErrInvalid", err)
	}
	for name, p := range map[string]counter.RebuildParams{
		"empty customer":     {},
		"negative watermark": {CustomerID: "c1", Watermark: -1},
		"bad period":         {CustomerID: "c1", Periods: map[counter.PeriodRef]counter.PeriodCounters{{Start: p1.Start, End: p1.Start}: {}}},
		"empty meter":        {CustomerID: "c1", Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {Usage: map[string]int64{"": 1}}}},
	} {
		if err := s.Rebuild(ctx, p); !errors.Is(err, counter.ErrInvalid) {
			t.Errorf("rebuild with %s: got %v, want ErrInvalid", name, err)
		}
	}
	// Nothing was written by the rejected calls.
	wantSnap(t, s, "c1", p1, counter.Snapshot{})
}

func testManyCustomersConcurrently(t *testing.T, s counter.Store) {
	const customers, events = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, customers)
	for c := range customers {
		wg.Go(func() {
			id := fmt.Sprintf("many-%d", c)
			for seq := int64(1); seq <= events; seq++ {
				ref := p1
				if seq%2 == 0 {
					ref = p2
				}
				if _, err := s.Apply(context.Background(), counter.ApplyParams{CustomerID: id, Seq: seq, Period: ref,
					SpendNanos: int64(c + 1), Usage: map[string]int64{"m": 1, "n": seq}, Events: 1}); err != nil {
					errs <- err
					return
				}
				if seq%10 == 0 {
					if _, err := s.Snapshot(context.Background(), id, ref); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c := range customers {
		id := fmt.Sprintf("many-%d", c)
		var odd, even int64
		for seq := int64(1); seq <= events; seq++ {
			if seq%2 == 0 {
				even += seq
			} else {
				odd += seq
			}
		}
		spend := int64(c+1) * events / 2
		wantSnap(t, s, id, p1, counter.Snapshot{Watermark: events, LifetimeSpendNanos: int64(c+1) * events,
			Period: counter.PeriodCounters{SpendNanos: spend, Events: events / 2, Usage: map[string]int64{"m": events / 2, "n": odd}}})
		wantSnap(t, s, id, p2, counter.Snapshot{Watermark: events, LifetimeSpendNanos: int64(c+1) * events,
			Period: counter.PeriodCounters{SpendNanos: spend, Events: events / 2, Usage: map[string]int64{"m": events / 2, "n": even}}})
	}
}

func testClose(t *testing.T, s counter.Store) {
	must(t, s.Close(), "close")
	must(t, s.Close(), "close again")
}

// Rebuild is one step even while Applies open new periods under it: an Apply before a Rebuild
// is wiped by it (periods opened a moment earlier included) and one after it is a no-op, since
// every Seq is below the rebuilt watermark; so once both are done the customer has exactly the
// rebuilt counters.
func testRebuildWhileApplying(t *testing.T, s counter.Store) {
	ctx := context.Background()
	want := counter.RebuildParams{CustomerID: "c1", Watermark: 1_000_000, LifetimeSpendNanos: 77,
		Periods: map[counter.PeriodRef]counter.PeriodCounters{p2: {SpendNanos: 70, Events: 7, Usage: map[string]int64{"m": 7}}}}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range int64(100) {
				ref := counter.PeriodRef{PlanVersionID: 100 + int64(g), Start: p1.Start.Add(time.Duration(i) * time.Hour), End: p1.End}
				if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c1", Seq: i*4 + int64(g) + 1, Period: ref,
					SpendNanos: 1, Usage: map[string]int64{"m": 1}, Events: 1}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 5 {
		if err := s.Rebuild(ctx, want); err != nil {
			errs <- err
			break
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantSnap(t, s, "c1", p2, counter.Snapshot{Watermark: 1_000_000, LifetimeSpendNanos: 77,
		Period: counter.PeriodCounters{SpendNanos: 70, Events: 7, Usage: map[string]int64{"m": 7}}})
	for g := range int64(4) {
		for i := range int64(100) {
			ref := counter.PeriodRef{PlanVersionID: 100 + g, Start: p1.Start.Add(time.Duration(i) * time.Hour), End: p1.End}
			wantSnap(t, s, "c1", ref, counter.Snapshot{Watermark: 1_000_000, LifetimeSpendNanos: 77})
		}
	}
}
