package authorize

import (
	"sync"
	"time"

	"github.com/levyhq/levy/internal/authorize/limit"
)

// safeLimiter is the fail-open safe capacity: one GCRA bucket per customer, kept on this node
// only, consulted only while the counter store cannot be reached.
type safeLimiter struct {
	limit  int64 // requests per Window
	shards [shardCount]safeShard
}

type safeShard struct {
	mu sync.Mutex
	m  map[string]limit.TAT
	_  [40]byte
}

// safePrune is the shard size past which idle buckets (already full again) are dropped.
const safePrune = 4096

func newSafeLimiter(perMinute int64) *safeLimiter {
	l := &safeLimiter{limit: perMinute}
	for i := range l.shards {
		l.shards[i].m = map[string]limit.TAT{}
	}
	return l
}

// take charges one request to the customer's bucket at nowMs (Unix milliseconds). When it does
// not fit, retryMs is the exact wait until it would (limit.GCRA's RetryAfter).
func (l *safeLimiter) take(h uint64, customerID string, nowMs int64) (ok bool, retryMs int64) {
	sh := &l.shards[h&(shardCount-1)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat := sh.m[customerID]
	r := limit.GCRA(tat, nowMs, Window, l.limit, 1)
	if !r.Allowed {
		return false, r.RetryAfter
	}
	if len(sh.m) >= safePrune {
		for k, t := range sh.m {
			if t.At < nowMs || (t.At == nowMs && t.Frac == 0) {
				delete(sh.m, k)
			}
		}
	}
	sh.m[customerID] = r.TAT
	return true, 0
}

// failOpen turns res into the fail-open decision for the customer: ALLOW marked FailOpen
// while the safe capacity admits it, else DENY with reason fail_open_capacity and the exact
// wait, rounded up to whole seconds. No reservation is held and no quota is known.
func (s *Service) failOpen(res *Result, customerID string, now time.Time) {
	res.FailOpen = true
	ok, retry := s.safe.take(s.hash(customerID), customerID, now.UnixMilli())
	if ok {
		res.Decision = Allow
		return
	}
	res.Decision, res.Reason = Deny, ReasonFailOpenCapacity
	res.RetryAfterSeconds = max(ceilSeconds(retry), 1)
}
