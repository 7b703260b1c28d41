package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/console"
)

// fakeCycles keeps cycles in memory and refuses as the disbursement
// service does: the city after the district, by another user.
type fakeCycles struct {
	mu     sync.Mutex
	cycles []monitor.Cycle
	lists  []string
	calls  []string
}

func newFakeCycles() *fakeCycles {
	at := now.Add(-3 * 3600e9)
	return &fakeCycles{
		lists: []string{"list-2026-12.csv", "list-2026-11.csv"},
		cycles: []monitor.Cycle{
			{Name: "disbursement-2026-11", Kind: "disbursement", Period: "2026-11", Stage: "confirm", Status: monitor.CycleAwaitingConfirmation,
				Records: 30012, Valid: 29988, SystemTotalFen: 263985005, LetterTotalFen: 263985005,
				Confirmations: []monitor.CycleConfirmation{{Level: monitor.LevelDistrict, User: "alice", At: at}}},
			{Name: "deduction-2026-10", Kind: "deduction", Period: "2026-10", Stage: "total_check", Status: monitor.CycleFailed,
				Error:   "letter total 1.00 yuan does not equal the system total 4400.00 yuan (person 310101199001011234)",
				Records: 12, Valid: 12, SystemTotalFen: 440000, LetterTotalFen: 100},
			{Name: "disbursement-2026-10", Kind: "disbursement", Period: "2026-10", Stage: "total_check", Status: monitor.CycleAwaitingLetterTotal,
				Records: 500, Valid: 498, SystemTotalFen: 123456789},
			{Name: "disbursement-2026-09", Kind: "disbursement", Period: "2026-09", Stage: "done", Status: monitor.CycleDone,
				Records: 10, Valid: 10, SystemTotalFen: 1000, LetterTotalFen: 1000,
				Confirmations: []monitor.CycleConfirmation{{Level: monitor.LevelDistrict, User: "alice", At: at}, {Level: monitor.LevelCity, User: "bob", At: at}}},
		},
	}
}

func (f *fakeCycles) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCycles) find(kind, period string) *monitor.Cycle {
	for i := range f.cycles {
		if f.cycles[i].Kind == kind && f.cycles[i].Period == period {
			return &f.cycles[i]
		}
	}
	return nil
}

func (f *fakeCycles) List(_ context.Context, limit int) ([]monitor.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]monitor.Cycle(nil), f.cycles...)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeCycles) Status(_ context.Context, kind, period string) (*monitor.CycleStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cy := f.find(kind, period)
	if cy == nil {
		return nil, monitor.ErrNoCycle
	}
	return &monitor.CycleStatus{Cycle: *cy,
		Stages: []monitor.CycleStage{{Stage: "intake", Started: now.Add(-3600e9), Finished: now.Add(-3500e9), Detail: "30012 records"},
			{Stage: "total_check", Started: now.Add(-3400e9), Detail: "letter total 1.00"}},
		Counts: map[string]int64{"listed": 29988, "rejected": 24}, Issues: map[string]int64{"bad_id": 7, "two_standards": 17}}, nil
}

func (f *fakeCycles) Inbox(context.Context) (monitor.CycleInbox, error) {
	return monitor.CycleInbox{Dir: "/var/lib/mzhub/disbursement/inbox", Lists: f.lists}, nil
}

func (f *fakeCycles) Submit(_ context.Context, req monitor.CycleRequest, user string) (monitor.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("submit %s-%s list=%s letter=%d by %s", req.Kind, req.Period, req.List, req.LetterTotalFen, user))
	cy := f.find(req.Kind, req.Period)
	if cy == nil {
		f.cycles = append(f.cycles, monitor.Cycle{Name: req.Kind + "-" + req.Period, Kind: req.Kind, Period: req.Period, Stage: "intake"})
		cy = &f.cycles[len(f.cycles)-1]
	} else if req.List != "" {
		return *cy, fmt.Errorf("%w: at stage %s", monitor.ErrCycleListTaken, cy.Stage)
	}
	cy.Status = monitor.CycleQueued
	return *cy, nil
}

func (f *fakeCycles) Confirm(_ context.Context, kind, period, level, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("confirm %s-%s %s by %s", kind, period, level, user))
	cy := f.find(kind, period)
	if cy == nil {
		return monitor.ErrNoCycle
	}
	d, ok := cy.Confirmed(monitor.LevelDistrict)
	switch {
	case level == monitor.LevelCity && !ok:
		return monitor.ErrConfirmOrder
	case level == monitor.LevelCity && d.User == user:
		return fmt.Errorf("%w: service says so", monitor.ErrSameConfirmer)
	}
	cy.Confirmations = append(cy.Confirmations, monitor.CycleConfirmation{Level: level, User: user, At: now})
	return nil
}

const testCSRF = "tok-123"

// cycleServer serves a console with cycles behind a login stand-in: the
// user is named by the X-User header, a post needs the session's CSRF
// token in its form (as security/accounts checks it), and users named
// "auditor*" only read.
func cycleServer(t *testing.T, f *fakeCycles) *httptest.Server {
	t.Helper()
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.PostFormValue("csrf_token") != testCSRF {
				http.Error(w, "CSRF check failed", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Cycles: f, Auth: auth,
		User:   func(r *http.Request) string { return r.Header.Get("X-User") },
		CanAct: func(r *http.Request) bool { return !strings.HasPrefix(r.Header.Get("X-User"), "auditor") },
		CSRF:   func(*http.Request) string { return testCSRF }})
}

type answer struct {
	code     int
	body     string
	location string
}

// do sends a request as user; form nil is a GET. Redirects are not followed.
func do(t *testing.T, srv *httptest.Server, user, path string, form url.Values) answer {
	t.Helper()
	method, body := http.MethodGet, io.Reader(nil)
	if form != nil {
		method, body = http.MethodPost, strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-User", user)
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header.Get("Location")}
}

func TestCyclesOnTheBatchesPage(t *testing.T) {
	srv := cycleServer(t, newFakeCycles())
	cases := []struct {
		name, user, path string
		want, not        []string
	}{
		{"operator", "bob", "/console/batches", []string{
			"发放与扣款周期", `data-cycle="disbursement-2026-11" data-status="awaiting_confirmation"`, "待市级确认", "alice",
			"2,639,850.05", "29,988 / 30,012", "1,234,567.89", "待录入发函总额",
			`<tr class="red" data-cycle="deduction-2026-10"`, "310***********1234", "恢复运行", "季度扣款",
			`发函总额 1.00 元与系统总额 4,400.00 元不符<br><span class="muted" lang="en">letter total 1.00 yuan`,
			`action="/console/batches/disbursement/2026-11/confirm-city"`, `action="/console/batches/disbursement/2026-10/letter-total"`,
			`action="/console/batches/deduction/2026-10/letter-total"`, `action="/console/batches/deduction/2026-10/resume"`,
			`action="/console/batches/start"`, "<option>list-2026-12.csv</option>", `value="2026-11"`,
			`name="csrf_token" value="tok-123"`, "批次进程", "allowance-2026-11"},
			[]string{"310101199001011234", "confirm-district", "须由区级确认人以外的账号确认"}},
		{"the first item of the overview's strip is the failed cycle", "bob", "/console/", []string{`<ul>
<li class="red">`}, nil},
		{"the district's confirmer is told another account must confirm", "alice", "/console/batches", []string{"须由区级确认人以外的账号确认"}, nil},
		{"auditor reads only", "auditor1", "/console/batches", []string{"disbursement-2026-11", "待市级确认", "2,639,850.05"},
			[]string{"<form method=\"post\"", `<form class="inline" method="post"`, "csrf_token", "batches/start"}},
		{"english", "bob", "/console/batches?lang=en", []string{"Allowance cycles", "awaiting confirmation", "city confirmation due", "Deduction", "Resume"}, nil},
		{"one cycle's stages", "bob", "/console/batches?batch=deduction-2026-10", []string{`id="cycle-detail"`, "名单接收", "总额核对", "校验拒绝", "身份证号不正确", "重复享受多个标准", "29,988"}, nil},
		{"a problem key from the redirect is shown translated", "bob", "/console/batches?batch=disbursement-2026-11&problem=cycle_err_same_confirmer",
			[]string{`data-problem="cycle_err_same_confirmer"`, "市级确认须由与区级确认不同的账号进行"}, nil},
		{"text in the problem parameter is never shown", "bob", "/console/batches?problem=%3Cb%3Epay+here%3C%2Fb%3E", nil, []string{"pay here", "data-problem"}},
		{"the overview lists what needs action, failures first", "bob", "/console/", []string{`<li class="red"><a href="/console/batches?batch=deduction-2026-10#cycles">`, "待处理", `href="/console/batches?batch=disbursement-2026-11#cycles"`, "低保发放 2026-11: 待市级确认",
			"季度扣款 2026-10: 排除原因后恢复运行", "低保发放 2026-10: 请录入发函总额"}, []string{"2026-09: "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, srv, tc.user, tc.path, nil)
			if a.code != 200 {
				t.Fatalf("status %d: %s", a.code, a.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(a.body, n) {
					t.Errorf("page shows %q", n)
				}
			}
			// Every stage, status, kind, payment status and finding shown has its words.
			for _, key := range []string{">cycle_", ">payment_", ">issue_", "i>cycle_"} {
				if i := strings.Index(a.body, key); i >= 0 {
					t.Errorf("untranslated key: %s", a.body[i:min(len(a.body), i+40)])
				}
			}
		})
	}
}

func TestCycleActions(t *testing.T) {
	f := newFakeCycles()
	srv := cycleServer(t, f)
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf_token": {testCSRF}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	steps := []struct {
		name, user, path string
		form             url.Values
		code             int
		want             []string // in the body, or in the redirect's location
		call             string   // the call made, "" for none
	}{
		// Every action shows its confirmation first and does nothing.
		{"start asks first", "bob", "/console/batches/start", form("kind", "disbursement", "period", "2026-12", "list", "list-2026-12.csv", "letter_total", "2,639,850.05"), 200,
			[]string{"确定发起该批次", `name="confirm" value="yes"`, `name="list" value="list-2026-12.csv"`, "2,639,850.05", `name="csrf_token" value="tok-123"`, "bob"}, ""},
		{"start", "bob", "/console/batches/start", form("kind", "disbursement", "period", "2026-12", "list", "list-2026-12.csv", "letter_total", "2,639,850.05", "confirm", "yes"), 303,
			[]string{"batch=disbursement-2026-12", "flash="}, "submit disbursement-2026-12 list=list-2026-12.csv letter=263985005 by bob"},
		{"start without a letter total", "bob", "/console/batches/start", form("kind", "deduction", "period", "2026-12", "list", "list-2026-11.csv", "confirm", "yes"), 303,
			[]string{"batch=deduction-2026-12"}, "submit deduction-2026-12 list=list-2026-11.csv letter=0 by bob"},
		{"a second list is refused with the reason", "bob", "/console/batches/start", form("kind", "deduction", "period", "2026-12", "list", "list-2026-11.csv", "confirm", "yes"), 303,
			[]string{"problem=cycle_err_list_taken"}, "submit deduction-2026-12 list=list-2026-11.csv letter=0 by bob"},
		{"letter total asks first", "bob", "/console/batches/disbursement/2026-10/letter-total", form("letter_total", "1234567.8"), 200,
			[]string{"确定录入该发函总额", "1,234,567.80", "1,234,567.89", `action="/console/batches/disbursement/2026-10/letter-total"`}, ""},
		{"letter total", "bob", "/console/batches/disbursement/2026-10/letter-total", form("letter_total", "1,234,567.80", "confirm", "yes"), 303,
			[]string{"batch=disbursement-2026-10"}, "submit disbursement-2026-10 list= letter=123456780 by bob"},
		{"city by the district's confirmer is refused", "alice", "/console/batches/disbursement/2026-11/confirm-city", form("confirm", "yes"), 303,
			[]string{"problem=cycle_err_same_confirmer", "batch=disbursement-2026-11"}, "confirm disbursement-2026-11 city by alice"},
		{"city by another account", "bob", "/console/batches/disbursement/2026-11/confirm-city", form("confirm", "yes"), 303,
			[]string{"flash="}, "confirm disbursement-2026-11 city by bob"},
		{"district asks first", "carol", "/console/batches/disbursement/2026-09/confirm-district", form(), 200,
			[]string{"确定以本账号进行区级确认", "carol"}, ""},
		{"resume", "bob", "/console/batches/deduction/2026-10/resume", form("confirm", "yes"), 303,
			[]string{"batch=deduction-2026-10"}, "submit deduction-2026-10 list= letter=0 by bob"},

		// Bad input is a form error (422) or names nothing (404); never a
		// 500, never a call.
		{"bad amount", "bob", "/console/batches/disbursement/2026-10/letter-total", form("letter_total", "12.345", "confirm", "yes"), 422,
			[]string{"金额格式不对", `data-problem="cycle_err_amount"`}, ""},
		{"negative amount", "bob", "/console/batches/disbursement/2026-10/letter-total", form("letter_total", "-5"), 422, []string{"cycle_err_amount"}, ""},
		{"float syntax", "bob", "/console/batches/start", form("kind", "disbursement", "period", "2027-01", "list", "list-2026-12.csv", "letter_total", "1e6"), 422,
			[]string{"cycle_err_amount", `value="1e6"`, `value="2027-01"`}, ""},
		{"bad period", "bob", "/console/batches/start", form("kind", "disbursement", "period", "2026-13", "list", "list-2026-12.csv"), 422, []string{"期间格式应为"}, ""},
		{"list outside the inbox", "bob", "/console/batches/start", form("kind", "disbursement", "period", "2027-01", "list", "../../etc/passwd", "confirm", "yes"), 422,
			[]string{"请选择收件目录中的名单文件"}, ""},
		{"unknown kind", "bob", "/console/batches/start", form("kind", "bonus", "period", "2027-01", "list", "list-2026-12.csv"), 422, []string{"cycle_err_kind"}, ""},
		{"no such cycle", "bob", "/console/batches/disbursement/2020-01/resume", form("confirm", "yes"), 404, []string{"没有该批次"}, ""},
		{"unknown action", "bob", "/console/batches/disbursement/2026-11/pay-twice", form("confirm", "yes"), 404, nil, ""},
		{"unknown kind in the path", "bob", "/console/batches/bonus/2026-11/resume", form("confirm", "yes"), 404, nil, ""},

		// Auditors read only; every post needs the CSRF token.
		{"auditor", "auditor1", "/console/batches/disbursement/2026-11/confirm-district", form("confirm", "yes"), 403, nil, ""},
		{"auditor start", "auditor1", "/console/batches/start", form("kind", "disbursement", "period", "2027-01", "list", "list-2026-12.csv", "confirm", "yes"), 403, nil, ""},
		{"no CSRF token", "bob", "/console/batches/deduction/2026-10/resume", url.Values{"confirm": {"yes"}}, 403, nil, ""},
	}
	before := 0
	for _, s := range steps {
		a := do(t, srv, s.user, s.path, s.form)
		if a.code != s.code {
			t.Fatalf("%s: status %d, want %d: %s", s.name, a.code, s.code, a.body)
		}
		for _, w := range s.want {
			if !strings.Contains(a.body, w) && !strings.Contains(a.location, url.QueryEscape(w)) && !strings.Contains(a.location, w) {
				t.Errorf("%s: lacks %q (location %q)", s.name, w, a.location)
			}
		}
		calls := f.called()
		switch {
		case s.call == "" && len(calls) != before:
			t.Errorf("%s: called %v", s.name, calls[before:])
		case s.call != "" && (len(calls) != before+1 || calls[before] != s.call):
			t.Errorf("%s: calls %v, want %q", s.name, calls[before:], s.call)
		}
		before = len(f.called())
	}
	// The refusal's reason reaches the operator on the page it redirects to.
	a := do(t, srv, "alice", "/console/batches/disbursement/2026-09/confirm-city", url.Values{"csrf_token": {testCSRF}, "confirm": {"yes"}})
	if a.code != 303 {
		t.Fatalf("status %d", a.code)
	}
	loc, _ := url.Parse(a.location)
	page := do(t, srv, "alice", loc.RequestURI(), nil)
	if !strings.Contains(page.body, "市级确认须由与区级确认不同的账号进行") {
		t.Errorf("the refusal's reason is not on the page: %s", loc)
	}
}

// TestCyclesWithoutLogin: with no login configured (demo, tests) the
// confirmation step asks who acts, and the service gets the
// self-declared name.
func TestCyclesWithoutLogin(t *testing.T) {
	f := newFakeCycles()
	srv := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Cycles: f})
	a := do(t, srv, "", "/console/batches/disbursement/2026-10/resume", url.Values{"confirm": {"yes"}})
	if a.code != 200 || !strings.Contains(a.body, `name="operator"`) || strings.Contains(a.body, "csrf_token") || len(f.called()) != 0 {
		t.Fatalf("without an operator: %d %v", a.code, f.called())
	}
	a = do(t, srv, "", "/console/batches/disbursement/2026-10/resume", url.Values{"confirm": {"yes"}, "operator": {"wang"}})
	if a.code != 303 || strings.Join(f.called(), "|") != "submit disbursement-2026-10 list= letter=0 by self-declared:wang" {
		t.Fatalf("resume: %d %v", a.code, f.called())
	}
	// Without cycles the page has no such section and the actions do not exist.
	srv = newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now)})
	if a := do(t, srv, "", "/console/batches", nil); a.code != 200 || strings.Contains(a.body, `id="cycles"`) {
		t.Errorf("batches without cycles: %d", a.code)
	}
	if a := do(t, srv, "", "/console/batches/disbursement/2026-10/resume", url.Values{"confirm": {"yes"}, "operator": {"wang"}}); a.code != 404 {
		t.Errorf("action without cycles: %d", a.code)
	}
}
