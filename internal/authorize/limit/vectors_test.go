package limit

import (
	"fmt"
	"testing"
)

func TestGCRAVectors(t *testing.T) {
	for _, v := range GCRAVectors {
		t.Run(v.Name, func(t *testing.T) {
			got := GCRA(v.TAT, v.Now, v.Window, v.Limit, v.Cost)
			if got != v.Want {
				t.Errorf("GCRA(%+v, now %d, window %d, limit %d, cost %d)\n got %+v\nwant %+v",
					v.TAT, v.Now, v.Window, v.Limit, v.Cost, got, v.Want)
			}
			if rem, reset := GCRAStatus(got.TAT, v.Now, v.Window, v.Limit); !got.Never && (rem != got.Remaining || reset != got.ResetAfter) {
				t.Errorf("GCRAStatus after the call = (%d, %d), want the result's (%d, %d)", rem, reset, got.Remaining, got.ResetAfter)
			}
		})
	}
}

func TestAdjustVectors(t *testing.T) {
	for _, v := range AdjustVectors {
		t.Run(v.Name, func(t *testing.T) {
			if got := GCRAAdjust(v.TAT, v.Now, v.Window, v.Limit, v.Delta); got != v.Want {
				t.Errorf("GCRAAdjust(%+v, now %d, window %d, limit %d, delta %d) = %+v, want %+v",
					v.TAT, v.Now, v.Window, v.Limit, v.Delta, got, v.Want)
			}
		})
	}
}

func TestCapVectors(t *testing.T) {
	for _, v := range CapVectors {
		t.Run(v.Name, func(t *testing.T) {
			ok, rem := Cap(v.Used, v.Reserved, v.Limit, v.Cost)
			if ok != v.WantAllowed || rem != v.WantRemaining {
				t.Errorf("Cap(%d, %d, %d, %d) = (%v, %d), want (%v, %d)",
					v.Used, v.Reserved, v.Limit, v.Cost, ok, rem, v.WantAllowed, v.WantRemaining)
			}
		})
	}
}

func TestWalletVectors(t *testing.T) {
	for _, v := range WalletVectors {
		t.Run(v.Name, func(t *testing.T) {
			if got := Wallet(v.Balance, v.Reserved, v.Estimate); got != v.Want {
				t.Errorf("Wallet(%d, %d, %d) = %v, want %v", v.Balance, v.Reserved, v.Estimate, got, v.Want)
			}
		})
	}
}

func TestConcurrencyVectors(t *testing.T) {
	for _, v := range ConcurrencyVectors {
		t.Run(v.Name, func(t *testing.T) {
			if got := Concurrency(v.InFlight, v.Limit); got != v.Want {
				t.Errorf("Concurrency(%d, %d) = %v, want %v", v.InFlight, v.Limit, got, v.Want)
			}
		})
	}
}

func TestDecideVectors(t *testing.T) {
	for _, v := range DecideVectors {
		t.Run(v.Name, func(t *testing.T) {
			got := Decide(v.State, v.Request, v.Now)
			if diff := diffDecision(got, v.Want); diff != "" {
				t.Errorf("Decide: %s", diff)
			}
		})
	}
}

func TestSettleVectors(t *testing.T) {
	for _, v := range SettleVectors {
		t.Run(v.Name, func(t *testing.T) {
			if got := Settle(v.State, v.Reserved, v.Actual, v.Limits, v.Now); got != v.Want {
				t.Errorf("Settle\n got %+v\nwant %+v", got, v.Want)
			}
		})
	}
}

func TestReleaseVectors(t *testing.T) {
	for _, v := range ReleaseVectors {
		t.Run(v.Name, func(t *testing.T) {
			if got := Release(v.State, v.Reserved); got != v.Want {
				t.Errorf("Release\n got %+v\nwant %+v", got, v.Want)
			}
		})
	}
}

// TestVectorNamesUnique keeps the shared table addressable by name from the Lua test.
func TestVectorNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	check := func(kind, name string) {
		key := kind + "/" + name
		if name == "" || seen[key] {
			t.Errorf("%s vector name %q is empty or repeated", kind, name)
		}
		seen[key] = true
	}
	for _, v := range GCRAVectors {
		check("gcra", v.Name)
	}
	for _, v := range AdjustVectors {
		check("adjust", v.Name)
	}
	for _, v := range CapVectors {
		check("cap", v.Name)
	}
	for _, v := range WalletVectors {
		check("wallet", v.Name)
	}
	for _, v := range ConcurrencyVectors {
		check("concurrency", v.Name)
	}
	for _, v := range DecideVectors {
		check("decide", v.Name)
	}
	for _, v := range SettleVectors {
		check("settle", v.Name)
	}
	for _, v := range ReleaseVectors {
		check("release", v.Name)
	}
}

// diffDecision describes how two decisions differ, field by field, or returns "".
func diffDecision(got, want Decision) string {
	var s string
	add := func(field string, g, w any) {
		s += fmt.Sprintf("\n  %s: got %+v, want %+v", field, g, w)
	}
	if got.Allowed != want.Allowed {
		add("Allowed", got.Allowed, want.Allowed)
	}
	if got.Reason != want.Reason {
		add("Reason", got.Reason, want.Reason)
	}
	if got.Never != want.Never {
		add("Never", got.Never, want.Never)
	}
	if got.Failed != want.Failed {
		add("Failed", fmt.Sprintf("%b", got.Failed), fmt.Sprintf("%b", want.Failed))
	}
	if got.RetryAfter != want.RetryAfter {
		add("RetryAfter", got.RetryAfter, want.RetryAfter)
	}
	if got.State != want.State {
		add("State", got.State, want.State)
	}
	if got.Reserved != want.Reserved {
		add("Reserved", got.Reserved, want.Reserved)
	}
	for d := range NumDimensions {
		if got.Quotas[d] != want.Quotas[d] {
			add("Quotas["+d.String()+"]", got.Quotas[d], want.Quotas[d])
		}
	}
	return s
}
