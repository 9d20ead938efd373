package guard

import (
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
)

const rulesDoc = `currency: USD
meters: [{key: tokens}]
plans: [{key: p, charges: [{key: c, meter: tokens, model: perUnit, unitPrice: "1"}]}]
marginGuard:
  - {key: runaway, scope: task, maxCost: "5.00", coolDown: 10m}
  - {key: ratio, scope: task, maxCostToPrice: "1.5", minCost: "0.50", coolDown: 20m}
  - {key: margin, scope: customer, minMargin: "20", afterSpend: "100", coolDown: 1h}
`

func TestEvaluate(t *testing.T) {
	cat, err := catalog.Load([]byte(rulesDoc))
	if err != nil {
		t.Fatal(err)
	}
	d := money.MustParse
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		in   Input
		want []string
	}{
		{"below every rule", Input{TaskID: "t", EventCost: d("1"), EventPrice: d("2"), TaskCost: d("4"), TaskPrice: d("10"), PeriodSpend: d("50"), PeriodCost: d("45")}, nil},
		{"at the task ceiling does not trip", Input{TaskID: "t", EventCost: d("1"), TaskCost: d("5"), TaskPrice: d("10")}, nil},
		{"past the task ceiling", Input{TaskID: "t", EventCost: d("1"), TaskCost: d("5.01"), TaskPrice: d("10")}, []string{"runaway task t 10m0s"}},
		{"ratio past 1.5 with cost over the minimum", Input{TaskID: "t", EventCost: d("1"), TaskCost: d("1.6"), TaskPrice: d("1")}, []string{"ratio task t 20m0s"}},
		{"ratio past 1.5 but cost under the minimum", Input{TaskID: "t", EventCost: d("0.1"), TaskCost: d("0.4"), TaskPrice: d("0.1")}, nil},
		{"no task: task rules skipped", Input{EventCost: d("9"), TaskCost: d("9"), TaskPrice: d("1")}, nil},
		{"customer margin under 20% past 100", Input{EventCost: d("1"), EventPrice: d("1"), PeriodSpend: d("100"), PeriodCost: d("81")}, []string{"margin customer  1h0m0s"}},
		{"customer margin exactly 20%", Input{EventCost: d("1"), EventPrice: d("1"), PeriodSpend: d("100"), PeriodCost: d("80")}, nil},
		{"an event adding nothing trips nothing", Input{TaskID: "t", TaskCost: d("99"), TaskPrice: d("1")}, nil},
		{"both task rules", Input{TaskID: "t", EventCost: d("1"), TaskCost: d("6"), TaskPrice: d("1")}, []string{"runaway task t 10m0s", "ratio task t 20m0s"}},
		{"customer before afterSpend", Input{EventCost: d("1"), PeriodSpend: d("99.99"), PeriodCost: d("99")}, nil},
		{"a price-only event is evaluated", Input{EventPrice: d("1"), PeriodSpend: d("100"), PeriodCost: d("90")}, []string{"margin customer  1h0m0s"}},
	}
	for _, c := range cases {
		c.in.CustomerID, c.in.At = "c1", at
		var got []string
		for _, tr := range Evaluate(cat.MarginGuard, c.in) {
			got = append(got, tr.RuleKey+" "+tr.Scope+" "+tr.Key+" "+tr.Until.Sub(at).String())
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: trips %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: trips %v, want %v", c.name, got, c.want)
			}
		}
	}
	if id := (Trip{CustomerID: "c1", Scope: ScopeTask, Key: "run_42"}).BreakerID(); id != "c1/task/run_42" {
		t.Errorf("BreakerID = %s", id)
	}
}
