// Package provider is the gateway's protocol layer for OpenAI Chat Completions, OpenAI Responses
// and Anthropic Messages: routing, reading requests, reading usage from response bodies and SSE
// streams, and provider-shaped error bodies. It does no I/O; the proxy calls it with bytes.
//
// Behaviour at the edges:
//
// Requests (ParseRequest, EnsureStreamUsage)
//   - Only the fields the gateway needs are read and checked; null counts as absent. A key the
//     gateway reads that appears twice at the top level (or include_usage twice) is rejected:
//     providers keep the last copy, so reading the first would meter a different request.
//   - Max-token fields and token counts are JSON integers in [0, MaxCount]; "100.0", "1e3",
//     negatives and NaN are errors naming the field.
//   - EstimatedInputTokens is ceil(text bytes / 3) + 4 per message + 1600 per media part (see
//     EstimateInputTokens): deterministic, cheap, leaning high, never billed.
//   - EnsureStreamUsage rewrites only a streaming OpenAI chat request that does not already ask
//     for usage, by inserting or replacing the fewest bytes; every other byte is kept.
//
// Usage (ExtractJSON, StreamTap, Usage.Measurements)
//   - Counts never overlap, so nothing is billed twice. OpenAI: cached_tokens and
//     cache_write_tokens are inside prompt_tokens (input_tokens for Responses), so
//     input_tokens = prompt − cached − cache_write, clamped at 0 with FlagInconsistent; reasoning
//     is inside completion_tokens and is reported only as informational reasoning_tokens.
//     cache_write_tokens is reported as cache_write_5m_tokens, as the catalog prices it.
//     Anthropic: input_tokens excludes cache reads and writes and is billed as it is;
//     cache_creation_input_tokens is split into 5m and 1h by cache_creation, all 5m with
//     FlagCacheTTLUnknown when the split is absent or null; when the split does not sum to the
//     total, the total wins: 1h = min(split 1h, total), 5m = the rest, FlagInconsistent.
//     server_tool_use.web_search_requests is tool_calls. Gemini (ExtractJSON only): input =
//     prompt − cached + toolUsePrompt, output = candidates + thoughts.
//   - A total that disagrees with its parts (OpenAI total_tokens, Gemini totalTokenCount) is
//     flagged FlagInconsistent; the parts are billed, not the total.
//   - Anthropic stream counts are cumulative: message_start gives the input side and a first
//     output count; each message_delta replaces every count it carries and keeps the rest
//     (the legacy {"output_tokens": N} delta replaces only the output). Never summed.
//   - A body with no usage is an error wrapping ErrNoUsage. A stream is Complete only once its
//     terminal usage arrives (OpenAI chat usage chunk, Anthropic message_delta with usage,
//     Responses response.completed / response.incomplete / response.failed with usage); before
//     that Usage reports what is known, and HasUsage says whether anything is.
//
// Streams (StreamTap)
//   - Framing follows the SSE spec: lines end in LF, CRLF or a lone CR, a blank line ends an
//     event, a leading BOM is ignored, comments are skipped, data lines are joined with LF. A
//     CRLF split across two writes is one line ending.
//   - Bytes are forwarded unchanged and at once. Only with dropUsageChunk are events held, each
//     until its blank line, so the usage chunk can be removed whole (with its blank line, and
//     nothing else). The concatenated output does not depend on how the input was split.
//   - At Flush, a trailing event without its blank line is still read (the provider sent it)
//     and, unless it is the usage chunk to drop, forwarded.
//   - An event larger than MaxEventBytes is forwarded without being read (ErrEventTooLarge).
//     Unparseable JSON in an event is forwarded and ignored.
//
// Errors (ErrorBody): the provider's JSON error shape with the type its SDKs expect for the
// status; the content type is ErrorContentType.
package provider
