package countertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/counter"
)

// Expiries are whole milliseconds (as the stores keep them) unless a case says otherwise.
var (
	expA = start.Add(90 * 24 * time.Hour)
	expB = start.Add(30 * 24 * time.Hour)
)

func grant(t *testing.T, s counter.Store, p counter.GrantParams) bool {
	t.Helper()
	ok, err := s.Grant(context.Background(), p)
	must(t, err, fmt.Sprintf("grant %s to %s", p.GrantID, p.CustomerID))
	return ok
}

func wantWallet(t *testing.T, sn counter.Snapshot, at time.Time, want int64, wantHas bool) {
	t.Helper()
	if got, has := sn.WalletNanos(at); got != want || has != wantHas {
		t.Fatalf("WalletNanos(%s) = %d, %t; want %d, %t (grants %+v)", at.Format(time.RFC3339Nano), got, has,
			want, wantHas, sn.Grants)
	}
}

// Burns and refunds across several grants, including a grant never granted (its balance goes
// negative) and a zero burn (no entry).
func testWalletBurnsAndRefunds(t *testing.T, s counter.Store) {
	if !grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 1_000, ExpiresAt: expA}) {
		t.Fatal("first grant of g1 reported not granted")
	}
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g2", Nanos: 500})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g3", Nanos: 300, ExpiresAt: expB})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 500, Events: 1,
		Wallet: map[string]int64{"g1": 400, "g2": 100}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, SpendNanos: 850, Events: 1,
		Wallet: map[string]int64{"g1": 600, "g2": -50, "g3": 300, "zero": 0}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 3, Period: p1, SpendNanos: -100, Events: 1,
		Wallet: map[string]int64{"g1": -100, "ungranted": 7}})
	want := counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 1_250,
		Period: counter.PeriodCounters{SpendNanos: 1_250, Events: 3},
		Grants: map[string]counter.GrantCounter{
			"g1":        {Nanos: 100, ExpiresAt: expA},
			"g2":        {Nanos: 450},
			"g3":        {Nanos: 0, ExpiresAt: expB}, // exhausted, still listed
			"ungranted": {Nanos: -7},
		}}
	wantSnap(t, s, "c1", p1, want)
	sn := snap(t, s, "c1", p1)
	wantWallet(t, sn, start, 100+450+0-7, true)
	// g3 expired: its zero balance no longer counts; g1 too after expA.
	wantWallet(t, sn, expB, 100+450-7, true)
	wantWallet(t, sn, expA, 450-7, true)
	// The wallet is per customer.
	wantSnap(t, s, "c2", p1, counter.Snapshot{})
	if sn := snap(t, s, "c2", p1); sn.Grants != nil {
		t.Fatalf("customer without grants: Grants = %#v, want nil", sn.Grants)
	}
}

// A Seq at or below the watermark burns nothing and sets no tier.
func testDuplicateSeqLeavesWalletAndTier(t *testing.T, s counter.Store) {
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 1_000})
	p := counter.ApplyParams{CustomerID: "c1", Seq: 5, Period: p1, SpendNanos: 10, Events: 1,
		Wallet: map[string]int64{"g1": 10, "g2": 3}, Tier: "silver"}
	apply(t, s, p)
	want := counter.Snapshot{Watermark: 5, LifetimeSpendNanos: 10, Tier: "silver",
		Period: counter.PeriodCounters{SpendNanos: 10, Events: 1},
		Grants: map[string]counter.GrantCounter{"g1": {Nanos: 990}, "g2": {Nanos: -3}}}
	wantSnap(t, s, "c1", p1, want)
	for _, seq := range []int64{5, 4, 1} {
		dup := p
		dup.Seq = seq
		dup.Tier = "gold"
		dup.Wallet = map[string]int64{"g1": 500, "g3": 1}
		if a := apply(t, s, dup); a.Applied {
			t.Fatalf("seq %d under watermark 5: got %+v, want a no-op", seq, a)
		}
		wantSnap(t, s, "c1", p1, want)
	}
}

// Grant adds its amount once per grant ID, whoever calls it and however often; a repeat with
// another amount or expiry changes nothing. Grant does not move the watermark.
func testGrantExactlyOnce(t *testing.T, s counter.Store) {
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := map[string]int{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for _, id := range []string{"g1", "g2", "g3"} {
				ok, err := s.Grant(context.Background(), counter.GrantParams{CustomerID: "c1", GrantID: id,
					Nanos: 1_000, ExpiresAt: expA})
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				if ok {
					mu.Lock()
					granted[id]++
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
	for _, id := range []string{"g1", "g2", "g3"} {
		if granted[id] != 1 {
			t.Fatalf("grant %s reported granted %d times, want exactly once", id, granted[id])
		}
	}
	if grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 99, ExpiresAt: expB}) {
		t.Fatal("second grant of g1 with another amount: reported granted")
	}
	if grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g2", Nanos: 1_000}) {
		t.Fatal("second grant of g2 without expiry: reported granted")
	}
	want := counter.Snapshot{Grants: map[string]counter.GrantCounter{
		"g1": {Nanos: 1_000, ExpiresAt: expA}, "g2": {Nanos: 1_000, ExpiresAt: expA}, "g3": {Nanos: 1_000, ExpiresAt: expA}}}
	wantSnap(t, s, "c1", p1, want)
	// The same grant ID of another customer is another grant.
	if !grant(t, s, counter.GrantParams{CustomerID: "c2", GrantID: "g1", Nanos: 5}) {
		t.Fatal("grant g1 to c2: reported not granted")
	}
	wantSnap(t, s, "c2", p1, counter.Snapshot{Grants: map[string]counter.GrantCounter{"g1": {Nanos: 5}}})
	// Applies still start from watermark 0.
	if a := apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Events: 1}); !a.Applied {
		t.Fatalf("seq 1 after grants: got %+v, want applied", a)
	}
}

// Burns that reach the store before their grant leave the balance negative until Grant adds
// the amount: both orders end the same.
func testGrantAfterBurnConverges(t *testing.T, s counter.Store) {
	gp := func(id string) counter.GrantParams {
		return counter.GrantParams{CustomerID: id, GrantID: "g1", Nanos: 1_000, ExpiresAt: expA}
	}
	burns := []counter.ApplyParams{
		{Seq: 1, Period: p1, SpendNanos: 300, Events: 1, Wallet: map[string]int64{"g1": 300}},
		{Seq: 2, Period: p1, SpendNanos: 500, Events: 1, Wallet: map[string]int64{"g1": 500}},
		{Seq: 3, Period: p1, SpendNanos: -200, Events: 1, Wallet: map[string]int64{"g1": -200}},
	}
	// Grant first.
	grant(t, s, gp("first"))
	for _, b := range burns {
		b.CustomerID = "first"
		apply(t, s, b)
	}
	// Grant last: before it, the grant shows the burns as a negative balance without expiry.
	for _, b := range burns {
		b.CustomerID = "last"
		apply(t, s, b)
	}
	sn := snap(t, s, "last", p1)
	if g := sn.Grants["g1"]; g.Nanos != -600 || !g.ExpiresAt.IsZero() {
		t.Fatalf("burned before granted: got %+v, want -600 without expiry", g)
	}
	wantWallet(t, sn, expA.Add(time.Hour), -600, true)
	if !grant(t, s, gp("last")) {
		t.Fatal("grant after burns: reported not granted")
	}
	// Grant in the middle.
	for i, b := range burns {
		b.CustomerID = "middle"
		apply(t, s, b)
		if i == 0 {
			grant(t, s, gp("middle"))
		}
	}
	want := counter.Snapshot{Watermark: 3, LifetimeSpendNanos: 600,
		Period: counter.PeriodCounters{SpendNanos: 600, Events: 3},
		Grants: map[string]counter.GrantCounter{"g1": {Nanos: 400, ExpiresAt: expA}}}
	for _, id := range []string{"first", "last", "middle"} {
		wantSnap(t, s, id, p1, want)
		if grant(t, s, gp(id)) {
			t.Fatalf("%s: repeated grant reported granted", id)
		}
	}
	wantSnap(t, s, "last", p1, want)
}

// A burn or refund that would take a grant's balance out of int64 fails the whole Apply:
// wallet, tier, watermark and period unchanged.
func testWalletOverflowChangesNothing(t *testing.T, s counter.Store) {
	ctx := context.Background()
	setup := counter.RebuildParams{Watermark: 1, LifetimeSpendNanos: 10, Tier: "bronze",
		Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: 10, Events: 1, Usage: map[string]int64{"m": 1}}},
		Grants: map[string]counter.GrantCounter{
			"low":  {Nanos: math.MinInt64 + 5, ExpiresAt: expA},
			"high": {Nanos: math.MaxInt64 - 5},
			"ok":   {Nanos: 1_000},
		}}
	cases := []struct {
		name   string
		wallet map[string]int64
	}{
		{"burn below MinInt64", map[string]int64{"ok": 10, "low": 6, "new": 1}},
		{"refund above MaxInt64", map[string]int64{"ok": 10, "high": -6, "new": 1}},
		{"burn of a new grant", map[string]int64{"ok": 10, "new": math.MaxInt64, "low": 1}},
	}
	for i, tc := range cases {
		id := fmt.Sprintf("wovf-%d", i)
		setup.CustomerID = id
		must(t, s.Rebuild(ctx, setup), tc.name+": rebuild")
		if tc.name == "burn of a new grant" {
			// A grant burned before it was granted, near the bottom.
			apply(t, s, counter.ApplyParams{CustomerID: id, Seq: 2, Period: p1, Events: 1,
				Wallet: map[string]int64{"new": math.MaxInt64 - 1}})
		}
		before1, before2 := snap(t, s, id, p1), snap(t, s, id, p2)
		_, err := s.Apply(ctx, counter.ApplyParams{CustomerID: id, Seq: 10, Period: p2, SpendNanos: 5, Events: 1,
			Usage: map[string]int64{"m": 1}, Wallet: tc.wallet, Tier: "gold"})
		if !errors.Is(err, counter.ErrOverflow) {
			t.Fatalf("%s: got %v, want ErrOverflow", tc.name, err)
		}
		if got := snap(t, s, id, p1); !equal(got, before1) {
			t.Fatalf("%s: changed by a failed apply:\n got %+v\nwant %+v", tc.name, got, before1)
		}
		if got := snap(t, s, id, p2); !equal(got, before2) {
			t.Fatalf("%s: period 2 changed by a failed apply:\n got %+v\nwant %+v", tc.name, got, before2)
		}
		// The customer goes on: the same Seq without the bad burn is applied.
		if a := apply(t, s, counter.ApplyParams{CustomerID: id, Seq: 10, Period: p2, Events: 1,
			Wallet: map[string]int64{"ok": 1}, Tier: "gold"}); !a.Applied {
			t.Fatalf("%s: seq 10 after the failed apply: got %+v", tc.name, a)
		}
		if sn := snap(t, s, id, p2); sn.Tier != "gold" || sn.Grants["ok"].Nanos != 999 {
			t.Fatalf("%s: after the good apply: %+v", tc.name, sn)
		}
	}
}

// A Grant that would overflow its balance changes nothing and leaves the grant ungranted, so it
// can be granted once the balance allows.
func testGrantOverflowChangesNothing(t *testing.T, s counter.Store) {
	ctx := context.Background()
	// A refund reached the store before the grant: the balance is near the top.
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, Events: 1,
		Wallet: map[string]int64{"g1": -(math.MaxInt64 - 5)}})
	before := snap(t, s, "c1", p1)
	ok, err := s.Grant(ctx, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 6, ExpiresAt: expA})
	if !errors.Is(err, counter.ErrOverflow) || ok {
		t.Fatalf("grant over MaxInt64: got %t, %v; want ErrOverflow", ok, err)
	}
	wantSnap(t, s, "c1", p1, before)
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, Events: 1, Wallet: map[string]int64{"g1": 100}})
	if !grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 6, ExpiresAt: expA}) {
		t.Fatal("grant after the failed one: reported not granted, so the failure left its marker")
	}
	if g := snap(t, s, "c1", p1).Grants["g1"]; g.Nanos != math.MaxInt64-5-100+6 || !g.ExpiresAt.Equal(expA) {
		t.Fatalf("balance after grant: %+v", g)
	}
}

// A grant counts strictly before its expiry; expiries are kept to the millisecond, truncated.
func testExpiryBoundary(t *testing.T, s counter.Store) {
	e := start.Add(10 * 24 * time.Hour)
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "at-e", Nanos: 1, ExpiresAt: e})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "at-e+1ms", Nanos: 10, ExpiresAt: e.Add(time.Millisecond)})
	// 1.9 ms after e, in another location: kept as e + 1 ms.
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "sub-ms", Nanos: 100,
		ExpiresAt: e.Add(1900 * time.Microsecond).In(time.FixedZone("X", -5*3600))})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "never", Nanos: 1_000})
	sn := snap(t, s, "c1", p1)
	if got := sn.Grants["sub-ms"].ExpiresAt; !got.Equal(e.Add(time.Millisecond)) {
		t.Fatalf("sub-millisecond expiry stored as %s, want %s", got, e.Add(time.Millisecond))
	}
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{e.Add(-time.Nanosecond), 1_111},
		{e, 1_110}, // at == ExpiresAt: expired
		{e.Add(time.Millisecond - time.Nanosecond), 1_110},
		{e.Add(time.Millisecond), 1_000},
		{e.Add(1900 * time.Microsecond), 1_000},
	} {
		wantWallet(t, sn, tc.at, tc.want, true)
	}
	// Every grant expired: the customer still has a wallet, with nothing in it.
	only := counter.Snapshot{Grants: map[string]counter.GrantCounter{"x": {Nanos: 5, ExpiresAt: e}}}
	wantWallet(t, only, e, 0, true)
	wantWallet(t, counter.Snapshot{}, e, 0, false)
}

// Rebuild replaces the wallet and the tier wholesale and marks the rebuilt grants granted.
func testRebuildReplacesWalletAndTier(t *testing.T, s counter.Store) {
	ctx := context.Background()
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "old", Nanos: 1_000, ExpiresAt: expA})
	grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "kept", Nanos: 1_000, ExpiresAt: expA})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 5, Events: 1, Tier: "gold",
		Wallet: map[string]int64{"old": 5, "burned": 2}})
	want := counter.RebuildParams{CustomerID: "c1", Watermark: 7, LifetimeSpendNanos: 50, Tier: "silver",
		Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {SpendNanos: 50, Events: 2}},
		Grants: map[string]counter.GrantCounter{
			"kept":     {Nanos: 0, ExpiresAt: expB}, // the expiry is replaced too
			"new":      {Nanos: 300},
			"negative": {Nanos: -20, ExpiresAt: expA},
		}}
	must(t, s.Rebuild(ctx, want), "rebuild")
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 7, LifetimeSpendNanos: 50, Tier: "silver",
		Period: counter.PeriodCounters{SpendNanos: 50, Events: 2}, Grants: want.Grants})
	// Rebuilt grants are granted; grants the rebuild left out are not any more.
	for id, wantOK := range map[string]bool{"kept": false, "new": false, "negative": false, "old": true} {
		if ok := grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: id, Nanos: 1}); ok != wantOK {
			t.Fatalf("grant %s after rebuild: got %t, want %t", id, ok, wantOK)
		}
	}
	if g := snap(t, s, "c1", p1).Grants["old"]; g.Nanos != 1 || !g.ExpiresAt.IsZero() {
		t.Fatalf("grant old after rebuild and a new grant: %+v", g)
	}
	// A rebuild with no tier and no grants empties both.
	must(t, s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c1", Watermark: 7}), "rebuild to nothing")
	sn := snap(t, s, "c1", p1)
	if sn.Tier != "" || sn.Grants != nil {
		t.Fatalf("after rebuild to nothing: tier %q, grants %#v", sn.Tier, sn.Grants)
	}
	if !grant(t, s, counter.GrantParams{CustomerID: "c1", GrantID: "kept", Nanos: 1}) {
		t.Fatal("grant kept after an empty rebuild: reported not granted")
	}
}

// SetTier overrides at once, outside the Seq order; Apply with a tier sets it, without one
// leaves it.
func testTier(t *testing.T, s counter.Store) {
	ctx := context.Background()
	must(t, s.SetTier(ctx, "c1", "enterprise"), "set tier of a new customer")
	wantSnap(t, s, "c1", p1, counter.Snapshot{Tier: "enterprise"})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 1, Events: 1})
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 1, LifetimeSpendNanos: 1, Tier: "enterprise",
		Period: counter.PeriodCounters{SpendNanos: 1, Events: 1}})
	apply(t, s, counter.ApplyParams{CustomerID: "c1", Seq: 2, Period: p1, SpendNanos: 1, Events: 1, Tier: "gold"})
	if sn := snap(t, s, "c1", p1); sn.Tier != "gold" {
		t.Fatalf("tier after apply with gold: %q", sn.Tier)
	}
	must(t, s.SetTier(ctx, "c1", "platinum:manual"), "set tier")
	if sn := snap(t, s, "c1", p1); sn.Tier != "platinum:manual" || sn.Watermark != 2 {
		t.Fatalf("after SetTier: %+v", sn)
	}
	must(t, s.SetTier(ctx, "c1", ""), "clear tier")
	wantSnap(t, s, "c1", p1, counter.Snapshot{Watermark: 2, LifetimeSpendNanos: 2,
		Period: counter.PeriodCounters{SpendNanos: 2, Events: 2}})
	must(t, s.SetTier(ctx, "nobody", ""), "clear tier of an unknown customer")
	wantSnap(t, s, "nobody", p1, counter.Snapshot{})
	// Tiers are per customer, whatever the IDs look like.
	must(t, s.SetTier(ctx, "c1}", "x"), "set tier")
	if sn := snap(t, s, "c1", p1); sn.Tier != "" {
		t.Fatalf("tier of c1 after setting c1}'s: %q", sn.Tier)
	}
}

// Many goroutines per customer apply the same Seqs in order (duplicates) with burns and tiers,
// and grant the same grants: every Seq is counted once and every grant added once, so the
// wallets end exact.
func testWalletConcurrently(t *testing.T, s counter.Store) {
	const customers, workers, n = 6, 6, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := map[string]int{}
	granted := map[string]int{}
	errs := make(chan error, customers*workers)
	burn := func(seq int64) map[string]int64 {
		w := map[string]int64{"a": seq}
		if seq%3 == 0 {
			w["b"] = -1
		} else {
			w["b"] = 2
		}
		return w
	}
	for c := range customers {
		id := fmt.Sprintf("wc-%d", c)
		for w := range workers {
			wg.Go(func() {
				ctx := context.Background()
				for seq := int64(1); seq <= n; seq++ {
					if seq == int64(w*5+1) { // each worker grants at another point of the stream
						for _, g := range []string{"a", "b"} {
							ok, err := s.Grant(ctx, counter.GrantParams{CustomerID: id, GrantID: g, Nanos: 10_000})
							if err != nil {
								errs <- err
								return
							}
							if ok {
								mu.Lock()
								granted[id+"/"+g]++
								mu.Unlock()
							}
						}
					}
					a, err := s.Apply(ctx, counter.ApplyParams{CustomerID: id, Seq: seq, Period: p1, SpendNanos: seq,
						Events: 1, Wallet: burn(seq), Tier: fmt.Sprintf("t%d", seq/10)})
					if err != nil {
						errs <- err
						return
					}
					if a.Applied {
						mu.Lock()
						applied[fmt.Sprintf("%s/%d", id, seq)]++
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var wantA, wantB int64 = 10_000, 10_000
	for seq := int64(1); seq <= n; seq++ {
		wantA -= burn(seq)["a"]
		wantB -= burn(seq)["b"]
	}
	for c := range customers {
		id := fmt.Sprintf("wc-%d", c)
		for seq := int64(1); seq <= n; seq++ {
			if k := applied[fmt.Sprintf("%s/%d", id, seq)]; k != 1 {
				t.Fatalf("%s seq %d applied %d times, want once", id, seq, k)
			}
		}
		for _, g := range []string{"a", "b"} {
			if granted[id+"/"+g] != 1 {
				t.Fatalf("%s grant %s added %d times, want once", id, g, granted[id+"/"+g])
			}
		}
		wantSnap(t, s, id, p1, counter.Snapshot{Watermark: n, LifetimeSpendNanos: n * (n + 1) / 2,
			Tier:   fmt.Sprintf("t%d", n/10),
			Period: counter.PeriodCounters{SpendNanos: n * (n + 1) / 2, Events: n},
			Grants: map[string]counter.GrantCounter{"a": {Nanos: wantA}, "b": {Nanos: wantB}}})
	}
}

// Bad wallet, grant and tier input fails with ErrInvalid and writes nothing.
func testWalletInvalidInput(t *testing.T, s counter.Store) {
	ctx := context.Background()
	good := counter.ApplyParams{CustomerID: "c1", Seq: 1, Period: p1, SpendNanos: 1, Events: 1,
		Wallet: map[string]int64{"g1": 1}, Tier: "t"}
	for name, w := range map[string]map[string]int64{
		"empty grant ID":    {"g1": 1, "": 1},
		"burn of MinInt64":  {"g1": math.MinInt64},
		"empty ID, no burn": {"": 0},
	} {
		p := good
		p.Wallet = w
		if _, err := s.Apply(ctx, p); !errors.Is(err, counter.ErrInvalid) {
			t.Errorf("apply with %s: got %v, want ErrInvalid", name, err)
		}
	}
	gp := counter.GrantParams{CustomerID: "c1", GrantID: "g1", Nanos: 1}
	for name, mutate := range map[string]func(p *counter.GrantParams){
		"empty customer":     func(p *counter.GrantParams) { p.CustomerID = "" },
		"empty grant ID":     func(p *counter.GrantParams) { p.GrantID = "" },
		"zero nanos":         func(p *counter.GrantParams) { p.Nanos = 0 },
		"negative nanos":     func(p *counter.GrantParams) { p.Nanos = -5 },
		"expiry before 1970": func(p *counter.GrantParams) { p.ExpiresAt = time.Unix(-1, 0) },
		"expiry year 10000":  func(p *counter.GrantParams) { p.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		p := gp
		mutate(&p)
		if ok, err := s.Grant(ctx, p); !errors.Is(err, counter.ErrInvalid) || ok {
			t.Errorf("grant with %s: got %t, %v; want ErrInvalid", name, ok, err)
		}
	}
	if err := s.SetTier(ctx, "", "gold"); !errors.Is(err, counter.ErrInvalid) {
		t.Errorf("set tier of empty customer: got %v, want ErrInvalid", err)
	}
	for name, p := range map[string]counter.RebuildParams{
		"empty grant ID": {CustomerID: "c1", Grants: map[string]counter.GrantCounter{"": {Nanos: 1}}},
		"bad expiry":     {CustomerID: "c1", Grants: map[string]counter.GrantCounter{"g": {Nanos: 1, ExpiresAt: time.Unix(-1, 0)}}},
	} {
		if err := s.Rebuild(ctx, p); !errors.Is(err, counter.ErrInvalid) {
			t.Errorf("rebuild with %s: got %v, want ErrInvalid", name, err)
		}
	}
	wantSnap(t, s, "c1", p1, counter.Snapshot{})
}
