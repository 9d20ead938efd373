package codec

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// This file encodes what issue 4 added to the store: the period a late event is billed in, the
// wallet burns, tier transitions and notices an event carries, grants and invoices, and the
// adjustment sums of late events. The rules at the edges:
//   - An event's billed period is both columns or neither: NULL when the event is billed where it
//     is rated, which is also what a billed period equal to the rated one is stored as (it reads
//     back as the zero values). Setting only one of BilledPlanVersionID and BilledPeriodStart is
//     an error.
//   - Records an event carries belong to its customer: an empty CustomerID is the event's, a
//     different one is an error. A transition's empty EventID and CorrelationID are the event's.
//   - JSON fields (a notice's Data, an invoice's Document) must be valid JSON; empty is NULL.

// Billed encodes e's billed period: nil, nil when e is billed where it is rated.
func Billed(e *store.EventRecord) (pv, start *int64, err error) {
	if e.BilledPlanVersionID == 0 && e.BilledPeriodStart.IsZero() {
		return nil, nil, nil
	}
	if e.BilledPlanVersionID == 0 {
		return nil, nil, fmt.Errorf("billedPlanVersionId: zero while billedPeriodStart is %s",
			e.BilledPeriodStart.UTC().Format(time.RFC3339Nano))
	}
	if e.BilledPeriodStart.IsZero() {
		return nil, nil, fmt.Errorf("billedPeriodStart: zero while billedPlanVersionId is %d", e.BilledPlanVersionID)
	}
	s, err := Time(e.BilledPeriodStart)
	if err != nil {
		return nil, nil, fmt.Errorf("billedPeriodStart: %w", err)
	}
	if e.BilledPlanVersionID == e.PlanVersionID && e.BilledPeriodStart.Equal(e.PeriodStart) {
		return nil, nil, nil // billed where it is rated
	}
	v := e.BilledPlanVersionID
	return &v, &s, nil
}

// Burn is a wallet burn's columns. Ord is its place among its event's burns.
type Burn struct {
	CustomerID    string
	GrantID       string
	EventKey      string
	Ord           int64
	At            int64
	PlanVersionID int64
	PeriodStart   int64
	Amount        string
}

// Transition is a tier transition's columns, without its ID.
type Transition struct {
	CustomerID       string
	At               int64
	From, To         string
	Reason           string
	Basis            string
	BasisPeriodStart int64
	Spend            string
	EventSeq         int64
	EventKey         string
	EventID          string
	CorrelationID    string
}

// Notice is a notice's columns, without its ID.
type Notice struct {
	CustomerID string
	Kind       string
	At         int64
	EventSeq   int64
	EventKey   string
	Data       *string
}

// Carried is what one event carries into InsertEvents besides itself, in storage form. The
// event's sequence number is not known yet: the drivers fill EventSeq (and EventKey) in.
type Carried struct {
	Burns       []Burn
	Transitions []Transition
	Notices     []Notice
}

// Empty reports whether the event carries nothing.
func (c *Carried) Empty() bool {
	return len(c.Burns) == 0 && len(c.Transitions) == 0 && len(c.Notices) == 0
}

// sameCustomer returns the customer of a record e carries: its own, or e's when empty.
func sameCustomer(field, cust string, e *store.EventRecord) (string, error) {
	if cust == "" {
		return e.CustomerID, nil
	}
	if cust != e.CustomerID {
		return "", fmt.Errorf("%s.customerId %q differs from the event's %q", field, cust, e.CustomerID)
	}
	return cust, nil
}

// EncodeCarried validates the burns, transitions and notices of e (already checked by
// EncodeEvent) and converts them to storage form; i is e's index in the batch.
func EncodeCarried(i int, e *store.EventRecord) (Carried, error) {
	var c Carried
	if len(e.Burns) == 0 && len(e.Transitions) == 0 && len(e.Notices) == 0 {
		return c, nil
	}
	fail := func(err error) (Carried, error) {
		return Carried{}, fmt.Errorf("event %d (key %q): %w", i, e.Key, err)
	}
	if len(e.Burns) > 0 {
		c.Burns = make([]Burn, len(e.Burns))
	}
	for j := range e.Burns {
		b := &e.Burns[j]
		field := fmt.Sprintf("burns[%d]", j)
		cust, err := sameCustomer(field, b.CustomerID, e)
		if err != nil {
			return fail(err)
		}
		if err := Text(field+".grantId", b.GrantID); err != nil {
			return fail(err)
		}
		at, err := Time(b.At)
		if err != nil {
			return fail(fmt.Errorf("%s.at: %w", field, err))
		}
		start, err := Time(b.PeriodStart)
		if err != nil {
			return fail(fmt.Errorf("%s.periodStart: %w", field, err))
		}
		c.Burns[j] = Burn{CustomerID: cust, GrantID: b.GrantID, EventKey: e.Key, Ord: int64(j), At: at,
			PlanVersionID: b.PlanVersionID, PeriodStart: start, Amount: Decimal(b.Amount)}
	}
	for j := range e.Transitions {
		t := e.Transitions[j]
		field := fmt.Sprintf("transitions[%d]", j)
		var err error
		if t.CustomerID, err = sameCustomer(field, t.CustomerID, e); err != nil {
			return fail(err)
		}
		if t.EventID == "" {
			t.EventID = e.ID
		}
		if t.CorrelationID == "" {
			t.CorrelationID = e.CorrelationID
		}
		t.EventKey = e.Key
		ct, err := EncodeTransition(field, &t)
		if err != nil {
			return fail(err)
		}
		c.Transitions = append(c.Transitions, ct)
	}
	for j := range e.Notices {
		n := e.Notices[j]
		field := fmt.Sprintf("notices[%d]", j)
		var err error
		if n.CustomerID, err = sameCustomer(field, n.CustomerID, e); err != nil {
			return fail(err)
		}
		n.EventKey = e.Key
		cn, err := EncodeNotice(field, &n)
		if err != nil {
			return fail(err)
		}
		c.Notices = append(c.Notices, cn)
	}
	return c, nil
}

// FillCarried writes back into e's burns, transitions and notices what the store assigned once
// the batch has committed: the event's seq and key, the customer (and a transition's event ID
// and correlation ID) where they were empty, and the IDs of transitions and notices (in order;
// nil when the driver has none to report).
func FillCarried(e *store.EventRecord, transitionIDs, noticeIDs []int64) {
	for j := range e.Burns {
		b := &e.Burns[j]
		b.EventSeq, b.EventKey = e.Seq, e.Key
		if b.CustomerID == "" {
			b.CustomerID = e.CustomerID
		}
	}
	for j := range e.Transitions {
		t := &e.Transitions[j]
		t.EventSeq, t.EventKey = e.Seq, e.Key
		if t.CustomerID == "" {
			t.CustomerID = e.CustomerID
		}
		if t.EventID == "" {
			t.EventID = e.ID
		}
		if t.CorrelationID == "" {
			t.CorrelationID = e.CorrelationID
		}
		if j < len(transitionIDs) {
			t.ID = transitionIDs[j]
		}
	}
	for j := range e.Notices {
		n := &e.Notices[j]
		n.EventSeq, n.EventKey = e.Seq, e.Key
		if n.CustomerID == "" {
			n.CustomerID = e.CustomerID
		}
		if j < len(noticeIDs) {
			n.ID = noticeIDs[j]
		}
	}
}

// validReason reports whether r is one of the store's transition reasons.
func validReason(r string) bool {
	return r == store.ReasonPromotion || r == store.ReasonPeriodReset || r == store.ReasonOverride
}

// EncodeTransition validates t and converts it to storage form; field names it in errors.
func EncodeTransition(field string, t *store.TierTransition) (Transition, error) {
	if t.CustomerID == "" {
		return Transition{}, fmt.Errorf("%s.customerId: empty", field)
	}
	if !validReason(t.Reason) {
		return Transition{}, fmt.Errorf("%s.reason: %q is not %s, %s or %s", field, t.Reason,
			store.ReasonPromotion, store.ReasonPeriodReset, store.ReasonOverride)
	}
	for _, f := range [...]struct{ name, v string }{
		{"customerId", t.CustomerID}, {"from", t.From}, {"to", t.To}, {"basis", t.Basis},
		{"eventKey", t.EventKey}, {"eventId", t.EventID}, {"correlationId", t.CorrelationID},
	} {
		if err := Text(field+"."+f.name, f.v); err != nil {
			return Transition{}, err
		}
	}
	at, err := Time(t.At)
	if err != nil {
		return Transition{}, fmt.Errorf("%s.at: %w", field, err)
	}
	basisStart, err := Time(t.BasisPeriodStart)
	if err != nil {
		return Transition{}, fmt.Errorf("%s.basisPeriodStart: %w", field, err)
	}
	return Transition{CustomerID: t.CustomerID, At: at, From: t.From, To: t.To, Reason: t.Reason,
		Basis: t.Basis, BasisPeriodStart: basisStart, Spend: Decimal(t.Spend), EventSeq: t.EventSeq,
		EventKey: t.EventKey, EventID: t.EventID, CorrelationID: t.CorrelationID}, nil
}

// DecodeTransition converts storage form back into a transition.
func DecodeTransition(id int64, c *Transition) (store.TierTransition, error) {
	spend, err := ParseDecimal(c.Spend)
	if err != nil {
		return store.TierTransition{}, err
	}
	return store.TierTransition{ID: id, CustomerID: c.CustomerID, At: ParseTime(c.At), From: c.From, To: c.To,
		Reason: c.Reason, Basis: c.Basis, BasisPeriodStart: ParseTime(c.BasisPeriodStart), Spend: spend,
		EventSeq: c.EventSeq, EventKey: c.EventKey, EventID: c.EventID, CorrelationID: c.CorrelationID}, nil
}

// OptJSON encodes bytes that must be JSON as nullable text: empty means NULL.
func OptJSON(field string, b []byte) (*string, error) {
	s, err := OptText(field, b)
	if err != nil || s == nil {
		return s, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s: not valid JSON", field)
	}
	return s, nil
}

// EncodeNotice validates n and converts it to storage form; field names it in errors.
func EncodeNotice(field string, n *store.Notice) (Notice, error) {
	if n.CustomerID == "" {
		return Notice{}, fmt.Errorf("%s.customerId: empty", field)
	}
	if n.Kind == "" {
		return Notice{}, fmt.Errorf("%s.kind: empty", field)
	}
	for _, f := range [...]struct{ name, v string }{
		{"customerId", n.CustomerID}, {"kind", n.Kind}, {"eventKey", n.EventKey},
	} {
		if err := Text(field+"."+f.name, f.v); err != nil {
			return Notice{}, err
		}
	}
	at, err := Time(n.At)
	if err != nil {
		return Notice{}, fmt.Errorf("%s.at: %w", field, err)
	}
	data, err := OptJSON(field+".data", n.Data)
	if err != nil {
		return Notice{}, err
	}
	return Notice{CustomerID: n.CustomerID, Kind: n.Kind, At: at, EventSeq: n.EventSeq, EventKey: n.EventKey, Data: data}, nil
}

// DecodeNotice converts storage form back into a notice.
func DecodeNotice(id int64, c *Notice) store.Notice {
	return store.Notice{ID: id, CustomerID: c.CustomerID, Kind: c.Kind, At: ParseTime(c.At),
		EventSeq: c.EventSeq, EventKey: c.EventKey, Data: ParseOptText(c.Data)}
}

// DecodeBurn converts a stored burn of the event seq back.
func DecodeBurn(seq int64, c *Burn) (store.WalletBurn, error) {
	amt, err := ParseDecimal(c.Amount)
	if err != nil {
		return store.WalletBurn{}, err
	}
	return store.WalletBurn{CustomerID: c.CustomerID, GrantID: c.GrantID, EventSeq: seq, EventKey: c.EventKey,
		At: ParseTime(c.At), PlanVersionID: c.PlanVersionID, PeriodStart: ParseTime(c.PeriodStart), Amount: amt}, nil
}

// Grant is a wallet grant's columns.
type Grant struct {
	ID         string
	CustomerID string
	Amount     string
	Priority   int64
	ExpiresAt  *int64
	Kind       string
	Note       string
	CreatedAt  int64
}

// EncodeGrant validates g and converts it to storage form.
func EncodeGrant(g *store.Grant) (Grant, error) {
	if g.ID == "" {
		return Grant{}, fmt.Errorf("grant id: empty")
	}
	if g.CustomerID == "" {
		return Grant{}, fmt.Errorf("grant %q: customerId: empty", g.ID)
	}
	for _, f := range [...]struct{ name, v string }{{"id", g.ID}, {"customerId", g.CustomerID}, {"note", g.Note}} {
		if err := Text("grant "+f.name, f.v); err != nil {
			return Grant{}, err
		}
	}
	if !g.Amount.IsPositive() {
		return Grant{}, fmt.Errorf("grant %q: amount: %s is not positive", g.ID, g.Amount)
	}
	if g.Kind != store.GrantPaid && g.Kind != store.GrantPromotional {
		return Grant{}, fmt.Errorf("grant %q: kind: %q is not %s or %s", g.ID, g.Kind, store.GrantPaid, store.GrantPromotional)
	}
	exp, err := OptTime(g.ExpiresAt)
	if err != nil {
		return Grant{}, fmt.Errorf("grant %q: expiresAt: %w", g.ID, err)
	}
	created, err := Time(g.CreatedAt)
	if err != nil {
		return Grant{}, fmt.Errorf("grant %q: createdAt: %w", g.ID, err)
	}
	return Grant{ID: g.ID, CustomerID: g.CustomerID, Amount: Decimal(g.Amount), Priority: int64(g.Priority),
		ExpiresAt: exp, Kind: g.Kind, Note: g.Note, CreatedAt: created}, nil
}

// DecodeGrant converts storage form back into a grant.
func DecodeGrant(c *Grant) (store.Grant, error) {
	amt, err := ParseDecimal(c.Amount)
	if err != nil {
		return store.Grant{}, err
	}
	return store.Grant{ID: c.ID, CustomerID: c.CustomerID, Amount: amt, Priority: int(c.Priority),
		ExpiresAt: ParseOptTime(c.ExpiresAt), Kind: c.Kind, Note: c.Note, CreatedAt: ParseTime(c.CreatedAt)}, nil
}

// SameGrant reports whether two grants have the same content: everything but CreatedAt (a
// retried request is stamped anew), amounts compared by value, expiry instants by instant.
func SameGrant(a, b store.Grant) bool {
	if a.ID != b.ID || a.CustomerID != b.CustomerID || !a.Amount.Equal(b.Amount) || a.Priority != b.Priority ||
		a.Kind != b.Kind || a.Note != b.Note || (a.ExpiresAt == nil) != (b.ExpiresAt == nil) {
		return false
	}
	return a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt)
}

// Invoice is an invoice's columns, without its number and ID.
type Invoice struct {
	CustomerID    string
	PlanVersionID int64
	PeriodStart   int64
	PeriodEnd     int64
	IssuedAt      int64
	Currency      string
	Total         string
	AmountDue     string
	Document      *string
}

// InvoiceID is the ID of the invoice with the number.
func InvoiceID(number int64) string { return fmt.Sprintf("inv_%08d", number) }

// EncodeInvoice validates inv and converts it to storage form.
func EncodeInvoice(inv *store.Invoice) (Invoice, error) {
	if inv.CustomerID == "" {
		return Invoice{}, fmt.Errorf("invoice customerId: empty")
	}
	for _, f := range [...]struct{ name, v string }{{"customerId", inv.CustomerID}, {"currency", inv.Currency}} {
		if err := Text("invoice "+f.name, f.v); err != nil {
			return Invoice{}, err
		}
	}
	var (
		c = Invoice{CustomerID: inv.CustomerID, PlanVersionID: inv.PlanVersionID, Currency: inv.Currency,
			Total: Decimal(inv.Total), AmountDue: Decimal(inv.AmountDue)}
		err error
	)
	if c.PeriodStart, err = Time(inv.PeriodStart); err != nil {
		return Invoice{}, fmt.Errorf("invoice periodStart: %w", err)
	}
	if c.PeriodEnd, err = Time(inv.PeriodEnd); err != nil {
		return Invoice{}, fmt.Errorf("invoice periodEnd: %w", err)
	}
	if c.IssuedAt, err = Time(inv.IssuedAt); err != nil {
		return Invoice{}, fmt.Errorf("invoice issuedAt: %w", err)
	}
	if c.Document, err = OptJSON("invoice document", inv.Document); err != nil {
		return Invoice{}, err
	}
	return c, nil
}

// DecodeInvoice converts storage form back into an invoice.
func DecodeInvoice(number int64, id string, c *Invoice) (store.Invoice, error) {
	total, err := ParseDecimal(c.Total)
	if err != nil {
		return store.Invoice{}, err
	}
	due, err := ParseDecimal(c.AmountDue)
	if err != nil {
		return store.Invoice{}, err
	}
	return store.Invoice{ID: id, Number: number, CustomerID: c.CustomerID, PlanVersionID: c.PlanVersionID,
		PeriodStart: ParseTime(c.PeriodStart), PeriodEnd: ParseTime(c.PeriodEnd), IssuedAt: ParseTime(c.IssuedAt),
		Currency: c.Currency, Total: total, AmountDue: due, Document: ParseOptText(c.Document)}, nil
}

// BilledCustomer checks that an attribution's billed period, when set, belongs to the rated
// period's customer (an empty customer means that one).
func BilledCustomer(p store.AttributionParams) error {
	if p.Billed != nil && p.Billed.CustomerID != "" && p.Billed.CustomerID != p.CustomerID {
		return fmt.Errorf("billed.customerId %q differs from customerId %q", p.Billed.CustomerID, p.CustomerID)
	}
	return nil
}

// SortPeriods sorts periods by start, then plan version, then end.
func SortPeriods(ps []store.PeriodRef) {
	slices.SortFunc(ps, func(a, b store.PeriodRef) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.PlanVersionID, b.PlanVersionID), a.End.Compare(b.End))
	})
}

// adjKey is one adjustment row's identity.
type adjKey struct {
	pv, start, end     int64
	charge, group, typ string
}

// Adjuster sums the rated lines of the late events billed into one period, per (rated period,
// charge, group, type), exactly. Both drivers feed it the billed period's late events.
type Adjuster struct {
	rows map[adjKey]*store.AdjustmentRow
}

// NewAdjuster starts empty sums.
func NewAdjuster() *Adjuster { return &Adjuster{rows: map[adjKey]*store.AdjustmentRow{}} }

// Add adds one event, rated in (pv, start, end), with its lines in the Lines encoding (nil for
// none). An event counts once in each row it has a line in.
func (a *Adjuster) Add(pv, start, end int64, lines *string) error {
	if lines == nil {
		return nil
	}
	ls, err := ParseLines(*lines)
	if err != nil {
		return err
	}
	for j, l := range ls {
		k := adjKey{pv, start, end, l.Charge, l.Group, l.Type}
		r := a.rows[k]
		if r == nil {
			r = &store.AdjustmentRow{
				Rated:  store.PeriodRef{PlanVersionID: pv, Start: ParseTime(start), End: ParseTime(end)},
				Charge: l.Charge, Group: l.Group, Type: l.Type,
				Quantity: money.Zero, Amount: money.Zero, Cost: money.Zero,
			}
			a.rows[k] = r
		}
		if !slices.ContainsFunc(ls[:j], func(p store.RatedLine) bool {
			return p.Charge == l.Charge && p.Group == l.Group && p.Type == l.Type
		}) {
			r.Events++
		}
		r.Quantity = r.Quantity.Add(l.Quantity)
		r.Amount = r.Amount.Add(l.Amount)
		r.Cost = r.Cost.Add(l.Cost)
	}
	return nil
}

// Rows returns the sums by rated start, plan version, end, charge, group and type.
func (a *Adjuster) Rows() []store.AdjustmentRow {
	keys := make([]adjKey, 0, len(a.rows))
	for k := range a.rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y adjKey) int {
		return cmp.Or(cmp.Compare(x.start, y.start), cmp.Compare(x.pv, y.pv), cmp.Compare(x.end, y.end),
			cmp.Compare(x.charge, y.charge), cmp.Compare(x.group, y.group), cmp.Compare(x.typ, y.typ))
	})
	out := make([]store.AdjustmentRow, len(keys))
	for i, k := range keys {
		out[i] = *a.rows[k]
	}
	return out
}

// CustomerTier encodes the tier override and low-balance threshold p sets: the override ("" when
// p.TierOverride is nil or clears it) and the threshold (NULL when none).
func CustomerTier(p store.PutCustomerParams) (tier string, low *string, err error) {
	if p.TierOverride != nil {
		tier = *p.TierOverride
		if err := Text("tierOverride", tier); err != nil {
			return "", nil, err
		}
	}
	if p.SetLowBalance && p.LowBalance != nil {
		s := Decimal(*p.LowBalance)
		low = &s
	}
	return tier, low, nil
}

// ParseOptDecimal decodes a nullable exact decimal; NULL is nil.
func ParseOptDecimal(s *string) (*money.Decimal, error) {
	if s == nil {
		return nil, nil
	}
	d, err := ParseDecimal(*s)
	if err != nil {
		return nil, err
	}
	return &d, nil
}
