package clickhouse_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/sample"
	"github.com/shanghai-mca/mzhub/monitor/store/clickhouse"
	"github.com/shanghai-mca/mzhub/monitor/store/storetest"
)

// open returns a store in a fresh database of the server named by
// MZHUB_TEST_CLICKHOUSE, dropped after the test.
func open(t testing.TB) *clickhouse.Store {
	t.Helper()
	addr := os.Getenv("MZHUB_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("MZHUB_TEST_CLICKHOUSE not set: skipping ClickHouse test (deploy/clickhouse/start.sh starts a server)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "mzhub_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, clickhouse.Options{Addr: addr, Database: db, Username: "default"})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the suite's Close, so it runs after it: use a
	// connection of its own.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := clickhouse.DropDatabase(ctx, clickhouse.Options{Addr: addr, Database: db, Username: "default"}); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	return s
}

func TestIntegrationClickHouseStoreSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) monitor.Store { return open(t) })
}

// TestSchemaCopyInDeploy checks that deploy/clickhouse/schema.sql (for
// operators; a symbolic link to the embedded file) still resolves to the
// schema the store applies, e.g. after the file moves or on a checkout
// without symbolic links.
func TestSchemaCopyInDeploy(t *testing.T) {
	deploy, err := os.ReadFile("../../../deploy/clickhouse/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("schema/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(deploy) != string(embedded) {
		t.Error("deploy/clickhouse/schema.sql differs from monitor/store/clickhouse/schema/schema.sql: restore the symbolic link")
	}
	for _, banned := range []string{"DateTime64", "Map(", " TTL ", "CODEC", "INDEX ", "LowCardinality"} {
		for _, stmt := range clickhouse.Schema() {
			if strings.Contains(stmt, banned) {
				t.Errorf("schema uses %q, which 18.16 does not run", banned)
			}
		}
	}
}

func TestIntegrationClickHouseRetentionAndRollups(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	old := time.Date(2026, 8, 15, 12, 0, 0, 0, time.UTC)
	recent := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	evs := []monitor.Event{
		{Time: old, ID: "o1", Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, Status: monitor.OK, ExchangeID: "o1", ParentIDs: []string{"p"}},
		{Time: recent, ID: "r1", Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, Status: monitor.OK, ExchangeID: "r1"},
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Appending the same batch again (a writer retry) does not show twice.
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Search(ctx, monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("after a retried batch: %d events, want 2", len(got))
	}
	dropped, err := s.DropMonthsBefore(ctx, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 3 {
		t.Errorf("dropped %v, want the 202608 partition of events, lineage and hourly", dropped)
	}
	got, err = s.Search(ctx, monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "r1" {
		t.Errorf("after retention: %+v", got)
	}
}

// BenchmarkIntegrationClickHouseIngest measures Append of 10k-event batches
// (the writer's flush size); reports events/s.
func BenchmarkIntegrationClickHouseIngest(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	batch := sample.Bulk(from, from.Add(time.Hour), 10000, 0, 1)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j].ID = fmt.Sprintf("b%d-%d", i, j)
		}
		if err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "events/s")
}

// BenchmarkIntegrationClickHouseIngestParallel is BenchmarkIntegrationClickHouseIngest
// with two concurrent writers (e.g. two hub replicas).
func BenchmarkIntegrationClickHouseIngestParallel(b *testing.B) {
	s := open(b)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b.SetParallelism(1) // GOMAXPROCS (2) goroutines
	start := time.Now()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		g := seq.Add(1)
		batch := sample.Bulk(from, from.Add(time.Hour), 10000, 0, uint64(g))
		i := 0
		for pb.Next() {
			for j := range batch {
				batch[j].ID = fmt.Sprintf("p%d-%d-%d", g, i, j)
			}
			if err := s.Append(context.Background(), batch); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N*10000)/time.Since(start).Seconds(), "events/s")
}
