package local_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/routes/bus"
	"github.com/shanghai-mca/mzhub/routes/bus/local"
)

// BenchmarkPublishConsumeAck measures durable throughput end to end:
// concurrent publishers (each Publish returns after its group commit),
// concurrent consumers receiving and acking, on a SQLite file in WAL mode.
// msgs/s counts messages published, delivered and acked.
func BenchmarkPublishConsumeAck(b *testing.B) {
	for _, c := range []struct {
		publishers, batch, consumers int
		keyed, uncached              bool
	}{
		{publishers: 1, batch: 1, consumers: 1, keyed: true},
		{publishers: 16, batch: 1, consumers: 4, keyed: true},
		{publishers: 64, batch: 1, consumers: 4, keyed: true},
		{publishers: 4, batch: 16, consumers: 4, keyed: true},
		{publishers: 64, batch: 1, consumers: 4, keyed: false},
		// Bodies read from the table on delivery (backlog beyond cache_bytes,
		// or after a restart).
		{publishers: 64, batch: 1, consumers: 4, keyed: true, uncached: true},
	} {
		name := fmt.Sprintf("pub=%dx%d/cons=%d/keyed=%v", c.publishers, c.batch, c.consumers, c.keyed)
		if c.uncached {
			name += "/uncached"
		}
		b.Run(name, func(b *testing.B) {
			db := openDB(b, filepath.Join(b.TempDir(), "state.db"))
			cfg := testConfig()
			if c.uncached {
				cfg.CacheBytes = 0
			}
			bb, err := local.Open(context.Background(), db, cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer bb.Close(context.Background())
			ctx := context.Background()
			topic := "bench"
			body := make([]byte, 256)
			var consumed atomic.Int64
			total := int64(b.N)
			done := make(chan struct{})
			subs := make([]bus.Subscription, c.consumers)
			for i := range subs {
				s, err := bb.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 512})
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
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
			<-done
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
