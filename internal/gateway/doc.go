// Package gateway is Levy's LLM gateway: a reverse proxy for the OpenAI Chat Completions and
// Responses APIs and the Anthropic Messages API that authorizes every call before inference,
// forwards it with the provider credentials it holds, relays the answer unchanged (streams
// chunk by chunk), and meters the provider's own usage report into one usage event per call.
// The protocol details (request fields, usage fields, SSE framing, error bodies) live in the
// provider subpackage; this package does the I/O.
//
// Behaviour at the edges:
//
// Routes and keys
//   - POST /openai/v1/chat/completions, /openai/v1/responses and /anthropic/v1/messages, and
//     the same paths without the provider prefix. `levy serve` mounts the handler under
//     /gateway, so the SDKs' base URLs are <levy>/gateway/openai/v1 and <levy>/gateway/anthropic.
//     Any other path is 404 and any other method 405 (Allow: POST), in the route's provider
//     error format; nothing else is forwarded (no model lists, files or batches on the
//     gateway's provider account).
//   - The client sends a Levy API key where its SDK sends the provider key (x-api-key first,
//     then Authorization: Bearer). KeyNameResolver accepts an unrevoked key with the authorize
//     or ingest scope named "customer:<customerId>"; admin keys are refused. Missing or unknown
//     keys are 401, a key the gateway may not use 403.
//
// Before forwarding
//   - The body is read whole, at most Config.MaxBodyBytes (413 beyond), and parsed by
//     provider.ParseRequest: a 400 names the bad field. Levy-Task-Id, when sent, must be one
//     value of 1–256 bytes of UTF-8 without control characters.
//   - The decision is asked for the model's catalog alias (ModelAlias: a trailing
//     -YYYY-MM-DD or -YYYYMMDD is removed), the estimated input tokens (provider's documented
//     byte-based estimate), and a worst-case output of max-tokens × n, or
//     Config.DefaultMaxOutputTokens (4096) when the request sets no cap (or a cap of 0, which
//     the parser cannot tell from none: the estimate errs high); CorrelationID is the
//     gateway's request ID, returned as Levy-Request-Id on every answer the gateway makes.
//   - DENY is a 429 in the provider's error format (OpenAI: type rate_limit_error, code
//     rate_limit_exceeded, or insufficient_quota for the wallet and the monthly caps;
//     Anthropic: rate_limit_error) with Retry-After in whole seconds (rounded up, at least 1).
//     Denials that last (caps, wallet, margin guard) also carry x-should-retry: false so the
//     SDKs do not retry them. A decision error is 403 (the key's customer has no subscription),
//     400, 503 or 500, and nothing is forwarded.
//
// Forwarding and relaying
//   - The client's headers go upstream except its credentials, Levy-* headers, hop-by-hop
//     headers, Accept-Encoding (the gateway asks for identity encoding, to read what it relays)
//     and OpenAI-Organization/-Project. A streaming OpenAI chat request without
//     stream_options.include_usage is rewritten to ask for it (provider.EnsureStreamUsage), and
//     the usage chunk is removed from what the client gets; every other byte is unchanged.
//   - The answer keeps the upstream's status, body and headers except its rate-limit headers,
//     organisation identifiers and cookies; the customer's Levy limits replace the rate-limit
//     headers (OpenAI routes: x-ratelimit-*-requests/-tokens; Anthropic routes:
//     anthropic-ratelimit-*; both: X-RateLimit-*, RateLimit-Policy/RateLimit, Levy-Fail-Open).
//     An event stream (text/event-stream) is written and flushed chunk by chunk as read; any
//     other body is copied as it comes.
//
// Metering (one event per forwarded call with a 2xx answer)
//   - id "<provider>:<response id>" ("openai:chatcmpl-…", "anthropic:msg_…"), or
//     "gateway:<request id>" when the provider reported no id, or when ingestion refuses the
//     provider-derived id as a conflict (another call's event has it: a server that reuses ids),
//     the original id then kept as the responseId property; eventType Config.EventType
//     ("llm.completion"); correlationId the request ID, so ingesting the event settles the
//     reservation; timestamp the request's arrival; properties model (the alias of the model
//     the provider reported, else of the one asked for), providerModel, provider, api, stream,
//     metering, usageFlags, taskId, failOpen, responseId; measurements
//     provider.Usage.Measurements().
//   - metering "reported": the provider's final usage. "partial": a stream cut short (client
//     gone, upstream broken) after some usage was reported: those counts (Anthropic: the input
//     and cache side of message_start with the output counted so far). "estimated": no usage
//     reported at all (an OpenAI stream cut before its usage chunk, a body without usage or too
//     large to keep): the input estimate as input_tokens and 0 output tokens.
//   - Nothing is billed, and the reservation is released, when the upstream could not be
//     reached, answered a non-2xx status, or sent an empty 2xx body: no token was produced.
//   - A stream broken by the upstream after it started ends with the provider's own error
//     event, so the client's SDK raises an error instead of taking it for a complete answer.
//   - Events are ingested off the request path (the client never waits): queued (a full queue
//     drops the event, logged with its content and counted), batched for Config.MeterLinger,
//     retried with backoff on transient errors, split into single events when a batch is
//     refused for good. A lost event is logged in full and counted; its reservation then
//     expires after the authorize service's TTL.
package gateway
