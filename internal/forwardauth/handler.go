package forwardauth

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/levyhq/levy/internal/problem"
)

// Handler is the forward-auth endpoint: an http.Handler over a Checker. Mount it at a path of
// the Levy server (e.g. /v1/forward-auth) and point the gateway's auth sub-request at it.
type Handler struct {
	c *Checker
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler, or the configuration's problems.
func New(cfg Config) (*Handler, error) {
	c, err := NewChecker(cfg)
	if err != nil {
		return nil, err
	}
	return &Handler{c: c}, nil
}

// Checker returns the handler's checker.
func (h *Handler) Checker() *Checker { return h.c }

// The answering modes.
const (
	modeDefault = iota
	modeNginx
)

// ServeHTTP answers one check; see the package documentation for the statuses and headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode, ok := readMode(r)
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	if !ok {
		o := Outcome{}.fail(problem.Invalid, "invalid forward-auth request: mode: must be nginx or absent",
			[]problem.Field{{Field: "mode", Message: "must be nginx or absent"}})
		write(w, r, &o, modeDefault)
		return
	}
	in, err := h.c.Read(r.Header, "")
	var o Outcome
	if err != nil {
		o = Outcome{CorrelationID: in.Request.CorrelationID}.fail(problem.Invalid, err.Error(), nil)
		if pe := (*problem.Error)(nil); errors.As(err, &pe) {
			o.Message, o.Fields = pe.Message, pe.Fields
		}
	} else {
		o = h.c.Decide(r.Context(), in)
	}
	write(w, r, &o, mode)
}

var (
	noStore  = []string{"no-store"}
	jsonType = []string{"application/json"}
	probType = []string{"application/problem+json"}
	one      = []string{"1"}
)

// readMode reads ?mode= or the mode header; ok is false for an unknown mode.
func readMode(r *http.Request) (mode int, ok bool) {
	m := r.Header.Get(HeaderMode)
	if v, ok := queryValue(r.URL.RawQuery, "mode"); ok {
		m = v
	}
	switch strings.ToLower(strings.TrimSpace(m)) {
	case "":
		return modeDefault, true
	case "nginx":
		return modeNginx, true
	}
	return modeDefault, false
}

// queryValue returns the first value of key in a raw query, as url.Values.Get would, without
// building the map (the hot path).
func queryValue(raw, key string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			if uk, err := url.QueryUnescape(k); err != nil || uk != key {
				continue
			}
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			return uv, true
		}
		return v, true
	}
	return "", false
}

// write sends the outcome.
func write(w http.ResponseWriter, r *http.Request, o *Outcome, mode int) {
	hdr := w.Header()
	o.Headers(hdr)
	status := o.Status
	if mode == modeNginx && status != http.StatusOK && status != http.StatusUnauthorized {
		hdr.Set(HeaderStatus, strconv.Itoa(status))
		if o.Decided {
			hdr[HeaderDeny] = one
		}
		status = http.StatusForbidden
	}
	ct, body := o.Body(make([]byte, 0, 256))
	hdr["Content-Type"] = ct
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// Body appends the answer's body to b and returns its content type: a decision's JSON
// (application/json) or, for an answer that is not a decision, a problem document
// (application/problem+json).
func (o *Outcome) Body(b []byte) (contentType []string, body []byte) {
	if o.Decided {
		return jsonType, appendDecision(b, o)
	}
	return probType, appendProblem(b, o)
}

// appendDecision appends {"decision":"ALLOW","customerId":…,"reservationId":…,"correlationId":…}
// or {"decision":"DENY","customerId":…,"reason":…,"retryAfterSeconds":…,"correlationId":…}.
func appendDecision(b []byte, o *Outcome) []byte {
	res := &o.Result
	b = append(b, `{"decision":`...)
	b = strconv.AppendQuote(b, string(res.Decision))
	b = append(b, `,"customerId":`...)
	b = appendString(b, o.CustomerID)
	if res.Allowed() {
		if res.ReservationID != "" {
			b = append(b, `,"reservationId":`...)
			b = appendString(b, res.ReservationID)
		}
	} else {
		b = append(b, `,"reason":`...)
		b = appendString(b, res.Reason)
		b = append(b, `,"retryAfterSeconds":`...)
		b = strconv.AppendInt(b, max(res.RetryAfterSeconds, 1), 10)
		if res.Never {
			b = append(b, `,"never":true`...)
		}
	}
	if res.FailOpen {
		b = append(b, `,"failOpen":true`...)
	}
	b = append(b, `,"correlationId":`...)
	b = appendString(b, o.CorrelationID)
	return append(b, "}\n"...)
}

// appendProblem appends an RFC 9457 problem document in the shape of Levy's API errors.
func appendProblem(b []byte, o *Outcome) []byte {
	b = append(b, `{"type":"https://levy.dev/problems/`...)
	b = append(b, o.Kind.String()...)
	b = append(b, `","title":`...)
	b = appendString(b, http.StatusText(o.Status))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(o.Status), 10)
	b = append(b, `,"detail":`...)
	b = appendString(b, o.Message)
	if len(o.Fields) > 0 {
		b = append(b, `,"errors":[`...)
		for i, f := range o.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"field":`...)
			b = appendString(b, f.Field)
			b = append(b, `,"message":`...)
			b = appendString(b, f.Message)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if o.CorrelationID != "" {
		b = append(b, `,"correlationId":`...)
		b = appendString(b, o.CorrelationID)
	}
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD (strconv's Go quoting is not JSON).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
