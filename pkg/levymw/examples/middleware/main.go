// Command middleware is a small service whose LLM endpoint is guarded by Levy through package
// levymw. Run a Levy server, then:
//
//	LEVY_URL=http://127.0.0.1:7070 LEVY_KEY=<a key with the authorize scope> go run ./pkg/levymw/examples/middleware
//	curl -s -X POST localhost:8080/v1/summarize -H 'X-Customer: cust_abc' -d 'some text'
//
// Once the customer's limits are used up, the service answers 429 with Retry-After before it
// spends anything on the model.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/levyhq/levy/pkg/levymw"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	failOpen := flag.Bool("fail-open", false, "allow requests when Levy cannot be reached")
	flag.Parse()

	levy, err := levymw.New(levymw.Config{
		URL:      os.Getenv("LEVY_URL"),
		APIKey:   os.Getenv("LEVY_KEY"),
		FailOpen: *failOpen,
		Describe: describe,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/summarize", levy.Middleware(http.HandlerFunc(summarize)))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// describe tells Levy who calls and what the call may cost. A real service takes the customer
// from its own authentication; this one trusts a header.
func describe(r *http.Request) (levymw.Request, error) {
	customer := r.Header.Get("X-Customer")
	if customer == "" {
		return levymw.Request{}, &levymw.Error{Status: http.StatusUnauthorized, Detail: "send X-Customer"}
	}
	// About 3 bytes a token leans high for English; the output is capped at 1,024 tokens.
	input := (max(r.ContentLength, 0) + 2) / 3
	return levymw.Request{CustomerID: customer, Model: "gpt-5-mini", EstimatedInputTokens: input, MaxOutputTokens: 1024,
		TaskID: r.Header.Get("X-Task-Id")}, nil
}

func summarize(w http.ResponseWriter, r *http.Request) {
	d, _ := levymw.FromContext(r.Context())
	if r.ContentLength == 0 {
		// Nothing to send to the model: give the reservation back.
		if _, err := levymw.Release(r.Context()); err != nil {
			log.Printf("release: %v", err)
		}
		http.Error(w, "empty body", http.StatusBadRequest)
		return
	}
	// Call the model here. Its usage event, sent to Levy's POST /v1/events, carries
	// correlationId = d.CorrelationID, which settles d.ReservationID.
	fmt.Fprintf(w, "summary for %s (correlation %s, tier %q, fail-open %t)\n", d.CustomerID, d.CorrelationID, d.Tier, d.FailOpen)
}
