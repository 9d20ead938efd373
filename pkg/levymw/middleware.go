package levymw

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// HeaderCorrelationID carries the call's correlation ID on the middleware's answers.
const HeaderCorrelationID = "Levy-Correlation-Id"

type ctxKey struct{}

// held is what the middleware leaves in a request's context.
type held struct {
	d Decision
	c *Client
}

// FromContext returns the decision the middleware took for the request whose context this is.
func FromContext(ctx context.Context) (Decision, bool) {
	h, ok := ctx.Value(ctxKey{}).(*held)
	if !ok {
		return Decision{}, false
	}
	return h.d, true
}

// Release frees the reservation the middleware took for this request's call, for a handler that
// ends up not calling the model. It reports whether there was one to free; without a decision
// in ctx (no middleware, or a fail-open ALLOW holding nothing) it is false and nil.
func Release(ctx context.Context) (bool, error) {
	h, ok := ctx.Value(ctxKey{}).(*held)
	if !ok || h.d.ReservationID == "" {
		return false, nil
	}
	// The request's context may be ending; the release should still reach Levy.
	return h.c.Release(context.WithoutCancel(ctx), h.d.CustomerID, h.d.ReservationID)
}

// Middleware enforces Levy's decision on every request next serves: see the package
// documentation. It panics if Config.Describe is nil, as a missing route handler would.
func (c *Client) Middleware(next http.Handler) http.Handler {
	if c.cfg.Describe == nil {
		panic("levymw: Middleware needs Config.Describe")
	}
	onDeny, onError := c.cfg.OnDeny, c.cfg.OnError
	if onDeny == nil {
		onDeny = DefaultDeny
	}
	if onError == nil {
		onError = c.defaultError
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := c.cfg.Describe(r)
		if err != nil {
			onError(w, r, err)
			return
		}
		d, err := c.Authorize(r.Context(), req)
		if err != nil {
			onError(w, r, err)
			return
		}
		h := w.Header()
		for k, v := range d.Header {
			h[k] = v
		}
		h.Set(HeaderCorrelationID, d.CorrelationID)
		if !d.Allowed {
			onDeny(w, r, d)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &held{d: d, c: c})))
	})
}

// DefaultDeny answers a denied request: 429 with Retry-After and
// {"error":{"type":"rate_limited","reason":…,"retryAfterSeconds":…}}.
func DefaultDeny(w http.ResponseWriter, r *http.Request, d Decision) {
	secs := max(int64(d.RetryAfter/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{
		"type": "rate_limited", "reason": d.Reason, "retryAfterSeconds": secs}})
}

// defaultError answers a request Levy did not decide.
func (c *Client) defaultError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusBadRequest, err.Error()
	var le *Error
	switch {
	case errors.Is(err, ErrUnavailable):
		c.log.Error("levymw: Levy could not decide", "path", r.URL.Path, "err", err)
		status, msg = http.StatusServiceUnavailable, "quota enforcement is unavailable; retry shortly"
		w.Header().Set("Retry-After", "1")
	case errors.As(err, &le) && !le.levy: // from Describe
		status, msg = le.Status, le.Detail
		if status < 400 || status > 599 {
			status = http.StatusBadRequest
		}
	case errors.As(err, &le) && le.Status == http.StatusBadRequest:
		msg = le.Detail
	case errors.As(err, &le) && le.Status == http.StatusNotFound:
		status, msg = http.StatusForbidden, "no subscription for this customer"
	case errors.As(err, &le):
		// Levy refused the service's own key or request: the service is misconfigured.
		c.log.Error("levymw: Levy refused the check", "path", r.URL.Path, "err", err)
		status, msg = http.StatusInternalServerError, "quota enforcement is misconfigured"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"type": "request_refused", "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
