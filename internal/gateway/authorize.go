package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/levyhq/levy/internal/authorize"
)

// ServiceAuthorizer adapts the in-process authorize service to the gateway's Authorizer. The
// customer's headers are authorize.Result's: Headers (X-RateLimit-*, RateLimit-Policy and
// RateLimit, Retry-After, Levy-Fail-Open) on every route, plus OpenAIHeaders or
// AnthropicHeaders by the route's style.
func ServiceAuthorizer(s *authorize.Service) Authorizer { return serviceAuthorizer{s} }

type serviceAuthorizer struct{ s *authorize.Service }

func (a serviceAuthorizer) Authorize(ctx context.Context, r AuthorizeRequest) (Decision, error) {
	res, err := a.s.Authorize(ctx, authorize.Request{
		CustomerID:           r.CustomerID,
		Model:                r.Model,
		EstimatedInputTokens: r.EstimatedInputTokens,
		MaxOutputTokens:      r.MaxOutputTokens,
		CorrelationID:        r.CorrelationID,
		TaskID:               r.TaskID,
	})
	if err != nil {
		return Decision{}, err
	}
	return Decision{
		Allowed:       res.Allowed(),
		Reason:        res.Reason,
		RetryAfter:    time.Duration(res.RetryAfterSeconds) * time.Second,
		ReservationID: res.ReservationID,
		FailOpen:      res.FailOpen,
		SetHeaders: func(h http.Header, style HeaderStyle) {
			res.Headers(h)
			switch style {
			case HeaderOpenAI:
				res.OpenAIHeaders(h)
			case HeaderAnthropic:
				res.AnthropicHeaders(h)
			}
		},
	}, nil
}

func (a serviceAuthorizer) Release(ctx context.Context, customerID, reservationID string) error {
	_, err := a.s.Release(ctx, customerID, reservationID)
	return err
}
