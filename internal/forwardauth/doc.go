// Package forwardauth is Levy's pre-flight check for gateways that send no body: nginx
// auth_request, Caddy forward_auth, Traefik forwardAuth and the like. The gateway sends Levy a
// sub-request carrying the client's headers; Levy resolves the key to a customer, decides in
// process with package authorize, and answers with a status and headers the gateway acts on.
// The Envoy ext_authz server (package extauthz) reads the same headers through Checker.
//
// # What the sub-request carries
//
//   - The Levy API key: Authorization: Bearer <key> (the scheme is case-insensitive), else
//     X-Api-Key. An Authorization header of another scheme (Basic) is ignored. No key, or a key
//     the CustomerResolver does not know, answers 401 with WWW-Authenticate: Bearer realm="levy".
//   - X-Levy-Model: the model, mapped by Config.ModelAlias when set. Absent: Config.DefaultModel;
//     when that is empty too, 400 naming X-Levy-Model.
//   - X-Levy-Input-Tokens: the estimated input tokens. Absent: ceil(X-Levy-Body-Bytes / 3)
//     (the original body's length, the gateway package's bytes-per-token estimate, which leans
//     high), else 0.
//   - X-Levy-Max-Tokens: the most output tokens the call may produce. Absent:
//     Config.DefaultMaxOutputTokens (4096).
//   - X-Levy-Correlation-Id: the key the call's usage event settles the reservation by. Absent:
//     the first of Config.RequestIDHeaders the request carries (X-Request-Id), else a generated
//     "fwd_" and 32 hex digits. The one used is returned in Levy-Correlation-Id so the gateway can
//     pass it to the upstream, whose usage event must carry it: an unsettled reservation holds
//     its estimate until it expires (10 minutes by default).
//   - X-Levy-Task-Id (or Levy-Task-Id, as the LLM gateway reads it): the agent run.
//
// Token figures are whole numbers written in ASCII digits (no sign, no fraction, surrounding
// spaces ignored) between 0 and MaxTokens; text figures are at most 256 bytes without control
// characters. Anything else answers 400 naming the header (a problem document whose errors
// list every bad header). Each header is read once: a header given twice uses its first value,
// as net/http's Header.Get does.
//
// # The answers
//
//   - ALLOW: 200 with Levy-Customer-Id, Levy-Correlation-Id, Levy-Reservation-Id (absent when the
//     decision failed open and holds nothing), Levy-Tier (when the catalog has a ladder) and the
//     remaining-quota headers of authorize.Result.Headers (X-RateLimit-Limit/-Remaining/-Reset,
//     RateLimit-Policy, RateLimit, Levy-Fail-Open).
//   - DENY: 429 with Retry-After (whole seconds, at least 1), Levy-Deny-Reason (the reason code,
//     e.g. requests_per_minute) and the same quota headers. Caddy's forward_auth returns a
//     non-2xx answer to the client as it is, headers and body included.
//   - nginx mode (query ?mode=nginx, or the header X-Levy-Forward-Auth-Mode: nginx): nginx's
//     auth_request turns every answer other than 2xx, 401 and 403 into a 500, so every answer
//     that is not 2xx or 401 is sent as 403 with Levy-Status holding the status it stands for
//     (429, 400, 403, 500, 503); a DENY also carries Levy-Deny: 1 and its Retry-After. The
//     snippet in docs/integrations/nginx.conf maps them back with error_page. Any other mode
//     value answers 400 naming "mode".
//   - Errors that are not decisions: a key bound to no customer, or lacking the authorize or
//     ingest scope, 403; a customer without a subscription 403; bad headers or bad stored limit
//     overrides 400; the counter store unreachable without failing open 503; anything else 500,
//     with details only in the log.
//
// Every answer has Cache-Control: no-store and a small JSON body (a problem document for
// errors), which gateways do not forward on success. The handler accepts any method: nginx's
// sub-request keeps the client's method, Caddy's is a GET.
package forwardauth
