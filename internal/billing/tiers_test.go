package billing

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/usage"
)

const ladderCatalog = `currency: USD
meters: [{key: tokens}]
plans:
  - key: payg
    limits: {requestsPerMinute: 60}
    charges:
      - {key: tok, meter: tokens, model: perUnit, unitPrice: "1.00", per: 1000}
tiers:
  basis: periodSpend
  ladder:
    - {key: free, threshold: "0"}
    - {key: build, threshold: "5"}
    - {key: scale, threshold: "50", discount: "10", limitMultiplier: "4"}
    - {key: enterprise, manual: true, limits: {requestsPerMinute: 10000}}
`

func setupLadder(t *testing.T, f *fixture, catalog string, customers ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.ApplyCatalog(ctx, []byte(catalog)); err != nil {
		t.Fatal(err)
	}
	for _, c := range customers {
		if _, err := f.svc.PutCustomer(ctx, c, CustomerInput{Plan: "payg"}); err != nil {
			t.Fatal(err)
		}
	}
}

func transitions(t *testing.T, f *fixture, customer string) []TransitionJSON {
	t.Helper()
	page, err := f.svc.TierTransitions(context.Background(), customer, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}

func describe(ts []TransitionJSON) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s→%s(%s,%s)", t.From, t.To, t.Reason, t.EventID))
	}
	return strings.Join(parts, " ")
}

// TestTierSeveralThresholdsInOneEvent: one event crossing two thresholds records two
// promotions, each once, naming the event; the next event is rated at the new tier's discount
// and duplicates of both change nothing.
func TestTierSeveralThresholdsInOneEvent(t *testing.T) {
	f := newFixture(t, "", Options{})
	setupLadder(t, f, ladderCatalog, "c1")
	nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	big := event("big", "c1", nov, 60_000) // $60: past build ($5) and scale ($50)
	big.CorrelationID = "req_big"
	r := ingest(t, f, big)
	if r.Events[0].Amount != "60" {
		t.Fatalf("the promoting event was rated %s, want 60 (at the tier it was in)", r.Events[0].Amount)
	}
	if got, want := describe(transitions(t, f, "c1")), "free→build(promotion,big) build→scale(promotion,big)"; got != want {
		t.Fatalf("transitions = %s, want %s", got, want)
	}
	ts := transitions(t, f, "c1")
	if ts[1].CorrelationID != "req_big" || ts[1].Spend != "60" || ts[1].EventSeq == 0 {
		t.Errorf("transition does not name its event: %+v", ts[1])
	}
	r = ingest(t, f, event("next", "c1", nov.Add(time.Minute), 1000))
	if r.Events[0].Amount != "0.9" {
		t.Errorf("after promotion to scale (10%% off), a $1 event was rated %s, want 0.9", r.Events[0].Amount)
	}
	// Retries of both events: duplicates, no new transitions.
	r = ingest(t, f, big, event("next", "c1", nov.Add(time.Minute), 1000))
	if r.Duplicates != 2 {
		t.Fatalf("duplicates = %d, want 2", r.Duplicates)
	}
	if n := len(transitions(t, f, "c1")); n != 2 {
		t.Errorf("after retries, %d transitions, want 2", n)
	}
	st, err := f.svc.Tier(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Tier != "scale" || st.BasisSpend != "60.9" || st.Limits["requestsPerMinute"] != "240" {
		t.Errorf("tier status = %+v, want scale at 60.9 with 4×60 requests per minute", st)
	}
	// The discount is an invoice line of its own, attributed to the event.
	iv, err := f.svc.InvoicePreview(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range iv.Lines {
		if l.Type == "discount" {
			found = true
			if l.Charge != "tier:scale" || l.PreciseAmount != "-0.1" || l.Quantity != "1" || l.Attribution == "" {
				t.Errorf("discount line = %+v", l)
			}
		}
	}
	if !found || iv.PreciseTotal != "60.9" {
		t.Errorf("preview total %s, lines %+v: want 60.9 with a discount line", iv.PreciseTotal, iv.Lines)
	}
	// A restart rebuilds the same state from the ledger.
	path := f.path
	f.close()
	g := newFixture(t, path, Options{})
	st2, err := g.svc.Tier(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st2.Tier != st.Tier || st2.BasisSpend != st.BasisSpend {
		t.Errorf("after restart tier = %+v, want %+v", st2, st)
	}
	iv2, err := g.svc.InvoicePreview(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if iv2.PreciseTotal != iv.PreciseTotal || len(iv2.Lines) != len(iv.Lines) {
		t.Errorf("after restart preview = %+v, want %+v", iv2, iv)
	}
}

// TestTierConcurrentAroundThreshold: many concurrent requests, each crossing or not crossing
// the threshold depending on the order, with duplicates, record the promotion exactly once.
func TestTierConcurrentAroundThreshold(t *testing.T) {
	f := newFixture(t, "", Options{})
	setupLadder(t, f, ladderCatalog, "c1")
	nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ingest(t, f, event("base", "c1", nov, 4_500)) // $4.50: just under build
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 { // each event sent three times, concurrently with the others
				_, err := f.svc.Ingest(context.Background(), []usage.Event{event(fmt.Sprintf("e%d", i), "c1", nov.Add(time.Duration(i)*time.Second), 100)})
				if err != nil {
					t.Errorf("ingest %d/%d: %v", i, j, err)
				}
			}
		}()
	}
	wg.Wait()
	ts := transitions(t, f, "c1")
	if len(ts) != 1 || ts[0].To != "build" {
		t.Fatalf("transitions = %s, want exactly one promotion to build", describe(ts))
	}
	st, _ := f.svc.Tier(context.Background(), "c1")
	if st.BasisSpend != "6.1" {
		t.Errorf("basis spend = %s, want 6.1 (4.50 + 16 × 0.10, each event once)", st.BasisSpend)
	}
}

// TestTierPeriodReset: a new period demotes on the periodSpend basis (recorded once, with the
// first event of the period) and not on lifetimeSpend.
func TestTierPeriodReset(t *testing.T) {
	for _, basis := range []string{"periodSpend", "lifetimeSpend"} {
		t.Run(basis, func(t *testing.T) {
			f := newFixture(t, "", Options{})
			setupLadder(t, f, strings.Replace(ladderCatalog, "basis: periodSpend", "basis: "+basis, 1), "c1")
			nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
			ingest(t, f, event("nov", "c1", nov, 10_000)) // $10: build
			f.clock.Set(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
			dec := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			ingest(t, f, event("dec1", "c1", dec, 1_000), event("dec2", "c1", dec.Add(time.Hour), 1_000))
			got := describe(transitions(t, f, "c1"))
			want := "free→build(promotion,nov)"
			if basis == "periodSpend" {
				want += " build→free(period_reset,dec1)"
			}
			if got != want {
				t.Errorf("transitions = %s, want %s", got, want)
			}
			st, err := f.svc.Tier(context.Background(), "c1")
			if err != nil {
				t.Fatal(err)
			}
			wantTier, wantBasis := "free", "2"
			if basis == "lifetimeSpend" {
				wantTier, wantBasis = "build", "12"
			}
			if st.Tier != wantTier || st.BasisSpend != wantBasis {
				t.Errorf("tier = %s at %s, want %s at %s", st.Tier, st.BasisSpend, wantTier, wantBasis)
			}
		})
	}
}

// TestTierOverride: an override set by hand wins over the ladder, is recorded once, and
// clearing it returns the customer to the ladder.
func TestTierOverride(t *testing.T) {
	f := newFixture(t, "", Options{})
	setupLadder(t, f, ladderCatalog, "c1")
	ctx := context.Background()
	ent := "enterprise"
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{TierOverride: &ent}); err != nil {
		t.Fatal(err)
	}
	nov := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ingest(t, f, event("e1", "c1", nov, 60_000))
	if got, want := describe(transitions(t, f, "c1")), "free→enterprise(override,)"; got != want {
		t.Errorf("transitions = %s, want %s (spend moves nobody under an override)", got, want)
	}
	st, _ := f.svc.Tier(ctx, "c1")
	if st.Tier != "enterprise" || st.Limits["requestsPerMinute"] != "10000" {
		t.Errorf("tier = %+v", st)
	}
	bad := "platinum"
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{TierOverride: &bad}); err == nil || !strings.Contains(err.Error(), "tierOverride") {
		t.Errorf("unknown override: err = %v, want one naming tierOverride", err)
	}
	none := ""
	if _, err := f.svc.PutCustomer(ctx, "c1", CustomerInput{TierOverride: &none}); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(transitions(t, f, "c1")), "free→enterprise(override,) enterprise→scale(override,)"; got != want {
		t.Errorf("transitions = %s, want %s", got, want)
	}
}
