package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/counter/countertest"
	"github.com/levyhq/levy/internal/counter/redis"
	"github.com/levyhq/levy/internal/testenv"
)

// rawClient returns a client of the test Redis, closed when the test ends; it skips or fails the
// test when Redis is unavailable.
func rawClient(t testing.TB) *goredis.Client {
	t.Helper()
	url := testenv.RedisURL(t)
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", testenv.RedisURLVar, err)
	}
	c := goredis.NewClient(o)
	if err := c.Ping(context.Background()).Err(); err != nil {
		_ = c.Close()
		testenv.Skip(t, "Redis", err)
		return nil
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// open returns a store whose keys all start with a fresh random prefix, and that prefix; the
// keys are deleted when the test ends, so parallel runs never see each other's keys.
func open(t testing.TB) (*redis.Store, string) {
	t.Helper()
	raw := rawClient(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "levytest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range scan(t, raw, prefix+"*") {
			if err := raw.Del(ctx, k).Err(); err != nil {
				t.Errorf("delete %s: %v", k, err)
			}
		}
	})
	s, err := redis.Open(context.Background(), testenv.RedisURL(t), redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("open redis counter store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, prefix
}

func scan(t testing.TB, c *goredis.Client, match string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(context.Background(), 0, match, 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s: %v", match, err)
	}
	return out
}

func TestConformance(t *testing.T) {
	countertest.Exercise(t, func(t *testing.T) counter.Store {
		s, _ := open(t)
		return s
	})
}

func TestAuthorizeConformance(t *testing.T) {
	raw := rawClient(t)
	prefixes := map[counter.Store]string{}
	var mu sync.Mutex
	ctx := context.Background()
	countertest.ExerciseAuthorize(t, countertest.AuthHarness{
		Open: func(t *testing.T) counter.Store {
			s, prefix := open(t)
			mu.Lock()
			prefixes[s] = prefix
			mu.Unlock()
			return s
		},
		SetState: func(t *testing.T, s counter.Store, customerID, taskID string, st limit.State) {
			if err := redis.SetAuthState(ctx, s.(*redis.Store), customerID, taskID, st); err != nil {
				t.Fatal(err)
			}
		},
		State: func(t *testing.T, s counter.Store, customerID, taskID string) limit.State {
			st, err := redis.AuthState(ctx, s.(*redis.Store), customerID, taskID)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		Dump: func(t *testing.T, s counter.Store, customerID string) string {
			mu.Lock()
			prefix := prefixes[s]
			mu.Unlock()
			return dump(t, raw, prefix, customerID)
		},
	})
}

// dump renders every key of a customer: name, type, absolute expiry and contents, sorted.
func dump(t testing.TB, raw *goredis.Client, prefix, customerID string) string {
	t.Helper()
	ctx := context.Background()
	keys := scan(t, raw, globEscape(prefix+redis.Tag(customerID))+"*")
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		typ, err := raw.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		exp, err := raw.PExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s expire %d:", k, typ, exp.Milliseconds())
		switch typ {
		case "string":
			v, err := raw.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, " %q", v)
		case "hash":
			h, err := raw.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range slices.Sorted(maps.Keys(h)) {
				fmt.Fprintf(&b, " %q=%q", f, h[f])
			}
		case "set":
			m, err := raw.SMembers(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(m)
			fmt.Fprintf(&b, " %q", m)
		case "zset":
			z, err := raw.ZRangeWithScores(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range z {
				fmt.Fprintf(&b, " %q@%s", e.Member, strconv.FormatFloat(e.Score, 'f', -1, 64))
			}
		default:
			t.Fatalf("key %s of unexpected type %s", k, typ)
		}
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "<no keys>"
	}
	return b.String()
}

func BenchmarkAuthorize(b *testing.B) {
	countertest.BenchmarkAuthorize(b, func(b *testing.B) counter.Store {
		s, _ := open(b)
		return s
	})
}

func BenchmarkApply(b *testing.B) {
	countertest.BenchmarkApply(b, func(b *testing.B) counter.Store {
		s, _ := open(b)
		return s
	})
}

var (
	start = time.Now().UTC().Truncate(time.Hour)
	p1    = counter.PeriodRef{PlanVersionID: 3, Start: start, End: start.AddDate(0, 1, 0)}
	p2    = counter.PeriodRef{PlanVersionID: 4, Start: p1.End, End: p1.End.AddDate(0, 1, 0)}
)

// crc16 is Redis Cluster's key hash (CRC16-XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster slot of a key, hash tags included, as the Cluster specification
// defines it.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func TestSlotFunction(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	if a, b := slot("{user1000}.following"), slot("{user1000}.followers"); a != b {
		t.Fatalf("hash tag ignored: %d != %d", a, b)
	}
	if got := slot("foo"); got != 12182 {
		t.Fatalf("slot(foo) = %d, want 12182", got)
	}
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Every key of a customer hashes to one Cluster slot, whatever bytes its ID holds, and period
// keys expire at End + retention while the watermark, lifetime, tier and wallet never do.
func TestKeysShareSlotAndPeriodsExpire(t *testing.T) {
	t.Parallel()
	s, prefix := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	ids := []string{"cust_abc", "a{b}", "}{", "{", "}", "{}", "a:b", "日本語", "%7B", "x}y{z"}
	for _, id := range ids {
		for i, ref := range []counter.PeriodRef{p1, p2} {
			if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: id, Seq: int64(i + 1), Period: ref,
				SpendNanos: 1, Usage: map[string]int64{"m": 1}, Events: 1, Wallet: map[string]int64{"g": 1}, Tier: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: id, GrantID: "g", Nanos: 5, ExpiresAt: p1.End}); err != nil {
			t.Fatal(err)
		}
	}
	slots := map[uint16]string{}
	total := 0
	for _, id := range ids {
		tag := redis.Tag(id)
		keys := scan(t, raw, globEscape(prefix+tag)+":*")
		// wm, life, the period index, two periods, the tier and the three wallet keys.
		if len(keys) != 9 {
			t.Fatalf("customer %q: keys %q, want 9", id, keys)
		}
		total += len(keys)
		want := crc16(tag[1:len(tag)-1]) % 16384
		for _, k := range keys {
			if got := slot(k); got != want {
				t.Fatalf("customer %q: key %q in slot %d, want %d (the tag's)", id, k, got, want)
			}
			ttl, err := raw.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(k[len(prefix+tag):], ":p:") {
				ref := p1
				if strings.HasSuffix(k, ":4:"+itoa(p2.Start.UnixNano())) {
					ref = p2
				}
				wantTTL := time.Until(ref.End.Add(counter.DefaultRetention))
				if d := ttl - wantTTL; d < -time.Minute || d > time.Minute {
					t.Fatalf("period key %q: TTL %s, want about %s", k, ttl, wantTTL)
				}
			} else if ttl != -1 {
				t.Fatalf("key %q: TTL %s, want none", k, ttl)
			}
		}
		if other, ok := slots[want]; ok && other != id {
			t.Logf("customers %q and %q share slot %d (allowed, but unlikely)", other, id, want)
		}
		slots[want] = id
	}
	if all := scan(t, raw, prefix+"*"); len(all) != total {
		t.Fatalf("%d keys under the prefix, but %d found per customer: the tags overlap", len(all), total)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A failed Apply leaves no key behind, even for a period it would have opened.
func TestOverflowLeavesNoKeys(t *testing.T) {
	t.Parallel()
	s, prefix := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	if err := s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c", Watermark: 1, LifetimeSpendNanos: 1 << 62,
		Periods: map[counter.PeriodRef]counter.PeriodCounters{p1: {Usage: map[string]int64{"m": 1 << 62}}}}); err != nil {
		t.Fatal(err)
	}
	before := scan(t, raw, prefix+"*")
	for _, p := range []counter.ApplyParams{
		{CustomerID: "c", Seq: 2, Period: p2, SpendNanos: 1 << 62, Events: 1},
		{CustomerID: "c", Seq: 2, Period: p1, SpendNanos: 1, Events: 1, Usage: map[string]int64{"m": 1 << 62, "n": 5}},
	} {
		if _, err := s.Apply(ctx, p); !errors.Is(err, counter.ErrOverflow) {
			t.Fatalf("apply: got %v, want ErrOverflow", err)
		}
	}
	if after := scan(t, raw, prefix+"*"); len(after) != len(before) {
		t.Fatalf("keys before %q, after %q", before, after)
	}
	fields, err := raw.HGetAll(ctx, prefix+redis.Tag("c")+":p:"+itoa(p1.PlanVersionID)+":"+itoa(p1.Start.UnixNano())).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 1 || fields["u:m"] != itoa(1<<62) {
		t.Fatalf("period hash after failed applies: %v", fields)
	}

	// A burn that overflows after other burns opened the wallet hash leaves no new field and no
	// tier; a grant that overflows leaves no marker.
	k := s.Keys("w")
	if err := raw.HSet(ctx, k.Wallet, "big", itoa(math.MinInt64+8)).Err(); err != nil {
		t.Fatal(err)
	}
	before = scan(t, raw, prefix+"*")
	for range 5 { // map order varies: the small burns run before the bad one in some tries
		if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "w", Seq: 2, Period: p1, Events: 1, Tier: "gold",
			Wallet: map[string]int64{"a": 1, "b": 2, "big": 9, "c": 3}}); !errors.Is(err, counter.ErrOverflow) {
			t.Fatalf("apply: got %v, want ErrOverflow", err)
		}
	}
	if err := raw.HSet(ctx, k.Wallet, "big", itoa(math.MaxInt64-8)).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Grant(ctx, counter.GrantParams{CustomerID: "w", GrantID: "big", Nanos: 9}); !errors.Is(err, counter.ErrOverflow) || ok {
		t.Fatalf("grant: got %t, %v; want ErrOverflow", ok, err)
	}
	if after := scan(t, raw, prefix+"*"); len(after) != len(before) {
		t.Fatalf("keys before %q, after %q", before, after)
	}
	if w, err := raw.HGetAll(ctx, k.Wallet).Result(); err != nil || len(w) != 1 {
		t.Fatalf("wallet after failed applies: %v, %v", w, err)
	}
}

// The key layout is what the package doc says, field by field: the authorize script will read
// the wallet and tier keys directly.
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	s, prefix := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	id := "cust:{7}"
	k := s.Keys(id)
	if k != redis.Keys(prefix, id) {
		t.Fatalf("Store.Keys and Keys disagree: %+v, %+v", k, redis.Keys(prefix, id))
	}
	base := prefix + "{cust:%7B7%7D}:"
	for name, got := range map[string]string{"wm": k.Watermark, "life": k.Lifetime, "pidx": k.PeriodIndex,
		"tier": k.Tier, "wallet": k.Wallet, "wallet:exp": k.WalletExpiry, "wallet:granted": k.WalletGranted,
		"p:" + itoa(p1.PlanVersionID) + ":" + itoa(p1.Start.UnixNano()): k.Period(p1)} {
		if got != base+name {
			t.Fatalf("key %s: got %q, want %q", name, got, base+name)
		}
	}
	exp := p1.End.Add(1500 * time.Microsecond)
	if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: id, GrantID: "paid", Nanos: 1_000, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: id, GrantID: "promo", Nanos: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: id, Seq: 9, Period: p1, SpendNanos: 1_050, Events: 1,
		Usage: map[string]int64{"in": 3}, Wallet: map[string]int64{"paid": 1_000, "promo": 50, "early": 1}, Tier: "gold"}); err != nil {
		t.Fatal(err)
	}
	checkString := func(key, want string) {
		t.Helper()
		if got, err := raw.Get(ctx, key).Result(); err != nil || got != want {
			t.Fatalf("GET %s = %q, %v; want %q", key, got, err, want)
		}
	}
	checkHash := func(key string, want map[string]string) {
		t.Helper()
		got, err := raw.HGetAll(ctx, key).Result()
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("HGETALL %s = %v, %v; want %v", key, got, err, want)
		}
	}
	checkString(k.Watermark, "9")
	checkString(k.Lifetime, "1050")
	checkString(k.Tier, "gold")
	checkHash(k.Period(p1), map[string]string{"spend": "1050", "events": "1", "u:in": "3"})
	checkHash(k.Wallet, map[string]string{"paid": "0", "promo": "0", "early": "-1"})
	checkHash(k.WalletExpiry, map[string]string{"paid": itoa(p1.End.UnixMilli() + 1)})
	granted, err := raw.SMembers(ctx, k.WalletGranted).Result()
	if slices.Sort(granted); err != nil || !slices.Equal(granted, []string{"paid", "promo"}) {
		t.Fatalf("SMEMBERS %s = %v, %v", k.WalletGranted, granted, err)
	}
	members, err := raw.SMembers(ctx, k.PeriodIndex).Result()
	if err != nil || !slices.Equal(members, []string{itoa(p1.PlanVersionID) + ":" + itoa(p1.Start.UnixNano())}) {
		t.Fatalf("SMEMBERS %s = %v, %v", k.PeriodIndex, members, err)
	}
	if err := s.SetTier(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(ctx, k.Tier).Result(); err != nil || n != 0 {
		t.Fatalf("tier key after SetTier(\"\"): exists %d, %v", n, err)
	}
}

// After SCRIPT FLUSH (as after a Redis restart) the store loads its scripts again.
func TestNoScriptRecovery(t *testing.T) {
	s, _ := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c", Seq: 1, Period: p1, SpendNanos: 5, Events: 1}); err != nil {
		t.Fatal(err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	a, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c", Seq: 2, Period: p1, SpendNanos: 7, Events: 1})
	if err != nil || !a.Applied {
		t.Fatalf("apply after SCRIPT FLUSH: %+v, %v", a, err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Snapshot(ctx, "c", p1)
	if err != nil || sn.Period.SpendNanos != 12 || sn.Watermark != 2 {
		t.Fatalf("snapshot after SCRIPT FLUSH: %+v, %v", sn, err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c", Watermark: 9}); err != nil {
		t.Fatalf("rebuild after SCRIPT FLUSH: %v", err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Grant(ctx, counter.GrantParams{CustomerID: "c", GrantID: "g", Nanos: 3}); err != nil || !ok {
		t.Fatalf("grant after SCRIPT FLUSH: %t, %v", ok, err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Apply(ctx, counter.ApplyParams{CustomerID: "c", Seq: 10, Period: p1, Events: 1}); err != nil || !a.Applied {
		t.Fatalf("apply after rebuild and SCRIPT FLUSH: %+v, %v", a, err)
	}
	// The script is cached again (SCRIPT LOAD ran), so later calls are plain EVALSHA.
	ok, err := raw.ScriptExists(ctx, redis.ApplyScriptHash()).Result()
	if err != nil || !ok[0] {
		t.Fatalf("apply script not loaded again: %v %v", ok, err)
	}
}

// closedPort returns a loopback address that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := redis.Open(ctx, "redis://"+closedPort(t)+"/0", redis.Options{})
	if !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("open on a closed port: got %v, want ErrUnavailable", err)
	}

	s, _ := open(t)
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := s.Apply(expired, counter.ApplyParams{CustomerID: "c", Seq: 1, Period: p1, Events: 1}); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("apply past its deadline: got %v, want ErrUnavailable", err)
	}
	canceled, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if _, err := s.Snapshot(canceled, "c", p1); !errors.Is(err, context.Canceled) || errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("snapshot with a canceled context: got %v, want context.Canceled only", err)
	}
	_ = s.Close()
	if _, err := s.Apply(context.Background(), counter.ApplyParams{CustomerID: "c", Seq: 1, Period: p1, Events: 1}); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("apply on a closed store: got %v, want ErrUnavailable", err)
	}
}

func TestPrefixWithBraceRejected(t *testing.T) {
	raw := rawClient(t)
	if _, err := redis.New(context.Background(), raw, redis.Options{Prefix: "levy:{x}:"}); !errors.Is(err, counter.ErrInvalid) {
		t.Fatalf("prefix with braces: got %v, want ErrInvalid", err)
	}
}

// A Redis that accepts connections but never answers costs no more than the context deadline.
func TestSilentServerHonoursDeadline(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // read, never answer
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = redis.Open(ctx, "redis://"+l.Addr().String()+"/0", redis.Options{})
	if !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("open on a silent server: got %v, want ErrUnavailable", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("open on a silent server took %s with a 50ms deadline", took)
	}
}

// The authorize keys carry the customer's hash tag, have the documented types, and only task
// breakers expire (at until + counter.BreakerExpiryGrace).
func TestAuthorizeKeys(t *testing.T) {
	t.Parallel()
	s, prefix := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	id := "a{b}:c"
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: id, GrantID: "g", Nanos: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	p := counter.AuthorizeParams{CustomerID: id, ReservationID: "r1", CorrelationID: "k1", TaskID: "run{7}", Now: now,
		Period: p1, TokenMeters: []string{"in"}, TTL: time.Minute, Estimate: limit.Usage{Tokens: 5, Nanos: 6},
		Limits: counter.TierLimits{"": {Window: 60_000, RequestsPerWindow: 10, TokensPerWindow: 100, WalletLimited: true}}}
	if r, err := s.Authorize(ctx, p); err != nil || !r.Allowed {
		t.Fatalf("authorize: %+v, %v", r, err)
	}
	until := now.Add(time.Hour)
	if err := s.TripBreaker(ctx, id, counter.BreakerTask, "run{7}", until); err != nil {
		t.Fatal(err)
	}
	if err := s.TripBreaker(ctx, id, counter.BreakerCustomer, "", until); err != nil {
		t.Fatal(err)
	}
	k := s.Keys(id)
	base := prefix + redis.Tag(id) + ":"
	for name, got := range map[string]string{"auth": k.Auth, "res": k.Reservations, "res:exp": k.ReservationExpiry,
		"res:corr": k.ReservationCorrelation, "tbrk:run{7}": k.TaskBreaker("run{7}")} {
		if got != base+name {
			t.Fatalf("key %s: got %q, want %q", name, got, base+name)
		}
	}
	wantSlot := slot(k.Wallet)
	for _, key := range scan(t, raw, globEscape(base)+"*") {
		if got := slot(key); got != wantSlot {
			t.Fatalf("key %q in slot %d, want %d", key, got, wantSlot)
		}
		exp, err := raw.PExpireTime(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case key == k.TaskBreaker("run{7}"):
			if want := until.Add(counter.BreakerExpiryGrace).UnixMilli(); exp.Milliseconds() != want {
				t.Fatalf("task breaker expires at %d, want %d", exp.Milliseconds(), want)
			}
		case strings.Contains(key[len(base):], "p:"):
		case exp >= 0:
			t.Fatalf("key %q expires at %s, want never", key, exp)
		}
	}
	auth, err := raw.HGetAll(ctx, k.Auth).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"rpm": itoa(now.UnixMilli() + 6000), "rpmf": "0", "tpm": itoa(now.UnixMilli() + 3000),
		"tpmf": "0", "rtok": "5", "rnan": "6", "infl": "1", "brk": itoa(until.UnixMilli())}
	if !maps.Equal(auth, want) {
		t.Fatalf("HGETALL %s = %v, want %v", k.Auth, auth, want)
	}
	if got, err := raw.HGet(ctx, k.ReservationCorrelation, "k1").Result(); err != nil || got != "r1" {
		t.Fatalf("correlation index: %q, %v", got, err)
	}
	if got, err := raw.ZScore(ctx, k.ReservationExpiry, "r1").Result(); err != nil || int64(got) != now.Add(time.Minute).UnixMilli() {
		t.Fatalf("expiry of r1: %v, %v", got, err)
	}
	if got, err := raw.Get(ctx, k.TaskBreaker("run{7}")).Result(); err != nil || got != itoa(until.UnixMilli()) {
		t.Fatalf("task breaker: %q, %v", got, err)
	}
}

// After SCRIPT FLUSH every authorize script is loaded again.
func TestAuthorizeNoScriptRecovery(t *testing.T) {
	s, _ := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	now := time.Now().UTC()
	p := counter.AuthorizeParams{CustomerID: "c", ReservationID: "r", CorrelationID: "k", Now: now, Period: p1, TTL: time.Hour}
	steps := []struct {
		name string
		run  func() error
	}{
		{"authorize", func() error { _, err := s.Authorize(ctx, p); return err }},
		{"limits", func() error { _, err := s.Limits(ctx, p); return err }},
		{"release", func() error {
			if ok, err := s.Release(ctx, "c", "r"); err != nil || !ok {
				return fmt.Errorf("release: %t, %v", ok, err)
			}
			return nil
		}},
		{"trip", func() error { return s.TripBreaker(ctx, "c", counter.BreakerTask, "t", now.Add(time.Hour)) }},
		{"reset", func() error {
			if ok, err := s.ResetBreaker(ctx, "c", counter.BreakerTask, "t"); err != nil || !ok {
				return fmt.Errorf("reset: %t, %v", ok, err)
			}
			return nil
		}},
	}
	for _, st := range steps {
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.run(); err != nil {
			t.Fatalf("%s after SCRIPT FLUSH: %v", st.name, err)
		}
	}
	// Recovery loads the script again (SCRIPT LOAD), so later calls are plain EVALSHA.
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p.ReservationID = "r2"
	if r, err := s.Authorize(ctx, p); err != nil || !r.Allowed {
		t.Fatalf("authorize after SCRIPT FLUSH: %+v, %v", r, err)
	}
	if ok, err := raw.ScriptExists(ctx, redis.AuthorizeScriptHash()).Result(); err != nil || !ok[0] {
		t.Fatalf("authorize script not loaded again: %v, %v", ok, err)
	}
}
