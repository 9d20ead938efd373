package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/simulate"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr, "Usage: levy simulate --catalog catalog.yaml --usage usage.jsonl [--plan KEY]... [--json]\n\n"+
		"Prices every customer's events on each named plan (all plans by default): one invoice per\n"+
		"(customer, plan, period). With several plans it prints a side-by-side comparison.")
	var (
		catPath   = fs.String("catalog", "", "catalog file (YAML or JSON)")
		usagePath = fs.String("usage", "", "usage file: JSON lines, or CSV when it ends in .csv (- reads standard input)")
		format    = fs.String("format", "", "usage format: jsonl or csv (default: from the file name)")
		asJSON    = fs.Bool("json", false, "print the JSON document instead of tables")
		anchor    = fs.String("anchor", "", "anchor periods at this RFC 3339 time instead of the calendar")
		progress  = fs.String("progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
		cpuProf   = fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
		plans     stringList
	)
	fs.Var(&plans, "plan", "plan to price (repeatable, or comma-separated); default every plan")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *catPath == "" || *usagePath == "" {
		fmt.Fprintln(stderr, "levy simulate: --catalog and --usage are required")
		fs.Usage()
		return errUsage
	}
	data, err := os.ReadFile(*catPath)
	if err != nil {
		return err
	}
	cat, err := catalog.Load(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *catPath, err)
	}
	opts := simulate.Options{Plans: plans}
	if *anchor != "" {
		t, err := time.Parse(time.RFC3339, *anchor)
		if err != nil {
			return fmt.Errorf("--anchor: must be an RFC 3339 time such as 2026-11-15T00:00:00Z")
		}
		opts.Anchor = t
	}
	fmtKind := simulate.JSONL
	switch strings.ToLower(*format) {
	case "csv":
		fmtKind = simulate.CSV
	case "jsonl", "json", "ndjson":
	case "":
		if strings.EqualFold(filepath.Ext(*usagePath), ".csv") {
			fmtKind = simulate.CSV
		}
	default:
		return fmt.Errorf("--format: must be jsonl or csv (got %q)", *format)
	}
	var in io.Reader
	var size int64
	name := *usagePath
	if *usagePath == "-" {
		in, name = os.Stdin, "stdin"
	} else {
		f, err := os.Open(*usagePath)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		in = f
	}
	if *cpuProf != "" {
		stopProfile, err := startCPUProfile(*cpuProf)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	var bar *progressBar
	if showProgress(*progress, stderr) {
		bar = newProgressBar(stderr, size)
		opts.Progress = bar.update
	}
	res, err := simulate.Run(cat, readerWithContext(ctx, in), name, fmtKind, opts)
	if bar != nil {
		bar.done()
	}
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(stdout, 1<<16)
	if *asJSON {
		err = res.WriteJSON(bw)
	} else {
		err = res.WriteTable(bw)
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// readerWithContext stops reading once ctx is done, so Ctrl-C ends a long simulation promptly.
func readerWithContext(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx, r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func showProgress(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws "[=====>    ]  45%  120 MiB/s" on one terminal line.
type progressBar struct {
	w     io.Writer
	total int64
	start time.Time
	last  time.Time
}

func newProgressBar(w io.Writer, total int64) *progressBar {
	now := time.Now()
	return &progressBar{w: w, total: total, start: now, last: now.Add(-time.Second)}
}

func (p *progressBar) update(n int64) {
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	ms := now.Sub(p.start).Milliseconds()
	if ms < 1 {
		ms = 1
	}
	rate := n * 1000 / ms >> 20 // MiB/s
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\rread %d MiB  %d MiB/s   ", n>>20, rate)
		return
	}
	const width = 30
	done := int(n * width / p.total)
	if done > width {
		done = width
	}
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	fmt.Fprintf(p.w, "\r[%s] %3d%%  %d MiB/s   ", bar, min(n*100/p.total, 100), rate)
}

func (p *progressBar) done() {
	fmt.Fprint(p.w, "\r"+strings.Repeat(" ", 50)+"\r")
}
