// Package config holds Levy's server configuration: one struct with documented defaults, read
// from an optional YAML file and then from LEVY_* environment variables, which win.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config configures `levy serve`. The zero value of every field means its default.
type Config struct {
	// Addr is the listen address (LEVY_ADDR). Default 127.0.0.1:7070.
	Addr string `yaml:"addr"`
	// DataDir holds the embedded store and the generated admin key (LEVY_DATA). Default ./levy-data.
	DataDir string `yaml:"data"`
	// DatabaseURL selects PostgreSQL instead of the embedded SQLite store (LEVY_DATABASE_URL).
	DatabaseURL string `yaml:"databaseUrl"`
	// RedisURL selects Redis as the counter store (LEVY_REDIS_URL).
	RedisURL string `yaml:"redisUrl"`
	// AdminKey, when set, is accepted as an admin API key (LEVY_ADMIN_KEY).
	AdminKey string `yaml:"adminKey"`
	// LogLevel is debug, info, warn or error (LEVY_LOG_LEVEL). Default info.
	LogLevel string `yaml:"logLevel"`
	// LogFormat is text or json (LEVY_LOG_FORMAT). Default text.
	LogFormat string `yaml:"logFormat"`
	// ShutdownTimeout bounds the drain of in-flight work on SIGTERM (LEVY_SHUTDOWN_TIMEOUT).
	// Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// SQLiteSynchronous is FULL (default: every commit is on disk) or NORMAL (a commit survives a
	// process crash but not a power loss) (LEVY_SQLITE_SYNCHRONOUS).
	SQLiteSynchronous string `yaml:"sqliteSynchronous"`

	Ingest    Ingest    `yaml:"ingest"`
	Counters  Counters  `yaml:"counters"`
	Close     Close     `yaml:"close"`
	Authorize Authorize `yaml:"authorize"`
	Gateway   Gateway   `yaml:"gateway"`
}

// Gateway configures the LLM gateway served under /gateway/ (see docs/gateway.md) and the
// Envoy ext_authz gRPC server.
type Gateway struct {
	// OpenAIBaseURL and AnthropicBaseURL are the upstream origins (LEVY_GATEWAY_OPENAI_BASE_URL,
	// LEVY_GATEWAY_ANTHROPIC_BASE_URL). Defaults: the providers' public APIs.
	OpenAIBaseURL    string `yaml:"openAIBaseUrl"`
	AnthropicBaseURL string `yaml:"anthropicBaseUrl"`
	// OpenAIKey and AnthropicKey are the provider credentials the gateway sends upstream
	// (LEVY_GATEWAY_OPENAI_KEY, LEVY_GATEWAY_ANTHROPIC_KEY); clients never see them.
	OpenAIKey    string `yaml:"openAIKey"`
	AnthropicKey string `yaml:"anthropicKey"`
	// MaxBodyBytes bounds a request body (LEVY_GATEWAY_MAX_BODY_BYTES). Default 32 MiB.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// ExtAuthzAddr, when set, serves Envoy's ext_authz gRPC API there (LEVY_EXT_AUTHZ_ADDR),
	// e.g. 127.0.0.1:7071.
	ExtAuthzAddr string `yaml:"extAuthzAddr"`
}

// Authorize tunes the pre-flight authorize path (POST /v1/authorize).
type Authorize struct {
	// Timeout bounds one decision's counter-store round trip when the counter store is Redis
	// (LEVY_AUTHORIZE_TIMEOUT); past it the decision fails open. Default 5ms. The in-process
	// counter store never waits on I/O and is called without a deadline.
	Timeout time.Duration `yaml:"timeout"`
	// ReservationTTL is how long an admitted request's reservation is held when its usage
	// event never settles it (LEVY_AUTHORIZE_RESERVATION_TTL). Default 10m; at least 1ms.
	ReservationTTL time.Duration `yaml:"reservationTtl"`
	// SafeRequestsPerMinute is the fail-open safe capacity: while the counter store cannot be
	// reached, each node admits at most this many requests per minute per customer
	// (LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE). Default 60.
	SafeRequestsPerMinute int64 `yaml:"safeRequestsPerMinute"`
}

// Counters tunes the counter store (in-process by default, Redis with RedisURL).
type Counters struct {
	// ApplyTimeout bounds one apply of a ledger event to the counter store
	// (LEVY_COUNTERS_APPLY_TIMEOUT). Default 2s.
	ApplyTimeout time.Duration `yaml:"applyTimeout"`
	// ReconcileEvery is how often every customer's counters are compared with the ledger
	// (LEVY_COUNTERS_RECONCILE_EVERY); 0 uses the default 10m, a negative value disables it.
	ReconcileEvery time.Duration `yaml:"reconcileEvery"`
	// Repair, when true, rebuilds the counters of customers the reconciler finds drifted
	// (LEVY_COUNTERS_REPAIR). Default false: drift is reported (metric and log) only.
	Repair bool `yaml:"repair"`
}

// Close tunes period close.
type Close struct {
	// Grace is how long after a period ends late events are still billed in it before the
	// period is closed and invoiced (LEVY_CLOSE_GRACE). Default 1h.
	Grace time.Duration `yaml:"grace"`
	// Every is how often due periods are looked for (LEVY_CLOSE_EVERY). Default 1m.
	Every time.Duration `yaml:"every"`
}

// Ingest tunes event ingestion.
type Ingest struct {
	// MaxBodyBytes caps a request body (LEVY_INGEST_MAX_BODY_BYTES). Default 4 MiB.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxBatch caps the events of one request (LEVY_INGEST_MAX_BATCH). Default 1000.
	MaxBatch int `yaml:"maxBatch"`
	// DefaultPlan, when set, subscribes unknown customers to this plan on their first event
	// (LEVY_INGEST_DEFAULT_PLAN). Empty (the default) rejects events of unknown customers.
	DefaultPlan string `yaml:"defaultPlan"`
	// MaxGroup caps how many events one group commit writes (LEVY_INGEST_MAX_GROUP). Default 5000.
	MaxGroup int `yaml:"maxGroup"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	var c Config
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7070"
	}
	if c.DataDir == "" {
		c.DataDir = "./levy-data"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.SQLiteSynchronous == "" {
		c.SQLiteSynchronous = "FULL"
	}
	if c.Ingest.MaxBodyBytes == 0 {
		c.Ingest.MaxBodyBytes = 4 << 20
	}
	if c.Ingest.MaxBatch == 0 {
		c.Ingest.MaxBatch = 1000
	}
	if c.Ingest.MaxGroup == 0 {
		c.Ingest.MaxGroup = 5000
	}
	if c.Counters.ApplyTimeout == 0 {
		c.Counters.ApplyTimeout = 2 * time.Second
	}
	if c.Counters.ReconcileEvery == 0 {
		c.Counters.ReconcileEvery = 10 * time.Minute
	}
	if c.Close.Grace == 0 {
		c.Close.Grace = time.Hour
	}
	if c.Close.Every == 0 {
		c.Close.Every = time.Minute
	}
	if c.Authorize.Timeout == 0 {
		c.Authorize.Timeout = 5 * time.Millisecond
	}
	if c.Authorize.ReservationTTL == 0 {
		c.Authorize.ReservationTTL = 10 * time.Minute
	}
	if c.Authorize.SafeRequestsPerMinute == 0 {
		c.Authorize.SafeRequestsPerMinute = 60
	}
}

// Load reads the YAML file at path (if path is not empty), applies LEVY_* variables from
// getenv, fills defaults and validates.
func Load(path string, getenv func(string) string) (Config, error) {
	var c Config
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
	}
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("LEVY_ADDR", &c.Addr)
	str("LEVY_DATA", &c.DataDir)
	str("LEVY_DATABASE_URL", &c.DatabaseURL)
	str("LEVY_REDIS_URL", &c.RedisURL)
	str("LEVY_ADMIN_KEY", &c.AdminKey)
	str("LEVY_LOG_LEVEL", &c.LogLevel)
	str("LEVY_LOG_FORMAT", &c.LogFormat)
	str("LEVY_SQLITE_SYNCHRONOUS", &c.SQLiteSynchronous)
	str("LEVY_INGEST_DEFAULT_PLAN", &c.Ingest.DefaultPlan)
	str("LEVY_GATEWAY_OPENAI_BASE_URL", &c.Gateway.OpenAIBaseURL)
	str("LEVY_GATEWAY_ANTHROPIC_BASE_URL", &c.Gateway.AnthropicBaseURL)
	str("LEVY_GATEWAY_OPENAI_KEY", &c.Gateway.OpenAIKey)
	str("LEVY_GATEWAY_ANTHROPIC_KEY", &c.Gateway.AnthropicKey)
	str("LEVY_EXT_AUTHZ_ADDR", &c.Gateway.ExtAuthzAddr)
	if v := getenv("LEVY_GATEWAY_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, errors.New("LEVY_GATEWAY_MAX_BODY_BYTES: must be a whole number"))
		}
		c.Gateway.MaxBodyBytes = n
	}
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", name, err))
			}
			*dst = d
		}
	}
	dur("LEVY_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	dur("LEVY_COUNTERS_APPLY_TIMEOUT", &c.Counters.ApplyTimeout)
	dur("LEVY_COUNTERS_RECONCILE_EVERY", &c.Counters.ReconcileEvery)
	dur("LEVY_CLOSE_GRACE", &c.Close.Grace)
	dur("LEVY_CLOSE_EVERY", &c.Close.Every)
	dur("LEVY_AUTHORIZE_TIMEOUT", &c.Authorize.Timeout)
	dur("LEVY_AUTHORIZE_RESERVATION_TTL", &c.Authorize.ReservationTTL)
	if v := getenv("LEVY_COUNTERS_REPAIR"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LEVY_COUNTERS_REPAIR: must be true or false"))
		}
		c.Counters.Repair = b
	}
	intVar := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: must be a whole number", name))
			}
			*dst = n
		}
	}
	intVar("LEVY_INGEST_MAX_BATCH", &c.Ingest.MaxBatch)
	intVar("LEVY_INGEST_MAX_GROUP", &c.Ingest.MaxGroup)
	if v := getenv("LEVY_INGEST_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, errors.New("LEVY_INGEST_MAX_BODY_BYTES: must be a whole number"))
		}
		c.Ingest.MaxBodyBytes = n
	}
	if v := getenv("LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, errors.New("LEVY_AUTHORIZE_SAFE_REQUESTS_PER_MINUTE: must be a whole number"))
		}
		c.Authorize.SafeRequestsPerMinute = n
	}
	c.fill()
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel: must be debug, info, warn or error (got %q)", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("logFormat: must be text or json (got %q)", c.LogFormat))
	}
	switch strings.ToUpper(c.SQLiteSynchronous) {
	case "FULL", "NORMAL":
	default:
		errs = append(errs, fmt.Errorf("sqliteSynchronous: must be FULL or NORMAL (got %q)", c.SQLiteSynchronous))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"shutdownTimeout", int64(c.ShutdownTimeout)}, {"gateway.maxBodyBytes", c.Gateway.MaxBodyBytes},
		{"counters.applyTimeout", int64(c.Counters.ApplyTimeout)}, {"close.grace", int64(c.Close.Grace)},
		{"close.every", int64(c.Close.Every)}, {"authorize.timeout", int64(c.Authorize.Timeout)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", f.name))
		}
	}
	if c.Ingest.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("ingest.maxBodyBytes: must be at least 1024"))
	}
	if c.Ingest.MaxBatch < 1 {
		errs = append(errs, errors.New("ingest.maxBatch: must be at least 1"))
	}
	if c.Ingest.MaxGroup < 1 {
		errs = append(errs, errors.New("ingest.maxGroup: must be at least 1"))
	}
	if c.Authorize.ReservationTTL < time.Millisecond {
		errs = append(errs, errors.New("authorize.reservationTtl: must be at least 1ms"))
	}
	if c.Authorize.SafeRequestsPerMinute < 1 {
		errs = append(errs, errors.New("authorize.safeRequestsPerMinute: must be at least 1"))
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		errs = append(errs, errors.New("adminKey: must be at least 16 characters"))
	}
	return errors.Join(errs...)
}
