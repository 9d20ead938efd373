// Package extauthz is Levy's pre-flight check for Envoy: a gRPC server of
// envoy.service.auth.v3.Authorization/Check, for the ext_authz HTTP filter
// (docs/integrations/envoy.yaml). It reads the same headers as forward-auth (package
// forwardauth documents them) from the CheckRequest's HTTP attributes, and the request body
// when Envoy sends it, and decides in process with package authorize.
//
// # What is read
//
//   - Headers: attributes.request.http.headers (lower-case keys), or header_map when Envoy is
//     configured with encode_raw_headers (the first value of a repeated header is used).
//   - The body (with_request_body; body, or raw_body with pack_as_bytes): when the method and
//     path (query ignored) are an LLM route (POST /v1/chat/completions, /v1/responses,
//     /v1/messages) and the body is whole, provider.ParseRequest reads it and its model and
//     token figures win over the X-Levy-* headers (forwardauth.Checker.ApplyBody). A body that
//     does not parse is denied with 400 naming the JSON field. A body Envoy cut at
//     max_request_bytes (x-envoy-auth-partial-body: true), another route, or no body: the
//     headers are used, and without X-Levy-Input-Tokens or X-Levy-Body-Bytes the input is
//     estimated from the request's size (ceil(size / 3)) when Envoy knows it.
//   - The correlation ID: X-Levy-Correlation-Id, else X-Request-Id, else Envoy's request ID
//     (attributes.request.http.id).
//
// # The answers
//
//   - ALLOW: status OK and an OkHttpResponse whose headers (overwriting, never appending) tell
//     the upstream Levy-Customer-Id, Levy-Correlation-Id and Levy-Reservation-Id (when one is
//     held), and Levy-Tier when the catalog has a ladder; any of those the client sent and Levy
//     did not set is removed. The client's answer gets the quota headers (X-RateLimit-*,
//     RateLimit-Policy, RateLimit, Levy-Fail-Open) and Levy-Correlation-Id.
//   - DENY: status RESOURCE_EXHAUSTED and a DeniedHttpResponse with HTTP status 429,
//     Retry-After (whole seconds, at least 1), Levy-Deny-Reason, the quota headers and a JSON
//     body {"decision":"DENY","reason":…,"retryAfterSeconds":…}.
//   - Not a decision: a missing or unknown key is UNAUTHENTICATED with 401 and
//     WWW-Authenticate; a key that may not be used or a customer without a subscription is
//     PERMISSION_DENIED with 403; bad headers or a bad body INVALID_ARGUMENT with 400 and a
//     problem document naming the fields. A check without HTTP attributes is INVALID_ARGUMENT
//     with 400.
//   - When Levy cannot decide (the key lookup or the counter store failed without failing
//     open, an internal error), Check returns a gRPC error (UNAVAILABLE or INTERNAL) rather
//     than a denial, so Envoy's own failure_mode_allow and status_on_error settings decide.
package extauthz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/levyhq/levy/internal/forwardauth"
	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/problem"
)

// PartialBodyHeader is the header Envoy adds when it cut the body at max_request_bytes.
const PartialBodyHeader = "x-envoy-auth-partial-body"

// Server is the ext_authz Authorization service. It is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	c *forwardauth.Checker
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a Server deciding with the checker cfg describes, or the configuration's
// problems.
func New(cfg forwardauth.Config) (*Server, error) {
	c, err := forwardauth.NewChecker(cfg)
	if err != nil {
		return nil, err
	}
	return &Server{c: c}, nil
}

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// Serve runs a gRPC server with the service on ln until ctx is done, then stops it gracefully,
// cutting the calls still running after grace. It returns nil after a stop by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration, opts ...grpc.ServerOption) error {
	g := grpc.NewServer(opts...)
	s.Register(g)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		g.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// Check implements authv3.AuthorizationServer.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	hr := req.GetAttributes().GetRequest().GetHttp()
	if hr == nil {
		o := forwardauth.Outcome{Status: http.StatusBadRequest, Kind: problem.Invalid,
			Message: "the check carries no HTTP attributes: use the ext_authz HTTP filter",
			Fields:  []problem.Field{{Field: "attributes.request.http", Message: "required"}}}
		return denied(&o), nil
	}
	h := headers{m: hr.GetHeaders(), raw: hr.GetHeaderMap().GetHeaders()}
	in, err := s.c.Read(h, hr.GetId())
	if err != nil {
		return denied(invalid(in.Request.CorrelationID, err)), nil
	}
	path, _, _ := strings.Cut(hr.GetPath(), "?")
	body := hr.GetRawBody()
	if len(body) == 0 && hr.GetBody() != "" {
		body = []byte(hr.GetBody())
	}
	api, llm := provider.Route(hr.GetMethod(), path)
	switch {
	case llm && len(body) > 0 && h.Get(PartialBodyHeader) != "true":
		p, err := provider.ParseRequest(api, body)
		if err != nil {
			return denied(bodyError(in.Request.CorrelationID, err)), nil
		}
		s.c.ApplyBody(&in, p)
	case h.Get(forwardauth.HeaderInputTokens) == "" && h.Get(forwardauth.HeaderBodyBytes) == "" && hr.GetSize() > 0:
		in.Request.EstimatedInputTokens = min((hr.GetSize()+forwardauth.BytesPerToken-1)/forwardauth.BytesPerToken, forwardauth.MaxTokens)
	}
	o := s.c.Decide(ctx, in)
	switch {
	case o.Allowed():
		return allowed(&o), nil
	case o.Kind == problem.Unavailable && !o.Decided:
		return nil, status.Error(codes.Unavailable, o.Message)
	case o.Kind == problem.Internal && !o.Decided:
		return nil, status.Error(codes.Internal, o.Message)
	}
	return denied(&o), nil
}

// invalid turns Read's problem into an outcome.
func invalid(correlationID string, err error) *forwardauth.Outcome {
	o := forwardauth.Outcome{Status: http.StatusBadRequest, Kind: problem.Invalid, Message: err.Error(), CorrelationID: correlationID}
	var pe *problem.Error
	if errors.As(err, &pe) {
		o.Message, o.Fields = pe.Message, pe.Fields
	}
	return &o
}

// bodyError turns a body that does not parse into a 400 naming the JSON field.
func bodyError(correlationID string, err error) *forwardauth.Outcome {
	o := forwardauth.Outcome{Status: http.StatusBadRequest, Kind: problem.Invalid, CorrelationID: correlationID,
		Message: "invalid request body: " + err.Error()}
	var fe *provider.FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if field == "" {
			field = "body"
		}
		o.Fields = []problem.Field{{Field: field, Message: fe.Message}}
	}
	return &o
}

// upstreamHeaders are the outcome headers an ALLOW sends to the upstream.
var upstreamHeaders = []string{forwardauth.HeaderCustomerID, forwardauth.HeaderReservationID, forwardauth.HeaderCorrelationOut, forwardauth.HeaderTier}

func allowed(o *forwardauth.Outcome) *authv3.CheckResponse {
	h := http.Header{}
	o.Headers(h)
	ok := &authv3.OkHttpResponse{}
	for _, name := range upstreamHeaders {
		if v := h.Get(name); v != "" {
			ok.Headers = append(ok.Headers, option(name, v))
		} else {
			ok.HeadersToRemove = append(ok.HeadersToRemove, strings.ToLower(name))
		}
		if name != forwardauth.HeaderCorrelationOut {
			h.Del(name)
		}
	}
	ok.ResponseHeadersToAdd = options(h)
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// codeOf is the gRPC status a denial carries, by HTTP status.
var codeOf = map[int]codes.Code{
	http.StatusTooManyRequests: codes.ResourceExhausted,
	http.StatusBadRequest:      codes.InvalidArgument,
	http.StatusUnauthorized:    codes.Unauthenticated,
	http.StatusForbidden:       codes.PermissionDenied,
}

func denied(o *forwardauth.Outcome) *authv3.CheckResponse {
	h := http.Header{}
	o.Headers(h)
	ct, body := o.Body(nil)
	h["Content-Type"] = ct
	code, ok := codeOf[o.Status]
	if !ok {
		code = codes.PermissionDenied
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: o.Message},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(o.Status)},
			Headers: options(h),
			Body:    string(body),
		}},
	}
}

func option(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: strings.ToLower(name), Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// options lists h as header options, in a stable order.
func options(h http.Header) []*corev3.HeaderValueOption {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]*corev3.HeaderValueOption, 0, len(names))
	for _, k := range names {
		out = append(out, option(k, strings.Join(h[k], ", ")))
	}
	return out
}

// headers reads Envoy's request headers by name, case-insensitively.
type headers struct {
	m   map[string]string
	raw []*corev3.HeaderValue
}

// lower holds the lower-case form of the names a check reads, so a lookup allocates nothing.
var lower = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"Authorization", forwardauth.HeaderAPIKey, forwardauth.HeaderModel, forwardauth.HeaderInputTokens,
		forwardauth.HeaderMaxTokens, forwardauth.HeaderBodyBytes, forwardauth.HeaderCorrelationID, forwardauth.HeaderTaskID,
		forwardauth.HeaderTaskIDAlt, "X-Request-Id", PartialBodyHeader} {
		m[n] = strings.ToLower(n)
	}
	return m
}()

func (h headers) Get(name string) string {
	key, ok := lower[name]
	if !ok {
		key = strings.ToLower(name)
	}
	if len(h.m) > 0 {
		return h.m[key]
	}
	for _, hv := range h.raw {
		if strings.EqualFold(hv.GetKey(), key) {
			if rv := hv.GetRawValue(); len(rv) > 0 {
				return string(rv)
			}
			return hv.GetValue()
		}
	}
	return ""
}
