package pulsar_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/shanghai-mca/mzhub/bus/bustest"
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
			bustest.Throughput(b, bb, bustest.Topic("bench"), bustest.Load{Publishers: c.publishers, Batch: c.batch, Consumers: c.consumers, Keyed: c.keyed, Prefetch: 2000})
		})
	}
}
