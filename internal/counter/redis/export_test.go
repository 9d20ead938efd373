package redis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
	"github.com/levyhq/levy/internal/testenv"
)

// ApplyScriptHash is the SHA1 of the Apply script, for tests that look at the script cache.
func ApplyScriptHash() string { return applyScript.Hash() }

// A store whose Redis refuses connections reports ErrUnavailable from every method, so callers
// can fail open.
func TestRefusedIsUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	client := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	s := &Store{client: client, auth: client, prefix: DefaultPrefix, retention: counter.DefaultRetention, now: time.Now}
	defer s.Close()
	ctx := context.Background()
	ref := counter.PeriodRef{Start: time.Now(), End: time.Now().Add(time.Hour)}
	_, err = s.Apply(ctx, counter.ApplyParams{CustomerID: "c", Seq: 1, Period: ref, Events: 1})
	if !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("apply: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Snapshot(ctx, "c", ref); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("snapshot: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Grant(ctx, counter.GrantParams{CustomerID: "c", GrantID: "g", Nanos: 1}); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("grant: got %v, want ErrUnavailable", err)
	}
	if err := s.SetTier(ctx, "c", "gold"); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("set tier: got %v, want ErrUnavailable", err)
	}
	if err := s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c"}); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("rebuild: got %v, want ErrUnavailable", err)
	}
	now := time.Now()
	ap := counter.AuthorizeParams{CustomerID: "c", ReservationID: "r", Now: now, Period: ref, TTL: time.Minute}
	if _, err := s.Authorize(ctx, ap); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("authorize: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Limits(ctx, ap); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("limits: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Release(ctx, "c", "r"); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("release: got %v, want ErrUnavailable", err)
	}
	if err := s.TripBreaker(ctx, "c", counter.BreakerCustomer, "", now.Add(time.Minute)); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("trip: got %v, want ErrUnavailable", err)
	}
	if _, err := s.ResetBreaker(ctx, "c", counter.BreakerCustomer, ""); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("reset: got %v, want ErrUnavailable", err)
	}
	if _, err = s.OpenReservations(ctx, "c"); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("open reservations: got %v, want ErrUnavailable", err)
	}
	var re goredis.Error
	if errors.As(err, &re) {
		t.Fatalf("a go-redis error crossed the seam: %T", re)
	}
}

// SetAuthState overwrites a customer's raw authorize fields (see the package doc), and when
// taskID is set that task's breaker (0 deletes it). The other fields of st are ignored.
func SetAuthState(ctx context.Context, s *Store, customerID, taskID string, st limit.State) error {
	k := s.Keys(customerID)
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	if err := s.client.HSet(ctx, k.Auth, "rpm", i(st.RPM.At), "rpmf", i(st.RPM.Frac), "tpm", i(st.TPM.At),
		"tpmf", i(st.TPM.Frac), "rtok", i(st.ReservedTokens), "rnan", i(st.ReservedNanos), "infl", i(st.InFlight),
		"brk", i(st.BreakerUntil)).Err(); err != nil {
		return err
	}
	if taskID == "" {
		return nil
	}
	if st.TaskBreakerUntil == 0 {
		return s.client.Del(ctx, k.TaskBreaker(taskID)).Err()
	}
	return s.client.Set(ctx, k.TaskBreaker(taskID), i(st.TaskBreakerUntil), 0).Err()
}

// AuthState reads back what SetAuthState writes (missing fields read as 0).
func AuthState(ctx context.Context, s *Store, customerID, taskID string) (limit.State, error) {
	k := s.Keys(customerID)
	vals, err := s.client.HMGet(ctx, k.Auth, "rpm", "rpmf", "tpm", "tpmf", "rtok", "rnan", "infl", "brk").Result()
	if err != nil {
		return limit.State{}, err
	}
	var f [8]int64
	for j, v := range vals {
		if f[j], err = parseOpt(v); err != nil {
			return limit.State{}, err
		}
	}
	st := limit.State{RPM: limit.TAT{At: f[0], Frac: f[1]}, TPM: limit.TAT{At: f[2], Frac: f[3]},
		ReservedTokens: f[4], ReservedNanos: f[5], InFlight: f[6], BreakerUntil: f[7]}
	if taskID != "" {
		v, err := s.client.Get(ctx, k.TaskBreaker(taskID)).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return limit.State{}, err
		}
		if v != "" {
			if st.TaskBreakerUntil, err = strconv.ParseInt(v, 10, 64); err != nil {
				return limit.State{}, err
			}
		}
	}
	return st, nil
}

// AuthorizeScriptHash is the SHA1 of the Authorize script.
func AuthorizeScriptHash() string { return authorizeScript.Hash() }

// Open gives Authorize a client of its own that never retries (a retried script whose reply was
// lost would find its own reservation open) and dials within AuthorizeDialTimeout, while the
// other methods keep the URL's settings.
func TestOpenAuthorizeClientDoesNotRetry(t *testing.T) {
	s, err := Open(context.Background(), testenv.RedisURL(t)+"?dial_timeout=30s&max_retries=5", Options{})
	if err != nil {
		testenv.Skip(t, "Redis", err)
		return
	}
	defer s.Close()
	if s.auth == s.client {
		t.Fatal("Authorize shares the general client")
	}
	ao := s.auth.(*goredis.Client).Options()
	if ao.MaxRetries != 0 || ao.DialerRetries != 1 || ao.DialTimeout != AuthorizeDialTimeout || !ao.ContextTimeoutEnabled {
		// go-redis normalises MaxRetries -1 (none) to 0, and 0 (unset) to 3.
		t.Fatalf("authorize client: MaxRetries %d, DialerRetries %d, DialTimeout %v, ContextTimeoutEnabled %t",
			ao.MaxRetries, ao.DialerRetries, ao.DialTimeout, ao.ContextTimeoutEnabled)
	}
	if co := s.client.(*goredis.Client).Options(); co.MaxRetries != 5 || co.DialTimeout != 30*time.Second {
		t.Fatalf("general client: MaxRetries %d, DialTimeout %v", co.MaxRetries, co.DialTimeout)
	}
}
