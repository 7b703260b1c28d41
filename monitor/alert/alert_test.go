package alert_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, clock.Shanghai)

func TestInbox(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := alert.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		fc := clock.NewFake(t0)
		aud := &audittest.Recorder{}
		in := alert.NewInbox(db, fc, aud, nil)
		a := monitor.Alert{Rule: "error_rate", Severity: monitor.SevWarning, Partner: "bank.ccb", Flow: "returns", Summary: "8%"}
		created, err := in.Raise(ctx, a)
		if err != nil || !created {
			t.Fatalf("first raise: created=%v err=%v", created, err)
		}
		fc.Advance(time.Minute)
		a.Severity, a.Summary = monitor.SevCritical, "25%"
		if created, err = in.Raise(ctx, a); err != nil || created {
			t.Fatalf("second raise: created=%v err=%v", created, err)
		}
		list, err := in.List(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Fatalf("de-duplication: %d alerts", len(list))
		}
		got := list[0]
		if got.Count != 2 || got.Severity != monitor.SevCritical || got.Summary != "25%" || !got.FirstAt.Equal(t0) ||
			!got.LastAt.Equal(t0.Add(time.Minute)) || got.State != monitor.AlertOpen || got.Fingerprint != "error_rate/bank.ccb/returns" {
			t.Errorf("alert %+v", got)
		}
		if err := in.Ack(ctx, got.ID, "", "x"); !errors.Is(err, alert.ErrNoUser) {
			t.Errorf("ack without user: %v", err)
		}
		aud.Fail(errors.New("audit log unavailable"))
		if err := in.Ack(ctx, got.ID, "li", "looking"); err == nil {
			t.Error("ack with the audit log down: want error")
		}
		aud.Fail(nil)
		if l, _ := in.List(ctx, monitor.AlertOpen, 10); len(l) != 1 {
			t.Error("failed audit must leave the alert open")
		}
		if err := in.Ack(ctx, got.ID, "li", "looking"); err != nil {
			t.Fatal(err)
		}
		if err := in.Ack(ctx, got.ID, "li", "again"); !errors.Is(err, alert.ErrNotFound) {
			t.Errorf("second ack: %v", err)
		}
		// Raising while acked still de-duplicates.
		if created, _ := in.Raise(ctx, a); created {
			t.Error("raise while acked created a new alert")
		}
		fc.Advance(time.Minute)
		if err := in.Resolve(ctx, got.ID, "zhang", "bank fixed its file"); err != nil {
			t.Fatal(err)
		}
		if created, _ := in.Raise(ctx, a); !created {
			t.Error("raise after resolve must create a new alert")
		}
		all, _ := in.List(ctx, "", 10)
		if len(all) != 2 || all[0].State != monitor.AlertOpen || all[1].State != monitor.AlertResolved ||
			all[1].AckedBy != "li" || all[1].ResolvedBy != "zhang" || !all[1].ResolvedAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("after resolve: %+v", all)
		}
		var entries []string
		for _, r := range aud.Records() {
			entries = append(entries, strings.Join([]string{r.Actor, r.Action, r.Object, r.Outcome, r.Detail}, " "))
		}
		want := []string{"user:li monitor.alert.ack alert/1 success looking", "user:zhang monitor.alert.resolve alert/1 success bank fixed its file"}
		if fmt.Sprint(entries) != fmt.Sprint(want) {
			t.Errorf("audit %v, want %v", entries, want)
		}
	})
}

func TestRules(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if err := alert.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fc := clock.NewFake(t0)
	in := alert.NewInbox(db, fc, &audittest.Recorder{}, nil)
	r := &alert.Rules{Store: st, Inbox: in, Clock: fc, Thresholds: monitor.DefaultConfig().Thresholds,
		Schedules: []monitor.FlowSchedule{{Partner: "datasea", Flow: "death", Every: 24 * time.Hour}}}
	var evs []monitor.Event
	for i := range 20 {
		ev := monitor.Event{ID: fmt.Sprint("c", i), Time: t0.Add(-time.Duration(i) * time.Minute), Partner: "bank.ccb", Flow: "returns", Type: monitor.Downloaded, Status: monitor.OK, ExchangeID: fmt.Sprint("c", i)}
		if i < 5 {
			ev.Status, ev.Type = monitor.Error, monitor.Failed
		}
		evs = append(evs, ev)
	}
	evs = append(evs,
		monitor.Event{ID: "d1", Time: t0.Add(-2 * time.Hour), Partner: "datasea", Flow: "death", Type: monitor.Fetched, Status: monitor.OK, ExchangeID: "d1"},
		monitor.Event{ID: "dl", Time: t0.Add(-time.Minute), Partner: "joblib", Flow: "status", Type: monitor.DeadLettered, Status: monitor.Error, ExchangeID: "dl"},
		monitor.Event{ID: "rc", Time: t0.Add(-30 * time.Second), Partner: "bank.boc", Flow: "allowance", Type: monitor.Reconciled, Status: monitor.Error, BatchID: "2026-11", ErrorCode: "total_mismatch", ExchangeID: "rc"},
	)
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := r.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	byRule := func() map[string]monitor.Alert {
		list, err := in.List(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]monitor.Alert{}
		for _, a := range list {
			m[a.Rule+" "+a.Partner] = a
		}
		return m
	}
	got := byRule()
	if a, ok := got["error_rate bank.ccb"]; !ok || a.Severity != monitor.SevCritical {
		t.Errorf("error rate alert: %+v", a)
	}
	if a, ok := got["backlog joblib"]; !ok || a.Severity != monitor.SevWarning {
		t.Errorf("backlog alert: %+v", a)
	}
	if a, ok := got["reconciliation bank.boc"]; !ok || !strings.Contains(a.Summary, "2026-11") {
		t.Errorf("reconciliation alert: %+v", a)
	}
	if _, ok := got["staleness datasea"]; ok {
		t.Error("death file fetched 2 h ago must not be stale")
	}
	if len(got) != 3 {
		t.Errorf("alerts %v", got)
	}
	// A day later with no new death file: stale (warning), two days: critical.
	fc.Advance(23 * time.Hour)
	if err := r.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if a, ok := byRule()["staleness datasea"]; !ok || a.Severity != monitor.SevWarning {
		t.Errorf("staleness after 25 h: %+v", a)
	}
	fc.Advance(24 * time.Hour)
	if err := r.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if a := byRule()["staleness datasea"]; a.Severity != monitor.SevCritical || a.Count != 2 {
		t.Errorf("staleness after 49 h: %+v", a)
	}
	// The error-rate window has passed: no new raise of that alert.
	if a := byRule()["error_rate bank.ccb"]; a.Count != 1 {
		t.Errorf("error-rate alert re-raised outside its window: %+v", a)
	}
}

func TestRulesRunStopsWithContext(t *testing.T) {
	db := storetest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := alert.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fc := clock.NewFake(t0)
	r := &alert.Rules{Store: st, Inbox: alert.NewInbox(db, fc, &audittest.Recorder{}, nil), Clock: fc, Every: time.Minute}
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	fc.Advance(time.Minute)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestIncidentRules: failed payments above the thresholds, trailer
// mismatches, late returns and partners down each raise their alert; a
// return with few failures and a closed breaker do not.
func TestIncidentRules(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if err := alert.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fc := clock.NewFake(t0)
	in := alert.NewInbox(db, fc, &audittest.Recorder{}, nil)
	r := &alert.Rules{Store: st, Inbox: in, Clock: fc, Thresholds: monitor.DefaultConfig().Thresholds}
	at := t0.Add(-30 * time.Second)
	ev := func(id, partner string, typ monitor.EventType, st monitor.Status, mod func(*monitor.Event)) monitor.Event {
		e := monitor.Event{ID: id, ExchangeID: id, Time: at, Partner: partner, Flow: "disbursement", Type: typ, Status: st, BatchID: "disbursement-2026-12"}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	evs := []monitor.Event{
		// CEB: 80 of 500 failed (16 %): warning (amber 5 %, red 20 %).
		ev("r1", "bank.ceb", monitor.Reconciled, monitor.Warning, func(e *monitor.Event) { e.Records, e.RecordsFailed = 500, 80 }),
		// SPDB: 30 of 100: critical.
		ev("r2", "bank.spdb", monitor.Reconciled, monitor.Warning, func(e *monitor.Event) { e.Records, e.RecordsFailed = 100, 30 }),
		// BOC: 2 of 500: no alert.
		ev("r3", "bank.boc", monitor.Reconciled, monitor.Warning, func(e *monitor.Event) { e.Records, e.RecordsFailed = 500, 2 }),
		ev("t1", "bank.cmb", monitor.Rejected, monitor.Error, func(e *monitor.Event) {
			e.FileName, e.ErrorClass, e.ErrorMessage = "CMB_RET.txt", "permanent", "trailer check: trailer does not match details: count is 10, details give 9"
		}),
		ev("l1", "bank.ccb", monitor.ExpectationMissed, monitor.Error, func(e *monitor.Event) { e.Stage, e.ErrorCode = "returns", "return_late" }),
		ev("l2", "datasea", monitor.ExpectationMissed, monitor.Error, nil), // the tracker's own
		ev("b1", "bank.bocom", monitor.Failed, monitor.Warning, func(e *monitor.Event) { e.ErrorClass, e.ErrorCode = "breaker", "breaker_open" }),
		ev("b2", "bank.boc", monitor.Failed, monitor.OK, func(e *monitor.Event) { e.ErrorClass, e.ErrorCode = "breaker", "breaker_closed" }),
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := r.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := in.List(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]monitor.Severity{}
	for _, a := range list {
		got[a.Rule+" "+a.Partner] = a.Severity
	}
	want := map[string]monitor.Severity{
		"failed_payments bank.ceb":  monitor.SevWarning,
		"failed_payments bank.spdb": monitor.SevCritical,
		"trailer bank.cmb":          monitor.SevCritical,
		"late_return bank.ccb":      monitor.SevCritical,
		"partner_down bank.bocom":   monitor.SevCritical,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts\n got %v\nwant %v", got, want)
	}
	for _, rule := range []string{"failed_payments", "trailer", "late_return", "partner_down"} {
		if !slices.Contains(alert.IncidentRules, rule) {
			t.Errorf("%s is not an incident rule", rule)
		}
	}
}
