package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/store"
)

// GrantInput is a credit grant to create (POST /v1/customers/{id}/wallet/grants).
type GrantInput struct {
	// ID makes the request idempotent; one is generated when empty.
	ID        string          `json:"id,omitempty"`
	Amount    json.RawMessage `json:"amount"`
	Priority  int             `json:"priority,omitempty"`
	ExpiresAt *time.Time      `json:"expiresAt,omitempty"`
	Kind      string          `json:"kind,omitempty"`
	Note      string          `json:"note,omitempty"`
}

// GrantJSON is a grant with its balance.
type GrantJSON struct {
	ID        string     `json:"id"`
	Amount    string     `json:"amount"`
	Remaining string     `json:"remaining"`
	Burned    string     `json:"burned"`
	Priority  int        `json:"priority"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Expired   bool       `json:"expired"`
	Kind      string     `json:"kind"`
	Note      string     `json:"note,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
}

// WalletJSON is a customer's wallet balance.
type WalletJSON struct {
	CustomerID string `json:"customerId"`
	Currency   string `json:"currency"`
	// Available is what unexpired grants still hold.
	Available string `json:"available"`
	// Uncovered is the open period's usage no grant covered (billed as amount due).
	Uncovered string `json:"uncovered"`
	// Net is Available − Uncovered: negative when usage already in flight outran the grants.
	Net string `json:"net"`
	// Expired is what expired grants held when they expired (forfeited).
	Expired             string      `json:"expired"`
	LowBalanceThreshold string      `json:"lowBalanceThreshold,omitempty"`
	BelowThreshold      bool        `json:"belowThreshold"`
	Grants              []GrantJSON `json:"grants"`
}

const maxGrantNote = 1024

// maxStoredTime is the latest instant the stores keep (Unix nanoseconds in an int64), less a
// margin.
var maxStoredTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)

// CreateGrant adds a prepaid credit grant to a customer's wallet. It is idempotent by ID: the
// same grant again returns the stored one; another grant under the same ID is a conflict.
func (s *Service) CreateGrant(ctx context.Context, customerID string, in GrantInput) (GrantJSON, error) {
	if _, _, _, _, err := s.open(ctx, customerID); err != nil {
		return GrantJSON{}, err // unknown customer, or none subscribed now: nothing stored
	}
	if len(in.Amount) == 0 {
		return GrantJSON{}, problem.Invalidf("amount", "is required: a positive decimal string")
	}
	amt, err := parseOptionalDecimal("amount", in.Amount)
	if err != nil {
		return GrantJSON{}, err
	}
	if amt == nil || !amt.IsPositive() {
		return GrantJSON{}, problem.Invalidf("amount", "must be a positive decimal string")
	}
	if _, ok := money.ToNanos(*amt); !ok {
		return GrantJSON{}, problem.Invalidf("amount", "is too large")
	}
	switch in.Kind {
	case "":
		in.Kind = store.GrantPaid
	case store.GrantPaid, store.GrantPromotional:
	default:
		return GrantJSON{}, problem.Invalidf("kind", "must be %q or %q", store.GrantPaid, store.GrantPromotional)
	}
	if in.ID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		in.ID = "grant_" + hex.EncodeToString(b[:])
	} else if !ValidCustomerID(in.ID) {
		return GrantJSON{}, problem.Invalidf("id", "must be 1 to 256 letters, digits or _ . : @ -")
	}
	if len(in.Note) > maxGrantNote {
		return GrantJSON{}, problem.Invalidf("note", "at most %d bytes", maxGrantNote)
	}
	if in.Priority < -1_000_000 || in.Priority > 1_000_000 {
		return GrantJSON{}, problem.Invalidf("priority", "must be between -1000000 and 1000000")
	}
	now := s.now().UTC()
	g := store.Grant{ID: in.ID, CustomerID: customerID, Amount: *amt, Priority: in.Priority, Kind: in.Kind, Note: in.Note, CreatedAt: now}
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.UTC()
		if !e.After(now) {
			return GrantJSON{}, problem.Invalidf("expiresAt", "must be in the future")
		}
		if e.After(maxStoredTime) {
			return GrantJSON{}, problem.Invalidf("expiresAt", "must be before %s", maxStoredTime.Format(time.RFC3339))
		}
		g.ExpiresAt = &e
	}
	var stored store.Grant
	var ferr error
	err = s.control(ctx, func() {
		stored, ferr = s.store.CreateGrant(ctx, g)
		if ferr != nil {
			return
		}
		s.acctMu.Lock()
		a := s.accounts[customerID]
		s.acctMu.Unlock()
		if a == nil {
			return // loaded with the grant when first needed
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if err := a.wallet.AddGrant(walletGrant(stored)); err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.Conflict {
				ferr = err
			}
		}
	})
	if err == nil {
		err = ferr
	}
	if errors.Is(err, store.ErrConflict) {
		return GrantJSON{}, &problem.Error{Kind: problem.Conflict, Message: "a different grant with this id already exists", Fields: []problem.Field{{Field: "id", Message: "already used by another grant"}}}
	}
	if err != nil {
		return GrantJSON{}, err
	}
	s.counterGrant(ctx, stored)
	return s.grantJSON(ctx, customerID, stored.ID)
}

// counterGrant adds a grant to the counter store; a failure is repaired by the reconciler.
func (s *Service) counterGrant(ctx context.Context, g store.Grant) {
	if s.counters == nil {
		return
	}
	n, _ := money.ToNanos(g.Amount)
	p := counter.GrantParams{CustomerID: g.CustomerID, GrantID: g.ID, Nanos: n}
	if g.ExpiresAt != nil {
		p.ExpiresAt = *g.ExpiresAt
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.counters.Grant(cctx, p); err != nil {
		s.log.Warn("counters: add grant; the reconciler repairs it", "customer", g.CustomerID, "grant", g.ID, "err", err)
	}
}

func (s *Service) grantJSON(ctx context.Context, customerID, id string) (GrantJSON, error) {
	w, err := s.Wallet(ctx, customerID)
	if err != nil {
		return GrantJSON{}, err
	}
	for _, g := range w.Grants {
		if g.ID == id {
			return g, nil
		}
	}
	return GrantJSON{}, problem.New(problem.NotFound, "no grant %q", id)
}

// Wallet returns a customer's wallet balance at the service's clock.
func (s *Service) Wallet(ctx context.Context, customerID string) (WalletJSON, error) {
	_, key, ref, _, err := s.open(ctx, customerID)
	if err != nil {
		return WalletJSON{}, err
	}
	grants, err := s.store.ListGrants(ctx, customerID)
	if err != nil {
		return WalletJSON{}, err
	}
	notes := map[string]string{}
	for _, g := range grants {
		notes[g.ID] = g.Note
	}
	a, err := s.account(ctx, customerID)
	if err != nil {
		return WalletJSON{}, err
	}
	defer a.mu.Unlock()
	now := s.now()
	b := a.wallet.Balance(now)
	ps, _ := a.wallet.Period(walletKey(key))
	out := WalletJSON{
		CustomerID: customerID, Currency: ref.cat.Currency.Code,
		Available: b.Available.String(), Uncovered: ps.Uncovered.String(),
		Net: a.wallet.NetBalance(walletKey(key), now).String(), Expired: b.Expired.String(),
		BelowThreshold: a.wallet.BelowThreshold(now), Grants: make([]GrantJSON, 0, len(b.Grants)),
	}
	if th, ok := a.wallet.Threshold(); ok {
		out.LowBalanceThreshold = th.String()
	}
	for _, g := range b.Grants {
		out.Grants = append(out.Grants, GrantJSON{
			ID: g.Grant.ID, Amount: g.Grant.Amount.String(), Remaining: g.Remaining.String(), Burned: g.Burned.String(),
			Priority: g.Grant.Priority, ExpiresAt: g.Grant.ExpiresAt, Expired: g.Expired, Kind: string(g.Grant.Kind),
			Note: notes[g.Grant.ID], CreatedAt: g.Grant.CreatedAt.UTC(),
		})
	}
	return out, nil
}

// BurnJSON is one entry of a wallet's burn history.
type BurnJSON struct {
	EventSeq int64     `json:"eventSeq"`
	EventKey string    `json:"eventKey"`
	At       time.Time `json:"at"`
	// GrantID is empty for the change of the period's uncovered amount.
	GrantID     string    `json:"grantId,omitempty"`
	Amount      string    `json:"amount"`
	PlanVersion int64     `json:"planVersionId"`
	PeriodStart time.Time `json:"periodStart"`
}

// BurnPage is one page of burn history.
type BurnPage struct {
	Items []BurnJSON `json:"items"`
	Next  int64      `json:"next,omitempty"`
}

// Burns lists a customer's wallet burn history (burns positive, refunds negative), oldest
// first, after an event sequence number.
func (s *Service) Burns(ctx context.Context, customerID string, after int64, limit int) (BurnPage, error) {
	if c, err := s.cachedCustomer(ctx, customerID); err != nil {
		return BurnPage{}, err
	} else if c == nil {
		return BurnPage{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// A page never splits an event's burns: a full page drops its last event's burns (they
	// start the next page), unless that event is the only one, which is then read whole.
	var bs []store.WalletBurn
	for n := limit; ; n *= 2 {
		var err error
		if bs, err = s.store.ListBurns(ctx, customerID, after, n); err != nil {
			return BurnPage{}, err
		}
		if len(bs) < n || bs[0].EventSeq != bs[len(bs)-1].EventSeq {
			break
		}
	}
	full := len(bs) >= limit
	if full && bs[0].EventSeq != bs[len(bs)-1].EventSeq {
		last := bs[len(bs)-1].EventSeq
		for bs[len(bs)-1].EventSeq == last {
			bs = bs[:len(bs)-1]
		}
	}
	page := BurnPage{Items: make([]BurnJSON, 0, len(bs))}
	for _, b := range bs {
		page.Items = append(page.Items, BurnJSON{EventSeq: b.EventSeq, EventKey: b.EventKey, At: b.At.UTC(), GrantID: b.GrantID,
			Amount: b.Amount.String(), PlanVersion: b.PlanVersionID, PeriodStart: b.PeriodStart.UTC()})
	}
	if full {
		page.Next = bs[len(bs)-1].EventSeq
	}
	return page, nil
}

// NoticeJSON is one recorded notice.
type NoticeJSON struct {
	ID       int64           `json:"id"`
	Kind     string          `json:"kind"`
	At       time.Time       `json:"at"`
	EventSeq int64           `json:"eventSeq,omitempty"`
	EventKey string          `json:"eventKey,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// NoticePage is one page of notices.
type NoticePage struct {
	Items []NoticeJSON `json:"items"`
	Next  int64        `json:"next,omitempty"`
}

// Notices lists a customer's notices (low_balance), oldest first.
func (s *Service) Notices(ctx context.Context, customerID string, after int64, limit int) (NoticePage, error) {
	if c, err := s.cachedCustomer(ctx, customerID); err != nil {
		return NoticePage{}, err
	} else if c == nil {
		return NoticePage{}, problem.New(problem.NotFound, "no customer %q", customerID)
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ns, err := s.store.ListNotices(ctx, customerID, after, limit)
	if err != nil {
		return NoticePage{}, err
	}
	page := NoticePage{Items: make([]NoticeJSON, 0, len(ns))}
	for _, n := range ns {
		page.Items = append(page.Items, NoticeJSON{ID: n.ID, Kind: n.Kind, At: n.At.UTC(), EventSeq: n.EventSeq, EventKey: n.EventKey, Data: n.Data})
	}
	if len(ns) == limit {
		page.Next = ns[len(ns)-1].ID
	}
	return page, nil
}
