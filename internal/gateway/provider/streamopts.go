package provider

import (
	"bytes"
	"encoding/json"

	"github.com/valyala/fastjson"
)

// EnsureStreamUsage makes an OpenAI chat streaming request ask for usage, so the gateway can
// meter a client that did not ask for it. It returns the body unchanged and false when the
// request does not stream ("stream" absent, null or false: OpenAI rejects stream_options there)
// or already has stream_options.include_usage: true. Otherwise it returns a new body and true,
// "we injected it": the rewrite touches only the bytes it must and keeps every other byte:
//
//   - no stream_options (or null): `"stream_options":{"include_usage":true}` is added as the
//     last top-level member (or replaces the null);
//   - stream_options without include_usage: `"include_usage":true` is added as its last member,
//     so other options (include_obfuscation) stay;
//   - include_usage false or null: the value becomes true.
//
// The caller must then tell its StreamTap to drop the usage chunk. Errors are *FieldError, as
// for ParseRequest: a body that is not a JSON object, "stream" not a boolean, "stream_options"
// not an object, "include_usage" not a boolean, or any of them given twice. The input is never
// modified.
func EnsureStreamUsage(body []byte) ([]byte, bool, error) {
	s := getScratch()
	defer putScratch(s, len(body))
	v, ferr := parseBody(&s.p, body)
	if ferr != nil {
		return nil, false, ferr
	}
	stream, include, opts, ferr := readStreamFields(v)
	if ferr != nil {
		return nil, false, ferr
	}
	if !stream || include {
		return body, false, nil
	}

	top := wsEnd(body, 0)
	vs, ve, last, ok := scanObject(body, top, "stream_options")
	var out []byte
	switch {
	case !ok:
	case vs < 0:
		out = insertMember(body, top, last, `"stream_options":{"include_usage":true}`)
	case body[vs] == 'n':
		out = replaceSpan(body, vs, ve, `{"include_usage":true}`)
	case opts:
		ivs, ive, ilast, iok := scanObject(body, vs, "include_usage")
		switch {
		case !iok:
		case ivs < 0:
			out = insertMember(body, vs, ilast, `"include_usage":true`)
		default:
			out = replaceSpan(body, ivs, ive, `true`)
		}
	}
	// Check the rewrite reads as intended; a body only a lenient parser accepts could confuse
	// the byte scanner, and a wrong rewrite must not reach the provider.
	if out == nil || !rewriteOK(&s.p, out) {
		return nil, false, fieldErr("stream_options", "could not be rewritten to include usage")
	}
	return out, true, nil
}

// readStreamFields reads stream and stream_options.include_usage, rejecting duplicates. opts
// reports that stream_options is an object.
func readStreamFields(v *fastjson.Value) (stream, include, opts bool, ferr *FieldError) {
	o, _ := v.Object()
	var seenStream, seenOpts bool
	o.Visit(func(key []byte, v *fastjson.Value) {
		if ferr != nil {
			return
		}
		switch string(key) {
		case "stream":
			if seenStream {
				ferr = fieldErr("stream", "duplicate key")
				return
			}
			seenStream = true
			stream, ferr = boolOf(v, "stream")
		case "stream_options":
			if seenOpts {
				ferr = fieldErr("stream_options", "duplicate key")
				return
			}
			seenOpts = true
			if v.Type() == fastjson.TypeNull {
				return
			}
			so, err := v.Object()
			if err != nil {
				ferr = fieldErr("stream_options", "must be an object")
				return
			}
			opts = true
			seenInc := false
			so.Visit(func(key []byte, v *fastjson.Value) {
				if ferr != nil || string(key) != "include_usage" {
					return
				}
				if seenInc {
					ferr = fieldErr("stream_options.include_usage", "duplicate key")
					return
				}
				seenInc = true
				include, ferr = boolOf(v, "stream_options.include_usage")
			})
		}
	})
	return stream, include, opts, ferr
}

func rewriteOK(p *fastjson.Parser, out []byte) bool {
	v, err := p.ParseBytes(out)
	if err != nil || v.Type() != fastjson.TypeObject {
		return false
	}
	stream, include, _, ferr := readStreamFields(v)
	return ferr == nil && stream && include
}

func insertMember(body []byte, objStart, at int, member string) []byte {
	out := make([]byte, 0, len(body)+len(member)+1)
	out = append(out, body[:at]...)
	if at != objStart+1 {
		out = append(out, ',')
	}
	out = append(out, member...)
	return append(out, body[at:]...)
}

func replaceSpan(body []byte, from, to int, with string) []byte {
	out := make([]byte, 0, len(body)-(to-from)+len(with))
	out = append(out, body[:from]...)
	out = append(out, with...)
	return append(out, body[to:]...)
}

// scanObject walks the JSON object whose '{' is at b[i]. It returns the value span [vs, ve) of
// the last member named key (vs = -1 when there is none) and last, the end of the last member's
// value (i+1 for an empty object), where a new member can be inserted. ok is false when b is not
// a well-formed object there. Keys are compared after unescaping.
func scanObject(b []byte, i int, key string) (vs, ve, last int, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return -1, -1, 0, false
	}
	vs, ve, last = -1, -1, i+1
	j := wsEnd(b, i+1)
	if j < len(b) && b[j] == '}' {
		return vs, ve, last, true
	}
	for {
		if j >= len(b) || b[j] != '"' {
			return -1, -1, 0, false
		}
		ke := stringEnd(b, j)
		if ke < 0 {
			return -1, -1, 0, false
		}
		k := b[j+1 : ke-1]
		j = wsEnd(b, ke)
		if j >= len(b) || b[j] != ':' {
			return -1, -1, 0, false
		}
		s := wsEnd(b, j+1)
		e := valueEnd(b, s)
		if e < 0 {
			return -1, -1, 0, false
		}
		if keyIs(k, key) {
			vs, ve = s, e
		}
		last = e
		j = wsEnd(b, e)
		if j >= len(b) {
			return -1, -1, 0, false
		}
		if b[j] == '}' {
			return vs, ve, last, true
		}
		if b[j] != ',' {
			return -1, -1, 0, false
		}
		j = wsEnd(b, j+1)
	}
}

func keyIs(raw []byte, key string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == key
	}
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == key
}

func wsEnd(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string whose opening quote is at b[i], or -1.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
			if j == i {
				return -1
			}
			return j
		}
		j++
	}
	if j == i {
		return -1
	}
	return j
}
