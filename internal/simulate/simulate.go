// Package simulate prices a usage file on one or more plans of a catalog, one invoice per
// (customer, plan, period), without a server or a database. It is the engine behind
// `levy simulate`, and it prices exactly as the server does: the same rating engine, the same
// idempotency rule, the same rounding.
//
// Behaviour at the edges:
//   - Events are read as JSON lines in the event shape or as CSV (one measurement per column).
//     A malformed line fails the run with file:line and the field; no partial result is printed.
//   - Events repeating an idempotency key with the same content are counted once; the same key
//     with different content is an error, as the server's 409 would be.
//   - Periods follow the calendar (or an anchor given in Options) in UTC; a customer whose events
//     span several periods gets one invoice per period.
//   - Measurements that no meter uses are counted and reported, never silently dropped.
//   - Line `amount`s are rounded half away from zero to the currency's minor unit; an invoice's
//     `total` is the sum of its rounded line amounts and `preciseTotal` the exact sum.
package simulate

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/invoice"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/usage"
)

// Options tune a simulation.
type Options struct {
	// Plans to price on, by key; empty means every plan of the catalog.
	Plans []string
	// Anchor anchors every period; the zero value follows the calendar.
	Anchor time.Time
	// Now is the receipt time given to events without a timestamp (default time.Now).
	Now time.Time
	// Progress, when set, is called now and then with the number of bytes read so far.
	Progress func(bytesRead int64)
	// MaxErrors is how many bad lines are reported before giving up (default 20).
	MaxErrors int
}

// Format is the usage file format.
type Format int

// Usage file formats.
const (
	JSONL Format = iota
	CSV
)

// LineError locates a bad usage line.
type LineError struct {
	Line  int
	Field string
	Msg   string
}

func (e LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// UsageError lists the bad lines of a usage file.
type UsageError struct {
	Name   string
	Errors []LineError
	More   bool
}

func (e *UsageError) Error() string {
	var b strings.Builder
	for i, le := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		if le.Field == "" {
			fmt.Fprintf(&b, "%s:%d: %s", e.Name, le.Line, le.Msg)
		} else {
			fmt.Fprintf(&b, "%s:%d: %s: %s", e.Name, le.Line, le.Field, le.Msg)
		}
	}
	if e.More {
		b.WriteString("\n(more errors not shown)")
	}
	return b.String()
}

// Result is a simulation's outcome.
type Result struct {
	Currency money.Currency
	Plans    []string
	Invoices []Invoice
	// Events counts the distinct events priced; Duplicates the repeats ignored.
	Events     int64
	Duplicates int64
	// Unmetered counts, per measurement key, the events carrying it that no meter uses.
	Unmetered map[string]int64
	// Unpriced counts, per plan, the events that reached none of its charges.
	Unpriced map[string]int64
}

// Invoice is one (customer, plan, period) invoice.
type Invoice struct {
	CustomerID string
	Plan       string
	Period     period.Period
	invoice.Figures
}

type planRun struct {
	key   string
	rater *rating.Rater
	sched period.Schedule
}

type custPlan struct {
	cur    period.Period
	st     *rating.State
	states map[time.Time]*rating.State
}

type customer struct {
	plans []custPlan
}

// sim holds a run's state.
type sim struct {
	cat       *catalog.Catalog
	plans     []planRun
	customers map[string]*customer
	// seen maps each idempotency key's hash to the content hash of its first event. Two
	// different keys sharing a 64-bit hash would be reported as a conflict (about one chance in
	// 10^7 for a billion events), never merged silently.
	seen map[uint64]uint64
	res  *Result
}

func newSim(cat *catalog.Catalog, opts Options) (*sim, error) {
	keys := opts.Plans
	if len(keys) == 0 {
		for _, p := range cat.Plans {
			keys = append(keys, p.Key)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the catalog has no plans to price")
	}
	s := &sim{
		cat:       cat,
		customers: map[string]*customer{},
		seen:      make(map[uint64]uint64, 1<<16),
		res: &Result{
			Currency:  cat.Currency,
			Plans:     keys,
			Unmetered: map[string]int64{},
			Unpriced:  map[string]int64{},
		},
	}
	var unknown []string
	for _, k := range keys {
		p := cat.Plan(k)
		if p == nil {
			unknown = append(unknown, k)
			continue
		}
		anchor := opts.Anchor
		if anchor.IsZero() {
			anchor = period.CalendarAnchor
		}
		s.plans = append(s.plans, planRun{key: k, rater: rating.NewRater(cat, p), sched: period.Schedule{Unit: p.Period, Anchor: anchor}})
	}
	if len(unknown) > 0 {
		var have []string
		for _, p := range cat.Plans {
			have = append(have, p.Key)
		}
		return nil, fmt.Errorf("unknown plan %s (the catalog has: %s)", strings.Join(unknown, ", "), strings.Join(have, ", "))
	}
	return s, nil
}

// add prices one decoded event. It returns an error only for an idempotency conflict or a
// rating failure.
func (s *sim) add(ev *usage.Event) error {
	key := ev.KeyHash()
	h := ev.ContentHash()
	if prev, ok := s.seen[key]; ok {
		if prev != h {
			return fmt.Errorf("conflicts with an earlier event with the same idempotency key (%s) but different content", describeKey(ev))
		}
		s.res.Duplicates++
		return nil
	}
	s.seen[key] = h
	s.res.Events++
	c := s.customers[ev.CustomerID]
	if c == nil {
		c = &customer{plans: make([]custPlan, len(s.plans))}
		s.customers[ev.CustomerID] = c
	}
	for i := range s.plans {
		pr := &s.plans[i]
		cp := &c.plans[i]
		if cp.st == nil || !cp.cur.Contains(ev.Timestamp) {
			cp.cur = pr.sched.At(ev.Timestamp)
			if cp.states == nil {
				cp.states = map[time.Time]*rating.State{}
			}
			st := cp.states[cp.cur.Start]
			if st == nil {
				st = pr.rater.NewState()
				cp.states[cp.cur.Start] = st
			}
			cp.st = st
		}
		res, err := pr.rater.Accumulate(cp.st, ev)
		if err != nil {
			return err
		}
		if res.Unpriced {
			s.res.Unpriced[pr.key]++
		}
		if i == 0 {
			for _, k := range res.Unmetered {
				s.res.Unmetered[k]++
			}
		}
	}
	return nil
}

func describeKey(ev *usage.Event) string {
	if ev.ID != "" {
		return "id " + ev.ID
	}
	return "eventType " + ev.EventType + ", correlationId " + ev.CorrelationID
}

// finish prices every state into invoices.
func (s *sim) finish() *Result {
	ids := make([]string, 0, len(s.customers))
	for id := range s.customers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	cur := s.cat.Currency
	for _, id := range ids {
		c := s.customers[id]
		for i, pr := range s.plans {
			starts := make([]time.Time, 0, len(c.plans[i].states))
			for t := range c.plans[i].states {
				starts = append(starts, t)
			}
			sort.Slice(starts, func(a, b int) bool { return starts[a].Before(starts[b]) })
			for _, t := range starts {
				st := c.plans[i].states[t]
				s.res.Invoices = append(s.res.Invoices, Invoice{
					CustomerID: id,
					Plan:       pr.key,
					Period:     pr.sched.At(t),
					Figures:    invoice.Round(pr.rater.Price(st), cur),
				})
			}
		}
	}
	return s.res
}

// Run prices the usage read from r (named name in errors) on the catalog's plans.
func Run(cat *catalog.Catalog, r io.Reader, name string, format Format, opts Options) (*Result, error) {
	s, err := newSim(cat, opts)
	if err != nil {
		return nil, err
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 20
	}
	ue := &UsageError{Name: name}
	fail := func(le LineError) bool {
		if len(ue.Errors) >= opts.MaxErrors {
			ue.More = true
			return false
		}
		ue.Errors = append(ue.Errors, le)
		return true
	}
	cr := &countingReader{r: r, progress: opts.Progress}
	switch format {
	case CSV:
		err = s.readCSV(cr, opts, fail)
	default:
		err = s.readJSONL(cr, opts, fail)
	}
	if err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress(cr.n)
	}
	if len(ue.Errors) > 0 {
		return nil, ue
	}
	return s.finish(), nil
}

// readJSONL decodes lines on every core and rates them on this goroutine in file order, so the
// result (and which of two conflicting events is reported) never depends on scheduling.
func (s *sim) readJSONL(r io.Reader, opts Options, fail func(LineError) bool) error {
	workers := runtime.GOMAXPROCS(0)
	chunks := make(chan *chunk, workers*2)
	decoded := make(chan *chunk, workers*2)
	free := make(chan *chunk, workers*4)
	done := make(chan struct{})
	var readErr error
	go func() {
		readErr = splitLines(r, chunks, free, done)
		close(chunks)
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dec usage.Decoder
			for c := range chunks {
				c.decode(&dec, opts.Now)
				decoded <- c
			}
		}()
	}
	go func() { wg.Wait(); close(decoded) }()

	pending := map[int]*chunk{}
	next := 0
	stopped := false
	for c := range decoded {
		if stopped {
			continue
		}
		pending[c.seq] = c
		for {
			c, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if !s.rateChunk(c, fail) {
				stopped = true
				close(done)
				break
			}
			select {
			case free <- c:
			default:
			}
		}
	}
	return readErr
}

// rateChunk rates a decoded chunk's events and reports its bad lines, in line order. It returns
// false once too many errors were reported.
func (s *sim) rateChunk(c *chunk, fail func(LineError) bool) bool {
	e := 0
	for i := range c.events {
		for e < len(c.errs) && c.errs[e].Line < c.lines[i] {
			if !fail(c.errs[e]) {
				return false
			}
			e++
		}
		if err := s.add(&c.events[i]); err != nil {
			if !fail(LineError{Line: c.lines[i], Msg: err.Error()}) {
				return false
			}
		}
	}
	for ; e < len(c.errs); e++ {
		if !fail(c.errs[e]) {
			return false
		}
	}
	return true
}

// chunk is a run of whole lines and, once decoded, their events.
type chunk struct {
	seq       int
	firstLine int
	data      []byte
	events    []usage.Event
	lines     []int // line number of each event
	errs      []LineError
}

const chunkSize = 1 << 20

// splitLines reads r into chunks of whole lines.
func splitLines(r io.Reader, out chan<- *chunk, free <-chan *chunk, done <-chan struct{}) error {
	var carry []byte
	line := 1
	seq := 0
	for {
		var c *chunk
		select {
		case c = <-free:
		default:
			c = &chunk{}
		}
		if cap(c.data) < chunkSize+len(carry) {
			c.data = make([]byte, 0, chunkSize+len(carry))
		}
		c.data = append(c.data[:0], carry...)
		n, err := io.ReadFull(r, c.data[len(c.data):cap(c.data)])
		c.data = c.data[:len(c.data)+n]
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return fmt.Errorf("read usage: %w", err)
		}
		cut := len(c.data)
		if !eof {
			cut = bytes.LastIndexByte(c.data, '\n') + 1
			if cut == 0 { // one line longer than the chunk: read on
				if len(c.data) > 64<<20 {
					return fmt.Errorf("line %d: longer than 64 MiB", line)
				}
				carry = append(carry[:0], c.data...)
				continue
			}
		}
		carry = append(carry[:0], c.data[cut:]...)
		c.data = c.data[:cut]
		c.seq, c.firstLine = seq, line
		seq++
		line += bytes.Count(c.data, []byte{'\n'})
		if len(c.data) > 0 {
			select {
			case out <- c:
			case <-done:
				return nil
			}
		}
		if eof {
			return nil
		}
	}
}

// decode decodes every line of the chunk.
func (c *chunk) decode(dec *usage.Decoder, now time.Time) {
	c.errs = c.errs[:0]
	c.lines = c.lines[:0]
	n := 0
	lineNo := c.firstLine
	data := c.data
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			if n == len(c.events) {
				c.events = append(c.events, usage.Event{})
			}
			if err := dec.DecodeBytes(trimmed, now, &c.events[n]); err != nil {
				reportDecode(lineNo, err, func(le LineError) bool { c.errs = append(c.errs, le); return true })
			} else {
				c.lines = append(c.lines, lineNo)
				n++
			}
		}
		lineNo++
	}
	c.events = c.events[:n]
}

func reportDecode(lineNo int, err error, fail func(LineError) bool) bool {
	var ie *usage.InvalidError
	if errors.As(err, &ie) {
		for _, f := range ie.Fields {
			if !fail(LineError{Line: lineNo, Field: f.Field, Msg: f.Message}) {
				return false
			}
		}
		return true
	}
	return fail(LineError{Line: lineNo, Msg: err.Error()})
}

// readCSV reads usage as CSV: a header row, then one event per row. The columns id, eventType,
// customerId, timestamp and correlationId fill those fields; a column "properties.X" or
// "measurements.X" is the property or measurement X; any other column is a measurement when the
// catalog has a meter fed by that key, and a property otherwise. Empty cells are absent.
func (s *sim) readCSV(r io.Reader, opts Options, fail func(LineError) bool) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read CSV header: %w", err)
	}
	type col struct {
		kind int // 0 field, 1 property, 2 measurement
		name string
	}
	cols := make([]col, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		switch {
		case h == "id" || h == "eventType" || h == "customerId" || h == "timestamp" || h == "correlationId":
			cols[i] = col{0, h}
		case strings.HasPrefix(h, "properties."):
			cols[i] = col{1, strings.TrimPrefix(h, "properties.")}
		case strings.HasPrefix(h, "measurements."):
			cols[i] = col{2, strings.TrimPrefix(h, "measurements.")}
		case len(s.cat.MetersFedBy(h)) > 0:
			cols[i] = col{2, h}
		default:
			cols[i] = col{1, h}
		}
	}
	var dec usage.Decoder
	var ev usage.Event
	var buf []byte
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			if !fail(LineError{Line: line, Msg: "not valid CSV: " + err.Error()}) {
				return nil
			}
			continue
		}
		if len(rec) != len(cols) {
			if !fail(LineError{Line: line, Msg: fmt.Sprintf("has %d columns; the header has %d", len(rec), len(cols))}) {
				return nil
			}
			continue
		}
		// Re-encode the row as an event document so CSV and JSON go through one validator.
		buf = append(buf[:0], '{')
		first := true
		sep := func() {
			if !first {
				buf = append(buf, ',')
			}
			first = false
		}
		var props, meas []int
		for i, c := range cols {
			if rec[i] == "" {
				continue
			}
			switch c.kind {
			case 0:
				sep()
				buf = usage.AppendJSONString(buf, c.name)
				buf = append(buf, ':')
				buf = usage.AppendJSONString(buf, rec[i])
			case 1:
				props = append(props, i)
			case 2:
				meas = append(meas, i)
			}
		}
		if len(props) > 0 {
			sep()
			buf = append(buf, `"properties":{`...)
			for k, i := range props {
				if k > 0 {
					buf = append(buf, ',')
				}
				buf = usage.AppendJSONString(buf, cols[i].name)
				buf = append(buf, ':')
				buf = usage.AppendJSONString(buf, rec[i])
			}
			buf = append(buf, '}')
		}
		sep()
		buf = append(buf, `"measurements":[`...)
		for k, i := range meas {
			if k > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"metricKey":`...)
			buf = usage.AppendJSONString(buf, cols[i].name)
			buf = append(buf, `,"value":`...)
			buf = usage.AppendJSONString(buf, strings.TrimSpace(rec[i]))
			buf = append(buf, '}')
		}
		buf = append(buf, "]}"...)
		if derr := dec.DecodeBytes(buf, opts.Now, &ev); derr != nil {
			if !reportDecode(line, derr, fail) {
				return nil
			}
			continue
		}
		if aerr := s.add(&ev); aerr != nil {
			if !fail(LineError{Line: line, Msg: aerr.Error()}) {
				return nil
			}
		}
	}
}

type countingReader struct {
	r        io.Reader
	n        int64
	last     int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && c.n-c.last >= 4<<20 {
		c.last = c.n
		c.progress(c.n)
	}
	return n, err
}
