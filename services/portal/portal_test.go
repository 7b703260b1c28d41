package portal

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

func application(id, item, channel, person, division string) joblib.Application {
	a := joblib.Application{ApplicationID: id, ItemCode: item, ItemName: item, Channel: channel, Applicant: joblib.Applicant{IDNumber: person, Name: "张伟"},
		Division: division, SubmittedAt: t0}
	if channel == joblib.ChannelTerminal {
		a.TerminalID = "ZZ-" + division + "-001"
	}
	return a
}

func TestApplicationsTakenOnceByTheirCursor(t *testing.T) {
	e := newEnv(t, joblibsim.Options{Seed: 5}, nil)
	e.sim.AddApplications(25)
	e.sim.SetFaults(joblibsim.Faults{DuplicatePages: true, WrongRecords: 3})
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_applications`); n != 25 {
		t.Fatalf("%d applications taken, want 25", n)
	}
	// Bad records are refused with a reason and never applied.
	if n := e.count(`SELECT COUNT(*) FROM portal_refused WHERE source = 'applications' AND reason <> ''`); n != 3 {
		t.Fatalf("%d refused, want 3", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_applications WHERE application_id LIKE 'SBBAD%'`); n != 0 {
		t.Fatal("a refused record was applied")
	}
	// The channel is recorded, self-service terminals with their id.
	if n := e.count(`SELECT COUNT(*) FROM portal_applications WHERE channel = 'terminal' AND terminal_id LIKE 'ZZ-%'`); n == 0 {
		t.Fatal("no terminal application recorded with its terminal")
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_applications WHERE channel = 'terminal' AND terminal_id = ''`); n != 0 {
		t.Fatal("a terminal application without its terminal")
	}
	// No ID number is stored in clear.
	if n := e.count(`SELECT COUNT(*) FROM portal_applications WHERE person_sealed LIKE '310%' OR person_key LIKE '310%'`); n != 0 {
		t.Fatal("an ID number stored in clear")
	}
	// Every application's 预审 reached the portal; 救助证明 without a register
	// waits there (answered once a register is taken: see
	// TestCertificateWaitsForTheRegister).
	rows, err := e.db.Query(`SELECT application_id, item_code FROM portal_applications`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id, item string
		if err := rows.Scan(&id, &item); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		nodes := e.sim.Nodes(id)
		if len(nodes) == 0 || nodes[0].Node != joblib.NodePreReview {
			t.Errorf("%s: nodes %+v", id, nodes)
		}
		if item == "MZ-JZZM" && (len(nodes) != 1 || nodes[0].Result != joblib.ResultPass) {
			t.Errorf("救助证明 %s without a register: %+v, want 预审 passed only", id, nodes)
		}
	}
	rows.Close()
	// A restart resumes from the stored cursor: the page served again is
	// not taken twice, the new applications are.
	e.restart()
	e.sim.AddApplications(5)
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_applications`); n != 30 {
		t.Fatalf("%d applications after the restart, want 30", n)
	}
	if d := e.sim.Duplicates.Load(); d != 0 {
		t.Fatalf("%d items sent twice", d)
	}
	if len(e.events.find(FlowFetch, monitor.Fetched)) == 0 || len(e.events.find(FlowFetch, monitor.Rejected)) != 3 {
		t.Fatal("fetch events missing")
	}
}

func TestStatusFilesInOrderBadLinesRefused(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	a, b := idFor("310104", "19700101", 1), idFor("310105", "19710101", 2)
	e.sim.AddApplication(application("SBTEST000001", "MZ-GZFSQ", joblib.ChannelWeb, a, "310104"))
	e.sim.AddApplication(application("SBTEST000002", "MZ-GZFSQ", joblib.ChannelTerminal, b, "310105"))
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	e.drop("status-001.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, StatusHeader+"\n"+
			"SBTEST000001,accepted,accepted,,,2026-12-02T10:00:00+08:00\n"+ // 2 ok
			"SBTEST000001,processing,,,,\n"+ // 3 ok
			"SBTEST000002,processing,,,,\n"+ // 4 out of order
			"SBNOSUCH0001,accepted,accepted,,,\n"+ // 5 unknown
			"SBTEST000002,prereview,pass,,,\n"+ // 6 the hub's node
			"SBTEST000002,accepted,maybe,,,\n"+ // 7 bad result
			"SBTEST000002,accepted\n"+ // 8 short
			"SBTEST000001,done,refused,,,\n"+ // 9 refusal without reason
			"SBTEST000001,done,approved,准予,,yesterday\n"+ // 10 bad time
			"SBTEST000001,done,approved,准予,,\n") // 11 ok
		return err
	})
	// A file with a wrong header is refused whole, nothing applied.
	e.drop("status-002.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, "id,node\nSBTEST000002,accepted\n")
		return err
	})
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Nodes("SBTEST000001"); len(n) != 4 || n[3].Result != joblib.ResultApproved {
		t.Fatalf("application 1 at the portal: %+v", n)
	}
	if n := e.sim.Nodes("SBTEST000002"); len(n) != 1 {
		t.Fatalf("application 2 took a refused line: %+v", n)
	}
	rows, err := e.db.Query(`SELECT line, reason FROM portal_refused WHERE source = 'inbox:status-001.csv' ORDER BY line`)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int64
	for rows.Next() {
		var l int64
		var r string
		if err := rows.Scan(&l, &r); err != nil {
			t.Fatal(err)
		}
		if r == "" {
			t.Errorf("line %d refused without a reason", l)
		}
		lines = append(lines, l)
	}
	rows.Close()
	if n := e.count(`SELECT COUNT(*) FROM portal_refused WHERE source = 'inbox:status-001.csv' AND line = 4 AND ref = 'SBTEST000002'`); n != 1 {
		t.Fatal("the out-of-order line does not name its application")
	}
	if want := []int64{4, 5, 6, 7, 8, 9, 10}; len(lines) != len(want) || lines[0] != 4 || lines[len(lines)-1] != 10 {
		t.Fatalf("refused lines %v, want %v", lines, want)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Inbox, "failed", "status-002.csv")); err != nil {
		t.Fatalf("the bad file was not moved to failed/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Inbox, "processed", "status-001.csv")); err != nil {
		t.Fatalf("the file was not moved to processed/: %v", err)
	}
	// The same file dropped again is taken once.
	before := e.count(`SELECT COUNT(*) FROM portal_outbox`)
	data, _ := os.ReadFile(filepath.Join(e.cfg.Inbox, "processed", "status-001.csv"))
	e.drop("status-001.csv", func(w io.Writer) error { _, err := w.Write(data); return err })
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if after := e.count(`SELECT COUNT(*) FROM portal_outbox`); after != before {
		t.Fatalf("a file taken twice: outbox %d → %d", before, after)
	}
}

// register writes a register file of recs for item and month.
func (e *env) register(item, month string, recs []EligibleRecord) {
	e.drop("eligible-"+item+"-"+month+".csv", func(w io.Writer) error { return WriteEligible(w, recs) })
}

func (e *env) caseOf(id string) joblib.Case {
	for _, c := range e.sim.Cases() {
		if c.IDNumber == id {
			return c
		}
	}
	e.t.Fatalf("no case for %s", id[:6])
	return joblib.Case{}
}

func TestMianshenConfirmationAndPayout(t *testing.T) {
	e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, nil)
	p1, p2, p3 := idFor("310104", "19500101", 1), idFor("310104", "19500101", 2), idFor("310105", "19500101", 3)
	p4, p5, p6 := idFor("310105", "19900101", 4), idFor("310106", "19500101", 5), idFor("310106", "19500101", 6)
	deceased := NewEligible(p3, "周明", "310105", "shanghai", 0, "")
	deceased.Status = statusDeceased
	e.register("MZ-LNZHJT", "2026-12", []EligibleRecord{
		NewEligible(p1, "王伟", "310104", "shanghai", 0, ""),
		NewEligible(p2, "李娜", "310104", "other", 0, ""), // not a Shanghai hukou
		deceased, // not pushed
		NewEligible(p4, "赵强", "310105", "shanghai", 0, ""), // 36 years old
		NewEligible(p5, "陈静", "310106", "shanghai", 0, ""), // applied through the job library
		NewEligible(p6, "杨洋", "310106", "shanghai", 0, ""), // payment fails
	})
	e.sim.AddApplication(application("SBLN00000001", "MZ-LNZHJT", joblib.ChannelTerminal, p5, "310106"))
	// The application was made before the month's push: the hub holds it
	// before the case comes back. (Without this wait the cases feed could
	// bring the case before the applications feed brought the application,
	// and the case would be confirmed: the feeds are independent routes.)
	e.quiesce()
	stranger := idFor("310107", "19450101", 7)
	e.sim.AddCase(joblib.Case{ItemCode: "MZ-LNZHJT", IDNumber: stranger, Name: "吴敏", Division: "310107", Month: "2026-12", ConsentedAt: t0})
	for range 2 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Pushed("MZ-LNZHJT"); n != 5 {
		t.Fatalf("%d persons pushed, want 5 (the deceased person is not)", n)
	}
	want := map[string]struct{ decision, reason string }{
		p1: {joblib.DecisionConfirm, ""}, p6: {joblib.DecisionConfirm, ""},
		p2: {joblib.DecisionRefuse, "非本市户籍"}, p4: {joblib.DecisionRefuse, "未满65周岁"},
		p5: {joblib.DecisionRefuse, "SBLN00000001"}, stranger: {joblib.DecisionRefuse, "未列入"},
	}
	for id, w := range want {
		c := e.caseOf(id)
		d := e.sim.Decision(c.CaseID)
		if d == nil || d.Decision != w.decision || !strings.Contains(d.Reason, w.reason) || (w.decision == joblib.DecisionConfirm && !d.Auto) {
			t.Errorf("case of %s: %+v, want %s %q", id[:6], d, w.decision, w.reason)
		}
	}
	// Payouts only once the month is reconciled, only for the paid.
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if len(e.sim.Payouts(e.caseOf(p1).CaseID)) != 0 {
		t.Fatal("a payout before the month's returns were reconciled")
	}
	e.pay.set("2026-12", p1, disbursement.StatusPaid, 7500)
	e.pay.set("2026-12", p6, disbursement.StatusFailed, 7500)
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if ps := e.sim.Payouts(e.caseOf(p1).CaseID); len(ps) != 1 || ps[0].AmountFen != 7500 || ps[0].Month != "2026-12" {
		t.Fatalf("payout of the paid person: %+v", ps)
	}
	if ps := e.sim.Payouts(e.caseOf(p6).CaseID); len(ps) != 0 {
		t.Fatalf("a failed payment produced a payout: %+v", ps)
	}
	// The failed person is looked for in the next months, then closed without one.
	e.pay.set("2027-01", p1, disbursement.StatusPaid, 7500)
	e.pay.set("2027-02", p1, disbursement.StatusPaid, 7500)
	for range 3 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_cases WHERE payout_state = 'none' AND payout_note <> ''`); n != 1 {
		t.Fatalf("%d cases closed without a payout, want 1", n)
	}
	if n := len(e.sim.Payouts(e.caseOf(p1).CaseID)); n != 1 {
		t.Fatalf("%d payouts for one case", n)
	}
	// Next month's register: only the newly eligible person is pushed.
	p7 := idFor("310107", "19600101", 8)
	e.register("MZ-LNZHJT", "2027-01", []EligibleRecord{NewEligible(p1, "王伟", "310104", "shanghai", 0, ""), NewEligible(p7, "黄丽", "310107", "shanghai", 0, "")})
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Pushed("MZ-LNZHJT"); n != 6 || e.sim.Duplicates.Load() != 0 {
		t.Fatalf("pushed %d (want 6), duplicates %d", n, e.sim.Duplicates.Load())
	}
	// Statistics: per item, district and month, with the rates.
	st, err := e.svc.Stats(context.Background(), StatsFilter{Item: "MZ-LNZHJT", Month: "2026-12", Division: "310104"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Mianshen) != 1 || st.Mianshen[0].Pushed != 2 || st.Mianshen[0].Cases != 2 || st.Mianshen[0].Confirmed != 1 ||
		st.Mianshen[0].Paid != 1 || st.Mianshen[0].ConfirmationRate != 0.5 || st.Mianshen[0].PayoutRate != 1 {
		t.Fatalf("stats 310104: %+v", st.Mianshen)
	}
	for _, f := range []string{FlowPush, FlowConfirm, FlowPayout} {
		if len(e.events.find(f, monitor.Sent)) == 0 {
			t.Errorf("no %s event", f)
		}
	}
}

func TestAssistanceCertificateAnsweredFromTheRegister(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	yes, no := idFor("310110", "19800101", 1), idFor("310110", "19810101", 2)
	e.register("MZ-JZZM", "2026-12", []EligibleRecord{NewEligible(yes, "孙杰", "310110", "shanghai", 0, "dibao"), NewEligible(no, "钱芳", "310110", "shanghai", 0, "")})
	e.sim.AddApplication(application("SBJZ00000001", "MZ-JZZM", joblib.ChannelTerminal, yes, "310110"))
	e.sim.AddApplication(application("SBJZ00000002", "MZ-JZZM", joblib.ChannelApp, no, "310110"))
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	n := e.sim.Nodes("SBJZ00000001")
	if len(n) != 4 || n[3].Result != joblib.ResultApproved || n[3].CertificateRef != "JZZM-SBJZ00000001" {
		t.Fatalf("eligible: %+v", n)
	}
	n = e.sim.Nodes("SBJZ00000002")
	if len(n) != 4 || n[3].Result != joblib.ResultRefused || n[3].CertificateRef != "" || !strings.Contains(n[3].Reason, "救助对象") {
		t.Fatalf("not eligible: %+v", n)
	}
	if e.sim.Pushed("MZ-JZZM") != 0 {
		t.Fatal("a register-answered item was pushed as 免申即享")
	}
}

// TestCertificateWaitsForTheRegister: an application for a
// register-answered item that arrives before the hub has the item's
// register passes 预审 and waits; it is answered (approved) when the
// register is taken, not refused for a list the hub had not seen.
func TestCertificateWaitsForTheRegister(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	yes := idFor("310110", "19800101", 1)
	e.sim.AddApplication(application("SBJZ00000009", "MZ-JZZM", joblib.ChannelTerminal, yes, "310110"))
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Nodes("SBJZ00000009"); len(n) != 1 || n[0].Node != joblib.NodePreReview || n[0].Result != joblib.ResultPass {
		t.Fatalf("before the register: %+v, want 预审 passed only", n)
	}
	e.register("MZ-JZZM", "2026-12", []EligibleRecord{NewEligible(yes, "孙杰", "310110", "shanghai", 0, "dibao")})
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	n := e.sim.Nodes("SBJZ00000009")
	if len(n) != 4 || n[3].Result != joblib.ResultApproved || n[3].CertificateRef != "JZZM-SBJZ00000009" {
		t.Fatalf("after the register: %+v", n)
	}
}

// TestInDoubtSendsAreRecheckedNotResent: a send the portal applied but
// did not answer properly (a 500 after applying, an answer missing an
// item) is in doubt at the route, which settles it by the portal's query
// and answers the service from it (via lookup): nothing is sent again.
func TestInDoubtSendsAreRecheckedNotResent(t *testing.T) {
	for _, f := range []joblibsim.Faults{{FailAfterApply: 1}, {DropResult: 1}} {
		e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, nil)
		ids := e.sim.AddApplications(12)
		e.register("MZ-LNZHJT", "2026-12", []EligibleRecord{NewEligible(idFor("310104", "19500101", 1), "王伟", "310104", "shanghai", 0, "")})
		e.sim.SetFaults(f)
		for i := 0; i < 5 && (i < 2 || !e.settled()); i++ {
			if err := e.round(); err != nil {
				t.Fatal(err)
			}
		}
		if !e.settled() {
			t.Fatalf("%+v: not settled", f)
		}
		if d := e.sim.Duplicates.Load(); d != 0 {
			t.Fatalf("%+v: %d items sent again that the portal had", f, d)
		}
		for _, id := range ids {
			if len(e.sim.Nodes(id)) == 0 {
				t.Fatalf("%+v: %s lost", f, id)
			}
		}
		lookedUp := false
		for _, flow := range []string{FlowStatus, FlowPush, FlowConfirm} {
			for _, ev := range e.events.find(flow, monitor.Sent) {
				lookedUp = lookedUp || (ev.Component == componentName && ev.Attrs["via"] == "lookup")
			}
		}
		if !lookedUp {
			t.Fatalf("%+v: no batch was settled by the portal's query", f)
		}
		e.stop()
	}
}

// TestOutageRetriedBreakerOpensNothingLostAcrossRestart: while the portal
// is down the routes retry and the breaker opens (an event says so); the
// hub restarts, the portal is back, and every batch the service published
// is delivered once, under its key.
func TestOutageRetriedBreakerOpensNothingLostAcrossRestart(t *testing.T) {
	e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, nil)
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFaults(joblibsim.Faults{Down: true})
	ids := e.sim.AddApplications(10)
	e.register("MZ-LNZHJT", "2026-12", []EligibleRecord{NewEligible(idFor("310104", "19500101", 1), "王伟", "310104", "shanghai", 0, "")})
	if err := e.svc.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the breaker to open", func() bool {
		e.events.mu.Lock()
		defer e.events.mu.Unlock()
		for _, ev := range e.events.evs {
			if ev.Type == monitor.Failed && ev.ErrorClass == "breaker" {
				return true
			}
		}
		return false
	})
	if n := e.count(`SELECT COUNT(*) FROM portal_outbox WHERE state = 'sending'`); n == 0 {
		t.Fatal("nothing waiting for the portal during the outage")
	}
	// The portal is back; the hub restarts (a fresh breaker) and delivers all.
	e.sim.SetFaults(joblibsim.Faults{})
	e.restart()
	for i := 0; i < 6 && (i < 2 || !e.settled()); i++ {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if !e.settled() || e.sim.Duplicates.Load() != 0 || e.sim.PushBatches() != 1 {
		t.Fatalf("settled %v, duplicates %d, push batches %d", e.settled(), e.sim.Duplicates.Load(), e.sim.PushBatches())
	}
	for _, id := range ids {
		if len(e.sim.Nodes(id)) == 0 {
			t.Fatalf("%s lost in the outage", id)
		}
	}
}

func TestReviewWhenAutoApprovalIsOff(t *testing.T) {
	e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, func(c *Config) { c.AutoApprove = false })
	p := idFor("310104", "19500101", 1)
	e.register("MZ-LNZHJT", "2026-12", []EligibleRecord{NewEligible(p, "王伟", "310104", "shanghai", 0, "")})
	for range 2 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	c := e.caseOf(p)
	if e.sim.Decision(c.CaseID) != nil {
		t.Fatal("a case was decided without auto-approval")
	}
	ctx := context.Background()
	if err := e.svc.Decide(ctx, c.CaseID, joblib.DecisionRefuse, "", "olga"); err == nil {
		t.Fatal("a refusal without a reason was taken")
	}
	if err := e.svc.Decide(ctx, c.CaseID, joblib.DecisionConfirm, "", "olga"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Decide(ctx, c.CaseID, joblib.DecisionConfirm, "", "olga"); err == nil {
		t.Fatal("a case decided twice")
	}
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if d := e.sim.Decision(c.CaseID); d == nil || d.Decision != joblib.DecisionConfirm || d.Auto {
		t.Fatalf("operator's decision at the portal: %+v", d)
	}
}

type recExpect struct{ got []monitor.Expectation }

func (r *recExpect) Expect(_ context.Context, e monitor.Expectation) error {
	r.got = append(r.got, e)
	return nil
}

func TestMonthlyPushIsExpected(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	rec := &recExpect{}
	e.svc.d.Expect = rec
	for range 2 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.got) != 2 { // the two 免申即享 items, once a month
		t.Fatalf("expectations: %+v", rec.got)
	}
	for _, x := range rec.got {
		due := x.Due.In(t0.Location())
		if x.Partner != PartnerMianshen || x.Flow != FlowPush || x.Type != monitor.Sent || due.Day() != 5 || due.Hour() != 18 || due.Month() != 12 {
			t.Errorf("expectation %+v (due %s)", x, due)
		}
	}
}
