package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/loadgen"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: levy bench ingest [--url URL] [--key KEY] [--setup] [--batch 100] [--connections 8]\n" +
		"                         [--duration 10s | --events N] [--json] [--ack-log FILE]"
	if len(args) > 0 && args[0] == "authorize" {
		return runBenchAuthorize(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprintln(stderr, usage)
		fmt.Fprintln(stderr, benchAuthorizeUsage)
		fmt.Fprintln(stderr, "\nbench ingest posts synthetic compound events (5 measurements each) to POST /v1/events and\n"+
			"reports what the server acknowledges: events/s, batches/s, latency per request, errors.\n"+
			"bench authorize sends pre-flight checks to POST /v1/authorize and reports decisions/s and\n"+
			"the latency of each decision.")
		return errUsage
	}
	fs := newFlagSet("bench ingest", stderr, usage+"\n\n"+
		"Posts synthetic compound events (input, output, cache read, 5-minute cache write and reasoning\n"+
		"tokens) to a running server in batches over keep-alive connections, and reports acknowledged\n"+
		"events/s, batches/s, latency per batch request (p50/p90/p99/max) and errors by status.\n"+
		"With --setup it first applies a small catalog (plan \"bench\", prices by model) and creates\n"+
		"the customers. Traffic goes only to --url.")
	cf := addClientFlags(fs)
	batch := fs.Int("batch", 100, "events per request")
	conns := fs.Int("connections", 8, "concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (ignored with --events)")
	events := fs.Int64("events", 0, "send this many events, then stop (instead of --duration)")
	warmup := fs.Duration("warmup", time.Second, "leave the requests of the first … out of rates and latencies")
	setup := fs.Bool("setup", false, "apply the bench catalog and create the customers first")
	customers := fs.Int("customers", 100, "number of customers events are spread over")
	prefix := fs.String("customer-prefix", "bench_", "customer IDs are this prefix and a number (bench_0001, …)")
	seed := fs.Uint64("seed", 1, "random seed of the synthetic events")
	runID := fs.String("run-id", "", "tag in every event id (default: random), so runs never collide")
	retries := fs.Int("retries", 3, "retries of a failed request (transport errors, 429, 5xx); -1 retries until interrupted")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of one request")
	ackLog := fs.String("ack-log", "", "append the id of every acknowledged event to this file, one per line")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *customers < 1 || *batch < 1 || *conns < 1 || *events < 0 {
		fmt.Fprintln(stderr, "levy bench ingest: --customers, --batch and --connections must be at least 1, --events not negative")
		return errUsage
	}
	if *runID == "" {
		var b [4]byte
		rand.Read(b[:])
		*runID = hex.EncodeToString(b[:])
	}
	key := cf.apiKey()
	ids := loadgen.CustomerIDs(*prefix, *customers)
	if *setup {
		if !*asJSON {
			fmt.Fprintf(stdout, "setup: applying the bench catalog and creating %d customers on plan %q\n", len(ids), loadgen.Plan)
		}
		if err := loadgen.Setup(ctx, *cf.url, key, loadgen.SetupOptions{Customers: ids}); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	cfg := loadgen.Config{
		URL:         *cf.url,
		Key:         key,
		Generator:   loadgen.Generator{Seed: *seed, RunID: *runID, Customers: ids},
		Batch:       *batch,
		Connections: *conns,
		Warmup:      *warmup,
		Retries:     *retries,
		Timeout:     *timeout,
	}
	if *events > 0 {
		cfg.Events = *events
	} else {
		cfg.Duration = *duration + *warmup
	}
	var ackFile *os.File
	if *ackLog != "" {
		f, err := os.OpenFile(*ackLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		ackFile = f
		cfg.AckLog = f
	}
	if !*asJSON {
		bound := fmt.Sprintf("for %s (+%s warmup)", *duration, *warmup)
		if *events > 0 {
			bound = fmt.Sprintf("%d events", *events)
		}
		fmt.Fprintf(stdout, "bench ingest: %s, %d connections, batches of %d, %d measurements per event, %s, run %s\n",
			*cf.url, *conns, *batch, len(loadgen.MetricKeys), bound, *runID)
	}
	res, err := loadgen.Run(ctx, cfg)
	if ackFile != nil && res != nil {
		if serr := ackFile.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("sync %s: %w", *ackLog, serr)
		}
	}
	if err != nil {
		if res == nil {
			return err
		}
		fmt.Fprintln(stderr, "levy bench ingest:", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(struct {
			URL   string `json:"url"`
			RunID string `json:"runId"`
			*loadgen.Result
		}{*cf.url, *runID, res}); jerr != nil {
			return jerr
		}
	} else {
		printBench(stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Events == 0 {
		return fmt.Errorf("no event was acknowledged")
	}
	return nil
}

func printBench(w io.Writer, r *loadgen.Result) {
	ms := func(us int64) string { return fmt.Sprintf("%d.%03d ms", us/1000, us%1000) }
	fmt.Fprintf(w, "  events acknowledged  %d (%d accepted, %d duplicates)", r.Events, r.Accepted, r.Duplicates)
	if r.Interrupted {
		fmt.Fprint(w, "  [interrupted]")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  measured window      %s: %d events, %d requests\n", time.Duration(r.Elapsed)*time.Microsecond, r.MeasuredEvents, r.MeasuredRequests)
	fmt.Fprintf(w, "  throughput           %.0f events/s, %.1f batches/s\n", r.EventsPerSecond, r.BatchesPerSecond)
	l := r.Latency
	fmt.Fprintf(w, "  latency per request  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d requests)\n",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean), l.Count)
	fmt.Fprintf(w, "  connections opened   %d\n", r.Dials)
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "  errors               none")
		return
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, r.Errors[k])
	}
	fmt.Fprintf(w, "  errors               %s (%d failed attempts, %d retries, %d events never acknowledged)\n",
		strings.Join(parts, ", "), r.FailedRequests, r.Retries, r.LostEvents)
	for _, k := range keys {
		if s := r.ErrorSamples[k]; s != "" {
			fmt.Fprintf(w, "    first %s answer: %s\n", k, s)
		}
	}
}
