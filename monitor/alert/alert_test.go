package alert_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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
		a := monitor.Alert{Rule: "error_rate", Severity: monitor.SevWarning, Partner: "bank.ccb", Flow: "returns", Summary: "8%",
			Message: monitor.MsgErrorRate, Args: map[string]string{"rate": "8.0", "errors": "8", "events": "100"}}
		created, err := in.Raise(ctx, a)
		if err != nil || !created {
			t.Fatalf("first raise: created=%v err=%v", created, err)
		}
		fc.Advance(time.Minute)
		a.Severity, a.Summary, a.Args = monitor.SevCritical, "25%", map[string]string{"rate": "25.0", "errors": "25", "events": "100"}
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
		if got.Message != monitor.MsgErrorRate || fmt.Sprint(got.Args) != "map[errors:25 events:100 rate:25.0]" {
			t.Errorf("message %q %v: the raise again must refresh the parameters", got.Message, got.Args)
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
	// Each says what it is as a message key with all its parameters.
	msgs := map[string]string{}
	for _, a := range list {
		params, ok := monitor.AlertMessages()[a.Message]
		if !ok {
			t.Errorf("%s %s: message key %q is not one of monitor.AlertMessages", a.Rule, a.Partner, a.Message)
		}
		for _, p := range params {
			if _, ok := a.Args[p]; !ok {
				t.Errorf("%s %s: parameter %s missing: %v", a.Rule, a.Partner, p, a.Args)
			}
		}
		msgs[a.Partner] = fmt.Sprint(a.Args)
	}
	if msgs["bank.ceb"] != "map[batch:disbursement-2026-12 failed:80 rate:16.0 records:500]" {
		t.Errorf("CEB's parameters: %s", msgs["bank.ceb"])
	}
	for _, rule := range []string{"failed_payments", "trailer", "late_return", "partner_down"} {
		if !slices.Contains(alert.IncidentRules, rule) {
			t.Errorf("%s is not an incident rule", rule)
		}
	}
}

// TestMigrationKeepsOldAlerts: alerts stored before message keys existed
// are still listed after the migration, with their summary and no key.
func TestMigrationKeepsOldAlerts(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		first, err := os.ReadFile("migrations/001_alerts.sql")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, "monitor_alert", fstest.MapFS{"001_alerts.sql": {Data: first}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO monitor_alerts (fingerprint, rule, severity, partner, flow, summary, state, first_ms, last_ms, count)
			VALUES ('backlog/joblib/status', 'backlog', 'warning', 'joblib', 'status', '3 dead letters waiting', 'open', 1, 1, 1)`); err != nil {
			t.Fatal(err)
		}
		if err := alert.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		in := alert.NewInbox(db, clock.NewFake(t0), &audittest.Recorder{}, nil)
		list, err := in.List(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Summary != "3 dead letters waiting" || list[0].Message != "" || list[0].Args != nil {
			t.Fatalf("old alert after the migration: %+v", list)
		}
		// Raising it again (the same fingerprint) gives it its key.
		if created, err := in.Raise(ctx, monitor.Alert{Rule: "backlog", Severity: monitor.SevWarning, Partner: "joblib", Flow: "status",
			Summary: "4 dead letters waiting", Message: monitor.MsgBacklog, Args: map[string]string{"count": "4"}}); err != nil || created {
			t.Fatalf("raise: created=%v err=%v", created, err)
		}
		list, _ = in.List(ctx, "", 10)
		if len(list) != 1 || list[0].Message != monitor.MsgBacklog || list[0].Args["count"] != "4" || list[0].Count != 2 {
			t.Errorf("after raising again: %+v", list)
		}
	})
}

// TestPartnerDownResolvesItself: a partner_down alert is resolved by the
// monitor once the partner's breaker closes, or once an exchange with the
// partner succeeds after the breaker's last change (a restarted hub's
// breaker never reports closing); an older success or the hub's own
// internal steps do not resolve it, and a closed breaker still inside the
// window does not raise it again.
func TestPartnerDownResolvesItself(t *testing.T) {
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
	aud := &audittest.Recorder{}
	in := alert.NewInbox(db, fc, aud, nil)
	r := &alert.Rules{Store: st, Inbox: in, Clock: fc, Every: time.Minute}
	n := 0
	ev := func(at time.Time, partner string, typ monitor.EventType, status monitor.Status, code string, dir monitor.Direction) monitor.Event {
		n++
		e := monitor.Event{ID: fmt.Sprint("e", n), ExchangeID: fmt.Sprint("e", n), Time: at, Partner: partner, Flow: "allowance",
			Type: typ, Status: status, Direction: dir}
		if code != "" {
			e.ErrorClass, e.ErrorCode = "breaker", code
		}
		return e
	}
	appendAndEvaluate := func(evs ...monitor.Event) map[string]monitor.Alert {
		t.Helper()
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
		m := map[string]monitor.Alert{}
		for _, a := range list {
			if a.Rule != "partner_down" {
				continue
			}
			if b, dup := m[a.Partner]; !dup {
				m[a.Partner] = a // live ones first, then the newest
			} else if a.State != monitor.AlertResolved && b.State != monitor.AlertResolved {
				t.Errorf("%s: more than one live partner_down alert: %+v", a.Partner, list)
			}
		}
		return m
	}
	// Three partners go down.
	got := appendAndEvaluate(
		ev(t0.Add(-10*time.Minute), "bank.boc", monitor.Uploaded, monitor.OK, "", monitor.Outbound), // before: no evidence
		ev(t0.Add(-30*time.Second), "bank.cmb", monitor.Failed, monitor.Warning, "breaker_open", monitor.Outbound),
		ev(t0.Add(-30*time.Second), "bank.spdb", monitor.Failed, monitor.Warning, "breaker_open", monitor.Outbound),
		ev(t0.Add(-30*time.Second), "bank.boc", monitor.Failed, monitor.Warning, "breaker_open", monitor.Outbound),
	)
	for _, p := range []string{"bank.cmb", "bank.spdb", "bank.boc"} {
		if a, ok := got[p]; !ok || a.State != monitor.AlertOpen || a.Message != monitor.MsgPartnerDown || a.Args["code"] != "breaker_open" {
			t.Fatalf("%s: partner_down alert %+v", p, a)
		}
	}
	// CMB's breaker closes; SPDB's files go up again (the hub restarted:
	// no closing reported); BOC only has internal steps.
	fc.Advance(time.Minute)
	got = appendAndEvaluate(
		ev(t0.Add(20*time.Second), "bank.cmb", monitor.Failed, monitor.OK, "breaker_closed", monitor.Outbound),
		ev(t0.Add(40*time.Second), "bank.spdb", monitor.Uploaded, monitor.OK, "", monitor.Outbound),
		ev(t0.Add(40*time.Second), "bank.boc", monitor.Transformed, monitor.OK, "", monitor.Internal),
	)
	resolvedAt := t0.Add(time.Minute)
	if a := got["bank.cmb"]; a.State != monitor.AlertResolved || a.ResolvedBy != monitor.AutoResolver || !a.ResolvedAt.Equal(resolvedAt) ||
		a.ResolveMessage != monitor.MsgResolvedBreakerClosed || a.ResolveArgs["at"] != "2026-11-27T09:00:20+08:00" || !strings.Contains(a.Note, "closed") {
		t.Errorf("CMB after its breaker closed: %+v", a)
	}
	if a := got["bank.spdb"]; a.State != monitor.AlertResolved || a.ResolvedBy != monitor.AutoResolver || !a.ResolvedAt.Equal(resolvedAt) ||
		a.ResolveMessage != monitor.MsgResolvedRecovered || fmt.Sprint(a.ResolveArgs) != "map[at:2026-11-27T09:00:40+08:00 flow:allowance type:uploaded]" {
		t.Errorf("SPDB after an upload succeeded: %+v", a)
	}
	if a := got["bank.boc"]; a.State != monitor.AlertOpen {
		t.Errorf("BOC has no evidence it answers: %+v", a)
	}
	var entries []string
	for _, rec := range aud.Records() {
		entries = append(entries, rec.Actor+" "+rec.Action)
	}
	if fmt.Sprint(entries) != "[system:monitor monitor.alert.resolve system:monitor monitor.alert.resolve]" {
		t.Errorf("audit %v: each automatic resolution is audited as the monitor", entries)
	}
	// The breaker's opening is still inside the next window: not raised again.
	fc.Advance(30 * time.Second)
	got = appendAndEvaluate()
	if got["bank.cmb"].State != monitor.AlertResolved || got["bank.spdb"].State != monitor.AlertResolved {
		t.Errorf("raised again after recovery: %+v", got)
	}
	// CMB goes down again: a new alert.
	fc.Advance(time.Minute)
	got = appendAndEvaluate(ev(fc.Now().Add(-10*time.Second), "bank.cmb", monitor.Failed, monitor.Warning, "breaker_open", monitor.Outbound))
	if a := got["bank.cmb"]; a.State != monitor.AlertOpen || a.Count != 1 {
		t.Errorf("CMB down again: %+v", a)
	}
}
