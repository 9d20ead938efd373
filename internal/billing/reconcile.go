package billing

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// Drift is one counter that disagrees with the ledger.
type Drift struct {
	CustomerID string `json:"customerId"`
	// Counter names the counter: "lifetimeSpend", "tier", "wallet:<grant>", or
	// "period:<planVersion>:<start>:spend|events|usage:<meter>".
	Counter string `json:"counter"`
	Ledger  string `json:"ledger"`
	Store   string `json:"store"`
}

// CounterCheck reports a comparison of the counter store with the ledger.
type CounterCheck struct {
	Customers int     `json:"customers"`
	Drifted   int     `json:"drifted"`
	Lagging   int     `json:"lagging"`
	Repaired  int     `json:"repaired"`
	Drifts    []Drift `json:"drifts"`
}

// expected holds a customer's counters as the ledger implies them, up to some sequence number.
type expected struct {
	events []*store.EventRecord
	grants []store.Grant
	tier   string
	maxSeq int64
}

func (s *Service) loadExpected(ctx context.Context, customerID string) (*expected, error) {
	e := &expected{}
	err := s.store.ScanEvents(ctx, store.ScanParams{CustomerID: customerID}, func(r *store.EventRecord) error {
		c := *r
		e.events = append(e.events, &c)
		e.maxSeq = max(e.maxSeq, r.Seq)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if e.grants, err = s.store.ListGrants(ctx, customerID); err != nil {
		return nil, err
	}
	if e.tier, err = s.storedTier(ctx, customerID); err != nil {
		return nil, err
	}
	return e, nil
}

// params returns the counters the ledger implies after applying every event up to seq: what a
// rebuild writes and what a check compares. Periods whose counters the store no longer keeps
// (ended more than the retention ago) are left out.
func (s *Service) rebuildParams(ctx context.Context, customerID string, e *expected, upTo int64) (counter.RebuildParams, error) {
	p := counter.RebuildParams{CustomerID: customerID, Tier: e.tier, Periods: map[counter.PeriodRef]counter.PeriodCounters{}}
	grants := map[string]counter.GrantCounter{}
	for _, g := range e.grants {
		n, ok := money.ToNanos(g.Amount)
		if !ok {
			return p, fmt.Errorf("grant %q: amount %s does not fit the counter store", g.ID, g.Amount)
		}
		gc := counter.GrantCounter{Nanos: n}
		if g.ExpiresAt != nil {
			gc.ExpiresAt = *g.ExpiresAt
		}
		grants[g.ID] = gc
	}
	horizon := s.now().Add(-counter.DefaultRetention)
	for _, r := range e.events {
		if r.Seq > upTo {
			break
		}
		ap, err := s.counterParams(ctx, r)
		if err != nil {
			return p, err
		}
		p.Watermark = r.Seq
		p.LifetimeSpendNanos += ap.SpendNanos
		for id, n := range ap.Wallet {
			gc := grants[id]
			gc.Nanos -= n
			grants[id] = gc
		}
		if !r.PeriodEnd.After(horizon) {
			continue
		}
		pc := p.Periods[ap.Period]
		pc.SpendNanos += ap.SpendNanos
		pc.Events += ap.Events
		for k, v := range ap.Usage {
			if pc.Usage == nil {
				pc.Usage = map[string]int64{}
			}
			pc.Usage[k] += v
		}
		p.Periods[ap.Period] = pc
	}
	for k, pc := range p.Periods {
		for m, v := range pc.Usage {
			if v == 0 {
				delete(pc.Usage, m)
			}
		}
		p.Periods[k] = pc
	}
	if len(grants) > 0 {
		p.Grants = grants
	}
	return p, nil
}

// CheckCounters compares the counter store with the ledger for one customer (or, with an empty
// ID, every customer) and, with repair, rebuilds the customers that drifted. A customer whose
// counters only lag the ledger (their watermark is below its last event: the applier has not
// reached them yet) is counted as lagging, not drifted, and compared up to the watermark.
func (s *Service) CheckCounters(ctx context.Context, customerID string, repair bool) (CounterCheck, error) {
	if s.counters == nil {
		return CounterCheck{}, problem.New(problem.Unavailable, "this server has no counter store")
	}
	var out CounterCheck
	check := func(id string) error {
		drifts, lagging, err := s.checkCustomer(ctx, id)
		if err != nil {
			return fmt.Errorf("check counters of %q: %w", id, err)
		}
		out.Customers++
		if lagging {
			out.Lagging++
		}
		if len(drifts) == 0 {
			return nil
		}
		out.Drifted++
		out.Drifts = append(out.Drifts, drifts...)
		if repair {
			if err := s.RebuildCounters(ctx, id); err != nil {
				return err
			}
			out.Repaired++
		}
		return nil
	}
	if customerID != "" {
		if c, err := s.cachedCustomer(ctx, customerID); err != nil {
			return out, err
		} else if c == nil {
			return out, problem.New(problem.NotFound, "no customer %q", customerID)
		}
		if err := check(customerID); err != nil {
			return out, err
		}
	} else if err := s.eachCustomer(ctx, func(c store.Customer) error { return check(c.ID) }); err != nil {
		return out, err
	}
	if m := s.opts.Metrics; m != nil {
		m.CounterDrift.Set(float64(out.Drifted))
	}
	return out, nil
}

func (s *Service) eachCustomer(ctx context.Context, fn func(store.Customer) error) error {
	after := ""
	for {
		cs, err := s.store.ListCustomers(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(cs) < 500 {
			return nil
		}
		after = cs[len(cs)-1].ID
	}
}

func (s *Service) checkCustomer(ctx context.Context, id string) ([]Drift, bool, error) {
	e, err := s.loadExpected(ctx, id)
	if err != nil {
		return nil, false, err
	}
	// Read the open period first: its snapshot's watermark bounds the comparison of everything.
	want, err := s.rebuildParams(ctx, id, e, e.maxSeq)
	if err != nil {
		return nil, false, err
	}
	refs := make([]counter.PeriodRef, 0, len(want.Periods)+1)
	for ref := range want.Periods {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Start.After(refs[j].Start) })
	if len(refs) == 0 {
		refs = append(refs, counter.PeriodRef{PlanVersionID: 0, Start: time.Unix(0, 0), End: time.Unix(1, 0)})
	}
	var drifts []Drift
	add := func(name string, ledger, st string) {
		if ledger != st {
			drifts = append(drifts, Drift{CustomerID: id, Counter: name, Ledger: ledger, Store: st})
		}
	}
	lagging := false
	for i, ref := range refs {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		snap, err := s.counters.Snapshot(cctx, id, ref)
		cancel()
		if err != nil {
			return nil, false, err
		}
		if snap.Watermark > e.maxSeq {
			add("watermark", strconv.FormatInt(e.maxSeq, 10), strconv.FormatInt(snap.Watermark, 10))
			return drifts, false, nil
		}
		if snap.Watermark < e.maxSeq {
			lagging = true
		}
		w, err := s.rebuildParams(ctx, id, e, snap.Watermark)
		if err != nil {
			return nil, false, err
		}
		if i == 0 {
			add("lifetimeSpend", nanos(w.LifetimeSpendNanos), nanos(snap.LifetimeSpendNanos))
			if !lagging {
				add("tier", w.Tier, snap.Tier)
			}
			ids := map[string]bool{}
			for g := range w.Grants {
				ids[g] = true
			}
			for g := range snap.Grants {
				ids[g] = true
			}
			for g := range ids {
				add("wallet:"+g, nanos(w.Grants[g].Nanos), nanos(snap.Grants[g].Nanos))
			}
		}
		if ref.PlanVersionID == 0 {
			continue
		}
		pc := w.Periods[ref]
		name := fmt.Sprintf("period:%d:%s:", ref.PlanVersionID, ref.Start.UTC().Format(time.RFC3339))
		add(name+"spend", nanos(pc.SpendNanos), nanos(snap.Period.SpendNanos))
		add(name+"events", strconv.FormatInt(pc.Events, 10), strconv.FormatInt(snap.Period.Events, 10))
		meters := map[string]bool{}
		for m := range pc.Usage {
			meters[m] = true
		}
		for m := range snap.Period.Usage {
			meters[m] = true
		}
		for m := range meters {
			add(name+"usage:"+m, strconv.FormatInt(pc.Usage[m], 10), strconv.FormatInt(snap.Period.Usage[m], 10))
		}
	}
	sort.Slice(drifts, func(i, j int) bool { return drifts[i].Counter < drifts[j].Counter })
	return drifts, lagging, nil
}

func nanos(n int64) string { return money.FromNanos(n).String() }

// RebuildCounters replaces one customer's counters (or, with an empty ID, every customer's) with
// what the ledger implies.
func (s *Service) RebuildCounters(ctx context.Context, customerID string) error {
	if s.counters == nil {
		return problem.New(problem.Unavailable, "this server has no counter store")
	}
	one := func(id string) error {
		e, err := s.loadExpected(ctx, id)
		if err != nil {
			return err
		}
		p, err := s.rebuildParams(ctx, id, e, e.maxSeq)
		if err != nil {
			return err
		}
		if err := s.counters.Rebuild(ctx, p); err != nil {
			return fmt.Errorf("rebuild counters of %q: %w", id, err)
		}
		return nil
	}
	if customerID != "" {
		if c, err := s.cachedCustomer(ctx, customerID); err != nil {
			return err
		} else if c == nil {
			return problem.New(problem.NotFound, "no customer %q", customerID)
		}
		return one(customerID)
	}
	return s.eachCustomer(ctx, func(c store.Customer) error { return one(c.ID) })
}

// RunReconciler compares every customer's counters with the ledger every interval until ctx
// is done, exporting the number of drifted customers (levy_counter_drift_customers) and, with
// repair, rebuilding them. It skips a run while the counters are catching up.
func (s *Service) RunReconciler(ctx context.Context, every time.Duration, repair bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, ok := s.CounterStatus(); !ok || st.Behind {
			continue
		}
		res, err := s.CheckCounters(ctx, "", repair)
		if m := s.opts.Metrics; m != nil {
			m.CounterChecks.Inc()
		}
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("counters: reconcile", "err", err)
		case res.Drifted > 0:
			s.log.Warn("counters: drift from the ledger", "customers", res.Drifted, "repaired", res.Repaired, "first", res.Drifts[0])
		}
	}
}
