package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/counter"
	countermemory "github.com/levyhq/levy/internal/counter/memory"
	counterredis "github.com/levyhq/levy/internal/counter/redis"
	"github.com/levyhq/levy/internal/extauthz"
	"github.com/levyhq/levy/internal/forwardauth"
	"github.com/levyhq/levy/internal/gateway"
	"github.com/levyhq/levy/internal/httpapi"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/store/postgres"
	"github.com/levyhq/levy/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr, "Usage: levy serve [--config levy.yaml] [--addr 127.0.0.1:7070] [--data ./levy-data]\n\n"+
		"Runs the Levy server. With no configuration it keeps its data in ./levy-data (SQLite);\n"+
		"LEVY_DATABASE_URL selects PostgreSQL. Every flag has a LEVY_* variable (see docs/operations.md).")
	cfgPath := fs.String("config", os.Getenv("LEVY_CONFIG"), "YAML configuration file")
	addr := fs.String("addr", "", "listen address (LEVY_ADDR; default 127.0.0.1:7070)")
	data := fs.String("data", "", "data directory (LEVY_DATA; default ./levy-data)")
	cpuProf := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpuProf != "" {
		stop, err := startCPUProfile(*cpuProf)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	return serve(ctx, cfg, stdout, stderr, nil)
}

// serve runs the server until ctx is done. If listening is not nil it receives the bound address
// once the server accepts connections (tests use it with addr 127.0.0.1:0).
func serve(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, listening chan<- string) error {
	log := newLogger(cfg, stderr)
	st, backend, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := bootstrapAdminKey(ctx, st, cfg, stdout, log); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cs, csName, err := openCounters(ctx, cfg)
	if err != nil {
		return err
	}
	defer cs.Close()
	svc := billing.New(st, log, billing.Options{
		DefaultPlan: cfg.Ingest.DefaultPlan, MaxGroup: cfg.Ingest.MaxGroup, Metrics: billing.NewMetrics(reg),
		Counters: cs, CounterOptions: billing.CounterOptions{Durable: csName == "redis", Timeout: cfg.Counters.ApplyTimeout},
		Grace: cfg.Close.Grace,
	})
	svcCtx, stopSvc := context.WithCancel(context.Background())
	go svc.Run(svcCtx)
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	defer stopJobs()
	go svc.RunCloser(jobsCtx, cfg.Close.Every)
	if cfg.Counters.ReconcileEvery > 0 {
		go svc.RunReconciler(jobsCtx, cfg.Counters.ReconcileEvery, cfg.Counters.Repair)
	}

	// Pre-flight authorize decides with the same counter store. The in-process store never
	// waits on I/O, so it is called without a deadline; Redis gets authorize.timeout, past
	// which decisions fail open.
	timeout := cfg.Authorize.Timeout
	if csName != "redis" {
		timeout = -1
	}
	az := authorize.New(cs, svc, authorize.Options{
		Timeout: timeout, ReservationTTL: cfg.Authorize.ReservationTTL,
		SafeRequestsPerMinute: cfg.Authorize.SafeRequestsPerMinute, Registerer: reg,
	})

	// Keys named customer:<id> act for that customer at the gateway and forward-auth.
	customers := gateway.NewKeyNameResolver(st, 0)
	faCfg := forwardauth.Config{Customers: customers, Authorizer: az, ModelAlias: gateway.ModelAlias, Log: log}
	fa, err := forwardauth.New(faCfg)
	if err != nil {
		stopSvc()
		return err
	}
	gw, err := gateway.New(gateway.Config{
		OpenAIBaseURL: cfg.Gateway.OpenAIBaseURL, AnthropicBaseURL: cfg.Gateway.AnthropicBaseURL,
		OpenAIKey: cfg.Gateway.OpenAIKey, AnthropicKey: cfg.Gateway.AnthropicKey, MaxBodyBytes: cfg.Gateway.MaxBodyBytes,
	}, gateway.Deps{Customers: customers, Authorizer: gateway.ServiceAuthorizer(az), Ingester: svc, Log: log, Registry: reg})
	if err != nil {
		stopSvc()
		return err
	}

	var shuttingDown atomic.Bool
	api := httpapi.New(svc, st, httpapi.NewAuthenticator(st, cfg.AdminKey), log,
		httpapi.Options{MaxBodyBytes: cfg.Ingest.MaxBodyBytes, MaxBatch: cfg.Ingest.MaxBatch, Registry: reg, Authorize: az, ForwardAuth: fa},
		func() bool { return !shuttingDown.Load() })
	root := http.NewServeMux()
	root.Handle("/gateway/", http.StripPrefix("/gateway", gw))
	root.Handle("/", api)
	// No WriteTimeout: it would cut streamed completions.
	srv := &http.Server{Handler: root, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		stopSvc()
		return err
	}
	if cfg.Gateway.ExtAuthzAddr != "" {
		ea, err := extauthz.New(faCfg)
		if err != nil {
			stopSvc()
			return err
		}
		gln, err := net.Listen("tcp", cfg.Gateway.ExtAuthzAddr)
		if err != nil {
			stopSvc()
			return fmt.Errorf("ext_authz listener: %w", err)
		}
		log.Info("ext_authz listening", "addr", gln.Addr().String())
		go func() {
			if err := ea.Serve(ctx, gln, cfg.ShutdownTimeout); err != nil {
				log.Error("ext_authz", "err", err)
			}
		}()
	}
	log.Info("levy listening", "addr", ln.Addr().String(), "store", backend, "counters", csName)
	if listening != nil {
		listening <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Drain: stop accepting, let in-flight requests finish (their batches commit), then stop the
	// writer once its queue is empty.
	shuttingDown.Store(true)
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("shutdown", "err", serr)
	}
	// The gateway's queued usage events go into the ledger before the writer stops.
	if gerr := gw.Close(sctx); gerr != nil {
		log.Warn("gateway: usage events not ingested at shutdown", "err", gerr)
	}
	stopJobs()
	stopSvc()
	select {
	case <-svc.Stopped():
	case <-sctx.Done():
		log.Warn("the ingestion writer did not finish in time")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openCounters opens the counter store: Redis when configured, else the in-process one (which
// the service rebuilds from the ledger at start).
func openCounters(ctx context.Context, cfg config.Config) (counter.Store, string, error) {
	if cfg.RedisURL != "" {
		cs, err := counterredis.Open(ctx, cfg.RedisURL, counterredis.Options{})
		if err != nil {
			return nil, "", fmt.Errorf("open Redis: %w", err)
		}
		return cs, "redis", nil
	}
	return countermemory.New(countermemory.Options{}), "memory", nil
}

func openStore(ctx context.Context, cfg config.Config) (store.Store, string, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return st, "postgres", nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", err
	}
	path := filepath.Join(cfg.DataDir, "levy.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: strings.ToUpper(cfg.SQLiteSynchronous)})
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", path, err)
	}
	return st, "sqlite " + path, nil
}

// bootstrapAdminKey creates an admin key on the first start when none is configured or stored:
// it is printed once and written to <data>/admin.key (mode 0600).
func bootstrapAdminKey(ctx context.Context, st store.Store, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	if cfg.AdminKey != "" {
		return nil
	}
	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		return fmt.Errorf("list API keys: %w", err)
	}
	for _, k := range keys {
		if k.RevokedAt == nil {
			return nil
		}
	}
	k, secret, err := httpapi.CreateKey(ctx, st, "bootstrap admin", []store.Scope{store.ScopeAdmin}, time.Now())
	if err != nil {
		return fmt.Errorf("create the admin key: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "admin.key")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "Created admin API key %s (saved to %s; it is shown only once):\n\n    %s\n\n", k.ID, path, secret)
	log.Info("created the bootstrap admin key", "id", k.ID, "file", path)
	return nil
}
