// Package levymw enforces Levy's pre-flight quotas inside a Go service: a net/http middleware
// and a small client for a Levy server's POST /v1/authorize.
//
// Each request the middleware guards is described (Config.Describe: which customer, which
// model, how many tokens it may use) and sent to Levy. On ALLOW the request goes on to the
// wrapped handler with the Decision in its context (FromContext): the reservation ID, the
// correlation ID the call's usage event must carry to settle it, the customer's tier. On DENY
// the client gets 429 with Retry-After. The customer's remaining-quota headers (X-RateLimit-*,
// RateLimit-Policy, RateLimit) are copied onto both answers. A handler that ends up not calling
// the model frees what the call held with Release.
//
// # Behaviour at the edges
//
//   - Every call to Levy is bounded by Config.Timeout (250 ms by default) on a keep-alive
//     connection pool; the caller's context bounds it too.
//   - Levy unreachable, slow past the timeout, answering 5xx or an answer that is not Levy's:
//     with Config.FailOpen the request is allowed with Decision.FailOpen set and no
//     reservation (Levy bills the call from its usage event all the same); without it the
//     middleware answers 503 with Retry-After: 1. Authorize returns such failures as errors
//     that match ErrUnavailable (errors.Is).
//   - Levy refusing the check (an *Error): 400 (bad figures) is answered 400 with Levy's detail;
//     404 (unknown customer) 403; any other refusal (401 or 403: the service's own key is wrong)
//     500, with the detail only in the log. Config.OnError replaces these answers.
//   - A Describe error answers its *Error's status when it is one, 400 otherwise.
//   - A Request without a CorrelationID gets one ("mw_" and 32 hex digits), returned in
//     Decision.CorrelationID and the Levy-Correlation-Id response header.
//   - Retry-After is Levy's retryAfterSeconds: whole seconds, at least 1.
//   - FailOpen never applies to a DENY, nor to Levy refusing the check.
//
// The package depends only on the standard library.
package levymw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds each call to Levy when Config.Timeout is 0.
const DefaultTimeout = 250 * time.Millisecond

// Request is one pre-flight check: the body of POST /v1/authorize.
type Request struct {
	CustomerID string `json:"customerId"`
	// Model is the model the call asks for, as the catalog names it.
	Model string `json:"model"`
	// EstimatedInputTokens and MaxOutputTokens bound the call's tokens.
	EstimatedInputTokens int64 `json:"estimatedInputTokens,omitempty"`
	MaxOutputTokens      int64 `json:"maxOutputTokens,omitempty"`
	// CorrelationID is the key the call's usage event settles the reservation by.
	CorrelationID string `json:"correlationId,omitempty"`
	// TaskID names the agent run the call belongs to.
	TaskID string `json:"taskId,omitempty"`
}

// Decision is Levy's answer to a check.
type Decision struct {
	Allowed bool
	// ReservationID names what an ALLOW holds ("" on DENY and when failing open).
	ReservationID string
	// CustomerID and CorrelationID are the request's.
	CustomerID    string
	CorrelationID string
	// Reason is the denying limit's code (e.g. "requests_per_minute"); "" on ALLOW.
	Reason string
	// RetryAfter is how long to wait before the same call could pass (whole seconds, at least
	// 1 s on DENY). Never is set when no wait helps.
	RetryAfter time.Duration
	Never      bool
	// Tier is the customer's spend tier, when the catalog has a ladder.
	Tier string
	// FailOpen marks an ALLOW given without a decision: by Levy (its counter store was down) or
	// by the middleware (Levy could not be asked, Config.FailOpen).
	FailOpen bool
	// Header holds Levy's quota headers: X-RateLimit-Limit/-Remaining/-Reset, RateLimit-Policy,
	// RateLimit, Retry-After, Levy-Fail-Open (those present).
	Header http.Header
}

// quotaHeaders are the headers of Levy's answer a Decision keeps and the middleware passes on.
var quotaHeaders = []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Ratelimit-Policy", "Ratelimit", "Retry-After", "Levy-Fail-Open"}

// ErrUnavailable is matched (errors.Is) by every failure to get an answer from Levy: a network
// error, the timeout, a 5xx, an answer that is not Levy's.
var ErrUnavailable = errors.New("levymw: Levy is unavailable")

// Error is Levy's refusal of a request (a problem document), or a status the middleware answers
// with when Describe returns one.
type Error struct {
	Status int
	// Type and Detail are the problem's; Fields names the bad fields.
	Type   string
	Detail string
	Fields []Field

	levy bool // the refusal came from Levy
}

// Field is one bad field of a refused request.
type Field struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("levy: %d %s (%s: %s)", e.Status, e.Detail, e.Fields[0].Field, e.Fields[0].Message)
	}
	return fmt.Sprintf("levy: %d %s", e.Status, e.Detail)
}

// Is makes a 5xx match ErrUnavailable.
func (e *Error) Is(target error) bool { return target == ErrUnavailable && e.Status >= 500 }

// Config configures a Client.
type Config struct {
	// URL is the Levy server's base URL, e.g. "http://127.0.0.1:7070" (required).
	URL string
	// APIKey is a Levy API key with the authorize scope (required).
	APIKey string
	// Describe tells the middleware what a request is: its customer, model and token bounds
	// (required by Middleware).
	Describe func(r *http.Request) (Request, error)
	// Timeout bounds each call to Levy (0: DefaultTimeout).
	Timeout time.Duration
	// FailOpen allows requests when Levy cannot be asked (see the package documentation).
	FailOpen bool
	// HTTPClient carries the calls (nil: a keep-alive client for one Levy host).
	HTTPClient *http.Client
	// OnDeny writes the answer to a denied request (nil: 429 with Retry-After and a JSON body).
	// The quota headers are already set.
	OnDeny func(w http.ResponseWriter, r *http.Request, d Decision)
	// OnError writes the answer when there is no decision (nil: see the package documentation).
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Log receives failures (nil: slog.Default()).
	Log *slog.Logger
}

// Client calls a Levy server. It is safe for concurrent use.
type Client struct {
	cfg       Config
	authorize string // URL of POST /v1/authorize
	base      string
	auth      string // "Bearer <key>"
	hc        *http.Client
	log       *slog.Logger
}

// New returns a Client, or an error naming every bad field of cfg.
func New(cfg Config) (*Client, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if cfg.URL == "" {
		errs = append(errs, errors.New("URL: required"))
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("URL: %q is not an http(s) base URL", cfg.URL))
	}
	if cfg.APIKey == "" {
		errs = append(errs, errors.New("APIKey: required"))
	} else if strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		errs = append(errs, errors.New("APIKey: must not contain spaces"))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("Timeout: must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("levymw: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	c := &Client{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), auth: "Bearer " + cfg.APIKey, hc: cfg.HTTPClient, log: cfg.Log}
	c.authorize = c.base + "/v1/authorize"
	if c.hc == nil {
		c.hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// answer is the JSON of a decision.
type answer struct {
	Decision          string `json:"decision"`
	ReservationID     string `json:"reservationId"`
	Tier              string `json:"tier"`
	Reason            string `json:"reason"`
	RetryAfterSeconds int64  `json:"retryAfterSeconds"`
	Never             bool   `json:"never"`
	FailOpen          bool   `json:"failOpen"`
}

// maxAnswer bounds the answer read from Levy.
const maxAnswer = 1 << 20

// Authorize asks Levy to decide r. A DENY is a Decision, not an error. Errors: Levy's refusal
// (*Error, e.g. 400 for bad figures, 404 for an unknown customer), or a failure matching
// ErrUnavailable; with Config.FailOpen the latter is instead an ALLOW with FailOpen set. A
// Request without a CorrelationID gets a generated one.
func (c *Client) Authorize(ctx context.Context, r Request) (Decision, error) {
	if r.CorrelationID == "" {
		r.CorrelationID = newCorrelationID()
	}
	d, err := c.ask(ctx, r)
	if err != nil && c.cfg.FailOpen && errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
		c.log.Warn("levymw: allowing without Levy (fail-open)", "customer", r.CustomerID, "correlationId", r.CorrelationID, "err", err)
		return Decision{Allowed: true, FailOpen: true, CustomerID: r.CustomerID, CorrelationID: r.CorrelationID, Header: http.Header{}}, nil
	}
	return d, err
}

func (c *Client) ask(ctx context.Context, r Request) (Decision, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return Decision{}, fmt.Errorf("levymw: encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.authorize, bytes.NewReader(body))
	if err != nil {
		return Decision{}, fmt.Errorf("levymw: %w", err)
	}
	req.Header["Authorization"] = []string{c.auth}
	req.Header["Content-Type"] = []string{"application/json"}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Decision{}, fmt.Errorf("%w: read answer: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
		return Decision{}, problemOf(resp.StatusCode, data)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil || (a.Decision != "ALLOW" && a.Decision != "DENY") ||
		(a.Decision == "ALLOW") != (resp.StatusCode == http.StatusOK) {
		if resp.StatusCode == http.StatusTooManyRequests && a.Decision == "" {
			return Decision{}, problemOf(resp.StatusCode, data) // a 429 that is not a decision
		}
		return Decision{}, fmt.Errorf("%w: the answer (%d) is not a decision: %.200q", ErrUnavailable, resp.StatusCode, data)
	}
	d := Decision{Allowed: a.Decision == "ALLOW", ReservationID: a.ReservationID, CustomerID: r.CustomerID,
		CorrelationID: r.CorrelationID, Reason: a.Reason, Never: a.Never, Tier: a.Tier, FailOpen: a.FailOpen, Header: http.Header{}}
	for _, h := range quotaHeaders {
		if v := resp.Header[h]; len(v) > 0 {
			d.Header[h] = v
		}
	}
	if !d.Allowed {
		secs := a.RetryAfterSeconds
		if secs <= 0 {
			secs, _ = strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
		}
		d.RetryAfter = time.Duration(max(secs, 1)) * time.Second
		d.Header.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	return d, nil
}

// problemOf reads Levy's problem document of a refusal.
func problemOf(status int, data []byte) error {
	var p struct {
		Type   string  `json:"type"`
		Detail string  `json:"detail"`
		Errors []Field `json:"errors"`
	}
	if json.Unmarshal(data, &p) != nil || p.Detail == "" {
		p.Detail = http.StatusText(status)
	}
	return &Error{Status: status, Type: p.Type, Detail: p.Detail, Fields: p.Errors, levy: true}
}

// Release frees an open reservation of a call that consumed nothing. It reports whether there
// was one to free (false: already settled, released or expired, which is not an error).
// Errors as Authorize's, without failing open.
func (c *Client) Release(ctx context.Context, customerID, reservationID string) (bool, error) {
	if reservationID == "" {
		return false, nil
	}
	body, _ := json.Marshal(struct {
		CustomerID string `json:"customerId"`
	}{customerID})
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/reservations/"+url.PathEscape(reservationID)+"/release", bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("levymw: %w", err)
	}
	req.Header["Authorization"] = []string{c.auth}
	req.Header["Content-Type"] = []string{"application/json"}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		return false, problemOf(resp.StatusCode, data)
	}
	var out struct {
		Released *bool `json:"released"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.Released == nil {
		return false, fmt.Errorf("%w: the release answer is not Levy's: %.200q", ErrUnavailable, data)
	}
	return *out.Released, nil
}

// newCorrelationID returns "mw_" and 16 random bytes in hex.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "mw_" + hex.EncodeToString(b[:])
}
