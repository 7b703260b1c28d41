package local_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/bustest"
	"github.com/shanghai-mca/mzhub/bus/local"
)

// BenchmarkPublishConsumeAck measures durable throughput end to end:
// concurrent publishers (each Publish returns after its group commit),
// concurrent consumers receiving and acking, on a SQLite file in WAL mode.
// msgs/s counts messages published, delivered and acked.
func BenchmarkPublishConsumeAck(b *testing.B) {
	for _, c := range []struct {
		publishers, batch, consumers int
		keyed, uncached, sealed      bool
	}{
		{publishers: 1, batch: 1, consumers: 1, keyed: true},
		{publishers: 16, batch: 1, consumers: 4, keyed: true},
		{publishers: 64, batch: 1, consumers: 4, keyed: true},
		{publishers: 4, batch: 16, consumers: 4, keyed: true},
		{publishers: 64, batch: 1, consumers: 4, keyed: false},
		// Bodies read from the table on delivery (backlog beyond cache_bytes,
		// or after a restart).
		{publishers: 64, batch: 1, consumers: 4, keyed: true, uncached: true},
		// Bodies sealed at rest (bus.seal_bodies, the default).
		{publishers: 64, batch: 1, consumers: 4, keyed: true, sealed: true},
	} {
		name := fmt.Sprintf("pub=%dx%d/cons=%d/keyed=%v", c.publishers, c.batch, c.consumers, c.keyed)
		if c.uncached {
			name += "/uncached"
		}
		if c.sealed {
			name += "/sealed"
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
			var under bus.Bus = bb
			if c.sealed {
				under = bus.Sealed(bb, sealer(b, "k1"))
			}
			bustest.Throughput(b, under, "bench", bustest.Load{Publishers: c.publishers, Batch: c.batch, Consumers: c.consumers, Keyed: c.keyed, Prefetch: 512})
		})
	}
}

// BenchmarkBacklogMemory measures the live heap a waiting message costs: a
// backlog of 10,000 sealed messages published one per call, as a route's
// HTTP source publishes them (each with its own headers map: content type
// and the sealed mark, the partner benchmark's message), none consumed yet.
// B/waiting is the heap in use after a GC, less the heap before, per
// message.
func BenchmarkBacklogMemory(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	body := make([]byte, 96)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var perMsg float64
	for range b.N {
		b.StopTimer()
		db := openDB(b, filepath.Join(b.TempDir(), "state.db"))
		bb, err := local.Open(ctx, db, testConfig(), nil)
		if err != nil {
			b.Fatal(err)
		}
		sb := bus.Sealed(bb, sealer(b, "k1"))
		sub, err := sb.Subscribe(ctx, bus.SubscribeOptions{Topic: "route.bench", Subscription: "route.bench", ProcessingDeadline: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for i := range n {
			m := bus.Message{IdempotencyKey: fmt.Sprintf("h1-%019d-%d", 1796319466858495555, i), Body: body,
				Headers: map[string]string{"content-type": "application/json"}}
			if err := sb.Publish(ctx, "route.bench", m); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMsg += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(sub)
		_ = sub.Close(ctx)
		_ = bb.Close(ctx)
		_ = db.Close()
	}
	b.ReportMetric(perMsg/float64(b.N), "B/waiting")
}
