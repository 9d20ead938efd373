package limit

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// ratBucket is an independent model of the bucket: the textbook GCRA on exact rationals,
// with emission interval T = window/limit and the TAT as a rational instant. It knows nothing
// of scaled units or of the (At, Frac) split.
type ratBucket struct {
	window, limit int64
	tat           *big.Rat // nil: never charged
}

func rat(n int64) *big.Rat { return new(big.Rat).SetInt64(n) }

func (b *ratBucket) interval() *big.Rat { return big.NewRat(b.window, b.limit) }

// debt is max(TAT − now, 0), or 0 when the TAT lies beyond the horizon.
func (b *ratBucket) debt(now int64) *big.Rat {
	if b.tat == nil {
		return rat(0)
	}
	d := new(big.Rat).Sub(b.tat, rat(now))
	if d.Sign() < 0 || d.Cmp(rat(HorizonWindows*b.window)) > 0 {
		return rat(0)
	}
	return d
}

func ratCeil(x *big.Rat) int64 {
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

func ratFloor(x *big.Rat) int64 {
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() < 0 {
		q.Sub(q, big.NewInt(1))
	}
	return q.Int64()
}

// check is GCRA in the model: allowed iff debt + max(cost,1)·T ≤ window.
func (b *ratBucket) check(now, cost int64) GCRAResult {
	T := b.interval()
	w := rat(b.window)
	d := b.debt(now)
	status := func(d *big.Rat) (int64, int64) {
		var rem int64
		if d.Cmp(w) < 0 {
			rem = ratFloor(new(big.Rat).Quo(new(big.Rat).Sub(w, d), T))
		}
		return rem, ratCeil(d)
	}
	if cost > b.limit {
		rem, reset := status(d)
		return GCRAResult{Never: true, Remaining: rem, ResetAfter: reset}
	}
	c := rat(max(cost, 1))
	after := new(big.Rat).Add(d, new(big.Rat).Mul(c, T))
	if after.Cmp(w) <= 0 {
		nd := new(big.Rat).Add(d, new(big.Rat).Mul(rat(cost), T))
		b.tat = new(big.Rat).Add(rat(now), nd)
		rem, reset := status(nd)
		return GCRAResult{Allowed: true, Remaining: rem, ResetAfter: reset}
	}
	rem, reset := status(d)
	// smallest whole Δ with d − Δ + c·T ≤ window
	return GCRAResult{RetryAfter: ratCeil(new(big.Rat).Sub(after, w)), Remaining: rem, ResetAfter: reset}
}

// adjust is GCRAAdjust in the model.
func (b *ratBucket) adjust(now, delta int64) {
	T := b.interval()
	d := b.debt(now)
	x := new(big.Rat).Mul(rat(delta), T)
	nd := new(big.Rat).Add(d, x)
	if delta > 0 {
		limit := rat(DebtCapWindows * b.window)
		if nd.Cmp(limit) > 0 {
			nd = limit
		}
		if nd.Cmp(d) < 0 {
			nd = d
		}
	} else if nd.Sign() < 0 {
		nd = rat(0)
	}
	b.tat = new(big.Rat).Add(rat(now), nd)
}

// tatValue is At + Frac/limit as a rational.
func tatValue(t TAT, limit int64) *big.Rat {
	return new(big.Rat).Add(rat(t.At), big.NewRat(t.Frac, limit))
}

// TestGCRAMatchesRationalModel runs random sequences of checks and settlement charges,
// with a clock that mostly moves forward and sometimes steps back, against the model.
func TestGCRAMatchesRationalModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	limits := []int64{1, 3, 7, 60, 100, 997, 100_000, 99_999}
	var allowed, denied, never int
	for run := range 300 {
		limit := limits[run%len(limits)]
		window := []int64{1000, minute, 3_600_000}[run%3]
		m := &ratBucket{window: window, limit: limit}
		var tat TAT
		now := rng.Int64N(1 << 40)
		for step := range 200 {
			switch r := rng.IntN(20); {
			case r < 12:
				now += rng.Int64N(3*window/limit + 2)
			case r < 13:
				now -= rng.Int64N(window) // a small step back
			case r < 14:
				now -= 5 * window // beyond the horizon
			}
			now = max(now, 0)
			if rng.IntN(5) == 0 {
				delta := rng.Int64N(2*limit+1) - limit
				tat = GCRAAdjust(tat, now, window, limit, delta)
				if delta != 0 {
					m.adjust(now, delta)
				}
			} else {
				cost := rng.Int64N(limit + 2)
				if rng.IntN(3) == 0 {
					cost = min(cost, 1)
				}
				got := GCRA(tat, now, window, limit, cost)
				want := m.check(now, cost)
				want.TAT = got.TAT // compared as values below
				if got != want {
					t.Fatalf("run %d step %d (limit %d window %d now %d cost %d): got %+v, model %+v",
						run, step, limit, window, now, cost, got, want)
				}
				switch {
				case got.Allowed:
					allowed++
				case got.Never:
					never++
				default:
					denied++
				}
				if !got.Allowed && got.TAT != tat {
					t.Fatalf("run %d step %d: denied call changed the TAT %+v → %+v", run, step, tat, got.TAT)
				}
				tat = got.TAT
			}
			// The stored TAT and the model agree on the debt now.
			if m.tat != nil {
				gotDebt := big.NewRat(debt(tat, now, window, limit), limit)
				if gotDebt.Cmp(m.debt(now)) != 0 {
					t.Fatalf("run %d step %d: debt %v, model %v (TAT %+v = %v, model TAT %v)",
						run, step, gotDebt, m.debt(now), tat, tatValue(tat, limit), m.tat)
				}
			}
		}
	}
	if allowed < 5000 || denied < 5000 || never < 500 {
		t.Fatalf("too few cases: %d allowed, %d denied, %d never", allowed, denied, never)
	}
}

func TestGCRABurstIsExactlyTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name          string
		window, limit int64
	}{
		{"100 per minute", minute, 100},
		{"7 per minute", minute, 7},
		{"1 per minute", minute, 1},
		{"999 per second", 1000, 999},
		{"1000 per hour", 3_600_000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tat TAT
			now := int64(1_750_000_000_000)
			allowed := 0
			for range 1000 {
				r := GCRA(tat, now, tc.window, tc.limit, 1)
				if r.Allowed {
					allowed++
				}
				tat = r.TAT
			}
			if int64(allowed) != tc.limit {
				t.Errorf("1000 requests at one instant: %d allowed, want %d", allowed, tc.limit)
			}
		})
	}
}

// TestGCRARetryAfterIsExact checks, over many random bucket states, that a denied call is
// allowed after exactly RetryAfter and still denied one unit earlier.
func TestGCRARetryAfterIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	checked := 0
	for range 20_000 {
		limit := 1 + rng.Int64N(200_000)
		window := []int64{1000, minute, 3_600_000}[rng.IntN(3)]
		now := rng.Int64N(1 << 42)
		// A bucket somewhere between empty and two windows in debt.
		tat := GCRAAdjust(TAT{}, now, window, limit, rng.Int64N(2*limit+1))
		cost := rng.Int64N(limit + 1)
		r := GCRA(tat, now, window, limit, cost)
		if r.Allowed || r.Never {
			continue
		}
		checked++
		if r.RetryAfter < 1 {
			t.Fatalf("denied with RetryAfter %d", r.RetryAfter)
		}
		if at := GCRA(tat, now+r.RetryAfter, window, limit, cost); !at.Allowed {
			t.Fatalf("limit %d window %d cost %d TAT %+v now %d: denied at now+RetryAfter (%d)",
				limit, window, cost, tat, now, r.RetryAfter)
		}
		if before := GCRA(tat, now+r.RetryAfter-1, window, limit, cost); before.Allowed {
			t.Fatalf("limit %d window %d cost %d TAT %+v now %d: allowed at now+RetryAfter−1 (%d)",
				limit, window, cost, tat, now, r.RetryAfter)
		}
	}
	if checked < 5000 {
		t.Fatalf("only %d denials checked", checked)
	}
}

// TestGCRALongRunRate hammers a bucket every time unit and counts admissions: over [0, D] an
// empty bucket admits exactly limit + ⌊D·limit/window⌋ unit requests.
func TestGCRALongRunRate(t *testing.T) {
	for _, tc := range []struct{ window, limit, duration int64 }{
		{minute, 7, 3 * minute},
		{minute, 1000, 2 * minute},
		{1000, 3, 10_000},
		{minute, 59_999, minute + 17},
	} {
		var tat TAT
		var allowed int64
		for now := int64(0); now <= tc.duration; now++ {
			r := GCRA(tat, now, tc.window, tc.limit, 1)
			if r.Allowed {
				allowed++
			}
			tat = r.TAT
			// A client may hammer the same instant more than once; all but what fits is denied.
			for r.Allowed {
				r = GCRA(tat, now, tc.window, tc.limit, 1)
				if r.Allowed {
					allowed++
				}
				tat = r.TAT
			}
		}
		want := tc.limit + tc.duration*tc.limit/tc.window
		if allowed != want {
			t.Errorf("limit %d per %d over %d: %d admitted, want %d", tc.limit, tc.window, tc.duration, allowed, want)
		}
	}
}

// TestGCRALimitChange: a limit change keeps the debt in time to within one time unit.
func TestGCRALimitChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		oldL, newL := 1+rng.Int64N(100_000), 1+rng.Int64N(100_000)
		now := rng.Int64N(1 << 40)
		tat := GCRAAdjust(TAT{}, now, minute, oldL, 1+rng.Int64N(2*oldL))
		before := tatValue(tat, oldL)
		after := tatValue(TAT{tat.At, clamp(tat.Frac, 0, newL-1)}, newL)
		diff := new(big.Rat).Sub(after, before)
		if diff.Abs(diff).Cmp(rat(1)) >= 0 {
			t.Fatalf("limit %d → %d moved TAT %+v by %v", oldL, newL, tat, diff)
		}
		// The bucket read under the new limit is still well formed.
		r := GCRA(tat, now, minute, newL, 1)
		if r.Remaining < 0 || r.Remaining > newL {
			t.Fatalf("remaining %d out of [0, %d]", r.Remaining, newL)
		}
	}
}

func TestGCRAStatusInvalid(t *testing.T) {
	if rem, reset := GCRAStatus(TAT{5, 5}, 0, 0, 10); rem != 0 || reset != 0 {
		t.Errorf("GCRAStatus with window 0 = (%d, %d), want zeros", rem, reset)
	}
}
