package hubmon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/hubmon"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// The tests run in a synctest bubble: the writer's flush interval is fake
// time and synctest.Wait tells when the monitor has done what it can.

func TestEmitRunCloseServe(t *testing.T) { synctest.Test(t, testEmitRunCloseServe) }

func testEmitRunCloseServe(t *testing.T) {
	cfg := monitor.DefaultConfig()
	cfg.SQLitePath = filepath.Join(t.TempDir(), "monitor.db")
	cfg.FlushInterval = 10 * time.Millisecond
	reg := prometheus.NewRegistry()
	m, err := hubmon.New(context.Background(), cfg, hubmon.Deps{Metrics: reg, Node: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	m.Emit(monitor.Event{Partner: "bank.boc", Flow: "disbursement", Direction: monitor.Outbound, Type: monitor.Uploaded, ExchangeID: "f1", Duration: time.Second})
	if evs := stored(t, m, cfg, 1); evs[0].Node != "test" {
		t.Errorf("node %q", evs[0].Node)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", m.Console()))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/", nil))
	if b := rec.Body.String(); rec.Code != 200 || !strings.Contains(b, "bank.boc") {
		t.Errorf("console: %d %s", rec.Code, b)
	}
	n, err := testutil.GatherAndCount(reg, "mzhub_exchanges_total", "mzhub_exchange_duration_seconds", "mzhub_exchange_last_success_timestamp_seconds")
	if err != nil || n != 3 {
		t.Errorf("metrics: %d series, %v", n, err)
	}
	m.Emit(monitor.Event{Partner: "bank.boc", Flow: "disbursement", Type: monitor.Sent, ExchangeID: "late"})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := m.Close(cctx); err != nil {
		t.Fatal(err)
	}
}

// leaseLog records which leases the monitor's jobs run under, and runs
// none of them (another replica holds every lease).
type leaseLog struct {
	mu    sync.Mutex
	names []string
}

func (l *leaseLog) Run(ctx context.Context, name string, f func(context.Context) error) error {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	<-ctx.Done()
	return nil
}

// TestPeriodicJobsUnderLeases: with leases, the alert rules, expectation
// checks, quality reports and retention run under their own lease each,
// while the event writer runs on every replica.
func TestPeriodicJobsUnderLeases(t *testing.T) { synctest.Test(t, testPeriodicJobsUnderLeases) }

func testPeriodicJobsUnderLeases(t *testing.T) {
	cfg := monitor.DefaultConfig()
	cfg.SQLitePath = filepath.Join(t.TempDir(), "monitor.db")
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.RetentionMonths = 13
	leases := &leaseLog{}
	m, err := hubmon.New(context.Background(), cfg, hubmon.Deps{Metrics: prometheus.NewRegistry(), Node: "test", State: storetest.Open(t), Leases: leases})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	m.Emit(monitor.Event{Partner: "bank.boc", Flow: "disbursement", Type: monitor.Uploaded, ExchangeID: "f1"})
	stored(t, m, cfg, 1) // the writer runs while other replicas hold the leases
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	leases.mu.Lock()
	got := slices.Sorted(slices.Values(leases.names))
	leases.mu.Unlock()
	want := []string{"monitor.alert_rules", "monitor.expectations", "monitor.quality", "monitor.retention"}
	if !slices.Equal(got, want) {
		t.Errorf("leases %v, want %v", got, want)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := m.Close(cctx); err != nil {
		t.Fatal(err)
	}
}

// stored lets one flush interval pass (fake time), waits until the monitor
// is idle and checks that its store holds n events, which it returns.
func stored(t *testing.T, m *hubmon.Monitor, cfg monitor.Config, n int) []monitor.Event {
	t.Helper()
	time.Sleep(cfg.FlushInterval)
	synctest.Wait()
	evs, err := m.Store().Search(context.Background(), monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events stored one flush interval after the emit, want %d", len(evs), n)
	}
	return evs
}
