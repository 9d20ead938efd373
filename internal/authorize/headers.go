package authorize

import (
	"net/http"
	"strconv"
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

// figure formats a dimension's Limit or Remaining for a header (figureInt's value).
func (r *Result) figure(dim limit.Dimension, v int64) string {
	return strconv.FormatInt(r.figureInt(dim, v), 10)
}

// figureInt is a dimension's Limit or Remaining as a header carries it: a count as it is, an
// amount of monthly_spend or the wallet in minor units of the currency (cents for USD, rounded
// by money.Round), both clamped into [0, 999,999,999,999,999]. Only amounts pay for a decimal.
func (r *Result) figureInt(dim limit.Dimension, v int64) int64 {
	if dim == limit.DimMonthlySpend || dim == limit.DimWallet {
		// A whole number of minor units (limits usually are) needs no rounding: divide.
		if m := r.currency.Minor; m >= 0 && m <= 9 {
			if unit := int64(pow10(9 - m)); v%unit == 0 {
				return max(min(v/unit, sfMax), 0)
			}
		}
		d := money.Round(money.FromNanos(v), r.currency).Shift(r.currency.Minor)
		// |v| < 2^63 nanos is below 2^63 minor units for any currency of at most 9 decimals,
		// so IntPart is exact; wider ones are clamped before it.
		if d.Exponent() > 0 || d.NumDigits() > 18 {
			if d.Sign() < 0 {
				return 0
			}
			return sfMax
		}
		v = d.IntPart()
	}
	return max(min(v, sfMax), 0)
}

// Canonical header keys (textproto.CanonicalMIMEHeaderKey's form), so Headers can write the
// map directly instead of having Header.Set canonicalise each name on every answer.
const (
	hdrLimit     = "X-Ratelimit-Limit"
	hdrRemaining = "X-Ratelimit-Remaining"
	hdrReset     = "X-Ratelimit-Reset"
	hdrPolicy    = "Ratelimit-Policy"
	hdrState     = "Ratelimit"
	hdrRetry     = "Retry-After"
	hdrFailOpen  = "Levy-Fail-Open"
)

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
// dimensions that are not limited, so a fail-open ALLOW carries only Levy-Fail-Open. Header
// names are written in their canonical form (X-Ratelimit-Limit, Ratelimit-Policy…), replacing
// any value already there. All values share one string and one slice backing array: two
// allocations, plus the map's own growth (and money.Round's decimals for spend figures).
func (r *Result) Headers(h http.Header) {
	var buf [768]byte
	b := buf[:0]
	type span struct {
		key        string
		start, end int
	}
	var spans [7]span
	n := 0
	add := func(key string, start int) {
		spans[n] = span{key, start, len(b)}
		n++
	}
	// Each active dimension's figures, computed once for both header families.
	var lim, rem [limit.NumDimensions]int64
	for _, dim := range headerDims {
		if q := &r.Remaining[dim]; q.Active {
			lim[dim], rem[dim] = r.figureInt(dim, q.Limit), r.figureInt(dim, q.Remaining)
		}
	}
	if dim, q, ok := r.Headline(); ok {
		l, m := lim[dim], rem[dim]
		if dim == limit.DimWallet { // not one of headerDims
			l, m = r.figureInt(dim, q.Limit), r.figureInt(dim, q.Remaining)
		}
		at := len(b)
		b = strconv.AppendInt(b, l, 10)
		add(hdrLimit, at)
		at = len(b)
		b = strconv.AppendInt(b, m, 10)
		add(hdrRemaining, at)
		at = len(b)
		b = strconv.AppendInt(b, min(q.ResetSeconds, sfMax), 10)
		add(hdrReset, at)
	}
	policyAt := len(b)
	for _, dim := range headerDims {
		if !r.Remaining[dim].Active {
			continue
		}
		if len(b) > policyAt {
			b = append(b, ", "...)
		}
		b = append(b, '"')
		b = append(b, dim.String()...)
		b = append(b, `";q=`...)
		b = strconv.AppendInt(b, lim[dim], 10)
		switch dim {
		case limit.DimConcurrency:
			b = append(b, `;qu="concurrent-requests"`...)
		case limit.DimTPM, limit.DimRPM:
			b = append(b, ";w="...)
			b = strconv.AppendInt(b, Window/1000, 10)
		default:
			b = append(b, ";w="...)
			b = strconv.AppendInt(b, min(max(r.periodSeconds, 0), sfMax), 10)
		}
	}
	if len(b) > policyAt {
		add(hdrPolicy, policyAt)
		stateAt := len(b)
		for _, dim := range headerDims {
			q := &r.Remaining[dim]
			if !q.Active {
				continue
			}
			if len(b) > stateAt {
				b = append(b, ", "...)
			}
			b = append(b, '"')
			b = append(b, dim.String()...)
			b = append(b, `";r=`...)
			b = strconv.AppendInt(b, rem[dim], 10)
			b = append(b, ";t="...)
			b = strconv.AppendInt(b, min(q.ResetSeconds, sfMax), 10)
		}
		add(hdrState, stateAt)
	}
	if r.Decision == Deny {
		at := len(b)
		b = strconv.AppendInt(b, max(r.RetryAfterSeconds, 1), 10)
		add(hdrRetry, at)
	}
	if r.FailOpen {
		at := len(b)
		b = append(b, "true"...)
		add(hdrFailOpen, at)
	}
	if n == 0 {
		return
	}
	all := string(b)
	vals := make([]string, n)
	for i, sp := range spans[:n] {
		vals[i] = all[sp.start:sp.end]
		h[sp.key] = vals[i : i+1 : i+1]
	}
}

// common writes Retry-After on a DENY and Levy-Fail-Open on a fail-open decision.
func (r *Result) common(h http.Header) {
	if r.Decision == Deny {
		h[hdrRetry] = []string{strconv.FormatInt(max(r.RetryAfterSeconds, 1), 10)}
	}
	if r.FailOpen {
		h[hdrFailOpen] = []string{"true"}
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
