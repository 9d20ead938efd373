package billing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/counter"
	countermemory "github.com/levyhq/levy/internal/counter/memory"
	counterredis "github.com/levyhq/levy/internal/counter/redis"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/testenv"
	"github.com/levyhq/levy/internal/usage"
)

// counterStores runs fn against the in-process counter store and against the real Redis.
func counterStores(t *testing.T, fn func(t *testing.T, open func() counter.Store, durable bool)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func() counter.Store { return countermemory.New(countermemory.Options{}) }, false)
	})
	t.Run("redis", func(t *testing.T) {
		url := testenv.RedisURL(t)
		prefix := fmt.Sprintf("levytest:%d:", time.Now().UnixNano())
		fn(t, func() counter.Store {
			cs, err := counterredis.Open(context.Background(), url, counterredis.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}, true)
	})
}

// waitApplied waits until the counter store has applied the whole ledger.
func waitApplied(t *testing.T, f *fixture) {
	t.Helper()
	var last int64
	err := f.store.ScanEvents(context.Background(), store.ScanParams{}, func(r *store.EventRecord) error {
		last = max(last, r.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := f.svc.CounterStatus()
		if !st.Behind && st.Cursor >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the counters did not catch up: %+v, ledger at %d", st, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCountersEqualLedgerUnderConcurrency: many goroutines ingest overlapping batches with
// duplicates, across customers with wallets and a tier ladder; afterwards every counter equals
// what the ledger implies, exactly, and a restart (in-process: rebuilt from the ledger; Redis:
// kept) agrees too.
func TestCountersEqualLedgerUnderConcurrency(t *testing.T) {
	counterStores(t, func(t *testing.T, open func() counter.Store, durable bool) {
		path := ""
		cs := open()
		f := newFixture(t, path, Options{Counters: cs, CounterOptions: CounterOptions{Durable: durable}})
		ctx := context.Background()
		customers := []string{"c0", "c1", "c2", "c3"}
		setupLadder(t, f, ladderCatalog, customers...)
		for i, c := range customers {
			if _, err := f.svc.CreateGrant(ctx, c, GrantInput{ID: "g" + c, Amount: mustJSON(fmt.Sprintf(`"%d.5"`, 3+i))}); err != nil {
				t.Fatal(err)
			}
		}
		nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
		const workers, batches = 8, 30
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for range batches {
					var evs []usage.Event
					seen := map[string]bool{}
					for range 1 + rng.IntN(8) {
						n := rng.IntN(200) // ids overlap across workers: duplicates and retries
						id := fmt.Sprintf("e%d", n)
						if seen[id] {
							continue
						}
						seen[id] = true
						evs = append(evs, event(id, customers[n%len(customers)], nov.Add(time.Duration(n)*time.Minute), int64(100+n*37)))
					}
					if _, err := f.svc.Ingest(ctx, evs); err != nil {
						t.Errorf("ingest: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		waitApplied(t, f)
		check, err := f.svc.CheckCounters(ctx, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if check.Drifted != 0 || check.Lagging != 0 || check.Customers != len(customers) {
			t.Fatalf("counters differ from the ledger: %+v", check)
		}
		// The totals, spelled out for one customer.
		tierSt, err := f.svc.Tier(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		snap, err := cs.Snapshot(ctx, "c1", counter.PeriodRef{PlanVersionID: 1, Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if got := nanos(snap.LifetimeSpendNanos); got != tierSt.LifetimeSpend {
			t.Errorf("c1 lifetime spend in the counters %s, in the ledger %s", got, tierSt.LifetimeSpend)
		}
		if snap.Tier != tierSt.Tier && !(snap.Tier == "" && tierSt.Tier == "free") {
			t.Errorf("c1 tier in the counters %q, in the ledger %q", snap.Tier, tierSt.Tier)
		}
		// Break a customer's counters behind the service's back: the check finds it, a
		// rebuild repairs it.
		if err := cs.Rebuild(ctx, counter.RebuildParams{CustomerID: "c2", Watermark: 1}); err != nil {
			t.Fatal(err)
		}
		check, err = f.svc.CheckCounters(ctx, "c2", false)
		if err != nil {
			t.Fatal(err)
		}
		if check.Drifted != 1 || len(check.Drifts) == 0 {
			t.Fatalf("a wiped customer was not reported: %+v", check)
		}
		if _, err := f.svc.CheckCounters(ctx, "c2", true); err != nil {
			t.Fatal(err)
		}
		if check, _ = f.svc.CheckCounters(ctx, "", false); check.Drifted != 0 {
			t.Fatalf("after repair: %+v", check)
		}
		// A restart: the in-process store starts empty and is rebuilt from the ledger; Redis
		// keeps its counters and the cursor says there is nothing to catch up.
		path = f.path
		f.close()
		cs2 := cs
		if !durable {
			cs2 = open()
		}
		g := newFixture(t, path, Options{Counters: cs2, CounterOptions: CounterOptions{Durable: durable}})
		waitApplied(t, g)
		if check, err = g.svc.CheckCounters(ctx, "", false); err != nil || check.Drifted != 0 {
			t.Fatalf("after restart: %+v (%v)", check, err)
		}
	})
}
