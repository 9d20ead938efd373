package catalog

import (
	"fmt"
	"testing"

	"github.com/levyhq/levy/internal/money"
)

func ptr(s string) *money.Decimal {
	v := dec(s)
	return &v
}

func TestGuardBreached(t *testing.T) {
	t.Parallel()
	c := loadFile(t, "testdata/ladder.yaml")
	rules := map[string]*GuardRule{}
	for _, r := range c.MarginGuard {
		rules[r.Key] = r
	}
	// Rules the example file does not have.
	rules["ratio_no_min"] = &GuardRule{Key: "ratio_no_min", Scope: GuardTask, MaxCostToPrice: ptr("2")}
	rules["both"] = &GuardRule{Key: "both", Scope: GuardTask, MaxCost: ptr("5"), MaxCostToPrice: ptr("1.5")}
	rules["from_zero"] = &GuardRule{Key: "from_zero", Scope: GuardCustomer}
	rules["no_scope"] = &GuardRule{Key: "no_scope", MaxCost: ptr("1")}

	tests := []struct {
		rule               string
		cost, price, spend string
		want               bool
	}{
		// runaway_task: cost > 5.00; price and spend play no part.
		{"runaway_task", "4.99", "0", "0", false},
		{"runaway_task", "5.00", "0", "0", false}, // equal to the maximum does not trip
		{"runaway_task", "5.000000001", "100", "0", true},
		{"runaway_task", "6", "1000", "0", true},
		{"runaway_task", "0", "0", "1000000", false},

		// task_ratio: cost / price > 1.5 once cost ≥ 0.50.
		{"task_ratio", "0.49", "0.01", "0", false}, // below minCost
		{"task_ratio", "0.50", "0.01", "0", true},  // at minCost, ratio 50
		{"task_ratio", "0.75", "0.50", "0", false}, // exactly 1.5
		{"task_ratio", "0.750000001", "0.50", "0", true},
		{"task_ratio", "3", "2.5", "0", false},
		{"task_ratio", "0.60", "0", "0", true},  // no revenue at all
		{"task_ratio", "0.60", "-1", "0", true}, // a negative price pays for nothing
		{"task_ratio", "0.49", "0", "0", false}, // below minCost even without revenue
		{"task_ratio", "100", "70", "0", false}, // a ratio rule has no maximum cost
		{"task_ratio", "100", "60", "0", true},

		// ratio_no_min: cost / price > 2, from the first cent.
		{"ratio_no_min", "0", "0", "0", false}, // nothing spent, nothing earned
		{"ratio_no_min", "0", "1", "0", false},
		{"ratio_no_min", "0.000001", "0", "0", true},
		{"ratio_no_min", "1", "0.5", "0", false}, // exactly 2
		// Exact: 0.666666666666666667 / 0.333333333333333333 is just above 2.
		{"ratio_no_min", "0.666666666666666667", "0.333333333333333333", "0", true},
		{"ratio_no_min", "0.666666666666666666", "0.333333333333333333", "0", false},

		// both: either condition trips.
		{"both", "6", "100", "0", true},  // maxCost
		{"both", "4", "2", "0", true},    // ratio 2
		{"both", "4", "3", "0", false},   // ratio 1.33, cost under 5
		{"both", "5", "100", "0", false}, // neither

		// customer_margin: once spend ≥ 100.00, (spend − cost) / spend × 100 < 20.
		{"customer_margin", "99.99", "0", "99.99", false}, // below afterSpend
		{"customer_margin", "80", "0", "99.99", false},
		{"customer_margin", "80", "0", "100", false}, // margin exactly 20%
		{"customer_margin", "80.01", "0", "100", true},
		{"customer_margin", "0", "0", "1000", false},
		{"customer_margin", "120", "0", "100", true}, // a loss
		{"customer_margin", "120", "1000", "100", true},
		{"customer_margin", "799.99", "0", "1000", false},
		{"customer_margin", "800.000000001", "0", "1000", true},

		// from_zero: minMargin 0 from the first cent: trips on any loss.
		{"from_zero", "0", "0", "0", false},
		{"from_zero", "0.01", "0", "0", true}, // cost with no spend at all
		{"from_zero", "10", "0", "10", false}, // break-even is margin 0, not below
		{"from_zero", "10.01", "0", "10", true},

		{"no_scope", "100", "0", "0", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/cost=%s,price=%s,spend=%s", tc.rule, tc.cost, tc.price, tc.spend), func(t *testing.T) {
			t.Parallel()
			r := rules[tc.rule]
			if r == nil {
				t.Fatalf("no rule %q", tc.rule)
			}
			if got := r.Breached(dec(tc.cost), dec(tc.price), dec(tc.spend)); got != tc.want {
				t.Errorf("Breached = %v, want %v", got, tc.want)
			}
		})
	}
}
