package redis

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/levyhq/levy/internal/counter"
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
	s := &Store{client: client, prefix: DefaultPrefix, retention: counter.DefaultRetention, now: time.Now}
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
	if err := s.Rebuild(ctx, counter.RebuildParams{CustomerID: "c"}); !errors.Is(err, counter.ErrUnavailable) {
		t.Fatalf("rebuild: got %v, want ErrUnavailable", err)
	}
	var re goredis.Error
	if errors.As(err, &re) {
		t.Fatalf("a go-redis error crossed the seam: %T", re)
	}
}
