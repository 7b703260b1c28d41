package local_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

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
