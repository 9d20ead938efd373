package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/store"
)

// BenchmarkInsertEvents measures InsertEvents with compound events of 5 rated lines each,
// spread over 50 customers with random correlation IDs, in batches of 100 (one batched request)
// and of 1000 (a group commit of several requests), each on a fresh store from open, and reports
// events/s. The burns=2 case has every event carry two wallet burns (a grant and the uncovered
// amount), as events of customers with a wallet do.
func BenchmarkInsertEvents(b *testing.B, open func(b *testing.B) store.Store) {
	for _, c := range []struct{ size, burns int }{{100, 0}, {1000, 0}, {1000, 2}} {
		name := fmt.Sprintf("batch=%d", c.size)
		if c.burns > 0 {
			name += fmt.Sprintf("/burns=%d", c.burns)
		}
		b.Run(name, func(b *testing.B) {
			n := 0
			benchInsert(b, open(b), c.size, c.burns, &n)
		})
	}
}

func benchInsert(b *testing.B, s store.Store, batchSize, burns int, n *int) {
	const lines = 5
	ctx := context.Background()
	props := []byte(`{"model":"claude-sonnet-4-6","requestType":"standard"}`)
	meas := []byte(`[{"metricKey":"input_tokens","value":1500},{"metricKey":"output_tokens","value":800},` +
		`{"metricKey":"cache_read_tokens","value":500},{"metricKey":"cache_write_tokens","value":100},` +
		`{"metricKey":"reasoning_tokens","value":50}]`)
	charges := [lines]string{"sonnet_in", "sonnet_out", "cache_read", "cache_write", "reasoning"}
	amount := money.MustParse("0.0045")
	qty := money.MustParse("1500")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		batch := make([]*store.EventRecord, batchSize)
		for i := range batch {
			*n++
			id := fmt.Sprintf("bench-%d", *n)
			key := store.IDKey(id)
			ls := make([]store.RatedLine, lines)
			for j := range ls {
				ls[j] = store.RatedLine{Charge: charges[j], Group: "claude-sonnet-4-6", Type: "usage",
					Quantity: qty, Amount: amount, Cost: amount}
			}
			batch[i] = &store.EventRecord{
				Key: key, ContentHash: []byte("0123456789abcdef0123456789abcdef"), ID: id,
				EventType: "llm.completion", CustomerID: fmt.Sprintf("cust-%d", *n%50), CorrelationID: fmt.Sprintf("req_%016x", mix(uint64(*n))),
				Timestamp: t0.Add(time.Duration(*n) * time.Millisecond), ReceivedAt: t0.Add(time.Duration(*n) * time.Millisecond),
				Properties: props, Measurements: meas, PlanVersionID: 1, PeriodStart: t0, PeriodEnd: tEnd,
				Amount: amount.Mul(money.MustParse("5")), Cost: amount.Mul(money.MustParse("5")), Lines: ls,
			}
			for j := range burns {
				batch[i].Burns = append(batch[i].Burns, store.WalletBurn{GrantID: fmt.Sprintf("grant-%d", j%2),
					At: batch[i].Timestamp, PlanVersionID: 1, PeriodStart: t0, Amount: amount})
			}
		}
		b.StartTimer()
		if err := s.InsertEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}

// mix scrambles n (splitmix64) so correlation IDs land at random places in the indexes, as real
// request IDs do; event keys stay in arrival order, like ULIDs.
func mix(n uint64) uint64 {
	n += 0x9e3779b97f4a7c15
	n = (n ^ n>>30) * 0xbf58476d1ce4e5b9
	n = (n ^ n>>27) * 0x94d049bb133111eb
	return n ^ n>>31
}
