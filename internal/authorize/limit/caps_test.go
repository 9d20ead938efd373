package limit

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// interesting draws an int64 that is often at or near a boundary.
func interesting(rng *rand.Rand) int64 {
	edges := []int64{0, 1, -1, 2, MaxValue, MaxValue - 1, -MaxValue, math.MaxInt64, math.MinInt64, 100, 99, 101}
	switch rng.IntN(3) {
	case 0:
		return edges[rng.IntN(len(edges))]
	case 1:
		return rng.Int64N(201) - 50
	}
	return int64(rng.Uint64())
}

func bi(n int64) *big.Int { return big.NewInt(n) }

// TestCapMatchesDefinition compares Cap with its definition computed on unbounded integers:
// allowed iff max(used,0) + max(reserved,0) + max(cost,1) ≤ limit.
func TestCapMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200_000 {
		used, reserved, limit, cost := interesting(rng), interesting(rng), interesting(rng), interesting(rng)
		held := new(big.Int).Add(bi(max(used, 0)), bi(max(reserved, 0)))
		head := new(big.Int).Sub(bi(limit), held)
		wantOK := new(big.Int).Add(held, bi(max(max(cost, 0), 1))).Cmp(bi(limit)) <= 0
		var wantRem int64
		switch {
		case wantOK:
			wantRem = new(big.Int).Sub(head, bi(max(cost, 0))).Int64()
		case head.Sign() > 0:
			wantRem = head.Int64()
		}
		ok, rem := Cap(used, reserved, limit, cost)
		if ok != wantOK || rem != wantRem {
			t.Fatalf("Cap(%d, %d, %d, %d) = (%v, %d), want (%v, %d)", used, reserved, limit, cost, ok, rem, wantOK, wantRem)
		}
		if rem < 0 {
			t.Fatalf("Cap(%d, %d, %d, %d): negative remaining %d", used, reserved, limit, cost, rem)
		}
	}
}

// TestWalletMatchesDefinition: allowed iff balance − max(reserved,0) ≥ max(estimate,0) and > 0.
func TestWalletMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 200_000 {
		balance, reserved, estimate := interesting(rng), interesting(rng), interesting(rng)
		avail := new(big.Int).Sub(bi(balance), bi(max(reserved, 0)))
		want := avail.Sign() > 0 && avail.Cmp(bi(max(estimate, 0))) >= 0
		if got := Wallet(balance, reserved, estimate); got != want {
			t.Fatalf("Wallet(%d, %d, %d) = %v, want %v", balance, reserved, estimate, got, want)
		}
	}
}

// TestCapAdmitsExactlyTheCap fills a cap with random costs: the total admitted never exceeds
// it, and a cap that is exactly reachable is reached.
func TestCapAdmitsExactlyTheCap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 1000 {
		limit := 1 + rng.Int64N(10_000)
		var used int64
		for range 200 {
			cost := rng.Int64N(limit/4 + 2)
			if ok, rem := Cap(used, 0, limit, cost); ok {
				used += cost
				if used+rem != limit {
					t.Fatalf("limit %d: used %d + remaining %d ≠ limit", limit, used, rem)
				}
			}
		}
		if used > limit {
			t.Fatalf("limit %d: admitted %d", limit, used)
		}
		// The last unit: exactly the headroom fits, one more does not.
		if used < limit {
			if ok, _ := Cap(used, 0, limit, limit-used+1); ok {
				t.Fatalf("limit %d used %d: admitted one more than the headroom", limit, used)
			}
			if ok, rem := Cap(used, 0, limit, limit-used); !ok || rem != 0 {
				t.Fatalf("limit %d used %d: the exact headroom was refused", limit, used)
			}
		}
	}
}
