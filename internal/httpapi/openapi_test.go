package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/levyhq/levy/internal/httpapi"
	"github.com/levyhq/levy/internal/money"
)

func init() {
	// The catalog takes every usual YAML media type; kin-openapi registers only two of them.
	openapi3filter.RegisterBodyDecoder("text/yaml", openapi3filter.YamlBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/x-yaml", openapi3filter.YamlBodyDecoder)
}

// loadContract loads the embedded OpenAPI document and validates it (examples included).
func loadContract(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json declares OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadContract(t)
	// Every operation has an ID, names its scope (or needs no key) and documents a problem for
	// every 4xx/5xx it lists.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			}
			public := op.Security != nil && len(*op.Security) == 0
			if !public {
				scope, _ := op.Extensions["x-levy-scope"].(string)
				if scope == "" || !strings.Contains(op.Description, "Scope: `"+scope+"`") {
					t.Errorf("%s: the description does not name the scope (x-levy-scope %q)", where, scope)
				}
				if op.Responses.Status(401) == nil || op.Responses.Status(403) == nil {
					t.Errorf("%s: an authenticated operation must document 401 and 403", where)
				}
			}
			for code, resp := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				if decision, _ := resp.Value.Extensions["x-levy-decision"].(bool); decision {
					// The authorize DENY is a decision in the decision's shape, not an error.
					if op.OperationID != "authorize" || code != "429" {
						t.Errorf("%s %s: only the authorize 429 is a decision", where, code)
					}
					if mt := resp.Value.Content.Get("application/json"); mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/AuthorizeDecision" {
						t.Errorf("%s %s: a decision answer must be an AuthorizeDecision", where, code)
					}
					continue
				}
				mt := resp.Value.Content.Get("application/problem+json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s: not a problem+json answer", where, code)
				}
			}
		}
	}
}

// goRoutes reads the route patterns registered in api.go, so a route added to the code but not
// to the document (or the other way round) fails the test.
func goRoutes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("api.go")
	if err != nil {
		t.Fatalf("read api.go: %v", err)
	}
	re := regexp.MustCompile(`m\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1]+" "+regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(m[2], "{}"))
	}
	sort.Strings(out)
	return out
}

func docRoutes(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "{}"))
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	doc := loadContract(t)
	code, contract := goRoutes(t), docRoutes(doc)
	if len(code) < 19 {
		t.Fatalf("found only %d routes in api.go: %v", len(code), code)
	}
	if !slices.Equal(code, contract) {
		t.Errorf("routes differ\napi.go:       %v\nopenapi.json: %v", code, contract)
	}
}

// contract validates exchanges with a server against the document.
type contract struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	srv    *testServer

	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → statuses seen
}

func newContract(t *testing.T, srv *testServer) *contract {
	doc := loadContract(t)
	// Route by path alone: the document's server is the default address, the test server's is
	// an ephemeral port.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &contract{t: t, doc: doc, router: router, srv: srv, seen: map[string]map[int]bool{}}
}

// requestCheck says what the document must think of a request.
type requestCheck int

const (
	reqValid   requestCheck = iota // the request conforms to the document
	reqInvalid                     // the document rejects it too (bad input the schema can express)
	reqAny                         // not checked (the request is bad in a way schemas cannot say)
)

func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type == "http" && in.SecurityScheme.Scheme == "bearer" {
		h := in.RequestValidationInput.Request.Header.Get("Authorization")
		if !strings.HasPrefix(h, "Bearer ") || len(h) <= len("Bearer ") {
			return errors.New("no bearer token")
		}
		return nil
	}
	return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
}

// exchange sends c, checks the request against the document as rc says, validates the response
// against the document (status, headers, content type and body) and returns it.
func (k *contract) exchange(c call, rc requestCheck, wantStatus int) reply {
	t := k.t
	t.Helper()
	r := k.srv.do(c)
	if r.Status != wantStatus {
		t.Errorf("%s %s: status %d, want %d; body: %s", c.Method, c.Path, r.Status, wantStatus, clipBody(r.Body))
	}
	if r.Status >= 500 && wantStatus < 500 {
		t.Errorf("%s %s: answered %d: %s", c.Method, c.Path, r.Status, clipBody(r.Body))
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", c.Method, c.Path)
	}
	vreq := c.request("http://levy.test")
	route, params, err := k.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s %s: the document has no such operation: %v", c.Method, c.Path, err)
		return r
	}
	k.mu.Lock()
	if k.seen[route.Operation.OperationID] == nil {
		k.seen[route.Operation.OperationID] = map[int]bool{}
	}
	k.seen[route.Operation.OperationID][r.Status] = true
	k.mu.Unlock()
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true},
	}
	ctx := context.Background()
	switch err := openapi3filter.ValidateRequest(ctx, in); {
	case rc == reqValid && err != nil:
		t.Errorf("%s %s: the request does not conform to the document: %v", c.Method, c.Path, err)
	case rc == reqInvalid && err == nil:
		t.Errorf("%s %s: the server rejects the request (%d) but the document accepts it", c.Method, c.Path, r.Status)
	}
	// The response is validated whatever the request was.
	in.Options = &openapi3filter.Options{AuthenticationFunc: authenticate, IncludeResponseStatus: true, MultiError: true}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 r.Status,
		Header:                 r.Header,
		Body:                   io.NopCloser(bytes.NewReader(r.Body)),
		Options:                in.Options,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: the %d response does not conform to the document: %v\nbody: %s", c.Method, c.Path, r.Status, err, clipBody(r.Body))
	}
	return r
}

// problem checks a problem answer: its status, and that it names each of fields (with the
// batch index when index is not nil).
func (k *contract) problem(r reply, status int, index *int, fields ...string) problemDoc {
	k.t.Helper()
	return checkProblem(k.t, r, status, index, fields...)
}

func checkProblem(t testing.TB, r reply, status int, index *int, fields ...string) problemDoc {
	t.Helper()
	p, issues := problemIssues(r, status, index, fields...)
	for _, s := range issues {
		t.Error(s)
	}
	return p
}

// problemIssues lists what is wrong with a problem answer: its status, its content type, its
// request ID, and each of fields it does not name (at the batch index when index is not nil).
func problemIssues(r reply, status int, index *int, fields ...string) (problemDoc, []string) {
	var p problemDoc
	var issues []string
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return p, []string{fmt.Sprintf("HTTP %d, Content-Type %q, want a problem+json %d; body %s", r.Status, ct, status, clipBody(r.Body))}
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return p, []string{fmt.Sprintf("problem document: %v: %s", err, r.Body)}
	}
	if p.Status != status || r.Status != status {
		issues = append(issues, fmt.Sprintf("problem status %d (HTTP %d), want %d: %s", p.Status, r.Status, status, r.Body))
	}
	if p.RequestID == "" || p.RequestID != r.Header.Get("X-Request-Id") {
		issues = append(issues, fmt.Sprintf("problem requestId %q, header %q", p.RequestID, r.Header.Get("X-Request-Id")))
	}
	for _, f := range fields {
		found := false
		for _, e := range p.Errors {
			if e.Field == f && (index == nil || e.Index != nil && *e.Index == *index) {
				found = true
			}
		}
		if !found {
			at := ""
			if index != nil {
				at = fmt.Sprintf(" at index %d", *index)
			}
			issues = append(issues, fmt.Sprintf("the problem does not name the field %q%s: %s", f, at, r.Body))
		}
	}
	return p, issues
}

func idx(i int) *int { return &i }

// validateProblemSchema checks a body against the document's Problem schema directly (for
// answers to paths the document has no operation for).
func (k *contract) validateProblemSchema(r reply) {
	k.t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		k.t.Errorf("not JSON: %s", r.Body)
		return
	}
	if err := k.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		k.t.Errorf("not a Problem: %v: %s", err, r.Body)
	}
}

func ev(id, customer, corr, ts string, props map[string]any, ms ...any) map[string]any {
	e := map[string]any{"eventType": "llm.completion", "customerId": customer}
	if id != "" {
		e["id"] = id
	}
	if corr != "" {
		e["correlationId"] = corr
	}
	if ts != "" {
		e["timestamp"] = ts
	}
	if props != nil {
		e["properties"] = props
	}
	var list []any
	for i := 0; i+1 < len(ms); i += 2 {
		list = append(list, map[string]any{"metricKey": ms[i], "value": ms[i+1]})
	}
	if list != nil {
		e["measurements"] = list
	}
	return e
}

// TestOpenAPIContract runs a real server and exercises every operation, validating each request
// and response against the document.
func TestOpenAPIContract(t *testing.T) {
	srv := newTestServer(t, serverOptions{network: true})
	k := newContract(t, srv)
	admin := srv.Admin
	get := func(path, key string, rc requestCheck, status int) reply {
		t.Helper()
		return k.exchange(call{Method: "GET", Path: path, Key: key}, rc, status)
	}
	sendJSON := func(method, path, key string, body any, rc requestCheck, status int) reply {
		t.Helper()
		return k.exchange(call{Method: method, Path: path, Key: key, ContentType: "application/json", Body: jsonBody(body)}, rc, status)
	}

	// Operations endpoints: no key.
	if r := get("/healthz", "", reqValid, 200); string(r.Body) != "ok\n" {
		t.Errorf("healthz: %q", r.Body)
	}
	get("/readyz", "", reqValid, 200)
	if r := get("/metrics", "", reqValid, 200); !bytes.Contains(r.Body, []byte("levy_ingest_commit_seconds")) {
		t.Errorf("metrics lack the ingestion figures: %s", clipBody(r.Body))
	}
	if r := get("/openapi.json", "", reqValid, 200); !bytes.Equal(r.Body, httpapi.OpenAPI) {
		t.Errorf("/openapi.json does not serve the embedded document")
	}

	// Catalog.
	k.problem(get("/v1/catalog", admin, reqValid, 404), 404, nil)
	r := k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "application/yaml", Body: []byte(testCatalog)}, reqValid, 200)
	var applied struct {
		Version int64
		Plans   []struct {
			Plan    string
			Version int64
			ID      int64
			Changed bool
		}
	}
	r.json(t, &applied)
	if applied.Version != 1 || len(applied.Plans) != 2 || !applied.Plans[0].Changed {
		t.Fatalf("first apply: %s", r.Body)
	}
	proV1 := applied.Plans[0].ID
	// The same document again: a new catalog version, no new plan version.
	r = k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "text/yaml", Body: []byte(testCatalog)}, reqValid, 200)
	r.json(t, &applied)
	if applied.Version != 2 || applied.Plans[0].Changed || applied.Plans[1].Changed {
		t.Errorf("re-apply changed plans: %s", r.Body)
	}
	// The catalog as JSON reads back; YAML on request.
	r = get("/v1/catalog", admin, reqValid, 200)
	if r.Header.Get("Levy-Catalog-Version") != "2" {
		t.Errorf("Levy-Catalog-Version %q", r.Header.Get("Levy-Catalog-Version"))
	}
	var catJSON map[string]any
	r.json(t, &catJSON)
	r = k.exchange(call{Method: "GET", Path: "/v1/catalog", Key: admin, Accept: "application/yaml"}, reqValid, 200)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/yaml") || !bytes.Contains(r.Body, []byte("currency: USD")) {
		t.Errorf("YAML catalog: %s %s", r.Header.Get("Content-Type"), clipBody(r.Body))
	}
	// Applying the served JSON (with basic's price changed) versions basic only.
	plans := catJSON["plans"].([]any)
	basic := plans[1].(map[string]any)
	basic["charges"].([]any)[0].(map[string]any)["unitPrice"] = "25.00"
	r = sendJSON("PUT", "/v1/catalog", admin, catJSON, reqValid, 200)
	r.json(t, &applied)
	if applied.Version != 3 || applied.Plans[0].Changed || !applied.Plans[1].Changed || applied.Plans[1].Version != 2 {
		t.Errorf("JSON apply: %s", r.Body)
	}
	// An invalid catalog names the paths of its problems and stores nothing.
	r = k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "application/yaml",
		Body: []byte("currency: USD\nplans:\n  - key: x\n    charges:\n      - {key: a, model: flat, amount: abc}\n      - {key: b, model: perUnit, meter: nope, unitPrice: \"1\"}\n")}, reqAny, 400)
	k.problem(r, 400, nil, "plans[0].charges[0].amount", "plans[0].charges[1].meter")
	if r = get("/v1/catalog", admin, reqValid, 200); r.Header.Get("Levy-Catalog-Version") != "3" {
		t.Errorf("an invalid catalog changed the version: %q", r.Header.Get("Levy-Catalog-Version"))
	}
	r = get("/v1/plans", admin, reqValid, 200)
	var pl struct{ Plans []map[string]any }
	r.json(t, &pl)
	if len(pl.Plans) != 3 {
		t.Errorf("plan versions: %s", r.Body)
	}

	// Customers.
	sendJSON("PUT", "/v1/customers/c1", admin, map[string]any{"plan": "pro", "metadata": map[string]string{"company": "Acme"}}, reqValid, 200)
	sendJSON("PUT", "/v1/customers/c2", admin, map[string]any{"plan": "basic", "limits": map[string]any{"requestsPerMinute": 10}}, reqValid, 200)
	sendJSON("PUT", "/v1/customers/c3", admin, map[string]any{"plan": "basic", "planVersion": 1, "subscriptionStart": "2026-11-15T00:00:00Z"}, reqValid, 200)
	sendJSON("PUT", "/v1/customers/c4", admin, map[string]any{"metadata": map[string]string{"note": "no plan yet"}}, reqValid, 200)
	r = get("/v1/customers/c1", admin, reqValid, 200)
	var c1 struct {
		Subscriptions []struct {
			PlanVersionID int64
			Start         string
		}
	}
	r.json(t, &c1)
	if len(c1.Subscriptions) != 1 || c1.Subscriptions[0].PlanVersionID != proV1 || c1.Subscriptions[0].Start != "2026-11-01T00:00:00Z" {
		t.Errorf("c1: %s", r.Body)
	}
	k.problem(get("/v1/customers/nobody", admin, reqValid, 404), 404, nil)
	k.problem(sendJSON("PUT", "/v1/customers/bad%20id", admin, map[string]any{"plan": "pro"}, reqInvalid, 400), 400, nil, "customerId")
	k.problem(sendJSON("PUT", "/v1/customers/c5", admin, map[string]any{"plan": "nope"}, reqAny, 400), 400, nil, "plan")
	k.problem(sendJSON("PUT", "/v1/customers/c5", admin, map[string]any{"plan": "pro", "colour": "red"}, reqInvalid, 400), 400, nil, "colour")
	r = get("/v1/customers?limit=2", admin, reqValid, 200)
	var page struct {
		Customers []struct{ ID string }
		Next      string
	}
	r.json(t, &page)
	if len(page.Customers) != 2 || page.Next != "c2" {
		t.Errorf("first page: %s", r.Body)
	}
	r = get("/v1/customers?limit=2&after="+page.Next, admin, reqValid, 200)
	r.json(t, &page)
	if len(page.Customers) != 2 || page.Customers[0].ID != "c3" {
		t.Errorf("second page: %s", r.Body)
	}
	k.problem(get("/v1/customers?limit=0", admin, reqInvalid, 400), 400, nil, "limit")

	// Events: one event, an array, {"events": [...]}, CloudEvents.
	e1 := ev("e1", "c1", "req1", "2026-11-28T10:00:00Z", map[string]any{"model": "claude-sonnet-4-6", "requestType": "standard"},
		"input_tokens", 1500, "output_tokens", "800.5", "cache_read_tokens", 500)
	r = sendJSON("POST", "/v1/events", admin, e1, reqValid, 200)
	var ing struct {
		Accepted, Duplicates int
		Events               []struct {
			Index     int
			Status    string
			Amount    string
			Unmetered []string
		}
	}
	r.json(t, &ing)
	if ing.Accepted != 1 || ing.Events[0].Status != "accepted" || !slices.Equal(ing.Events[0].Unmetered, []string{"cache_read_tokens"}) {
		t.Errorf("single event: %s", r.Body)
	}
	// The same event again is a duplicate.
	r = sendJSON("POST", "/v1/events", admin, e1, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 0 || ing.Duplicates != 1 || ing.Events[0].Status != "duplicate" {
		t.Errorf("duplicate: %s", r.Body)
	}
	// The same key with other content is a conflict naming the index.
	e1b := ev("e1", "c1", "req1", "2026-11-28T10:00:00Z", nil, "input_tokens", 1)
	k.problem(sendJSON("POST", "/v1/events", admin, []any{ev("e-new", "c1", "", "", nil, "input_tokens", 1), e1b}, reqValid, 409), 409, idx(1), "id")
	// An array: one event without a timestamp (now), another model, another customer. (Events
	// keyed by (eventType, correlationId) have their own test below.)
	arr := []any{
		ev("e2", "c1", "req2", "", map[string]any{"model": "claude-haiku-4-5"}, "input_tokens", 2000),
		ev("e3", "c1", "req3", "2026-11-27T09:00:00Z", map[string]any{"model": "claude-sonnet-4-6"}, "input_tokens", "250.25", "output_tokens", 100),
		ev("e-c2-1", "c2", "req4", "2026-11-27T09:00:00Z", nil, "output_tokens", 1000000),
	}
	r = sendJSON("POST", "/v1/events", admin, arr, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 3 {
		t.Errorf("array: %s", r.Body)
	}
	// Retrying the array (the timestamp-less event included) changes nothing.
	r = sendJSON("POST", "/v1/events", admin, arr, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 0 || ing.Duplicates != 3 {
		t.Errorf("array retry: %s", r.Body)
	}
	r = sendJSON("POST", "/v1/events", admin, map[string]any{"events": []any{
		ev("e4", "c1", "req1", "2026-11-28T10:00:01Z", map[string]any{"model": "claude-sonnet-4-6"}, "input_tokens", 100),
		ev("e5", "c1", "req5", "2026-11-28T10:00:02Z", map[string]any{"model": "claude-sonnet-4-6"}, "input_tokens", 300),
	}}, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 2 {
		t.Errorf("{events}: %s", r.Body)
	}
	ce := map[string]any{"specversion": "1.0", "id": "ce1", "type": "agent.run.completed", "source": "/agents", "subject": "c1",
		"time": "2026-11-28T11:00:00Z", "datacontenttype": "application/json", "data": map[string]any{"correlationId": "req1", "properties": map[string]any{"taskId": "run_42"}}}
	r = k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/cloudevents+json", Body: jsonBody(ce)}, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 1 || ing.Events[0].Amount != "0.5" {
		t.Errorf("CloudEvent: %s", r.Body)
	}
	ceBatch := []any{
		map[string]any{"specversion": "1.0", "id": "ce2", "type": "llm.completion", "source": "/gw", "subject": "c1", "time": "2026-11-28T11:30:00Z",
			"data": map[string]any{"correlationId": "req6", "properties": map[string]any{"model": "claude-sonnet-4-6"}, "measurements": []any{map[string]any{"metricKey": "output_tokens", "value": 10}}}},
		map[string]any{"specversion": "1.0", "id": "ce3", "type": "llm.completion", "source": "/gw", "subject": "c2",
			"data": map[string]any{"measurements": []any{map[string]any{"metricKey": "output_tokens", "value": "5"}}}},
	}
	r = k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/cloudevents-batch+json", Body: jsonBody(ceBatch)}, reqValid, 200)
	r.json(t, &ing)
	if ing.Accepted != 2 {
		t.Errorf("CloudEvents batch: %s", r.Body)
	}
	// Bad input: every bad event by index and field; nothing is written.
	bad := []any{
		ev("e-bad-0", "c1", "", "", nil, "input_tokens", 1),
		map[string]any{"id": "e-bad-1", "customerId": "c1"},
		ev("e-bad-2", "c1", "", "", nil, "input_tokens", -5),
	}
	k.problem(sendJSON("POST", "/v1/events", admin, bad, reqInvalid, 400), 400, idx(1), "eventType")
	k.problem(sendJSON("POST", "/v1/events", admin, bad, reqInvalid, 400), 400, idx(2), "measurements[0].value")
	k.problem(sendJSON("POST", "/v1/events", admin, ev("e-unknown", "nobody", "", "", nil, "input_tokens", 1), reqAny, 400), 400, idx(0), "customerId")
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/cloudevents+json",
		Body: []byte(`{"specversion":"0.3","id":"ce-bad","type":"x","subject":"c1"}`)}, reqInvalid, 400), 400, idx(0), "specversion")
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/json", Body: []byte(`{"id":`)}, reqInvalid, 400), 400, nil, "body")
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "text/csv", Body: []byte("a,b\n")}, reqInvalid, 415), 415, nil, "Content-Type")
	big := bytes.Repeat([]byte(" "), 4<<20+1)
	copy(big, `[`)
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/json", Body: big}, reqAny, 413), 413, nil, "body")
	if _, err := srv.Store.GetEvent(context.Background(), "e-bad-0"); err == nil {
		t.Errorf("an event of a rejected batch was written")
	}

	// The ledger: by id and by correlation ID.
	r = get("/v1/events/e1", admin, reqValid, 200)
	var rec struct {
		Seq          int64
		Amount       string
		Measurements []struct{ MetricKey, Value string }
		Lines        []struct{ Charge, Group, Type, Quantity, Amount string }
	}
	r.json(t, &rec)
	if len(rec.Measurements) != 3 || rec.Measurements[1].Value != "800.5" || len(rec.Lines) != 2 {
		t.Errorf("event e1: %s", r.Body)
	}
	k.problem(get("/v1/events/nope", admin, reqValid, 404), 404, nil)
	r = get("/v1/events?correlationId=req1&limit=10", admin, reqValid, 200)
	var byCorr struct{ Events []struct{ ID string } }
	r.json(t, &byCorr)
	if len(byCorr.Events) != 3 { // e1, e4, ce1
		t.Errorf("by correlation: %s", r.Body)
	}
	get("/v1/events?correlationId=none", admin, reqValid, 200)
	k.problem(get("/v1/events", admin, reqInvalid, 400), 400, nil, "correlationId")

	// Reporting.
	r = get("/v1/customers/c1/spend", admin, reqValid, 200)
	var sp struct {
		Spend, InvoiceTotal, Currency string
		Events                        int64
	}
	r.json(t, &sp)
	if sp.Events != 7 || sp.Currency != "USD" || sp.InvoiceTotal != "50.00" {
		t.Errorf("spend c1: %s", r.Body)
	}
	k.problem(get("/v1/customers/nobody/spend", admin, reqValid, 404), 404, nil)
	k.problem(get("/v1/customers/c4/spend", admin, reqValid, 404), 404, nil) // no subscription
	get("/v1/customers/c1/usage", admin, reqValid, 200)
	r = get("/v1/customers/c1/usage?groupBy=model&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z", admin, reqValid, 200)
	var us struct {
		Meters []struct{ Meter, Group, Value string }
	}
	r.json(t, &us)
	foundHaiku := false
	for _, m := range us.Meters {
		if m.Meter == "input_tokens" && m.Group == "claude-haiku-4-5" && m.Value == "2000" {
			foundHaiku = true
		}
	}
	if !foundHaiku {
		t.Errorf("usage by model: %s", r.Body)
	}
	k.problem(get("/v1/customers/c1/usage?from=yesterday", admin, reqInvalid, 400), 400, nil, "from")
	k.problem(get("/v1/customers/c1/usage?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", admin, reqAny, 400), 400, nil, "to")
	k.problem(get("/v1/customers/nobody/usage", admin, reqValid, 404), 404, nil)

	r = get("/v1/customers/c1/invoice-preview", admin, reqValid, 200)
	var inv struct {
		PreciseTotal, Total string
		Lines               []struct{ Charge, Group, Type, PreciseAmount, Amount, Attribution string }
	}
	r.json(t, &inv)
	k.problem(get("/v1/customers/nobody/invoice-preview", admin, reqValid, 404), 404, nil)
	get("/v1/customers/c2/invoice-preview", admin, reqValid, 200)
	// Attribution: every usage line's pages add up exactly to its precise amount.
	links := 0
	for _, l := range inv.Lines {
		if l.Attribution == "" {
			if l.Type == "usage" {
				t.Errorf("usage line %s has no attribution link", l.Charge)
			}
			continue
		}
		links++
		sum, pages, after := money.Zero, 0, ""
		for {
			path := l.Attribution + "&limit=1"
			if after != "" {
				path += "&after=" + url.QueryEscape(after)
			}
			r = get(path, admin, reqValid, 200)
			var ap struct {
				Items []struct{ CorrelationID, PreciseAmount string }
				Next  string
			}
			r.json(t, &ap)
			for _, it := range ap.Items {
				d, err := money.Parse(it.PreciseAmount)
				if err != nil {
					t.Fatalf("attribution amount %q: %v", it.PreciseAmount, err)
				}
				sum = sum.Add(d)
			}
			pages++
			if ap.Next == "" || pages > 20 {
				break
			}
			after = ap.Next
		}
		want, _ := money.Parse(l.PreciseAmount)
		if !sum.Equal(want) {
			t.Errorf("line %s/%s: attribution adds up to %s, the line is %s", l.Charge, l.Group, sum, l.PreciseAmount)
		}
	}
	if links < 3 {
		t.Errorf("only %d attribution links in %v", links, inv.Lines)
	}
	k.problem(get("/v1/customers/c1/attribution?charge=input", admin, reqInvalid, 400), 400, nil, "planVersionId")
	k.problem(get("/v1/customers/c1/attribution?planVersionId=1&charge=input", admin, reqInvalid, 400), 400, nil, "periodStart")
	k.problem(get("/v1/customers/c1/attribution?planVersionId=1&periodStart=2026-11-01T00:00:00Z", admin, reqInvalid, 400), 400, nil, "charge")
	k.problem(get("/v1/customers/c1/attribution?planVersionId=1&periodStart=2026-11-01T00:00:00Z&charge=input&limit=5000", admin, reqInvalid, 400), 400, nil, "limit")

	// Keys: create, use, scopes, list, revoke.
	r = sendJSON("POST", "/v1/keys", admin, map[string]any{"name": "reader", "scopes": []string{"read"}}, reqValid, 201)
	var reader struct{ ID, Secret string }
	r.json(t, &reader)
	r = sendJSON("POST", "/v1/keys", admin, map[string]any{"name": "gateway", "scopes": []string{"ingest", "authorize"}}, reqValid, 201)
	var ingester struct{ ID, Secret string }
	r.json(t, &ingester)
	k.problem(sendJSON("POST", "/v1/keys", admin, map[string]any{"name": "x", "scopes": []string{"root"}}, reqInvalid, 400), 400, nil, "scopes")
	k.problem(sendJSON("POST", "/v1/keys", admin, map[string]any{"scopes": []string{"read"}}, reqInvalid, 400), 400, nil, "name")
	k.problem(k.exchange(call{Method: "POST", Path: "/v1/keys", Key: admin, ContentType: "application/xml", Body: []byte("<key/>")}, reqInvalid, 415), 415, nil, "Content-Type")
	get("/v1/customers/c1/spend", reader.Secret, reqValid, 200)
	k.problem(k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: reader.Secret, ContentType: "application/yaml", Body: []byte(testCatalog)}, reqValid, 403), 403, nil)
	k.problem(get("/v1/keys", reader.Secret, reqValid, 403), 403, nil)
	k.problem(get("/v1/customers/c1", ingester.Secret, reqValid, 403), 403, nil)
	sendJSON("POST", "/v1/events", ingester.Secret, ev("e-gw", "c1", "req7", "2026-11-28T11:45:00Z", nil, "output_tokens", 1), reqValid, 200)
	k.problem(sendJSON("POST", "/v1/events", reader.Secret, ev("e-reader", "c1", "", "", nil), reqValid, 403), 403, nil)
	r = get("/v1/keys", admin, reqValid, 200)
	var keys struct{ Keys []struct{ ID, Secret string } }
	r.json(t, &keys)
	if len(keys.Keys) != 3 {
		t.Errorf("keys: %s", r.Body)
	}
	for _, kk := range keys.Keys {
		if kk.Secret != "" {
			t.Errorf("the key list shows a secret")
		}
	}
	k.exchange(call{Method: "DELETE", Path: "/v1/keys/" + reader.ID, Key: admin}, reqValid, 204)
	k.exchange(call{Method: "DELETE", Path: "/v1/keys/" + reader.ID, Key: admin}, reqValid, 204) // again: still 204
	if r := get("/v1/keys", admin, reqValid, 200); !bytes.Contains(r.Body, []byte(`"revokedAt"`)) {
		t.Errorf("the revoked key is not listed with revokedAt: %s", r.Body)
	}
	k.problem(k.exchange(call{Method: "DELETE", Path: "/v1/keys/key_0000000000000000", Key: admin}, reqValid, 404), 404, nil)
	k.problem(get("/v1/customers/c1/spend", reader.Secret, reqValid, 401), 401, nil)
	r = get("/v1/customers/c1/spend", "", reqInvalid, 401)
	k.problem(r, 401, nil)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	k.problem(get("/v1/customers/c1/spend", "levy_not_a_key", reqValid, 401), 401, nil)

	// Paths the document has no operation for answer a problem too.
	for _, c := range []call{{Method: "GET", Path: "/v1/nothing", Key: admin}, {Method: "DELETE", Path: "/v1/events/e1", Key: admin}} {
		r := srv.do(c)
		checkProblem(t, r, 404, nil)
		k.validateProblemSchema(r)
	}

	// Readiness while draining: 503 with a problem.
	draining := newTestServer(t, serverOptions{ready: func() bool { return false }})
	k.srv = draining
	k.problem(k.exchange(call{Method: "GET", Path: "/readyz"}, reqValid, 503), 503, nil)
	k.srv = srv

	// Pre-flight authorize: decisions, reservations, live limits, breakers.
	exerciseAuthorize(t, k, srv)

	// Spend tiers, wallets, invoices, period close and the counter store.
	exerciseAccounts(t, k, srv)

	// Every operation was exercised with a success.
	for path, item := range k.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ok := false
			for status := range k.seen[op.OperationID] {
				if status < 300 {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s %s (%s) was never answered with a success", method, path, op.OperationID)
			}
		}
	}
	n := 0
	for _, s := range k.seen {
		n += len(s)
	}
	t.Logf("exercised %d operations, %d (operation, status) pairs", len(k.seen), n)
}

// TestOpenAPIContractEventsWithoutID ingests events keyed by (eventType, correlationId), their
// retries and a conflict, validating every exchange.
func TestOpenAPIContractEventsWithoutID(t *testing.T) {
	srv := newTestServer(t, serverOptions{network: true})
	k := newContract(t, srv)
	admin := srv.Admin
	for _, c := range []call{
		{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "application/yaml", Body: []byte(testCatalog)},
		{Method: "PUT", Path: "/v1/customers/c1", Key: admin, ContentType: "application/json", Body: []byte(`{"plan":"pro"}`)},
	} {
		k.exchange(c, reqValid, 200)
	}
	post := func(body any, status int) reply {
		t.Helper()
		return k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/json", Body: jsonBody(body)}, reqValid, status)
	}
	batch := []any{
		ev("", "c1", "run-1", "2026-11-28T09:00:00Z", map[string]any{"model": "claude-sonnet-4-6"}, "input_tokens", 1000),
		ev("", "c1", "run-2", "", map[string]any{"model": "claude-sonnet-4-6"}, "output_tokens", 10),
	}
	r := post(batch, 200)
	if !bytes.Contains(r.Body, []byte(`"accepted": 2`)) {
		t.Fatalf("events without an id must be accepted (keyed by eventType and correlationId): %s\nrequest: %s", clipBody(r.Body), jsonBody(batch))
	}
	// A retry, the event without a timestamp included, is a duplicate.
	r = post(batch, 200)
	if !bytes.Contains(r.Body, []byte(`"duplicates": 2`)) {
		t.Errorf("retry: %s", r.Body)
	}
	// The same (eventType, correlationId) with other content is a conflict naming correlationId.
	k.problem(post(ev("", "c1", "run-1", "2026-11-28T09:00:00Z", nil, "input_tokens", 5), 409), 409, idx(0), "correlationId")
	r = k.exchange(call{Method: "GET", Path: "/v1/events?correlationId=run-1", Key: admin}, reqValid, 200)
	if bytes.Count(r.Body, []byte(`"seq"`)) != 1 || bytes.Contains(r.Body, []byte(`"id"`)) {
		t.Errorf("events of run-1: %s", r.Body)
	}
}

// TestOpenAPIContractTextRoundTrip stores strings with control and non-BMP characters (valid
// JSON strings the decoder accepts) and reads them back: the ledger must answer valid JSON with
// the same text.
func TestOpenAPIContractTextRoundTrip(t *testing.T) {
	srv := newTestServer(t, serverOptions{network: true})
	k := newContract(t, srv)
	admin := srv.Admin
	k.exchange(call{Method: "PUT", Path: "/v1/catalog", Key: admin, ContentType: "application/yaml", Body: []byte(testCatalog)}, reqValid, 200)
	k.exchange(call{Method: "PUT", Path: "/v1/customers/c1", Key: admin, ContentType: "application/json", Body: []byte(`{"plan":"pro"}`)}, reqValid, 200)
	note := "bell\a tab\t del\x7f tag\U000e0001 é ✓ 𝄞"
	body := jsonBody(ev("txt-1", "c1", "corr\u2028", "2026-11-28T10:00:00Z", map[string]any{"model": "claude-sonnet-4-6", "note": note}, "входные_tokens", 1, "input_tokens", 2))
	k.exchange(call{Method: "POST", Path: "/v1/events", Key: admin, ContentType: "application/json", Body: body}, reqValid, 200)
	r := k.exchange(call{Method: "GET", Path: "/v1/events/txt-1", Key: admin}, reqValid, 200)
	var got struct {
		CorrelationID string
		Properties    map[string]string
		Measurements  []struct{ MetricKey, Value string }
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("GET /v1/events/txt-1 is not JSON (%v): %q\nthe event was posted as %s", err, r.Body, body)
	}
	if got.Properties["note"] != note || got.CorrelationID != "corr\u2028" || len(got.Measurements) != 2 || got.Measurements[0].MetricKey != "входные_tokens" {
		t.Errorf("the ledger changed the text: %+v", got)
	}
}

// TestOpenAPIEmptyShapes: a catalog without plans answers plans: [], and limits: null clears
// nothing and is not echoed as null.
func TestOpenAPIEmptyShapes(t *testing.T) {
	srv := newTestServer(t, serverOptions{network: true})
	newContract(t, srv).exchange(call{Method: "PUT", Path: "/v1/catalog", Key: srv.Admin, ContentType: "application/yaml", Body: []byte("currency: USD\n")}, reqValid, 200)
	r := srv.do(call{Method: "PUT", Path: "/v1/catalog", Key: srv.Admin, ContentType: "application/yaml", Body: []byte("currency: USD\n")})
	if !bytes.Contains(r.Body, []byte(`"plans": []`)) {
		t.Errorf("PUT /v1/catalog without plans: %s", r.Body)
	}
	srv.do(call{Method: "PUT", Path: "/v1/catalog", Key: srv.Admin, ContentType: "application/yaml", Body: []byte(testCatalog)})
	r = srv.do(call{Method: "PUT", Path: "/v1/customers/cn", Key: srv.Admin, ContentType: "application/json", Body: []byte(`{"plan":"pro","limits":null}`)})
	if r.Status != 200 || bytes.Contains(r.Body, []byte(`"limits": null`)) {
		t.Errorf("limits null: %d %s", r.Status, r.Body)
	}
}

// The router must find every documented operation with a request built like a client's.
func TestOpenAPIRouterFindsEveryOperation(t *testing.T) {
	doc := loadContract(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			p := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x1")
			req := httptest.NewRequest(method, "http://levy.test"+p, nil)
			if _, _, err := router.FindRoute(req); err != nil {
				t.Errorf("%s %s: %v", method, path, err)
			}
		}
	}
	if n := len(docRoutes(doc)); n != 39 {
		t.Errorf("the document has %d operations, want 39", n)
	}
}
