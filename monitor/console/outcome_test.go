package console

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"

	"github.com/shanghai-mca/mzhub/monitor"
)

// TestStageOutcome: a stage with errors says so, even when its last event
// (a stage change with status ok) marked it done.
func TestStageOutcome(t *testing.T) {
	for _, tc := range []struct {
		name  string
		row   batchRow
		want  string
		class string
	}{
		{"done clean", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.StageChanged, LastStatus: monitor.OK}}, "stage_ok", ""},
		{"done but errors on the way", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.StageChanged, LastStatus: monitor.OK, Errors: 2}}, "stage_errors", "red"},
		{"done with an error status", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.StageChanged, LastStatus: monitor.Error}}, "stage_errors", "red"},
		{"failed records", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.Reconciled, LastStatus: monitor.OK, RecordsFailed: 9}}, "stage_warnings", "amber"},
		{"last step failed", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.Failed, LastStatus: monitor.Error, Errors: 1}}, "stage_failed", "red"},
		{"running", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.Uploaded, LastStatus: monitor.OK}}, "stage_running", ""},
		{"stuck", batchRow{BatchStage: monitor.BatchStage{LastType: monitor.Uploaded, LastStatus: monitor.OK}, Stuck: true}, "stage_running", "amber"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.Outcome(); got != tc.want {
				t.Errorf("outcome %s, want %s", got, tc.want)
			}
			if got := tc.row.Class(); got != tc.class {
				t.Errorf("class %q, want %q", got, tc.class)
			}
			if _, ok := messages[tc.want]; !ok {
				t.Errorf("no message %s", tc.want)
			}
		})
	}
}

// TestNiceTicks: chart scales end on round numbers and ticks print without
// stray decimals.
func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		max, top float64
		ticks    []string
	}{
		{28.969, 40, []string{"0", "10", "20", "30", "40"}},
		{1, 2, []string{"0.0", "0.5", "1.0", "1.5", "2.0"}},
		{0, 4, []string{"0", "1", "2", "3", "4"}},
		{0.37, 0.4, []string{"0.0", "0.1", "0.2", "0.3", "0.4"}},
		{7300, 8000, []string{"0", "2,000", "4,000", "6,000", "8,000"}},
		{0.012, 0.02, []string{"0.000", "0.005", "0.010", "0.015", "0.020"}},
	} {
		top := niceCeil(tc.max)
		if top != tc.top {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.max, top, tc.top)
		}
		for i, want := range tc.ticks {
			if got := tickLabel(top*float64(i)/4, top); got != want {
				t.Errorf("tick %d of %v: %q, want %q", i, top, got, want)
			}
		}
	}
}

// TestCellBands: a cell is grey without activity, red or amber only for
// real failures (records failed at the partner, a failing last step, a
// reconciliation mismatch, a late file, an unhealthy streaming flow),
// green otherwise.
func TestCellBands(t *testing.T) {
	th := monitor.DefaultConfig().Thresholds
	for _, tc := range []struct {
		name string
		cell opCell
		want monitor.Band
		why  string
	}{
		{"no activity", opCell{}, monitor.Grey, ""},
		{"scheduled but nothing yet is not grey", opCell{scheduled: true}, monitor.Green, ""},
		{"batch clean", opCell{batched: true, Events: 5, Records: 500, Recon: monitor.OK}, monitor.Green, ""},
		{"2 % failed payments: amber by the reconciliation", opCell{batched: true, Events: 5, Records: 500, Failed: 10, Recon: monitor.Warning}, monitor.Amber, "reason_recon_warning"},
		{"22 % failed payments: red", opCell{batched: true, Events: 5, Records: 500, Failed: 110, Recon: monitor.Warning}, monitor.Red, "reason_failures"},
		{"a refused file since replaced: amber", opCell{batched: true, Events: 9, Errors: 3, Records: 474, lastStatus: monitor.OK, Recon: monitor.OK}, monitor.Amber, "reason_errors_recovered"},
		{"last step failed: red", opCell{batched: true, Events: 3, Errors: 1, lastStatus: monitor.Error}, monitor.Red, "reason_failing"},
		{"mismatch: red", opCell{batched: true, Events: 3, Records: 10, Recon: monitor.Error}, monitor.Red, "reason_recon_mismatch"},
		{"late file: red", opCell{Late: 1}, monitor.Red, "reason_late"},
		{"arrived late: amber", opCell{batched: true, Events: 3, Records: 10, LateMet: 1}, monitor.Amber, "reason_arrived_late"},
		{"streaming with an unhealthy hour: red", opCell{Events: 20, Errors: 6, healthBand: monitor.Red, healthReasons: []string{"reason_error_rate"}}, monitor.Red, "reason_error_rate"},
		{"streaming errors alone do not colour (the health bands do)", opCell{Events: 300, Errors: 10}, monitor.Green, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cell
			c.judge(th)
			if c.Band != tc.want {
				t.Errorf("band %s %v, want %s", c.Band, c.Reasons, tc.want)
			}
			if tc.why != "" && !slices.Contains(c.Reasons, tc.why) {
				t.Errorf("reasons %v lack %s", c.Reasons, tc.why)
			}
			for _, r := range c.Reasons {
				if _, ok := messages[r]; !ok {
					t.Errorf("reason %s has no message", r)
				}
			}
		})
	}
}

// TestOverviewRereadsAChangedBatch: the overview keeps a batch's events
// between refreshes, and reads them again once the batch has new events.
func TestOverviewRereadsAChangedBatch(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, clock.Shanghai)
	c, err := New(Deps{Store: st, Clock: clock.NewFake(now), Thresholds: monitor.DefaultConfig().Thresholds})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string, typ monitor.EventType, stage string, records, failed int64, at time.Duration) monitor.Event {
		return monitor.Event{ID: id, ExchangeID: id, Time: now.Add(-at), Partner: "bank.ceb", Flow: "disbursement", Type: typ,
			Status: monitor.OK, BatchID: "disbursement-2026-11", Stage: stage, Records: records, RecordsFailed: failed}
	}
	band := func() monitor.Band {
		t.Helper()
		s, err := c.overviewCells(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range s.blocks {
			for _, row := range b.Rows {
				for _, x := range row.Cells {
					if x.Partner == "bank.ceb" && x.Op == "return" {
						return x.Band
					}
				}
			}
		}
		return ""
	}
	if err := st.Append(ctx, []monitor.Event{ev("u", monitor.Uploaded, "upload", 500, 0, time.Hour), ev("r1", monitor.Reconciled, "returns", 500, 0, 30*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if b := band(); b != monitor.Green {
		t.Fatalf("clean return: %s", b)
	}
	if err := st.Append(ctx, []monitor.Event{ev("r2", monitor.Reconciled, "returns", 500, 300, time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if b := band(); b != monitor.Red {
		t.Fatalf("after 300 failed payments: %s", b)
	}
}
