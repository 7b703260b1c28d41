package verification

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/monitor"
)

func TestFanOutFinal(t *testing.T) {
	sm := startSims(t)
	ev := &events{}
	s := newService(t, testConfig(), openDB(t, t.TempDir()), sm.config(5*time.Second).partners(t), ev)
	ids := submitHouseholds(t, s, 0, 8, 3)
	// Submitting a case again returns the same request.
	again, created, err := s.Submit(context.Background(), Request{Reference: "CASE-0", Household: "HH0", Authorization: "AUTH-0", Members: householdsim.Household(0, true)})
	if err != nil || created || again != ids[0] {
		t.Fatalf("resubmit: %s %v %v, want %s", again, created, err, ids[0])
	}
	results := waitFinal(t, s, ids, time.Minute)
	for i, r := range results {
		members := householdsim.Household(i, i%3 == 0)
		inc, as := expected(members)
		if !r.Complete || r.MonthlyIncomeFen != inc || r.AssetsFen != as {
			t.Errorf("household %d: complete %v income %d assets %d, want %d %d; partners %+v", i, r.Complete, r.MonthlyIncomeFen, r.AssetsFen, inc, as, r.Partners)
		}
		want := 17
		if i%3 == 0 {
			want = 18 // the ministry, for the spouse's province
		}
		if len(r.Partners) != want {
			t.Errorf("household %d: %d calls, want %d", i, len(r.Partners), want)
		}
		for _, m := range r.Members {
			if strings.Count(m.IDNumber, "*") < 8 {
				t.Errorf("member ID not masked: %s", m.IDNumber)
			}
		}
	}
	for p, l := range sm.ledgers() {
		if l.Repeated() != 0 {
			t.Errorf("%s asked %d times for a key asked before", p, l.Repeated())
		}
	}
	if n := len(ev.find(func(e monitor.Event) bool {
		return e.Type == monitor.Sent && (e.Flow == FlowVerification || e.Flow == FlowMinistryRequest)
	})); n != 8*17+3 {
		t.Errorf("%d sent events, want %d", n, 8*17+3)
	}
	for _, p := range []string{"hrss", "hpf", "samr", "villagebank.vb07", "ministry"} {
		if len(ev.find(func(e monitor.Event) bool { return e.Partner == p && e.Type == monitor.Received })) == 0 {
			t.Errorf("no received event of %s", p)
		}
	}
}

func TestFaults(t *testing.T) {
	sm := startSims(t)
	cfg := testConfig()
	cfg.Deadline = 6 * time.Second
	cfg.AlertWindow = 4
	sm.hrss.Faults.Down.Store(true)                              // down: late, partial
	sm.hpf.Faults.SetRates(1000, 0)                              // wrong: rejected
	sm.banks.Banks["vb01"].Faults.SetRates(0, 1000)              // duplicates: kept once
	sm.banks.Banks["vb02"].Faults.SetRates(1000, 0)              // incomplete: rejected
	sm.samr.Faults.Delay.Store(int64(900 * time.Millisecond))    // slower than the call's timeout
	sm.ministry.AnswerAfter.Store(int64(200 * time.Millisecond)) // asynchronous
	ev := &events{}
	s := newService(t, cfg, openDB(t, t.TempDir()), sm.config(400*time.Millisecond).partners(t), ev)
	ids := submitHouseholds(t, s, 0, 4, 2)
	results := waitFinal(t, s, ids, time.Minute)
	for i, r := range results {
		state := map[string]PartnerResult{}
		for _, p := range r.Partners {
			state[p.Partner] = p
		}
		if r.Complete {
			t.Errorf("household %d complete with a partner down", i)
		}
		for p, want := range map[string]string{"hrss": StateLate, "hpf": StateRejected, "villagebank.vb01": StateAnswered,
			"villagebank.vb02": StateRejected, "samr": StateAnswered, "villagebank.vb03": StateAnswered} {
			if state[p].State != want {
				t.Errorf("household %d: %s %s (%s), want %s", i, p, state[p].State, state[p].Reason, want)
			}
		}
		if q := state["villagebank.vb02"].Quality; len(q) == 0 || q[0] != FindingIncomplete {
			t.Errorf("vb02 findings %v", q)
		}
		if q := state["hpf"].Reason; !strings.Contains(q, "negative amount") {
			t.Errorf("hpf reason %q", q)
		}
		// Timed out: looked up by key before anything else. A second ask
		// only when the partner never received the first (its ledger
		// below counts a key asked twice).
		if sr := state["samr"]; sr.Asks < 1 || sr.Lookups < 1 {
			t.Errorf("samr timed out: asks %d lookups %d, want an ask then lookups", sr.Asks, sr.Lookups)
		}
		if i%2 == 0 && state["ministry"].State != StateAnswered {
			t.Errorf("ministry %+v", state["ministry"])
		}
		for _, m := range r.Members {
			for _, f := range m.Facts {
				if f.Partner == "hpf" || f.Partner == "hrss" || f.Partner == "villagebank.vb02" {
					t.Errorf("fact of a rejected or late partner in the aggregate: %+v", f)
				}
			}
		}
	}
	if sm.samr.Ledger.Repeated() != 0 {
		t.Errorf("samr asked %d times again", sm.samr.Ledger.Repeated())
	}
	if len(ev.find(func(e monitor.Event) bool {
		return e.ErrorCode == "quality_threshold" && e.Partner == "hpf" && e.Status == monitor.Error
	})) != 1 {
		t.Error("no quality alert for hpf")
	}
	qs, err := s.Report(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]PartnerQuality{}
	for _, q := range qs {
		by[q.Partner] = q
	}
	if by["hrss"].Late != 4 || by["hpf"].Format != 4 || by["villagebank.vb02"].Incomplete != 4 || by["villagebank.vb01"].Duplicate < 1 {
		t.Errorf("report: %+v", qs)
	}
	path, err := s.WriteReport(context.Background(), t.TempDir(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), strings.Join(ReportHeader, ",")) || !strings.Contains(string(b), "\nhrss,4,0,0,0,0,0,0,0,0,4,") {
		t.Errorf("report file:\n%s", b)
	}
}

func TestReview(t *testing.T) {
	sm := startSims(t)
	cfg := testConfig()
	cfg.SampleRate = 1
	s := newService(t, cfg, openDB(t, t.TempDir()), sm.config(5 * time.Second).partners(t)[:2], nil)
	ids := submitHouseholds(t, s, 0, 1, 0)
	for {
		ch := s.Changed()
		items, err := s.Reviews(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 2 {
			if r, _ := s.Result(context.Background(), ids[0]); r.Status != "partial" || r.MonthlyIncomeFen != 0 {
				t.Fatalf("answers under review reached the aggregate: %+v", r)
			}
			if err := s.Review(context.Background(), items[0].CallID, "alice", true, ""); err != nil {
				t.Fatal(err)
			}
			if err := s.Review(context.Background(), items[1].CallID, "alice", false, "employer unknown"); err != nil {
				t.Fatal(err)
			}
			if err := s.Review(context.Background(), items[1].CallID, "alice", true, ""); !errors.Is(err, ErrNotUnderReview) {
				t.Fatalf("second review: %v", err)
			}
			break
		}
		<-ch
	}
	r := waitFinal(t, s, ids, 10*time.Second)[0]
	states := map[int64]PartnerResult{}
	for _, p := range r.Partners {
		states[p.CallID] = p
	}
	items := [2]int64{r.Partners[0].CallID, r.Partners[1].CallID}
	accepted, rejected := states[items[0]], states[items[1]]
	if accepted.State == StateRejected {
		accepted, rejected = rejected, accepted
	}
	if r.Complete || accepted.State != StateAnswered || rejected.State != StateRejected || rejected.Reason != "review: employer unknown" {
		t.Fatalf("%+v", r)
	}
	for _, m := range r.Members {
		for _, f := range m.Facts {
			if f.Partner == rejected.Partner {
				t.Errorf("fact of a rejected review in the aggregate: %+v", f)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	good := Request{Reference: "C1", Household: "H1", Authorization: "A1", Members: householdsim.Household(1, false)}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Members = append([]household.Member{{Name: "", IDNumber: "31010119900101123"}}, good.Members[0])
	bad.Members = append(bad.Members, good.Members[0])
	bad.Items = []string{"tax"}
	bad.Division = "31"
	var ie *InvalidError
	if err := bad.Validate(); !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v", err)
	}
	fields := map[string]bool{}
	for _, f := range ie.Fields {
		fields[f.Field] = true
	}
	for _, f := range []string{"members[0].id_number", "members[0].name", "members[2].id_number", "items[0]", "division"} {
		if !fields[f] {
			t.Errorf("no error for %s in %+v", f, ie.Fields)
		}
	}
}

// TestInboundFromProvinces: other provinces' requests come through the
// routes of configs/routes/verification-ministry-*.yaml (pulled from the
// platform, acknowledged once on the bus), are answered from Shanghai's
// partners and returned through a route; the return time is recorded from
// the route's answer.
func TestInboundFromProvinces(t *testing.T) {
	sm := startSims(t)
	cfg := sm.config(5 * time.Second)
	s := newService(t, testConfig(), openDB(t, t.TempDir()), cfg.partners(t), nil)
	var hh [][]ministry.Person
	for i := range 3 {
		var ps []ministry.Person
		for _, m := range householdsim.Household(100+i, false) {
			ps = append(ps, ministry.Person{ID: m.IDNumber, Name: m.Name})
		}
		hh = append(hh, ps)
	}
	refs := sm.ministry.Inject("32", hh[:2])
	refs = append(refs, sm.ministry.Inject("44", hh[2:])...)
	// The simulator holds a return as soon as the route posted it; the
	// service records the return time only when the route's answer comes
	// back on the bus, a moment later. Wait for both.
	returned := func() int {
		st, err := s.ProvinceStats(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range st {
			n += x.Returned
		}
		return n
	}
	for {
		ch := s.Changed()
		if len(sm.ministry.Returned()) == len(refs) && returned() == len(refs) {
			break
		}
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("returned %d of %d at the platform, %d recorded", len(sm.ministry.Returned()), len(refs), returned())
		}
	}
	for _, ref := range refs {
		if r := sm.ministry.Returned()[ref]; r.Status != "complete" || r.Persons == 0 {
			t.Errorf("%s: %+v", ref, r)
		}
	}
	if sm.ministry.Ledger.Total() != 0 {
		t.Error("an inbound request was forwarded to the ministry again")
	}
	st, err := s.ProvinceStats(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Province != "32" || st[0].Direction != "in" || st[0].Received != 2 || st[0].Returned != 2 || st[1].Province != "44" {
		t.Fatalf("stats %+v", st)
	}
}
