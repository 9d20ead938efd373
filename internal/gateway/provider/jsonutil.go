package provider

import (
	"sync"

	"github.com/valyala/fastjson"
)

// MaxCount bounds every token count and max-token value read: 10^15 is far beyond any real
// request, and keeping counts below it means sums of a handful of them never overflow int64.
const MaxCount = 1_000_000_000_000_000

// FieldError names the JSON field (as a path, e.g. "messages[2].content" or
// "usage.prompt_tokens") that is invalid and why. Field is empty when the body as a whole is at
// fault. Err, when set, is a sentinel the error wraps (ErrNoUsage).
type FieldError struct {
	Field   string
	Message string
	Err     error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Unwrap returns the wrapped sentinel, if any.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, msg string) *FieldError { return &FieldError{Field: field, Message: msg} }

// scratch is a pooled parser with a byte buffer, so parsing a body allocates nothing once warm.
type scratch struct {
	p   fastjson.Parser
	buf []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// poolKeepMax is the largest body whose parser is returned to the pool: a parser keeps a copy of
// the last body, and one huge request should not pin that memory forever.
const poolKeepMax = 1 << 20

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch, bodyLen int) {
	if bodyLen <= poolKeepMax && cap(s.buf) <= poolKeepMax {
		scratchPool.Put(s)
	}
}

// parseBody parses a request or response body that must be a JSON object.
func parseBody(p *fastjson.Parser, body []byte) (*fastjson.Value, *FieldError) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fieldErr("", "body is not valid JSON")
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fieldErr("", "body must be a JSON object")
	}
	return v, nil
}

// present returns v when it is set and not null.
func present(v *fastjson.Value) *fastjson.Value {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	return v
}

// countOf reads a non-negative integer JSON number no larger than MaxCount. Fractions ("1.0"),
// exponents ("1e3"), signs other than a lone minus, NaN and Infinity are rejected.
func countOf(v *fastjson.Value) (int64, string) {
	if v.Type() != fastjson.TypeNumber {
		return 0, "must be a non-negative integer"
	}
	n, err := v.Int64()
	if err != nil || n < 0 {
		if err != nil && isDigits(v) {
			return 0, "must be at most " + maxCountText
		}
		return 0, "must be a non-negative integer"
	}
	if n > MaxCount {
		return 0, "must be at most " + maxCountText
	}
	return n, ""
}

const maxCountText = "1000000000000000"

// isDigits reports whether a number's text is an unsigned run of digits (so a parse failure
// means it overflowed).
func isDigits(v *fastjson.Value) bool {
	b := v.MarshalTo(nil)
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// stringOf returns a string value's bytes (valid until the parser is reused).
func stringOf(v *fastjson.Value) ([]byte, bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return nil, false
	}
	b, _ := v.StringBytes()
	return b, true
}
