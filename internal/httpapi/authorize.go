package httpapi

// The pre-flight authorize routes: POST /v1/authorize (the gateway's hot path), reservation
// release, a customer's live limits and breaker resets, over package authorize.
//
// POST /v1/authorize is decoded with fastjson into a flat struct and answered with JSON built
// by appending to a pooled buffer: no reflection, no SQL (the service reads billing's in-memory
// caches and makes one counter-store call).

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/usage"
)

// authorizeMaxBody caps an authorize request body. A valid request is at most about 1.2 KB
// (four strings of at most 256 bytes and two numbers); the cap leaves room for escapes.
const authorizeMaxBody = 64 << 10

// maxRequestTokens is the largest estimatedInputTokens or maxOutputTokens the service takes.
const maxRequestTokens = limit.MaxValue / 2

var (
	authParsers fastjson.ParserPool
	authBuffers = sync.Pool{New: func() any { return new(authBuffer) }}
)

// authBuffer holds one request's body and answer, reused across requests.
type authBuffer struct {
	in  bytes.Buffer
	out []byte
}

// unavailableAuthorize is the answer of the authorize routes on a server built without an
// authorize service.
func unavailableAuthorize() error {
	return problem.New(problem.Unavailable, "this server has no authorize service")
}

// postAuthorize decides one pre-flight request: 200 ALLOW or 429 DENY, each with the
// remaining-quota headers; a problem for a request that is not a decision (bad input, an
// unknown customer, an outage that could not fail open).
func (a *API) postAuthorize(w http.ResponseWriter, r *http.Request) {
	svc := a.opts.Authorize
	if svc == nil {
		a.writeError(w, r, unavailableAuthorize())
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, err := mediaType(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if mt != "application/json" {
			a.writeError(w, r, unsupported(mt, "application/json"))
			return
		}
	}
	buf := authBuffers.Get().(*authBuffer)
	defer authBuffers.Put(buf)
	buf.in.Reset()
	limitBytes := min(a.opts.MaxBodyBytes, authorizeMaxBody)
	if _, err := buf.in.ReadFrom(io.LimitReader(r.Body, limitBytes+1)); err != nil {
		a.writeError(w, r, problem.Invalidf("body", "could not be read: %v", err))
		return
	}
	if int64(buf.in.Len()) > limitBytes {
		a.writeError(w, r, &problem.Error{Kind: problem.TooLarge, Message: "the body exceeds " + strconv.FormatInt(limitBytes, 10) + " bytes",
			Fields: []problem.Field{{Field: "body", Message: "at most " + strconv.FormatInt(limitBytes, 10) + " bytes"}}})
		return
	}
	req, err := DecodeAuthorizeRequest(buf.in.Bytes())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := svc.Authorize(r.Context(), req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	h := w.Header()
	res.Headers(h)
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	status := http.StatusOK
	if !res.Allowed() {
		status = http.StatusTooManyRequests
	}
	buf.out = AppendAuthorizeResult(buf.out[:0], &res)
	w.WriteHeader(status)
	w.Write(buf.out)
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// authFields are the fields of an authorize request, in the order of the decoder's bits.
var authFields = [...]string{"customerId", "model", "estimatedInputTokens", "maxOutputTokens", "correlationId", "taskId"}

const (
	fCustomerID = iota
	fModel
	fInput
	fOutput
	fCorrelation
	fTask
)

// DecodeAuthorizeRequest reads a POST /v1/authorize body: a JSON object with customerId and
// model (strings, required), estimatedInputTokens and maxOutputTokens (whole numbers written
// in digits, default 0) and correlationId and taskId (strings, optional). A null value is the
// same as an absent field. Every problem is reported at once as an Invalid problem naming each
// field: a value of the wrong type, a number with a fraction or an exponent, a field given
// twice, an unknown field, invalid UTF-8, and every range authorize.Request.Validate checks.
// Input that is not one JSON object is a problem naming "body".
func DecodeAuthorizeRequest(body []byte) (authorize.Request, error) {
	p := authParsers.Get()
	defer authParsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return authorize.Request{}, problem.Invalidf("body", "is not a valid JSON object: %v", err)
	}
	obj, err := v.Object()
	if err != nil {
		return authorize.Request{}, problem.Invalidf("body", "must be a JSON object")
	}
	var d authDecoder
	found := 0
	for i, name := range authFields {
		if fv := obj.Get(name); fv != nil {
			found++
			d.field(i, fv)
		}
	}
	if found != obj.Len() {
		d.strayKeys(obj) // unknown or repeated keys: the slow path
	}
	if d.fields == nil {
		return d.req, d.req.Validate()
	}
	// Add the range problems of the fields that decoded.
	if verr := d.req.Validate(); verr != nil {
		if pe, ok := verr.(*problem.Error); ok {
			for _, f := range pe.Fields {
				if i := fieldIndex(f.Field); i < 0 || d.bad&(1<<i) == 0 {
					d.fields = append(d.fields, f)
				}
			}
		}
	}
	return d.req, &problem.Error{Kind: problem.Invalid, Message: "invalid authorize request: " + d.fields[0].Field + ": " + d.fields[0].Message, Fields: d.fields}
}

// authDecoder collects one request and the problems of its fields.
type authDecoder struct {
	req    authorize.Request
	fields []problem.Field
	bad    int // bits of authFields already reported
}

func (d *authDecoder) fail(i int, msg string) {
	if d.bad&(1<<i) == 0 {
		d.fields = append(d.fields, problem.Field{Field: authFields[i], Message: msg})
		d.bad |= 1 << i
	}
}

// field reads the value of authFields[i] (the first occurrence of the key).
func (d *authDecoder) field(i int, fv *fastjson.Value) {
	if fv.Type() == fastjson.TypeNull {
		return
	}
	switch i {
	case fInput, fOutput:
		n, msg := wholeNumber(fv)
		if msg != "" {
			d.fail(i, msg)
			return
		}
		if i == fInput {
			d.req.EstimatedInputTokens = n
		} else {
			d.req.MaxOutputTokens = n
		}
		return
	}
	if fv.Type() != fastjson.TypeString {
		d.fail(i, "must be a string")
		return
	}
	b, _ := fv.StringBytes()
	if !utf8.Valid(b) {
		d.fail(i, "must be valid UTF-8")
		return
	}
	switch i {
	case fCustomerID:
		d.req.CustomerID = string(b)
	case fModel:
		d.req.Model = string(b)
	case fCorrelation:
		d.req.CorrelationID = string(b)
	case fTask:
		d.req.TaskID = string(b)
	}
}

// strayKeys reports the keys that are not fields and the fields given more than once.
func (d *authDecoder) strayKeys(obj *fastjson.Object) {
	var seen int
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		i := fieldIndex(string(k))
		switch {
		case i < 0:
			d.fields = append(d.fields, problem.Field{Field: string(k), Message: "is not a known field (customerId, model, estimatedInputTokens, maxOutputTokens, correlationId, taskId)"})
		case seen&(1<<i) != 0:
			d.fail(i, "is given more than once")
		}
		if i >= 0 {
			seen |= 1 << i
		}
	})
}

func fieldIndex(name string) int {
	for i, f := range authFields {
		if f == name {
			return i
		}
	}
	return -1
}

var tokenRangeMsg = "must be between 0 and " + strconv.FormatInt(maxRequestTokens, 10)

// wholeNumber reads a token count: a JSON number written as an integer (an optional minus and
// digits). It returns the problem's message when the value is not one, or does not fit.
func wholeNumber(v *fastjson.Value) (int64, string) {
	if v.Type() != fastjson.TypeNumber {
		return 0, "must be a whole number (a JSON number such as 1500)"
	}
	if n, err := v.Int64(); err == nil {
		if n < 0 || n > maxRequestTokens {
			return 0, tokenRangeMsg
		}
		return n, ""
	}
	// Not an int64: a fraction, an exponent, NaN or Inf, or too many digits.
	text := v.MarshalTo(nil)
	digits := text
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, "must be a whole number written in digits, without a fraction or an exponent"
		}
	}
	return 0, tokenRangeMsg
}

// AppendAuthorizeResult appends the JSON answer of a decision:
//
//	{"decision":"ALLOW","reservationId":"rsv_…","tier":"build","failOpen":false,
//	 "estimate":{"tokens":2524,"cost":"0.01896"},"remaining":{…}}
//	{"decision":"DENY","reason":"tokens_per_minute","retryAfterSeconds":12,"failOpen":false,…}
//
// reservationId is present on an ALLOW that holds one (not when failing open); tier when the
// catalog has a ladder and the store was asked; reason and retryAfterSeconds on every DENY, and
// never: true when no wait helps. remaining (AppendRemaining) has one entry per limited
// dimension. Money is exact, in units of the currency, as a decimal string.
func AppendAuthorizeResult(b []byte, res *authorize.Result) []byte {
	b = append(b, `{"decision":`...)
	b = usage.AppendJSONString(b, string(res.Decision))
	if res.ReservationID != "" {
		b = append(b, `,"reservationId":`...)
		b = usage.AppendJSONString(b, res.ReservationID)
	}
	if res.Tier != "" {
		b = append(b, `,"tier":`...)
		b = usage.AppendJSONString(b, res.Tier)
	}
	if res.Decision == authorize.Deny {
		b = append(b, `,"reason":`...)
		b = usage.AppendJSONString(b, res.Reason)
		b = append(b, `,"retryAfterSeconds":`...)
		b = strconv.AppendInt(b, res.RetryAfterSeconds, 10)
		if res.Never {
			b = append(b, `,"never":true`...)
		}
	}
	b = append(b, `,"failOpen":`...)
	b = strconv.AppendBool(b, res.FailOpen)
	b = append(b, `,"estimate":{"tokens":`...)
	b = strconv.AppendInt(b, res.Estimate.Tokens, 10)
	b = append(b, `,"cost":`...)
	b = appendNanos(b, res.Estimate.Nanos)
	b = append(b, `},"remaining":`...)
	b = AppendRemaining(b, &res.Remaining)
	return append(b, "}\n"...)
}

// moneyDim reports whether a dimension's figures are nanos of the currency.
func moneyDim(d limit.Dimension) bool { return d == limit.DimMonthlySpend || d == limit.DimWallet }

// AppendRemaining appends the remaining-quota object: one entry per limited dimension, keyed by
// the reason code that dimension denies with (requests_per_minute, tokens_per_minute,
// monthly_tokens, monthly_spend, wallet_balance, max_concurrent), each
// {"limit", "remaining", "resetSeconds"}. Counts are JSON numbers; monthly_spend and
// wallet_balance are decimal strings in units of the currency (the wallet's limit is its
// balance). resetSeconds is the wait until the dimension is whole again, rounded up (0 for
// max_concurrent and the wallet). Breakers have no figures and never appear.
func AppendRemaining(b []byte, q *[limit.NumDimensions]authorize.Quota) []byte {
	b = append(b, '{')
	first := true
	for _, d := range remainingOrder {
		e := &q[d]
		if !e.Active {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = usage.AppendJSONString(b, d.String())
		b = append(b, `:{"limit":`...)
		if moneyDim(d) {
			b = appendNanos(b, e.Limit)
			b = append(b, `,"remaining":`...)
			b = appendNanos(b, e.Remaining)
		} else {
			b = strconv.AppendInt(b, e.Limit, 10)
			b = append(b, `,"remaining":`...)
			b = strconv.AppendInt(b, e.Remaining, 10)
		}
		b = append(b, `,"resetSeconds":`...)
		b = strconv.AppendInt(b, e.ResetSeconds, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// remainingOrder lists the dimensions with figures in the order the answer lists them.
var remainingOrder = [...]limit.Dimension{limit.DimRPM, limit.DimTPM, limit.DimMonthlyTokens, limit.DimMonthlySpend, limit.DimWallet, limit.DimConcurrency}

// appendNanos appends nanos of the currency as a JSON string holding the exact amount in units
// of the currency, as money.FromNanos(nanos).String() writes it ("12.5", "-0.000000001", "3"),
// with integer arithmetic only: it is a change of notation, nothing is rounded.
func appendNanos(b []byte, nanos int64) []byte {
	b = append(b, '"')
	u := uint64(nanos)
	if nanos < 0 {
		b = append(b, '-')
		u = -u // two's complement: right for math.MinInt64 too
	}
	b = strconv.AppendUint(b, u/1e9, 10)
	if frac := u % 1e9; frac != 0 {
		var digits [10]byte
		d := strconv.AppendUint(digits[:0], 1e9+frac, 10)[1:] // nine digits, zero-padded
		for d[len(d)-1] == '0' {
			d = d[:len(d)-1]
		}
		b = append(b, '.')
		b = append(b, d...)
	}
	return append(b, '"')
}

// releaseBody is the optional body of POST /v1/reservations/{id}/release.
type releaseBody struct {
	CustomerID string `json:"customerId"`
}

// releaseReservation ends an open reservation of a cancelled call. The customer is named by the
// body's customerId or the customerId query parameter (both: they must agree). An unknown,
// settled, released or expired reservation answers released: false.
func (a *API) releaseReservation(w http.ResponseWriter, r *http.Request) {
	svc := a.opts.Authorize
	if svc == nil {
		a.writeError(w, r, unavailableAuthorize())
		return
	}
	q := r.URL.Query()
	customerID, fromQuery := q.Get("customerId"), q.Has("customerId")
	if r.ContentLength != 0 {
		mt, err := mediaType(r)
		if err == nil && mt != "" && mt != "application/json" {
			err = unsupported(mt, "application/json")
		}
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		body, err := a.readBody(w, r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			var in releaseBody
			if err := decodeJSONBody(body, &in); err != nil {
				a.writeError(w, r, err)
				return
			}
			if fromQuery && in.CustomerID != customerID {
				a.writeError(w, r, problem.Invalidf("customerId", "the body and the query name different customers"))
				return
			}
			customerID = in.CustomerID
		}
	}
	ok, err := svc.Release(r.Context(), customerID, r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Released bool `json:"released"`
	}{ok})
}

// resetBreaker closes a margin-guard breaker: POST /v1/breakers/{id}/reset with id
// "<customerId>" or "<customerId>/task/<taskId>" (the slashes escaped as %2F), or
// POST /v1/breakers/{customerId}/task/{taskId}/reset.
func (a *API) resetBreaker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		customerID, task := r.PathValue("customerId"), r.PathValue("taskId")
		if !billing.ValidCustomerID(customerID) {
			a.writeError(w, r, problem.Invalidf("customerId", "must be 1 to 256 letters, digits or _ . : @ -"))
			return
		}
		if _, _, _, err := authorize.ParseBreakerID(authorize.BreakerID(customerID, task)); err != nil {
			a.writeError(w, r, problem.Invalidf("taskId", "must be 1 to 256 characters, no control characters"))
			return
		}
		id = authorize.BreakerID(customerID, task)
	}
	svc := a.opts.Authorize
	if svc == nil {
		a.writeError(w, r, unavailableAuthorize())
		return
	}
	ok, err := svc.ResetBreaker(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		BreakerID string `json:"breakerId"`
		Reset     bool   `json:"reset"`
	}{id, ok})
}

// limitsJSON is a customer's live limit state (GET /v1/customers/{id}/limits).
type limitsJSON struct {
	CustomerID       string            `json:"customerId"`
	Plan             string            `json:"plan"`
	PlanVersionID    int64             `json:"planVersionId"`
	PeriodStart      time.Time         `json:"periodStart"`
	PeriodEnd        time.Time         `json:"periodEnd"`
	Tier             string            `json:"tier,omitempty"`
	Currency         string            `json:"currency"`
	Limits           limitValuesJSON   `json:"limits"`
	Remaining        rawJSON           `json:"remaining"`
	OpenReservations int               `json:"openReservations"`
	Reservations     []reservationJSON `json:"reservations"`
}

// limitValuesJSON holds the limits in force; an absent one is unlimited, 0 allows nothing.
type limitValuesJSON struct {
	RequestsPerMinute *int64 `json:"requestsPerMinute,omitempty"`
	TokensPerMinute   *int64 `json:"tokensPerMinute,omitempty"`
	MonthlyTokens     *int64 `json:"monthlyTokens,omitempty"`
	MonthlySpend      string `json:"monthlySpend,omitempty"`
	MaxConcurrent     *int64 `json:"maxConcurrent,omitempty"`
}

type reservationJSON struct {
	ID            string    `json:"id"`
	CorrelationID string    `json:"correlationId,omitempty"`
	TaskID        string    `json:"taskId,omitempty"`
	Tokens        int64     `json:"tokens"`
	Cost          string    `json:"cost"`
	ExpiresAt     time.Time `json:"expiresAt"`
}

// rawJSON is JSON text embedded as is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// customerLimits answers a customer's live limit state: the limits in force in its tier, each
// limited dimension's remaining figures and the open reservations.
func (a *API) customerLimits(w http.ResponseWriter, r *http.Request) {
	svc := a.opts.Authorize
	if svc == nil {
		a.writeError(w, r, unavailableAuthorize())
		return
	}
	st, err := svc.Limits(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := limitsJSON{
		CustomerID: st.CustomerID, Plan: st.Plan, PlanVersionID: st.PlanVersionID,
		PeriodStart: st.Period.Start.UTC(), PeriodEnd: st.Period.End.UTC(), Tier: st.Tier, Currency: st.Currency.Code,
		Limits: limitValuesJSON{
			RequestsPerMinute: st.Limits.RequestsPerMinute, TokensPerMinute: st.Limits.TokensPerMinute,
			MonthlyTokens: st.Limits.MonthlyTokens, MaxConcurrent: st.Limits.MaxConcurrent,
		},
		Remaining:        AppendRemaining(nil, &st.Remaining),
		OpenReservations: len(st.Reservations),
		Reservations:     make([]reservationJSON, 0, len(st.Reservations)),
	}
	if st.Limits.MonthlySpend != nil {
		out.Limits.MonthlySpend = st.Limits.MonthlySpend.String()
	}
	for _, rv := range st.Reservations {
		out.Reservations = append(out.Reservations, reservationFromCounter(rv))
	}
	writeJSON(w, http.StatusOK, out)
}

func reservationFromCounter(rv counter.Reservation) reservationJSON {
	return reservationJSON{ID: rv.ID, CorrelationID: rv.CorrelationID, TaskID: rv.TaskID, Tokens: rv.Estimate.Tokens,
		Cost: money.FromNanos(rv.Estimate.Nanos).String(), ExpiresAt: rv.ExpiresAt.UTC()}
}
