package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/usagegen"
)

func runGenerate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", stderr, "Usage: levy generate --events 1000000 [--customers 1000] [--seed 1] [--csv] [-o usage.jsonl]\n\n"+
		"Writes a deterministic synthetic usage file (the same seed gives the same bytes), for\n"+
		"simulations and benchmarks.")
	events := fs.Int("events", 1000, "number of events")
	customers := fs.Int("customers", 100, "number of customers")
	seed := fs.Uint64("seed", 1, "random seed")
	start := fs.String("start", "", "earliest timestamp, RFC 3339 (default "+usagegen.DefaultStart.Format(time.RFC3339)+")")
	span := fs.Duration("span", usagegen.DefaultSpan, "time the events cover")
	models := fs.String("models", "", "comma-separated models (default: a mix of Anthropic and OpenAI models)")
	batch := fs.Int("batch-percent", 10, "share of API calls sent as batch requests")
	agents := fs.Int("agent-percent", 10, "share of customers running agents")
	asCSV := fs.Bool("csv", false, "write CSV (one measurement per column) instead of JSON lines")
	out := fs.String("o", "-", "output file (- for standard output)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := usagegen.Config{Events: *events, Customers: *customers, Seed: *seed, Span: *span, BatchPercent: *batch, AgentPercent: *agents}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return fmt.Errorf("--start: must be an RFC 3339 time")
		}
		cfg.Start = t
	}
	if *models != "" {
		cfg.Models = strings.Split(*models, ",")
	}
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	write := usagegen.Write
	if *asCSV {
		write = usagegen.WriteCSV
	}
	if err := write(bw, cfg); err != nil {
		return err
	}
	return bw.Flush()
}
