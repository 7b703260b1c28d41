package hub_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// TestConsolePagesRunACycle drives a month through the console's batches
// page as people do, with the forms the page renders: behind the real
// login, role and CSRF guard, with the hub's cycle runner and six
// simulated banks. Two operators confirm; the same account cannot confirm
// both levels and is told why; an auditor sees no buttons and cannot post.
func TestConsolePagesRunACycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sims := hubtest.StartBanks(t, filepath.Join(dir, "banks"), "../configs/mappings")
	srv := hubtest.Start(t, hubtest.Options{Dir: filepath.Join(dir, "hub"), Hub: hub.Options{Banks: hubtest.BankConfigs(sims)}})
	svc := srv.Hub.Disbursement()
	alice := srv.Console(t, "alice", accounts.RoleOperator)
	bob := srv.Console(t, "bob", accounts.RoleOperator)
	carol := srv.Console(t, "carol", accounts.RoleAuditor)

	period := "2026-09"
	list := "list-" + period + ".csv"
	if err := os.MkdirAll(svc.InboxDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(svc.InboxDir(), list))
	if err != nil {
		t.Fatal(err)
	}
	if err := disbursement.WriteList(f, disbursement.GenerateOptions{Persons: 300, Seed: 11, Period: period}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	// page loads the batches page as c and returns it with its CSRF token.
	page := func(c *hubtest.Client, query string) (string, string) {
		t.Helper()
		code, body := c.Page("/console/batches" + query)
		if code != 200 {
			t.Fatalf("batches page: %d %s", code, body)
		}
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			return body, ""
		}
		return body, m[1]
	}
	// post sends a form of the page, confirms it on the confirmation page
	// and returns where the console sent the browser afterwards.
	post := func(c *hubtest.Client, path string, form url.Values) string {
		t.Helper()
		code, body, _ := c.Form(path, form)
		if code != 200 || !strings.Contains(body, `name="confirm" value="yes"`) {
			t.Fatalf("%s: no confirmation step: %d %s", path, code, body)
		}
		form.Set("confirm", "yes")
		code, body, loc := c.Form(path, form)
		if code != 303 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return loc
	}
	base := "/console/batches/disbursement/" + period + "/"

	body, tok := page(alice, "")
	if tok == "" || !strings.Contains(body, "<option>"+list+"</option>") {
		t.Fatalf("the operator's page has no start form with the inbox list")
	}
	post(alice, "/console/batches/start", url.Values{"csrf_token": {tok}, "kind": {"disbursement"}, "period": {period}, "list": {list}})
	b := waitBatch(t, srv, period, disbursement.BatchAwaitingLetter)
	body, tok = page(alice, "?batch=disbursement-"+period)
	if !strings.Contains(body, `data-status="awaiting_letter_total"`) || !strings.Contains(body, base+"letter-total") {
		t.Fatalf("the page does not ask for the letter total")
	}
	// The letter total typed in yuan reaches the service as exact fen.
	// (as a person types it: "1234.5" for 1234.50 yuan, "1234" for 1234.00).
	typed := strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%d.%02d", b.SystemTotal/100, b.SystemTotal%100), "0"), ".0")
	post(alice, base+"letter-total", url.Values{"csrf_token": {tok}, "letter_total": {typed}})
	b = waitBatch(t, srv, period, disbursement.BatchAwaiting)
	if b.LetterTotal != b.SystemTotal {
		t.Fatalf("letter total %q → %d fen, system total %d", typed, b.LetterTotal, b.SystemTotal)
	}

	// The auditor sees the batch, no button, and cannot post.
	body, auditorTok := page(carol, "")
	if !strings.Contains(body, `data-cycle="disbursement-`+period+`"`) || strings.Contains(body, base+"confirm-district") || strings.Contains(body, "batches/start") {
		t.Fatal("the auditor's page offers actions or lacks the batch")
	}
	if code, _, _ := carol.Form(base+"confirm-district", url.Values{"csrf_token": {auditorTok}, "confirm": {"yes"}}); code != 403 {
		t.Fatalf("auditor confirm: %d", code)
	}
	// A post without the session's CSRF token is refused before the console.
	if code, _, _ := alice.Form(base+"confirm-district", url.Values{"confirm": {"yes"}}); code != 403 {
		t.Fatalf("confirm without CSRF token: %d", code)
	}

	body, tok = page(alice, "")
	if !strings.Contains(body, base+"confirm-district") {
		t.Fatal("no district confirmation button")
	}
	post(alice, base+"confirm-district", url.Values{"csrf_token": {tok}})
	// The same account at city level: refused, and the page says why.
	body, tok = page(alice, "")
	loc := post(alice, base+"confirm-city", url.Values{"csrf_token": {tok}})
	if !strings.Contains(loc, "problem=cycle_err_same_confirmer") {
		t.Fatalf("same account at city level went to %s", loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if _, body := alice.Page(u.RequestURI()); !strings.Contains(body, "市级确认须由与区级确认不同的账号进行") {
		t.Fatal("the refusal's reason is not shown")
	}
	body, tok = page(bob, "")
	if !strings.Contains(body, base+"confirm-city") {
		t.Fatal("no city confirmation button for bob")
	}
	post(bob, base+"confirm-city", url.Values{"csrf_token": {tok}})
	waitBatch(t, srv, period, disbursement.BatchDone)
	body, _ = page(carol, "?batch=disbursement-"+period)
	for _, want := range []string{`data-status="done"`, "alice", "bob", `id="cycle-detail"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the finished batch's page lacks %q", want)
		}
	}

	// Audited under the console accounts, as the CLI's requests are under theirs.
	requireAudited(t, srv, []audited{
		{"console:alice", "disbursement.list"},
		{"console:alice", "disbursement.letter_total"},
		{"user:alice", "disbursement.confirm.district"},
		{"user:bob", "disbursement.confirm.city"},
	})
	if es, err := srv.Hub.Security().Audit.List(ctx, audit.Filter{Actor: "user:alice", Action: "disbursement.confirm.city"}); err != nil || len(es) != 0 {
		t.Errorf("the refused confirmation is in the audit log as made: %v %v", es, err)
	}
}
