// Package usagegen writes deterministic synthetic usage in Levy's event shape: LLM API calls and
// agent runs, as JSON lines (Write) or CSV (WriteCSV). It feeds tests, benchmarks, the examples
// and the simulator.
//
// The same Config always writes the same bytes: the random stream is math/rand/v2's PCG seeded
// from Config.Seed, and nothing depends on the clock, the machine or map order. Token counts are
// integers drawn from that stream and never pass through floating point. Writing is append-style
// into one reused buffer (no encoding/json), so a million events take well under a second.
//
// What the events look like:
//   - Customers are named cust_0001, cust_0002, ... Each event picks a customer uniformly. Each
//     customer has a favourite model that takes about 60% of its calls; the rest spread uniformly
//     over Models.
//   - An API customer's event is an llm.completion with properties model and requestType:
//     "batch" for about BatchPercent of them, "standard" otherwise.
//   - An agent customer (AgentPercent of the customers, spread evenly) runs tasks: 2 to 8
//     llm.completion steps carrying properties.taskId (requestType standard), then one
//     agent.run.completed event with the same taskId, its model and no measurements. A run still
//     open when the stream ends has no completion event.
//   - Measurements follow the providers' accounting (llm-usage-accounting.md): input_tokens is
//     the uncached input, disjoint from cache reads and writes; output_tokens includes reasoning;
//     reasoning_tokens (informational, at most output_tokens) appears on reasoning models; cache
//     writes appear on Claude models (5-minute and 1-hour) and on gpt-5.6 models (5-minute only);
//     tool_calls (server-side web searches) only on Claude models. A zero measurement is left out.
//   - Timestamps never decrease and lie in [Start, Start+Span), in UTC with millisecond precision.
//   - ids look like ULIDs: "evt_" and 26 Crockford base32 characters, the timestamp then 80
//     random bits. Correlation IDs are "req_" (calls) or "run_" (run completions) and 16 hex digits.
package usagegen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types written by the generator.
const (
	EventTypeCompletion = "llm.completion"
	EventTypeAgentRun   = "agent.run.completed"
)

// The measurement keys, in the order events list them and CSV columns follow.
const (
	InputTokens        = "input_tokens"
	OutputTokens       = "output_tokens"
	CacheWrite5mTokens = "cache_write_5m_tokens"
	CacheWrite1hTokens = "cache_write_1h_tokens"
	CacheReadTokens    = "cache_read_tokens"
	ReasoningTokens    = "reasoning_tokens"
	ToolCalls          = "tool_calls"
)

const (
	mInput = iota
	mOutput
	mCacheWrite5m
	mCacheWrite1h
	mCacheRead
	mReasoning
	mToolCalls
	numMetrics
)

var metricKeys = [numMetrics]string{InputTokens, OutputTokens, CacheWrite5mTokens, CacheWrite1hTokens,
	CacheReadTokens, ReasoningTokens, ToolCalls}

// MetricKeys returns the measurement keys the generator writes, in CSV column order.
func MetricKeys() []string { return append([]string(nil), metricKeys[:]...) }

// CSVHeader is the first line WriteCSV writes (without its newline): the event's fields, its
// model and requestType properties, then one column per measurement key in MetricKeys order.
const CSVHeader = "id,eventType,customerId,timestamp,correlationId,model,requestType," +
	"input_tokens,output_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,reasoning_tokens,tool_calls"

// DefaultModels are the models drawn from when Config.Models is nil: Anthropic and OpenAI models
// priced by examples/catalog.yaml.
var DefaultModels = []string{
	"claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-opus-4-7",
	"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4o-mini", "o4-mini", "gpt-5.4", "gpt-5.5",
	"gpt-5.6-sol",
}

// DefaultStart is the first timestamp when Config.Start is zero.
var DefaultStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// DefaultSpan is the time the events cover when Config.Span is zero.
const DefaultSpan = 30 * 24 * time.Hour

// Config describes a synthetic usage stream. The zero value (plus Events) is usable: 10 API
// customers over 30 days from DefaultStart on DefaultModels, no batch and no agents.
type Config struct {
	// Events is the number of events to write (≥ 0).
	Events int
	// Customers is the number of customers; 0 means 10.
	Customers int
	// Seed selects the random stream.
	Seed uint64
	// Start is the earliest timestamp; the zero time means DefaultStart. Events are written in
	// UTC from Start to Start+Span, which must lie in the years 1970 to 9999.
	Start time.Time
	// Span is how long the events cover; 0 means DefaultSpan. Negative is an error.
	Span time.Duration
	// Models are the models calls use; nil means DefaultModels. Each must be 1 to 256 bytes of
	// UTF-8. A model listed twice is drawn twice as often.
	Models []string
	// AgentModels are the models agents run on (each agent customer runs all its tasks on one
	// of them, drawn once); nil means Models.
	AgentModels []string
	// BatchPercent is the share of API customers' calls sent as batch requests, 0 to 100.
	BatchPercent int
	// AgentPercent is the share of customers that run agents, 0 to 100.
	AgentPercent int
}

// Write writes cfg.Events events to w as JSON lines in Levy's event shape. It returns an error
// for an invalid Config (before writing anything) or the first error of w.
func Write(w io.Writer, cfg Config) error {
	g, err := newGen(cfg)
	if err != nil {
		return err
	}
	return g.run(w, nil, appendJSON)
}

// WriteCSV writes the same events as Write, as CSV: a CSVHeader line, then one row per event
// with one measurement per column (an empty cell is an absent measurement) and properties other
// than model and requestType (taskId) left out.
func WriteCSV(w io.Writer, cfg Config) error {
	g, err := newGen(cfg)
	if err != nil {
		return err
	}
	return g.run(w, []byte(CSVHeader+"\n"), appendCSV)
}

// SampleConfig is the configuration of examples/usage.jsonl: 400 events of 5 customers (one of
// them running agents) from 2026-10-20 over three weeks, so every customer has usage in October
// and in November.
func SampleConfig() Config {
	return Config{
		Events:       400,
		Customers:    5,
		Seed:         2026,
		Start:        time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC),
		Span:         21 * 24 * time.Hour,
		BatchPercent: 15,
		AgentPercent: 20,
		AgentModels:  []string{"claude-sonnet-4-6", "claude-opus-4-7"},
	}
}

// SampleCSVConfig is the configuration of examples/usage.csv: 50 events of 3 customers.
func SampleCSVConfig() Config {
	c := SampleConfig()
	c.Events = 50
	c.Customers = 3
	c.AgentPercent = 34
	return c
}

// Example writes examples/usage.jsonl: Write with SampleConfig.
func Example(w io.Writer) error { return Write(w, SampleConfig()) }

// ExampleCSV writes examples/usage.csv: WriteCSV with SampleCSVConfig.
func ExampleCSV(w io.Writer) error { return WriteCSV(w, SampleCSVConfig()) }

// family is a model's provider family, which decides which measurements its calls report.
type family uint8

const (
	openAI family = iota
	anthropic
	google
)

type modelInfo struct {
	json      []byte // the name as a JSON string, quotes included
	csv       []byte // the name as a CSV field
	family    family
	reasoning bool // reports reasoning tokens
	write5m   bool // reports 5-minute cache writes
	write1h   bool // reports 1-hour cache writes
}

func classify(name string) modelInfo {
	m := modelInfo{json: appendJSONString(nil, name), csv: appendCSVField(nil, name)}
	switch {
	case strings.HasPrefix(name, "claude-"):
		m.family, m.reasoning, m.write5m, m.write1h = anthropic, true, true, true
	case strings.HasPrefix(name, "gemini-"):
		m.family, m.reasoning = google, strings.HasPrefix(name, "gemini-2.5")
	default:
		m.family = openAI
		m.reasoning = strings.HasPrefix(name, "gpt-5") ||
			(len(name) > 1 && name[0] == 'o' && name[1] >= '0' && name[1] <= '9')
		m.write5m = strings.HasPrefix(name, "gpt-5.6")
	}
	return m
}

type customer struct {
	id        []byte // "cust_0001"
	agent     bool
	favourite int  // index into gen.models
	cachePct  int  // chance in percent that a call reads from the cache
	size      uint // prompt size class 0..2
	// agent run state
	task      int // number of the current (or last) task
	stepsLeft int // steps still to run in the open task; -1 when no task is open
}

type gen struct {
	cfg       Config
	r         *rand.Rand
	models    []modelInfo
	apiModels []int // Config.Models as indexes into models
	customers []customer
	start     time.Time
	step      int64 // nanoseconds between event slots
}

// event is one generated event, reused between events.
type event struct {
	agentRun bool
	customer *customer
	model    *modelInfo
	batch    bool
	task     int // 0: no taskId
	time     time.Time
	idHi     uint64
	idLo     uint16
	corr     uint64
	values   [numMetrics]int64 // 0: absent
}

func validModel(s string) error {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return fmt.Errorf("usagegen: model %q must be 1 to 256 bytes of UTF-8", s)
	}
	return nil
}

func newGen(cfg Config) (*gen, error) {
	var errs []error
	if cfg.Events < 0 {
		errs = append(errs, fmt.Errorf("usagegen: Events must not be negative (got %d)", cfg.Events))
	}
	if cfg.Customers < 0 {
		errs = append(errs, fmt.Errorf("usagegen: Customers must not be negative (got %d)", cfg.Customers))
	}
	if cfg.Customers == 0 {
		cfg.Customers = 10
	}
	if cfg.Span < 0 {
		errs = append(errs, fmt.Errorf("usagegen: Span must not be negative (got %s)", cfg.Span))
	}
	if cfg.Span == 0 {
		cfg.Span = DefaultSpan
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	if y := cfg.Start.UTC().Year(); y < 1970 || y > 9999 {
		errs = append(errs, fmt.Errorf("usagegen: Start must lie in the years 1970 to 9999 (got %s)", cfg.Start))
	} else if y := cfg.Start.Add(cfg.Span).UTC().Year(); y > 9999 {
		errs = append(errs, fmt.Errorf("usagegen: Start+Span must lie before the year 10000"))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"BatchPercent", cfg.BatchPercent}, {"AgentPercent", cfg.AgentPercent}} {
		if p.v < 0 || p.v > 100 {
			errs = append(errs, fmt.Errorf("usagegen: %s must be 0 to 100 (got %d)", p.name, p.v))
		}
	}
	if cfg.Models == nil {
		cfg.Models = DefaultModels
	}
	if len(cfg.Models) == 0 {
		errs = append(errs, errors.New("usagegen: Models must not be empty"))
	}
	if cfg.AgentModels != nil && len(cfg.AgentModels) == 0 {
		errs = append(errs, errors.New("usagegen: AgentModels must be nil or not empty"))
	}
	for _, m := range cfg.Models {
		if err := validModel(m); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range cfg.AgentModels {
		if err := validModel(m); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	g := &gen{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	index := map[string]int{}
	addModel := func(name string) int {
		if i, ok := index[name]; ok {
			return i
		}
		index[name] = len(g.models)
		g.models = append(g.models, classify(name))
		return len(g.models) - 1
	}
	for _, m := range cfg.Models {
		g.apiModels = append(g.apiModels, addModel(m))
	}
	var agentModels []int
	for _, m := range cfg.AgentModels {
		agentModels = append(agentModels, addModel(m))
	}
	width := max(4, len(strconv.Itoa(cfg.Customers)))
	g.customers = make([]customer, cfg.Customers)
	for i := range g.customers {
		c := &g.customers[i]
		n := strconv.Itoa(i + 1)
		c.id = append([]byte("cust_"), strings.Repeat("0", width-len(n))+n...)
		// Spread agent customers evenly: customer i runs agents when the running share of
		// agent customers steps up at i, so exactly floor(n·AgentPercent/100) of them do.
		c.agent = (i+1)*cfg.AgentPercent/100 > i*cfg.AgentPercent/100
		c.cachePct = 10 + g.r.IntN(71)
		c.size = uint(g.r.IntN(3))
		c.stepsLeft = -1
		if c.agent && agentModels != nil {
			c.favourite = agentModels[g.r.IntN(len(agentModels))]
		} else {
			c.favourite = g.apiModels[g.r.IntN(len(g.apiModels))]
		}
	}
	g.start = cfg.Start.UTC()
	if cfg.Events > 0 {
		g.step = int64(cfg.Span) / int64(cfg.Events)
	}
	return g, nil
}

// run generates the events, encoding each with enc into a reused buffer.
func (g *gen) run(w io.Writer, header []byte, enc func([]byte, *event) []byte) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.Write(header); err != nil {
		return err
	}
	buf := make([]byte, 0, 1024)
	var ev event
	for k := 0; k < g.cfg.Events; k++ {
		g.next(&ev, int64(k))
		buf = enc(buf[:0], &ev)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// next generates event k.
func (g *gen) next(ev *event, k int64) {
	r := g.r
	offset := k * g.step
	if g.step > 1 {
		offset += r.Int64N(g.step)
	}
	ev.time = g.start.Add(time.Duration(offset))
	ev.idHi, ev.idLo = r.Uint64(), uint16(r.Uint32())
	ev.corr = r.Uint64()
	c := &g.customers[r.IntN(len(g.customers))]
	ev.customer = c
	ev.agentRun, ev.batch, ev.task = false, false, 0
	ev.values = [numMetrics]int64{}

	if c.agent {
		if c.stepsLeft == 0 {
			ev.agentRun = true
			ev.task = c.task
			ev.model = &g.models[c.favourite]
			c.stepsLeft = -1
			return
		}
		if c.stepsLeft < 0 {
			c.task++
			c.stepsLeft = 2 + r.IntN(7)
		}
		c.stepsLeft--
		ev.task = c.task
		ev.model = &g.models[c.favourite]
		g.tokens(ev, c, true)
		return
	}
	mi := c.favourite
	if r.IntN(100) >= 60 {
		mi = g.apiModels[r.IntN(len(g.apiModels))]
	}
	ev.model = &g.models[mi]
	ev.batch = r.IntN(100) < g.cfg.BatchPercent
	g.tokens(ev, c, false)
}

// tokens draws the measurements of one call.
func (g *gen) tokens(ev *event, c *customer, agentStep bool) {
	r := g.r
	m := ev.model
	var prompt int64
	cachePct := c.cachePct
	if agentStep {
		prompt = logInt(r, 2000, 120000)
		cachePct = 85
	} else {
		prompt = logInt(r, 100, 16000<<c.size)
	}
	var read, write int64
	if r.IntN(100) < cachePct {
		read = prompt * int64(40+r.IntN(56)) / 100
	}
	if (m.write5m || m.write1h) && r.IntN(100) < 25 {
		write = (prompt - read) * int64(30+r.IntN(60)) / 100
	}
	input := max(prompt-read-write, 1)
	ev.values[mInput] = input
	ev.values[mCacheRead] = read
	if write > 0 {
		if m.write1h && r.IntN(100) < 25 {
			ev.values[mCacheWrite1h] = write
		} else {
			ev.values[mCacheWrite5m] = write
		}
	}
	out := logInt(r, 16, 8192)
	ev.values[mOutput] = out
	if m.reasoning {
		chance := 70
		if m.family == anthropic {
			chance = 30 // extended thinking is opt-in
		}
		if r.IntN(100) < chance {
			ev.values[mReasoning] = out * int64(20+r.IntN(70)) / 100
		}
	}
	if m.family == anthropic {
		chance := 8
		if agentStep {
			chance = 30
		}
		if r.IntN(100) < chance {
			ev.values[mToolCalls] = 1 + r.Int64N(4)
		}
	}
}

// logInt returns an integer in [lo, hi) spread evenly over the doublings of lo (so small and large
// values are equally likely orders of magnitude): it picks a band [lo·2^k, lo·2^(k+1)) and a value
// uniform in it. It needs 0 < lo < hi.
func logInt(r *rand.Rand, lo, hi int64) int64 {
	bands := bits.Len64(uint64((hi - 1) / lo))
	a := lo << uint(r.IntN(bands))
	b := min(a<<1, hi)
	return a + r.Int64N(b-a)
}

// appendJSON encodes an event as one JSON line.
func appendJSON(b []byte, ev *event) []byte {
	b = append(b, `{"id":"evt_`...)
	b = appendULID(b, ev)
	b = append(b, `","eventType":"`...)
	if ev.agentRun {
		b = append(b, EventTypeAgentRun...)
	} else {
		b = append(b, EventTypeCompletion...)
	}
	b = append(b, `","customerId":"`...)
	b = append(b, ev.customer.id...)
	b = append(b, `","timestamp":"`...)
	b = ev.time.AppendFormat(b, timeLayout)
	b = append(b, `","properties":{"model":`...)
	b = append(b, ev.model.json...)
	if !ev.agentRun {
		b = append(b, `,"requestType":"`...)
		b = appendRequestType(b, ev)
		b = append(b, '"')
	}
	if ev.task > 0 {
		b = append(b, `,"taskId":"`...)
		b = appendTaskID(b, ev)
		b = append(b, '"')
	}
	b = append(b, `},"measurements":[`...)
	first := true
	for i, v := range ev.values {
		if v == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"metricKey":"`...)
		b = append(b, metricKeys[i]...)
		b = append(b, `","value":`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '}')
	}
	b = append(b, `],"correlationId":"`...)
	b = appendCorrelationID(b, ev)
	b = append(b, "\"}\n"...)
	return b
}

// appendCSV encodes an event as one CSV row.
func appendCSV(b []byte, ev *event) []byte {
	b = append(b, "evt_"...)
	b = appendULID(b, ev)
	b = append(b, ',')
	if ev.agentRun {
		b = append(b, EventTypeAgentRun...)
	} else {
		b = append(b, EventTypeCompletion...)
	}
	b = append(b, ',')
	b = append(b, ev.customer.id...)
	b = append(b, ',')
	b = ev.time.AppendFormat(b, timeLayout)
	b = append(b, ',')
	b = appendCorrelationID(b, ev)
	b = append(b, ',')
	b = append(b, ev.model.csv...)
	b = append(b, ',')
	if !ev.agentRun {
		b = appendRequestType(b, ev)
	}
	for _, v := range ev.values {
		b = append(b, ',')
		if v != 0 {
			b = strconv.AppendInt(b, v, 10)
		}
	}
	return append(b, '\n')
}

func appendRequestType(b []byte, ev *event) []byte {
	if ev.batch {
		return append(b, "batch"...)
	}
	return append(b, "standard"...)
}

// appendTaskID appends "task_<customer number>_<task number>", e.g. task_0003_000017.
func appendTaskID(b []byte, ev *event) []byte {
	b = append(b, "task_"...)
	b = append(b, ev.customer.id[len("cust_"):]...)
	b = append(b, '_')
	var digits [20]byte
	n := strconv.AppendInt(digits[:0], int64(ev.task), 10)
	for i := len(n); i < 6; i++ {
		b = append(b, '0')
	}
	return append(b, n...)
}

func appendCorrelationID(b []byte, ev *event) []byte {
	if ev.agentRun {
		b = append(b, "run_"...)
	} else {
		b = append(b, "req_"...)
	}
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hex[(ev.corr>>uint(shift))&15])
	}
	return b
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// appendULID appends 26 Crockford base32 characters: 48 bits of Unix milliseconds, then the
// event's 80 random bits.
func appendULID(b []byte, ev *event) []byte {
	ms := uint64(ev.time.UnixMilli())
	var s [26]byte
	for i := 9; i >= 0; i-- {
		s[i] = crockford[ms&31]
		ms >>= 5
	}
	hi := ev.idHi >> 24                             // top 40 random bits
	lo := (ev.idHi&(1<<24-1))<<16 | uint64(ev.idLo) // low 40 random bits
	for i := 17; i >= 10; i-- {
		s[i] = crockford[hi&31]
		hi >>= 5
	}
	for i := 25; i >= 18; i-- {
		s[i] = crockford[lo&31]
		lo >>= 5
	}
	return append(b, s[:]...)
}

// timeLayout formats a UTC time as RFC 3339 with milliseconds, e.g. 2026-10-20T08:15:03.042Z.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendJSONString appends s as a JSON string. s must be valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendCSVField appends s as a CSV field, quoted when it holds a comma, a quote or a line break.
func appendCSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, strings.ReplaceAll(s, `"`, `""`)...)
	return append(b, '"')
}
