package forwardauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/levyhq/levy/internal/authorize"
	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/problem"
)

// nobody is a resolver and authorizer for tests of reading only.
type nobody struct{}

func (nobody) Customer(context.Context, string) (string, error) { return "", errors.New("unused") }
func (nobody) Authorize(context.Context, authorize.Request) (authorize.Result, error) {
	return authorize.Result{}, errors.New("unused")
}

func newTestChecker(t testing.TB, mutate func(*Config)) *Checker {
	t.Helper()
	cfg := Config{Customers: nobody{}, Authorizer: nobody{}}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestReadHeaders(t *testing.T) {
	c := newTestChecker(t, nil)
	for _, tc := range []struct {
		name string
		h    http.Header
		want Input
	}{
		{"bearer key and every figure", headers("Authorization", "Bearer levy_abc", HeaderModel, "gpt-5-mini",
			HeaderInputTokens, "1500", HeaderMaxTokens, "1024", HeaderCorrelationID, "req_1", HeaderTaskID, "run_42"),
			Input{APIKey: "levy_abc", Request: authorize.Request{Model: "gpt-5-mini", EstimatedInputTokens: 1500, MaxOutputTokens: 1024, CorrelationID: "req_1", TaskID: "run_42"}}},
		{"scheme is case-insensitive, spaces trimmed", headers("Authorization", "bEaReR   levy_abc  ", HeaderModel, " m ", HeaderInputTokens, " 7\t", HeaderCorrelationID, "c"),
			Input{APIKey: "levy_abc", Request: authorize.Request{Model: "m", EstimatedInputTokens: 7, MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"x-api-key when Authorization is not Bearer", headers("Authorization", "Basic dXNlcjpwYXNz", "X-Api-Key", "levy_k", HeaderModel, "m", HeaderCorrelationID, "c"),
			Input{APIKey: "levy_k", Request: authorize.Request{Model: "m", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"empty bearer falls back to x-api-key", headers("Authorization", "Bearer ", "X-Api-Key", "levy_k", HeaderModel, "m", HeaderCorrelationID, "c"),
			Input{APIKey: "levy_k", Request: authorize.Request{Model: "m", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"body bytes estimate input, rounded up", headers(HeaderModel, "m", HeaderBodyBytes, "3001", HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "m", EstimatedInputTokens: 1001, MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"explicit input wins over body bytes", headers(HeaderModel, "m", HeaderBodyBytes, "3001", HeaderInputTokens, "5", HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "m", EstimatedInputTokens: 5, MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"zero and the largest figure", headers(HeaderModel, "m", HeaderInputTokens, "0", HeaderMaxTokens, strconv.FormatInt(MaxTokens, 10), HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "m", EstimatedInputTokens: 0, MaxOutputTokens: MaxTokens, CorrelationID: "c"}}},
		{"leading zeros", headers(HeaderModel, "m", HeaderMaxTokens, "000012", HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "m", MaxOutputTokens: 12, CorrelationID: "c"}}},
		{"request id as correlation", headers(HeaderModel, "m", "X-Request-Id", "nginx-req-9"),
			Input{Request: authorize.Request{Model: "m", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "nginx-req-9"}}},
		{"correlation header wins over request id", headers(HeaderModel, "m", "X-Request-Id", "r", HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "m", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"the gateway's task header", headers(HeaderModel, "m", HeaderCorrelationID, "c", HeaderTaskIDAlt, "run_7"),
			Input{Request: authorize.Request{Model: "m", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c", TaskID: "run_7"}}},
		{"first value of a repeated header", headers(HeaderModel, "first", HeaderModel, "second", HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{Model: "first", MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
		{"no model and no default: left to Decide", headers(HeaderCorrelationID, "c"),
			Input{Request: authorize.Request{MaxOutputTokens: DefaultMaxOutputTokens, CorrelationID: "c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Read(tc.h, "")
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Read:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadBadHeaders(t *testing.T) {
	c := newTestChecker(t, nil)
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name   string
		h      http.Header
		fields []string
	}{
		{"negative", headers(HeaderInputTokens, "-1"), []string{HeaderInputTokens}},
		{"fraction", headers(HeaderMaxTokens, "1.5"), []string{HeaderMaxTokens}},
		{"exponent", headers(HeaderMaxTokens, "1e3"), []string{HeaderMaxTokens}},
		{"plus sign", headers(HeaderMaxTokens, "+3"), []string{HeaderMaxTokens}},
		{"blank figure", headers(HeaderMaxTokens, "  "), []string{HeaderMaxTokens}},
		{"past MaxTokens", headers(HeaderMaxTokens, strconv.FormatInt(MaxTokens+1, 10)), []string{HeaderMaxTokens}},
		{"past int64", headers(HeaderInputTokens, "99999999999999999999"), []string{HeaderInputTokens}},
		{"bad body bytes", headers(HeaderBodyBytes, "lots"), []string{HeaderBodyBytes}},
		{"long model", headers(HeaderModel, long), []string{HeaderModel}},
		{"control character in model", headers(HeaderModel, "gpt\x01"), []string{HeaderModel}},
		{"long correlation", headers(HeaderCorrelationID, long), []string{HeaderCorrelationID}},
		{"long request id names its header", headers("X-Request-Id", long), []string{"X-Request-Id"}},
		{"long task", headers(HeaderTaskID, long), []string{HeaderTaskID}},
		{"every problem at once", headers(HeaderInputTokens, "x", HeaderMaxTokens, "-2", HeaderModel, long, HeaderTaskIDAlt, long),
			[]string{HeaderModel, HeaderInputTokens, HeaderMaxTokens, HeaderTaskIDAlt}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Read(tc.h, "")
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Invalid {
				t.Fatalf("Read: %v, want an Invalid problem", err)
			}
			var got []string
			for _, f := range pe.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("fields %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestReadDefaultsAndConfig(t *testing.T) {
	c := newTestChecker(t, func(cfg *Config) {
		cfg.DefaultModel = "house-model"
		cfg.DefaultMaxOutputTokens = 256
		cfg.ModelAlias = strings.ToLower
		cfg.RequestIDHeaders = []string{"x-amzn-trace-id", "X-Request-Id"}
	})
	got, err := c.Read(headers("X-Request-Id", "second", "X-Amzn-Trace-Id", "first"), "")
	if err != nil {
		t.Fatal(err)
	}
	want := authorize.Request{Model: "house-model", MaxOutputTokens: 256, CorrelationID: "first"}
	if got.Request != want {
		t.Fatalf("got %+v, want %+v", got.Request, want)
	}
	got, err = c.Read(headers(HeaderModel, "GPT-5-Mini", "X-Request-Id", "r"), "")
	if err != nil || got.Request.Model != "gpt-5-mini" || got.Request.CorrelationID != "r" {
		t.Fatalf("alias: got %+v, %v", got.Request, err)
	}

	none := newTestChecker(t, func(cfg *Config) { cfg.RequestIDHeaders = []string{} })
	got, err = none.Read(headers(HeaderModel, "m", "X-Request-Id", "ignored"), "envoy-id")
	if err != nil || got.Request.CorrelationID != "envoy-id" || got.GeneratedCorrelation {
		t.Fatalf("fallback ID: got %+v, %v", got, err)
	}
}

func TestGeneratedCorrelation(t *testing.T) {
	c := newTestChecker(t, nil)
	a, err := c.Read(headers(HeaderModel, "m"), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Read(headers(HeaderModel, "m"), "")
	if !a.GeneratedCorrelation || !strings.HasPrefix(a.Request.CorrelationID, "fwd_") || len(a.Request.CorrelationID) != 4+32 {
		t.Fatalf("generated ID %+v", a)
	}
	if a.Request.CorrelationID == b.Request.CorrelationID {
		t.Fatalf("two checks got the same generated ID %s", a.Request.CorrelationID)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{DefaultMaxOutputTokens: -1, DefaultModel: "bad\x00", RequestIDHeaders: []string{"ok", "not a header"}}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"customers", "authorizer", "defaultMaxOutputTokens", "defaultModel", "requestIdHeaders[1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted a config without dependencies")
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true}, {"42", 42, true}, {" 42 ", 42, true}, {"\t1\t", 1, true},
		{strconv.FormatInt(MaxTokens, 10), MaxTokens, true},
		{"", 0, false}, {"-0", 0, false}, {"4 2", 0, false}, {"0x10", 0, false}, {"١٢", 0, false},
		{strconv.FormatInt(MaxTokens+1, 10), 0, false}, {"9223372036854775808", 0, false},
	} {
		n, ok := parseCount(tc.in)
		if n != tc.n || ok != tc.ok {
			t.Errorf("parseCount(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.ok)
		}
	}
}

// FuzzRead: reading never panics; a check it accepts is one authorize accepts (once a customer
// and a model are set), and an error is an Invalid problem naming the headers at fault.
func FuzzRead(f *testing.F) {
	f.Add("Bearer levy_k", "gpt-5-mini", "1500", "1024", "", "req_1", "run_1", "")
	f.Add("", "", "", "", "3001", "", "", "rid")
	f.Add("bearer", "m\x7f", "-1", "1e3", "x", strings.Repeat("c", 300), "", "")
	f.Add("Basic x", " ", " 0 ", "0009", "99999999999999999999", "", "\t", "")
	c := newTestChecker(f, nil)
	f.Fuzz(func(t *testing.T, auth, model, in, maxTok, bodyBytes, corr, task, rid string) {
		h := http.Header{}
		for k, v := range map[string]string{"Authorization": auth, HeaderModel: model, HeaderInputTokens: in,
			HeaderMaxTokens: maxTok, HeaderBodyBytes: bodyBytes, HeaderCorrelationID: corr, HeaderTaskID: task, "X-Request-Id": rid} {
			if v != "" {
				h.Set(k, v)
			}
		}
		got, err := c.Read(h, "")
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Invalid || len(pe.Fields) == 0 {
				t.Fatalf("Read error %v is not an Invalid problem naming fields", err)
			}
			for _, fl := range pe.Fields {
				if fl.Field == "" || h.Get(fl.Field) == "" {
					t.Fatalf("field %q names no header given (%v)", fl.Field, err)
				}
			}
			return
		}
		r := got.Request
		r.CustomerID = "cust"
		if r.Model == "" {
			r.Model = "m"
		}
		if verr := r.Validate(); verr != nil {
			t.Fatalf("Read accepted %+v, which authorize rejects: %v", got.Request, verr)
		}
		if r.CorrelationID == "" {
			t.Fatal("no correlation ID")
		}
	})
}

func TestApplyBody(t *testing.T) {
	c := newTestChecker(t, func(cfg *Config) { cfg.ModelAlias = strings.ToUpper; cfg.DefaultMaxOutputTokens = 300 })
	for _, tc := range []struct {
		name string
		body provider.Request
		want authorize.Request
	}{
		{"cap times choices", provider.Request{Model: "m", MaxOutputTokens: 500, Choices: 3, EstimatedInputTokens: 40},
			authorize.Request{Model: "M", MaxOutputTokens: 1500, EstimatedInputTokens: 40, CorrelationID: "c"}},
		{"no cap: the default, per choice", provider.Request{Model: "m", Choices: 2},
			authorize.Request{Model: "M", MaxOutputTokens: 600, CorrelationID: "c"}},
		{"zero choices read as one", provider.Request{Model: "m", MaxOutputTokens: 7},
			authorize.Request{Model: "M", MaxOutputTokens: 7, CorrelationID: "c"}},
		{"products past MaxTokens are capped", provider.Request{Model: "m", MaxOutputTokens: provider.MaxCount, Choices: provider.MaxCount, EstimatedInputTokens: MaxTokens + 5},
			authorize.Request{Model: "M", MaxOutputTokens: MaxTokens, EstimatedInputTokens: MaxTokens, CorrelationID: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Headers first: the body's figures replace theirs.
			in, err := c.Read(headers(HeaderModel, "header-model", HeaderMaxTokens, "1", HeaderInputTokens, "1", HeaderCorrelationID, "c"), "")
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyBody(&in, tc.body)
			if in.Request != tc.want {
				t.Fatalf("got %+v, want %+v", in.Request, tc.want)
			}
		})
	}
}

func TestQueryValue(t *testing.T) {
	for _, tc := range []struct {
		raw, v string
		ok     bool
	}{
		{"mode=nginx", "nginx", true}, {"a=1&mode=nginx&mode=x", "nginx", true}, {"m%6Fde=ng%69nx", "nginx", true},
		{"mode", "", true}, {"mode=", "", true}, {"", "", false}, {"modes=nginx", "", false}, {"a=1;mode=nginx", "", false},
	} {
		v, ok := queryValue(tc.raw, "mode")
		if v != tc.v || ok != tc.ok {
			t.Errorf("queryValue(%q) = %q, %v; want %q, %v", tc.raw, v, ok, tc.v, tc.ok)
		}
	}
}
