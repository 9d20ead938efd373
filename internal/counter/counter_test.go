package counter_test

import (
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/counter"
)

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestWalletNanos(t *testing.T) {
	t.Parallel()
	g := func(nanos int64, exp time.Time) counter.GrantCounter {
		return counter.GrantCounter{Nanos: nanos, ExpiresAt: exp}
	}
	tests := []struct {
		name    string
		grants  map[string]counter.GrantCounter
		want    int64
		wantHas bool
	}{
		{"no wallet", nil, 0, false},
		{"empty map", map[string]counter.GrantCounter{}, 0, false},
		{"one grant without expiry", map[string]counter.GrantCounter{"a": g(5, time.Time{})}, 5, true},
		{"expired at the instant", map[string]counter.GrantCounter{"a": g(5, at), "b": g(7, at.Add(time.Nanosecond))}, 7, true},
		{"expired long ago", map[string]counter.GrantCounter{"a": g(5, at.Add(-time.Hour))}, 0, true},
		{"negative and zero balances count", map[string]counter.GrantCounter{
			"a": g(-5, time.Time{}), "b": g(0, at.Add(time.Hour)), "c": g(12, time.Time{})}, 7, true},
		{"saturates up", map[string]counter.GrantCounter{"a": g(math.MaxInt64, time.Time{}), "b": g(1, time.Time{})},
			math.MaxInt64, true},
		{"saturates down", map[string]counter.GrantCounter{"a": g(math.MinInt64, time.Time{}), "b": g(-1, time.Time{})},
			math.MinInt64, true},
		{"comes back inside int64", map[string]counter.GrantCounter{
			"a": g(math.MaxInt64, time.Time{}), "b": g(math.MaxInt64, time.Time{}), "c": g(math.MinInt64, time.Time{}),
			"d": g(math.MinInt64, time.Time{}), "e": g(3, time.Time{})}, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, has := counter.Snapshot{Grants: tc.grants}.WalletNanos(at)
			if got != tc.want || has != tc.wantHas {
				t.Fatalf("got %d, %t; want %d, %t", got, has, tc.want, tc.wantHas)
			}
		})
	}
}

// FuzzWalletNanos checks WalletNanos against the exact sum (big.Int) clamped to int64, whatever
// the map's iteration order makes of the intermediate sums.
func FuzzWalletNanos(f *testing.F) {
	f.Add(int64(1), int64(2), int64(3), int64(0), int64(-1), int64(5))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MinInt64), int64(0), int64(0), int64(0))
	f.Add(int64(math.MinInt64), int64(-1), int64(1), int64(1), int64(1), int64(-1))
	f.Fuzz(func(t *testing.T, a, b, c, ea, eb, ec int64) {
		grants := map[string]counter.GrantCounter{}
		want := new(big.Int)
		for i, v := range []struct{ n, e int64 }{{a, ea}, {b, eb}, {c, ec}} {
			var exp time.Time
			if v.e != 0 {
				exp = at.Add(time.Duration(v.e % int64(time.Hour))) // around `at`, either side
			}
			grants[string(rune('a'+i))] = counter.GrantCounter{Nanos: v.n, ExpiresAt: exp}
			if exp.IsZero() || at.Before(exp) {
				want.Add(want, big.NewInt(v.n))
			}
		}
		switch {
		case want.Cmp(big.NewInt(math.MaxInt64)) > 0:
			want.SetInt64(math.MaxInt64)
		case want.Cmp(big.NewInt(math.MinInt64)) < 0:
			want.SetInt64(math.MinInt64)
		}
		got, has := counter.Snapshot{Grants: grants}.WalletNanos(at)
		if got != want.Int64() || !has {
			t.Fatalf("grants %+v: got %d, %t; want %d, true", grants, got, has, want.Int64())
		}
	})
}

func TestExpiryMillis(t *testing.T) {
	t.Parallel()
	if _, ok := counter.ExpiryMillis(time.Time{}); ok {
		t.Fatal("zero time has an expiry")
	}
	in := time.Date(2026, 3, 1, 12, 0, 0, 1_999_999, time.FixedZone("X", 3600))
	ms, ok := counter.ExpiryMillis(in)
	if !ok || ms != in.UnixMilli() {
		t.Fatalf("ExpiryMillis = %d, %t", ms, ok)
	}
	back := counter.ExpiryTime(ms)
	if want := in.Truncate(time.Millisecond); !back.Equal(want) || back.Location() != time.UTC {
		t.Fatalf("ExpiryTime = %s, want %s in UTC", back, want)
	}
	if got, _ := counter.ExpiryMillis(time.Unix(0, 0)); got != 0 {
		t.Fatalf("the epoch: %d", got)
	}
}

func TestGrantParamsValidateNamesField(t *testing.T) {
	t.Parallel()
	err := counter.GrantParams{CustomerID: "c", GrantID: "g", Nanos: 0}.Validate()
	if err == nil || !strings.Contains(err.Error(), `grant "g": nanos 0`) {
		t.Fatalf("got %v", err)
	}
	err = counter.ApplyParams{CustomerID: "c", Seq: 1, Period: counter.PeriodRef{End: at},
		Wallet: map[string]int64{"g": math.MinInt64}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `wallet["g"]`) {
		t.Fatalf("got %v", err)
	}
	err = counter.RebuildParams{CustomerID: "c", Grants: map[string]counter.GrantCounter{
		"g": {ExpiresAt: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `grants["g"]: `) || !strings.Contains(err.Error(), "expiresAt") {
		t.Fatalf("got %v", err)
	}
}
