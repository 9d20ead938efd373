package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/loadgen"
)

const benchAuthorizeUsage = "Usage: levy bench authorize [--url URL] [--key KEY] [--setup] [--connections 1] [--customers 100]\n" +
	"                            [--duration 10s | --requests N] [--warmup 1s] [--release] [--json]"

// runBenchAuthorize is `levy bench authorize`: decisions per second and their latency over a
// fixed number of keep-alive connections.
func runBenchAuthorize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench authorize", stderr, benchAuthorizeUsage+"\n\n"+
		"Sends POST /v1/authorize back to back over keep-alive connections (each connection waits\n"+
		"for its answer before the next request) for a fixed set of customers, and reports\n"+
		"decisions/s and the latency of each decision (p50/p90/p99/max, from an HDR-style\n"+
		"histogram of microseconds), ALLOWs, DENYs by reason, fail-open answers and errors.\n"+
		"With --setup it first applies the bench catalog (plan \"bench_authorize\": every limit set,\n"+
		"none reached) and puts the customers on it. Traffic goes only to --url.")
	cf := addClientFlags(fs)
	conns := fs.Int("connections", 1, "concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure (ignored with --requests)")
	requests := fs.Int64("requests", 0, "send this many requests, then stop (instead of --duration)")
	warmup := fs.Duration("warmup", time.Second, "leave the requests of the first … out of the rate and latencies")
	setup := fs.Bool("setup", false, "apply the bench catalog and create the customers first")
	customers := fs.Int("customers", 100, "number of customers the requests go to in turn")
	prefix := fs.String("customer-prefix", "bencha_", "customer IDs are this prefix and a number (bencha_0001, …)")
	model := fs.String("model", "claude-sonnet-4-6", "the model of every request")
	input := fs.Int64("input-tokens", 1500, "estimatedInputTokens of every request")
	output := fs.Int64("output-tokens", 1024, "maxOutputTokens of every request")
	release := fs.Bool("release", false, "release each ALLOW's reservation after the answer (not timed)")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one request")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *customers < 1 || *conns < 1 || *requests < 0 || *input < 0 || *output < 0 {
		fmt.Fprintln(stderr, "levy bench authorize: --customers and --connections must be at least 1; --requests and the token counts not negative")
		return errUsage
	}
	key := cf.apiKey()
	ids := loadgen.CustomerIDs(*prefix, *customers)
	if *setup {
		if !*asJSON {
			fmt.Fprintf(stdout, "setup: applying the bench catalog and creating %d customers on plan %q\n", len(ids), loadgen.AuthorizePlan)
		}
		if err := loadgen.Setup(ctx, *cf.url, key, loadgen.SetupOptions{Catalog: loadgen.AuthorizeCatalog, Plan: loadgen.AuthorizePlan, Customers: ids}); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	var rb [4]byte
	rand.Read(rb[:])
	cfg := loadgen.AuthorizeConfig{
		URL: *cf.url, Key: key, Customers: ids, Model: *model, InputTokens: *input, OutputTokens: *output,
		RunID: "bench-" + hex.EncodeToString(rb[:]), Connections: *conns, Warmup: *warmup, Release: *release, Timeout: *timeout,
	}
	if *requests > 0 {
		cfg.Requests = *requests
	} else {
		cfg.Duration = *duration + *warmup
	}
	if !*asJSON {
		bound := fmt.Sprintf("for %s (+%s warmup)", *duration, *warmup)
		if *requests > 0 {
			bound = fmt.Sprintf("%d requests", *requests)
		}
		fmt.Fprintf(stdout, "bench authorize: %s, %d connections, %d customers, %s\n", *cf.url, *conns, len(ids), bound)
	}
	res, err := loadgen.RunAuthorize(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			URL string `json:"url"`
			*loadgen.AuthorizeResult
		}{*cf.url, res}); err != nil {
			return err
		}
	} else {
		printBenchAuthorize(stdout, res)
	}
	if res.Decisions == 0 {
		return fmt.Errorf("no decision was answered")
	}
	return nil
}

func printBenchAuthorize(w io.Writer, r *loadgen.AuthorizeResult) {
	ms := func(us int64) string { return fmt.Sprintf("%d.%03d ms", us/1000, us%1000) }
	fmt.Fprintf(w, "  decisions            %d (%d ALLOW, %d DENY, %d fail-open)", r.Decisions, r.Allowed, r.Denied, r.FailOpen)
	if r.Interrupted {
		fmt.Fprint(w, "  [interrupted]")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  measured window      %s: %d decisions\n", time.Duration(r.Elapsed)*time.Microsecond, r.MeasuredDecisions)
	fmt.Fprintf(w, "  throughput           %.0f decisions/s\n", r.DecisionsPerSecond)
	l := r.Latency
	fmt.Fprintf(w, "  latency per decision p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean))
	if r.Released > 0 {
		fmt.Fprintf(w, "  reservations released %d\n", r.Released)
	}
	if len(r.Reasons) > 0 {
		fmt.Fprintf(w, "  denied by            %s\n", joinCounts(r.Reasons))
	}
	fmt.Fprintf(w, "  connections opened   %d\n", r.Dials)
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "  errors               none")
		return
	}
	fmt.Fprintf(w, "  errors               %s (%d requests without a decision)\n", joinCounts(r.Errors), r.Failed)
	keys := make([]string, 0, len(r.ErrorSamples))
	for k := range r.ErrorSamples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    first %s answer: %s\n", k, r.ErrorSamples[k])
	}
}

func joinCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
