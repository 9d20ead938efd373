package levymw_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/levyhq/levy/internal/forwardauth/authtest"
	"github.com/levyhq/levy/pkg/levymw"
)

// exampleTB runs an example's setup: a failure ends the program, cleanups run at the end.
type exampleTB struct {
	dirs     []string
	cleanups []func()
}

func (e *exampleTB) Helper() {}
func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "levymw-example-")
	if err != nil {
		panic(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}
func (e *exampleTB) Cleanup(f func())                  { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (e *exampleTB) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}

// startLevy starts a real Levy server in process (SQLite store, in-memory counters) whose
// customer cust_42 may make 3 requests a minute, and returns its URL and a service key with the
// authorize scope.
func startLevy() (url, key string, stop func()) {
	tb := &exampleTB{}
	l := authtest.Start(tb, "")
	l.Customer(tb, "cust_42", "limited")
	key = l.Key(tb, "billing-service", "authorize")
	return l.ServeAPI(tb), key, tb.close
}

// A service guards its LLM endpoint with Levy: three calls pass, the fourth within the minute
// is refused with 429 and Retry-After, before any tokens are spent.
func Example() {
	levyURL, levyKey, stop := startLevy()
	defer stop()

	levy, err := levymw.New(levymw.Config{
		URL:    levyURL,
		APIKey: levyKey,
		// Who is calling and what the call may cost: here the customer comes from a header your
		// own authentication has checked; the token bounds from the request.
		Describe: func(r *http.Request) (levymw.Request, error) {
			return levymw.Request{CustomerID: r.Header.Get("X-Customer"), Model: "gpt-5-mini",
				EstimatedInputTokens: 500, MaxOutputTokens: 1000}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	summarize := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := levymw.FromContext(r.Context())
		// Call the model here; its usage event carries d.CorrelationID to settle d.ReservationID.
		// A call that ends up not using the model gives its reservation back:
		//   levymw.Release(r.Context())
		fmt.Fprintf(w, "summary for %s (reservation held: %t)", d.CustomerID, strings.HasPrefix(d.ReservationID, "rsv_"))
	})
	srv := httptest.NewServer(levy.Middleware(summarize))
	defer srv.Close()

	for range 4 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/summarize", nil)
		req.Header.Set("X-Customer", "cust_42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d remaining=%s retry-after=%q %s\n", resp.StatusCode,
			resp.Header.Get("X-RateLimit-Remaining"), resp.Header.Get("Retry-After"), strings.TrimSpace(string(body)))
	}
	// Output:
	// 200 remaining=2 retry-after="" summary for cust_42 (reservation held: true)
	// 200 remaining=1 retry-after="" summary for cust_42 (reservation held: true)
	// 200 remaining=0 retry-after="" summary for cust_42 (reservation held: true)
	// 429 remaining=0 retry-after="20" {"error":{"reason":"requests_per_minute","retryAfterSeconds":20,"type":"rate_limited"}}
}
