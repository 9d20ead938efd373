// Package redis is the production counter store, on Redis or Redis Cluster (go-redis v9).
//
// Keys. Every key of one customer carries the hash tag {<escaped customer ID>}, so all of a
// customer's keys live in one Cluster slot and one Lua script touches them all. Keys(prefix, id)
// (or Store.Keys) builds the names; a later script that reads the wallet or the tier (the
// authorize path) must take them from there:
//
//	<prefix>{<id>}:wm                   string  the watermark: the last applied Seq
//	<prefix>{<id>}:life                 string  lifetime spend nanos
//	<prefix>{<id>}:p:<planVersionID>:<startNs>
//	                                    hash    one period: field "spend" (nanos), "events"
//	                                            (count), "u:<meter>" (quantity) per meter
//	<prefix>{<id>}:pidx                 set     "<planVersionID>:<startNs>" of every period
//	                                            applied since the last Rebuild
//	<prefix>{<id>}:tier                 string  the current spend tier (absent: none)
//	<prefix>{<id>}:wallet               hash    grant ID -> balance nanos, for every grant
//	                                            granted or burned (0 and negative kept)
//	<prefix>{<id>}:wallet:exp           hash    grant ID -> expiry in Unix milliseconds
//	                                            (absent: the grant never expires)
//	<prefix>{<id>}:wallet:granted       set     the grant IDs granted: Grant's exactly-once
//	                                            marker
//	<prefix>{<id>}:auth                 hash    the authorize state: "rpm", "rpmf" and "tpm",
//	                                            "tpmf" (each bucket's TAT: whole ms and the
//	                                            fraction in 1/limit), "rtok" and "rnan" (tokens
//	                                            and nanos held by open reservations), "infl"
//	                                            (in flight), "brk" (customer breaker until, ms)
//	<prefix>{<id>}:res                  hash    reservation ID -> the record: MessagePack
//	                                            (Redis's bundled cmsgpack) of 7 values: tokens,
//	                                            nanos (the estimate), expiresAt (ms), window and
//	                                            TPM limit (the bucket settlement adjusts),
//	                                            correlation ID, task ID
//	<prefix>{<id>}:res:exp              zset    reservation ID scored by expiresAt (ms)
//	<prefix>{<id>}:res:corr             hash    correlation ID -> reservation ID
//	<prefix>{<id>}:tbrk:<task ID>       string  a task breaker's until (ms); PEXPIREAT until +
//	                                            counter.BreakerExpiryGrace
//
// Only period keys and task breakers expire (PEXPIREAT at End + Options.Retention, and at a
// breaker's until + counter.BreakerExpiryGrace); the ledger's keys are kept until a Rebuild
// replaces them, and Rebuild never touches the authorize keys (auth, res*, tbrk:*), which are
// not derived from the ledger. Values are decimal integers (no leading zeros, '-' for negatives)
// written by INCRBY, HINCRBY or SET, except the tier. A grant counts in the wallet balance at
// time t (Unix ms) iff its field in :wallet:exp is absent or t < the field's value, so a script
// sums the balance in one pass over HGETALL :wallet and HGETALL :wallet:exp. Lua numbers are
// doubles, exact only to 2^53: such a sum must not go through tonumber unchecked. Expired
// grants are not removed; Rebuild replaces the three wallet keys wholesale.
//
// The prefix defaults to "levy:". The customer ID is escaped so the tag stays well-formed and
// distinct IDs never share keys: '%' becomes "%25", '{' becomes "%7B" and '}' becomes "%7D";
// every other byte (':' and UTF-8 included) is kept. The escaping is injective and the escaped
// ID has no braces, so the tag is exactly the escaped ID. Period keys are anchored to the
// subscription period's start (never epoch buckets). The index holds one short member per
// period ever applied since the last Rebuild, and the wallet keys one field per grant.
//
// Each Apply, Snapshot, Grant and Rebuild is one Lua script (Rebuild reads the index first, so
// it is two round trips); SetTier is one SET or DEL. The authorize path (authorize.go) is one
// script per call (Authorize, Release, Limits, TripBreaker, ResetBreaker) or one HLEN
// (OpenReservations), touching only the customer's tagged keys; Apply settles a reservation in
// its own script. Authorize releases at most counter.MaxExpiredPerCall expired reservations per
// call, in a constant number of commands however many expired. A store made by Open runs
// Authorize on a client of its own that never retries (see Open). Scripts are loaded with SCRIPT LOAD when
// the store is created and re-loaded when Redis answers NOSCRIPT (after a restart or SCRIPT
// FLUSH).
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/levyhq/levy/internal/counter"
)

// Interface guard.
var _ counter.Store = (*Store)(nil)

// DefaultPrefix starts every key unless Options.Prefix says otherwise.
const DefaultPrefix = "levy:"

// rebuildAttempts bounds Rebuild's retries when Applies keep opening periods under it.
const rebuildAttempts = 10

// Options configure a Store. The zero value works.
type Options struct {
	// Prefix starts every key (default "levy:"); it must not contain '{' or '}'.
	Prefix string
	// Retention is how long a period's counters are kept after its End (default
	// counter.DefaultRetention).
	Retention time.Duration
	// Now is the clock used for Rebuild's retention check (default time.Now).
	Now func() time.Time
}

// Store is the Redis counter store.
type Store struct {
	client goredis.UniversalClient
	// auth runs Authorize: Open's own client without retries (see Open); client otherwise.
	auth      goredis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
}

// Open connects to the Redis at url (redis:// or rediss://, as go-redis's ParseURL reads it),
// loads the scripts and returns a store that owns its clients.
//
// Authorize runs on a second client of the same server, with its own connection pool, so
// decisions never queue behind Apply's scripts, and with settings of its own: no retries and a
// single dial attempt (a refused or broken connection is reported at once, so the caller fails
// open at once, and a script whose reply was lost is never run twice, which would report its
// own reservation as already open) and a dial timeout of at most AuthorizeDialTimeout. The URL's other options
// (pool_size, read_timeout…) apply to both clients.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: redis url: %v", counter.ErrInvalid, err)
	}
	// Let the caller's context deadline bound socket reads and writes too, so a slow Redis
	// costs no more than the deadline.
	o.ContextTimeoutEnabled = true
	ao := *o
	ao.MaxRetries = -1
	ao.DialerRetries = 1 // one dial attempt: go-redis would otherwise dial 5 times, 100 ms apart
	if ao.DialTimeout <= 0 || ao.DialTimeout > AuthorizeDialTimeout {
		ao.DialTimeout = AuthorizeDialTimeout
	}
	client := goredis.NewClient(o)
	auth := goredis.NewClient(&ao)
	s, err := New(ctx, client, opts)
	if err != nil {
		_ = client.Close()
		_ = auth.Close()
		return nil, err
	}
	s.auth = auth
	return s, nil
}

// AuthorizeDialTimeout bounds dialing a connection for Authorize on a store made by Open.
const AuthorizeDialTimeout = time.Second

// New returns a store on client (a *redis.Client or *redis.ClusterClient) after loading the
// scripts with SCRIPT LOAD. The store owns the client: Close closes it. The client should have
// ContextTimeoutEnabled set, as Open's has, or context deadlines will not bound socket reads.
func New(ctx context.Context, client goredis.UniversalClient, opts Options) (*Store, error) {
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: key prefix %q contains a brace", counter.ErrInvalid, opts.Prefix)
	}
	s := &Store{client: client, auth: client, prefix: opts.Prefix, retention: opts.Retention, now: opts.Now}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.retention <= 0 {
		s.retention = counter.DefaultRetention
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, sc := range []*goredis.Script{applyScript, snapshotScript, grantScript, rebuildScript,
		authorizeScript, releaseScript, limitsScript, tripScript, resetScript} {
		if err := sc.Load(ctx, client).Err(); err != nil {
			return nil, translate(ctx, "load counter scripts", err)
		}
	}
	return s, nil
}

// Close closes the clients; calling it twice is harmless.
func (s *Store) Close() error {
	err := s.client.Close()
	if s.auth != s.client {
		if aerr := s.auth.Close(); err == nil {
			err = aerr
		}
	}
	if err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("close redis counter store: %v", err)
	}
	return nil
}

// Tag returns the hash tag of a customer's keys, braces included.
func Tag(customerID string) string {
	var b strings.Builder
	b.Grow(len(customerID) + 2)
	b.WriteByte('{')
	for i := 0; i < len(customerID); i++ {
		switch c := customerID[i]; c {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// KeySet names every key of one customer (see the package doc for types and contents).
type KeySet struct {
	Watermark     string // string: the last applied Seq
	Lifetime      string // string: lifetime spend nanos
	PeriodIndex   string // set: the period members applied since the last Rebuild
	Tier          string // string: the current spend tier
	Wallet        string // hash: grant ID -> balance nanos
	WalletExpiry  string // hash: grant ID -> expiry, Unix ms (absent: never)
	WalletGranted string // set: the grant IDs granted
	// The authorize state.
	Auth                   string // hash: buckets, reserved tokens and nanos, in flight, breaker
	Reservations           string // hash: reservation ID -> packed record
	ReservationExpiry      string // zset: reservation ID by expiresAt (ms)
	ReservationCorrelation string // hash: correlation ID -> reservation ID
	base                   string // prefix + tag + ":"
}

// Keys returns the key names of a customer's counters under prefix (DefaultPrefix unless the
// store's Options say otherwise).
func Keys(prefix, customerID string) KeySet {
	base := prefix + Tag(customerID) + ":"
	return KeySet{
		Watermark:     base + "wm",
		Lifetime:      base + "life",
		PeriodIndex:   base + "pidx",
		Tier:          base + "tier",
		Wallet:        base + "wallet",
		WalletExpiry:  base + "wallet:exp",
		WalletGranted: base + "wallet:granted",

		Auth:                   base + "auth",
		Reservations:           base + "res",
		ReservationExpiry:      base + "res:exp",
		ReservationCorrelation: base + "res:corr",
		base:                   base,
	}
}

// TaskBreaker returns the key of a task breaker (string: until, Unix ms).
func (k KeySet) TaskBreaker(taskID string) string { return k.base + "tbrk:" + taskID }

// Keys returns the key names of a customer's counters in this store.
func (s *Store) Keys(customerID string) KeySet { return Keys(s.prefix, customerID) }

// Period returns the key of one period's hash.
func (k KeySet) Period(r counter.PeriodRef) string { return k.periodOf(periodMember(r)) }

func (k KeySet) periodOf(member string) string { return k.base + "p:" + member }

// periodMember names a period inside a customer's keys: "<planVersionID>:<startUnixNano>".
func periodMember(r counter.PeriodRef) string {
	return strconv.FormatInt(r.PlanVersionID, 10) + ":" + strconv.FormatInt(r.Start.UnixNano(), 10)
}

const usagePrefix = "u:"

// Apply implements counter.Store.
func (s *Store) Apply(ctx context.Context, p counter.ApplyParams) (counter.Applied, error) {
	if err := p.Validate(); err != nil {
		return counter.Applied{}, err
	}
	k := s.Keys(p.CustomerID)
	member := periodMember(p.Period)
	ks := []string{k.Watermark, k.Lifetime, k.periodOf(member), k.PeriodIndex, k.Wallet, k.Tier,
		k.Auth, k.Reservations, k.ReservationExpiry, k.ReservationCorrelation}
	const fixed = 10
	args := make([]any, fixed, fixed+2*len(p.Usage)+2*len(p.Wallet))
	args[0] = strconv.FormatInt(p.Seq, 10)
	args[1] = strconv.FormatInt(p.SpendNanos, 10)
	args[2] = strconv.FormatInt(p.Events, 10)
	args[3] = strconv.FormatInt(p.Period.End.Add(s.retention).UnixMilli(), 10)
	args[4] = member
	args[5] = p.Tier
	args[7] = p.CorrelationID
	args[8] = strconv.FormatInt(p.Tokens, 10)
	args[9] = ""
	if !p.Now.IsZero() {
		args[9] = strconv.FormatInt(p.Now.UnixMilli(), 10)
	}
	for m, q := range p.Usage {
		if q != 0 {
			args = append(args, usagePrefix+m, strconv.FormatInt(q, 10))
		}
	}
	args[6] = strconv.Itoa((len(args) - fixed) / 2)
	for id, burn := range p.Wallet {
		if burn != 0 {
			args = append(args, id, strconv.FormatInt(-burn, 10)) // burn > MinInt64: validated
		}
	}
	op := "apply to customer " + strconv.Quote(p.CustomerID)
	res, err := s.run(ctx, applyScript, ks, args...).Slice()
	if err != nil {
		return counter.Applied{}, translate(ctx, op, err)
	}
	if len(res) < 2 {
		return counter.Applied{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	code, _ := res[0].(int64)
	second, _ := res[1].(string)
	switch {
	case (code == 0 || code == 1) && len(res) == 3:
		wm, err := strconv.ParseInt(second, 10, 64)
		if err != nil {
			return counter.Applied{}, fmt.Errorf("%s: watermark %q: %v", op, second, err)
		}
		settled, _ := res[2].(int64)
		return counter.Applied{Applied: code == 1, Watermark: wm, Settled: settled == 1}, nil
	case code == 2 && len(res) == 3:
		field, _ := res[2].(string)
		return counter.Applied{}, fmt.Errorf("%s: %s: %w", op, overflowWhat(second, field), counter.ErrOverflow)
	default:
		return counter.Applied{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
}

// overflowWhat names the counter of an overflow reply of the Apply script, in the words the
// memory driver uses.
func overflowWhat(kind, field string) string {
	switch {
	case kind == "life":
		return "lifetime spend"
	case kind == "wallet":
		return "balance of grant " + field
	case field == "spend", field == "events":
		return "period " + field
	case strings.HasPrefix(field, usagePrefix):
		return "usage of meter " + field[len(usagePrefix):]
	default:
		return kind + " " + field
	}
}

// Snapshot implements counter.Store.
func (s *Store) Snapshot(ctx context.Context, customerID string, ref counter.PeriodRef) (counter.Snapshot, error) {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return counter.Snapshot{}, err
	}
	k := s.Keys(customerID)
	op := "snapshot customer " + strconv.Quote(customerID)
	res, err := s.run(ctx, snapshotScript, []string{k.Watermark, k.Lifetime, k.Period(ref), k.Tier,
		k.Wallet, k.WalletExpiry}).Slice()
	if err != nil {
		return counter.Snapshot{}, translate(ctx, op, err)
	}
	if len(res) != 6 {
		return counter.Snapshot{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	var snap counter.Snapshot
	if snap.Watermark, err = parseOpt(res[0]); err != nil {
		return counter.Snapshot{}, fmt.Errorf("%s: watermark: %v", op, err)
	}
	if snap.LifetimeSpendNanos, err = parseOpt(res[1]); err != nil {
		return counter.Snapshot{}, fmt.Errorf("%s: lifetime spend: %v", op, err)
	}
	flat, _ := res[2].([]any)
	for i := 0; i+1 < len(flat); i += 2 {
		f, _ := flat[i].(string)
		v, err := parseOpt(flat[i+1])
		if err != nil {
			return counter.Snapshot{}, fmt.Errorf("%s: field %q: %v", op, f, err)
		}
		switch {
		case f == "spend":
			snap.Period.SpendNanos = v
		case f == "events":
			snap.Period.Events = v
		case strings.HasPrefix(f, usagePrefix) && v != 0:
			if snap.Period.Usage == nil {
				snap.Period.Usage = make(map[string]int64, len(flat)/2)
			}
			snap.Period.Usage[f[len(usagePrefix):]] = v
		}
	}
	snap.Tier, _ = res[3].(string)
	wallet, _ := res[4].([]any)
	expiries, _ := res[5].([]any)
	if len(wallet)+len(expiries) > 0 {
		snap.Grants = make(map[string]counter.GrantCounter, len(wallet)/2)
	}
	for i := 0; i+1 < len(wallet); i += 2 {
		id, _ := wallet[i].(string)
		v, err := parseOpt(wallet[i+1])
		if err != nil {
			return counter.Snapshot{}, fmt.Errorf("%s: balance of grant %q: %v", op, id, err)
		}
		snap.Grants[id] = counter.GrantCounter{Nanos: v}
	}
	for i := 0; i+1 < len(expiries); i += 2 {
		id, _ := expiries[i].(string)
		ms, err := parseOpt(expiries[i+1])
		if err != nil {
			return counter.Snapshot{}, fmt.Errorf("%s: expiry of grant %q: %v", op, id, err)
		}
		g := snap.Grants[id]
		g.ExpiresAt = counter.ExpiryTime(ms)
		snap.Grants[id] = g
	}
	return snap, nil
}

// Grant implements counter.Store.
func (s *Store) Grant(ctx context.Context, p counter.GrantParams) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	k := s.Keys(p.CustomerID)
	expiry := ""
	if ms, ok := counter.ExpiryMillis(p.ExpiresAt); ok {
		expiry = strconv.FormatInt(ms, 10)
	}
	op := "grant to customer " + strconv.Quote(p.CustomerID)
	code, err := s.run(ctx, grantScript, []string{k.Wallet, k.WalletExpiry, k.WalletGranted},
		p.GrantID, strconv.FormatInt(p.Nanos, 10), expiry).Int64()
	if err != nil {
		return false, translate(ctx, op, err)
	}
	switch code {
	case 0, 1:
		return code == 1, nil
	case 2:
		return false, fmt.Errorf("%s: balance of grant %s: %w", op, p.GrantID, counter.ErrOverflow)
	default:
		return false, fmt.Errorf("%s: unexpected script reply %d", op, code)
	}
}

// SetTier implements counter.Store.
func (s *Store) SetTier(ctx context.Context, customerID, tier string) error {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return err
	}
	key := s.Keys(customerID).Tier
	var err error
	if tier == "" {
		err = s.client.Del(ctx, key).Err()
	} else {
		err = s.client.Set(ctx, key, tier, 0).Err()
	}
	if err != nil {
		return translate(ctx, "set tier of customer "+strconv.Quote(customerID), err)
	}
	return nil
}

// parseOpt parses a string reply; nil reads as zero.
func parseOpt(v any) (int64, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case string:
		return strconv.ParseInt(v, 10, 64)
	case int64:
		return v, nil
	default:
		return 0, fmt.Errorf("unexpected reply %T", v)
	}
}

// Rebuild implements counter.Store.
func (s *Store) Rebuild(ctx context.Context, p counter.RebuildParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	k := s.Keys(p.CustomerID)
	op := "rebuild customer " + strconv.Quote(p.CustomerID)
	now := s.now()

	// The new periods, in a stable order; those already past retention are left out, as
	// Redis would drop them at once.
	type newPeriod struct {
		member, expireAt string
		fields           []any
	}
	var fresh []newPeriod
	for ref, pc := range p.Periods {
		exp := ref.End.Add(s.retention)
		if !exp.After(now) {
			continue
		}
		np := newPeriod{member: periodMember(ref), expireAt: strconv.FormatInt(exp.UnixMilli(), 10)}
		if pc.SpendNanos != 0 {
			np.fields = append(np.fields, "spend", strconv.FormatInt(pc.SpendNanos, 10))
		}
		if pc.Events != 0 {
			np.fields = append(np.fields, "events", strconv.FormatInt(pc.Events, 10))
		}
		for m, q := range pc.Usage {
			if q != 0 {
				np.fields = append(np.fields, usagePrefix+m, strconv.FormatInt(q, 10))
			}
		}
		fresh = append(fresh, np)
	}
	slices.SortFunc(fresh, func(a, b newPeriod) int { return strings.Compare(a.member, b.member) })

	// The wallet: ID, nanos, expiry ("" for never) per grant.
	grants := make([]any, 0, 3*len(p.Grants))
	for id, g := range p.Grants {
		expiry := ""
		if ms, ok := counter.ExpiryMillis(g.ExpiresAt); ok {
			expiry = strconv.FormatInt(ms, 10)
		}
		grants = append(grants, id, strconv.FormatInt(g.Nanos, 10), expiry)
	}

	for range rebuildAttempts {
		old, err := s.client.SMembers(ctx, k.PeriodIndex).Result()
		if err != nil {
			return translate(ctx, op, err)
		}
		ks := []string{k.Watermark, k.Lifetime, k.PeriodIndex, k.Tier, k.Wallet, k.WalletExpiry, k.WalletGranted}
		args := []any{strconv.FormatInt(p.Watermark, 10), strconv.FormatInt(p.LifetimeSpendNanos, 10), p.Tier,
			strconv.Itoa(len(p.Grants)), strconv.Itoa(len(old)), strconv.Itoa(len(fresh))}
		args = append(args, grants...)
		for _, m := range old {
			ks = append(ks, k.periodOf(m))
			args = append(args, m)
		}
		for _, np := range fresh {
			ks = append(ks, k.periodOf(np.member))
			args = append(args, np.member, np.expireAt, strconv.Itoa(len(np.fields)/2))
			args = append(args, np.fields...)
		}
		done, err := s.run(ctx, rebuildScript, ks, args...).Int64()
		if err != nil {
			return translate(ctx, op, err)
		}
		if done == 1 {
			return nil
		}
	}
	return fmt.Errorf("%s: the customer's periods kept changing under %d attempts", op, rebuildAttempts)
}

// run runs a script with EVALSHA; on NOSCRIPT (Redis restarted or SCRIPT FLUSH) it loads the
// script again with SCRIPT LOAD and retries once.
func (s *Store) run(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	return runOn(ctx, s.client, sc, keys, args...)
}

func runOn(ctx context.Context, c goredis.UniversalClient, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	cmd := sc.EvalSha(ctx, c, keys, args...)
	if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		if err := sc.Load(ctx, c).Err(); err != nil {
			return sc.Eval(ctx, c, keys, args...)
		}
		cmd = sc.EvalSha(ctx, c, keys, args...)
	}
	return cmd
}

// translate turns a driver error into a counter error: ErrUnavailable when Redis could not be
// reached or did not answer in time, the context's error when the caller canceled, and
// otherwise a wrapped message. The go-redis error itself never crosses the seam.
func translate(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w: %w", op, counter.ErrUnavailable, cerr)
		}
		return fmt.Errorf("%s: %w", op, cerr)
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %v", op, counter.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: redis: %v", op, err)
}

func unavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, goredis.ErrClosed),
		errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, goredis.ErrPoolExhausted):
		return true
	}
	for _, p := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "BUSY"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}
