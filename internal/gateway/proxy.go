package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/usage"
)

// call is one request on its way through the gateway.
type call struct {
	api      provider.API
	reqID    string
	customer string
	taskID   string
	req      provider.Request
	start    time.Time
	dec      Decision
}

func (c *call) providerName() string {
	if c.api == provider.AnthropicMessages {
		return "anthropic"
	}
	return "openai"
}

// serve handles one request on a known route with method POST.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, api provider.API) {
	ctx := r.Context()
	c := &call{api: api, reqID: newRequestID(), start: g.cfg.Now()}
	h := w.Header()
	h.Set(HeaderRequestID, c.reqID)
	style := HeaderOpenAI
	if api == provider.AnthropicMessages {
		style = HeaderAnthropic
	}

	customer, err := g.customers.Customer(ctx, clientKey(r))
	if err != nil {
		g.keyError(w, c, err)
		return
	}
	c.customer = customer

	body, status, msg := readBody(r, g.cfg.MaxBodyBytes)
	if status != 0 {
		g.reject(w, c, status, msg)
		return
	}
	c.req, err = provider.ParseRequest(api, body)
	if err != nil {
		g.reject(w, c, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	if vs := r.Header.Values(HeaderTaskID); len(vs) > 0 {
		if len(vs) > 1 || !validText(vs[0], usage.MaxStringLen) {
			g.reject(w, c, http.StatusBadRequest, HeaderTaskID+": one value of 1 to 256 bytes of UTF-8 without control characters")
			return
		}
		c.taskID = vs[0]
	}
	upBody, drop := body, false
	if api == provider.OpenAIChat && c.req.Stream && !c.req.IncludeUsage {
		if upBody, drop, err = provider.EnsureStreamUsage(body); err != nil {
			g.reject(w, c, http.StatusBadRequest, "invalid request: "+err.Error())
			return
		}
	}

	c.dec, err = g.auth.Authorize(ctx, AuthorizeRequest{
		CustomerID:           c.customer,
		Model:                g.cfg.ModelAlias(c.req.Model),
		EstimatedInputTokens: c.req.EstimatedInputTokens,
		MaxOutputTokens:      g.maxOutput(c.req),
		CorrelationID:        c.reqID,
		TaskID:               c.taskID,
	})
	if err != nil {
		g.authorizeError(w, c, err)
		return
	}
	if c.dec.SetHeaders != nil {
		c.dec.SetHeaders(h, style)
	}
	if !c.dec.Allowed {
		g.deny(w, c)
		return
	}
	g.forward(w, r, c, upBody, drop)
}

// maxOutput is the worst-case output of a request for the estimate: its cap times its
// choices, capped at provider.MaxCount, or the configured default when it sets no cap.
func (g *Gateway) maxOutput(req provider.Request) int64 {
	if req.MaxOutputTokens == 0 {
		return g.cfg.DefaultMaxOutputTokens
	}
	if req.Choices > provider.MaxCount/req.MaxOutputTokens {
		return provider.MaxCount
	}
	return req.MaxOutputTokens * req.Choices
}

// canonical paths upstream.
func upstreamPath(api provider.API) string {
	switch api {
	case provider.OpenAIResponses:
		return "/v1/responses"
	case provider.AnthropicMessages:
		return "/v1/messages"
	}
	return "/v1/chat/completions"
}

// forward sends an allowed call upstream and relays the answer.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, c *call, body []byte, drop bool) {
	ctx := r.Context()
	target := g.openAI
	if c.api == provider.AnthropicMessages {
		target = g.anthropic
	}
	target += upstreamPath(c.api)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	up, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil { // the target was validated in New: cannot happen
		g.release(c)
		g.count(c, outcomeError)
		writeError(w, c.api, http.StatusInternalServerError, "the Levy gateway could not build the upstream request", "")
		return
	}
	copyRequestHeaders(up.Header, r.Header)
	if c.api == provider.AnthropicMessages {
		if g.cfg.AnthropicKey != "" {
			up.Header.Set("X-Api-Key", g.cfg.AnthropicKey)
		}
	} else if g.cfg.OpenAIKey != "" {
		up.Header.Set("Authorization", "Bearer "+g.cfg.OpenAIKey)
	}

	resp, err := g.cfg.Transport.RoundTrip(up)
	if err != nil {
		g.release(c)
		g.m.metered.WithLabelValues(c.api.String(), usageReleased).Inc()
		if ctx.Err() != nil {
			g.count(c, outcomeForwarded) // the client left before the upstream answered
			return
		}
		g.count(c, outcomeUpstreamError)
		g.log.Warn("gateway: upstream unreachable", "request", c.reqID, "api", c.api.String(), "err", err)
		writeError(w, c.api, http.StatusBadGateway, "the upstream provider could not be reached (Levy request "+c.reqID+")", "")
		return
	}
	defer resp.Body.Close()
	g.count(c, outcomeForwarded)
	sse := isEventStream(resp.Header.Get("Content-Type"))
	copyResponseHeaders(w.Header(), resp.Header, sse)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The provider refused or failed the call before any token: nothing to bill.
		w.WriteHeader(resp.StatusCode)
		relay(w, resp.Body)
		g.release(c)
		g.m.metered.WithLabelValues(c.api.String(), usageReleased).Inc()
		return
	}
	if sse {
		g.stream(w, r, c, resp, drop)
	} else {
		g.copyBody(w, c, resp)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relay copies an upstream body that is not metered (an upstream error).
func relay(w io.Writer, body io.Reader) {
	bp := bufPool.Get().(*[]byte)
	io.CopyBuffer(w, body, *bp)
	bufPool.Put(bp)
}

// stream relays an SSE response event stream chunk by chunk, flushing after every write, while
// the tap reads its usage.
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response, drop bool) {
	tap := provider.NewStreamTap(c.api, drop)
	rc := http.NewResponseController(w)
	// A writer that cannot flush (a wrapper without Unwrap) still gets every byte, later.
	flush := func() bool { err := rc.Flush(); return err == nil || errors.Is(err, http.ErrNotSupported) }
	w.WriteHeader(resp.StatusCode)
	clientOK := flush()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var received, written int64
	var upErr error
	send := func(b []byte) {
		if !clientOK || len(b) == 0 {
			return
		}
		if _, err := w.Write(b); err != nil {
			clientOK = false
			return
		}
		written += int64(len(b))
		clientOK = flush()
	}
	for clientOK {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			received += int64(n)
			out, terr := tap.Write(buf[:n])
			g.tapError(c, terr)
			send(out)
		}
		if err != nil {
			if err != io.EOF {
				upErr = err
			}
			break
		}
	}
	out, terr := tap.Flush()
	g.tapError(c, terr)
	send(out)
	if upErr != nil && clientOK && r.Context().Err() == nil {
		g.log.Warn("gateway: upstream stream broke", "request", c.reqID, "api", c.api.String(), "err", upErr)
		send(streamErrorEvent(c, written > 0))
	}

	u, complete := tap.Usage()
	switch {
	case complete:
		g.bill(c, u, usageReported)
	case received == 0:
		g.release(c)
		g.m.metered.WithLabelValues(c.api.String(), usageReleased).Inc()
	case tap.HasUsage():
		g.bill(c, u, usagePartial)
	default:
		g.bill(c, u, usageEstimated)
	}
}

// streamErrorEvent is the provider's own mid-stream error event, so the client's SDK raises an
// error instead of taking a cut stream for a finished one. When bytes were already sent, two
// line endings first end whatever event was in progress.
func streamErrorEvent(c *call, midStream bool) []byte {
	var b []byte
	if midStream {
		b = append(b, "\n\n"...)
	}
	msg := "the upstream stream broke off (Levy request " + c.reqID + ")"
	if c.api == provider.AnthropicMessages {
		b = append(b, "event: error\n"...)
	}
	b = append(b, "data: "...)
	b = append(b, provider.ErrorBody(c.api, http.StatusBadGateway, msg, "")...)
	return append(b, "\n\n"...)
}

// copyBody relays a non-streaming response as it comes and reads its usage at the end.
func (g *Gateway) copyBody(w http.ResponseWriter, c *call, resp *http.Response) {
	w.WriteHeader(resp.StatusCode)
	limit := g.cfg.MaxResponseBytes
	var keep []byte
	if n := resp.ContentLength; n > 0 && n <= limit {
		keep = make([]byte, 0, n)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var received int64
	overflow, clientOK := false, true
	var upErr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			received += int64(n)
			if clientOK {
				if _, werr := w.Write(buf[:n]); werr != nil {
					clientOK = false
				}
			}
			if !overflow {
				if int64(len(keep)+n) > limit {
					overflow, keep = true, nil
				} else {
					keep = append(keep, buf[:n]...)
				}
			}
		}
		if err != nil {
			if err != io.EOF {
				upErr = err
			}
			break
		}
	}
	if received == 0 {
		g.release(c)
		g.m.metered.WithLabelValues(c.api.String(), usageReleased).Inc()
		return
	}
	if upErr != nil || overflow {
		g.log.Warn("gateway: response usage unreadable: billing the estimate", "request", c.reqID,
			"api", c.api.String(), "overflow", overflow, "err", upErr)
		g.bill(c, provider.Usage{}, usageEstimated)
		return
	}
	u, err := provider.ExtractJSON(c.api, keep)
	if err != nil {
		g.log.Warn("gateway: response carries no readable usage: billing the estimate", "request", c.reqID,
			"api", c.api.String(), "err", err)
		g.bill(c, u, usageEstimated)
		return
	}
	g.bill(c, u, usageReported)
}

// tapError logs a metering problem met in a stream; the stream itself goes on.
func (g *Gateway) tapError(c *call, err error) {
	if err != nil {
		g.log.Warn("gateway: stream usage unreadable", "request", c.reqID, "api", c.api.String(), "err", err)
	}
}

// bill queues the call's usage event.
func (g *Gateway) bill(c *call, u provider.Usage, kind string) {
	g.m.metered.WithLabelValues(c.api.String(), kind).Inc()
	g.meter.enqueue(g.event(c, u, kind))
}

// release frees the call's reservation: the call consumed nothing. It runs after the client may
// have gone, so it does not use the request's context.
func (g *Gateway) release(c *call) {
	if c.dec.ReservationID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ReleaseTimeout)
	defer cancel()
	if err := g.auth.Release(ctx, c.customer, c.dec.ReservationID); err != nil {
		g.log.Warn("gateway: reservation not released (it will expire)", "request", c.reqID,
			"reservation", c.dec.ReservationID, "err", err)
	}
}

func (g *Gateway) count(c *call, outcome string) {
	g.m.requests.WithLabelValues(c.api.String(), outcome).Inc()
}

// reject answers a 4xx of the gateway's own.
func (g *Gateway) reject(w http.ResponseWriter, c *call, status int, msg string) {
	g.count(c, outcomeRejected)
	writeError(w, c.api, status, msg, "")
}

// keyError answers a failed key lookup.
func (g *Gateway) keyError(w http.ResponseWriter, c *call, err error) {
	switch problem.KindOf(err) {
	case problem.Unauthorized:
		g.count(c, outcomeRejected)
		w.Header().Set("Www-Authenticate", `Bearer realm="levy"`)
		writeError(w, c.api, http.StatusUnauthorized, problemMessage(err), "invalid_api_key")
	case problem.Forbidden:
		g.reject(w, c, http.StatusForbidden, problemMessage(err))
	default:
		g.count(c, outcomeError)
		g.log.Error("gateway: key lookup failed", "request", c.reqID, "err", err)
		writeError(w, c.api, http.StatusServiceUnavailable, "Levy could not check the API key (request "+c.reqID+")", "")
	}
}

// authorizeError answers a failed decision (not a denial).
func (g *Gateway) authorizeError(w http.ResponseWriter, c *call, err error) {
	switch problem.KindOf(err) {
	case problem.NotFound:
		g.reject(w, c, http.StatusForbidden, problemMessage(err))
	case problem.Invalid:
		g.reject(w, c, http.StatusBadRequest, problemMessage(err))
	case problem.Unavailable:
		g.count(c, outcomeError)
		g.log.Warn("gateway: authorize unavailable", "request", c.reqID, "err", err)
		writeError(w, c.api, http.StatusServiceUnavailable, "Levy could not authorize the request (request "+c.reqID+")", "")
	default:
		g.count(c, outcomeError)
		g.log.Error("gateway: authorize failed", "request", c.reqID, "err", err)
		writeError(w, c.api, http.StatusInternalServerError, "Levy could not authorize the request (request "+c.reqID+")", "")
	}
}

func problemMessage(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// Reasons a denial clears within seconds, so the SDK's own retry (which honours Retry-After)
// may help; any other reason is sent with x-should-retry: false.
func shortLived(reason string) bool {
	switch reason {
	case "requests_per_minute", "tokens_per_minute", "max_concurrent", "fail_open_capacity", "":
		return true
	}
	return false
}

// deny answers a DENY: 429 in the provider's format, with Retry-After.
func (g *Gateway) deny(w http.ResponseWriter, c *call) {
	g.count(c, outcomeDenied)
	secs := int64((c.dec.RetryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
	if !shortLived(c.dec.Reason) {
		h.Set("X-Should-Retry", "false")
	}
	reason, code := c.dec.Reason, "rate_limit_exceeded"
	switch reason {
	case "wallet_balance", "monthly_spend", "monthly_tokens":
		code = "insufficient_quota"
	case "":
		reason = "quota"
	}
	msg := fmt.Sprintf("Levy denied the request: %s limit reached; retry after %d s (request %s)", reason, secs, c.reqID)
	writeError(w, c.api, http.StatusTooManyRequests, msg, code)
}

// clientKey is the Levy key the client sent where its SDK sends the provider key.
func clientKey(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// readBody reads the whole request body, at most max bytes; status is non-zero on failure.
func readBody(r *http.Request, max int64) (body []byte, status int, msg string) {
	tooLarge := "request body larger than " + strconv.FormatInt(max, 10) + " bytes"
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	size := 4096
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1 // +1: EOF is seen without growing
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, http.StatusBadRequest, "could not read the request body"
	}
	if n > max {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	return buf.Bytes(), 0, ""
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// validText reports a string of 1 to max bytes of UTF-8 without control characters.
func validText(s string, max int) bool {
	if len(s) == 0 || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// copyRequestHeaders forwards the client's headers, except hop-by-hop ones, its credentials
// (a Levy key), Levy's own headers, Accept-Encoding (the gateway reads the bytes it relays, so it
// asks for them uncompressed) and the organisation selectors of the client's own account.
func copyRequestHeaders(dst, src http.Header) {
	for k, vs := range src {
		switch k {
		case "Authorization", "X-Api-Key", "Accept-Encoding", "Content-Length", "Host", "Expect",
			"Openai-Organization", "Openai-Project":
			continue
		}
		if strings.HasPrefix(k, "Levy-") {
			continue
		}
		dst[k] = vs
	}
	removeHop(dst, src)
}

// copyResponseHeaders forwards the upstream's headers, except hop-by-hop ones, its rate-limit
// headers (they describe the gateway's provider account; the customer's Levy limits replace
// them), its organisation identifiers, its cookies (set for the gateway's connection, not the
// client's) and any Levy header; an event stream loses its Content-Length, since the gateway
// may drop an event from it.
func copyResponseHeaders(dst, src http.Header, sse bool) {
	for k, vs := range src {
		switch {
		case strings.HasPrefix(k, "X-Ratelimit-"), strings.HasPrefix(k, "Anthropic-Ratelimit-"),
			strings.HasPrefix(k, "Anthropic-Priority-"), strings.HasPrefix(k, "Levy-"),
			k == "Ratelimit", k == "Ratelimit-Policy", k == "Openai-Organization", k == "Openai-Project",
			k == "Anthropic-Organization-Id", k == "Set-Cookie", sse && k == "Content-Length":
			continue
		}
		if _, ours := dst[k]; ours {
			continue // set by the decision (X-RateLimit-*, Retry-After...)
		}
		dst[k] = vs
	}
	removeHop(dst, src)
}

func removeHop(dst, src http.Header) {
	for _, f := range src.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				dst.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
}
