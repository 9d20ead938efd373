package limit

import "testing"

// FuzzGCRA checks the bucket's invariants on any input: no panic; a denial leaves the TAT
// alone; an admission writes a normalised TAT within one window of debt; Remaining and
// ResetAfter agree with GCRAStatus; RetryAfter is exact.
func FuzzGCRA(f *testing.F) {
	for _, v := range GCRAVectors {
		f.Add(v.TAT.At, v.TAT.Frac, v.Now, v.Window, v.Limit, v.Cost)
	}
	f.Fuzz(func(t *testing.T, at, frac, now, window, limit, cost int64) {
		checkGCRA(t, TAT{at, frac}, now, window, limit, cost)
		// Random int64s are rarely inside the valid ranges: fold them in, too.
		window = 1 + mod(window, 3_600_000)
		limit = 1 + mod(limit, MaxWindowUnits/window)
		now = mod(now, MaxTime+1)
		checkGCRA(t, TAT{now - window + mod(at, 6*window), mod(frac, limit+1)}, now, window, limit, mod(cost, limit+2))
	})
}

// mod is x mod n in [0, n).
func mod(x, n int64) int64 { return (x%n + n) % n }

func checkGCRA(t *testing.T, tat TAT, now, window, limit, cost int64) {
	t.Helper()
	r := GCRA(tat, now, window, limit, cost)
	if !rateValid(now, window, limit) || cost < 0 {
		if !r.Never || r.Allowed || r.TAT != tat {
			t.Fatalf("invalid input: %+v", r)
		}
		return
	}
	if r.Remaining < 0 || r.Remaining > limit || r.ResetAfter < 0 || r.ResetAfter > HorizonWindows*window {
		t.Fatalf("figures out of range: %+v", r)
	}
	if r.Allowed {
		if r.Never || r.RetryAfter != 0 {
			t.Fatalf("allowed with Never or a wait: %+v", r)
		}
		if r.TAT.At < now || r.TAT.Frac < 0 || r.TAT.Frac >= limit || r.TAT.At > now+window {
			t.Fatalf("allowed TAT not normalised: %+v (now %d)", r.TAT, now)
		}
		if d := debt(r.TAT, now, window, limit); d > window*limit || d < min(cost, limit)*window {
			t.Fatalf("debt %d after charging %d (capacity %d)", d, cost, window*limit)
		}
		if rem, reset := GCRAStatus(r.TAT, now, window, limit); rem != r.Remaining || reset != r.ResetAfter {
			t.Fatalf("GCRAStatus (%d, %d) ≠ result %+v", rem, reset, r)
		}
		return
	}
	if r.TAT != tat {
		t.Fatalf("denial changed the TAT: %+v → %+v", tat, r.TAT)
	}
	if r.Never {
		if cost <= limit || r.RetryAfter != 0 {
			t.Fatalf("Never with cost %d ≤ limit %d or a wait: %+v", cost, limit, r)
		}
		return
	}
	if r.RetryAfter < 1 || r.RetryAfter > HorizonWindows*window {
		t.Fatalf("RetryAfter %d out of range", r.RetryAfter)
	}
	if now+r.RetryAfter <= MaxTime {
		if !GCRA(tat, now+r.RetryAfter, window, limit, cost).Allowed {
			t.Fatalf("denied at now+RetryAfter (%d)", r.RetryAfter)
		}
		if GCRA(tat, now+r.RetryAfter-1, window, limit, cost).Allowed {
			t.Fatalf("allowed at now+RetryAfter−1 (%d)", r.RetryAfter)
		}
	}
}

// FuzzGCRAAdjust checks that a charge without denial only ever moves the debt the way it
// should, stays within its cap, and writes a normalised TAT.
func FuzzGCRAAdjust(f *testing.F) {
	for _, v := range AdjustVectors {
		f.Add(v.TAT.At, v.TAT.Frac, v.Now, v.Window, v.Limit, v.Delta)
	}
	f.Fuzz(func(t *testing.T, at, frac, now, window, limit, delta int64) {
		checkAdjust(t, TAT{at, frac}, now, window, limit, delta)
		window = 1 + mod(window, 3_600_000)
		limit = 1 + mod(limit, MaxWindowUnits/window)
		now = mod(now, MaxTime+1)
		checkAdjust(t, TAT{now - window + mod(at, 6*window), mod(frac, limit+1)}, now, window, limit, delta%(3*limit))
	})
}

func checkAdjust(t *testing.T, tat TAT, now, window, limit, delta int64) {
	t.Helper()
	got := GCRAAdjust(tat, now, window, limit, delta)
	if delta == 0 || !rateValid(now, window, limit) {
		if got != tat {
			t.Fatalf("no-op changed the TAT: %+v → %+v", tat, got)
		}
		return
	}
	if got.At < now || got.Frac < 0 || got.Frac >= limit {
		t.Fatalf("TAT not normalised: %+v (now %d, limit %d)", got, now, limit)
	}
	before, after := debt(tat, now, window, limit), debt(got, now, window, limit)
	capD := DebtCapWindows * window * limit
	switch {
	case delta > 0 && (after < before || after > max(before, capD)):
		t.Fatalf("charge %d moved debt %d → %d (cap %d)", delta, before, after, capD)
	case delta < 0 && (after > before || after < 0):
		t.Fatalf("give-back %d moved debt %d → %d", delta, before, after)
	}
}

// FuzzDecide checks the decision's invariants on any state and request: no panic; Validate
// and the hot-path check agree; a denial changes nothing; an admission respects every cap
// and is undone exactly by Release.
func FuzzDecide(f *testing.F) {
	for _, v := range DecideVectors {
		s, r := v.State, v.Request
		l := r.Limits
		f.Add(s.RPM.At, s.RPM.Frac, s.TPM.At, s.TPM.Frac, s.UsedTokens, s.ReservedTokens, s.UsedNanos, s.ReservedNanos,
			s.InFlight, s.Balance, s.BreakerUntil, s.TaskBreakerUntil,
			l.Window, l.RequestsPerWindow, l.TokensPerWindow, l.MonthlyTokens, l.MonthlySpend, l.MaxConcurrent, l.WalletLimited,
			r.Estimate.Tokens, r.Estimate.Nanos, r.PeriodEnd, v.Now)
	}
	f.Fuzz(func(t *testing.T, rpmAt, rpmFrac, tpmAt, tpmFrac, usedT, resT, usedN, resN, inFlight, balance, breaker, taskBreaker,
		window, rpm, tpm, mTokens, mSpend, maxConc int64, walletLimited bool, estT, estN, periodEnd, now int64) {
		st := State{
			RPM: TAT{rpmAt, rpmFrac}, TPM: TAT{tpmAt, tpmFrac},
			UsedTokens: usedT, ReservedTokens: resT, UsedNanos: usedN, ReservedNanos: resN,
			InFlight: inFlight, Balance: balance, BreakerUntil: breaker, TaskBreakerUntil: taskBreaker,
		}
		req := Request{
			Limits: Limits{
				Window: window, RequestsPerWindow: rpm, TokensPerWindow: tpm,
				MonthlyTokens: mTokens, MonthlySpend: mSpend, MaxConcurrent: maxConc, WalletLimited: walletLimited,
			},
			Estimate:  Usage{estT, estN},
			PeriodEnd: periodEnd,
		}
		valid := req.Validate() == nil
		if valid != req.valid() {
			t.Fatalf("Validate says valid=%v, valid() says %v: %+v", valid, req.valid(), req)
		}
		d := Decide(st, req, now)
		if !valid || now < 0 || now > MaxTime {
			if d.Reason != DimInvalid || d.Allowed || d.State != st {
				t.Fatalf("invalid input decided: %+v", d)
			}
			return
		}
		for dim, q := range d.Quotas {
			if q.Remaining < 0 || q.ResetAfter < 0 {
				t.Fatalf("quota %v out of range: %+v", Dimension(dim), q)
			}
		}
		if d.RetryAfter < 0 || (d.Never && d.RetryAfter != 0) {
			t.Fatalf("RetryAfter %d (Never %v)", d.RetryAfter, d.Never)
		}
		if !d.Allowed {
			if d.State != st || d.Failed == 0 || !d.Failed.Has(d.Reason) {
				t.Fatalf("denial: %+v", d)
			}
			return
		}
		if d.Reason != DimNone || d.Failed != 0 || d.Reserved != req.Estimate {
			t.Fatalf("admission: %+v", d)
		}
		ns := d.State.norm()
		l := req.Limits
		if l.MonthlyTokens > 0 && ns.UsedTokens+ns.ReservedTokens > l.MonthlyTokens {
			t.Fatalf("token cap exceeded: %+v", ns)
		}
		if l.MonthlySpend > 0 && max(ns.UsedNanos, 0)+ns.ReservedNanos > l.MonthlySpend {
			t.Fatalf("spend cap exceeded: %+v", ns)
		}
		if l.WalletLimited && ns.ReservedNanos > ns.Balance {
			t.Fatalf("wallet overdrawn by reservations: %+v", ns)
		}
		if l.MaxConcurrent > 0 && ns.InFlight > l.MaxConcurrent {
			t.Fatalf("concurrency exceeded: %+v", ns)
		}
		c := st.norm()
		if c.ReservedTokens+estT < MaxValue && c.ReservedNanos+estN < MaxValue && c.InFlight < MaxValue {
			back := Release(d.State, d.Reserved)
			if back.ReservedTokens != c.ReservedTokens || back.ReservedNanos != c.ReservedNanos || back.InFlight != c.InFlight {
				t.Fatalf("Release did not undo the reservation: %+v → %+v → %+v", st, d.State, back)
			}
		}
	})
}
