package simulate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/usage"
)

var update = flag.Bool("update", false, "rewrite golden files")

func loadCatalog(t testing.TB, path string) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func run(t *testing.T, cat *catalog.Catalog, input string, format Format, plans ...string) (*Result, error) {
	t.Helper()
	return Run(cat, strings.NewReader(input), "usage", format, Options{Plans: plans, Now: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)})
}

// TestGolden prices the testdata usage on both plans and compares the --json document and the
// table with golden files. The expected amounts were checked by hand:
//   - payg, acme, November: input 1,500,000 × 3.60/M = 5.40; output 120,000 × 18/M = 2.16;
//     cache read 50,000 × 0.36/M = 0.018 → 0.02. December: gpt-4o 1,000 × 3/M = 0.003 → 0.00
//     and 500 × 12/M = 0.006 → 0.01.
//   - pro, acme, November: platform 20 + graduated input 1M × 3/M + 0.5M × 2/M = 4 + output 1.80
//   - priority 10% of 5.80 = 0.58 → 26.38, so the 50.00 commitment adds 23.62.
//   - globex: two agent runs × 0.50 on pro; no charge of payg reaches them.
//   - e1 appears twice with reordered measurements: a duplicate, counted once.
func TestGolden(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	in, err := os.ReadFile("testdata/usage.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(t, cat, string(in), JSONL, "payg", "pro")
	if err != nil {
		t.Fatal(err)
	}
	var js, table bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	single, err := run(t, cat, string(in), JSONL, "pro")
	if err != nil {
		t.Fatal(err)
	}
	if err := single.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/golden.json", js.Bytes())
	golden(t, "testdata/golden.txt", table.Bytes())

	if res.Events != 5 || res.Duplicates != 1 {
		t.Errorf("events %d duplicates %d, want 5 and 1", res.Events, res.Duplicates)
	}
	if res.Unmetered["reasoning_tokens"] != 1 {
		t.Errorf("unmetered = %v, want reasoning_tokens: 1", res.Unmetered)
	}
	want := map[string]string{"acme/payg/2026-11": "7.58", "acme/payg/2026-12": "0.01", "acme/pro/2026-11": "50.00", "acme/pro/2026-12": "50.00", "globex/pro/2026-11": "50.00", "globex/payg/2026-11": "0.00"}
	got := map[string]string{}
	for _, iv := range res.Invoices {
		got[iv.CustomerID+"/"+iv.Plan+"/"+iv.Period.Start.Format("2006-01")] = iv.Total.StringFixed(2)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s total = %q, want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("invoices %v, want %v", got, want)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update after checking):\n--- got\n%s", path, got)
	}
}

// TestJSONContract checks the --json document against DESIGN.md's simulator shape.
func TestJSONContract(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	in, _ := os.ReadFile("testdata/usage.jsonl")
	res, err := run(t, cat, string(in), JSONL, "payg")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Invoices []map[string]any `json:"invoices"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Invoices) == 0 {
		t.Fatal("no invoices")
	}
	for _, iv := range doc.Invoices {
		for _, k := range []string{"customerId", "plan", "periodStart", "periodEnd", "currency", "lines", "preciseTotal", "total", "cost", "margin"} {
			if _, ok := iv[k]; !ok {
				t.Errorf("invoice lacks %q", k)
			}
		}
		sum := money.Zero
		for _, l := range iv["lines"].([]any) {
			line := l.(map[string]any)
			for _, k := range []string{"charge", "quantity", "preciseAmount", "amount"} {
				if _, ok := line[k].(string); !ok {
					t.Errorf("line lacks string %q: %v", k, line)
				}
			}
			sum = sum.Add(money.MustParse(line["amount"].(string)))
		}
		if total := money.MustParse(iv["total"].(string)); !total.Equal(sum) {
			t.Errorf("total %s is not the sum of line amounts %s", total, sum)
		}
	}
}

func TestCSVMatchesJSONL(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	jsonl := `{"id":"a","eventType":"llm.completion","customerId":"c1","timestamp":"2026-11-02T00:00:00Z","properties":{"model":"gpt-4o"},"measurements":[{"metricKey":"input_tokens","value":1234},{"metricKey":"output_tokens","value":"56.5"}]}
{"id":"b","eventType":"llm.completion","customerId":"c1","timestamp":"2026-11-03T00:00:00Z","properties":{"model":"claude-sonnet-4-6","note":"a, \"quoted\" note"},"measurements":[{"metricKey":"input_tokens","value":10},{"metricKey":"cache_read_tokens","value":7}]}
`
	csvIn := "id,eventType,customerId,timestamp,model,note,input_tokens,output_tokens,measurements.cache_read_tokens\n" +
		"a,llm.completion,c1,2026-11-02T00:00:00Z,gpt-4o,,1234,56.5,\n" +
		"b,llm.completion,c1,2026-11-03T00:00:00Z,claude-sonnet-4-6,\"a, \"\"quoted\"\" note\",10,,7\n"
	a, err := run(t, cat, jsonl, JSONL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := run(t, cat, csvIn, CSV)
	if err != nil {
		t.Fatal(err)
	}
	var ja, jb bytes.Buffer
	a.WriteJSON(&ja)
	b.WriteJSON(&jb)
	if ja.String() != jb.String() {
		t.Errorf("CSV and JSONL differ:\n%s\n---\n%s", ja.String(), jb.String())
	}
	if a.Events != 2 {
		t.Errorf("events = %d", a.Events)
	}
}

func TestBadUsage(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	ok := `{"id":"a","eventType":"t","customerId":"c","measurements":[{"metricKey":"input_tokens","value":1}]}`
	cases := []struct {
		name   string
		format Format
		input  string
		want   []string
	}{
		{"not json", JSONL, ok + "\n{nope\n", []string{"usage:2: not valid JSON"}},
		{"negative", JSONL, ok + "\n\n" + `{"id":"b","eventType":"t","customerId":"c","measurements":[{"metricKey":"input_tokens","value":-5}]}`, []string{"usage:3: measurements[0].value: must not be negative"}},
		{"missing customer", JSONL, `{"id":"b","eventType":"t"}`, []string{"usage:1: customerId: is required"}},
		{"no key", JSONL, `{"eventType":"t","customerId":"c"}`, []string{"usage:1: id: is required when correlationId is absent"}},
		{"bad timestamp", JSONL, `{"id":"b","eventType":"t","customerId":"c","timestamp":"yesterday"}`, []string{"usage:1: timestamp: must be an RFC 3339 time"}},
		{"conflict", JSONL, ok + "\n" + strings.Replace(ok, `"value":1`, `"value":2`, 1), []string{"usage:2: conflicts with an earlier event with the same idempotency key (id a)"}},
		{"csv columns", CSV, "id,eventType,customerId\na,t\n", []string{"usage:2: has 2 columns; the header has 3"}},
		{"csv value", CSV, "id,eventType,customerId,input_tokens\na,t,c,abc\n", []string{`usage:2: measurements[0].value: must be a finite decimal number (got "abc")`}},
		{"several", JSONL, "[]\n{}\n", []string{"usage:1: an event must be a JSON object", "usage:2: eventType: is required", "usage:2: customerId: is required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, cat, tc.input, tc.format)
			if err == nil {
				t.Fatalf("no error; result %+v", res)
			}
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %T %v is not a *UsageError", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestUnknownPlan(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	_, err := run(t, cat, "", JSONL, "payg", "enterprise")
	if err == nil || !strings.Contains(err.Error(), `unknown plan enterprise (the catalog has: payg, pro)`) {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxErrors(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	var in strings.Builder
	for i := 0; i < 100; i++ {
		in.WriteString("{}\n")
	}
	_, err := Run(cat, strings.NewReader(in.String()), "u", JSONL, Options{MaxErrors: 5})
	var ue *UsageError
	if !errors.As(err, &ue) || len(ue.Errors) != 5 || !ue.More {
		t.Fatalf("err = %v", err)
	}
}

// TestManyChunksMatchIncremental writes enough events to span many decode chunks, some lines
// in a different order, and checks that the simulator's aggregated totals equal rating every
// event incrementally, in file order, with the engine the server uses.
func TestManyChunksMatchIncremental(t *testing.T) {
	cat := loadCatalog(t, "testdata/catalog.yaml")
	var in bytes.Buffer
	models := []string{"claude-sonnet-4-6", "gpt-4o", "other"}
	var events []usage.Event
	var dec usage.Decoder
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 20000; i++ {
		line := fmt.Sprintf(`{"id":"e%d","eventType":"llm.completion","customerId":"c%d","timestamp":"2026-11-%02dT01:02:03Z","properties":{"model":"%s"},"measurements":[{"metricKey":"input_tokens","value":%d},{"metricKey":"output_tokens","value":"%d.%d"},{"metricKey":"cache_read_tokens","value":%d}]}`,
			i, i%7, 1+i%28, models[i%3], 1000+i*37%5000, i%900, i%10, i%333)
		in.WriteString(line)
		in.WriteByte('\n')
		var ev usage.Event
		if err := dec.DecodeBytes([]byte(line), now, &ev); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	res, err := Run(cat, &in, "u", JSONL, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, planKey := range []string{"payg", "pro"} {
		r := rating.NewRater(cat, cat.Plan(planKey))
		states := map[string]*rating.State{}
		sum := map[string]money.Decimal{}
		for i := range events {
			c := events[i].CustomerID
			if states[c] == nil {
				states[c] = r.NewState()
			}
			out, err := r.Rate(states[c], &events[i])
			if err != nil {
				t.Fatal(err)
			}
			sum[c] = sum[c].Add(out.Amount())
		}
		for _, iv := range res.Invoices {
			if iv.Plan != planKey {
				continue
			}
			want := sum[iv.CustomerID]
			for _, l := range iv.Lines {
				if l.Type == rating.LineFlat || l.Type == rating.LineCommitment || l.Type == rating.LineMinimum {
					want = want.Add(l.Amount)
				}
			}
			if !iv.PreciseTotal.Equal(want) {
				t.Errorf("%s on %s: simulator %s, incremental %s", iv.CustomerID, planKey, iv.PreciseTotal, want)
			}
		}
	}
}
