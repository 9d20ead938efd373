package gateway

import (
	"context"
	"net/http"
	"time"
)

// AuthorizeRequest is one pre-flight check, as the gateway asks it: the fields of
// authorize.Request.
type AuthorizeRequest struct {
	CustomerID string
	// Model is the model the client asked for, mapped to its catalog alias (Config.ModelAlias).
	Model string
	// EstimatedInputTokens is provider.Request.EstimatedInputTokens.
	EstimatedInputTokens int64
	// MaxOutputTokens is the worst-case output: the request's cap times its number of choices,
	// or Config.DefaultMaxOutputTokens when the request sets no cap.
	MaxOutputTokens int64
	// CorrelationID is the gateway's request ID: the usage event carries it, so ingesting the
	// event settles the reservation.
	CorrelationID string
	// TaskID is the Levy-Task-Id header ("" when absent).
	TaskID string
}

// HeaderStyle selects the rate-limit header set a route's SDK reads.
type HeaderStyle int

// The header styles.
const (
	// HeaderOpenAI: x-ratelimit-{limit,remaining,reset}-{requests,tokens}.
	HeaderOpenAI HeaderStyle = iota + 1
	// HeaderAnthropic: anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}.
	HeaderAnthropic
)

// Decision is the outcome of a pre-flight check.
type Decision struct {
	// Allowed is true for ALLOW (fail-open included), false for DENY.
	Allowed bool
	// Reason names the denying limit (e.g. "requests_per_minute"); "" on ALLOW.
	Reason string
	// RetryAfter is how long the client should wait before retrying a denied request; the
	// gateway sends it as Retry-After in whole seconds, rounded up, at least 1.
	RetryAfter time.Duration
	// ReservationID names the reservation an ALLOW holds; the gateway releases it when the call
	// consumed nothing. Empty when nothing is held (fail-open).
	ReservationID string
	// FailOpen marks an ALLOW given because the counter store could not be asked in time.
	FailOpen bool
	// SetHeaders, when not nil, writes the customer's remaining-quota headers into h: the
	// route's SDK style (OpenAI or Anthropic) plus the generic X-RateLimit-* and the IETF
	// RateLimit / RateLimit-Policy pair. It is called on every answer the decision governs.
	SetHeaders func(h http.Header, style HeaderStyle)
}

// Authorizer is the pre-flight decision, called in-process. *authorize.Service satisfies it
// through an adapter; its methods must be safe for concurrent use.
type Authorizer interface {
	// Authorize decides ALLOW or DENY. An error is not a decision: the gateway answers 403 for
	// a NotFound problem (the key's customer has no subscription), 400 for Invalid, 503 for
	// Unavailable and 500 otherwise, and forwards nothing.
	Authorize(ctx context.Context, r AuthorizeRequest) (Decision, error)
	// Release frees an open reservation of a call that consumed nothing (the upstream failed
	// before sending a token). Releasing a reservation that is already gone is not an error.
	Release(ctx context.Context, customerID, reservationID string) error
}
