package rating

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/usage"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/invoices")

// goldenCase holds figures computed by hand (see each case's catalog.yaml), checked
// independently of the golden file so that -update cannot bless a wrong invoice.
type goldenCase struct {
	total     string
	lines     map[string]string // charge → sum of its priced lines (all types)
	perEvent  []string          // each event's Result.Amount()
	cost      string
	unpriced  []bool
	unmetered map[int]string // event index → its unmetered keys
}

var goldenCases = map[string]goldenCase{
	"design_pro": {
		total: "500",
		lines: map[string]string{
			"platform": "200", "sonnet_in": "32.5", "sonnet_out": "4.5", "haiku_in": "9.8", "starter": "80",
			"calls": "2", "tasks": "1", "priority": "0.925", "minimumCommitment": "169.275",
		},
		perEvent:  []string{"48.525", "41.4", "24", "15.8", "0.5", "0.5"},
		cost:      "33",
		unpriced:  []bool{false, false, false, false, false, false},
		unmetered: map[int]string{0: "[cache_read_tokens]"},
	},
	"tiers_and_caps": {
		total: "594.054",
		lines: map[string]string{
			"grad": "565.05", "vol": "17.004", "pack": "5", "quota": "1", "capped": "1", "floor": "5",
		},
		perEvent: []string{"11", "1", "5.555", "461.345", "-0.845", "111.599"},
		cost:     "0",
		unpriced: []bool{false, false, false, false, false, false},
	},
	"tables_and_percentages": {
		total: "18.12575",
		lines: map[string]string{
			"tokens_in": "4.5", "tokens_out": "0.3525", "credit_use": "1.64", "card": "11.148", "platform_fee": "0.48525",
		},
		perEvent: []string{"2.8675", "3.41825", "0.692", "0.648", "0.5", "10", "0"},
		cost:     "0",
		unpriced: []bool{false, false, false, false, false, false, true},
	},
}

func readEvents(t *testing.T, path string) []*usage.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dec usage.Decoder
	receipt := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var out []*usage.Event
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		ev := &usage.Event{}
		if err := dec.DecodeBytes(sc.Bytes(), receipt, ev); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoldenInvoices rates each case's events with Rate, renders every event's lines and the
// period's price, and compares the rendering with priced.golden (go test -run Golden -update
// rewrites it). It also checks the hand-computed figures of goldenCases and that Accumulate
// prices the same.
func TestGoldenInvoices(t *testing.T) {
	dirs, err := filepath.Glob("testdata/invoices/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(goldenCases) {
		t.Fatalf("found %d cases under testdata/invoices, want %d", len(dirs), len(goldenCases))
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			want, ok := goldenCases[name]
			if !ok {
				t.Fatalf("no hand-computed figures for %s", name)
			}
			doc, err := os.ReadFile(filepath.Join(dir, "catalog.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			r := newRater(t, string(doc))
			cur := r.Catalog().Currency
			evs := readEvents(t, filepath.Join(dir, "events.jsonl"))
			if len(evs) != len(want.perEvent) {
				t.Fatalf("%d events, want %d", len(evs), len(want.perEvent))
			}
			var sb strings.Builder
			fmt.Fprintf(&sb, "# plan %s, %d events; rendered by TestGoldenInvoices\n", r.Plan().Key, len(evs))
			st := r.NewState()
			for i, ev := range evs {
				res, err := r.Rate(st, ev)
				if err != nil {
					t.Fatal(err)
				}
				id := ev.CorrelationID
				if ev.ID != "" {
					id = ev.ID
				}
				fmt.Fprintf(&sb, "event %s %s\n%s", id, ev.EventType, renderResult(r.Plan(), res))
				wantAmount(t, "event "+id, res.Amount(), want.perEvent[i])
				if res.Unpriced != want.unpriced[i] {
					t.Errorf("event %s: Unpriced = %v", id, res.Unpriced)
				}
				if got := fmt.Sprint(res.Unmetered); len(res.Unmetered) > 0 || want.unmetered[i] != "" {
					if got != want.unmetered[i] {
						t.Errorf("event %s: Unmetered = %s, want %s", id, got, want.unmetered[i])
					}
				}
			}
			p := r.Price(st)
			sb.WriteString("priced\n")
			sb.WriteString(renderPriced(cur, p))
			wantAmount(t, "total", p.Total, want.total)
			wantAmount(t, "cost", p.Cost, want.cost)
			seen := map[string]bool{}
			for _, l := range p.Lines {
				seen[l.Charge] = true
			}
			for charge, amount := range want.lines {
				wantAmount(t, "charge "+charge, chargeTotal(p, charge), amount)
				delete(seen, charge)
			}
			for charge := range seen {
				t.Errorf("unexpected lines for %s", charge)
			}
			if got := renderPriced(cur, r.Price(accumulateAll(t, r, evs...))); got != renderPriced(cur, p) {
				t.Errorf("Accumulate priced differently:\n%s", got)
			}

			golden := filepath.Join(dir, "priced.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenInvoices -update to create it)", err)
			}
			if got := sb.String(); got != string(exp) {
				t.Errorf("%s differs (go test -run TestGoldenInvoices -update rewrites it after review)\n--- got\n%s--- want\n%s", golden, got, exp)
			}
		})
	}
}
