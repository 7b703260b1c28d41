package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor/console"
)

// fakeAccounts stands in for the hub's adapter of services/bankaccounts.
type fakeAccounts struct {
	mu    sync.Mutex
	rows  []console.FailedOpening
	calls []string
}

func newFakeAccounts() *fakeAccounts {
	at := now.Add(-5 * 3600e9)
	return &fakeAccounts{rows: []console.FailedOpening{
		{Ref: "ZH202612010000000003", Bank: "boc", IDMasked: "310***********1234", NameMasked: "王*", Division: "310104",
			Outcome: "mismatch", Code: "E102", Reason: "户名与证件号码不符", Failed: at, Blocking: true},
		{Ref: "ZH202612010000000004", Bank: "ccb", IDMasked: "310***********5678", NameMasked: "李**", Division: "310115",
			Outcome: "id_invalid", Code: "07", Reason: "证件号码校验失败", Failed: at, Blocking: true, Retry: "ZH202612020000000011", RetryStatus: "sent"},
		{Ref: "ZH202612010000000005", Bank: "bocom", IDMasked: "310***********9012", NameMasked: "张*", Division: "310101",
			Outcome: "not_found", Reason: "客户信息不存在", Failed: at, Retry: "ZH202612020000000012", RetryStatus: "done"},
	}}
}

func (f *fakeAccounts) FailedOpenings(context.Context, int) ([]console.FailedOpening, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]console.FailedOpening(nil), f.rows...), nil
}

func (f *fakeAccounts) RetryOpening(_ context.Context, ref string, fix console.OpeningFix, user string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s name=%s division=%s fixed=%v note=%s", user, ref, fix.Name, fix.Division, fix.Fixed, fix.Note))
	for i := range f.rows {
		r := &f.rows[i]
		if r.Ref != ref {
			continue
		}
		if r.Retry != "" {
			return "", fmt.Errorf("%w: %s", console.ErrAlreadyRetried, ref)
		}
		if fix.Name == "" && fix.Division == "" && (!fix.Fixed || fix.Note == "") {
			return "", console.ErrNoCorrection
		}
		r.Retry, r.RetryStatus = "ZH202612020000000020", "queued"
		return r.Retry, nil
	}
	return "", console.ErrNotRetryable
}

// TestAccountFailuresPage: the 开户失败 page lists the failed openings
// with the bank's reason and what became of each retry; an operator's
// retry carries the correction and the session's CSRF token and comes
// back with the new request; a retry without a correction or of a
// request retried already is refused with the reason on the page; an
// auditor reads only, and a retry they try is refused and audited.
func TestAccountFailuresPage(t *testing.T) {
	f := newFakeAccounts()
	rec := &recorder{}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.PostFormValue("csrf_token") != testCSRF {
				http.Error(w, "CSRF check failed", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Accounts: f, Auth: auth, Auditor: rec,
		User:   func(r *http.Request) string { return r.Header.Get("X-User") },
		CanAct: func(r *http.Request) bool { return !strings.HasPrefix(r.Header.Get("X-User"), "auditor") },
		CSRF:   func(*http.Request) string { return testCSRF }})

	a := do(t, srv, "bob", "/console/accounts", nil)
	for _, want := range []string{"开户失败", `data-ref="ZH202612010000000003"`, "中国银行", "310***********1234", "王*", "户名与证件不符",
		"<code>E102</code> 户名与证件号码不符", "暂停发放，待处理", "已重试 ZH202612020000000011: 已发送银行", "已重试 ZH202612020000000012: 已开户",
		`action="/console/accounts/ZH202612010000000003/retry"`, `name="csrf_token" value="` + testCSRF + `"`, `href="/console/accounts"`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Only the blocking failure not retried yet has a form.
	if n := strings.Count(a.body, `/retry"`); a.code != 200 || n != 1 {
		t.Fatalf("%d, %d retry forms\n%s", a.code, n, a.body)
	}
	if en := do(t, srv, "bob", "/console/accounts?lang=en", nil); !strings.Contains(en.body, "Failed openings") ||
		!strings.Contains(en.body, "name and ID do not match") || !strings.Contains(en.body, "Correct and retry") {
		t.Fatalf("english:\n%s", en.body)
	}
	if au := do(t, srv, "auditor1", "/console/accounts", nil); au.code != 200 || strings.Contains(au.body, `/retry"`) {
		t.Fatalf("auditor's page: %d", au.code)
	}

	for _, tc := range []struct {
		name, user, ref string
		form            url.Values
		code            int
		want            string
	}{
		{"without the CSRF token", "bob", "ZH202612010000000003", url.Values{"name": {"王五"}}, 403, "CSRF"},
		{"auditor", "auditor1", "ZH202612010000000003", url.Values{"name": {"王五"}, "csrf_token": {testCSRF}}, 403, "may not act"},
		{"nothing corrected", "bob", "ZH202612010000000003", url.Values{"note": {"?"}, "csrf_token": {testCSRF}}, 422, "请更正资料"},
		{"retried already", "bob", "ZH202612010000000004", url.Values{"name": {"李四"}, "csrf_token": {testCSRF}}, 409, "已经重试过"},
		{"unknown", "bob", "ZH0", url.Values{"name": {"李四"}, "csrf_token": {testCSRF}}, 404, "不是开户失败的请求"},
		{"corrected", "bob", "ZH202612010000000003", url.Values{"name": {" 王五 "}, "division": {"310105"}, "fixed": {"1"}, "note": {"户籍核实"}, "csrf_token": {testCSRF}}, 303, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, srv, tc.user, "/console/accounts/"+tc.ref+"/retry", tc.form)
			if a.code != tc.code || !strings.Contains(a.body, tc.want) {
				t.Fatalf("%d, want %d with %q\n%.600s", a.code, tc.code, tc.want, a.body)
			}
			if tc.code == 303 {
				if !strings.HasPrefix(a.location, "/console/accounts?flash=") || !strings.Contains(a.location, "ZH202612020000000020") {
					t.Fatalf("redirect to %q", a.location)
				}
			}
		})
	}
	f.mu.Lock()
	calls := strings.Join(f.calls, "\n")
	f.mu.Unlock()
	if !strings.Contains(calls, "bob ZH202612010000000003 name=王五 division=310105 fixed=true note=户籍核实") || strings.Contains(calls, "auditor1") {
		t.Fatalf("calls:\n%s", calls)
	}
	rec.mu.Lock()
	audited := strings.Join(rec.calls, "\n")
	rec.mu.Unlock()
	if !strings.Contains(audited, "audit user:auditor1 accounts.retry_opening ") {
		t.Fatalf("the auditor's refused retry was not audited:\n%s", audited)
	}
	if a := do(t, srv, "bob", "/console/accounts", nil); !strings.Contains(a.body, "已重试 ZH202612020000000020: 待生成文件") {
		t.Fatalf("after the retry:\n%s", a.body)
	}
}
