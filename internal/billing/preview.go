package billing

import (
	"context"
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
	"github.com/levyhq/levy/internal/usage"
)

// Invoice is an invoice in the simulator's shape, with attribution links.
type Invoice = invoice.Document

// open resolves the customer's open period at the service's clock.
func (s *Service) open(ctx context.Context, customerID string) (*store.Customer, store.PeriodKey, *planRef, period.Period, error) {
	c, err := s.cachedCustomer(ctx, customerID)
	if err != nil {
		return nil, store.PeriodKey{}, nil, period.Period{}, err
	}
	if c == nil {
		return nil, store.PeriodKey{}, nil, period.Period{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	key, ref, p, err := s.periodOf(ctx, c, s.now())
	if errors.Is(err, errBeforeSubscription) {
		return nil, key, nil, p, problem.New(problem.NotFound, "customer %q has no subscription in force now", customerID)
	}
	return c, key, ref, p, err
}

// InvoicePreview prices the customer's open period from the ledger.
func (s *Service) InvoicePreview(ctx context.Context, customerID string) (Invoice, error) {
	_, key, ref, p, err := s.open(ctx, customerID)
	if err != nil {
		return Invoice{}, err
	}
	ps, err := s.state(ctx, key, ref, p)
	if err != nil {
		return Invoice{}, err
	}
	_, doc, err := s.document(ctx, ps, key)
	ps.mu.Unlock()
	return doc, err
}

// AttributionLink is the API path of a line's attribution.
func AttributionLink(key store.PeriodKey, charge, group, typ string) string {
	q := url.Values{}
	q.Set("planVersionId", strconv.FormatInt(key.PlanVersionID, 10))
	q.Set("periodStart", key.PeriodStart.UTC().Format(time.RFC3339Nano))
	q.Set("charge", charge)
	if group != "" {
		q.Set("group", group)
	}
	q.Set("type", typ)
	return "/v1/customers/" + url.PathEscape(key.CustomerID) + "/attribution?" + q.Encode()
}

// Spend is a customer's running figures for the open period.
type Spend struct {
	CustomerID   string    `json:"customerId"`
	Plan         string    `json:"plan"`
	PlanVersion  int64     `json:"planVersion"`
	PeriodStart  time.Time `json:"periodStart"`
	PeriodEnd    time.Time `json:"periodEnd"`
	Currency     string    `json:"currency"`
	Spend        string    `json:"spend"`
	InvoiceTotal string    `json:"invoiceTotal"`
	Events       int64     `json:"events"`
}

// Spend returns the open period's rated amount (the sum of its events' amounts, exact) and the
// invoice total it would come to now (with flat fees and true-ups).
func (s *Service) Spend(ctx context.Context, customerID string) (Spend, error) {
	_, key, ref, p, err := s.open(ctx, customerID)
	if err != nil {
		return Spend{}, err
	}
	ps, err := s.state(ctx, key, ref, p)
	if err != nil {
		return Spend{}, err
	}
	priced, err := s.priced(ctx, ps, key)
	spend := ps.spend
	ps.mu.Unlock()
	if err != nil {
		return Spend{}, err
	}
	f := invoice.Round(priced, ref.cat.Currency)
	return Spend{
		CustomerID: customerID, Plan: ref.plan.Key, PlanVersion: ref.version.Version,
		PeriodStart: p.Start.UTC(), PeriodEnd: p.End.UTC(), Currency: ref.cat.Currency.Code,
		Spend: spend.String(), InvoiceTotal: f.Total.StringFixed(ref.cat.Currency.Minor), Events: priced.Events,
	}, nil
}

// AttributionPage is one page of an invoice line's attribution.
type AttributionPage struct {
	Items []AttributionItem `json:"items"`
	Next  string            `json:"next,omitempty"`
}

// AttributionItem is one correlation ID's share of a line.
type AttributionItem struct {
	CorrelationID string `json:"correlationId"`
	Events        int64  `json:"events"`
	Quantity      string `json:"quantity"`
	PreciseAmount string `json:"preciseAmount"`
}

// Attribution pages through the correlation IDs behind an invoice line.
func (s *Service) Attribution(ctx context.Context, p store.AttributionParams) (AttributionPage, error) {
	if p.Limit <= 0 || p.Limit > 1000 {
		p.Limit = 100
	}
	rows, err := s.store.Attribution(ctx, p)
	if err != nil {
		return AttributionPage{}, err
	}
	page := AttributionPage{Items: make([]AttributionItem, 0, len(rows))}
	for _, r := range rows {
		page.Items = append(page.Items, AttributionItem{CorrelationID: r.Key, Events: r.Events, Quantity: r.Quantity.String(), PreciseAmount: r.Amount.String()})
	}
	if len(rows) == p.Limit {
		page.Next = rows[len(rows)-1].Key
	}
	return page, nil
}

// UsageReport is a customer's usage per meter over a time range.
type UsageReport struct {
	CustomerID string       `json:"customerId"`
	From       time.Time    `json:"from"`
	To         time.Time    `json:"to"`
	GroupBy    string       `json:"groupBy,omitempty"`
	Meters     []MeterUsage `json:"meters"`
}

// MeterUsage is one meter's aggregated value, per group when grouped.
type MeterUsage struct {
	Meter       string `json:"meter"`
	Aggregation string `json:"aggregation"`
	Group       string `json:"group,omitempty"`
	Value       string `json:"value"`
	Events      int64  `json:"events"`
}

// Usage aggregates a customer's meters over [from, to) with the latest catalog's meters,
// optionally grouped by a property.
func (s *Service) Usage(ctx context.Context, customerID string, from, to time.Time, groupBy string) (UsageReport, error) {
	if c, err := s.cachedCustomer(ctx, customerID); err != nil {
		return UsageReport{}, err
	} else if c == nil {
		return UsageReport{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	cv, err := s.LatestCatalog(ctx)
	if err != nil {
		return UsageReport{}, err
	}
	cat, err := s.catalogAt(ctx, cv.Version)
	if err != nil {
		return UsageReport{}, err
	}
	type acc struct {
		q      money.Qty
		at     time.Time
		seen   bool
		uniq   map[string]struct{}
		events int64
	}
	type k struct{ meter, group string }
	aggs := map[k]*acc{}
	var ev usage.Event
	var vals []rating.MeterValue
	err = s.store.ListEvents(ctx, customerID, from, to, func(r *store.EventRecord) error {
		if err := recordToEvent(r, &ev); err != nil {
			return err
		}
		vals, err = rating.MeterValues(cat, &ev, vals[:0])
		if err != nil {
			return err
		}
		group := ""
		if groupBy != "" {
			group, _ = ev.Get(groupBy)
		}
		for _, mv := range vals {
			a := aggs[k{mv.Meter.Key, group}]
			if a == nil {
				a = &acc{}
				aggs[k{mv.Meter.Key, group}] = a
			}
			a.events++
			switch mv.Meter.Aggregation {
			case "max":
				if !a.seen || mv.Value.Cmp(a.q) > 0 {
					a.q = mv.Value
				}
			case "latest":
				if !a.seen || !ev.Timestamp.Before(a.at) {
					a.q, a.at = mv.Value, ev.Timestamp
				}
			case "uniqueCount":
				if a.uniq == nil {
					a.uniq = map[string]struct{}{}
				}
				a.uniq[mv.Text] = struct{}{}
				a.q = money.QtyInt(int64(len(a.uniq)))
			default:
				a.q = a.q.Add(mv.Value)
			}
			a.seen = true
		}
		return nil
	})
	if err != nil {
		return UsageReport{}, fmt.Errorf("list events: %w", err)
	}
	rep := UsageReport{CustomerID: customerID, From: from.UTC(), To: to.UTC(), GroupBy: groupBy, Meters: []MeterUsage{}}
	for key, a := range aggs {
		rep.Meters = append(rep.Meters, MeterUsage{Meter: key.meter, Aggregation: string(cat.Meter(key.meter).Aggregation), Group: key.group, Value: a.q.String(), Events: a.events})
	}
	sort.Slice(rep.Meters, func(i, j int) bool {
		if rep.Meters[i].Meter != rep.Meters[j].Meter {
			return rep.Meters[i].Meter < rep.Meters[j].Meter
		}
		return rep.Meters[i].Group < rep.Meters[j].Group
	})
	return rep, nil
}

// GetEvent returns a stored event with its rated lines.
func (s *Service) GetEvent(ctx context.Context, id string) (store.EventRecord, error) {
	r, err := s.store.GetEvent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, problem.New(problem.NotFound, "no event with id %q", id)
	}
	return r, err
}

// EventsByCorrelation returns the events with a correlation ID.
func (s *Service) EventsByCorrelation(ctx context.Context, correlationID string, limit int) ([]store.EventRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.store.EventsByCorrelation(ctx, correlationID, limit)
}
