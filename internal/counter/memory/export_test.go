package memory

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/levyhq/levy/internal/authorize/limit"
)

// SetAuthState overwrites a customer's raw authorize counters (the buckets, reserved tokens and
// nanos, in flight, the customer breaker and, when taskID is set, that task's breaker; 0
// removes it), creating the customer if needed. The other fields of st are ignored.
func SetAuthState(s *Store, customerID, taskID string, st limit.State) {
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil {
		c = &customer{}
		sh.customers[customerID] = c
	}
	a := c.authState()
	a.rpm, a.tpm = st.RPM, st.TPM
	a.rtok, a.rnan, a.infl, a.brk = st.ReservedTokens, st.ReservedNanos, st.InFlight, st.BreakerUntil
	if taskID != "" {
		if st.TaskBreakerUntil == 0 {
			delete(a.tasks, taskID)
		} else {
			a.tasks[taskID] = st.TaskBreakerUntil
		}
	}
}

// AuthState reads back what SetAuthState writes.
func AuthState(s *Store, customerID, taskID string) limit.State {
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil || c.auth == nil {
		return limit.State{}
	}
	a := c.auth
	st := limit.State{RPM: a.rpm, TPM: a.tpm, ReservedTokens: a.rtok, ReservedNanos: a.rnan, InFlight: a.infl,
		BreakerUntil: a.brk}
	if taskID != "" {
		st.TaskBreakerUntil = a.tasks[taskID]
	}
	return st
}

// Dump renders everything the store holds for a customer, deterministically: two dumps are
// equal iff the customer's state is. Heap entries are listed only while they stand for an open
// reservation (the others are an index's leftovers, invisible to every method).
func Dump(s *Store, customerID string) string {
	sh := s.shard(customerID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.customers[customerID]
	if c == nil {
		return "<no customer>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "watermark %d lifetime %d tier %q\n", c.watermark, c.lifetime, c.tier)
	pks := slices.SortedFunc(maps.Keys(c.periods), func(x, y periodKey) int {
		if x.planVersionID != y.planVersionID {
			return int(x.planVersionID - y.planVersionID)
		}
		return int(x.start - y.start)
	})
	for _, k := range pks {
		pr := c.periods[k]
		fmt.Fprintf(&b, "period %d@%d expire %d spend %d events %d usage", k.planVersionID, k.start, pr.expireAt, pr.spend, pr.events)
		for _, m := range slices.Sorted(maps.Keys(pr.usage)) {
			fmt.Fprintf(&b, " %q=%d", m, pr.usage[m])
		}
		b.WriteByte('\n')
	}
	for _, id := range slices.Sorted(maps.Keys(c.wallet)) {
		g := c.wallet[id]
		fmt.Fprintf(&b, "grant %q %d exp %d/%t granted %t\n", id, g.nanos, g.expiresMs, g.hasExpiry, g.granted)
	}
	a := c.auth
	if a == nil {
		b.WriteString("no authorize state\n")
		return b.String()
	}
	fmt.Fprintf(&b, "rpm %+v tpm %+v rtok %d rnan %d infl %d brk %d\n", a.rpm, a.tpm, a.rtok, a.rnan, a.infl, a.brk)
	for _, k := range slices.Sorted(maps.Keys(a.tasks)) {
		fmt.Fprintf(&b, "task %q until %d\n", k, a.tasks[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.res)) {
		fmt.Fprintf(&b, "reservation %q %+v\n", k, a.res[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.corr)) {
		fmt.Fprintf(&b, "correlation %q -> %q\n", k, a.corr[k])
	}
	var live []expEntry
	for _, e := range a.exp {
		if r, ok := a.res[e.id]; ok && r.expiresAt == e.at {
			live = append(live, e)
		}
	}
	slices.SortFunc(live, func(x, y expEntry) int {
		if entryLess(x, y) {
			return -1
		}
		if entryLess(y, x) {
			return 1
		}
		return 0
	})
	for _, e := range live {
		fmt.Fprintf(&b, "expiry %d %q\n", e.at, e.id)
	}
	return b.String()
}
