package forwardauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/problem"
)

// Headers a check reads.
const (
	HeaderModel         = "X-Levy-Model"
	HeaderInputTokens   = "X-Levy-Input-Tokens"
	HeaderMaxTokens     = "X-Levy-Max-Tokens"
	HeaderBodyBytes     = "X-Levy-Body-Bytes"
	HeaderCorrelationID = "X-Levy-Correlation-Id"
	HeaderTaskID        = "X-Levy-Task-Id"
	// HeaderTaskIDAlt is the task header the LLM gateway reads, accepted here too.
	HeaderTaskIDAlt = "Levy-Task-Id"
	HeaderMode      = "X-Levy-Forward-Auth-Mode"
	HeaderAPIKey    = "X-Api-Key"
)

// Headers an answer carries.
const (
	HeaderCustomerID     = "Levy-Customer-Id"
	HeaderReservationID  = "Levy-Reservation-Id"
	HeaderCorrelationOut = "Levy-Correlation-Id"
	HeaderTier           = "Levy-Tier"
	HeaderDenyReason     = "Levy-Deny-Reason"
	// HeaderDeny is nginx mode's marker of a DENY ("1").
	HeaderDeny = "Levy-Deny"
	// HeaderStatus is nginx mode's status the 403 stands for.
	HeaderStatus = "Levy-Status"
)

// Defaults of Config.
const (
	DefaultMaxOutputTokens = 4096
	// BytesPerToken turns X-Levy-Body-Bytes into an input estimate: the LLM gateway's estimate
	// of three bytes a token, which leans high for English and JSON framing.
	BytesPerToken = 3
	// MaxTokens bounds each token figure a check accepts (authorize's own bound).
	MaxTokens = limit.MaxValue / 2
	// maxText bounds a model, correlation or task ID, in bytes.
	maxText = 256
)

// DefaultRequestIDHeaders are the headers a correlation ID is taken from when the check
// carries no X-Levy-Correlation-Id.
var DefaultRequestIDHeaders = []string{"X-Request-Id"}

// CustomerResolver maps the Levy API key of a check to its customer. Errors are problems:
// Unauthorized for a missing, unknown or revoked key (401), Forbidden for a key that may not be
// used (403); anything else answers 503. gateway.KeyNameResolver satisfies it.
type CustomerResolver interface {
	Customer(ctx context.Context, apiKey string) (customerID string, err error)
}

// Authorizer makes the decision; *authorize.Service satisfies it.
type Authorizer interface {
	Authorize(ctx context.Context, r authorize.Request) (authorize.Result, error)
}

var _ Authorizer = (*authorize.Service)(nil)

// Config configures a Checker.
type Config struct {
	// Customers resolves the key (required).
	Customers CustomerResolver
	// Authorizer decides (required).
	Authorizer Authorizer
	// DefaultModel is the model of a check without X-Levy-Model; empty makes the header
	// required.
	DefaultModel string
	// DefaultMaxOutputTokens is the output a check without X-Levy-Max-Tokens holds (0: 4096).
	DefaultMaxOutputTokens int64
	// ModelAlias, when set, maps the model read (X-Levy-Model or a request body) to the name
	// the catalog prices, e.g. gateway.ModelAlias for dated snapshots. DefaultModel is used as
	// it is.
	ModelAlias func(string) string
	// RequestIDHeaders are read, in order, for a correlation ID when X-Levy-Correlation-Id is
	// absent (nil: DefaultRequestIDHeaders; empty non-nil: none).
	RequestIDHeaders []string
	// Log receives errors that are not the client's (nil discards).
	Log *slog.Logger
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Customers == nil {
		errs = append(errs, errors.New("customers: required"))
	}
	if c.Authorizer == nil {
		errs = append(errs, errors.New("authorizer: required"))
	}
	if c.DefaultMaxOutputTokens < 0 || c.DefaultMaxOutputTokens > MaxTokens {
		errs = append(errs, fmt.Errorf("defaultMaxOutputTokens: must be between 0 and %d", int64(MaxTokens)))
	}
	if c.DefaultModel != "" && !validText(c.DefaultModel) {
		errs = append(errs, errors.New("defaultModel: at most 256 bytes, no control characters"))
	}
	for i, h := range c.RequestIDHeaders {
		if !validHeaderName(h) {
			errs = append(errs, fmt.Errorf("requestIdHeaders[%d]: %q is not a header name", i, h))
		}
	}
	return errors.Join(errs...)
}

// Checker reads checks and decides them. It is safe for concurrent use; *Handler serves it
// over HTTP and package extauthz over gRPC.
type Checker struct {
	cfg       Config
	requestID []string // canonical header names
	log       *slog.Logger
}

// NewChecker returns a Checker, or the configuration's problems.
func NewChecker(cfg Config) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DefaultMaxOutputTokens == 0 {
		cfg.DefaultMaxOutputTokens = DefaultMaxOutputTokens
	}
	ids := cfg.RequestIDHeaders
	if ids == nil {
		ids = DefaultRequestIDHeaders
	}
	c := &Checker{cfg: cfg, log: cfg.Log}
	for _, h := range ids {
		c.requestID = append(c.requestID, http.CanonicalHeaderKey(h))
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// Getter reads one header by its canonical name ("X-Levy-Model"); http.Header satisfies it.
// A missing header reads as "".
type Getter interface {
	Get(name string) string
}

// Input is a check as read from its headers, before the key is resolved.
type Input struct {
	// APIKey is the Levy key ("" when none was sent).
	APIKey string
	// Request is the check; CustomerID is filled in by Decide. Model is "" when the check named
	// none and there is no default: Decide answers 400 then.
	Request authorize.Request
	// GeneratedCorrelation reports a correlation ID made by the checker (the check carried
	// none).
	GeneratedCorrelation bool
}

// Read reads a check's headers. fallbackID, when not empty, is the correlation ID used when
// neither X-Levy-Correlation-Id nor a request-ID header is present (ext_authz passes Envoy's
// request ID). The error is an Invalid problem naming every bad header.
func (c *Checker) Read(h Getter, fallbackID string) (Input, error) {
	var in Input
	var bad []problem.Field
	fail := func(header, msg string) { bad = append(bad, problem.Field{Field: header, Message: msg}) }

	in.APIKey = apiKey(h)
	if m := strings.TrimSpace(h.Get(HeaderModel)); m != "" {
		if c.cfg.ModelAlias != nil {
			m = c.cfg.ModelAlias(m)
		}
		if validText(m) {
			in.Request.Model = m
		} else {
			fail(HeaderModel, "at most 256 bytes, no control characters")
		}
	} else {
		in.Request.Model = c.cfg.DefaultModel
	}
	r := &in.Request
	if v := h.Get(HeaderInputTokens); v != "" {
		n, ok := parseCount(v)
		if !ok {
			fail(HeaderInputTokens, countMsg)
		}
		r.EstimatedInputTokens = n
	} else if v := h.Get(HeaderBodyBytes); v != "" {
		n, ok := parseCount(v)
		if !ok {
			fail(HeaderBodyBytes, countMsg)
		}
		r.EstimatedInputTokens = (n + BytesPerToken - 1) / BytesPerToken
	}
	r.MaxOutputTokens = c.cfg.DefaultMaxOutputTokens
	if v := h.Get(HeaderMaxTokens); v != "" {
		n, ok := parseCount(v)
		if !ok {
			fail(HeaderMaxTokens, countMsg)
		}
		r.MaxOutputTokens = n
	}
	corr, corrHeader := strings.TrimSpace(h.Get(HeaderCorrelationID)), HeaderCorrelationID
	for i := 0; corr == "" && i < len(c.requestID); i++ {
		corr, corrHeader = strings.TrimSpace(h.Get(c.requestID[i])), c.requestID[i]
	}
	switch {
	case corr != "":
		if validText(corr) {
			r.CorrelationID = corr
		} else {
			fail(corrHeader, "at most 256 bytes, no control characters")
		}
	case fallbackID != "" && validText(fallbackID):
		r.CorrelationID = fallbackID
	default:
		r.CorrelationID = newCorrelationID()
		in.GeneratedCorrelation = true
	}
	task, taskHeader := strings.TrimSpace(h.Get(HeaderTaskID)), HeaderTaskID
	if task == "" {
		task, taskHeader = strings.TrimSpace(h.Get(HeaderTaskIDAlt)), HeaderTaskIDAlt
	}
	if validText(task) {
		r.TaskID = task
	} else {
		fail(taskHeader, "at most 256 bytes, no control characters")
	}
	if bad != nil {
		return in, &problem.Error{Kind: problem.Invalid, Message: "invalid forward-auth request: " + bad[0].Field + ": " + bad[0].Message, Fields: bad}
	}
	return in, nil
}

var countMsg = "must be a whole number of tokens written in digits, between 0 and " + strconv.FormatInt(MaxTokens, 10)

// apiKey reads the Levy key: a Bearer Authorization, else X-Api-Key.
func apiKey(h Getter) string {
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		if k := strings.TrimSpace(a[7:]); k != "" {
			return k
		}
	}
	return strings.TrimSpace(h.Get(HeaderAPIKey))
}

// parseCount reads a token count: ASCII digits (surrounding spaces and tabs ignored), at most
// MaxTokens.
func parseCount(s string) (int64, bool) {
	s = strings.Trim(s, " \t")
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > MaxTokens {
			return 0, false
		}
	}
	return n, true
}

// validText accepts up to 256 bytes without ASCII control characters.
func validText(s string) bool {
	if len(s) > maxText {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// newCorrelationID returns "fwd_" and 16 random bytes in hex.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "fwd_" + hex.EncodeToString(b[:])
}

// ApplyBody sets the input's model and token figures from a parsed LLM request body, which
// wins over the headers (it is what the provider will serve): the body's model (through
// Config.ModelAlias), its estimated input tokens, and its output cap times its number of
// choices, or Config.DefaultMaxOutputTokens when it sets no cap; each figure capped at
// MaxTokens.
func (c *Checker) ApplyBody(in *Input, p provider.Request) {
	m := p.Model
	if c.cfg.ModelAlias != nil {
		m = c.cfg.ModelAlias(m)
	}
	in.Request.Model = m
	in.Request.EstimatedInputTokens = min(max(p.EstimatedInputTokens, 0), MaxTokens)
	out, n := p.MaxOutputTokens, max(p.Choices, 1)
	if out <= 0 {
		out = c.cfg.DefaultMaxOutputTokens
	}
	if out > MaxTokens/n {
		in.Request.MaxOutputTokens = MaxTokens
	} else {
		in.Request.MaxOutputTokens = out * n
	}
}

// Outcome is a decided check, or the reason there is no decision.
type Outcome struct {
	// Status is the HTTP status the check answers: 200 ALLOW, 429 DENY, else 400, 401, 403,
	// 500 or 503.
	Status int
	// Decided is set when Result holds a decision (200 or 429).
	Decided bool
	Result  authorize.Result
	// CustomerID is the key's customer ("" before the key resolved).
	CustomerID string
	// CorrelationID is the correlation ID the check was decided with.
	CorrelationID string
	// Kind and Message describe an answer that is not a decision; Fields names bad headers.
	Kind    problem.Kind
	Message string
	Fields  []problem.Field
}

// Allowed reports an ALLOW.
func (o *Outcome) Allowed() bool { return o.Decided && o.Result.Allowed() }

// Decide resolves the key and decides the check. It never fails: an error becomes an Outcome
// with its status (logged when it is not the client's doing).
func (c *Checker) Decide(ctx context.Context, in Input) Outcome {
	o := Outcome{CorrelationID: in.Request.CorrelationID}
	if in.APIKey == "" {
		return o.fail(problem.Unauthorized, "missing Levy API key: send Authorization: Bearer <key> or X-Api-Key", nil)
	}
	id, err := c.cfg.Customers.Customer(ctx, in.APIKey)
	if err != nil {
		switch k := problem.KindOf(err); k {
		case problem.Unauthorized, problem.Forbidden:
			return o.fail(k, message(err), nil)
		}
		c.log.Error("forward-auth: key lookup failed", "correlationId", o.CorrelationID, "err", err)
		return o.fail(problem.Unavailable, "Levy could not check the API key", nil)
	}
	o.CustomerID = id
	if in.Request.Model == "" {
		return o.fail(problem.Invalid, "invalid forward-auth request: "+HeaderModel+": required",
			[]problem.Field{{Field: HeaderModel, Message: "required (or configure a default model)"}})
	}
	req := in.Request
	req.CustomerID = id
	res, err := c.cfg.Authorizer.Authorize(ctx, req)
	if err != nil {
		var pe *problem.Error
		switch k := problem.KindOf(err); {
		case k == problem.NotFound:
			return o.fail(problem.Forbidden, "customer "+strconv.Quote(id)+" has no subscription: "+message(err), nil)
		case k == problem.Invalid && errors.As(err, &pe):
			return o.fail(problem.Invalid, pe.Message, pe.Fields)
		case k == problem.Unavailable, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			c.log.Warn("forward-auth: authorize unavailable", "customer", id, "correlationId", o.CorrelationID, "err", err)
			return o.fail(problem.Unavailable, "Levy could not decide in time", nil)
		}
		c.log.Error("forward-auth: authorize failed", "customer", id, "correlationId", o.CorrelationID, "err", err)
		return o.fail(problem.Internal, "internal error; the correlation ID identifies it in Levy's log", nil)
	}
	o.Decided, o.Result = true, res
	o.Status = http.StatusOK
	if !res.Allowed() {
		o.Status = http.StatusTooManyRequests
	}
	return o
}

// statusOf maps the kinds a check can fail with to their status.
var statusOf = map[problem.Kind]int{
	problem.Invalid:      http.StatusBadRequest,
	problem.Unauthorized: http.StatusUnauthorized,
	problem.Forbidden:    http.StatusForbidden,
	problem.Unavailable:  http.StatusServiceUnavailable,
	problem.Internal:     http.StatusInternalServerError,
}

func (o Outcome) fail(k problem.Kind, msg string, fields []problem.Field) Outcome {
	o.Kind, o.Message, o.Fields, o.Status = k, msg, fields, statusOf[k]
	return o
}

func message(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// Headers writes the answer's headers (everything but nginx mode's markers): on a decision the
// customer, correlation and reservation IDs, the tier, the reason of a DENY and the quota
// headers of authorize.Result.Headers (Retry-After included); WWW-Authenticate on a 401.
func (o *Outcome) Headers(h http.Header) {
	if o.CustomerID != "" {
		h.Set(HeaderCustomerID, o.CustomerID)
	}
	if o.CorrelationID != "" {
		h.Set(HeaderCorrelationOut, o.CorrelationID)
	}
	if o.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="levy"`)
	}
	if !o.Decided {
		return
	}
	r := &o.Result
	if r.ReservationID != "" {
		h.Set(HeaderReservationID, r.ReservationID)
	}
	if r.Tier != "" {
		h.Set(HeaderTier, r.Tier)
	}
	if !r.Allowed() {
		h.Set(HeaderDenyReason, r.Reason)
	}
	r.Headers(h)
}
