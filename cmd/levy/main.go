// Command levy is Levy's single binary: the billing simulator today, the server and its tools as
// they land. Run `levy help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server (embedded SQLite by default, PostgreSQL with LEVY_DATABASE_URL)", runServe},
		{"apply", "send a catalog to a running server: levy apply -f catalog.yaml", runApply},
		{"keys", "create, list and revoke API keys on a running server", runKeys},
		{"wallet", "add prepaid credit and show wallets: levy wallet grant|show <customer>", runWallet},
		{"invoices", "list a customer's final invoices, show one (or its CSV): levy invoices list|show", runInvoices},
		{"close", "close every due billing period now and print the invoices issued", runClose},
		{"counters", "check the counter store against the ledger, or rebuild it: levy counters check|rebuild", runCounters},
		{"simulate", "price a usage file on one or more plans of a catalog", runSimulate},
		{"generate", "write a synthetic usage file (JSON lines or CSV)", runGenerate},
		{"bench", "load-test a running server: levy bench ingest [--setup] [--batch 100] [--connections 8]", runBench},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "levy", version)
			return nil
		}},
	}
}

// errUsage marks an error whose message is already a usage text.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the command line and returns the process exit code: 0 on success, 1 on failure, 2 on
// a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "levy %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "levy: unknown command %q\n\n", args[0])
	printHelp(stderr)
	return 2
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "Levy: metering, rating and enforcement for LLM products.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: levy <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `levy <command> -h` for a command's flags.")
}
