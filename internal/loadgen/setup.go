package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Plan is the key of the plan Catalog defines and Setup subscribes customers to.
const Plan = "bench"

// Catalog is the catalog Setup applies: a meter per measurement of the generated events, a cost
// book for one model and one plan pricing every model through price tables, input tokens in
// graduated tiers (so running totals cross tier boundaries while a run goes on), with a flat
// fee and a minimum commitment. Reasoning tokens are metered but not priced (they are part of
// the output tokens).
const Catalog = `currency: USD
meters:
  - {key: input_tokens}
  - {key: output_tokens}
  - {key: cache_read_tokens}
  - {key: cache_write_5m_tokens}
  - {key: reasoning_tokens}
costs:
  - {meter: input_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "3.00", per: 1000000}
  - {meter: output_tokens, filter: {model: claude-sonnet-4-6}, unitCost: "15.00", per: 1000000}
plans:
  - key: bench
    period: month
    minimumCommitment: "25.00"
    charges:
      - {key: platform, model: flat, amount: "10.00"}
      - key: input
        meter: input_tokens
        model: graduated
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {tiers: [{upTo: 2000000, unitPrice: "3.60"}, {unitPrice: "3.00"}]}
          claude-haiku-4-5: {tiers: [{upTo: 2000000, unitPrice: "1.20"}, {unitPrice: "1.00"}]}
          gpt-5: {tiers: [{upTo: 2000000, unitPrice: "1.50"}, {unitPrice: "1.25"}]}
          gpt-5-mini: {tiers: [{upTo: 2000000, unitPrice: "0.30"}, {unitPrice: "0.25"}]}
        defaultPrice: {tiers: [{upTo: 2000000, unitPrice: "6.00"}, {unitPrice: "5.00"}]}
      - key: output
        meter: output_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {unitPrice: "18.00"}
          claude-haiku-4-5: {unitPrice: "6.00"}
          gpt-5: {unitPrice: "12.00"}
          gpt-5-mini: {unitPrice: "2.40"}
        defaultPrice: {unitPrice: "30.00"}
      - key: cache_read
        meter: cache_read_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {unitPrice: "0.36"}
          claude-haiku-4-5: {unitPrice: "0.12"}
          gpt-5: {unitPrice: "0.15"}
          gpt-5-mini: {unitPrice: "0.03"}
        defaultPrice: {unitPrice: "0.60"}
      - key: cache_write
        meter: cache_write_5m_tokens
        model: perUnit
        per: 1000000
        priceBy: model
        prices:
          claude-sonnet-4-6: {unitPrice: "4.50"}
          claude-haiku-4-5: {unitPrice: "1.50"}
        defaultPrice: {unitPrice: "0"}
`

// CustomerIDs returns n customer IDs: prefix followed by 1…n, zero-padded to 4 digits.
func CustomerIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%04d", prefix, i+1)
	}
	return ids
}

// SetupOptions says what Setup creates.
type SetupOptions struct {
	// Catalog is the catalog document to apply (YAML or JSON); empty means Catalog.
	Catalog string
	// Plan is the plan customers are subscribed to; empty means Plan.
	Plan string
	// Customers are created (or updated) on Plan.
	Customers []string
	// SubscriptionStart, when not zero, starts new subscriptions then instead of at the start
	// of the current calendar period.
	SubscriptionStart time.Time
	// Client sends the requests; nil means a default client.
	Client *http.Client
}

// Setup applies the catalog and puts every customer on the plan, through the API at baseURL
// with an admin key. Re-running it is harmless: an unchanged catalog creates no plan version
// and a customer already on the plan stays on its subscription.
func Setup(ctx context.Context, baseURL, key string, opts SetupOptions) error {
	if opts.Catalog == "" {
		opts.Catalog = Catalog
	}
	if opts.Plan == "" {
		opts.Plan = Plan
	}
	c := opts.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	base := strings.TrimRight(baseURL, "/")
	if err := call(ctx, c, key, http.MethodPut, base+"/v1/catalog", "application/yaml", []byte(opts.Catalog)); err != nil {
		return fmt.Errorf("apply the catalog: %w", err)
	}
	in := map[string]any{"plan": opts.Plan}
	if !opts.SubscriptionStart.IsZero() {
		in["subscriptionStart"] = opts.SubscriptionStart.UTC().Format(time.RFC3339Nano)
	}
	body, _ := json.Marshal(in)
	// Customers in parallel: each PUT is its own small transaction.
	ids := make(chan string)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := call(ctx, c, key, http.MethodPut, base+"/v1/customers/"+url.PathEscape(id), "application/json", body); err != nil {
					select {
					case errc <- fmt.Errorf("create customer %s: %w", id, err):
					default:
					}
				}
			}
		}()
	}
	for _, id := range opts.Customers {
		if len(errc) > 0 {
			break
		}
		ids <- id
	}
	close(ids)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func call(ctx context.Context, c *http.Client, key, method, u, ctype string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, sample(data))
	}
	return nil
}
