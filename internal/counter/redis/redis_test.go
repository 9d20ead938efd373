package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
// keys expire at End + retention while the watermark and lifetime never do.
func TestKeysShareSlotAndPeriodsExpire(t *testing.T) {
	t.Parallel()
	s, prefix := open(t)
	raw := rawClient(t)
	ctx := context.Background()
	ids := []string{"cust_abc", "a{b}", "}{", "{", "}", "{}", "a:b", "日本語", "%7B", "x}y{z"}
	for _, id := range ids {
		for i, ref := range []counter.PeriodRef{p1, p2} {
			if _, err := s.Apply(ctx, counter.ApplyParams{CustomerID: id, Seq: int64(i + 1), Period: ref,
				SpendNanos: 1, Usage: map[string]int64{"m": 1}, Events: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slots := map[uint16]string{}
	total := 0
	for _, id := range ids {
		tag := redis.Tag(id)
		keys := scan(t, raw, globEscape(prefix+tag)+":*")
		// wm, life, the period index and two periods.
		if len(keys) != 5 {
			t.Fatalf("customer %q: keys %q, want 5", id, keys)
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
