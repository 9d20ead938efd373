package provider

import (
	"strconv"

	"github.com/levyhq/levy/internal/usage"
	"github.com/valyala/fastjson"
)

// Request is what the gateway needs to know about a request before forwarding it.
type Request struct {
	// Model is the model the client asked for, as written (an alias or a dated snapshot).
	Model string
	// MaxOutputTokens is the client's output cap: max_completion_tokens or max_tokens (OpenAI
	// chat; the larger when both are given), max_output_tokens (Responses), max_tokens
	// (Anthropic). 0 when absent or null. It caps each choice: see Choices.
	MaxOutputTokens int64
	// Choices is the number of completions asked for (OpenAI chat "n"); 1 otherwise. The worst
	// case output is MaxOutputTokens × Choices.
	Choices int64
	// Stream reports "stream": true.
	Stream bool
	// IncludeUsage reports stream_options.include_usage: true. Only OpenAI chat has it; the
	// other APIs always report usage in their streams, and it stays false for them.
	IncludeUsage bool
	// EstimatedInputTokens is a cheap, deterministic estimate of the input tokens; see
	// EstimateInputTokens for the method. It is not a tokenizer count.
	EstimatedInputTokens int64
}

// The constants of the input estimate. Three bytes per token over-counts ordinary English
// (about four characters per token) and roughly matches code, JSON and CJK text (three UTF-8
// bytes per character, about one token each), so the estimate leans high. Four tokens per
// message covers the role and framing tokens the chat formats add. A media part (image, audio,
// file, PDF) counts a flat 1600 tokens, about the most one image costs at default resolution on
// either provider; its base64 bytes are not counted.
const (
	EstimateBytesPerToken   = 3
	EstimateMessageOverhead = 4
	EstimateMediaTokens     = 1600
)

// EstimateInputTokens documents the estimate ParseRequest returns:
//
//	ceil(text bytes / EstimateBytesPerToken) + EstimateMessageOverhead × messages
//	  + EstimateMediaTokens × media parts
//
// Text bytes are the unescaped UTF-8 bytes of: every string content and every "text" (and
// "thinking") field of content parts; a message's name; the compact JSON of tool calls, tool
// definitions (tools, functions), and of any content part or input item of a kind the estimate
// does not know. Messages are the entries of messages (or input), plus one for a system prompt
// (Anthropic system, Responses instructions) and one for a plain-string Responses input. It is
// an upper-bound-ish guess for pre-flight checks: it cannot see context the provider holds
// (previous_response_id, conversation, prompt templates, uploaded files) and is never billed;
// billing uses the provider's reported usage.
func EstimateInputTokens(textBytes, messages, mediaParts int64) int64 {
	return (textBytes+EstimateBytesPerToken-1)/EstimateBytesPerToken +
		EstimateMessageOverhead*messages + EstimateMediaTokens*mediaParts
}

// ParseRequest reads a request body for the API. It answers the first problem found as a
// *FieldError naming the field, so the proxy can answer 400 in the provider's error format:
// a body that is not a JSON object; "model" missing, null, empty, not a string or longer than
// usage.MaxPropertyValue bytes; a max-token field that is not an integer in [0, MaxCount]; "n"
// not a positive integer; "stream" or "stream_options.include_usage" not a boolean;
// "stream_options" not an object; "messages" missing (OpenAI chat, Anthropic) or not an array of
// objects; "input", "instructions", "system" or "tools" of an impossible type; and any of those
// keys given twice at the top level ("model: duplicate key"): providers keep the last copy,
// so reading the first would meter a different request than the one served. null counts as
// absent everywhere. Fields the gateway does not read are not checked.
func ParseRequest(api API, body []byte) (Request, error) {
	switch api {
	case OpenAIChat, OpenAIResponses, AnthropicMessages:
	default:
		return Request{}, ErrUnsupportedAPI
	}
	s := getScratch()
	defer putScratch(s, len(body))
	v, ferr := parseBody(&s.p, body)
	if ferr != nil {
		return Request{}, ferr
	}
	rp := reqParser{api: api, r: Request{Choices: 1}, e: estimator{buf: s.buf}}
	o, _ := v.Object()
	o.Visit(rp.field)
	s.buf = rp.e.buf
	if rp.err != nil {
		return Request{}, rp.err
	}
	if rp.r.Model == "" {
		return Request{}, fieldErr("model", "required")
	}
	if !rp.hasMessages && api != OpenAIResponses {
		return Request{}, fieldErr("messages", "required")
	}
	rp.r.MaxOutputTokens = max(rp.maxA, rp.maxB)
	rp.r.EstimatedInputTokens = EstimateInputTokens(rp.e.bytes, rp.e.messages, rp.e.media)
	return rp.r, nil
}

// Bits for the top-level keys ParseRequest reads, to catch duplicates.
const (
	bitModel = 1 << iota
	bitMaxA
	bitMaxB
	bitN
	bitStream
	bitStreamOptions
	bitMessages
	bitInput
	bitInstructions
	bitSystem
	bitTools
	bitFunctions
)

type reqParser struct {
	api        API
	r          Request
	e          estimator
	maxA, maxB int64
	seen       uint16
	// hasMessages is false when messages is absent or null.
	hasMessages bool
	err         *FieldError
}

// keyBit returns the bit of a top-level key the API reads.
func keyBit(api API, key []byte) uint16 {
	switch string(key) {
	case "model":
		return bitModel
	case "stream":
		return bitStream
	case "tools":
		return bitTools
	}
	switch api {
	case OpenAIChat:
		switch string(key) {
		case "max_completion_tokens":
			return bitMaxA
		case "max_tokens":
			return bitMaxB
		case "n":
			return bitN
		case "stream_options":
			return bitStreamOptions
		case "messages":
			return bitMessages
		case "functions":
			return bitFunctions
		}
	case OpenAIResponses:
		switch string(key) {
		case "max_output_tokens":
			return bitMaxA
		case "input":
			return bitInput
		case "instructions":
			return bitInstructions
		}
	case AnthropicMessages:
		switch string(key) {
		case "max_tokens":
			return bitMaxA
		case "messages":
			return bitMessages
		case "system":
			return bitSystem
		}
	}
	return 0
}

func (rp *reqParser) field(key []byte, v *fastjson.Value) {
	if rp.err != nil {
		return
	}
	bit := keyBit(rp.api, key)
	if bit == 0 {
		return
	}
	if rp.seen&bit != 0 {
		rp.err = fieldErr(string(key), "duplicate key")
		return
	}
	rp.seen |= bit
	if bit == bitModel {
		// null is absent: "model: required" is reported after the walk.
		if v.Type() == fastjson.TypeNull {
			return
		}
		b, ok := stringOf(v)
		switch {
		case !ok:
			rp.err = fieldErr("model", "must be a string")
		case len(b) == 0:
			rp.err = fieldErr("model", "required")
		case len(b) > usage.MaxPropertyValue:
			rp.err = fieldErr("model", "longer than "+strconv.Itoa(usage.MaxPropertyValue)+" bytes")
		default:
			rp.r.Model = string(b)
		}
		return
	}
	if v.Type() == fastjson.TypeNull {
		return
	}
	switch bit {
	case bitMaxA, bitMaxB:
		n, msg := countOf(v)
		if msg != "" {
			rp.err = fieldErr(string(key), msg)
		} else if bit == bitMaxA {
			rp.maxA = n
		} else {
			rp.maxB = n
		}
	case bitN:
		n, msg := countOf(v)
		if msg != "" || n == 0 {
			rp.err = fieldErr("n", "must be a positive integer")
		} else {
			rp.r.Choices = n
		}
	case bitStream:
		rp.r.Stream, rp.err = boolOf(v, "stream")
	case bitStreamOptions:
		rp.streamOptions(v)
	case bitMessages:
		rp.hasMessages = true
		rp.err = rp.e.messagesArray(v, "messages")
	case bitInput:
		switch v.Type() {
		case fastjson.TypeString:
			rp.e.messages++
			rp.e.content(v)
		case fastjson.TypeArray:
			rp.e.inputItems(v)
		default:
			rp.err = fieldErr("input", "must be a string or an array")
		}
	case bitInstructions, bitSystem:
		switch v.Type() {
		case fastjson.TypeString:
			rp.e.messages++
			rp.e.content(v)
		case fastjson.TypeArray:
			rp.e.messages++
			if bit == bitInstructions {
				rp.e.inputItems(v)
			} else {
				rp.e.content(v)
			}
		default:
			rp.err = fieldErr(string(key), "must be a string or an array")
		}
	case bitTools, bitFunctions:
		if v.Type() != fastjson.TypeArray {
			rp.err = fieldErr(string(key), "must be an array")
			return
		}
		rp.e.raw(v)
	}
}

func (rp *reqParser) streamOptions(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		rp.err = fieldErr("stream_options", "must be an object")
		return
	}
	seen := false
	o.Visit(func(key []byte, v *fastjson.Value) {
		if rp.err != nil || string(key) != "include_usage" {
			return
		}
		if seen {
			rp.err = fieldErr("stream_options.include_usage", "duplicate key")
			return
		}
		seen = true
		rp.r.IncludeUsage, rp.err = boolOf(v, "stream_options.include_usage")
	})
}

// boolOf reads a boolean; null is false.
func boolOf(v *fastjson.Value, field string) (bool, *FieldError) {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse, fastjson.TypeNull:
		return false, nil
	}
	return false, fieldErr(field, "must be a boolean")
}

// estimator adds up what EstimateInputTokens counts.
type estimator struct {
	bytes, messages, media int64
	buf                    []byte
}

// raw counts the compact JSON text of v.
func (e *estimator) raw(v *fastjson.Value) {
	e.buf = v.MarshalTo(e.buf[:0])
	e.bytes += int64(len(e.buf))
}

func (e *estimator) messagesArray(v *fastjson.Value, field string) *FieldError {
	a, err := v.Array()
	if err != nil {
		return fieldErr(field, "must be an array")
	}
	for i, m := range a {
		if m.Type() != fastjson.TypeObject {
			return fieldErr(field+"["+strconv.Itoa(i)+"]", "must be an object")
		}
		e.message(m)
	}
	return nil
}

// message counts one chat or Anthropic message.
func (e *estimator) message(m *fastjson.Value) {
	e.messages++
	if c := present(m.Get("content")); c != nil {
		e.content(c)
	}
	if b, ok := stringOf(m.Get("name")); ok {
		e.bytes += int64(len(b))
	}
	if tc := present(m.Get("tool_calls")); tc != nil {
		e.raw(tc)
	}
	if fc := present(m.Get("function_call")); fc != nil {
		e.raw(fc)
	}
}

// inputItems counts a Responses input array: messages, tool calls and their outputs.
func (e *estimator) inputItems(v *fastjson.Value) {
	a, _ := v.Array()
	for _, it := range a {
		e.messages++
		if it.Type() != fastjson.TypeObject {
			e.content(it)
			continue
		}
		if c := present(it.Get("content")); c != nil {
			e.content(c)
			continue
		}
		if out := present(it.Get("output")); out != nil {
			e.content(out)
			continue
		}
		e.raw(it)
	}
}

// content counts a content value: a string, one part, or an array of parts.
func (e *estimator) content(v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		e.bytes += int64(len(b))
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, p := range a {
			e.part(p)
		}
	case fastjson.TypeObject:
		e.part(v)
	case fastjson.TypeNull:
	default:
		e.raw(v)
	}
}

func (e *estimator) part(v *fastjson.Value) {
	if v.Type() != fastjson.TypeObject {
		e.content(v)
		return
	}
	typ, _ := stringOf(v.Get("type"))
	if isMedia(typ) {
		// A document given as plain text is text, not a page image.
		if src := v.Get("source"); src != nil {
			if st, _ := stringOf(src.Get("type")); string(st) == "text" {
				if d, ok := stringOf(src.Get("data")); ok {
					e.bytes += int64(len(d))
					return
				}
			}
		}
		e.media++
		return
	}
	if b, ok := stringOf(v.Get("text")); ok {
		e.bytes += int64(len(b))
		return
	}
	if b, ok := stringOf(v.Get("thinking")); ok {
		e.bytes += int64(len(b))
		return
	}
	if c := present(v.Get("content")); c != nil {
		e.content(c)
		return
	}
	if out := present(v.Get("output")); out != nil {
		e.content(out)
		return
	}
	e.raw(v)
}

func isMedia(typ []byte) bool {
	switch string(typ) {
	case "image", "image_url", "input_image", "input_audio", "audio", "input_file", "file",
		"document", "video":
		return true
	}
	return false
}
