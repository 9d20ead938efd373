package limit

import "testing"

var benchSink Decision

// BenchmarkDecide measures one full decision with every dimension limited.
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name string
		st   State
	}{
		{"allowed", vState},
		{"denied", withState(vState, func(s *State) { s.RPM = TAT{vNow + minute, 0}; s.InFlight = 2 })},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchSink = Decide(bc.st, vRequest, vNow)
			}
		})
	}
}

// BenchmarkDecideParallel is the authorize path's shape: many goroutines deciding at once.
func BenchmarkDecideParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var d Decision
		for pb.Next() {
			d = Decide(vState, vRequest, vNow)
		}
		_ = d
	})
}

// BenchmarkDecideSettle is one request's whole life: admitted, then settled.
func BenchmarkDecideSettle(b *testing.B) {
	b.ReportAllocs()
	st := vState
	now := int64(vNow)
	for b.Loop() {
		d := Decide(st, vRequest, now)
		if d.Allowed {
			st = Settle(d.State, d.Reserved, Usage{1800, 25_000_000}, vLimits, now)
		}
		st.Balance = vState.Balance
		st.UsedTokens, st.UsedNanos = 0, 0
		now += 2000
	}
}

func BenchmarkGCRA(b *testing.B) {
	b.ReportAllocs()
	var tat TAT
	now := int64(vNow)
	var r GCRAResult
	for b.Loop() {
		r = GCRA(tat, now, minute, 100_000, 1500)
		tat = r.TAT
		now += 1000
	}
	_ = r
}
