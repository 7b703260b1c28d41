package joblib_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func start(t *testing.T, rate float64) *joblibsim.Sim {
	t.Helper()
	sim, err := joblibsim.Start(joblibsim.Options{KeyID: "k1", Secret: secret, Dept: "SHMZJ", RatePerSecond: rate, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func client(t *testing.T, sim *joblibsim.Sim, sec []byte, cc httpx.ClientConfig) *joblib.Client {
	t.Helper()
	ep := joblib.Endpoint{ClientConfig: cc, BaseURL: sim.URL(), KeyID: "k1"}
	c, err := joblib.NewClient("SHMZJ", ep, ep, sec, sec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJobLibExchange(t *testing.T) {
	ctx := context.Background()
	sim := start(t, 0)
	c := client(t, sim, secret, httpx.ClientConfig{Timeout: 5 * time.Second})
	ids := sim.AddApplications(7)
	p, err := c.FetchApplications(ctx, "", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Applications) != 5 || !p.More || p.Next != "c5" {
		t.Fatalf("first page: %d more=%v next=%s", len(p.Applications), p.More, p.Next)
	}
	if p, err = c.FetchApplications(ctx, p.Next, 5); err != nil || len(p.Applications) != 2 || p.More {
		t.Fatalf("second page: %+v %v", p, err)
	}
	at := time.Now().Truncate(time.Second)
	n := func(id string, seq int, node, result, reason string) joblib.Node {
		return joblib.Node{ApplicationID: id, Seq: seq, Node: node, Result: result, Reason: reason, Dept: "SHMZJ", At: at}
	}
	// In order per application; a gap, a repeat and a node after the end are answered as such.
	nodes := []joblib.Node{
		n(ids[0], 1, joblib.NodePreReview, joblib.ResultPass, ""),
		n(ids[0], 2, joblib.NodeAccepted, joblib.ResultAccepted, ""),
		n(ids[1], 2, joblib.NodeAccepted, joblib.ResultAccepted, ""),
		n(ids[2], 1, joblib.NodePreReview, joblib.ResultReject, "材料不全"),
		n("SBNOSUCH0001", 1, joblib.NodePreReview, joblib.ResultPass, ""),
	}
	rs, err := c.PushNodes(ctx, nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{joblib.OutcomeOK, joblib.OutcomeOK, joblib.OutcomeOutOfOrder, joblib.OutcomeOK, joblib.OutcomeUnknown}
	for i, nd := range nodes {
		if rs[nd.Key()].Outcome != want[i] {
			t.Errorf("%s: %s, want %s", nd.Key(), rs[nd.Key()].Outcome, want[i])
		}
	}
	rs, err = c.PushNodes(ctx, []joblib.Node{nodes[0], n(ids[2], 2, joblib.NodeAccepted, joblib.ResultAccepted, "")})
	if err != nil {
		t.Fatal(err)
	}
	if rs[nodes[0].Key()].Outcome != joblib.OutcomeDuplicate || sim.Duplicates.Load() != 1 {
		t.Errorf("repeat: %+v", rs)
	}
	if rs[ids[2]+"#2"].Outcome != joblib.OutcomeClosed {
		t.Errorf("after a rejected 预审: %+v", rs)
	}
	rs, err = c.PushNodes(ctx, []joblib.Node{n(ids[0], 1, joblib.NodePreReview, joblib.ResultReject, "x")})
	if err != nil || rs[ids[0]+"#1"].Outcome != joblib.OutcomeConflict {
		t.Errorf("other content under a taken seq: %+v %v", rs, err)
	}
	st, err := c.NodeStatus(ctx, []string{ids[0], ids[1], "SBNOSUCH0001"})
	if err != nil || st[ids[0]].LastSeq != 2 || st[ids[1]].LastSeq != 0 || st["SBNOSUCH0001"].Known {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func TestMianshenExchange(t *testing.T) {
	ctx := context.Background()
	sim := start(t, 0)
	c := client(t, sim, secret, httpx.ClientConfig{Timeout: 5 * time.Second})
	push := joblib.Push{BatchID: "MS-LNZHJT-202612-0001", ItemCode: "MZ-LNZHJT", Month: "2026-12", Persons: []joblib.EligiblePerson{
		{PersonRef: "P1", IDNumber: "310104195001010013", Name: "王伟", Division: "310104"},
		{PersonRef: "P2", IDNumber: "310105194805050020", Name: "李娜", Division: "310105"},
	}}
	if _, err := c.PushStatus(ctx, push.BatchID, 2); !errors.Is(err, joblib.ErrNotFound) {
		t.Fatalf("status before the push: %v", err)
	}
	ack, err := c.PushPersons(ctx, push)
	if err != nil || ack.Accepted != 2 {
		t.Fatalf("push: %+v %v", ack, err)
	}
	if ack, err = c.PushPersons(ctx, push); err != nil || ack.Accepted != 2 || sim.Duplicates.Load() != 1 {
		t.Fatalf("the same batch again: %+v %v", ack, err)
	}
	page, err := c.FetchCases(ctx, "", 100)
	if err != nil || len(page.Cases) == 0 {
		t.Fatalf("cases: %+v %v", page, err)
	}
	cs := page.Cases[0]
	conf := joblib.Confirmation{CaseID: cs.CaseID, Decision: joblib.DecisionConfirm, Auto: true, Dept: "SHMZJ", At: time.Now()}
	if rs, err := c.Confirm(ctx, []joblib.Confirmation{conf}); err != nil || rs[cs.CaseID].Outcome != joblib.OutcomeOK {
		t.Fatalf("confirm: %+v %v", rs, err)
	}
	pay := joblib.Payout{PayoutID: "PO-" + cs.CaseID + "-202612", CaseID: cs.CaseID, Month: "2026-12", AmountFen: 7500, PaidAt: time.Now(), Dept: "SHMZJ"}
	if rs, err := c.Payouts(ctx, []joblib.Payout{pay}); err != nil || rs[pay.PayoutID].Outcome != joblib.OutcomeOK {
		t.Fatalf("payout: %+v %v", rs, err)
	}
	st, err := c.CaseStatus(ctx, []string{cs.CaseID})
	if err != nil || st[cs.CaseID].Decision != joblib.DecisionConfirm || len(st[cs.CaseID].PayoutIDs) != 1 {
		t.Fatalf("case status: %+v %v", st, err)
	}
}

func TestSignatureAndOutage(t *testing.T) {
	ctx := context.Background()
	sim := start(t, 0)
	// A wrong secret is refused (4xx): not in doubt, not retried unchanged.
	bad := client(t, sim, []byte("fedcba9876543210fedcba9876543210"), httpx.ClientConfig{Timeout: 5 * time.Second})
	if _, err := bad.FetchApplications(ctx, "", 10); !joblib.IsRefused(err) {
		t.Fatalf("wrong secret: %v", err)
	}
	// An outage: 503s until the breaker opens; then calls are not sent.
	c := client(t, sim, secret, httpx.ClientConfig{Timeout: 5 * time.Second, BreakerFailures: 2, BreakerOpen: time.Hour})
	sim.SetFaults(joblibsim.Faults{Down: true})
	for range 2 {
		if _, err := c.FetchApplications(ctx, "", 10); err == nil || joblib.IsRefused(err) || joblib.NotSent(err) {
			t.Fatalf("outage: %v", err)
		}
	}
	calls, _, _ := sim.Stats()
	if _, err := c.FetchApplications(ctx, "", 10); !joblib.NotSent(err) {
		t.Fatalf("breaker did not open: %v", err)
	}
	if after, _, _ := sim.Stats(); after != calls {
		t.Fatalf("a call reached the portal through an open breaker (%d → %d)", calls, after)
	}
}

func TestWithinTheRateLimit(t *testing.T) {
	sim := start(t, 40)
	c := client(t, sim, secret, httpx.ClientConfig{Timeout: 5 * time.Second, RatePerSecond: 40, RateBurst: 1})
	for range 30 {
		if _, err := c.FetchApplications(context.Background(), "", 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, limited, _ := sim.Stats(); limited != 0 {
		t.Fatalf("%d calls over the portal's rate limit", limited)
	}
}
