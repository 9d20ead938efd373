package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/prometheus/client_golang/prometheus"
)

// Default upstreams.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
)

// Headers the gateway reads or writes.
const (
	// HeaderRequestID carries the gateway's request ID on every answer; it is the usage event's
	// correlationId and the authorize CorrelationID.
	HeaderRequestID = "Levy-Request-Id"
	// HeaderTaskID, sent by the client, names the agent run a call belongs to (the event's
	// taskId property and the authorize TaskID).
	HeaderTaskID = "Levy-Task-Id"
)

// Config configures a Gateway. The zero value of every field but the keys works.
type Config struct {
	// OpenAIBaseURL and AnthropicBaseURL are the upstream origins (scheme, host, optional path
	// prefix) the canonical paths /v1/... are appended to; a trailing "/" or "/v1" is ignored.
	// Defaults: DefaultOpenAIBaseURL, DefaultAnthropicBaseURL.
	OpenAIBaseURL    string
	AnthropicBaseURL string
	// OpenAIKey is sent upstream as Authorization: Bearer; AnthropicKey as x-api-key. The
	// client's own credentials (a Levy key) never reach the upstream. Empty sends none.
	OpenAIKey    string
	AnthropicKey string
	// MaxBodyBytes bounds a request body (413 beyond). Default 32 MiB.
	MaxBodyBytes int64
	// MaxResponseBytes bounds how much of a non-streaming response is kept to read its usage;
	// the client still gets all of it, and a larger body is billed as "estimated". Default 64 MiB.
	MaxResponseBytes int64
	// DefaultMaxOutputTokens is the output the pre-flight estimate assumes when a request sets
	// no max-token field (OpenAI allows that). Default 4096.
	DefaultMaxOutputTokens int64
	// EventType is the usage events' eventType. Default "llm.completion".
	EventType string
	// ModelAlias maps a model name (as requested or as reported) to the catalog's alias, for
	// the authorize Model and the event's model property. Default ModelAlias.
	ModelAlias func(string) string
	// Transport carries upstream requests. Default NewTransport().
	Transport http.RoundTripper
	// MeterQueue is how many usage events may wait for ingestion (default 10,000); MeterWorkers
	// how many batches are ingested at once (default 2). A worker gathers the events that
	// arrive within MeterLinger of the first (default 5ms; negative: only those already
	// waiting), up to MeterBatch (default 500), into one ingest call. MeterAttempts is how often
	// a call is tried (default 5), waiting MeterBackoff (default 100ms), then 4× longer each
	// time; MeterTimeout bounds one attempt (default 10s).
	MeterQueue    int
	MeterWorkers  int
	MeterLinger   time.Duration
	MeterBatch    int
	MeterAttempts int
	MeterBackoff  time.Duration
	MeterTimeout  time.Duration
	// ReleaseTimeout bounds releasing a reservation after a failed call. Default 1s.
	ReleaseTimeout time.Duration
	// Now is the clock (event timestamps). Default time.Now.
	Now func() time.Time
}

// Validate checks the configuration and returns every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, u := range []struct{ field, v string }{
		{"openAIBaseURL", c.OpenAIBaseURL}, {"anthropicBaseURL", c.AnthropicBaseURL},
	} {
		if u.v == "" {
			continue
		}
		if _, err := baseURL(u.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.field, err))
		}
	}
	for _, n := range []struct {
		field string
		v     int64
	}{
		{"maxBodyBytes", c.MaxBodyBytes}, {"maxResponseBytes", c.MaxResponseBytes},
		{"defaultMaxOutputTokens", c.DefaultMaxOutputTokens},
		{"meterQueue", int64(c.MeterQueue)}, {"meterWorkers", int64(c.MeterWorkers)},
		{"meterBatch", int64(c.MeterBatch)},
		{"meterAttempts", int64(c.MeterAttempts)},
		{"meterBackoff", int64(c.MeterBackoff)}, {"meterTimeout", int64(c.MeterTimeout)},
		{"releaseTimeout", int64(c.ReleaseTimeout)},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", n.field))
		}
	}
	if c.DefaultMaxOutputTokens > provider.MaxCount {
		errs = append(errs, fmt.Errorf("defaultMaxOutputTokens: at most %d", int64(provider.MaxCount)))
	}
	if c.EventType != "" && !validText(c.EventType, 256) {
		errs = append(errs, errors.New("eventType: 1 to 256 bytes of UTF-8 without control characters"))
	}
	return errors.Join(errs...)
}

// baseURL parses an upstream origin: absolute http(s), no query or fragment; the result has no
// trailing "/" or "/v1".
func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must have no query or fragment")
	}
	out := strings.TrimRight(u.String(), "/")
	out = strings.TrimSuffix(out, "/v1")
	return out, nil
}

func (c *Config) setDefaults() {
	if c.OpenAIBaseURL == "" {
		c.OpenAIBaseURL = DefaultOpenAIBaseURL
	}
	if c.AnthropicBaseURL == "" {
		c.AnthropicBaseURL = DefaultAnthropicBaseURL
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = 64 << 20
	}
	if c.DefaultMaxOutputTokens == 0 {
		c.DefaultMaxOutputTokens = 4096
	}
	if c.EventType == "" {
		c.EventType = "llm.completion"
	}
	if c.ModelAlias == nil {
		c.ModelAlias = ModelAlias
	}
	if c.Transport == nil {
		c.Transport = NewTransport()
	}
	if c.MeterQueue == 0 {
		c.MeterQueue = 10000
	}
	if c.MeterWorkers == 0 {
		c.MeterWorkers = 2
	}
	if c.MeterLinger == 0 {
		c.MeterLinger = 5 * time.Millisecond
	}
	if c.MeterBatch == 0 {
		c.MeterBatch = 500
	}
	if c.MeterAttempts == 0 {
		c.MeterAttempts = 5
	}
	if c.MeterBackoff == 0 {
		c.MeterBackoff = 100 * time.Millisecond
	}
	if c.MeterTimeout == 0 {
		c.MeterTimeout = 10 * time.Second
	}
	if c.ReleaseTimeout == 0 {
		c.ReleaseTimeout = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deps are the services a Gateway calls in-process.
type Deps struct {
	// Customers maps the client's Levy key to its customer (e.g. a KeyNameResolver).
	Customers CustomerResolver
	// Authorizer makes the pre-flight decision.
	Authorizer Authorizer
	// Ingester stores the usage events (*billing.Service).
	Ingester Ingester
	// Log receives errors and lost events; nil discards.
	Log *slog.Logger
	// Registry, when set, gets the gateway's metrics.
	Registry prometheus.Registerer
}

// Gateway is the LLM gateway: an http.Handler that authorizes, forwards and meters calls to the
// OpenAI Chat Completions and Responses APIs and the Anthropic Messages API. Call Close when
// done, so queued usage events are ingested.
type Gateway struct {
	cfg       Config
	openAI    string // upstream origins, normalised
	anthropic string
	customers CustomerResolver
	auth      Authorizer
	log       *slog.Logger
	m         *metrics
	meter     *meter

	work   tracker // requests in flight + events not yet ingested
	mu     sync.Mutex
	closed bool
}

var _ http.Handler = (*Gateway)(nil)

// New returns a gateway; it starts the workers that ingest usage events. Errors name the bad
// Config fields or the missing dependency.
func New(cfg Config, deps Deps) (*Gateway, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.Customers == nil {
		errs = append(errs, errors.New("deps.Customers: required"))
	}
	if deps.Authorizer == nil {
		errs = append(errs, errors.New("deps.Authorizer: required"))
	}
	if deps.Ingester == nil {
		errs = append(errs, errors.New("deps.Ingester: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g := &Gateway{cfg: cfg, customers: deps.Customers, auth: deps.Authorizer, log: log, m: newMetrics(deps.Registry)}
	g.openAI, _ = baseURL(cfg.OpenAIBaseURL)
	g.anthropic, _ = baseURL(cfg.AnthropicBaseURL)
	g.meter = newMeter(deps.Ingester, log, g.m, cfg, &g.work)
	return g, nil
}

// Flush waits until every request begun before it has finished and its usage event has been
// ingested (or given up on), or until ctx is done.
func (g *Gateway) Flush(ctx context.Context) error { return g.work.wait(ctx) }

// Close stops taking requests (later ones get 503), waits for those in flight and for their
// usage events to be ingested, then stops the ingest workers. If ctx ends first, Close returns
// its error and the workers go on draining the queue in the background.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	if err := g.work.wait(ctx); err != nil {
		go g.meter.close()
		return err
	}
	g.meter.close()
	return nil
}

// The routes. The handler answers both the provider-prefixed paths (mount it under a prefix
// such as /gateway and give the SDKs base URLs .../gateway/openai/v1 and .../gateway/anthropic)
// and the bare provider paths (for a gateway on its own listener).
func route(path string) (api provider.API, known, anthropicPrefix bool) {
	p, isOpenAI := strings.CutPrefix(path, "/openai")
	if !isOpenAI {
		p, anthropicPrefix = strings.CutPrefix(path, "/anthropic")
	}
	if p == path && !strings.HasPrefix(path, "/v1/") {
		return 0, false, false
	}
	switch p {
	case "/v1/chat/completions":
		api = provider.OpenAIChat
	case "/v1/responses":
		api = provider.OpenAIResponses
	case "/v1/messages":
		api = provider.AnthropicMessages
	default:
		return 0, false, anthropicPrefix
	}
	if (isOpenAI && api == provider.AnthropicMessages) || (anthropicPrefix && api != provider.AnthropicMessages) {
		return 0, false, anthropicPrefix
	}
	return api, true, anthropicPrefix
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api, known, anthropicPrefix := route(r.URL.Path)
	errAPI := api
	if !known {
		errAPI = provider.OpenAIChat
		if anthropicPrefix {
			errAPI = provider.AnthropicMessages
		}
	}
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.work.add()
	}
	g.mu.Unlock()
	if closed {
		writeError(w, errAPI, http.StatusServiceUnavailable, "the Levy gateway is shutting down", "")
		return
	}
	defer g.work.done()
	if !known {
		writeError(w, errAPI, http.StatusNotFound, "the Levy gateway serves only POST /v1/chat/completions, /v1/responses and /v1/messages", "")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, api, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST", "")
		return
	}
	g.serve(w, r, api)
}

// writeError answers an error of the gateway's own in the provider's format.
func writeError(w http.ResponseWriter, api provider.API, status int, msg, code string) {
	h := w.Header()
	h.Set("Content-Type", provider.ErrorContentType)
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(provider.ErrorBody(api, status, msg, code))
}
