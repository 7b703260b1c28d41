package joblib

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const goodID = "310104195001010013" // check digit valid (GB 11643)

func app(mod func(*Application)) Application {
	a := Application{ApplicationID: "SB310104202612010001", ItemCode: "MZ-LNZHJT", ItemName: "老年综合津贴", Channel: ChannelTerminal,
		TerminalID: "ZZ-310104-001", Applicant: Applicant{IDNumber: goodID, Name: "王伟"}, Division: "310104",
		SubmittedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	if mod != nil {
		mod(&a)
	}
	return a
}

func TestApplicationRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Application)
		want string // "" valid
	}{
		{"valid terminal", nil, ""},
		{"web without terminal", func(a *Application) { a.Channel, a.TerminalID = ChannelWeb, "" }, ""},
		{"terminal without id", func(a *Application) { a.TerminalID = "" }, "terminal_id"},
		{"unknown channel", func(a *Application) { a.Channel = "fax" }, "channel"},
		{"bad check digit", func(a *Application) { a.Applicant.IDNumber = "310104195001010014" }, "not a valid resident ID"},
		{"not shanghai", func(a *Application) { a.Division = "320102" }, "division"},
		{"no name", func(a *Application) { a.Applicant.Name = "" }, "name"},
		{"bad id", func(a *Application) { a.ApplicationID = "a b" }, "application_id"},
		{"bad item", func(a *Application) { a.ItemCode = "lower" }, "item_code"},
		{"no time", func(a *Application) { a.SubmittedAt = time.Time{} }, "submitted_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := app(tc.mod)
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid application refused: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an ErrInvalid naming %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), a.Applicant.IDNumber):
				t.Fatalf("the reason shows the whole ID number: %v", err)
			}
		})
	}
}

func TestParseApplicationPage(t *testing.T) {
	good, _ := json.Marshal(app(nil))
	bad, _ := json.Marshal(app(func(a *Application) { a.Channel = "fax"; a.ApplicationID = "SBBAD0001" }))
	body := `{"applications":[` + string(good) + `,` + string(bad) + `,{"application_id":"SBX000001","extra":1},"x"],"next":"c4","more":true}`
	p, err := ParseApplicationPage([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Applications) != 1 || p.Next != "c4" || !p.More || len(p.Refused) != 3 {
		t.Fatalf("page: %+v", p)
	}
	if p.Refused[0].ID != "SBBAD0001" || p.Refused[0].Index != 1 || !strings.Contains(p.Refused[0].Reason, "channel") {
		t.Fatalf("refused: %+v", p.Refused[0])
	}
	if p.Refused[1].ID != "SBX000001" || !strings.Contains(p.Refused[1].Reason, "extra") {
		t.Fatalf("unknown field: %+v", p.Refused[1])
	}
	for _, b := range []string{`{}`, `{"applications":[]}`, `{"next":"c1"}`, `[]`, `{"applications":{},"next":""}`, `nope`} {
		if _, err := ParseApplicationPage([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", b, err)
		}
	}
}

func TestNodeRules(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		n    Node
		want string
	}{
		{Node{Seq: 1, Node: NodePreReview, Result: ResultPass}, ""},
		{Node{Seq: 1, Node: NodePreReview, Result: ResultReject}, "needs a reason"},
		{Node{Seq: 2, Node: NodePreReview, Result: ResultPass}, "seq"},
		{Node{Seq: 3, Node: NodeProcessing, Result: ResultApproved}, "cannot carry"},
		{Node{Seq: 4, Node: NodeDone, Result: ResultApproved, CertificateRef: "JZZM-1"}, ""},
		{Node{Seq: 4, Node: NodeDone, Result: ResultRefused, Reason: "x", CertificateRef: "JZZM-1"}, "certificate_ref"},
		{Node{Seq: 5, Node: "closed"}, "node"},
	} {
		tc.n.ApplicationID, tc.n.Dept, tc.n.At = "SB310104202612010001", "SHMZJ", at
		err := tc.n.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.n, err, tc.want)
		}
	}
	if !Final(NodePreReview, ResultReject) || Final(NodeAccepted, ResultAccepted) || !Final(NodeDone, ResultApproved) {
		t.Error("Final")
	}
}

func TestParseResults(t *testing.T) {
	sent := []string{"A#1", "B#1"}
	ok := `{"results":[{"id":"A#1","outcome":"ok"},{"id":"B#1","outcome":"conflict","reason":"held otherwise 310104195001010013"}]}`
	rs, err := ParseResults([]byte(ok), sent)
	if err != nil {
		t.Fatal(err)
	}
	if !Delivered(rs["A#1"].Outcome) || Delivered(rs["B#1"].Outcome) || strings.Contains(rs["B#1"].Reason, goodID) {
		t.Fatalf("results: %+v", rs)
	}
	for name, b := range map[string]string{
		"missing":   `{"results":[{"id":"A#1","outcome":"ok"}]}`,
		"not sent":  `{"results":[{"id":"A#1","outcome":"ok"},{"id":"C#1","outcome":"ok"}]}`,
		"twice":     `{"results":[{"id":"A#1","outcome":"ok"},{"id":"A#1","outcome":"ok"}]}`,
		"bad kind":  `{"results":[{"id":"A#1","outcome":"ok"},{"id":"B#1","outcome":"maybe"}]}`,
		"not json":  `<html>`,
		"not array": `{"results":{}}`,
	} {
		if _, err := ParseResults([]byte(b), sent); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseStatusAnswers(t *testing.T) {
	if _, err := ParseNodeStatus([]byte(`{"applications":[{"application_id":"A","last_seq":9,"known":true}]}`), []string{"A"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("last_seq 9: %v", err)
	}
	st, err := ParseNodeStatus([]byte(`{"applications":[{"application_id":"A","last_seq":2,"known":true}]}`), []string{"A"})
	if err != nil || st["A"].LastSeq != 2 {
		t.Errorf("node status: %v %v", st, err)
	}
	if _, err := ParseCaseStatus([]byte(`{"cases":[{"case_id":"C1","known":true,"decision":"maybe"}]}`), []string{"C1"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("decision maybe: %v", err)
	}
	if _, err := ParsePushAck([]byte(`{"batch_id":"B1","accepted":3,"duplicates":0}`), "B1", 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("more accepted than sent: %v", err)
	}
	if _, err := ParsePushAck([]byte(`{"batch_id":"B2","accepted":2,"duplicates":0}`), "B1", 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("another batch: %v", err)
	}
}

func TestParseCasePage(t *testing.T) {
	c := Case{CaseID: "MSJXLNZHJT0000001", ItemCode: "MZ-LNZHJT", PersonRef: "PABC", IDNumber: goodID, Name: "李娜", Division: "310104",
		Month: "2026-12", ConsentedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	good, _ := json.Marshal(c)
	c.Month = "2026-13"
	bad, _ := json.Marshal(c)
	p, err := ParseCasePage([]byte(`{"cases":[` + string(good) + `,` + string(bad) + `],"next":"c2","more":false}`))
	if err != nil || len(p.Cases) != 1 || len(p.Refused) != 1 || !strings.Contains(p.Refused[0].Reason, "month") {
		t.Fatalf("%+v %v", p, err)
	}
}

// The parsers never panic and never return a record that breaks the rules.
func FuzzParseApplicationPage(f *testing.F) {
	good, _ := json.Marshal(app(nil))
	f.Add([]byte(`{"applications":[` + string(good) + `],"next":"c1","more":false}`))
	f.Add([]byte(`{"applications":[{"application_id":"x"}],"next":""}`))
	f.Add([]byte(`{"applications":null,"next":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseApplicationPage(b)
		if err != nil {
			return
		}
		for i := range p.Applications {
			if err := p.Applications[i].Validate(); err != nil {
				t.Fatalf("invalid application returned: %v", err)
			}
		}
	})
}

func FuzzParseCasePage(f *testing.F) {
	f.Add([]byte(`{"cases":[{"case_id":"C1","item_code":"MZ-A","id_number":"310104195001010013","name":"王","division":"310104","month":"2026-12","consented_at":"2026-12-01T00:00:00Z"}],"next":"c1","more":false}`))
	f.Add([]byte(`{"cases":[1,2],"next":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseCasePage(b)
		if err != nil {
			return
		}
		for i := range p.Cases {
			if err := p.Cases[i].Validate(); err != nil {
				t.Fatalf("invalid case returned: %v", err)
			}
		}
	})
}

func FuzzParseResults(f *testing.F) {
	f.Add([]byte(`{"results":[{"id":"A#1","outcome":"ok"},{"id":"B#1","outcome":"duplicate"}]}`), "A#1,B#1")
	f.Add([]byte(`{"results":[]}`), "")
	f.Fuzz(func(t *testing.T, b []byte, ids string) {
		sent := strings.Split(ids, ",")
		rs, err := ParseResults(b, sent)
		if err != nil {
			return
		}
		for _, id := range sent {
			if _, ok := rs[id]; !ok {
				t.Fatalf("no result for sent %q", id)
			}
		}
	})
}

func FuzzParseQueries(f *testing.F) {
	f.Add([]byte(`{"applications":[{"application_id":"A","last_seq":2,"known":true}],"cases":[{"case_id":"A","known":true,"decision":"confirm","payout_ids":["P"]}],"batch_id":"A","accepted":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := ParseNodeStatus(b, []string{"A"}); err == nil && (st["A"].LastSeq < 0 || st["A"].LastSeq > 4) {
			t.Fatalf("last_seq out of range: %+v", st)
		}
		if st, err := ParseCaseStatus(b, []string{"A"}); err == nil {
			if d := st["A"].Decision; d != "" && d != DecisionConfirm && d != DecisionRefuse {
				t.Fatalf("decision %q", d)
			}
		}
		if a, err := ParsePushAck(b, "A", 1); err == nil && a.Accepted+a.Duplicates != 1 {
			t.Fatalf("ack %+v", a)
		}
	})
}
