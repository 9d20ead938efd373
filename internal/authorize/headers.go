package authorize

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/money"
)

// sfMax is the largest integer a structured field (RFC 9651) carries: 15 digits. Header
// figures beyond it are sent as it.
const sfMax = 999_999_999_999_999

// headerDims are the dimensions the IETF pair describes, in precedence order: every limited
// dimension except the wallet, whose "limit" is a balance.
var headerDims = [...]limit.Dimension{limit.DimMonthlySpend, limit.DimMonthlyTokens, limit.DimTPM, limit.DimRPM, limit.DimConcurrency}

// Headline returns the dimension the single-valued X-RateLimit-* headers describe: the denying
// one when it has figures, else the tightest active one (limit.Decision.Headline). ok is
// false when none is limited (or the decision failed open).
func (r *Result) Headline() (dim limit.Dimension, q Quota, ok bool) {
	if !r.headOK {
		return limit.DimNone, Quota{}, false
	}
	return r.head, r.Remaining[r.head], true
}

// figure formats a dimension's Limit or Remaining for a header: a count as it is, an amount
// of monthly_spend in minor units of the currency (cents for USD, rounded by money.Round), both
// capped at 999,999,999,999,999.
func (r *Result) figure(dim limit.Dimension, v int64) string {
	if dim == limit.DimMonthlySpend || dim == limit.DimWallet {
		d := money.Round(money.FromNanos(v), r.currency).Shift(r.currency.Minor)
		if d.GreaterThan(money.QtyInt(sfMax).Decimal()) {
			return strconv.FormatInt(sfMax, 10)
		}
		v = d.IntPart()
	}
	return strconv.FormatInt(max(min(v, sfMax), 0), 10)
}

// Headers writes the remaining-quota headers of the decision:
//
//   - X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (seconds until the
//     dimension is whole again, rounded up) of Headline();
//   - the IETF draft pair, one item per limited dimension other than the wallet, in precedence
//     order and named by reason code: RateLimit-Policy `"tokens_per_minute";q=100000;w=60`
//     (w: 60 for the per-minute limits, the billing period's length in seconds for the
//     monthly caps; max_concurrent has qu="concurrent-requests" and no window) and RateLimit
//     `"tokens_per_minute";r=98500;t=1` (t: seconds, rounded up);
//   - Retry-After (whole seconds, at least 1) on a DENY, and Levy-Fail-Open: true on a
//     decision taken without the counter store.
//
// monthly_spend figures are in minor units of the currency (cents). Nothing is written for
// dimensions that are not limited, so a fail-open ALLOW carries only Levy-Fail-Open.
func (r *Result) Headers(h http.Header) {
	if dim, q, ok := r.Headline(); ok {
		h.Set("X-RateLimit-Limit", r.figure(dim, q.Limit))
		h.Set("X-RateLimit-Remaining", r.figure(dim, q.Remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(min(q.ResetSeconds, sfMax), 10))
	}
	var policy, state strings.Builder
	for _, dim := range headerDims {
		q := &r.Remaining[dim]
		if !q.Active {
			continue
		}
		if policy.Len() > 0 {
			policy.WriteString(", ")
			state.WriteString(", ")
		}
		name := strconv.Quote(dim.String())
		policy.WriteString(name + ";q=" + r.figure(dim, q.Limit))
		switch dim {
		case limit.DimConcurrency:
			policy.WriteString(`;qu="concurrent-requests"`)
		case limit.DimTPM, limit.DimRPM:
			policy.WriteString(";w=" + strconv.FormatInt(Window/1000, 10))
		default:
			policy.WriteString(";w=" + strconv.FormatInt(min(max(r.periodSeconds, 0), sfMax), 10))
		}
		state.WriteString(name + ";r=" + r.figure(dim, q.Remaining) + ";t=" + strconv.FormatInt(min(q.ResetSeconds, sfMax), 10))
	}
	if policy.Len() > 0 {
		h.Set("RateLimit-Policy", policy.String())
		h.Set("RateLimit", state.String())
	}
	r.common(h)
}

// common writes Retry-After on a DENY and Levy-Fail-Open on a fail-open decision.
func (r *Result) common(h http.Header) {
	if r.Decision == Deny {
		h.Set("Retry-After", strconv.FormatInt(max(r.RetryAfterSeconds, 1), 10))
	}
	if r.FailOpen {
		h.Set("Levy-Fail-Open", "true")
	}
}

// OpenAIHeaders writes the rate-limit headers OpenAI's API sends, for the gateway's
// OpenAI-compatible routes: x-ratelimit-limit-requests, x-ratelimit-remaining-requests and
// x-ratelimit-reset-requests for requests_per_minute, and the same three with -tokens for
// tokens_per_minute. The reset is a duration as OpenAI writes it ("1s", "6m0s", "600ms"): the
// time until the bucket is full again. A dimension that is not limited is left out. Retry-After
// and Levy-Fail-Open as in Headers.
func (r *Result) OpenAIHeaders(h http.Header) {
	for _, x := range [...]struct {
		dim  limit.Dimension
		unit string
	}{{limit.DimRPM, "requests"}, {limit.DimTPM, "tokens"}} {
		q := &r.Remaining[x.dim]
		if !q.Active {
			continue
		}
		h.Set("x-ratelimit-limit-"+x.unit, r.figure(x.dim, q.Limit))
		h.Set("x-ratelimit-remaining-"+x.unit, r.figure(x.dim, q.Remaining))
		h.Set("x-ratelimit-reset-"+x.unit, q.ResetAfter.String())
	}
	r.common(h)
}

// AnthropicHeaders writes the rate-limit headers Anthropic's API sends, for the gateway's
// Anthropic-compatible routes: anthropic-ratelimit-requests-limit, -remaining and -reset for
// requests_per_minute, and anthropic-ratelimit-tokens-* for tokens_per_minute. The reset is
// the instant the bucket is full again, in RFC 3339 (UTC, whole seconds rounded up, so it is
// never early). A dimension that is not limited is left out. Retry-After and Levy-Fail-Open
// as in Headers.
func (r *Result) AnthropicHeaders(h http.Header) {
	for _, x := range [...]struct {
		dim  limit.Dimension
		unit string
	}{{limit.DimRPM, "requests"}, {limit.DimTPM, "tokens"}} {
		q := &r.Remaining[x.dim]
		if !q.Active {
			continue
		}
		h.Set("anthropic-ratelimit-"+x.unit+"-limit", r.figure(x.dim, q.Limit))
		h.Set("anthropic-ratelimit-"+x.unit+"-remaining", r.figure(x.dim, q.Remaining))
		at := r.now.Add(q.ResetAfter).UTC()
		if t := at.Truncate(time.Second); !t.Equal(at) {
			at = t.Add(time.Second)
		}
		h.Set("anthropic-ratelimit-"+x.unit+"-reset", at.Format(time.RFC3339))
	}
	r.common(h)
}
