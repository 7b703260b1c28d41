package quality_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/quality"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
)

type alerts struct{ list []monitor.Alert }

func (a *alerts) Raise(_ context.Context, al monitor.Alert) (bool, error) {
	a.list = append(a.list, al)
	return true, nil
}

var now = time.Date(2026, 11, 27, 8, 0, 0, 0, clock.Shanghai)

func seed(t *testing.T) monitor.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var evs []monitor.Event
	// village bank 01: 10 answers, 1 format error, 2 slow (over 10 s), 100 records with 5 failed.
	for i := range 10 {
		ev := monitor.Event{ID: fmt.Sprint("a", i), Time: now.Add(-time.Duration(i+1) * time.Hour), Partner: "villagebank.01", Flow: "verification",
			Direction: monitor.Inbound, Type: monitor.Received, Status: monitor.OK, ExchangeID: fmt.Sprint("vb1/", i), Records: 10,
			Duration: 2 * time.Second}
		if i == 0 {
			ev.Type, ev.Status, ev.ErrorClass, ev.RecordsFailed = monitor.Validated, monitor.Error, "format", 5
		}
		if i == 1 || i == 2 {
			ev.Duration = 20 * time.Second
		}
		evs = append(evs, ev)
	}
	// housing fund: perfect.
	for i := range 4 {
		evs = append(evs, monitor.Event{ID: fmt.Sprint("h", i), Time: now.Add(-time.Duration(i+1) * time.Hour), Partner: "hpf", Flow: "verification",
			Direction: monitor.Inbound, Type: monitor.Received, Status: monitor.OK, ExchangeID: fmt.Sprint("hpf/", i), Duration: time.Second})
	}
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestScoresReportAndAlerts(t *testing.T) {
	st := seed(t)
	al := &alerts{}
	fc := clock.NewFake(now)
	s := &quality.Scorer{Store: st, Clock: fc, Alerts: al, Config: monitor.QualityConfig{SampleSize: 3,
		Rules: []monitor.QualityRule{{Flow: "verification", AnswerWithin: 10 * time.Second, MinScore: 95}, {Partner: "hpf", MinScore: 50}}}}
	ctx := context.Background()
	scores, err := s.Scores(ctx, now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 2 {
		t.Fatalf("scores %+v", scores)
	}
	vb := scores[1]
	if vb.Partner != "villagebank.01" || vb.Events != 10 || vb.Completeness != 0.95 || vb.Format != 0.9 || vb.Timeliness != 0.8 || vb.MinScore != 95 {
		t.Errorf("village bank %+v", vb)
	}
	if want := 100 * (0.4*0.95 + 0.3*0.9 + 0.3*0.8); vb.Score < want-1e-9 || vb.Score > want+1e-9 {
		t.Errorf("score %v, want %v", vb.Score, want)
	}
	if len(vb.Sampled) != 3 {
		t.Errorf("sample %v", vb.Sampled)
	}
	again, _ := s.Scores(ctx, now.Add(-24*time.Hour), now)
	if fmt.Sprint(again[1].Sampled) != fmt.Sprint(vb.Sampled) {
		t.Errorf("sample not reproducible: %v vs %v", again[1].Sampled, vb.Sampled)
	}
	hpf := scores[0]
	if hpf.Score != 100 || hpf.MinScore != 50 {
		t.Errorf("hpf %+v (the partner rule is more specific than the flow rule)", hpf)
	}
	if err := s.Check(ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(al.list) != 1 || al.list[0].Partner != "villagebank.01" || al.list[0].Rule != "quality" {
		t.Errorf("alerts %+v", al.list)
	}
	var csvBuf, htmlBuf bytes.Buffer
	if err := quality.WriteCSV(&csvBuf, scores); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(csvBuf.String(), "\uFEFF")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "partner,flow,events") || !strings.HasPrefix(lines[2], "villagebank.01,verification,10,0.9500,0.9000,0.8000,") {
		t.Errorf("csv:\n%s", csvBuf.String())
	}
	if err := quality.WriteHTML(&htmlBuf, scores, now.Add(-24*time.Hour), now, "zh"); err != nil {
		t.Fatal(err)
	}
	if h := htmlBuf.String(); !strings.Contains(h, "数据质量报告") || !strings.Contains(h, "villagebank.01") || !strings.Contains(h, `class="bad"`) {
		t.Errorf("html:\n%s", h)
	}
	dir := t.TempDir()
	files, err := s.WriteReport(ctx, dir, now.Add(-24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if filepath.Base(files[0]) != "quality-20261127-0800.html" {
		t.Errorf("name %s", files[0])
	}
}

func TestPeriodicReportWithFakeClock(t *testing.T) {
	st := seed(t)
	fc := clock.NewFake(now)
	dir := t.TempDir()
	s := &quality.Scorer{Store: st, Clock: fc, Config: monitor.QualityConfig{ReportDir: dir, ReportEvery: 24 * time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, time.Hour) }()
	// Each pass ends with Run waiting on the fake clock for the next hour:
	// that is when a report it wrote is on disk and time may move on.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for hour := 0; ; hour++ {
		if err := fc.BlockUntil(wctx, 1); err != nil {
			t.Fatalf("hour %d: Run never waited for the next check: %v", hour, err)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "quality-*.csv"))
		if len(matches) > 0 {
			break
		}
		if hour > 24 {
			t.Fatal("no report written within a simulated day")
		}
		fc.Advance(time.Hour)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// listed is an alert inbox that lists what it holds.
type listed struct {
	alerts
	held []monitor.Alert
}

func (l *listed) List(context.Context, monitor.AlertState, int) ([]monitor.Alert, error) {
	return l.held, nil
}

// TestIncidentsCount: each incident alert of the window takes points off
// its partner flow's score and shows in the report; alerts of other rules
// and outside the window do not; a flow with incidents and no events gets
// a row.
func TestIncidentsCount(t *testing.T) {
	st := seed(t)
	in := &listed{held: []monitor.Alert{
		{Rule: "failed_payments", Partner: "villagebank.01", Flow: "verification", LastAt: now.Add(-time.Hour)},
		{Rule: "partner_down", Partner: "villagebank.01", Flow: "verification", LastAt: now.Add(-2 * time.Hour)},
		{Rule: "error_rate", Partner: "villagebank.01", Flow: "verification", LastAt: now.Add(-time.Hour)},
		{Rule: "reconciliation", Partner: "villagebank.01", Flow: "verification", LastAt: now.Add(-30 * 24 * time.Hour)},
		{Rule: "late_return", Partner: "bank.ccb", Flow: "disbursement", LastAt: now.Add(-time.Hour)},
	}}
	base := &quality.Scorer{Store: st, Clock: clock.NewFake(now)}
	with := &quality.Scorer{Store: st, Clock: clock.NewFake(now), Alerts: in}
	from, to := now.Add(-24*time.Hour), now
	a, err := base.Scores(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	b, err := with.Scores(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	score := func(list []monitor.QualityScore, partner string) (monitor.QualityScore, bool) {
		for _, q := range list {
			if q.Partner == partner {
				return q, true
			}
		}
		return monitor.QualityScore{}, false
	}
	qa, _ := score(a, "villagebank.01")
	qb, _ := score(b, "villagebank.01")
	if qb.Incidents != 2 || qb.Score != max(0, qa.Score-2*monitor.IncidentPenalty) {
		t.Errorf("villagebank.01: %d incidents, score %.1f (without: %.1f)", qb.Incidents, qb.Score, qa.Score)
	}
	if q, ok := score(b, "bank.ccb"); !ok || q.Incidents != 1 || q.Score != 100-monitor.IncidentPenalty {
		t.Errorf("bank.ccb: %+v %v", q, ok)
	}
	var csv bytes.Buffer
	if err := quality.WriteCSV(&csv, b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv.String(), "incidents") || !strings.Contains(csv.String(), "bank.ccb,disbursement,0,1.0000,1.0000,1.0000,1,90.0") {
		t.Errorf("csv:\n%s", csv.String())
	}
}
