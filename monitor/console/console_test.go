package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/quality"
	"github.com/shanghai-mca/mzhub/monitor/sample"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, clock.Shanghai)

func seeded(t testing.TB) monitor.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "monitor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Append(context.Background(), sample.Scenario(now, 1)); err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder fakes both the dead-letter actions and the audit log in one call
// log, so that tests see the audit record come before the action.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }

func (r *recorder) Retry(_ context.Context, id, user string) error {
	r.add("retry " + id + " " + user)
	return nil
}
func (r *recorder) Replay(_ context.Context, id, user string) error {
	r.add("replay " + id + " " + user)
	return nil
}
func (r *recorder) Drop(_ context.Context, id, user, reason string) error {
	r.add("drop " + id + " " + user + " " + reason)
	return nil
}
func (r *recorder) Append(_ context.Context, rec audit.Record) (int64, error) {
	r.add("audit " + rec.Actor + " " + rec.Action + " " + rec.Object)
	return 1, nil
}

func newServer(t *testing.T, d console.Deps) *httptest.Server {
	t.Helper()
	c, err := console.New(d)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", c))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// full returns deps with every optional part, backed by real implementations.
func full(t *testing.T, rec *recorder) console.Deps {
	t.Helper()
	ctx := context.Background()
	st := seeded(t)
	db := storetest.Open(t)
	if err := alert.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := expect.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(now)
	inbox := alert.NewInbox(db, fc, rec, nil)
	rules := &alert.Rules{Store: st, Inbox: inbox, Clock: fc, Thresholds: monitor.DefaultConfig().Thresholds,
		Schedules: []monitor.FlowSchedule{{Partner: "cardcenter", Flow: "applications", Every: time.Hour}}}
	if err := rules.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	tr, err := expect.New(db, st, expect.Options{Clock: fc, Alerts: inbox, Rules: []monitor.ExpectationRule{
		{Name: "datasea-death-daily", Partner: "datasea", Flow: "death", Type: monitor.Fetched, FilePattern: "DEATH_*.txt", Schedule: "daily 06:00"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Expect(ctx, monitor.Expectation{Name: "ccb-return-allowance-2026-11", Partner: "bank.ccb", Flow: "allowance",
		Type: monitor.Downloaded, BatchID: "allowance-2026-11", Due: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A bank's account result file (services/bankaccounts) not in by its due time.
	if err := tr.Expect(ctx, monitor.Expectation{Name: "result cmb CMB_HC_2026112901", Partner: "bank.cmb", Flow: "account-verify",
		Type: monitor.Downloaded, FilePattern: "CMB_HC_2026112901_RET*", Due: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	return console.Deps{Store: st, Clock: fc, Actions: rec, Auditor: rec, Alerts: inbox, Expectations: tr,
		Quality:   &quality.Scorer{Store: st, Clock: fc, Config: monitor.QualityConfig{SampleSize: 2}},
		Schedules: rules.Schedules, Thresholds: rules.Thresholds, Topology: topologyFixture(t)}
}

func TestPages(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Actions: rec, Auditor: rec,
		Schedules:  []monitor.FlowSchedule{{Partner: "datasea", Flow: "death", Every: 24 * time.Hour}, {Partner: "cardcenter", Flow: "applications", Every: time.Hour}},
		Thresholds: monitor.DefaultConfig().Thresholds})
	cases := []pageWant{
		{"/console/matrix", []string{"健康矩阵", `title="bank.ccb"`, "建设银行", "办件状态推送", "卡中心", `class="cell red"`, "/console/static/console.css",
			"从未 / 1 小时", "1 天", "小时前"}},
		{"/console/matrix?lang=en", []string{"Health matrix", "Last success", "p95 latency", "China Construction Bank"}},
		{"/console/", []string{"总览", "信息交换流程监管", `data-partner="bank.ccb" data-op="return" data-band="red"`, "建设银行", "回盘", "开户",
			`data-partner="bank.boc" data-op="open" data-band="grey"`, "最近一步失败", "错误率过高", "待处理死信", "村镇银行 02"}},
		{"/console/?lang=en", []string{"Overview", "Returns", "China Construction Bank", "Needs action"}},
		{"/console/search?batch=allowance-2026-11", []string{"bank.boc", `data-type="uploaded"`, "上传", "BOC_DISB_202611.txt"}},
		{"/console/search?ref=YWTB0000001005", []string{"joblib/status/5", "对方不可用(503)"}},
		{"/console/search", []string{"joblib/status/0"}},
		{"/console/exchange/allowance-2026-11%2Fbank.boc%2Fsend", []string{"allowance-2026-11/list", "allowance-2026-11/bank.boc/return", "对账"}},
		{"/console/batches", []string{"allowance-2026-11", "名单接收", "回盘处理", "停滞", "4400000", `data-outcome="stage_failed"`, "阶段出错", `data-outcome="stage_warnings"`}},
		{"/console/failures", []string{"trailer count", "http_400", "joblib/status/dl-1", "310***********1234", `action="/console/failures/replay"`}},
		{"/console/charts?window=24h", []string{"<svg", "<rect", "polyline"}},
		{"/console/charts?window=7d&partner=datasea", []string{"<svg"}},
	}
	checkPages(t, srv, cases)
	if code, _ := get(t, srv, "/console/alerts"); code != 404 {
		t.Errorf("alerts without inbox: %d, want 404", code)
	}
}

func TestPagesWithAlertsExpectationsQuality(t *testing.T) {
	srv := newServer(t, full(t, &recorder{}))
	cases := []pageWant{
		{"/console/alerts", []string{"告警", `data-rule="staleness"`, "超时未成功", "卡中心", "预期文件未到", "ccb-return-allowance-2026-11", `name="operator"`}},
		{"/console/alerts?state=open&lang=en", []string{"Alerts", "Acknowledge"}},
		// A missed account result is late in the bank's operation cell, not in 回盘.
		{"/console/", []string{`data-partner="bank.cmb" data-op="verify" data-band="red"`, `data-partner="bank.ccb" data-op="return" data-band="red"`}},
		{"/console/calendar", []string{"datasea-death-daily", "ccb-return-allowance-2026-11", `data-state="missed"`, `data-state="met"`}},
		{"/console/quality", []string{"村镇银行 02", "数据质量", "report/csv"}},
		{"/console/quality/report/csv", []string{"partner,flow,events", "villagebank.02,verification"}},
		{"/console/quality/report/html", []string{"数据质量报告", "villagebank.02"}},
	}
	checkPages(t, srv, cases)
}

func TestAlertAckAndResolveAreAudited(t *testing.T) {
	rec := &recorder{}
	d := full(t, rec)
	srv := newServer(t, d)
	list, err := d.Alerts.List(context.Background(), monitor.AlertOpen, 10)
	if err != nil || len(list) == 0 {
		t.Fatalf("alerts %v %v", list, err)
	}
	id := list[0].ID
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, step := range []struct{ action, state string }{{"ack", "acked"}, {"resolve", "resolved"}} {
		resp, err := c.PostForm(fmt.Sprintf("%s/console/alerts/%d/%s", srv.URL, id, step.action), url.Values{"operator": {"chen"}, "note": {"checked"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: status %d", step.action, resp.StatusCode)
		}
		got, _ := d.Alerts.List(context.Background(), monitor.AlertState(step.state), 100)
		found := false
		for _, a := range got {
			found = found || a.ID == id
		}
		if !found {
			t.Errorf("after %s the alert is not %s", step.action, step.state)
		}
	}
	want := fmt.Sprintf("audit self-declared:chen monitor.alert.ack alert/%d|audit self-declared:chen monitor.alert.resolve alert/%d", id, id)
	if got := strings.Join(rec.calls, "|"); got != want {
		t.Errorf("audit %s, want %s", got, want)
	}
}

func TestDeadLetterActionNeedsConfirmationAndIsAudited(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Actions: rec, Auditor: rec})
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(path string, form url.Values) (*http.Response, string) {
		resp, err := c.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// First post shows the confirmation, does nothing.
	resp, body := post("/console/failures/drop", url.Values{"exchange": {"joblib/status/dl-1"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, `name="reason"`) {
		t.Fatalf("confirmation page: %d %s", resp.StatusCode, body)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("acted before confirmation: %v", rec.calls)
	}
	// Confirmed without an operator: asked again.
	post("/console/failures/drop", url.Values{"exchange": {"joblib/status/dl-1"}, "confirm": {"yes"}, "reason": {"duplicate"}})
	if len(rec.calls) != 0 {
		t.Fatalf("acted without operator: %v", rec.calls)
	}
	resp, _ = post("/console/failures/drop", url.Values{"exchange": {"joblib/status/dl-1"}, "confirm": {"yes"}, "reason": {"duplicate"}, "operator": {"wang"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Audited with its outcome, so after the action.
	want := []string{"drop joblib/status/dl-1 self-declared:wang duplicate", "audit self-declared:wang monitor.dead_letter.drop joblib/status/dl-1"}
	if strings.Join(rec.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %v, want %v", rec.calls, want)
	}
	// A cross-site post is refused.
	req, _ := http.NewRequest("POST", srv.URL+"/console/failures/retry", strings.NewReader("exchange=x&confirm=yes&operator=a"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", r2.StatusCode)
	}
}

func TestReadOnlyUsersCannotAct(t *testing.T) {
	rec := &recorder{}
	d := full(t, rec)
	d.CanAct = func(*http.Request) bool { return false }
	srv := newServer(t, d)
	_, body := get(t, srv, "/console/failures")
	if strings.Contains(body, `action="/console/failures/`) {
		t.Error("read-only user sees action buttons")
	}
	for _, path := range []string{"/console/failures/drop", "/console/alerts/1/ack"} {
		resp, err := srv.Client().PostForm(srv.URL+path, url.Values{"exchange": {"x"}, "confirm": {"yes"}, "operator": {"a"}, "reason": {"r"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", path, resp.StatusCode)
		}
	}
	// Nothing acted; each refusal audited (as denied).
	want := []string{"audit self-declared:a monitor.dead_letter.drop x", "audit self-declared:a monitor.alert.ack 1"}
	if strings.Join(rec.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %v, want %v", rec.calls, want)
	}
}

func TestAuthMiddlewareWrapsEverything(t *testing.T) {
	deny := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "login", http.StatusUnauthorized) })
	}
	srv := newServer(t, console.Deps{Store: seeded(t), Auth: deny})
	for _, p := range []string{"/console/", "/console/search", "/console/static/console.css"} {
		if code, _ := get(t, srv, p); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", p, code)
		}
	}
}

// pageWant is a console page and the texts it must contain.
type pageWant struct {
	path string
	want []string
}

// checkPages gets each page (status 200) and checks its texts, a subtest each.
func checkPages(t *testing.T, srv *httptest.Server, pages []pageWant) {
	t.Helper()
	for _, tc := range pages {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, srv, tc.path)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
}
