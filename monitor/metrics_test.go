package monitor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/monitor"
)

// TestMetricsPerShape checks the counters the writer keeps per event shape
// (resolved once per shape and cached): exchanges by outcome, records, and
// the newest success per partner flow, which several shapes share.
func TestMetricsPerShape(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := monitor.NewWriter(&memStore{}, monitor.WriterOptions{FlushSize: 100, FlushInterval: time.Hour, BufferSize: 100,
		Metrics: monitor.NewMetrics(reg)})
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	emit := func(min int, typ monitor.EventType, st monitor.Status, records, failed int64) {
		w.Emit(monitor.Event{Time: t0.Add(time.Duration(min) * time.Minute), Partner: "bank.boc", Flow: "allowance",
			Direction: monitor.Outbound, Type: typ, Status: st, Records: records, RecordsFailed: failed})
	}
	emit(10, monitor.Uploaded, monitor.OK, 100, 3)
	emit(5, monitor.Sent, monitor.OK, 10, 0) // older, another shape: the gauge keeps 08:10
	emit(7, monitor.Uploaded, monitor.Error, 0, 0)
	emit(8, monitor.Failed, monitor.Error, 0, 0)
	emit(9, monitor.Retried, monitor.Warning, 0, 0)
	lastSuccess := func(want string) {
		t.Helper()
		exp := `
# HELP mzhub_exchange_last_success_timestamp_seconds Unix time of the last successful exchange step per partner and flow.
# TYPE mzhub_exchange_last_success_timestamp_seconds gauge
mzhub_exchange_last_success_timestamp_seconds{flow="allowance",partner="bank.boc"} ` + want + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "mzhub_exchange_last_success_timestamp_seconds"); err != nil {
			t.Error(err)
		}
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	lastSuccess("1.795767e+09")              // 08:10
	emit(20, monitor.Sent, monitor.OK, 1, 0) // newer, from a cached shape
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	lastSuccess("1.7957676e+09") // 08:20
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" || l.GetName() == "result" || l.GetName() == "status" {
					key += "/" + l.GetValue()
				}
			}
			if c := m.GetCounter(); c != nil {
				got[key] += c.GetValue()
			}
		}
	}
	for k, v := range map[string]float64{
		"mzhub_exchanges_total/ok": 3, "mzhub_exchanges_total/error": 2,
		"mzhub_exchange_retries_total": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
