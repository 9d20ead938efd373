package main

import (
	"os"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
)

// TestQuickstart runs the README's quickstart, steps 1 to 9, against the real server on the
// embedded store with the example catalog: the same requests, checked for the answers the
// README promises.
func TestQuickstart(t *testing.T) {
	catalog, err := os.ReadFile("../../examples/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), nil)
	if code := s.do("PUT", "/v1/catalog", "application/yaml", string(catalog), nil); code != 200 {
		t.Fatalf("1. apply: %d", code)
	}
	if code := s.do("PUT", "/v1/customers/cust_abc", "application/json", `{"plan": "payg"}`, nil); code != 200 {
		t.Fatalf("2. customer: %d", code)
	}
	var ing struct {
		Accepted int
		Events   []struct{ Amount string }
	}
	if code := s.do("POST", "/v1/events", "application/json", `{"id": "evt_01", "eventType": "llm.completion", "customerId": "cust_abc",
       "properties": {"model": "claude-sonnet-4-6", "requestType": "standard"},
       "measurements": [{"metricKey": "input_tokens", "value": 1500},
                        {"metricKey": "output_tokens", "value": 800},
                        {"metricKey": "cache_read_tokens", "value": 500}],
       "correlationId": "req_abc123"}`, &ing); code != 200 || ing.Accepted != 1 {
		t.Fatalf("3. event: %d %+v", code, ing)
	}
	if code := s.do("GET", "/v1/customers/cust_abc/spend", "", "", nil); code != 200 {
		t.Fatalf("4. spend: %d", code)
	}
	checkAttribution(t, s, previewOf(t, s)) // 4 and 5
	var grant struct{ ID, Remaining string }
	if code := s.do("POST", "/v1/customers/cust_abc/wallet/grants", "application/json", `{"id": "welcome", "amount": "10.00", "kind": "promotional"}`, &grant); code != 201 || grant.Remaining != "10" {
		t.Fatalf("6. grant: %d %+v", code, grant)
	}
	var dec struct{ Decision, ReservationID string }
	if code := s.do("POST", "/v1/authorize", "application/json", `{"customerId": "cust_abc", "model": "claude-sonnet-4-6", "estimatedInputTokens": 1500,
       "maxOutputTokens": 1024, "correlationId": "req_abc124"}`, &dec); code != 200 || dec.Decision != "ALLOW" || dec.ReservationID == "" {
		t.Fatalf("7. authorize: %d %+v", code, dec)
	}
	var lim struct {
		OpenReservations int
		Reservations     []struct{ ID, CorrelationID string }
	}
	if code := s.do("GET", "/v1/customers/cust_abc/limits", "", "", &lim); code != 200 || lim.OpenReservations != 1 || len(lim.Reservations) != 1 {
		t.Fatalf("7. limits after authorize: %d %+v, want the one open reservation", code, lim)
	}
	if code := s.do("POST", "/v1/events", "application/json", `{"id": "evt_02", "eventType": "llm.completion", "customerId": "cust_abc",
       "properties": {"model": "claude-sonnet-4-6"},
       "measurements": [{"metricKey": "input_tokens", "value": 1500},
                        {"metricKey": "output_tokens", "value": 400}],
       "correlationId": "req_abc124"}`, &ing); code != 200 || ing.Accepted != 1 {
		t.Fatalf("8. event: %d %+v", code, ing)
	}
	var w struct{ Available string }
	if code := s.do("GET", "/v1/customers/cust_abc/wallet", "", "", &w); code != 200 {
		t.Fatalf("9. wallet: %d", code)
	}
	if want := money.MustParse("10").Sub(money.MustParse(ing.Events[0].Amount)); !money.MustParse(w.Available).Equal(want) {
		t.Errorf("9. wallet available %s, want 10 − %s = %s", w.Available, ing.Events[0].Amount, want)
	}
	// The counters apply the event just after it is committed: wait for the settlement.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lim.OpenReservations, lim.Reservations = -1, nil
		code := s.do("GET", "/v1/customers/cust_abc/limits", "", "", &lim)
		if code == 200 && lim.OpenReservations == 0 && len(lim.Reservations) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("9. limits: %d %+v (the event should have settled the reservation)", code, lim)
		}
	}
	var tier struct{ CustomerID string }
	if code := s.do("GET", "/v1/customers/cust_abc/tier", "", "", &tier); code != 200 || tier.CustomerID != "cust_abc" {
		t.Errorf("9. tier: %d %+v", code, tier)
	}
}
