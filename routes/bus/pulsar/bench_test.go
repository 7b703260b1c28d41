package pulsar_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/routes/bus"
	"github.com/shanghai-mca/mzhub/routes/bus/bustest"
)

// BenchmarkIntegrationPublishConsumeAck measures throughput against the
// broker named by MZHUB_TEST_PULSAR: concurrent publishers (each Publish
// returns once the broker persisted its messages), Key_Shared consumers
// receiving and acking. msgs/s counts messages published, delivered and
// acked.
func BenchmarkIntegrationPublishConsumeAck(b *testing.B) {
	for _, c := range []struct {
		publishers, batch, consumers, buckets int
		keyed                                 bool
	}{
		{publishers: 64, batch: 1, consumers: 2, buckets: 16, keyed: true},
		{publishers: 8, batch: 64, consumers: 2, buckets: 16, keyed: true},
		{publishers: 4, batch: 500, consumers: 2, buckets: 64, keyed: true},
		{publishers: 4, batch: 500, consumers: 2, buckets: 16, keyed: true},
		{publishers: 4, batch: 500, consumers: 2, buckets: 16, keyed: false},
	} {
		name := fmt.Sprintf("pub=%dx%d/cons=%d/keyed=%v/buckets=%d", c.publishers, c.batch, c.consumers, c.keyed, c.buckets)
		b.Run(name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.KeyBuckets = c.buckets
			bb := open(b, cfg)
			defer bb.Close(context.Background())
			ctx := context.Background()
			topic := bustest.Topic("bench")
			body := make([]byte, 256)
			subs := make([]bus.Subscription, c.consumers)
			for i := range subs {
				s, err := bb.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 2000})
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
			var consumed atomic.Int64
			total := int64(b.N)
			done := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, s := range subs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						d, err := s.Receive(ctx)
						if err != nil {
							return
						}
						if err := d.Ack(ctx); err != nil {
							b.Error(err)
						}
						if consumed.Add(1) == total {
							close(done)
						}
					}
				}()
			}
			var next atomic.Int64
			var pwg sync.WaitGroup
			for p := range c.publishers {
				pwg.Add(1)
				go func() {
					defer pwg.Done()
					msgs := make([]bus.Message, c.batch)
					for {
						n := next.Add(int64(c.batch))
						if n-int64(c.batch) >= total {
							return
						}
						k := min(int64(c.batch), total-(n-int64(c.batch)))
						for j := range k {
							msgs[j] = bus.Message{IdempotencyKey: fmt.Sprintf("%d-%d", p, n+j), Body: body}
							if c.keyed {
								msgs[j].Key = fmt.Sprintf("person-%d", (n+j)%1000)
							}
						}
						if err := bb.Publish(ctx, topic, msgs[:k]...); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			pwg.Wait()
			select {
			case <-done:
			case <-time.After(120 * time.Second):
				b.Fatalf("consumed %d of %d within 120s", consumed.Load(), total)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			for _, s := range subs {
				_ = s.Close(ctx)
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
