// Package redis is the production counter store, on Redis or Redis Cluster (go-redis v9).
//
// Keys. Every key of one customer carries the hash tag {<escaped customer ID>}, so all of a
// customer's keys live in one Cluster slot and one Lua script touches them all:
//
//	<prefix>{<id>}:wm                          watermark (string)
//	<prefix>{<id>}:life                        lifetime spend nanos (string)
//	<prefix>{<id>}:p:<planVersionID>:<startNs>  one period (hash: spend, events, u:<meter>)
//	<prefix>{<id>}:pidx                        the customer's period members (set), for Rebuild
//
// The prefix defaults to "levy:". The customer ID is escaped so the tag stays well-formed and
// distinct IDs never share keys: '%' becomes "%25", '{' becomes "%7B" and '}' becomes "%7D";
// every other byte (':' and UTF-8 included) is kept. The escaping is injective and the escaped
// ID has no braces, so the tag is exactly the escaped ID. Period keys are anchored to the
// subscription period's start (never epoch buckets) and expire with PEXPIREAT at End +
// Options.Retention. The watermark, lifetime and index keys do not expire; the index holds one
// short member per period ever applied since the last Rebuild.
//
// Each Apply, Snapshot and Rebuild is one Lua script (Rebuild reads the index first, so it is
// two round trips). Scripts are loaded with SCRIPT LOAD when the store is created and re-loaded
// when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
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
	client    goredis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
}

// Open connects to the Redis at url (redis:// or rediss://, as go-redis's ParseURL reads it),
// loads the scripts and returns a store that owns the client.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: redis url: %v", counter.ErrInvalid, err)
	}
	// Let the caller's context deadline bound socket reads and writes too, so a slow Redis
	// costs no more than the deadline (the authorize path's fail-open budget).
	o.ContextTimeoutEnabled = true
	client := goredis.NewClient(o)
	s, err := New(ctx, client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// New returns a store on client (a *redis.Client or *redis.ClusterClient) after loading the
// scripts with SCRIPT LOAD. The store owns the client: Close closes it. The client should have
// ContextTimeoutEnabled set, as Open's has, or context deadlines will not bound socket reads.
func New(ctx context.Context, client goredis.UniversalClient, opts Options) (*Store, error) {
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: key prefix %q contains a brace", counter.ErrInvalid, opts.Prefix)
	}
	s := &Store{client: client, prefix: opts.Prefix, retention: opts.Retention, now: opts.Now}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.retention <= 0 {
		s.retention = counter.DefaultRetention
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, sc := range []*goredis.Script{applyScript, snapshotScript, rebuildScript} {
		if err := sc.Load(ctx, client).Err(); err != nil {
			return nil, translate(ctx, "load counter scripts", err)
		}
	}
	return s, nil
}

// Close closes the client; calling it twice is harmless.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
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

// keys of one customer.
type keys struct{ base string } // prefix + tag + ":"

func (s *Store) keysOf(customerID string) keys { return keys{s.prefix + Tag(customerID) + ":"} }
func (k keys) watermark() string               { return k.base + "wm" }
func (k keys) lifetime() string                { return k.base + "life" }
func (k keys) index() string                   { return k.base + "pidx" }
func (k keys) period(member string) string     { return k.base + "p:" + member }

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
	k := s.keysOf(p.CustomerID)
	member := periodMember(p.Period)
	ks := []string{k.watermark(), k.lifetime(), k.period(member), k.index()}
	args := make([]any, 5, 5+2*len(p.Usage))
	args[0] = strconv.FormatInt(p.Seq, 10)
	args[1] = strconv.FormatInt(p.SpendNanos, 10)
	args[2] = strconv.FormatInt(p.Events, 10)
	args[3] = strconv.FormatInt(p.Period.End.Add(s.retention).UnixMilli(), 10)
	args[4] = member
	for m, q := range p.Usage {
		if q != 0 {
			args = append(args, usagePrefix+m, strconv.FormatInt(q, 10))
		}
	}
	op := "apply to customer " + strconv.Quote(p.CustomerID)
	res, err := s.run(ctx, applyScript, ks, args...).Slice()
	if err != nil {
		return counter.Applied{}, translate(ctx, op, err)
	}
	if len(res) != 2 {
		return counter.Applied{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	code, _ := res[0].(int64)
	second, _ := res[1].(string)
	switch code {
	case 0, 1:
		wm, err := strconv.ParseInt(second, 10, 64)
		if err != nil {
			return counter.Applied{}, fmt.Errorf("%s: watermark %q: %v", op, second, err)
		}
		return counter.Applied{Applied: code == 1, Watermark: wm}, nil
	case 2:
		return counter.Applied{}, fmt.Errorf("%s: %s: %w", op, strings.TrimPrefix(second, usagePrefix), counter.ErrOverflow)
	default:
		return counter.Applied{}, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
}

// Snapshot implements counter.Store.
func (s *Store) Snapshot(ctx context.Context, customerID string, ref counter.PeriodRef) (counter.Snapshot, error) {
	if err := counter.ValidateCustomerID(customerID); err != nil {
		return counter.Snapshot{}, err
	}
	k := s.keysOf(customerID)
	op := "snapshot customer " + strconv.Quote(customerID)
	res, err := s.run(ctx, snapshotScript, []string{k.watermark(), k.lifetime(), k.period(periodMember(ref))}).Slice()
	if err != nil {
		return counter.Snapshot{}, translate(ctx, op, err)
	}
	if len(res) != 3 {
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
	return snap, nil
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
	k := s.keysOf(p.CustomerID)
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

	for range rebuildAttempts {
		old, err := s.client.SMembers(ctx, k.index()).Result()
		if err != nil {
			return translate(ctx, op, err)
		}
		ks := []string{k.watermark(), k.lifetime(), k.index()}
		args := []any{strconv.FormatInt(p.Watermark, 10), strconv.FormatInt(p.LifetimeSpendNanos, 10),
			strconv.Itoa(len(old)), strconv.Itoa(len(fresh))}
		for _, m := range old {
			ks = append(ks, k.period(m))
			args = append(args, m)
		}
		for _, np := range fresh {
			ks = append(ks, k.period(np.member))
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
	cmd := sc.EvalSha(ctx, s.client, keys, args...)
	if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return sc.Eval(ctx, s.client, keys, args...)
		}
		cmd = sc.EvalSha(ctx, s.client, keys, args...)
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
