package invoice

import (
	"testing"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
)

func d(s string) money.Decimal { return money.MustParse(s) }

func TestRound(t *testing.T) {
	usd, _ := money.LookupCurrency("USD")
	jpy, _ := money.LookupCurrency("JPY")
	cases := []struct {
		name      string
		cur       money.Currency
		lines     []rating.PricedLine
		wantLines []string
		wantTotal string
	}{
		{
			name:      "half away from zero per line, total is the sum of rounded lines",
			cur:       usd,
			lines:     []rating.PricedLine{{Type: rating.LineUsage, Amount: d("0.005")}, {Type: rating.LineUsage, Amount: d("0.005")}, {Type: rating.LineMaximum, Amount: d("-0.015")}},
			wantLines: []string{"0.01", "0.01", "-0.02"},
			wantTotal: "0",
		},
		{
			name: "commitment true-up absorbs the other lines' rounding",
			cur:  usd,
			// 26.385 + 0.005 + 23.61 = 50 exactly; rounded separately they would give 50.01.
			lines:     []rating.PricedLine{{Type: rating.LineFlat, Amount: d("26.385")}, {Type: rating.LineUsage, Amount: d("0.005")}, {Type: rating.LineCommitment, Amount: d("23.61")}},
			wantLines: []string{"26.39", "0.01", "23.60"},
			wantTotal: "50",
		},
		{
			name:      "zero-decimal currency",
			cur:       jpy,
			lines:     []rating.PricedLine{{Type: rating.LineUsage, Amount: d("12.5")}, {Type: rating.LineUsage, Amount: d("-2.5")}},
			wantLines: []string{"13", "-3"},
			wantTotal: "10",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total := money.Zero
			for _, l := range tc.lines {
				total = total.Add(l.Amount)
			}
			f := Round(rating.Priced{Lines: tc.lines, Total: total}, tc.cur)
			for i, w := range tc.wantLines {
				if !f.Lines[i].Rounded.Equal(d(w)) {
					t.Errorf("line %d rounded to %s, want %s", i, f.Lines[i].Rounded, w)
				}
			}
			if !f.Total.Equal(d(tc.wantTotal)) {
				t.Errorf("total %s, want %s", f.Total, tc.wantTotal)
			}
			if !f.PreciseTotal.Equal(total) {
				t.Errorf("precise total %s, want %s", f.PreciseTotal, total)
			}
		})
	}
}
