package limit

import (
	"math/rand/v2"
	"testing"
)

// TestDecideSettleReleaseSequences drives one customer through random sequences of decisions,
// settlements, releases and clock moves, checking after every step:
//   - a denial returns the state unchanged;
//   - an admission changes exactly the reserved figures, the in-flight count and the charged
//     buckets, by exactly the estimate;
//   - at decision time no cap is exceeded by used + reserved, reservations never exceed the
//     wallet balance, and in-flight never exceeds the concurrency limit;
//   - once every reservation is settled or released, in-flight and reserved are zero, and the
//     used figures and the balance account for exactly the settled usage.
func TestDecideSettleReleaseSequences(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	var allowed, denied int
	reasons := map[Dimension]int{}
	for run := range 400 {
		lim := Limits{
			Window:            minute,
			RequestsPerWindow: 1 + rng.Int64N(20),
			TokensPerWindow:   1000 + rng.Int64N(20_000),
			MonthlyTokens:     10_000 + rng.Int64N(100_000),
			MonthlySpend:      100_000_000 + rng.Int64N(1_000_000_000),
			MaxConcurrent:     1 + rng.Int64N(4),
			WalletLimited:     run%3 != 0,
		}
		// Some dimensions unlimited now and then.
		if rng.IntN(4) == 0 {
			lim.RequestsPerWindow = 0
		}
		if rng.IntN(4) == 0 {
			lim.MonthlySpend = 0
		}
		initialBalance := rng.Int64N(800_000_000)
		st := State{Balance: initialBalance}
		now := int64(1_700_000_000_000) + rng.Int64N(1<<30)
		periodEnd := now + 30*24*3_600_000
		var open []Usage
		var usedTokens, usedNanos int64

		for step := range 400 {
			switch op := rng.IntN(20); {
			case op < 10: // decide
				est := Usage{Tokens: rng.Int64N(4000), Nanos: rng.Int64N(60_000_000)}
				if rng.IntN(10) == 0 {
					est = Usage{}
				}
				req := Request{Limits: lim, Estimate: est, PeriodEnd: periodEnd}
				d := Decide(st, req, now)
				if !d.Allowed {
					denied++
					reasons[d.Reason]++
					if d.State != st {
						t.Fatalf("run %d step %d: denial (%v) changed the state", run, step, d.Reason)
					}
					if d.Never && d.RetryAfter != 0 {
						t.Fatalf("run %d step %d: Never with RetryAfter %d", run, step, d.RetryAfter)
					}
					continue
				}
				allowed++
				ns := d.State
				want := st
				want.ReservedTokens += est.Tokens
				want.ReservedNanos += est.Nanos
				want.InFlight++
				want.RPM, want.TPM = ns.RPM, ns.TPM
				if ns != want {
					t.Fatalf("run %d step %d: admission changed more than it should:\n got %+v\nwant %+v", run, step, ns, want)
				}
				if lim.RequestsPerWindow == 0 && ns.RPM != st.RPM {
					t.Fatalf("run %d step %d: an unlimited RPM bucket was charged", run, step)
				}
				if lim.MonthlyTokens > 0 && ns.UsedTokens+ns.ReservedTokens > lim.MonthlyTokens {
					t.Fatalf("run %d step %d: tokens %d + %d exceed the cap %d", run, step, ns.UsedTokens, ns.ReservedTokens, lim.MonthlyTokens)
				}
				if lim.MonthlySpend > 0 && max(ns.UsedNanos, 0)+ns.ReservedNanos > lim.MonthlySpend {
					t.Fatalf("run %d step %d: spend %d + %d exceeds the cap %d", run, step, ns.UsedNanos, ns.ReservedNanos, lim.MonthlySpend)
				}
				if lim.WalletLimited && ns.ReservedNanos > ns.Balance {
					t.Fatalf("run %d step %d: reserved %d exceeds the balance %d", run, step, ns.ReservedNanos, ns.Balance)
				}
				if ns.InFlight > lim.MaxConcurrent {
					t.Fatalf("run %d step %d: %d in flight, limit %d", run, step, ns.InFlight, lim.MaxConcurrent)
				}
				for dim, q := range d.Quotas {
					if q.Remaining < 0 {
						t.Fatalf("run %d step %d: negative remaining in %v", run, step, Dimension(dim))
					}
				}
				st = ns
				open = append(open, d.Reserved)
			case op < 15 && len(open) > 0: // settle
				i := rng.IntN(len(open))
				res := open[i]
				open = append(open[:i], open[i+1:]...)
				actual := Usage{Tokens: rng.Int64N(2*res.Tokens + 2), Nanos: rng.Int64N(2*res.Nanos+2) - res.Nanos/4}
				st = Settle(st, res, actual, lim, now)
				usedTokens += actual.Tokens
				usedNanos += actual.Nanos
			case op < 17 && len(open) > 0: // release
				i := rng.IntN(len(open))
				st = Release(st, open[i])
				open = append(open[:i], open[i+1:]...)
			default: // time passes
				now += rng.Int64N(5000)
			}
			if st.InFlight != int64(len(open)) {
				t.Fatalf("run %d step %d: in flight %d, open reservations %d", run, step, st.InFlight, len(open))
			}
		}
		for _, res := range open {
			st = Settle(st, res, res, lim, now)
			usedTokens += res.Tokens
			usedNanos += res.Nanos
		}
		if st.InFlight != 0 || st.ReservedTokens != 0 || st.ReservedNanos != 0 {
			t.Fatalf("run %d: after settling everything: in flight %d, reserved %d tokens %d nanos",
				run, st.InFlight, st.ReservedTokens, st.ReservedNanos)
		}
		if st.UsedTokens != usedTokens || st.UsedNanos != usedNanos {
			t.Fatalf("run %d: used %d tokens %d nanos, settled %d and %d", run, st.UsedTokens, st.UsedNanos, usedTokens, usedNanos)
		}
		wantBalance := initialBalance
		if lim.WalletLimited {
			wantBalance -= usedNanos
		}
		if st.Balance != wantBalance {
			t.Fatalf("run %d: balance %d, want %d", run, st.Balance, wantBalance)
		}
	}
	t.Logf("%d allowed, %d denied, reasons %v", allowed, denied, reasons)
	if allowed < 10_000 || denied < 10_000 {
		t.Fatalf("too few cases: %d allowed, %d denied", allowed, denied)
	}
	for d := DimMonthlySpend; d < NumDimensions; d++ {
		if reasons[d] == 0 {
			t.Errorf("no denial for %v in the random sequences", d)
		}
	}
}
