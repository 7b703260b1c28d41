package hubmon_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/hubmon"
	"github.com/shanghai-mca/mzhub/monitor/store/clickhouse"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestIntegrationClickHouseProfile runs the monitor as the cluster profile
// does: store clickhouse from config, events through the writer.
func TestIntegrationClickHouseProfile(t *testing.T) {
	addr := os.Getenv("MZHUB_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("MZHUB_TEST_CLICKHOUSE not set: skipping ClickHouse test (deploy/clickhouse/start.sh starts a server)")
	}
	cfg := monitor.DefaultConfig()
	cfg.Store = "clickhouse"
	cfg.ClickHouse.Addr = addr
	cfg.ClickHouse.Database = fmt.Sprintf("mzhub_hubmon_%d", time.Now().UnixNano())
	cfg.FlushInterval = 50 * time.Millisecond
	ctx := context.Background()
	m, err := hubmon.New(ctx, cfg, hubmon.Deps{Metrics: prometheus.NewRegistry(), State: storetest.Open(t), Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := clickhouse.DropDatabase(ctx, clickhouse.Options{Addr: addr, Database: cfg.ClickHouse.Database}); err != nil {
			t.Errorf("drop: %v", err)
		}
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- m.Run(runCtx) }()
	for i := range 100 {
		m.Emit(monitor.Event{Partner: "bank.boc", Flow: "allowance", Direction: monitor.Outbound, Type: monitor.Uploaded,
			ExchangeID: fmt.Sprint("f", i), BatchID: "allowance-2026-11", Stage: "send", Records: 10})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := m.Close(cctx); err != nil {
		t.Fatal(err)
	}
	s, err := clickhouse.Open(ctx, clickhouse.Options{Addr: addr, Database: cfg.ClickHouse.Database})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.Search(ctx, monitor.Filter{BatchID: "allowance-2026-11", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 100 {
		t.Fatalf("stored %d events, want 100", len(evs))
	}
	if evs[0].Node != "n1" {
		t.Errorf("node %q", evs[0].Node)
	}
	b, err := s.Batches(ctx, monitor.BatchQuery{BatchID: "allowance-2026-11"})
	if err != nil || len(b) != 1 || b[0].RecordsOut != 1000 {
		t.Errorf("batch stages %+v %v", b, err)
	}
}
