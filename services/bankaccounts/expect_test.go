package bankaccounts

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// failOnce fails its first registration (a crash after the upload).
type failOnce struct {
	Expecter
	failed bool
}

func (f *failOnce) Expect(ctx context.Context, e monitor.Expectation) error {
	if !f.failed {
		f.failed = true
		return errors.New("monitor store down")
	}
	return f.Expecter.Expect(ctx, e)
}

// TestResultExpectations: each request file sent registers, through the
// real expectation tracker, that its result file is due by
// result_deadline after the upload: met by the bank's result file
// fetched and applied; a file the bank never answers is missed, with the
// ExpectationMissed event and the expectation alert the payment returns
// raise. A registration that failed (a crash after the upload) is made at
// the next pass, once.
func TestResultExpectations(t *testing.T) {
	ctx := context.Background()
	e := start(t, nil, t.TempDir())
	// The tracker's clock starts before the service's first event and is
	// set to the real time before each check (the service runs on it).
	fc := clock.NewFake(time.Now().Add(-time.Second))
	mon := monitortest.NewExpectations(t, e.db, fc)
	tr := mon.Tracker
	e.svc.expect, e.svc.due = tr, 6*time.Hour
	// store moves the service's events into the monitor store, as the hub's writer does.
	store := func() {
		t.Helper()
		var evs []monitor.Event
		for {
			select {
			case ev := <-e.ev.ch:
				evs = append(evs, ev)
				continue
			default:
			}
			break
		}
		mon.Store(t, evs...)
	}
	g := synth.New(11)
	p, q := g.Next(), g.Next()

	// Answered: a verification at BOC, sent, fetched and applied.
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "v1", Bank: "boc", Op: bank.OpVerify, PersonID: p.ID, Name: p.Name, Account: p.Account, Division: p.Division}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	var sentMS, dueMS int64
	var name string
	if err := e.db.QueryRowContext(ctx, `SELECT name, updated_ms, result_due_ms FROM acct_files WHERE bank = 'boc'`).Scan(&name, &sentMS, &dueMS); err != nil {
		t.Fatal(err)
	}
	store()
	fc.Set(time.Now())
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	got := expectations(t, tr)
	x, ok := got[ExpectationFor("boc", name)]
	if !ok || x.Partner != "bank.boc" || x.Flow != "account-verify" || x.Type != monitor.Downloaded {
		t.Fatalf("expectation of %s: %+v (all %v)", name, x, got)
	}
	if x.State != monitor.ExpectMet || x.Due.UnixMilli() != dueMS || dueMS-sentMS > (6*time.Hour).Milliseconds() || dueMS <= sentMS {
		t.Fatalf("expectation of %s: %s due %s (sent %s)", name, x.State, x.Due, time.UnixMilli(sentMS))
	}

	// Never answered: an opening at CCB, sent but no result fetched; the
	// first registration fails and is made at the next pass.
	e.svc.expect = &failOnce{Expecter: tr}
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "o1", Bank: "ccb", Op: bank.OpOpen, PersonID: q.ID, Name: q.Name, Division: q.Division}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.sendBank(ctx, e.svc.banks["ccb"]); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRowContext(ctx, `SELECT name FROM acct_files WHERE bank = 'ccb' AND status = 'sent'`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, ok := expectations(t, tr)[ExpectationFor("ccb", name)]; ok {
		t.Fatal("registered although the monitor refused it")
	}
	for range 2 { // registered once however often
		if err := e.svc.expectResults(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	store()
	fc.Set(time.Now())
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if x := expectations(t, tr)[ExpectationFor("ccb", name)]; x.State != monitor.ExpectPending {
		t.Fatalf("unanswered file before its due time: %+v", x)
	}
	fc.Advance(6*time.Hour + time.Minute)
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	got = expectations(t, tr)
	if x := got[ExpectationFor("ccb", name)]; x.State != monitor.ExpectMissed || x.Partner != "bank.ccb" || x.Flow != "account-open" {
		t.Fatalf("unanswered file after its due time: %+v", x)
	}
	if len(got) != 2 {
		t.Fatalf("%d expectations, want 2: %v", len(got), got)
	}
	if evs := mon.Missed.Events(); len(evs) != 1 || evs[0].Type != monitor.ExpectationMissed || evs[0].Partner != "bank.ccb" || evs[0].Flow != "account-open" ||
		evs[0].Attrs["expectation"] != ExpectationFor("ccb", name) {
		t.Fatalf("missed events: %+v", evs)
	}
	if al := mon.Alerts.List(); len(al) != 1 || al[0].Rule != "expectation" || al[0].Partner != "bank.ccb" || al[0].Severity != monitor.SevCritical {
		t.Fatalf("alerts: %+v", al)
	}
}

func expectations(t *testing.T, tr *expect.Tracker) map[string]monitor.Expectation {
	t.Helper()
	list, err := tr.Between(context.Background(), time.Now().Add(-24*time.Hour), time.Now().Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]monitor.Expectation{}
	for _, x := range list {
		out[x.Name] = x
	}
	return out
}
