package usagegen

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/usage"
)

// decodeAll decodes JSON lines with the usage package's decoder, failing on any invalid event.
func decodeAll(t testing.TB, data []byte) []usage.Event {
	t.Helper()
	var d usage.Decoder
	var out []usage.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := 1; sc.Scan(); n++ {
		var ev usage.Event
		if err := d.DecodeBytes(sc.Bytes(), now, &ev); err != nil {
			t.Fatalf("line %d: %v\n%s", n, err, sc.Bytes())
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func generate(t testing.TB, cfg Config) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, cfg); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func richConfig() Config {
	return Config{
		Events:       20000,
		Customers:    12,
		Seed:         7,
		BatchPercent: 20,
		AgentPercent: 25,
		Models:       append(append([]string(nil), DefaultModels...), "gemini-2.5-flash", "o3"),
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	cfg := richConfig()
	a, b := generate(t, cfg), generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the same Config wrote different bytes")
	}
	cfg.Seed++
	if c := generate(t, cfg); bytes.Equal(a, c) {
		t.Fatal("a different seed wrote the same bytes")
	}
	var ca, cb bytes.Buffer
	if err := WriteCSV(&ca, richConfig()); err != nil {
		t.Fatal(err)
	}
	if err := WriteCSV(&cb, richConfig()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca.Bytes(), cb.Bytes()) {
		t.Fatal("two CSV runs of the same Config wrote different bytes")
	}
}

func TestEventsDecodeAndAreWellFormed(t *testing.T) {
	cfg := richConfig()
	cfg.Start = time.Date(2026, 1, 31, 22, 0, 0, 0, time.FixedZone("X", 3600))
	cfg.Span = 72 * time.Hour
	data := generate(t, cfg)
	evs := decodeAll(t, data)
	if len(evs) != cfg.Events {
		t.Fatalf("got %d events, want %d", len(evs), cfg.Events)
	}
	start, end := cfg.Start.UTC(), cfg.Start.Add(cfg.Span).UTC()
	ids := map[string]bool{}
	corr := map[string]bool{}
	openTask := map[string]string{} // customer -> taskId of the steps seen since the last run
	var prev time.Time
	var runs, batch, reasoning int
	for i, ev := range evs {
		if !ev.TimestampGiven || ev.Timestamp.Before(start) || !ev.Timestamp.Before(end) {
			t.Fatalf("event %d: timestamp %s outside [%s, %s)", i, ev.Timestamp, start, end)
		}
		if ev.Timestamp.Before(prev) {
			t.Fatalf("event %d: timestamp %s before the previous %s", i, ev.Timestamp, prev)
		}
		prev = ev.Timestamp
		if len(ev.ID) != 30 || !strings.HasPrefix(ev.ID, "evt_") || ids[ev.ID] {
			t.Fatalf("event %d: bad or repeated id %q", i, ev.ID)
		}
		ids[ev.ID] = true
		if corr[ev.CorrelationID] {
			t.Fatalf("event %d: repeated correlationId %q", i, ev.CorrelationID)
		}
		corr[ev.CorrelationID] = true
		model, ok := ev.Get("model")
		if !ok || model == "" {
			t.Fatalf("event %d: no model", i)
		}
		task, hasTask := ev.Get("taskId")
		switch ev.EventType {
		case EventTypeAgentRun:
			runs++
			if !hasTask || openTask[ev.CustomerID] != task {
				t.Fatalf("event %d: run completion of task %q follows steps of %q", i, task, openTask[ev.CustomerID])
			}
			delete(openTask, ev.CustomerID)
			if len(ev.Measurements) != 0 || !strings.HasPrefix(ev.CorrelationID, "run_") {
				t.Fatalf("event %d: run completion %+v", i, ev)
			}
			continue
		case EventTypeCompletion:
		default:
			t.Fatalf("event %d: eventType %q", i, ev.EventType)
		}
		rt, _ := ev.Get("requestType")
		switch rt {
		case "batch":
			batch++
			if hasTask {
				t.Fatalf("event %d: an agent step sent as batch", i)
			}
		case "standard":
		default:
			t.Fatalf("event %d: requestType %q", i, rt)
		}
		if hasTask {
			if prevTask, open := openTask[ev.CustomerID]; open && prevTask != task {
				t.Fatalf("event %d: task %q starts before %q completed", i, task, prevTask)
			}
			openTask[ev.CustomerID] = task
		}
		// Measurements: in column order, positive integers, reasoning within output, the input
		// present, and only the dimensions the model's provider reports.
		last := -1
		vals := map[string]int64{}
		for _, m := range ev.Measurements {
			k := indexOf(metricKeys[:], m.MetricKey)
			if k <= last {
				t.Fatalf("event %d: measurement %s out of order", i, m.MetricKey)
			}
			last = k
			n, ok := m.Value.IsInt64()
			if !ok || n <= 0 {
				t.Fatalf("event %d: %s = %s", i, m.MetricKey, m.Value)
			}
			vals[m.MetricKey] = n
		}
		if vals[InputTokens] <= 0 || vals[OutputTokens] <= 0 {
			t.Fatalf("event %d: missing input or output: %v", i, vals)
		}
		if vals[ReasoningTokens] > vals[OutputTokens] {
			t.Fatalf("event %d: reasoning %d above output %d", i, vals[ReasoningTokens], vals[OutputTokens])
		}
		if vals[ReasoningTokens] > 0 {
			reasoning++
		}
		claude := strings.HasPrefix(model, "claude-")
		if !claude && (vals[CacheWrite1hTokens] > 0 || vals[ToolCalls] > 0) {
			t.Fatalf("event %d: %s reports Claude-only measurements %v", i, model, vals)
		}
		if !claude && !strings.HasPrefix(model, "gpt-5.6") && vals[CacheWrite5mTokens] > 0 {
			t.Fatalf("event %d: %s reports a cache write %v", i, model, vals)
		}
		if (model == "gpt-4.1" || model == "gpt-4o-mini") && vals[ReasoningTokens] > 0 {
			t.Fatalf("event %d: %s is not a reasoning model", i, model)
		}
	}
	if runs == 0 || batch == 0 || reasoning == 0 {
		t.Fatalf("runs %d, batch %d, reasoning %d: want some of each", runs, batch, reasoning)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func TestEventsSpreadOverCustomersAndModels(t *testing.T) {
	cfg := Config{Events: 30000, Customers: 10, Seed: 99, BatchPercent: 10, AgentPercent: 20}
	evs := decodeAll(t, generate(t, cfg))
	perCustomer := map[string]int{}
	perModel := map[string]int{}
	agents := map[string]bool{}
	for _, ev := range evs {
		perCustomer[ev.CustomerID]++
		m, _ := ev.Get("model")
		perModel[m]++
		if _, ok := ev.Get("taskId"); ok {
			agents[ev.CustomerID] = true
		}
	}
	if len(perCustomer) != cfg.Customers {
		t.Fatalf("%d customers have events, want %d: %v", len(perCustomer), cfg.Customers, perCustomer)
	}
	for c, n := range perCustomer {
		if n < cfg.Events/cfg.Customers/2 {
			t.Errorf("customer %s has only %d of %d events", c, n, cfg.Events)
		}
	}
	for _, m := range DefaultModels {
		if perModel[m] < 100 {
			t.Errorf("model %s has only %d events", m, perModel[m])
		}
	}
	if len(perModel) != len(DefaultModels) {
		t.Errorf("models used: %v", perModel)
	}
	if len(agents) != 2 {
		t.Errorf("agent customers %v, want 2 (20%% of 10)", agents)
	}
	if _, ok := perCustomer["cust_0010"]; !ok {
		t.Errorf("customer ids: %v", perCustomer)
	}
}

// TestCSVMatchesJSON checks that WriteCSV writes the same events as Write.
func TestCSVMatchesJSON(t *testing.T) {
	if want := "id,eventType,customerId,timestamp,correlationId,model,requestType," + strings.Join(MetricKeys(), ","); CSVHeader != want {
		t.Fatalf("CSVHeader %q, want %q", CSVHeader, want)
	}
	cfg := richConfig()
	cfg.Events = 3000
	cfg.Models = append(cfg.Models, `odd, "quoted" model`)
	evs := decodeAll(t, generate(t, cfg))
	var b bytes.Buffer
	if err := WriteCSV(&b, cfg); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(b.String(), "\n"); first != "id,eventType,customerId,timestamp,correlationId,model,requestType,input_tokens,output_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,reasoning_tokens,tool_calls" {
		t.Fatalf("header %q", first)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[1:]
	if len(rows) != len(evs) {
		t.Fatalf("%d rows, %d events", len(rows), len(evs))
	}
	odd := 0
	for i, row := range rows {
		ev := &evs[i]
		model, _ := ev.Get("model")
		rt, _ := ev.Get("requestType")
		want := []string{ev.ID, ev.EventType, ev.CustomerID, ev.Timestamp.Format("2006-01-02T15:04:05.000Z07:00"), ev.CorrelationID, model, rt}
		for _, k := range metricKeys {
			v, ok := ev.Value(k)
			if ok {
				want = append(want, v.String())
			} else {
				want = append(want, "")
			}
		}
		if strings.Join(row, "|") != strings.Join(want, "|") {
			t.Fatalf("row %d:\n got %q\nwant %q", i, row, want)
		}
		if model == `odd, "quoted" model` {
			odd++
		}
	}
	if odd == 0 {
		t.Fatal("the model needing quotes was never drawn")
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	evs := decodeAll(t, generate(t, Config{Events: 50}))
	if len(evs) != 50 || evs[0].Timestamp.Before(DefaultStart) || !evs[49].Timestamp.Before(DefaultStart.Add(DefaultSpan)) {
		t.Fatalf("defaults: %d events from %s to %s", len(evs), evs[0].Timestamp, evs[len(evs)-1].Timestamp)
	}
	if got := generate(t, Config{}); len(got) != 0 {
		t.Fatalf("zero events wrote %q", got)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, Config{}); err != nil || b.String() != CSVHeader+"\n" {
		t.Fatalf("zero events as CSV: %q, %v", b.String(), err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative events", Config{Events: -1}, "Events must not be negative"},
		{"negative customers", Config{Customers: -2}, "Customers must not be negative"},
		{"negative span", Config{Span: -time.Second}, "Span must not be negative"},
		{"batch percent", Config{BatchPercent: 101}, "BatchPercent must be 0 to 100"},
		{"agent percent", Config{AgentPercent: -1}, "AgentPercent must be 0 to 100"},
		{"empty models", Config{Models: []string{}}, "Models must not be empty"},
		{"empty model", Config{Models: []string{""}}, "must be 1 to 256 bytes"},
		{"bad utf-8", Config{Models: []string{"\xff"}}, "must be 1 to 256 bytes"},
		{"empty agent models", Config{AgentModels: []string{}}, "AgentModels must be nil or not empty"},
		{"before 1970", Config{Start: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}, "years 1970 to 9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Write(&out, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %d bytes despite the error", out.Len())
			}
		})
	}
}

type failWriter struct{ n int }

var errFull = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errFull
	}
	return len(p), nil
}

func TestWriteReportsWriterErrors(t *testing.T) {
	if err := Write(&failWriter{n: 1 << 20}, Config{Events: 100000}); !errors.Is(err, errFull) {
		t.Fatalf("Write: %v, want %v", err, errFull)
	}
	if err := WriteCSV(&failWriter{n: 10}, Config{Events: 10}); !errors.Is(err, errFull) {
		t.Fatalf("WriteCSV: %v, want %v", err, errFull)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", `q"uote`, `back\slash`, "tab\tnew\nline\x01", "ünïcødé"} {
		got := appendJSONString(nil, s)
		var d usage.Decoder
		var ev usage.Event
		line := `{"eventType":"x","customerId":"c","id":"i","properties":{"model":` + string(got) + `}}`
		if err := d.DecodeBytes([]byte(line), time.Now(), &ev); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if m, _ := ev.Get("model"); m != s {
			t.Fatalf("%q came back as %q", s, m)
		}
	}
}

func TestLogIntStaysInRange(t *testing.T) {
	g, err := newGen(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{1, 2}, {16, 8192}, {100, 64000}, {2000, 120000}, {3, 4}} {
		for range 10000 {
			if v := logInt(g.r, r[0], r[1]); v < r[0] || v >= r[1] {
				t.Fatalf("logInt(%d, %d) = %d", r[0], r[1], v)
			}
		}
	}
}

func TestULIDEncodesTheTimestamp(t *testing.T) {
	ts := time.Date(2026, 10, 20, 8, 15, 3, 42e6, time.UTC)
	ev := event{time: ts, idHi: ^uint64(0), idLo: 0xffff}
	got := string(appendULID(nil, &ev))
	if len(got) != 26 || got[10:] != "ZZZZZZZZZZZZZZZZ" {
		t.Fatalf("ULID %q", got)
	}
	var ms uint64
	for _, c := range got[:10] {
		ms = ms<<5 | uint64(strings.IndexRune(crockford, c))
	}
	if int64(ms) != ts.UnixMilli() {
		t.Fatalf("ULID time %d, want %d", ms, ts.UnixMilli())
	}
}

// BenchmarkWrite reports the generator's speed in events per second.
func BenchmarkWrite(b *testing.B) {
	for _, f := range []struct {
		name  string
		write func(io.Writer, Config) error
	}{{"jsonl", Write}, {"csv", WriteCSV}} {
		b.Run(f.name, func(b *testing.B) {
			cfg := richConfig()
			cfg.Events = 100000
			var n countWriter
			b.ReportAllocs()
			for b.Loop() {
				if err := f.write(&n, cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cfg.Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(n)/float64(cfg.Events)/float64(b.N), "bytes/event")
		})
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// BenchmarkWriteMillion times one run of 1,000,000 events, the generator's speed target:
// go test -run X -bench WriteMillion -benchtime 1x ./internal/usagegen
func BenchmarkWriteMillion(b *testing.B) {
	cfg := richConfig()
	cfg.Events = 1_000_000
	var n countWriter
	for b.Loop() {
		if err := Write(&n, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/million")
}
