package authorize

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/catalog"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/period"
	"github.com/levyhq/levy/internal/problem"
)

// PlanSource gives a customer's plan in force, its catalog, open period and limit overrides.
// *billing.Service satisfies it; after the first call for a customer it must answer from
// memory, since it sits on the authorize hot path.
type PlanSource interface {
	CustomerPlan(ctx context.Context, customerID string, t time.Time) (billing.CustomerPlan, error)
}

var _ PlanSource = (*billing.Service)(nil)

// Defaults of Options.
const (
	DefaultTimeout               = 5 * time.Millisecond
	DefaultReservationTTL        = 10 * time.Minute
	DefaultSafeRequestsPerMinute = 60
	DefaultEventType             = "llm.completion"
	DefaultMaxInFlight           = 64
)

// Options configure a Service. The zero value works.
type Options struct {
	// Timeout bounds each counter-store Authorize call (default DefaultTimeout). When it
	// expires the decision fails open. A negative Timeout sets no deadline: use it for the
	// in-process memory store, which never waits on I/O, to save the context it costs.
	Timeout time.Duration
	// ReservationTTL is how long an unsettled reservation is held (default 10m).
	ReservationTTL time.Duration
	// SafeRequestsPerMinute is the fail-open safe capacity: while the counter store cannot be
	// reached, this node admits at most this many requests per minute per customer (GCRA,
	// burst of the full limit). Default 60.
	SafeRequestsPerMinute int64
	// Now is the clock (default time.Now). When given, decisions are taken at it; otherwise
	// at the counter store's clock (Redis: the server's TIME, one clock for every node), and
	// Now only picks the billing period and dates the headers.
	Now func() time.Time
	// Registerer receives the metrics (nil: they are kept but not exported). Registering
	// twice on one registry reuses the collectors already there.
	Registerer prometheus.Registerer
	// MaxInFlight bounds the counter-store Authorize calls this Service has outstanding,
	// including those still finishing after Options.Timeout gave up on them (default
	// DefaultMaxInFlight; ignored when Timeout is negative). A decision waits for a free slot
	// within its Timeout, and fails open without calling the store if none frees up, instead
	// of queueing more work on a store that is already behind.
	MaxInFlight int
	// EventType is the event type of the usage event an authorized call produces (default
	// "llm.completion"): meters bound to another event type are not part of its estimate.
	EventType string
}

// Service is the pre-flight authorize service. It is safe for concurrent use.
type Service struct {
	counters  counter.Authorizer
	plans     PlanSource
	timeout   time.Duration
	ttl       time.Duration
	now       func() time.Time
	ownClock  bool // Options.Now was given: decide at it rather than at the store's clock
	eventType string
	seed      maphash.Seed
	metrics   *metrics
	safe      *safeLimiter
	inFlight  chan struct{} // a slot per outstanding bounded store call

	limits    [shardCount]limitsShard
	plansMu   sync.RWMutex
	planInfos map[planKey]*planInfo
}

// New returns a Service deciding with the counter store and the customers' plans.
func New(counters counter.Authorizer, plans PlanSource, opts Options) *Service {
	s := &Service{
		counters:  counters,
		plans:     plans,
		timeout:   opts.Timeout,
		ttl:       opts.ReservationTTL,
		now:       opts.Now,
		ownClock:  opts.Now != nil,
		eventType: opts.EventType,
		seed:      maphash.MakeSeed(),
		metrics:   newMetrics(opts.Registerer),
		planInfos: map[planKey]*planInfo{},
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.ttl <= 0 {
		s.ttl = DefaultReservationTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.eventType == "" {
		s.eventType = DefaultEventType
	}
	safe := opts.SafeRequestsPerMinute
	if safe <= 0 {
		safe = DefaultSafeRequestsPerMinute
	}
	s.safe = newSafeLimiter(min(safe, maxRate))
	if s.timeout >= 0 {
		n := opts.MaxInFlight
		if n <= 0 {
			n = DefaultMaxInFlight
		}
		s.inFlight = make(chan struct{}, n)
	}
	for i := range s.limits {
		s.limits[i].m = map[string]*customerLimits{}
	}
	return s
}

// decisionTime is the Now the store decides at: the injected clock's, or the zero time for the
// store's own clock.
func (s *Service) decisionTime(now time.Time) time.Time {
	if s.ownClock {
		return now
	}
	return time.Time{}
}

func (s *Service) hash(id string) uint64 { return maphash.String(s.seed, id) }

// Request is one pre-flight check.
type Request struct {
	CustomerID string
	// Model is the model the call asks for, as the catalog's price tables and filters name it.
	Model string
	// EstimatedInputTokens and MaxOutputTokens bound the call's tokens: the estimate holds
	// their sum against the token limits and their price against the money limits.
	EstimatedInputTokens int64
	MaxOutputTokens      int64
	// CorrelationID, when set, is the key the call's usage event settles the reservation by.
	CorrelationID string
	// TaskID, when set, names the agent run the call belongs to (its margin-guard breaker).
	TaskID string
}

// Decision is ALLOW or DENY.
type Decision string

// The decisions.
const (
	Allow Decision = "ALLOW"
	Deny  Decision = "DENY"
)

// ReasonFailOpenCapacity is the reason of a denial by the fail-open safe capacity: the counter
// store could not be asked and this node already admitted the customer's safe share.
const ReasonFailOpenCapacity = "fail_open_capacity"

// Quota is one limited dimension's figures after a decision. Limit and Remaining are in the
// dimension's unit: requests, tokens, request slots, or nanos of the currency for
// monthly_spend and wallet_balance (whose Limit is the balance).
type Quota struct {
	Active    bool
	Limit     int64
	Remaining int64
	// ResetAfter is the wait until the dimension is whole again (a rate bucket full, a cap's
	// period over); ResetSeconds is it in whole seconds, rounded up. 0 for concurrency and the
	// wallet.
	ResetAfter   time.Duration
	ResetSeconds int64
}

// Result is a decision with everything the API and the gateway report.
type Result struct {
	Decision Decision
	// Reason is the denying dimension's reason code (limit.Dimension.String(), or
	// ReasonFailOpenCapacity); "" on ALLOW.
	Reason string
	// RetryAfterSeconds is the wait before the same request could pass, in whole seconds
	// rounded up; at least 1 on every DENY (a wait of 0 means "when some reservation ends").
	// 0 on ALLOW.
	RetryAfterSeconds int64
	// Never: no wait helps (the estimate exceeds a whole limit, or a limit is 0).
	Never bool
	// ReservationID names the reservation an ALLOW holds; "" on DENY and when failing open.
	ReservationID string
	// Tier is the customer's spend tier as the store holds it, read as the ladder reads it (the
	// base tier for none). "" without a ladder, and when the store was not asked (failing
	// open, or a limit of 0 in every tier).
	Tier string
	// FailOpen marks a decision taken without the counter store.
	FailOpen bool
	// Estimate is what the request holds while its reservation is open: tokens, and the
	// conservative cost bound in nanos.
	Estimate limit.Usage
	// Remaining holds each limited dimension's figures, indexed by limit.Dimension; only
	// entries with Active set are limited (none when failing open).
	Remaining [limit.NumDimensions]Quota

	// For the metrics and the headers.
	reason        limit.Dimension
	now           time.Time
	currency      money.Currency
	periodSeconds int64
	head          limit.Dimension
	headOK        bool
}

// Allowed reports an ALLOW.
func (r *Result) Allowed() bool { return r.Decision == Allow }

// Validate reports every field of the request outside its range as an Invalid problem naming
// each (JSON names: customerId, model, estimatedInputTokens, maxOutputTokens, correlationId,
// taskId), or nil.
func (r *Request) Validate() error {
	if r.valid() {
		return nil
	}
	var fs []problem.Field
	bad := func(field, msg string) { fs = append(fs, problem.Field{Field: field, Message: msg}) }
	if !validCustomerID(r.CustomerID) {
		bad("customerId", "is required: 1 to 256 letters, digits or _ . : @ -")
	}
	if !validText(r.Model, false) {
		bad("model", "is required: 1 to 256 characters, no control characters")
	}
	if r.EstimatedInputTokens < 0 || r.EstimatedInputTokens > maxTokens {
		bad("estimatedInputTokens", fmt.Sprintf("must be between 0 and %d", maxTokens))
	}
	if r.MaxOutputTokens < 0 || r.MaxOutputTokens > maxTokens {
		bad("maxOutputTokens", fmt.Sprintf("must be between 0 and %d", maxTokens))
	}
	if !validText(r.CorrelationID, true) {
		bad("correlationId", "must be at most 256 characters, no control characters")
	}
	if !validText(r.TaskID, true) {
		bad("taskId", "must be at most 256 characters, no control characters")
	}
	return &problem.Error{Kind: problem.Invalid, Message: "invalid authorize request: " + fs[0].Field + ": " + fs[0].Message, Fields: fs}
}

// maxTokens bounds each token figure, so their sum stays within limit.MaxValue.
const maxTokens = limit.MaxValue / 2

func (r *Request) valid() bool {
	return validCustomerID(r.CustomerID) && validText(r.Model, false) &&
		r.EstimatedInputTokens >= 0 && r.EstimatedInputTokens <= maxTokens &&
		r.MaxOutputTokens >= 0 && r.MaxOutputTokens <= maxTokens &&
		validText(r.CorrelationID, true) && validText(r.TaskID, true)
}

// validCustomerID accepts what billing accepts as a customer ID: 1 to 256 of A–Z a–z 0–9 _ . : @ -.
func validCustomerID(id string) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '@' || c == '-') {
			return false
		}
	}
	return true
}

// validText accepts up to 256 bytes without ASCII control characters (empty when optional).
func validText(s string, optional bool) bool {
	if len(s) > 256 || (len(s) == 0 && !optional) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Authorize decides one request: ALLOW holds its estimate under a new reservation, DENY
// changes nothing. Errors are not decisions: an Invalid problem for a bad request or bad
// stored overrides, the plan source's errors (NotFound for an unknown customer), the caller's
// context error, or a counter-store error that is not an outage. A counter store that is
// unavailable, too slow (Options.Timeout) or refuses the connection makes the decision fail
// open (Result.FailOpen), bounded by the per-node safe capacity.
func (s *Service) Authorize(ctx context.Context, r Request) (Result, error) {
	start := time.Now()
	if !r.valid() {
		return Result{}, r.Validate()
	}
	now := s.now()
	cp, err := s.plans.CustomerPlan(ctx, r.CustomerID, now)
	if err != nil {
		return Result{}, err
	}
	cl, err := s.limitsFor(&cp)
	if err != nil {
		return Result{}, err
	}
	nanos, err := cl.info.estimator(r.Model).nanos(r.EstimatedInputTokens, r.MaxOutputTokens)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		now:           now,
		currency:      cp.Catalog.Currency,
		periodSeconds: periodSeconds(cp.Period),
		Estimate:      limit.Usage{Tokens: r.EstimatedInputTokens + r.MaxOutputTokens, Nanos: nanos},
	}
	if d := cl.table.Blocked; d != limit.DimNone {
		// A limit of 0 in every tier: nothing can pass, and the store need not be asked.
		res.Decision, res.Reason, res.reason, res.Never, res.RetryAfterSeconds = Deny, d.String(), d, true, 1
		res.Remaining[d] = Quota{Active: true}
		res.head, res.headOK = d, true
		s.metrics.decided(&res, start)
		return res, nil
	}
	p := counter.AuthorizeParams{
		CustomerID:    r.CustomerID,
		ReservationID: newReservationID(),
		CorrelationID: r.CorrelationID,
		TaskID:        r.TaskID,
		Now:           s.decisionTime(now),
		Period:        counter.PeriodRef{PlanVersionID: cp.PlanVersionID, Start: cp.Period.Start, End: cp.Period.End},
		TokenMeters:   cl.info.tokenMeters,
		Limits:        cl.table.Rows,
		Estimate:      res.Estimate,
		TTL:           s.ttl,
	}
	var ar counter.AuthorizeResult
	if s.timeout < 0 {
		ar, err = s.counters.Authorize(ctx, p)
	} else {
		ar, err = s.authorizeBounded(ctx, p)
	}
	if err != nil {
		if !outage(ctx, err) {
			return Result{}, fmt.Errorf("authorize customer %q: %w", r.CustomerID, err)
		}
		s.failOpen(&res, r.CustomerID, now)
		s.metrics.decided(&res, start)
		return res, nil
	}
	d := &ar.Decision
	res.Tier = ar.Tier
	if _, ok := cl.table.Rows[ar.Tier]; !ok || ar.Tier == "" {
		res.Tier = cl.table.Base
	}
	for dim := range d.Quotas {
		q := d.Quotas[dim]
		if q.Active {
			res.Remaining[dim] = Quota{Active: true, Limit: q.Limit, Remaining: q.Remaining,
				ResetAfter: time.Duration(q.ResetAfter) * time.Millisecond, ResetSeconds: ceilSeconds(q.ResetAfter)}
		}
	}
	dim, _, ok := d.Headline()
	res.head, res.headOK = dim, ok
	if d.Allowed {
		res.Decision = Allow
		res.ReservationID = ar.ReservationID
		if res.ReservationID == "" {
			res.ReservationID = p.ReservationID
		}
	} else {
		res.Decision, res.Reason, res.reason, res.Never = Deny, d.Reason.String(), d.Reason, d.Never
		res.RetryAfterSeconds = max(ceilSeconds(d.RetryAfter), 1)
	}
	s.metrics.decided(&res, start)
	return res, nil
}

// CallTimeout bounds a counter-store Authorize call that Options.Timeout has given up on: the
// call goes on in the background until it answers or this much time has passed since it began.
const CallTimeout = time.Second

// errSlow is the outcome of a call that did not answer within Options.Timeout, errBusy that
// of a decision not sent because Options.MaxInFlight calls stayed outstanding that long.
var (
	errSlow = fmt.Errorf("%w: no answer within the authorize timeout", counter.ErrUnavailable)
	errBusy = fmt.Errorf("%w: too many authorize calls outstanding", counter.ErrUnavailable)
)

type authorizeOutcome struct {
	res counter.AuthorizeResult
	err error
}

// authorizeBounded runs the store's Authorize under a generous deadline (max(CallTimeout,
// Options.Timeout)) in its own goroutine and waits at most Options.Timeout for it. The short
// budget is deliberately not the call's own deadline: a deadline that fires mid-reply makes the
// Redis client discard the connection and dial a new one on the next call, and under load those
// reconnects slow every later call past the budget too. A call that outlives Options.Timeout
// (the decision then fails open) finishes in the background and its answer is dropped; if it
// allowed, its reservation is not reported to the caller and ends as any unreleased one does:
// settled by the usage event that carries its correlation ID, else expired after the
// reservation TTL. The goroutine ends with the call, so none outlives the generous deadline.
// The caller's own cancellation returns at once with the caller's context error. At most
// Options.MaxInFlight calls are outstanding: a decision waits for a slot within the same
// Options.Timeout, and when none frees up in time the store is behind, and asking it more would
// only lengthen its queue (every abandoned call still runs), so the decision fails open without
// a call.
func (s *Service) authorizeBounded(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case s.inFlight <- struct{}{}:
	case <-t.C:
		return counter.AuthorizeResult{}, errBusy
	case <-ctx.Done():
		return counter.AuthorizeResult{}, ctx.Err()
	}
	done := make(chan authorizeOutcome, 1) // buffered: the goroutine never waits on a reader
	go func() {
		defer func() { <-s.inFlight }()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(CallTimeout, s.timeout))
		defer cancel()
		r, err := s.counters.Authorize(cctx, p)
		done <- authorizeOutcome{r, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-t.C:
		return counter.AuthorizeResult{}, errSlow
	case <-ctx.Done():
		return counter.AuthorizeResult{}, ctx.Err()
	}
}

// outage reports whether a counter-store error means the store is down or slow, so the
// decision fails open: counter.ErrUnavailable, our own deadline, a refused connection or a
// network timeout. The caller's own cancellation is not an outage.
func outage(parent context.Context, err error) bool {
	if parent.Err() != nil {
		return false
	}
	if errors.Is(err, counter.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func ceilSeconds(ms int64) int64 {
	if ms <= 0 {
		return 0
	}
	return (ms + 999) / 1000
}

func periodSeconds(p period.Period) int64 {
	return int64(p.End.Sub(p.Start) / time.Second)
}

// newReservationID returns "rsv_" and 16 bytes from crypto/rand in hex. IDs are made 16 at a
// time (one crypto/rand read) into one string, and each ID is a substring of it: one
// allocation per 16 decisions instead of one each. A live ID keeps its 576-byte batch alive,
// which bounds the waste at 16 IDs' worth per reservation a store holds long after its
// neighbours ended.
func newReservationID() string {
	c := idChunks.Get().(*idChunk)
	if len(c.ids) < idLen {
		c.fill()
	}
	id := c.ids[:idLen]
	c.ids = c.ids[idLen:]
	idChunks.Put(c)
	return id
}

const (
	idLen      = 4 + 32
	idsPerFill = 16
)

type idChunk struct{ ids string }

var idChunks = sync.Pool{New: func() any { return new(idChunk) }}

func (c *idChunk) fill() {
	var raw [idsPerFill * 16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it aborts the program instead)
	var buf [idsPerFill * idLen]byte
	for i := range idsPerFill {
		out := buf[i*idLen : (i+1)*idLen]
		copy(out, "rsv_")
		hex.Encode(out[4:], raw[i*16:(i+1)*16])
	}
	c.ids = string(buf[:])
}

// Release ends an open reservation of a call that was cancelled or consumed nothing: its
// tokens, money and concurrency slot are returned. It reports false when there was none
// (already settled, released or expired), which is not an error. A counter store that cannot
// be reached is an Unavailable problem; the reservation then expires on its own.
func (s *Service) Release(ctx context.Context, customerID, reservationID string) (bool, error) {
	if !validCustomerID(customerID) {
		return false, problem.Invalidf("customerId", "is required: 1 to 256 letters, digits or _ . : @ -")
	}
	if !validText(reservationID, false) {
		return false, problem.Invalidf("reservationId", "is required: 1 to 256 characters, no control characters")
	}
	ok, err := s.counters.Release(ctx, customerID, reservationID)
	if err != nil {
		return false, storeError("release reservation", err)
	}
	return ok, nil
}

func storeError(what string, err error) error {
	if errors.Is(err, counter.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return &problem.Error{Kind: problem.Unavailable, Message: what + ": the counter store is unavailable"}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// LimitsState is a customer's live limit state, for GET /v1/customers/{id}/limits.
type LimitsState struct {
	CustomerID    string
	Plan          string
	PlanVersionID int64
	Period        period.Period
	// Tier is the customer's spend tier as the counter store holds it, read as the ladder
	// reads it (the base tier for none); "" without a ladder.
	Tier string
	// Limits are the limits in force in that tier, overrides applied (nil: unlimited; 0:
	// nothing allowed); money exact.
	Limits catalog.Limits
	// Remaining holds each limited dimension's figures, as Result.Remaining.
	Remaining [limit.NumDimensions]Quota
	// Reservations are the open reservations (expired ones until a decision releases them).
	Reservations []counter.Reservation
	// Currency prices the nanos of monthly_spend and wallet_balance.
	Currency money.Currency
}

// Limits reads a customer's live limit state without changing it. Errors as Authorize's
// (NotFound for an unknown customer); an unreachable store is an Unavailable problem.
func (s *Service) Limits(ctx context.Context, customerID string) (LimitsState, error) {
	if !validCustomerID(customerID) {
		return LimitsState{}, problem.Invalidf("customerId", "is required: 1 to 256 letters, digits or _ . : @ -")
	}
	now := s.now()
	cp, err := s.plans.CustomerPlan(ctx, customerID, now)
	if err != nil {
		return LimitsState{}, err
	}
	cl, err := s.limitsFor(&cp)
	if err != nil {
		return LimitsState{}, err
	}
	st, err := s.counters.Limits(ctx, counter.AuthorizeParams{
		CustomerID:  customerID,
		Now:         s.decisionTime(now),
		Period:      counter.PeriodRef{PlanVersionID: cp.PlanVersionID, Start: cp.Period.Start, End: cp.Period.End},
		TokenMeters: cl.info.tokenMeters,
		Limits:      cl.table.Rows,
		TTL:         s.ttl,
	})
	if err != nil {
		return LimitsState{}, storeError("read limits", err)
	}
	out := LimitsState{
		CustomerID: customerID, Plan: cp.Plan.Key, PlanVersionID: cp.PlanVersionID, Period: cp.Period,
		Tier: st.Tier, Reservations: st.Reservations, Currency: cp.Catalog.Currency,
	}
	if _, ok := cl.table.Rows[st.Tier]; !ok || st.Tier == "" {
		out.Tier = cl.table.Base
	}
	row := st.Tier
	if _, ok := cl.table.Effective[row]; !ok {
		row = ""
	}
	out.Limits = cl.table.Effective[row]
	for dim, q := range st.Quotas {
		if q.Active {
			out.Remaining[dim] = Quota{Active: true, Limit: q.Limit, Remaining: q.Remaining,
				ResetAfter: time.Duration(q.ResetAfter) * time.Millisecond, ResetSeconds: ceilSeconds(q.ResetAfter)}
		}
	}
	return out, nil
}
