package bustest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// Load shapes a throughput benchmark: concurrent publishers sending
// batches, concurrent consumers of one subscription receiving and acking.
type Load struct {
	Publishers, Batch, Consumers int
	// Keyed gives messages one of 1,000 ordering keys.
	Keyed bool
	// Prefetch is the subscription's prefetch.
	Prefetch int
}

// Throughput publishes b.N messages of 256 bytes to topic with l's shape,
// waits (at most two minutes) until every one was received and acked, and
// reports msgs/s: messages published, delivered and acked per second. Both
// buses' benchmarks run it, so their figures compare.
func Throughput(b *testing.B, bb bus.Bus, topic string, l Load) {
	ctx := context.Background()
	body := make([]byte, 256)
	subs := make([]bus.Subscription, l.Consumers)
	for i := range subs {
		s, err := bb.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: l.Prefetch})
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
	for p := range l.Publishers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			msgs := make([]bus.Message, l.Batch)
			for {
				n := next.Add(int64(l.Batch))
				if n-int64(l.Batch) >= total {
					return
				}
				k := min(int64(l.Batch), total-(n-int64(l.Batch)))
				for j := range k {
					msgs[j] = bus.Message{IdempotencyKey: fmt.Sprintf("%d-%d", p, n+j), Body: body}
					if l.Keyed {
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
}
