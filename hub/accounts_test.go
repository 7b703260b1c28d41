package hub_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/monitor"
	users "github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/bankaccounts"
)

// TestAccountsDemoMonth: the demo hub asks the simulated banks for the
// month's openings, verifications, loss reports and a closure through the
// same service serve runs; every request is answered, some openings are
// refused, the monitor has each operation's events under the banks, and
// the month's list is screened with the results: the 开户失败 stage names
// the persons left out in the month's batch. Each request file's result
// is expected by the monitor and none is missed.
func TestAccountsDemoMonth(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Hub: hub.Options{Demo: true}})
	ctx := context.Background()
	svc := srv.Hub.Accounts()
	if svc == nil || len(svc.Banks()) != 6 {
		t.Fatalf("account service wired: %v", svc)
	}
	if n, err := svc.Open(ctx); err != nil || n != 0 {
		t.Fatalf("%d demo account requests unanswered (%v)", n, err)
	}
	store := srv.Hub.Monitor().Store()
	bound := time.After(3 * time.Minute)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		flows := map[string]bool{}
		var refused int64
		evs, err := store.Search(ctx, monitor.Filter{Type: monitor.Reconciled, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Stage == bankaccounts.StageResults && strings.HasPrefix(e.Partner, "bank.") {
				flows[e.Flow] = true
				if e.Flow == "account-open" {
					refused += e.RecordsFailed
				}
			}
		}
		fails, err := store.Search(ctx, monitor.Filter{Type: monitor.Validated, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var left int64
		batch := ""
		for _, e := range fails {
			if e.Stage == bankaccounts.StageFailures {
				left, batch = e.RecordsFailed, e.BatchID
			}
		}
		all := true
		for _, f := range []string{"account-open", "account-verify", "account-activate", "loss-report", "loss-unfreeze", "account-cancel"} {
			all = all && flows[f]
		}
		if all && refused == 3 && left > 0 {
			if left > hub.DemoAccountFailures || batch == "" {
				t.Fatalf("开户失败 stage: %d left out of batch %q", left, batch)
			}
			// The overview's bank cells of the six operations are lit.
			code, page := srv.Console(t, "olga", users.RoleOperator).Page("/console/")
			if code != http.StatusOK {
				t.Fatalf("overview: %d", code)
			}
			for _, op := range []string{"verify", "open", "activate", "loss", "unfreeze", "cancel"} {
				lit := false
				for _, m := range regexp.MustCompile(`data-partner="bank\.[a-z]+" data-op="`+op+`" data-band="(\w+)"`).FindAllStringSubmatch(page, -1) {
					lit = lit || m[1] != "grey"
				}
				if !lit {
					t.Errorf("no bank's %s cell is lit on the overview", op)
				}
			}
			// Each request file sent is expected back (accounts.result_deadline); the demo's banks answered every one in time.
			var expected, missed int
			if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'missed' THEN 1 ELSE 0 END), 0)
				FROM monitor_expectations WHERE name LIKE 'result %'`).Scan(&expected, &missed); err != nil {
				t.Fatal(err)
			}
			var files int
			if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM acct_files WHERE status IN ('sent', 'answered')`).Scan(&files); err != nil {
				t.Fatal(err)
			}
			if expected != files || files == 0 || missed != 0 {
				t.Fatalf("%d account result expectations (%d missed) for %d files sent", expected, missed, files)
			}
			retryFromConsole(t, srv)
			return
		}
		select {
		case <-stored:
		case <-time.After(time.Second):
		case <-bound:
			t.Fatalf("flows %v, %d openings refused, %d left out of batch %q", flows, refused, left, batch)
		}
	}
}

// retryFromConsole: the console's 开户失败 page lists the demo's three
// refused openings with the banks' reasons; an auditor cannot retry; an
// operator corrects one and retries it with the session's CSRF token, the
// retry is queued into the bank's next opening file and audited.
func retryFromConsole(t *testing.T, srv *hubtest.Server) {
	t.Helper()
	ctx := context.Background()
	op := srv.Console(t, "omar", users.RoleOperator)
	code, page := op.Page("/console/accounts")
	refs := regexp.MustCompile(`action="/console/accounts/(ZH\d+)/retry"`).FindAllStringSubmatch(page, -1)
	if code != http.StatusOK || len(refs) != 3 || !strings.Contains(page, "户名与证件不符") || !strings.Contains(page, "证件号码无效") {
		t.Fatalf("开户失败 page: %d, %d retry forms\n%s", code, len(refs), page)
	}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	ref := refs[0][1]
	aud := srv.Console(t, "ada", users.RoleAuditor)
	if code, _, _ := aud.Form("/console/accounts/"+ref+"/retry", url.Values{"name": {"王五"}, "csrf_token": {csrf[1]}}); code != http.StatusForbidden {
		t.Fatalf("auditor retried: %d", code)
	}
	if code, _, _ := op.Form("/console/accounts/"+ref+"/retry", url.Values{"name": {"王五"}}); code != http.StatusForbidden {
		t.Fatalf("retry without the CSRF token: %d", code)
	}
	code, _, loc := op.Form("/console/accounts/"+ref+"/retry", url.Values{"name": {"王五"}, "note": {"户籍核实"}, "csrf_token": {csrf[1]}})
	if code != http.StatusSeeOther || !strings.Contains(loc, "flash=") {
		t.Fatalf("retry: %d %q", code, loc)
	}
	es, err := srv.Hub.Security().Audit.List(ctx, audit.Filter{Action: "accounts.retry_opening", Outcome: audit.OutcomeSuccess})
	if err != nil || len(es) != 1 || !strings.HasSuffix(es[0].Object, ref[len(ref)-4:]) || es[0].Actor != "user:omar" {
		t.Fatalf("audit of the retry: %+v %v", es, err)
	}
	if _, page = op.Page("/console/accounts"); !strings.Contains(page, "已重试 ZH") {
		t.Fatalf("after the retry:\n%s", page)
	}
}
