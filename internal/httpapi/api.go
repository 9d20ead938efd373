// Package httpapi is Levy's HTTP API: routing, API-key authentication, request decoding and
// problem+json errors over the billing service. Every handler answers bad input with a 4xx
// that names the field; internal errors are logged and answered with a request ID only.
//
// Behaviour at the edges:
//   - Request bodies are decoded strictly: an unknown field, a wrong JSON type or a malformed
//     time is a 400 naming the field; nothing is written.
//   - Path IDs (customerId, invoiceId) that cannot be IDs (outside 1 to 256 letters, digits or
//     _ . : @ -) are a 400 naming them on the tier, wallet, notice, invoice and period routes;
//     the older customer routes answer such IDs, like unknown ones, with a 404.
//   - Pages: limit is 1 to 1000 (invoices: 1 to 100, default 20); after is the previous page's
//     next, a whole number ≥ 0 for transitions, burns and notices and an invoice ID for
//     invoices. A full page carries next; a shorter page is the last.
//   - Wallet grants: the amount is a positive decimal string (a JSON number is refused so no
//     client float reaches it), at most what the counter store holds as nanos. The same grant
//     id with the same content answers 200 with the stored grant (201 the first time); with
//     other content, 409 naming id.
//   - Invoices are JSON unless the Accept header prefers text/csv; /lines.csv is always CSV.
//   - Closing one period is refused (400 periodStart) unless it started before the customer's
//     open period: the open period still takes events. Closing a closed period returns its
//     invoice.
//   - POST /v1/authorize: a body of at most 64 KiB (413 beyond), one JSON object decoded without
//     reflection (DecodeAuthorizeRequest): unknown or repeated fields, fractions, exponents,
//     quoted numbers, token counts outside 0…2^52−1 and invalid UTF-8 are a 400 naming every
//     bad field; null is absent. An unknown customer, or one without a subscription in force,
//     is a 404. A decision is 200 (ALLOW) or 429 (DENY, with Retry-After), both in the
//     decision's JSON shape with the remaining-quota headers; a fail-open decision carries
//     Levy-Fail-Open: true. Money in the answer is exact (nanos written as a decimal, never
//     rounded). No SQL runs: the service reads billing's caches and asks the counter store once.
//   - Reservation release names the customer in the body or the query (both must agree); an
//     unknown, settled, released or expired reservation answers released: false, never 404.
//   - Breaker IDs are "<customerId>" or "<customerId>/task/<taskId>", the slashes escaped in
//     /v1/breakers/{id}/reset (or unescaped in /v1/breakers/{customerId}/task/{taskId}/reset).
//   - PUT /v1/customers/{id} refuses limit overrides authorize.ParseOverrides refuses (400
//     naming limits.<name>) before anything is stored.
//   - Without an authorize service (Options.Authorize nil) the authorize routes answer 503.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
	"github.com/levyhq/levy/internal/usage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"
)

// OpenAPI is the API's OpenAPI 3.1 document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Options configure the API.
type Options struct {
	MaxBodyBytes int64
	MaxBatch     int
	Now          func() time.Time
	Registry     *prometheus.Registry
	// Authorize answers the pre-flight routes (POST /v1/authorize, reservation release,
	// limits, breaker resets); without it they answer 503.
	Authorize *authorize.Service
	// ForwardAuth, when set, answers /v1/forward-auth (any method): the pre-flight check for
	// gateways that send no body (nginx auth_request, Caddy forward_auth).
	ForwardAuth http.Handler
}

// API is the HTTP API.
type API struct {
	svc     *billing.Service
	store   store.Store
	auth    *Authenticator
	log     *slog.Logger
	opts    Options
	decoder chan *usage.Decoder
	mux     *http.ServeMux
	ready   func() bool
	// authorizeRoute is POST /v1/authorize with its key check, which ServeHTTP calls without
	// the mux's lookups: it is the hot path.
	authorizeRoute http.HandlerFunc
}

// New returns the API's handler.
func New(svc *billing.Service, st store.Store, auth *Authenticator, log *slog.Logger, opts Options, ready func() bool) *API {
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &API{svc: svc, store: st, auth: auth, log: log, opts: opts, decoder: make(chan *usage.Decoder, 64), mux: http.NewServeMux(), ready: ready}
	a.authorizeRoute = a.require(store.ScopeAuthorize, a.postAuthorize)
	m := a.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	if opts.ForwardAuth != nil {
		m.Handle("/v1/forward-auth", opts.ForwardAuth)
	}
	m.HandleFunc("GET /readyz", a.readyz)
	m.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
	})
	if opts.Registry != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	}
	m.HandleFunc("PUT /v1/catalog", a.require(store.ScopeAdmin, a.putCatalog))
	m.HandleFunc("GET /v1/catalog", a.require(store.ScopeRead, a.getCatalog))
	m.HandleFunc("GET /v1/plans", a.require(store.ScopeRead, a.listPlans))
	m.HandleFunc("PUT /v1/customers/{id}", a.require(store.ScopeAdmin, a.putCustomer))
	m.HandleFunc("GET /v1/customers/{id}", a.require(store.ScopeRead, a.getCustomer))
	m.HandleFunc("GET /v1/customers", a.require(store.ScopeRead, a.listCustomers))
	m.HandleFunc("GET /v1/customers/{id}/usage", a.require(store.ScopeRead, a.usage))
	m.HandleFunc("GET /v1/customers/{id}/spend", a.require(store.ScopeRead, a.spend))
	m.HandleFunc("GET /v1/customers/{id}/invoice-preview", a.require(store.ScopeRead, a.invoicePreview))
	m.HandleFunc("GET /v1/customers/{id}/attribution", a.require(store.ScopeRead, a.attribution))
	m.HandleFunc("GET /v1/customers/{id}/tier", a.require(store.ScopeRead, a.tier))
	m.HandleFunc("GET /v1/customers/{id}/tier-transitions", a.require(store.ScopeRead, a.tierTransitions))
	m.HandleFunc("POST /v1/customers/{id}/wallet/grants", a.require(store.ScopeAdmin, a.createGrant))
	m.HandleFunc("GET /v1/customers/{id}/wallet", a.require(store.ScopeRead, a.wallet))
	m.HandleFunc("GET /v1/customers/{id}/wallet/burns", a.require(store.ScopeRead, a.burns))
	m.HandleFunc("GET /v1/customers/{id}/notices", a.require(store.ScopeRead, a.notices))
	m.HandleFunc("GET /v1/customers/{id}/invoices", a.require(store.ScopeRead, a.listInvoices))
	m.HandleFunc("POST /v1/customers/{id}/periods/close", a.require(store.ScopeAdmin, a.closePeriod))
	m.HandleFunc("GET /v1/invoices/{id}", a.require(store.ScopeRead, a.getInvoice))
	m.HandleFunc("GET /v1/invoices/{id}/lines.csv", a.require(store.ScopeRead, a.invoiceCSV))
	m.HandleFunc("POST /v1/admin/close", a.require(store.ScopeAdmin, a.closeDue))
	m.HandleFunc("GET /v1/admin/counters", a.require(store.ScopeAdmin, a.counterStatus))
	m.HandleFunc("POST /v1/admin/counters/check", a.require(store.ScopeAdmin, a.checkCounters))
	m.HandleFunc("POST /v1/admin/counters/rebuild", a.require(store.ScopeAdmin, a.rebuildCounters))
	m.HandleFunc("POST /v1/authorize", a.authorizeRoute)
	m.HandleFunc("POST /v1/reservations/{id}/release", a.require(store.ScopeAuthorize, a.releaseReservation))
	m.HandleFunc("GET /v1/customers/{id}/limits", a.require(store.ScopeRead, a.customerLimits))
	m.HandleFunc("POST /v1/breakers/{id}/reset", a.require(store.ScopeAdmin, a.resetBreaker))
	m.HandleFunc("POST /v1/breakers/{customerId}/task/{taskId}/reset", a.require(store.ScopeAdmin, a.resetBreaker))
	m.HandleFunc("POST /v1/events", a.require(store.ScopeIngest, a.postEvents))
	m.HandleFunc("GET /v1/events/{id}", a.require(store.ScopeRead, a.getEvent))
	m.HandleFunc("GET /v1/events", a.require(store.ScopeRead, a.listEvents))
	m.HandleFunc("POST /v1/keys", a.require(store.ScopeAdmin, a.createKey))
	m.HandleFunc("GET /v1/keys", a.require(store.ScopeAdmin, a.listKeys))
	m.HandleFunc("DELETE /v1/keys/{id}", a.require(store.ScopeAdmin, a.revokeKey))
	return a
}

type ctxKey int

const requestIDKey ctxKey = 0

func requestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// ServeHTTP adds a request ID, recovers from panics (answering 500, never crashing the server)
// and routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("panic in handler", "panic", v, "path", r.URL.Path, "requestId", id)
			a.writeError(w, r, errors.New("panic"))
		}
	}()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/authorize" {
		a.authorizeRoute(w, r) // the hot path skips the mux's two lookups
		return
	}
	// The mux answers unknown paths and methods itself; give those a problem document too.
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.writeError(w, r, problem.New(problem.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.writeError(w, r, problem.New(problem.Unavailable, "the durable store does not answer"))
		return
	}
	if a.ready != nil && !a.ready() {
		a.writeError(w, r, problem.New(problem.Unavailable, "shutting down"))
		return
	}
	io.WriteString(w, "ready\n")
}

// readBody reads a request body up to the size limit.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &problem.Error{Kind: problem.TooLarge, Message: "the body exceeds " + strconv.FormatInt(mbe.Limit, 10) + " bytes",
			Fields: []problem.Field{{Field: "body", Message: "at most " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}}}
	}
	if err != nil {
		return nil, problem.Invalidf("body", "could not be read: %v", err)
	}
	return body, nil
}

// mediaType returns the request's media type ("" when absent).
func mediaType(r *http.Request) (string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", &problem.Error{Kind: problem.Unsupported, Message: "unreadable Content-Type", Fields: []problem.Field{{Field: "Content-Type", Message: "is not a media type"}}}
	}
	return mt, nil
}

func unsupported(mt string, want string) error {
	return &problem.Error{Kind: problem.Unsupported, Message: "unsupported Content-Type " + strconv.Quote(mt),
		Fields: []problem.Field{{Field: "Content-Type", Message: "must be " + want}}}
}

func (a *API) postEvents(w http.ResponseWriter, r *http.Request) {
	mt, err := mediaType(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var format usage.BatchFormat
	switch mt {
	case "application/json", "":
		format = usage.Native
	case "application/cloudevents+json":
		format = usage.CloudEvent
	case "application/cloudevents-batch+json":
		format = usage.CloudEventBatch
	default:
		a.writeError(w, r, unsupported(mt, "application/json, application/cloudevents+json or application/cloudevents-batch+json"))
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var dec *usage.Decoder
	select {
	case dec = <-a.decoder:
	default:
		dec = new(usage.Decoder)
	}
	events, err := dec.DecodeBatch(body, format, a.opts.Now(), a.opts.MaxBatch)
	select {
	case a.decoder <- dec:
	default:
	}
	if err != nil {
		var be *usage.BatchError
		if errors.As(err, &be) {
			pe := &problem.Error{Kind: problem.Invalid, Message: "the batch is invalid; nothing was accepted"}
			if be.Body != "" {
				pe.Message = be.Body
				pe.Fields = []problem.Field{{Field: "body", Message: be.Body}}
			}
			for _, f := range be.Events {
				pe.Fields = append(pe.Fields, problem.Field{Index: problem.At(f.Index), Field: f.Field, Message: f.Message})
			}
			a.writeError(w, r, pe)
			return
		}
		a.writeError(w, r, err)
		return
	}
	res, err := a.svc.Ingest(r.Context(), events)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) putCatalog(w http.ResponseWriter, r *http.Request) {
	mt, err := mediaType(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	switch mt {
	case "", "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
	default:
		a.writeError(w, r, unsupported(mt, "application/json or application/yaml"))
		return
	}
	body, err := a.readBody(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	res, err := a.svc.ApplyCatalog(r.Context(), body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) getCatalog(w http.ResponseWriter, r *http.Request) {
	cv, err := a.svc.LatestCatalog(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Levy-Catalog-Version", strconv.FormatInt(cv.Version, 10))
	if accept := r.Header.Get("Accept"); strings.Contains(accept, "yaml") {
		var doc any
		if err := json.Unmarshal(cv.Document, &doc); err != nil {
			a.writeError(w, r, err)
			return
		}
		out, err := yaml.Marshal(doc)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(out)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(cv.Document)
}

type planVersionJSON struct {
	ID             int64     `json:"id"`
	Plan           string    `json:"plan"`
	Version        int64     `json:"version"`
	CatalogVersion int64     `json:"catalogVersion"`
	CreatedAt      time.Time `json:"createdAt"`
}

func (a *API) listPlans(w http.ResponseWriter, r *http.Request) {
	pvs, err := a.store.ListPlanVersions(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := struct {
		Plans []planVersionJSON `json:"plans"`
	}{Plans: []planVersionJSON{}}
	for _, pv := range pvs {
		out.Plans = append(out.Plans, planVersionJSON{pv.ID, pv.PlanKey, pv.Version, pv.CatalogVersion, pv.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeJSON decodes a JSON request body strictly (unknown fields are errors).
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, err := mediaType(r)
	if err != nil {
		return err
	}
	if mt != "" && mt != "application/json" {
		return unsupported(mt, "application/json")
	}
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSONBody(body, v)
}

// decodeJSONBody decodes a JSON document strictly (unknown fields are errors) into v; errors are
// Invalid problems naming the field.
func decodeJSONBody(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			// Drop the names of embedded Go structs: clients know only the JSON fields.
			var parts []string
			for _, f := range strings.Split(te.Field, ".") {
				if f != "" && !(f[0] >= 'A' && f[0] <= 'Z') {
					parts = append(parts, f)
				}
			}
			field := strings.Join(parts, ".")
			if field == "" {
				field = "body"
			}
			return problem.Invalidf(field, "must be %s", jsonKind(te.Type))
		case strings.Contains(err.Error(), "parsing time"):
			return problem.Invalidf(timeField(v), "must be an RFC 3339 time such as 2026-11-01T00:00:00Z")
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return problem.Invalidf("body", "is not a valid JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return problem.Invalidf(f, "is not a known field")
		default:
			return problem.Invalidf("body", "%v", err)
		}
	}
	return nil
}

// jsonKind names a Go type the way an API client thinks of it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		if t == reflect.TypeOf(time.Time{}) {
			return "an RFC 3339 time"
		}
		return "an object"
	}
	return "a JSON value of another type"
}

// timeField names the time field of a request body, for time parse errors.
func timeField(v any) string {
	switch v.(type) {
	case *customerBody:
		return "subscriptionStart"
	case *billing.GrantInput:
		return "expiresAt"
	}
	return "body"
}

type customerJSON struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
	Limits   json.RawMessage   `json:"limits,omitempty"`
	// TierOverride is the spend tier set by hand (absent when none).
	TierOverride string `json:"tierOverride,omitempty"`
	// LowBalanceThreshold is the wallet balance below which a low_balance notice is recorded
	// (absent when none).
	LowBalanceThreshold string             `json:"lowBalanceThreshold,omitempty"`
	CreatedAt           time.Time          `json:"createdAt"`
	UpdatedAt           time.Time          `json:"updatedAt"`
	Subscriptions       []subscriptionJSON `json:"subscriptions"`
}

type subscriptionJSON struct {
	ID            int64     `json:"id"`
	PlanVersionID int64     `json:"planVersionId"`
	Start         time.Time `json:"start"`
}

func toCustomerJSON(c store.Customer) customerJSON {
	out := customerJSON{ID: c.ID, Metadata: c.Metadata, TierOverride: c.TierOverride, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Subscriptions: []subscriptionJSON{}}
	if c.LowBalance != nil {
		out.LowBalanceThreshold = c.LowBalance.String()
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if len(c.Limits) > 0 {
		out.Limits = c.Limits
	}
	for _, s := range c.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, subscriptionJSON{s.ID, s.PlanVersionID, s.Start.UTC()})
	}
	return out
}

// customerBody is the PUT /v1/customers/{id} body; metadata values are checked one by one so
// an error names the entry.
type customerBody struct {
	billing.CustomerInput
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
}

func (a *API) putCustomer(w http.ResponseWriter, r *http.Request) {
	var body customerBody
	if err := a.decodeJSON(w, r, &body); err != nil {
		a.writeError(w, r, err)
		return
	}
	in := body.CustomerInput
	if _, err := authorize.ParseOverrides(in.Limits); err != nil {
		a.writeError(w, r, err)
		return
	}
	if t := in.SubscriptionStart; t != nil && (t.Before(minStoredTime) || t.After(maxStoredTime)) {
		a.writeError(w, r, problem.Invalidf("subscriptionStart", "must be between %s and %s (times are stored as nanoseconds since 1970)",
			minStoredTime.Format(time.RFC3339), maxStoredTime.Format(time.RFC3339)))
		return
	}
	if body.Metadata != nil {
		in.Metadata = make(map[string]string, len(body.Metadata))
		for k, raw := range body.Metadata {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				a.writeError(w, r, problem.Invalidf("metadata."+k, "must be a string"))
				return
			}
			in.Metadata[k] = v
		}
	}
	c, err := a.svc.PutCustomer(r.Context(), r.PathValue("id"), in)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toCustomerJSON(c))
}

func (a *API) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := a.svc.GetCustomer(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toCustomerJSON(c))
}

func limitParam(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, problem.Invalidf("limit", "must be a whole number from 1 to %d", max)
	}
	return n, nil
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 100, 1000)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cs, err := a.svc.ListCustomers(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := struct {
		Customers []customerJSON `json:"customers"`
		Next      string         `json:"next,omitempty"`
	}{Customers: []customerJSON{}}
	for _, c := range cs {
		out.Customers = append(out.Customers, toCustomerJSON(c))
	}
	if len(cs) == limit {
		out.Next = cs[len(cs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, problem.Invalidf(name, "must be an RFC 3339 time such as 2026-11-01T00:00:00Z")
	}
	return t, nil
}

func (a *API) usage(w http.ResponseWriter, r *http.Request) {
	now := a.opts.Now()
	from, err := timeParam(r, "from", time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	to, err := timeParam(r, "to", now)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !to.After(from) {
		a.writeError(w, r, problem.Invalidf("to", "must be after from"))
		return
	}
	rep, err := a.svc.Usage(r.Context(), r.PathValue("id"), from, to, r.URL.Query().Get("groupBy"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (a *API) spend(w http.ResponseWriter, r *http.Request) {
	s, err := a.svc.Spend(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *API) invoicePreview(w http.ResponseWriter, r *http.Request) {
	iv, err := a.svc.InvoicePreview(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, iv)
}

// attribution pages through the correlation IDs behind an invoice line. The query is the
// line's attribution link (billing.ParseAttributionQuery reads it, adjustment lines' billed
// period included); limit is read here like every other page size.
func (a *API) attribution(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, 100, 1000)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	q.Del("limit")
	p, err := billing.ParseAttributionQuery(r.PathValue("id"), q)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p.Limit = limit
	page, err := a.svc.Attribution(r.Context(), p)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type eventJSON struct {
	Seq           int64             `json:"seq"`
	ID            string            `json:"id,omitempty"`
	EventType     string            `json:"eventType"`
	CustomerID    string            `json:"customerId"`
	CorrelationID string            `json:"correlationId,omitempty"`
	Timestamp     time.Time         `json:"timestamp"`
	ReceivedAt    time.Time         `json:"receivedAt"`
	Properties    json.RawMessage   `json:"properties"`
	Measurements  json.RawMessage   `json:"measurements"`
	Unmetered     []string          `json:"unmetered,omitempty"`
	PlanVersionID int64             `json:"planVersionId"`
	PeriodStart   time.Time         `json:"periodStart"`
	PeriodEnd     time.Time         `json:"periodEnd"`
	Amount        string            `json:"amount"`
	Cost          string            `json:"cost"`
	Lines         []ratedLineJSON   `json:"lines"`
	Links         map[string]string `json:"links,omitempty"`
}

type ratedLineJSON struct {
	Charge   string `json:"charge"`
	Group    string `json:"group,omitempty"`
	Type     string `json:"type"`
	Quantity string `json:"quantity"`
	Amount   string `json:"amount"`
	Cost     string `json:"cost,omitempty"`
}

func toEventJSON(e store.EventRecord) eventJSON {
	out := eventJSON{Seq: e.Seq, ID: e.ID, EventType: e.EventType, CustomerID: e.CustomerID, CorrelationID: e.CorrelationID,
		Timestamp: e.Timestamp.UTC(), ReceivedAt: e.ReceivedAt.UTC(), Properties: e.Properties, Measurements: e.Measurements,
		Unmetered: e.Unmetered, PlanVersionID: e.PlanVersionID, PeriodStart: e.PeriodStart.UTC(), PeriodEnd: e.PeriodEnd.UTC(),
		Amount: e.Amount.String(), Cost: e.Cost.String(), Lines: []ratedLineJSON{}}
	if len(out.Properties) == 0 {
		out.Properties = json.RawMessage("{}")
	}
	if len(out.Measurements) == 0 {
		out.Measurements = json.RawMessage("[]")
	}
	for _, l := range e.Lines {
		rl := ratedLineJSON{Charge: l.Charge, Group: l.Group, Type: l.Type, Quantity: l.Quantity.String(), Amount: l.Amount.String()}
		if !l.Cost.IsZero() {
			rl.Cost = l.Cost.String()
		}
		out.Lines = append(out.Lines, rl)
	}
	return out
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request) {
	e, err := a.svc.GetEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEventJSON(e))
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	corr := r.URL.Query().Get("correlationId")
	if corr == "" {
		a.writeError(w, r, problem.Invalidf("correlationId", "is required (list a customer's usage with /v1/customers/{id}/usage)"))
		return
	}
	limit, err := limitParam(r, 100, 1000)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	evs, err := a.svc.EventsByCorrelation(r.Context(), corr, limit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := struct {
		Events []eventJSON `json:"events"`
	}{Events: []eventJSON{}}
	for _, e := range evs {
		out.Events = append(out.Events, toEventJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}

type keyJSON struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Prefix    string        `json:"prefix"`
	Scopes    []store.Scope `json:"scopes"`
	CreatedAt time.Time     `json:"createdAt"`
	RevokedAt *time.Time    `json:"revokedAt,omitempty"`
	Secret    string        `json:"secret,omitempty"`
}

func toKeyJSON(k store.APIKey) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC(), RevokedAt: k.RevokedAt}
}

// CreateKey creates and stores a new API key, returning it with its secret.
func CreateKey(ctx context.Context, st store.Store, name string, scopes []store.Scope, now time.Time) (store.APIKey, string, error) {
	secret, id := NewSecret()
	k := store.APIKey{ID: id, Name: name, Hash: HashKey(secret), Prefix: secret[:12], Scopes: scopes, CreatedAt: now.UTC()}
	if err := st.CreateAPIKey(ctx, k); err != nil {
		return k, "", err
	}
	return k, secret, nil
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := a.decodeJSON(w, r, &in); err != nil {
		a.writeError(w, r, err)
		return
	}
	if in.Name == "" || len(in.Name) > 128 {
		a.writeError(w, r, problem.Invalidf("name", "is required (at most 128 characters)"))
		return
	}
	scopes, err := ParseScopes(in.Scopes)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	k, secret, err := CreateKey(r.Context(), a.store, in.Name, scopes, a.opts.Now())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := toKeyJSON(k)
	out.Secret = secret
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := a.store.ListAPIKeys(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := struct {
		Keys []keyJSON `json:"keys"`
	}{Keys: []keyJSON{}}
	for _, k := range ks {
		out.Keys = append(out.Keys, toKeyJSON(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := a.store.RevokeAPIKey(r.Context(), id, a.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, problem.New(problem.NotFound, "no API key %q", id))
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.auth.Forget(id)
	w.WriteHeader(http.StatusNoContent)
}
