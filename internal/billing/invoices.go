package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/levyhq/levy/internal/invoice"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/rating"
	"github.com/levyhq/levy/internal/store"
)

// FinalInvoice is an issued invoice: the invoice document of a closed period with its number,
// the wallet credits applied and the amount due. It never changes once issued.
type FinalInvoice struct {
	ID       string    `json:"id"`
	Number   int64     `json:"number"`
	Status   string    `json:"status"`
	IssuedAt time.Time `json:"issuedAt"`
	invoice.Document
	// WalletCredits is the prepaid credit burned by the period's events, at most the total.
	WalletCredits string `json:"walletCredits"`
	// AmountDue is the total less the wallet credits.
	AmountDue string `json:"amountDue"`
}

// priced prices a period for an invoice: the plan's lines from the running state, the tier
// discount lines, the commitment true-up recomputed over both, then the adjustment lines of late
// events billed into the period. Adjustments belong to periods already invoiced, so they do not
// count towards this period's commitment. The caller holds ps locked.
func (s *Service) priced(ctx context.Context, ps *periodState, key store.PeriodKey) (rating.Priced, error) {
	base := ps.ref.rater.Price(ps.st)
	out := rating.Priced{Cost: base.Cost, Events: base.Events}
	total := money.Zero
	for _, l := range base.Lines {
		if l.Type == rating.LineCommitment {
			continue
		}
		out.Lines = append(out.Lines, l)
		total = total.Add(l.Amount)
	}
	charges := make([]string, 0, len(ps.discounts))
	for c := range ps.discounts {
		charges = append(charges, c)
	}
	sort.Strings(charges)
	for _, c := range charges {
		d := ps.discounts[c]
		out.Lines = append(out.Lines, rating.PricedLine{Charge: c, Type: rating.LineDiscount, Quantity: d.base, Amount: d.amount, Attributable: true})
		total = total.Add(d.amount)
	}
	if mc := ps.ref.plan.MinimumCommitment; mc != nil && total.LessThan(*mc) {
		out.Lines = append(out.Lines, rating.PricedLine{Charge: "minimumCommitment", Type: rating.LineCommitment, Amount: mc.Sub(total)})
		total = *mc
	}
	adj, err := s.store.Adjustments(ctx, key)
	if err != nil {
		return out, fmt.Errorf("adjustments: %w", err)
	}
	for _, a := range adj {
		out.Lines = append(out.Lines, rating.PricedLine{
			Charge: a.Charge, Group: a.Group, Type: rating.LineType(a.Type), Quantity: a.Quantity, Amount: a.Amount, Cost: a.Cost,
			Attributable: true, Adjusts: &rating.AdjustedPeriod{PlanVersionID: a.Rated.PlanVersionID, Start: a.Rated.Start, End: a.Rated.End},
		})
		total = total.Add(a.Amount)
		out.Cost = out.Cost.Add(a.Cost)
		out.Events += a.Events
	}
	out.Total = total
	return out, nil
}

// document renders a period's invoice with attribution links.
func (s *Service) document(ctx context.Context, ps *periodState, key store.PeriodKey) (invoice.Figures, invoice.Document, error) {
	pr, err := s.priced(ctx, ps, key)
	if err != nil {
		return invoice.Figures{}, invoice.Document{}, err
	}
	ref := ps.ref
	f := invoice.Round(pr, ref.cat.Currency)
	doc := f.Document(key.CustomerID, ref.plan.Key, ref.version.Version, ps.period, func(l rating.PricedLine) string {
		if a := l.Adjusts; a != nil {
			rated := store.PeriodKey{CustomerID: key.CustomerID, PlanVersionID: a.PlanVersionID, PeriodStart: a.Start}
			return AttributionLink(rated, l.Charge, l.Group, string(l.Type)) + "&" + url.Values{
				"billedPlanVersionId": {strconv.FormatInt(key.PlanVersionID, 10)},
				"billedPeriodStart":   {key.PeriodStart.UTC().Format(time.RFC3339Nano)},
			}.Encode()
		}
		return AttributionLink(key, l.Charge, l.Group, string(l.Type))
	})
	return f, doc, nil
}

// control runs fn on the writer between groups, after any commit in flight has finished, so fn
// sees exactly the committed ledger and no group is rated while it runs.
func (s *Service) control(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case s.ctl <- func() { defer close(done); fn() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return problem.New(problem.Unavailable, "the server is shutting down")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closedPeriods returns the customer's closed periods, loading them once.
func (s *Service) isClosed(ctx context.Context, key store.PeriodKey) (bool, error) {
	s.closeMu.Lock()
	set, ok := s.closed[key.CustomerID]
	s.closeMu.Unlock()
	if !ok {
		set = map[store.PeriodKey]string{}
		after := ""
		for {
			invs, err := s.store.ListInvoices(ctx, key.CustomerID, after, 500)
			if err != nil {
				return false, fmt.Errorf("list invoices of %q: %w", key.CustomerID, err)
			}
			for _, inv := range invs {
				set[store.PeriodKey{CustomerID: inv.CustomerID, PlanVersionID: inv.PlanVersionID, PeriodStart: inv.PeriodStart.UTC()}] = inv.ID
			}
			if len(invs) < 500 {
				break
			}
			after = invs[len(invs)-1].ID
		}
		s.closeMu.Lock()
		if cur, ok := s.closed[key.CustomerID]; ok {
			set = cur
		} else {
			s.closed[key.CustomerID] = set
		}
		s.closeMu.Unlock()
	}
	k := key
	k.PeriodStart = k.PeriodStart.UTC()
	s.closeMu.Lock()
	_, closed := set[k]
	s.closeMu.Unlock()
	return closed, nil
}

func (s *Service) markClosed(key store.PeriodKey, id string) {
	key.PeriodStart = key.PeriodStart.UTC()
	s.closeMu.Lock()
	if set := s.closed[key.CustomerID]; set != nil {
		set[key] = id
	}
	s.closeMu.Unlock()
}

// dueOf lists a customer's periods that ended at least the grace window before now and have no
// invoice: every period of each subscription from the one in force when the customer was
// created (or its start, if later), and every period the customer's events were rated in.
func (s *Service) dueOf(ctx context.Context, c *store.Customer, now time.Time) ([]store.PeriodKey, error) {
	cutoff := now.Add(-s.opts.Grace)
	seen := map[store.PeriodKey]bool{}
	var due []store.PeriodKey
	add := func(k store.PeriodKey, end time.Time) error {
		k.PeriodStart = k.PeriodStart.UTC()
		if seen[k] || end.After(cutoff) {
			return nil
		}
		seen[k] = true
		closed, err := s.isClosed(ctx, k)
		if err != nil || closed {
			return err
		}
		due = append(due, k)
		return nil
	}
	for i, sub := range c.Subscriptions {
		ref, err := s.plan(ctx, sub.PlanVersionID)
		if err != nil {
			return nil, err
		}
		sch := period.Schedule{Unit: ref.plan.Period, Anchor: sub.Start}
		from := sub.Start
		if c.CreatedAt.After(from) {
			from = c.CreatedAt
		}
		until := cutoff
		if i+1 < len(c.Subscriptions) && c.Subscriptions[i+1].Start.Before(until) {
			until = c.Subscriptions[i+1].Start
		}
		for p := sch.At(from); p.Start.Before(until) && !p.End.After(cutoff); p = sch.At(p.End) {
			if err := add(store.PeriodKey{CustomerID: c.ID, PlanVersionID: sub.PlanVersionID, PeriodStart: p.Start}, p.End); err != nil {
				return nil, err
			}
		}
	}
	eps, err := s.store.EventPeriods(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("event periods of %q: %w", c.ID, err)
	}
	for _, ep := range eps {
		if err := add(store.PeriodKey{CustomerID: c.ID, PlanVersionID: ep.PlanVersionID, PeriodStart: ep.Start}, ep.End); err != nil {
			return nil, err
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].PeriodStart.Before(due[j].PeriodStart) })
	return due, nil
}

// CloseDue closes every period, of every customer, that ended at least the grace window ago and
// has no invoice yet, oldest first, and returns the invoices it issued.
func (s *Service) CloseDue(ctx context.Context) ([]FinalInvoice, error) {
	now := s.now().UTC()
	var issued []FinalInvoice
	err := s.eachCustomer(ctx, func(sc store.Customer) error {
		c, err := s.cachedCustomer(ctx, sc.ID)
		if err != nil || c == nil {
			return err
		}
		due, err := s.dueOf(ctx, c, now)
		if err != nil {
			return err
		}
		for _, k := range due {
			inv, err := s.ClosePeriod(ctx, k)
			if err != nil {
				return err
			}
			issued = append(issued, inv)
		}
		return nil
	})
	return issued, err
}

// RunCloser closes due periods every interval until ctx is done.
func (s *Service) RunCloser(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.CloseDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("period close", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ClosePeriod issues the final invoice of one period from the ledger, on the writer, so that
// every event committed before it is on the invoice and every later event for the period is
// billed as an adjustment in the customer's open period. Closing a closed period returns its
// invoice.
func (s *Service) ClosePeriod(ctx context.Context, key store.PeriodKey) (FinalInvoice, error) {
	key.PeriodStart = key.PeriodStart.UTC()
	var inv FinalInvoice
	var cerr error
	err := s.control(ctx, func() { inv, cerr = s.closeOnWriter(ctx, key) })
	if err != nil {
		return inv, err
	}
	return inv, cerr
}

func (s *Service) closeOnWriter(ctx context.Context, key store.PeriodKey) (FinalInvoice, error) {
	closed, err := s.isClosed(ctx, key)
	if err != nil {
		return FinalInvoice{}, err
	}
	if closed {
		s.closeMu.Lock()
		id := s.closed[key.CustomerID][key]
		s.closeMu.Unlock()
		return s.Invoice(ctx, id)
	}
	ref, err := s.plan(ctx, key.PlanVersionID)
	if errors.Is(err, store.ErrNotFound) {
		return FinalInvoice{}, problem.Invalidf("planVersionId", "no plan version %d", key.PlanVersionID)
	}
	if err != nil {
		return FinalInvoice{}, err
	}
	c, err := s.cachedCustomer(ctx, key.CustomerID)
	if err != nil {
		return FinalInvoice{}, err
	}
	if c == nil {
		return FinalInvoice{}, problem.New(problem.NotFound, "no customer %q", key.CustomerID)
	}
	var anchor time.Time
	for _, sub := range c.Subscriptions {
		if sub.PlanVersionID == key.PlanVersionID && !sub.Start.After(key.PeriodStart) {
			anchor = sub.Start
		}
	}
	if anchor.IsZero() {
		return FinalInvoice{}, problem.New(problem.NotFound, "customer %q has no subscription to plan version %d at %s", key.CustomerID, key.PlanVersionID, key.PeriodStart.Format(time.RFC3339))
	}
	p := period.Schedule{Unit: ref.plan.Period, Anchor: anchor}.At(key.PeriodStart)
	if !p.Start.Equal(key.PeriodStart) {
		return FinalInvoice{}, problem.New(problem.NotFound, "%s is not the start of a period of customer %q's plan version %d", key.PeriodStart.Format(time.RFC3339), key.CustomerID, key.PlanVersionID)
	}
	if p.End.After(s.now()) {
		return FinalInvoice{}, problem.Invalidf("periodStart", "the period ends at %s: only an ended period can be closed", p.End.Format(time.RFC3339))
	}
	ps, err := s.state(ctx, key, ref, p)
	if err != nil {
		return FinalInvoice{}, err
	}
	f, doc, err := s.document(ctx, ps, key)
	ps.mu.Unlock()
	if err != nil {
		return FinalInvoice{}, err
	}
	credits, err := s.periodCredits(ctx, key)
	if err != nil {
		return FinalInvoice{}, err
	}
	cur := ref.cat.Currency
	applied := money.Max(money.Min(money.Round(credits, cur), f.Total), money.Zero)
	due := f.Total.Sub(applied)
	now := s.now().UTC()
	fi := FinalInvoice{Status: "final", IssuedAt: now, Document: doc, WalletCredits: applied.StringFixed(cur.Minor), AmountDue: due.StringFixed(cur.Minor)}
	body, err := json.Marshal(fi)
	if err != nil {
		return FinalInvoice{}, err
	}
	stored, err := s.store.CreateInvoice(ctx, store.Invoice{
		CustomerID: key.CustomerID, PlanVersionID: key.PlanVersionID, PeriodStart: p.Start, PeriodEnd: p.End,
		IssuedAt: now, Currency: cur.Code, Total: f.Total, AmountDue: due, Document: body,
	})
	if errors.Is(err, store.ErrConflict) {
		// Another node closed it first: adopt its invoice.
		s.closeMu.Lock()
		delete(s.closed, key.CustomerID)
		s.closeMu.Unlock()
		return s.closeOnWriter(ctx, key)
	}
	if err != nil {
		return FinalInvoice{}, fmt.Errorf("store invoice: %w", err)
	}
	s.markClosed(key, stored.ID)
	if m := s.opts.Metrics; m != nil {
		m.Invoices.Inc()
	}
	return decodeInvoice(stored)
}

// periodCredits sums the wallet burns billed in the period (refunds included).
func (s *Service) periodCredits(ctx context.Context, key store.PeriodKey) (money.Decimal, error) {
	burns, err := s.store.ListBurns(ctx, key.CustomerID, 0, 0)
	if err != nil {
		return money.Zero, fmt.Errorf("wallet burns of %q: %w", key.CustomerID, err)
	}
	sum := money.Zero
	for _, b := range burns {
		if b.GrantID != "" && b.PlanVersionID == key.PlanVersionID && b.PeriodStart.Equal(key.PeriodStart) {
			sum = sum.Add(b.Amount)
		}
	}
	return sum, nil
}

func decodeInvoice(inv store.Invoice) (FinalInvoice, error) {
	var fi FinalInvoice
	if err := json.Unmarshal(inv.Document, &fi); err != nil {
		return fi, fmt.Errorf("invoice %s: %w", inv.ID, err)
	}
	fi.ID, fi.Number = inv.ID, inv.Number
	return fi, nil
}

// Invoice returns an issued invoice.
func (s *Service) Invoice(ctx context.Context, id string) (FinalInvoice, error) {
	inv, err := s.store.GetInvoice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return FinalInvoice{}, problem.New(problem.NotFound, "no invoice %q", id)
	}
	if err != nil {
		return FinalInvoice{}, err
	}
	return decodeInvoice(inv)
}

// InvoicePage is one page of a customer's invoices.
type InvoicePage struct {
	Items []FinalInvoice `json:"items"`
	Next  string         `json:"next,omitempty"`
}

// Invoices lists a customer's issued invoices, oldest period first.
func (s *Service) Invoices(ctx context.Context, customerID, after string, limit int) (InvoicePage, error) {
	if c, err := s.cachedCustomer(ctx, customerID); err != nil {
		return InvoicePage{}, err
	} else if c == nil {
		return InvoicePage{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	invs, err := s.store.ListInvoices(ctx, customerID, after, limit)
	if err != nil {
		return InvoicePage{}, err
	}
	page := InvoicePage{Items: make([]FinalInvoice, 0, len(invs))}
	for _, inv := range invs {
		fi, err := decodeInvoice(inv)
		if err != nil {
			return InvoicePage{}, err
		}
		page.Items = append(page.Items, fi)
	}
	if len(invs) == limit {
		page.Next = invs[len(invs)-1].ID
	}
	return page, nil
}

// InvoiceCSV writes an invoice's lines with their attribution as CSV: one row per (line,
// correlation ID) for attributable lines, one row per line otherwise. The precise amounts of a
// line's rows add up exactly to the line's precise amount.
func (s *Service) InvoiceCSV(ctx context.Context, id string) ([]byte, error) {
	fi, err := s.Invoice(ctx, id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"invoice", "customer_id", "period_start", "period_end", "charge", "group", "type", "adjusts_period_start",
		"line_quantity", "line_precise_amount", "line_amount", "correlation_id", "events", "quantity", "precise_amount"})
	for _, l := range fi.Lines {
		adj := ""
		if l.AdjustsPeriod != nil {
			adj = l.AdjustsPeriod.PeriodStart.Format(time.RFC3339)
		}
		row := []string{fi.ID, fi.CustomerID, fi.PeriodStart.Format(time.RFC3339), fi.PeriodEnd.Format(time.RFC3339),
			l.Charge, l.Group, l.Type, adj, l.Quantity, l.PreciseAmount, l.Amount}
		if l.Attribution == "" {
			_ = w.Write(append(row, "", "", "", ""))
			continue
		}
		p, err := attributionParams(fi.CustomerID, l.Attribution)
		if err != nil {
			return nil, err
		}
		p.Limit = 1000
		for {
			rows, err := s.store.Attribution(ctx, p)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				_ = w.Write(append(row, r.Key, strconv.FormatInt(r.Events, 10), r.Quantity.String(), r.Amount.String()))
			}
			if len(rows) < p.Limit {
				break
			}
			p.After = rows[len(rows)-1].Key
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// attributionParams reads an attribution link back into store parameters.
func attributionParams(customerID, link string) (store.AttributionParams, error) {
	u, err := url.Parse(link)
	if err != nil {
		return store.AttributionParams{}, err
	}
	q := u.Query()
	return ParseAttributionQuery(customerID, q)
}

// ParseAttributionQuery reads the query of an attribution link; errors name the parameter.
func ParseAttributionQuery(customerID string, q url.Values) (store.AttributionParams, error) {
	p := store.AttributionParams{PeriodKey: store.PeriodKey{CustomerID: customerID}, Charge: q.Get("charge"), Group: q.Get("group"), Type: q.Get("type")}
	pv, err := strconv.ParseInt(q.Get("planVersionId"), 10, 64)
	if err != nil || pv <= 0 {
		return p, problem.Invalidf("planVersionId", "is required: the id of the plan version (from the invoice's attribution link)")
	}
	p.PlanVersionID = pv
	if p.PeriodStart, err = time.Parse(time.RFC3339Nano, q.Get("periodStart")); err != nil {
		return p, problem.Invalidf("periodStart", "is required: an RFC 3339 time")
	}
	if p.Charge == "" {
		return p, problem.Invalidf("charge", "is required")
	}
	if p.Type == "" {
		p.Type = string(rating.LineUsage)
	}
	if b := q.Get("billedPlanVersionId"); b != "" || q.Get("billedPeriodStart") != "" {
		bpv, err := strconv.ParseInt(b, 10, 64)
		if err != nil || bpv <= 0 {
			return p, problem.Invalidf("billedPlanVersionId", "must be a positive integer")
		}
		bs, err := time.Parse(time.RFC3339Nano, q.Get("billedPeriodStart"))
		if err != nil {
			return p, problem.Invalidf("billedPeriodStart", "must be an RFC 3339 time")
		}
		p.Billed = &store.PeriodKey{CustomerID: customerID, PlanVersionID: bpv, PeriodStart: bs}
	}
	p.After = q.Get("after")
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return p, problem.Invalidf("limit", "must be an integer from 1 to 1000")
		}
		p.Limit = n
	}
	return p, nil
}
