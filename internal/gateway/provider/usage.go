package provider

import (
	"errors"
	"strings"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
	"github.com/valyala/fastjson"
)

// The catalog's metric keys (examples/catalog.yaml) that Usage.Measurements reports.
const (
	MetricInputTokens        = "input_tokens"
	MetricOutputTokens       = "output_tokens"
	MetricCacheWrite5mTokens = "cache_write_5m_tokens"
	MetricCacheWrite1hTokens = "cache_write_1h_tokens"
	MetricCacheReadTokens    = "cache_read_tokens"
	MetricReasoningTokens    = "reasoning_tokens"
	MetricToolCalls          = "tool_calls"
)

// ErrNoUsage is wrapped by the error ExtractJSON returns for a body without usage (an error
// body, a background Responses job not finished yet, an OpenAI-compatible server that sends
// none). Such a call is "usage unknown", never zero.
var ErrNoUsage = errors.New("no usage reported")

// Usage is one call's usage in the catalog's terms. The counts never overlap: their sum is every
// billed token once, and Reasoning is already inside Output.
type Usage struct {
	// ResponseID is the provider's id of the response ("chatcmpl-…", "resp_…", "msg_…").
	ResponseID string
	// Model is the model the provider reports (a dated snapshot), "" when not reported.
	Model string
	// InputUncached is input billed at the base rate: neither read from nor written to a cache.
	InputUncached int64
	// Output is every billed output token, reasoning included.
	Output int64
	// CacheRead is input read from a cache.
	CacheRead int64
	// CacheWrite5m and CacheWrite1h are input written to a cache with a 5-minute or 1-hour TTL.
	// A write whose TTL the provider did not report is counted as 5m (FlagCacheTTLUnknown).
	CacheWrite5m, CacheWrite1h int64
	// Reasoning is informational: reasoning or thinking tokens, already counted in Output.
	Reasoning int64
	// ToolCalls is server-side web search requests (Anthropic server_tool_use).
	ToolCalls int64
	// Flags records what the record's consumer should know about how the counts were derived.
	Flags Flags
}

// Flags qualify a Usage.
type Flags uint8

const (
	// FlagCacheTTLUnknown: a cache write was reported without its TTL split and was counted as
	// 5-minute writes (the default TTL).
	FlagCacheTTLUnknown Flags = 1 << iota
	// FlagInconsistent: the provider's counts did not add up (cached > prompt, totals that
	// disagree, a TTL split that does not sum to the cache write). Counts were clamped as the
	// package doc describes.
	FlagInconsistent
)

func (f Flags) String() string {
	var parts []string
	if f&FlagCacheTTLUnknown != 0 {
		parts = append(parts, "cache_ttl_unknown")
	}
	if f&FlagInconsistent != 0 {
		parts = append(parts, "inconsistent")
	}
	return strings.Join(parts, "|")
}

// Measurements returns the usage as the catalog's measurements, in a fixed order: input_tokens
// and output_tokens always (0 included), then cache_write_5m_tokens, cache_write_1h_tokens,
// cache_read_tokens, reasoning_tokens and tool_calls when not zero.
func (u Usage) Measurements() []usage.Measurement {
	ms := make([]usage.Measurement, 2, 7)
	ms[0] = usage.Measurement{MetricKey: MetricInputTokens, Value: money.QtyInt(u.InputUncached)}
	ms[1] = usage.Measurement{MetricKey: MetricOutputTokens, Value: money.QtyInt(u.Output)}
	add := func(key string, n int64) {
		if n != 0 {
			ms = append(ms, usage.Measurement{MetricKey: key, Value: money.QtyInt(n)})
		}
	}
	add(MetricCacheWrite5mTokens, u.CacheWrite5m)
	add(MetricCacheWrite1hTokens, u.CacheWrite1h)
	add(MetricCacheReadTokens, u.CacheRead)
	add(MetricReasoningTokens, u.Reasoning)
	add(MetricToolCalls, u.ToolCalls)
	return ms
}

// ExtractJSON reads the usage of a non-streaming response body. Errors are *FieldError naming
// the field (a count that is not an integer in [0, MaxCount], a required count missing); a body
// without usage answers an error wrapping ErrNoUsage, with ResponseID and Model filled when the
// body has them.
func ExtractJSON(api API, body []byte) (Usage, error) {
	switch api {
	case OpenAIChat, OpenAIResponses, AnthropicMessages, GeminiGenerateContent:
	default:
		return Usage{}, ErrUnsupportedAPI
	}
	s := getScratch()
	defer putScratch(s, len(body))
	v, ferr := parseBody(&s.p, body)
	if ferr != nil {
		return Usage{}, ferr
	}
	var u Usage
	switch api {
	case OpenAIChat, OpenAIResponses:
		u.ResponseID, u.Model = str(v.Get("id")), str(v.Get("model"))
		uv := present(v.Get("usage"))
		if uv == nil {
			return u, noUsage("usage")
		}
		var c openAICounts
		if ferr := c.read(api, uv, "usage"); ferr != nil {
			return u, ferr
		}
		c.fill(&u)
	case AnthropicMessages:
		u.ResponseID, u.Model = str(v.Get("id")), str(v.Get("model"))
		uv := present(v.Get("usage"))
		if uv == nil {
			return u, noUsage("usage")
		}
		var c anthropicCounts
		if ferr := c.merge(uv, "usage"); ferr != nil {
			return u, ferr
		}
		if !c.has(aInput) {
			return u, fieldErr("usage.input_tokens", "required")
		}
		if !c.has(aOutput) {
			return u, fieldErr("usage.output_tokens", "required")
		}
		c.fill(&u)
	case GeminiGenerateContent:
		u.ResponseID, u.Model = str(v.Get("responseId")), str(v.Get("modelVersion"))
		uv := present(v.Get("usageMetadata"))
		if uv == nil {
			return u, noUsage("usageMetadata")
		}
		if ferr := geminiFill(&u, uv, "usageMetadata"); ferr != nil {
			return u, ferr
		}
	}
	return u, nil
}

func noUsage(field string) *FieldError {
	return &FieldError{Field: field, Message: "missing: " + ErrNoUsage.Error(), Err: ErrNoUsage}
}

// str copies a string value; "" when v is not a string.
func str(v *fastjson.Value) string {
	b, _ := stringOf(v)
	return string(b)
}

// readCount reads the count at key of obj into *dst. A missing or null key leaves *dst alone
// and answers false. obj is at path, or at path.sub when sub is set; the path is only built for
// an error.
func readCount(obj *fastjson.Value, path, sub, key string, dst *int64) (bool, *FieldError) {
	v := present(obj.Get(key))
	if v == nil {
		return false, nil
	}
	n, msg := countOf(v)
	if msg != "" {
		if sub != "" {
			path += "." + sub
		}
		return false, fieldErr(path+"."+key, msg)
	}
	*dst = n
	return true, nil
}

// objectAt returns obj[key] when it is an object, nil when absent or null, and an error for
// any other type.
func objectAt(obj *fastjson.Value, key, path string) (*fastjson.Value, *FieldError) {
	v := present(obj.Get(key))
	if v == nil {
		return nil, nil
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fieldErr(path+"."+key, "must be an object")
	}
	return v, nil
}

// openAICounts are the OpenAI usage counts, Chat Completions and Responses alike.
type openAICounts struct {
	input, cached, cacheWrite, output, reasoning, total int64
	hasTotal                                            bool
}

func (c *openAICounts) read(api API, uv *fastjson.Value, path string) *FieldError {
	if uv.Type() != fastjson.TypeObject {
		return fieldErr(path, "must be an object")
	}
	in, out, inDet, outDet := "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"
	if api == OpenAIChat {
		in, out, inDet, outDet = "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"
	}
	ok, ferr := readCount(uv, path, "", in, &c.input)
	if ferr != nil {
		return ferr
	}
	if !ok {
		return fieldErr(path+"."+in, "required")
	}
	if ok, ferr = readCount(uv, path, "", out, &c.output); ferr != nil {
		return ferr
	}
	if !ok {
		return fieldErr(path+"."+out, "required")
	}
	if c.hasTotal, ferr = readCount(uv, path, "", "total_tokens", &c.total); ferr != nil {
		return ferr
	}
	det, ferr := objectAt(uv, inDet, path)
	if ferr != nil {
		return ferr
	}
	if det != nil {
		if _, ferr = readCount(det, path, inDet, "cached_tokens", &c.cached); ferr != nil {
			return ferr
		}
		if _, ferr = readCount(det, path, inDet, "cache_write_tokens", &c.cacheWrite); ferr != nil {
			return ferr
		}
	}
	if det, ferr = objectAt(uv, outDet, path); ferr != nil {
		return ferr
	}
	if det != nil {
		if _, ferr = readCount(det, path, outDet, "reasoning_tokens", &c.reasoning); ferr != nil {
			return ferr
		}
	}
	return nil
}

// fill maps OpenAI counts: cached and cache-write tokens are inside the prompt, so the base-rate
// input is what is left; reasoning is inside the completion.
func (c *openAICounts) fill(u *Usage) {
	u.InputUncached = c.input - c.cached - c.cacheWrite
	if u.InputUncached < 0 {
		u.InputUncached = 0
		u.Flags |= FlagInconsistent
	}
	u.CacheRead = c.cached
	u.CacheWrite5m = c.cacheWrite
	u.Output = c.output
	u.Reasoning = c.reasoning
	if c.reasoning > c.output || (c.hasTotal && c.total != c.input+c.output) {
		u.Flags |= FlagInconsistent
	}
}

// Bits of the Anthropic fields seen.
const (
	aInput = 1 << iota
	aCacheCreation
	aCacheRead
	aSplit
	aOutput
)

// anthropicCounts are Anthropic usage counts as merged from a body or a stream.
type anthropicCounts struct {
	input, cacheCreation, cacheRead, e5m, e1h, output, thinking, webSearch int64
	seen                                                                   uint8
}

func (c *anthropicCounts) has(bit uint8) bool { return c.seen&bit != 0 }

// merge overwrites the counts with every one uv holds. Stream counts are cumulative, so a later
// event replaces, never adds to, an earlier one; a field the event leaves out keeps its value.
func (c *anthropicCounts) merge(uv *fastjson.Value, path string) *FieldError {
	if uv.Type() != fastjson.TypeObject {
		return fieldErr(path, "must be an object")
	}
	fields := [...]struct {
		key string
		dst *int64
		bit uint8
	}{
		{"input_tokens", &c.input, aInput},
		{"cache_creation_input_tokens", &c.cacheCreation, aCacheCreation},
		{"cache_read_input_tokens", &c.cacheRead, aCacheRead},
		{"output_tokens", &c.output, aOutput},
	}
	for _, f := range fields {
		ok, ferr := readCount(uv, path, "", f.key, f.dst)
		if ferr != nil {
			return ferr
		}
		if ok {
			c.seen |= f.bit
		}
	}
	cc, ferr := objectAt(uv, "cache_creation", path)
	if ferr != nil {
		return ferr
	}
	if cc != nil {
		var e5, e1 int64
		if _, ferr = readCount(cc, path, "cache_creation", "ephemeral_5m_input_tokens", &e5); ferr != nil {
			return ferr
		}
		if _, ferr = readCount(cc, path, "cache_creation", "ephemeral_1h_input_tokens", &e1); ferr != nil {
			return ferr
		}
		c.e5m, c.e1h = e5, e1
		c.seen |= aSplit
	}
	if det, ferr := objectAt(uv, "output_tokens_details", path); ferr != nil {
		return ferr
	} else if det != nil {
		if _, ferr = readCount(det, path, "output_tokens_details", "thinking_tokens", &c.thinking); ferr != nil {
			return ferr
		}
	}
	if st, ferr := objectAt(uv, "server_tool_use", path); ferr != nil {
		return ferr
	} else if st != nil {
		if _, ferr = readCount(st, path, "server_tool_use", "web_search_requests", &c.webSearch); ferr != nil {
			return ferr
		}
	}
	return nil
}

// fill maps Anthropic counts: input_tokens excludes both cache reads and writes, so every field
// is billed as it is. The cache write total (cache_creation_input_tokens) is authoritative; the
// 1h part comes from the TTL split, capped at the total, and the rest is 5m.
func (c *anthropicCounts) fill(u *Usage) {
	u.InputUncached = c.input
	u.CacheRead = c.cacheRead
	u.Output = c.output
	u.Reasoning = c.thinking
	u.ToolCalls = c.webSearch
	total := c.cacheCreation
	if !c.has(aCacheCreation) {
		total = c.e5m + c.e1h
	}
	switch {
	case !c.has(aSplit):
		u.CacheWrite5m = total
		if total > 0 {
			u.Flags |= FlagCacheTTLUnknown
		}
	case c.e5m+c.e1h == total:
		u.CacheWrite5m, u.CacheWrite1h = c.e5m, c.e1h
	default:
		u.Flags |= FlagInconsistent
		u.CacheWrite1h = min(c.e1h, total)
		u.CacheWrite5m = total - u.CacheWrite1h
	}
	if c.thinking > c.output {
		u.Flags |= FlagInconsistent
	}
}

// geminiFill maps Gemini usageMetadata: the cached count is inside the prompt, tool-use prompt
// tokens are input too, and thoughts are billed as output but are not inside candidates.
func geminiFill(u *Usage, uv *fastjson.Value, path string) *FieldError {
	if uv.Type() != fastjson.TypeObject {
		return fieldErr(path, "must be an object")
	}
	var prompt, cached, candidates, thoughts, toolUse, total int64
	for _, f := range [...]struct {
		key string
		dst *int64
	}{
		{"promptTokenCount", &prompt},
		{"cachedContentTokenCount", &cached},
		{"candidatesTokenCount", &candidates},
		{"thoughtsTokenCount", &thoughts},
		{"toolUsePromptTokenCount", &toolUse},
	} {
		if _, ferr := readCount(uv, path, "", f.key, f.dst); ferr != nil {
			return ferr
		}
	}
	hasTotal, ferr := readCount(uv, path, "", "totalTokenCount", &total)
	if ferr != nil {
		return ferr
	}
	uncached := prompt - cached
	if uncached < 0 {
		uncached = 0
		u.Flags |= FlagInconsistent
	}
	u.InputUncached = uncached + toolUse
	u.CacheRead = cached
	u.Output = candidates + thoughts
	u.Reasoning = thoughts
	if hasTotal && total != prompt+candidates+toolUse+thoughts {
		u.Flags |= FlagInconsistent
	}
	return nil
}
