package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/config"
	"github.com/levyhq/levy/internal/money"
)

// server is a running `levy serve` on an ephemeral port with its own data directory.
type server struct {
	url   string
	key   string
	data  string
	stop  func()
	done  chan error
	out   *bytes.Buffer
	t     *testing.T
	httpc *http.Client
}

func startServer(t *testing.T, data string, mutate func(*config.Config)) *server {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = data
	cfg.LogLevel = "warn"
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	s := &server{data: data, stop: cancel, done: make(chan error, 1), out: &bytes.Buffer{}, t: t, httpc: &http.Client{Timeout: 30 * time.Second}}
	go func() { s.done <- serve(ctx, cfg, s.out, io.Discard, listening) }()
	select {
	case addr := <-listening:
		s.url = "http://" + addr
	case err := <-s.done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	if cfg.AdminKey != "" {
		s.key = cfg.AdminKey
	} else {
		b, err := os.ReadFile(filepath.Join(data, "admin.key"))
		if err != nil {
			t.Fatalf("admin key: %v", err)
		}
		s.key = strings.TrimSpace(string(b))
	}
	t.Cleanup(s.shutdown)
	return s
}

func (s *server) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	if err := <-s.done; err != nil {
		s.t.Errorf("serve returned %v", err)
	}
}

func (s *server) do(method, path, ctype, body string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.httpc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

const testCatalog = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: cache_read_tokens}
costs:
  - {meter: input_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "3.00", per: 1000000}
plans:
  - key: pro
    minimumCommitment: "50.00"
    charges:
      - {key: platform, model: flat, amount: "20.00"}
      - {key: sonnet_in, meter: input_tokens, filter: {model: claude-sonnet-4-6}, model: graduated, per: 1000000,
         tiers: [{upTo: 10000, unitPrice: "3.00"}, {unitPrice: "2.00"}]}
      - {key: sonnet_out, meter: output_tokens, filter: {model: claude-sonnet-4-6}, model: perUnit, unitPrice: "15.00", per: 1000000}
      - {key: cache, meter: cache_read_tokens, model: perUnit, unitPrice: "0.30", per: 1000000}
`

// TestServeEndToEnd runs the quickstart against the real server on the embedded store: apply a
// catalog, create a customer, send compound events, read spend, the invoice preview and the
// attribution of a line, then restart and check that nothing changed.
func TestServeEndToEnd(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, nil)

	var applied struct {
		Version int64 `json:"version"`
	}
	if code := s.do("PUT", "/v1/catalog", "application/yaml", testCatalog, &applied); code != 200 || applied.Version != 1 {
		t.Fatalf("apply: %d %+v", code, applied)
	}
	if code := s.do("PUT", "/v1/customers/cust_abc", "application/json", `{"plan":"pro"}`, nil); code != 200 {
		t.Fatalf("customer: %d", code)
	}
	now := time.Now().UTC()
	ts := now.Add(-time.Minute).Format(time.RFC3339)
	ev := func(id, corr string, in, out int) string {
		return `{"id":"` + id + `","eventType":"llm.completion","customerId":"cust_abc","timestamp":"` + ts + `","properties":{"model":"claude-sonnet-4-6"},"measurements":[{"metricKey":"input_tokens","value":` + itoa(in) + `},{"metricKey":"output_tokens","value":` + itoa(out) + `},{"metricKey":"reasoning_tokens","value":5}],"correlationId":"` + corr + `"}`
	}
	var res struct {
		Accepted, Duplicates int
		Events               []struct {
			Status, Amount string
			Unmetered      []string
		}
	}
	if code := s.do("POST", "/v1/events", "application/json", "["+ev("e1", "req_1", 8000, 100)+","+ev("e2", "req_2", 4000, 200)+"]", &res); code != 200 {
		t.Fatalf("events: %d", code)
	}
	// e1: 8000 × 3/M + 100 × 15/M = 0.024 + 0.0015; e2 crosses the 10000 boundary:
	// 2000 × 3/M + 2000 × 2/M + 200 × 15/M = 0.006 + 0.004 + 0.003.
	if res.Accepted != 2 || res.Events[0].Amount != "0.0255" || res.Events[1].Amount != "0.013" {
		t.Errorf("ingest result %+v", res)
	}
	if len(res.Events[0].Unmetered) != 1 || res.Events[0].Unmetered[0] != "reasoning_tokens" {
		t.Errorf("unmetered measurements not reported: %+v", res.Events[0])
	}
	// The same event again is a duplicate; changed content is a conflict for the whole batch.
	if code := s.do("POST", "/v1/events", "", ev("e1", "req_1", 8000, 100), &res); code != 200 || res.Duplicates != 1 || res.Accepted != 0 {
		t.Errorf("duplicate: %d %+v", code, res)
	}
	var prob struct {
		Errors []struct {
			Index *int
			Field string
		}
	}
	if code := s.do("POST", "/v1/events", "", "["+ev("e3", "req_3", 1, 1)+","+ev("e1", "req_1", 9999, 100)+"]", &prob); code != 409 || len(prob.Errors) != 1 || *prob.Errors[0].Index != 1 {
		t.Errorf("conflict: %d %+v", code, prob)
	}

	var spend struct{ Spend, InvoiceTotal string }
	if code := s.do("GET", "/v1/customers/cust_abc/spend", "", "", &spend); code != 200 || spend.Spend != "0.0385" || spend.InvoiceTotal != "50.00" {
		t.Errorf("spend: %d %+v", code, spend)
	}
	preview := previewOf(t, s)
	checkAttribution(t, s, preview)

	// Restart on the same data: the ledger replays to the same figures.
	s.shutdown()
	s2 := startServer(t, data, nil)
	if got := previewOf(t, s2); got.PreciseTotal != preview.PreciseTotal || len(got.Lines) != len(preview.Lines) {
		t.Errorf("after restart: %+v, before %+v", got, preview)
	}
	var evOut struct {
		Lines []struct{ Charge, Amount string }
	}
	if code := s2.do("GET", "/v1/events/e2", "", "", &evOut); code != 200 || len(evOut.Lines) != 2 {
		t.Errorf("event e2: %d %+v", code, evOut)
	}
}

type previewDoc struct {
	PreciseTotal string
	Total        string
	Lines        []struct {
		Charge, Type, PreciseAmount, Attribution string
	}
}

func previewOf(t *testing.T, s *server) previewDoc {
	t.Helper()
	var p previewDoc
	if code := s.do("GET", "/v1/customers/cust_abc/invoice-preview", "", "", &p); code != 200 {
		t.Fatalf("preview: %d", code)
	}
	return p
}

// checkAttribution follows every line's attribution link, page by page, and checks the shares
// add up exactly to the line.
func checkAttribution(t *testing.T, s *server, p previewDoc) {
	t.Helper()
	linked := 0
	for _, l := range p.Lines {
		if l.Attribution == "" {
			continue
		}
		linked++
		sum := money.Zero
		next := ""
		for pages := 0; ; pages++ {
			var page struct {
				Items []struct{ CorrelationID, PreciseAmount string }
				Next  string
			}
			path := l.Attribution + "&limit=1"
			if next != "" {
				path += "&after=" + next
			}
			if code := s.do("GET", path, "", "", &page); code != 200 {
				t.Fatalf("attribution %s: %d", path, code)
			}
			for _, it := range page.Items {
				sum = sum.Add(money.MustParse(it.PreciseAmount))
			}
			if page.Next == "" || pages > 10 {
				break
			}
			next = page.Next
		}
		if !sum.Equal(money.MustParse(l.PreciseAmount)) {
			t.Errorf("line %s: attribution sums to %s, line is %s", l.Charge, sum, l.PreciseAmount)
		}
	}
	if linked == 0 {
		t.Error("no line had an attribution link")
	}
}

func itoa(n int) string { return money.QtyInt(int64(n)).String() }

// TestClientCommands drives `levy apply` and `levy keys` against a running server: a key made
// with the ingest scope can post events but not read them, and a revoked key is refused.
func TestClientCommands(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, nil)
	catPath := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(catPath, []byte(testCatalog), 0o600)
	client := []string{"--url", s.url, "--data", data}

	code, out, stderr := runCLI(t, append([]string{"apply", "-f", catPath}, client...)...)
	if code != 0 || !strings.Contains(out, "catalog version 1 applied") || !strings.Contains(out, "plan pro") {
		t.Fatalf("apply: %d %q %q", code, out, stderr)
	}
	code, out, stderr = runCLI(t, append([]string{"keys", "create", "--name", "gateway", "--scopes", "ingest"}, client...)...)
	if code != 0 {
		t.Fatalf("keys create: %d %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	id := strings.Fields(lines[0])[1]
	if !strings.HasPrefix(secret, "levy_") || !strings.HasPrefix(id, "key_") {
		t.Fatalf("keys create printed %q", out)
	}
	s.do("PUT", "/v1/customers/c1", "application/json", `{"plan":"pro"}`, nil)
	post := func(key string) int {
		req, _ := http.NewRequest("POST", s.url+"/v1/events", strings.NewReader(`{"id":"k1","eventType":"x","customerId":"c1","measurements":[]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(key string) int {
		req, _ := http.NewRequest("GET", s.url+"/v1/events/k1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(secret); c != 200 {
		t.Errorf("ingest key posting: %d", c)
	}
	if c := get(secret); c != 403 {
		t.Errorf("ingest key reading: %d, want 403", c)
	}
	code, out, _ = runCLI(t, append([]string{"keys", "list"}, client...)...)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "gateway") || strings.Contains(out, secret) {
		t.Errorf("keys list: %d %q", code, out)
	}
	if code, _, stderr = runCLI(t, append([]string{"keys", "revoke", id}, client...)...); code != 0 {
		t.Fatalf("revoke: %s", stderr)
	}
	if c := post(secret); c != 401 {
		t.Errorf("revoked key: %d, want 401", c)
	}
	if code, _, stderr = runCLI(t, append([]string{"keys", "create", "--name", "x", "--scopes", "root"}, client...)...); code != 1 || !strings.Contains(stderr, "scopes") {
		t.Errorf("bad scope: %d %q", code, stderr)
	}
}
