package redis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
)

// Authorize implements counter.Authorizer: one EVALSHA of authorizeScript, then limit.Decide
// in Go on the state the script decided on, for the reason, the waits and the quotas.
func (s *Store) Authorize(ctx context.Context, p counter.AuthorizeParams) (counter.AuthorizeResult, error) {
	if err := p.Validate(); err != nil {
		return counter.AuthorizeResult{}, err
	}
	k := s.Keys(p.CustomerID)
	taskKey := k.Auth
	if p.TaskID != "" {
		taskKey = k.TaskBreaker(p.TaskID)
	}
	keys := []string{k.Auth, k.Reservations, k.ReservationExpiry, k.ReservationCorrelation, k.Tier,
		k.Period(p.Period), k.Wallet, k.WalletExpiry, taskKey}
	args := make([]any, 0, 9+len(p.TokenMeters)+8*len(p.Limits))
	args = append(args, nowArg(p.Now), p.ReservationID, p.CorrelationID, p.TaskID,
		strconv.FormatInt(p.Estimate.Tokens, 10), strconv.FormatInt(p.Estimate.Nanos, 10),
		strconv.FormatInt(p.TTLMillis(), 10), strconv.Itoa(len(p.TokenMeters)))
	for _, m := range p.TokenMeters {
		args = append(args, usagePrefix+m)
	}
	args = append(args, strconv.Itoa(len(p.Limits)))
	for tier, row := range p.Limits {
		wl := "0"
		if row.WalletLimited {
			wl = "1"
		}
		args = append(args, tier, strconv.FormatInt(row.Window, 10), strconv.FormatInt(row.RequestsPerWindow, 10),
			strconv.FormatInt(row.TokensPerWindow, 10), strconv.FormatInt(row.MonthlyTokens, 10),
			strconv.FormatInt(row.MonthlySpend, 10), strconv.FormatInt(row.MaxConcurrent, 10), wl)
	}
	op := "authorize customer " + strconv.Quote(p.CustomerID)
	res, err := runOn(ctx, s.auth, authorizeScript, keys, args...).Slice()
	if err != nil {
		return counter.AuthorizeResult{}, translate(ctx, op, err)
	}
	if len(res) == 1 && res[0] == int64(1) {
		return counter.AuthorizeResult{}, fmt.Errorf("%w: customer %q: reservationId: %q is already open",
			counter.ErrInvalid, p.CustomerID, p.ReservationID)
	}
	if len(res) != 18 || res[0] != int64(0) {
		return counter.AuthorizeResult{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	tier, _ := res[1].(string)
	var n [16]int64
	for i := range n {
		v, ok := res[i+2].(int64)
		if !ok {
			return counter.AuthorizeResult{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
		}
		n[i] = v
	}
	allowed, released, now, hasWallet := n[0] == 1, n[1], n[2], n[3] == 1
	st := limit.State{
		RPM: limit.TAT{At: n[4], Frac: n[5]}, TPM: limit.TAT{At: n[6], Frac: n[7]},
		UsedTokens: n[8], ReservedTokens: n[9], UsedNanos: n[10], ReservedNanos: n[11], InFlight: n[12],
		Balance: n[13], BreakerUntil: n[14], TaskBreakerUntil: n[15],
	}
	d := limit.Decide(st, p.Request(tier, hasWallet), now)
	if d.Allowed != allowed {
		// The script and limit disagree: a bug, which the shared vectors exist to catch.
		return counter.AuthorizeResult{}, fmt.Errorf("%s: the script decided allowed=%t but limit.Decide %t on state %+v",
			op, allowed, d.Allowed, st)
	}
	out := counter.AuthorizeResult{Decision: d, Tier: tier, ExpiredReleased: int(released)}
	if allowed {
		out.ReservationID = p.ReservationID
	}
	return out, nil
}

func nowArg(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// Release implements counter.Authorizer.
func (s *Store) Release(ctx context.Context, customerID, reservationID string) (bool, error) {
	if err := counter.ValidateReservation(customerID, reservationID); err != nil {
		return false, err
	}
	k := s.Keys(customerID)
	n, err := s.run(ctx, releaseScript, []string{k.Auth, k.Reservations, k.ReservationExpiry, k.ReservationCorrelation},
		reservationID).Int64()
	if err != nil {
		return false, translate(ctx, "release reservation "+strconv.Quote(reservationID)+" of customer "+strconv.Quote(customerID), err)
	}
	return n == 1, nil
}

// Limits implements counter.Authorizer: one read-only script, the arithmetic in Go.
func (s *Store) Limits(ctx context.Context, p counter.AuthorizeParams) (counter.LimitsState, error) {
	if err := p.ValidateLimits(); err != nil {
		return counter.LimitsState{}, err
	}
	k := s.Keys(p.CustomerID)
	taskKey := k.Auth
	if p.TaskID != "" {
		taskKey = k.TaskBreaker(p.TaskID)
	}
	// Whether any row is wallet-limited: the tier is read by the script, so read the wallet
	// when any row might need it.
	readWallet := "0"
	for _, row := range p.Limits {
		if row.WalletLimited {
			readWallet = "1"
		}
	}
	args := []any{nowArg(p.Now), p.TaskID, readWallet}
	for _, m := range p.TokenMeters {
		args = append(args, usagePrefix+m)
	}
	op := "read limits of customer " + strconv.Quote(p.CustomerID)
	res, err := s.run(ctx, limitsScript, []string{k.Auth, k.Reservations, k.Tier, k.Period(p.Period), k.Wallet,
		k.WalletExpiry, taskKey}, args...).Slice()
	if err != nil {
		return counter.LimitsState{}, translate(ctx, op, err)
	}
	if len(res) != 8 {
		return counter.LimitsState{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	now, _ := res[0].(int64)
	tier, _ := res[1].(string)
	auth, _ := res[2].([]any)
	period, _ := res[3].([]any)
	wallet, _ := res[4].([]any)
	expiries, _ := res[5].([]any)
	records, _ := res[7].([]any)
	if len(auth) != 8 || len(period) != 1+len(p.TokenMeters) {
		return counter.LimitsState{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	var f [8]int64
	for i, v := range auth {
		if f[i], err = parseOpt(v); err != nil {
			return counter.LimitsState{}, fmt.Errorf("%s: authorize state: %v", op, err)
		}
	}
	st := limit.State{RPM: limit.TAT{At: f[0], Frac: f[1]}, TPM: limit.TAT{At: f[2], Frac: f[3]},
		ReservedTokens: f[4], ReservedNanos: f[5], InFlight: f[6], BreakerUntil: f[7]}
	if tb, _ := res[6].(string); tb != "" {
		if st.TaskBreakerUntil, err = strconv.ParseInt(tb, 10, 64); err != nil {
			return counter.LimitsState{}, fmt.Errorf("%s: task breaker: %v", op, err)
		}
	}
	if st.UsedNanos, err = parseOpt(period[0]); err != nil {
		return counter.LimitsState{}, fmt.Errorf("%s: period spend: %v", op, err)
	}
	var used counter.Sum
	for _, v := range period[1:] {
		q, err := parseOpt(v)
		if err != nil {
			return counter.LimitsState{}, fmt.Errorf("%s: period usage: %v", op, err)
		}
		used.Add(q)
	}
	st.UsedTokens = used.Clamp(-limit.MaxValue, limit.MaxValue)
	row := p.Row(tier)
	hasWallet := false
	if row.WalletLimited {
		exp := make(map[string]int64, len(expiries)/2)
		for i := 0; i+1 < len(expiries); i += 2 {
			id, _ := expiries[i].(string)
			ms, err := parseOpt(expiries[i+1])
			if err != nil {
				return counter.LimitsState{}, fmt.Errorf("%s: expiry of grant %q: %v", op, id, err)
			}
			exp[id] = ms
		}
		var bal counter.Sum
		for i := 0; i+1 < len(wallet); i += 2 {
			id, _ := wallet[i].(string)
			v, err := parseOpt(wallet[i+1])
			if err != nil {
				return counter.LimitsState{}, fmt.Errorf("%s: balance of grant %q: %v", op, id, err)
			}
			if e, ok := exp[id]; ok && now >= e {
				continue
			}
			bal.Add(v)
		}
		hasWallet = len(wallet) > 0
		st.Balance = bal.Clamp(-limit.MaxValue, limit.MaxValue)
	}
	req := p.Request(tier, hasWallet)
	ls := counter.LimitsState{Tier: tier, Quotas: counter.LiveQuotas(counter.DecisionState(st, req.Limits, now), req, now)}
	for i := 0; i+5 < len(records); i += 6 {
		id, _ := records[i].(string)
		tok, _ := records[i+1].(int64)
		nan, _ := records[i+2].(int64)
		exp, _ := records[i+3].(int64)
		corr, _ := records[i+4].(string)
		task, _ := records[i+5].(string)
		ls.Reservations = append(ls.Reservations, counter.Reservation{ID: id, CorrelationID: corr, TaskID: task,
			Estimate: limit.Usage{Tokens: tok, Nanos: nan}, ExpiresAt: counter.ExpiryTime(exp)})
	}
	slices.SortFunc(ls.Reservations, func(x, y counter.Reservation) int {
		return cmp.Or(x.ExpiresAt.Compare(y.ExpiresAt), cmp.Compare(x.ID, y.ID))
	})
	return ls, nil
}

// TripBreaker implements counter.Authorizer.
func (s *Store) TripBreaker(ctx context.Context, customerID, scope, key string, until time.Time) error {
	if err := counter.ValidateBreaker(customerID, scope, key, until, true); err != nil {
		return err
	}
	k := s.Keys(customerID)
	ms := counter.BreakerUntilMillis(until)
	target, mode := k.Auth, "c"
	if scope == counter.BreakerTask {
		target, mode = k.TaskBreaker(key), "t"
	}
	expireAt := strconv.FormatInt(ms+counter.BreakerExpiryGrace.Milliseconds(), 10)
	if err := s.run(ctx, tripScript, []string{target}, mode, strconv.FormatInt(ms, 10), expireAt).Err(); err != nil {
		return translate(ctx, "trip "+scope+" breaker "+strconv.Quote(key)+" of customer "+strconv.Quote(customerID), err)
	}
	return nil
}

// ResetBreaker implements counter.Authorizer.
func (s *Store) ResetBreaker(ctx context.Context, customerID, scope, key string) (bool, error) {
	if err := counter.ValidateBreaker(customerID, scope, key, time.Time{}, false); err != nil {
		return false, err
	}
	k := s.Keys(customerID)
	target, mode := k.Auth, "c"
	if scope == counter.BreakerTask {
		target, mode = k.TaskBreaker(key), "t"
	}
	n, err := s.run(ctx, resetScript, []string{target}, mode).Int64()
	if err != nil {
		return false, translate(ctx, "reset "+scope+" breaker "+strconv.Quote(key)+" of customer "+strconv.Quote(customerID), err)
	}
	return n == 1, nil
}

// OpenReservations implements counter.Authorizer: one HLEN.
func (s *Store) OpenReservations(ctx context.Context, customerID string) (int64, error) {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return 0, err
	}
	n, err := s.client.HLen(ctx, s.Keys(customerID).Reservations).Result()
	if err != nil {
		return 0, translate(ctx, "count reservations of customer "+strconv.Quote(customerID), err)
	}
	return n, nil
}
