package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/levyhq/levy/internal/billing"
	"github.com/levyhq/levy/internal/problem"
	"github.com/levyhq/levy/internal/usage"
)

// Ingester takes usage events into the ledger; *billing.Service satisfies it. Ingest returns
// once the batch is durable (or rejected) and is idempotent by event key, so a retry of an
// event already stored is acknowledged as a duplicate.
type Ingester interface {
	Ingest(ctx context.Context, events []usage.Event) (billing.IngestResult, error)
}

// meter ingests the gateway's usage events off the request path: a bounded queue drained by a
// few workers. A worker takes the first waiting event, gathers whatever else arrives within the
// linger time (up to batch events) and ingests them in one call, so a steady stream of calls
// costs one ledger commit per batch rather than per call. A batch is retried with backoff on
// transient failures; one refused for good (all or nothing) is split and each event ingested
// alone, so one bad event cannot take the others with it. Every loss is logged with the whole
// event (so it can be replayed by hand) and counted.
type meter struct {
	ing      Ingester
	log      *slog.Logger
	m        *metrics
	attempts int
	backoff  time.Duration
	timeout  time.Duration
	linger   time.Duration
	batch    int

	queue chan usage.Event
	work  *tracker // the gateway's: one unit per queued event
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

func newMeter(ing Ingester, log *slog.Logger, m *metrics, cfg Config, work *tracker) *meter {
	mt := &meter{
		ing: ing, log: log, m: m,
		attempts: cfg.MeterAttempts, backoff: cfg.MeterBackoff, timeout: cfg.MeterTimeout,
		linger: cfg.MeterLinger, batch: cfg.MeterBatch,
		queue: make(chan usage.Event, cfg.MeterQueue),
		work:  work,
		stop:  make(chan struct{}),
	}
	for range cfg.MeterWorkers {
		mt.wg.Add(1)
		go mt.run()
	}
	return mt
}

// enqueue hands an event to the workers without blocking. A full queue loses the event, loudly.
func (mt *meter) enqueue(ev usage.Event) {
	mt.work.add()
	select {
	case mt.queue <- ev:
		mt.m.queue.Inc()
	default:
		mt.work.done()
		mt.m.events.WithLabelValues(eventDropped).Inc()
		mt.log.Error("gateway: usage event dropped: the ingest queue is full", eventAttrs(ev)...)
	}
}

func (mt *meter) run() {
	defer mt.wg.Done()
	batch := make([]usage.Event, 0, mt.batch)
	for {
		select {
		case ev := <-mt.queue:
			batch = mt.gather(append(batch[:0], ev))
			mt.ingestBatch(batch)
		case <-mt.stop:
			// Finish what is queued: Close only stops the workers once no request is in
			// flight, so nothing is added after this.
			for {
				select {
				case ev := <-mt.queue:
					mt.ingestBatch(mt.gather(append(batch[:0], ev)))
				default:
					return
				}
			}
		}
	}
}

// close stops the workers after they have drained the queue.
func (mt *meter) close() {
	mt.once.Do(func() { close(mt.stop) })
	mt.wg.Wait()
}

// gather adds to batch the events that arrive within the linger time, up to the batch size.
func (mt *meter) gather(batch []usage.Event) []usage.Event {
	mt.m.queue.Dec()
	if mt.linger <= 0 {
		for len(batch) < mt.batch {
			select {
			case ev := <-mt.queue:
				mt.m.queue.Dec()
				batch = append(batch, ev)
			default:
				return batch
			}
		}
		return batch
	}
	t := time.NewTimer(mt.linger)
	defer t.Stop()
	for len(batch) < mt.batch {
		select {
		case ev := <-mt.queue:
			mt.m.queue.Dec()
			batch = append(batch, ev)
		case <-t.C:
			return batch
		case <-mt.stop:
			return batch
		}
	}
	return batch
}

// ingestBatch stores a batch; a batch refused for good is split into single events.
func (mt *meter) ingestBatch(batch []usage.Event) {
	defer func() {
		for range batch {
			mt.work.done()
		}
	}()
	err := mt.ingest(batch)
	if err == nil || len(batch) == 1 {
		return
	}
	for i := range batch {
		mt.ingest(batch[i : i+1])
	}
}

// ingest stores events in one call, retrying transient failures. It returns nil once they are
// stored; otherwise it has counted and logged the loss when the call held one event, and leaves
// a batch refused for good to its caller.
func (mt *meter) ingest(evs []usage.Event) error {
	wait := mt.backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), mt.timeout)
		res, err := mt.ing.Ingest(ctx, evs)
		cancel()
		if err == nil {
			mt.m.events.WithLabelValues(eventIngested).Add(float64(res.Accepted))
			mt.m.events.WithLabelValues(eventDuplicate).Add(float64(res.Duplicates))
			return nil
		}
		if permanent(err) && len(evs) > 1 {
			return err
		}
		if reused, ok := renamed(evs[0], err); ok && len(evs) == 1 {
			mt.log.Warn("gateway: the provider's response id is already billed for another call; billing this one under the request id",
				"event", evs[0].ID, "as", reused.ID)
			evs = []usage.Event{reused}
			continue
		}
		if permanent(err) || attempt >= mt.attempts {
			mt.m.events.WithLabelValues(eventFailed).Add(float64(len(evs)))
			for _, ev := range evs {
				mt.log.Error("gateway: usage event not ingested", append(eventAttrs(ev), "attempts", attempt, "err", err)...)
			}
			return nil
		}
		mt.m.events.WithLabelValues(eventRetried).Inc()
		mt.log.Warn("gateway: usage events ingest failed, retrying", "events", len(evs), "first", evs[0].ID, "attempt", attempt, "err", err)
		time.Sleep(wait)
		wait *= 4
	}
}

// renamed handles a provider that reuses response ids (some OpenAI-compatible servers answer a
// constant id): an event refused as a conflict, that is an event of that id already stored
// with other content (another call), is the same call's usage under its own request ID, with
// the original id kept as the responseId property. A retry of an event already stored is a
// duplicate, never a conflict, so renaming cannot bill a call twice.
func renamed(ev usage.Event, err error) (usage.Event, bool) {
	if problem.KindOf(err) != problem.Conflict || ev.CorrelationID == "" || strings.HasPrefix(ev.ID, gatewayIDPrefix) {
		return ev, false
	}
	props := make([]usage.Property, 0, len(ev.Properties)+1)
	props = append(append(props, ev.Properties...), usage.Property{Key: PropResponseID, Value: ev.ID})
	ev.ID, ev.Properties = gatewayIDPrefix+ev.CorrelationID, props
	return ev, true
}

// permanent reports an ingest error that a retry cannot fix: the event itself is refused.
func permanent(err error) bool {
	switch problem.KindOf(err) {
	case problem.Invalid, problem.NotFound, problem.Conflict, problem.Forbidden, problem.TooLarge:
		return true
	}
	return false
}

// eventAttrs logs an event in full, so a lost one can be replayed.
func eventAttrs(ev usage.Event) []any {
	ms := make(map[string]string, len(ev.Measurements))
	for _, m := range ev.Measurements {
		ms[m.MetricKey] = m.Value.Decimal().String()
	}
	return []any{
		"event", ev.ID, "eventType", ev.EventType, "customer", ev.CustomerID,
		"correlationId", ev.CorrelationID, "timestamp", ev.Timestamp,
		"properties", ev.PropertyMap(), "measurements", ms,
	}
}

// tracker counts unfinished work (requests in flight, events not yet ingested) so Flush and
// Close can wait for it.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// wait returns once the count is zero, or ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	ch := t.idle
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
