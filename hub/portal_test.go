package hub_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/services/portal"
)

// TestPortalDemo runs the whole demo hub: the simulated portal, six banks
// and the demo's allowance month. The portal family fetches applications
// (all channels, self-service terminals among them), answers 救助证明 from
// the register with certificate references, pushes the month's newly
// eligible persons, confirms or refuses the cases handed back and, once the
// month's bank returns are reconciled, reports a payout for each paid
// person and none for a failed payment. The console shows it.
func TestPortalDemo(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Hub: hub.Options{Demo: true}})
	svc, sim := srv.Hub.Portal(), srv.Hub.PortalSim()
	if svc == nil || sim == nil {
		t.Fatal("the demo wired no portal")
	}
	ctx := context.Background()
	budget := 3 * time.Minute
	if raceDetector {
		budget = 8 * time.Minute // the whole demo hub under the race detector on two shared cores
	}
	deadline := time.After(budget)
	var st portal.Stats
	for {
		done := svc.RoundDone()
		var err error
		st, err = svc.Stats(ctx, portal.StatsFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if paidOf(st, "MZ-LNZHJT") > 0 && paidOf(st, "MZ-ZDCJHL") > 0 && settled(st) {
			break
		}
		svc.Kick()
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("the demo's portal flows did not finish: %+v", st)
		}
	}
	t.Logf("mianshen %+v outbox %+v refused %d", st.Mianshen, st.Outbox, st.Refused)
	// Applications: every channel, terminals recorded; done nodes at the portal.
	channels := map[string]int64{}
	var done int64
	for _, a := range st.Applications {
		channels[a.Channel] += a.Count
		if a.Stage == "done" {
			done += a.Count
		}
	}
	for _, ch := range []string{"web", "app", "terminal", "window"} {
		if channels[ch] == 0 {
			t.Errorf("no application through channel %s: %v", ch, channels)
		}
	}
	if done == 0 {
		t.Error("no application reached 办结")
	}
	// 救助证明: the registered applicants get a certificate, the others the reason.
	var certified, notEligible int
	for _, a := range st.Applications {
		if a.Item == "MZ-JZZM" && a.Stage == "done" {
			if a.Result == "approved" {
				certified += int(a.Count)
			} else {
				notEligible += int(a.Count)
			}
		}
	}
	if certified == 0 || notEligible == 0 {
		t.Errorf("救助证明: %d certified, %d not eligible", certified, notEligible)
	}
	if st.Refused != 0 {
		t.Errorf("the demo's own files had %d refused lines", st.Refused)
	}
	// 免申即享: elderly allowance confirmed and paid; the stranger and the
	// double applicant refused; grade 3-4 disability refused.
	var ln portal.MianshenCount
	for _, m := range st.Mianshen {
		if m.Item == "MZ-LNZHJT" {
			ln.Pushed += m.Pushed
			ln.Cases += m.Cases
			ln.Confirmed += m.Confirmed
			ln.Refused += m.Refused
			ln.Paid += m.Paid
		}
	}
	if ln.Pushed == 0 || ln.Cases == 0 || ln.Confirmed == 0 || ln.Refused < 2 || ln.Paid == 0 || ln.Paid > ln.Confirmed {
		t.Errorf("elderly allowance figures: %+v", ln)
	}
	for _, c := range sim.Cases() {
		d := sim.Decision(c.CaseID)
		if d == nil {
			t.Errorf("case %s has no decision at the portal", c.CaseID)
			continue
		}
		if d.Decision == "refuse" && d.Reason == "" {
			t.Errorf("case %s refused without a reason", c.CaseID)
		}
		if d.Decision == "refuse" && len(sim.Payouts(c.CaseID)) > 0 {
			t.Errorf("refused case %s has a payout", c.CaseID)
		}
	}
	// The console page and the JSON, behind the console's login.
	op := srv.Console(t, "olga", accounts.RoleOperator)
	if code, body := op.Page("/console/portal/"); code != 200 || !strings.Contains(body, "免申即享") || !strings.Contains(body, "<svg") {
		t.Fatalf("console page: %d %.300s", code, body)
	}
	// The console's navigation leads to the portal's and the verification's pages.
	if code, body := op.Page("/console/"); code != 200 || !strings.Contains(body, `href="/console/portal/"`) || !strings.Contains(body, "一网通办") ||
		!strings.Contains(body, `href="/console/verification/"`) || !strings.Contains(body, "经济状况核对") {
		t.Fatalf("console navigation lacks the portal or verification page: %d", code)
	}
	if code, out := op.Do("GET", "/console/portal/stats.json?month=2026-13", nil); code != 422 || out["code"] != "validation_failed" {
		t.Fatalf("bad filter: %d %v", code, out)
	}
	// Every exchange is an event: the monitor holds the portal's flows.
	if err := srv.Hub.Monitor().Writer().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := srv.Hub.Monitor().Store().Search(ctx, monitor.Filter{Partner: portal.PartnerMianshen, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	flows := map[string]bool{}
	for _, e := range evs {
		flows[e.Flow] = true
	}
	for _, f := range []string{portal.FlowPush, portal.FlowCases, portal.FlowConfirm, portal.FlowPayout} {
		if !flows[f] {
			t.Errorf("no %s event in the monitor (flows %v)", f, flows)
		}
	}
}

// paidOf counts the payouts reported for an item: the elderly allowance's
// from the reconciled bank returns, the disability subsidy's from its paid
// file.
func paidOf(st portal.Stats, item string) int64 {
	var n int64
	for _, m := range st.Mianshen {
		if m.Item == item {
			n += m.Paid
		}
	}
	return n
}

// settled: nothing left to send or in doubt.
func settled(st portal.Stats) bool {
	for _, o := range st.Outbox {
		if o.State != "delivered" && o.State != "failed" {
			return false
		}
	}
	return true
}

// TestPortalServe runs the portal family as serve does (no demo): the
// configured portal (a simulator on loopback, with faults), the signing key
// from the key provider. Wrong records are refused with their reasons and
// never applied; a portal that answers after applying but with a 500 is
// re-checked, not sent to again.
func TestPortalServe(t *testing.T) {
	ctx := context.Background()
	secret := keys.Random(keys.MACKeySize)
	sim, err := joblibsim.Start(joblibsim.Options{KeyID: "bureau-01", Secret: secret, Dept: "SHMZJ", ConsentPercent: 100, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	configure := func(c *config.Config) {
		pc := portal.DefaultConfig()
		pc.Enabled, pc.Every = true, time.Hour
		pc.JobLib.BaseURL, pc.JobLib.KeyID = sim.URL(), "bureau-01"
		pc.Mianshen.BaseURL, pc.Mianshen.KeyID = sim.URL(), "bureau-01"
		if err := config.SetSection(c, portal.ConfigKey, pc); err != nil {
			t.Fatal(err)
		}
	}
	// Enabled without the key: the hub does not start, and says which key.
	dir := t.TempDir()
	cfg, _, err := hub.DemoConfig(dir, "127.0.0.1:0", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	configure(&cfg)
	if _, err := hub.Build(ctx, cfg, hub.NewLogger(io.Discard, "error", "text"), hub.Options{}); err == nil || !strings.Contains(err.Error(), hub.PortalKeyName) {
		t.Fatalf("build without the portal key: %v", err)
	}

	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		configure(c)
		if err := keys.NewFile(c.Security.KeyDir).Put(ctx, hub.PortalKeyName, secret); err != nil {
			t.Fatal(err)
		}
	}})
	svc := srv.Hub.Portal()
	if svc == nil || srv.Hub.PortalSim() != nil {
		t.Fatal("serve wired no portal, or a simulator")
	}
	ids := sim.AddApplications(20)
	sim.SetFaults(joblibsim.Faults{WrongRecords: 2, FailAfterApply: 1})
	round := func() {
		done := svc.RoundDone()
		svc.Kick()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("no round")
		}
	}
	// The portal route pulls the applications (every 10s, configs/routes);
	// the first nodes call is applied but answered 500: in doubt at the
	// route, settled by the portal's query, not sent again.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(time.Minute)
		for !cond() {
			select {
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			default:
			}
			round()
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("the applications taken and their nodes delivered", func() bool {
		st, err := svc.Stats(ctx, portal.StatsFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if len(sim.Nodes(id)) == 0 {
				return false
			}
		}
		return settled(st) && st.Refused == 2
	})
	for _, id := range ids {
		if len(sim.Nodes(id)) == 0 {
			t.Fatalf("%s: no node at the portal", id)
		}
	}
	if d := sim.Duplicates.Load(); d != 0 {
		t.Fatalf("%d items sent twice", d)
	}
	op := srv.Console(t, "pete", accounts.RoleAuditor)
	if code, out := op.Do("GET", "/console/portal/refused.json", nil); code != 200 || len(out["refused"].([]any)) != 2 {
		t.Fatalf("refused.json: %d %v", code, out)
	}

	// The portal refuses a node: it waits on the console, inside the
	// console's layout, for an operator to retry or skip it.
	late := sim.AddApplications(1)[0]
	sim.SetFaults(joblibsim.Faults{RefuseNodes: 1})
	refused := func() []portal.RefusedRow {
		rows, err := svc.RefusedRows(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	waitUntil("the refused node", func() bool { return len(refused()) > 0 })
	if rows := refused(); len(rows) != 1 || rows[0].Key != late {
		t.Fatalf("refused rows: %+v", rows)
	}
	if code, body := op.Page("/console/portal/"); code != 200 || !strings.Contains(body, `href="/console/"`) || !strings.Contains(body, "被拒发送") ||
		strings.Contains(body, `/retry"`) {
		t.Fatalf("auditor's page (in the layout, the refused send listed, no action): %d %.300s", code, body)
	}
	if code, _, _ := op.Form("/console/portal/outbox/1/retry", url.Values{}); code != 403 {
		t.Fatalf("an auditor's retry: %d", code)
	}
	olga := srv.Console(t, "olga", accounts.RoleOperator)
	code, body := olga.Page("/console/portal/?lang=en")
	action := regexp.MustCompile(`action="(outbox/\d+/retry)"[^>]*><input type="hidden" name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || action == nil || !strings.Contains(body, "Sends refused by the portal") {
		t.Fatalf("operator's page in English with the retry action: %d %.300s", code, body)
	}
	if code, _, _ := olga.Form("/console/portal/"+action[1], url.Values{}); code != 403 {
		t.Fatalf("a retry without the CSRF token: %d", code)
	}
	if code, _, loc := olga.Form("/console/portal/"+action[1], url.Values{"csrf_token": {action[2]}}); code != http.StatusSeeOther || loc == "" {
		t.Fatalf("retry: %d %q", code, loc)
	}
	waitUntil("the retried node at the portal", func() bool { return len(sim.Nodes(late)) > 0 })
	if rows := refused(); len(rows) != 0 {
		t.Fatalf("refused rows after the retry: %+v", rows)
	}
}

// TestPortalRoutesUseTheHubClient: a route naming `partner: portal` takes
// the client the hub built from its portal configuration (the address and
// the signing key from the key provider; no base_url or key in the route
// file) and pulls the portal's applications with it.
func TestPortalRoutesUseTheHubClient(t *testing.T) {
	ctx := context.Background()
	secret := keys.Random(keys.MACKeySize)
	sim, err := joblibsim.Start(joblibsim.Options{KeyID: "bureau-02", Secret: secret, Dept: "SHMZJ", Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	sim.AddApplications(7)
	route := `id: portal-probe
description: applications pulled with the hub's portal client
partner: portal.joblib
flow: case-pull
from:
  kind: joblib
  config:
    partner: portal
    feed: applications
    cursor: probe
    page_size: 3
    every: 100ms
to:
  - kind: bus
    config: {topic: portal.probe}
`
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		pc := portal.DefaultConfig()
		pc.Enabled, pc.Every = true, time.Hour
		pc.JobLib.BaseURL, pc.JobLib.KeyID = sim.URL(), "bureau-02"
		pc.Mianshen.BaseURL, pc.Mianshen.KeyID = sim.URL(), "bureau-02"
		if err := config.SetSection(c, portal.ConfigKey, pc); err != nil {
			t.Fatal(err)
		}
		if err := keys.NewFile(c.Security.KeyDir).Put(ctx, hub.PortalKeyName, secret); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.Paths.Routes, "portal-probe.yaml"), []byte(route), 0o600); err != nil {
			t.Fatal(err)
		}
	}})
	db := srv.Hub.Store()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var cursor string
		err := db.QueryRowContext(ctx, db.Rebind(`SELECT value FROM joblib_cursors WHERE name = ?`), "probe").Scan(&cursor)
		if err == nil && cursor != "" {
			// The cursor moves only after a page the portal answered (a
			// signed call with the hub's key) is on the bus.
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the route pulled nothing with the hub's client (cursor %q, %v)", cursor, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPortalOffRoutesNotStarted: with the portal section off (serve's
// default), the shipped portal routes (partner: portal) are loaded but not
// started — they would only fail against nothing, retrying forever — and
// the console's portal page says so and names them; the other routes run.
func TestPortalOffRoutesNotStarted(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{})
	if srv.Hub.Portal() != nil {
		t.Fatal("the portal service runs with the portal off")
	}
	eng := srv.Hub.Routes()
	// The engine starts (or holds back) the routes once it runs.
	deadline := time.Now().Add(30 * time.Second)
	for len(eng.Routes()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	skipped := eng.Skipped()
	// The shipped configuration has no portal, data sea API or card
	// center: their routes are held back, each with its reason.
	want := map[string]string{}
	for _, id := range []string{"portal-applications", "portal-cases", "portal-nodes", "portal-push", "portal-confirm", "portal-payout"} {
		want[id] = hub.PortalOffReason
	}
	for _, id := range []string{"datasea-death", "datasea-migration"} {
		want[id] = hub.DataseaOffReason
	}
	want["datasea-files"] = hub.DataseaFilesOffReason
	for _, id := range []string{"cardcenter-applications", "cardcenter-progress"} {
		want[id] = hub.CardcenterOffReason
	}
	for id, why := range want {
		if skipped[id] != why {
			t.Errorf("route %s: skipped %q, want %q", id, skipped[id], why)
		}
	}
	if len(skipped) != len(want) {
		t.Errorf("skipped routes: %v", skipped)
	}
	running := strings.Join(eng.Routes(), " ")
	if strings.Contains(running, "portal-") || !strings.Contains(running, "verification-hrss") {
		t.Errorf("running routes: %s", running)
	}
	op := srv.Console(t, "pete", accounts.RoleAuditor)
	code, body := op.Page("/console/portal/")
	if code != 200 || !strings.Contains(body, "一网通办：未启用") || !strings.Contains(body, "portal-nodes") || !strings.Contains(body, `href="/console/"`) {
		t.Fatalf("the console's portal page with the portal off: %d %.400s", code, body)
	}
	if code, _ := op.Page("/console/portal/stats.json"); code != http.StatusServiceUnavailable {
		t.Fatalf("stats.json with the portal off: %d", code)
	}
}
