package hub_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// TestDataseaMonth runs the data sea family in the whole hub as serve
// runs it: the shipped routes datasea-death and datasea-migration (their
// daily pull due now, expected in the monitor by due_by) take a day of
// deaths and moves from the simulated platform onto datasea.records, where
// the allowance service applies them, the month's allowance batch leaves the dead and
// moved out out of every bank file, the console page shows it all behind
// the account guard, and once the batch is done the recipients list is
// pushed into the sea with its receipt recorded.
func TestDataseaMonth(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const seed, persons, period = 7, 600, "2026-10"
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	recs := dataseasim.Generate(40, seed, "2026-09-20", persons/40)
	sim.Add(recs...)
	sim.AddRaw("death", `{"record_id":"BAD1","type":"death","id_number":"310101190001011231","event_date":"2026-09-01","district":"310101"}`)

	// The card center: applications (one after a 迁出 of the day's
	// records), and one person's card lost.
	cc := cardcentersim.New()
	if err := cc.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	apps := cardcentersim.Generate(20, seed, "2026-09-25", persons/20)
	cc.AddApplications(apps...)
	var mover datasea.Record
	for _, r := range recs {
		if r.Kind == datasea.MoveOut {
			mover = r
			break
		}
	}
	cc.AddApplications(cardcenter.Application{ID: "A-MOVER", IDNumber: mover.IDNumber, Name: mover.Name, CardType: cardcenter.SocialSecurityCard,
		Channel: "sscard", Yikatong: true, AppliedOn: "2026-09-25", District: mover.District, BankCode: "104", Account: "6216610000333344445"},
		// A bank-type code the dictionary lacks: quarantined with its reason.
		cardcenter.Application{ID: "A-NOBANK", IDNumber: mover.IDNumber, Name: mover.Name, CardType: cardcenter.SocialSecurityCard,
			Channel: "sscard", Yikatong: true, AppliedOn: "2026-09-26", District: mover.District, BankCode: "999", Account: "6216610000333344446"})
	// 一卡通 holders are paid to their card: its bank (by the card center's
	// bank-type code) and account.
	cardOf := map[string]cardcenter.Application{}
	for _, a := range apps {
		if a.Yikatong {
			cardOf[a.IDNumber] = a
		}
	}
	if len(cardOf) == 0 {
		t.Fatal("the generator made no 一卡通 applications")
	}
	cc.AddProgress(cardcenter.Progress{ID: apps[0].ID, Stage: "produced", At: "2026-09-28T10:00:00+08:00"})
	lostCard := dataseasim.Persons(seed, persons)[persons-1]
	cc.SetStatus(lostCard.ID, cardcenter.StatusLost)

	sims := hubtest.StartBanks(t, filepath.Join(dir, "banks"), "../configs/mappings")
	srv := hubtest.Start(t, hubtest.Options{Dir: filepath.Join(dir, "hub"), Hub: hub.Options{Banks: hubtest.BankConfigs(sims)},
		Configure: func(c *config.Config) {
			dc := datasea.DefaultConfig()
			dc.URL, dc.PullAt, dc.DueBy = sim.URL(), "00:00", "23:59"
			// A pull failed on a busy store (under -race) is tried again in
			// a second, not the shipped ten minutes, within the test's waits.
			dc.RetryEvery = time.Second
			c.Monitor.CheckInterval = 100 * time.Millisecond
			if err := config.SetSection(c, datasea.ConfigKey, dc); err != nil {
				t.Fatal(err)
			}
			ccfg := cardcenter.DefaultConfig()
			ccfg.URL = cc.URL()
			if err := config.SetSection(c, cardcenter.ConfigKey, ccfg); err != nil {
				t.Fatal(err)
			}
		}})

	// The pull's events reach the monitor store.
	late := time.After(30 * time.Second)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		evs, err := srv.Hub.Monitor().Store().Search(ctx, monitor.Filter{Partner: datasea.Partner, Type: monitor.Fetched})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) >= 2 {
			break
		}
		select {
		case <-stored:
		case <-late:
			t.Fatalf("no pull reached the monitor: %d events", len(evs))
		}
	}
	// The routes pulled, and their pulls met the day's expectations.
	for _, id := range []string{"datasea-death", "datasea-migration"} {
		if !slices.Contains(srv.Hub.Routes().Routes(), id) {
			t.Fatalf("route %s not running: %v", id, srv.Hub.Routes().Routes())
		}
	}
	for _, name := range []string{datasea.ExpectationName, datasea.ExpectationFor("migration")} {
		waitExpectation(t, srv, name, monitor.ExpectMet)
	}
	waitCardApplications(t, srv, len(apps)+1, 1) // applied through the cardcenter routes before the month's list
	stopped := map[string]bool{lostCard.ID: true}
	for _, r := range recs {
		if r.Kind != datasea.MoveIn {
			stopped[r.IDNumber] = true
		}
	}

	// The month: list, letter total, two confirmations.
	svc := srv.Hub.Disbursement()
	list := filepath.Join(dir, "list.csv")
	f, err := os.Create(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := disbursement.WriteList(f, disbursement.GenerateOptions{Persons: persons, Seed: seed, Period: period}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if _, err := svc.Submit(ctx, disbursement.Request{Period: period, ListFile: list, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	b := waitBatch(t, srv, period, disbursement.BatchAwaitingLetter)
	if b.Records != int64(persons-len(stopped)) {
		t.Fatalf("%d records in the batch, want %d", b.Records, persons-len(stopped))
	}
	next := sim.NextPush()
	if _, err := svc.Submit(ctx, disbursement.Request{Period: period, LetterTotal: b.SystemTotal, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	waitBatch(t, srv, period, disbursement.BatchAwaiting)
	if err := svc.Confirm(ctx, bank.Disbursement, period, "district", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Confirm(ctx, bank.Disbursement, period, "city", "bob"); err != nil {
		t.Fatal(err)
	}
	waitBatch(t, srv, period, disbursement.BatchDone)
	// The bank files as the banks took them (the hub removes its copies
	// when the batch closes).
	var files strings.Builder
	byBank := map[string]string{}
	for _, s := range sims {
		taken := filepath.Join(s.Root(), filepath.FromSlash(s.Config.SFTP.UploadDir), "taken")
		ents, err := os.ReadDir(taken)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(taken, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files.Write(data)
			byBank[s.Config.Code] += string(data)
		}
	}
	cnaps := map[string]string{} // the card center's bank-type code → bank
	for _, s := range sims {
		cnaps[s.Config.BankCode] = s.Config.Code
	}
	routed := 0
	for _, p := range dataseasim.Persons(seed, persons) {
		card, yk := cardOf[p.ID]
		if !yk || stopped[p.ID] {
			if in := strings.Contains(files.String(), p.Account); in == stopped[p.ID] {
				t.Errorf("person (account …%s, stopped %v) in the bank files: %v", p.Account[len(p.Account)-4:], stopped[p.ID], in)
			}
			continue
		}
		// Paid once, to the card, in the file of the card's bank only.
		routed++
		for code, data := range byBank {
			if n := strings.Count(data, card.Account); n != map[bool]int{true: 1}[code == cnaps[card.BankCode]] {
				t.Errorf("一卡通 card …%s of bank %s: %d times in %s's file", card.Account[15:], card.BankCode, n, code)
			}
		}
		if strings.Contains(files.String(), p.Account) {
			t.Errorf("一卡通 holder paid to the list's account …%s too", p.Account[len(p.Account)-4:])
		}
	}
	if routed == 0 {
		t.Fatal("no 一卡通 holder on the list")
	}

	// 入海: the finished batch is pushed, masked and counted, its receipt kept.
	select {
	case <-next:
	case <-time.After(30 * time.Second):
		t.Fatal("the recipients list was not pushed")
	}
	body, _ := sim.Pushed(period)
	if body.Count != int(b.Records) || body.Signature == "" || strings.Contains(string(body.Records), dataseasim.Persons(seed, 1)[0].ID) {
		t.Fatalf("pushed %d records (want %d), signature %q", body.Count, b.Records, body.Signature)
	}

	// The console page, behind the guard; operators act, auditors read.
	op := srv.Console(t, "olga", accounts.RoleOperator)

	// The overview's card-center cells (申领, 制卡) light from the pull's
	// events.
	late = time.After(30 * time.Second)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		evs, err := srv.Hub.Monitor().Store().Search(ctx, monitor.Filter{Partner: cardcenter.Partner, Flow: "card-production"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			break
		}
		select {
		case <-stored:
		case <-late:
			t.Fatal("no card production event reached the monitor")
		}
	}
	_, overview := op.Page("/console/")
	for _, cell := range []string{`data-partner="cardcenter" data-op="apply" data-band="green"`, `data-partner="cardcenter" data-op="produce" data-band="green"`} {
		if !strings.Contains(overview, cell) {
			t.Errorf("overview: no %s", cell)
		}
	}
	aud := srv.Console(t, "carl", accounts.RoleAuditor)
	code, page := op.Page("/console/datasea/")
	if code != 200 || !strings.Contains(page, "数据海") || !strings.Contains(page, "BAD1") || !strings.Contains(page, "A-MOVER") ||
		!strings.Contains(page, "A-NOBANK") || !strings.Contains(page, `bank_code &#34;999&#34; is not in the card center&#39;s bank-type dictionary`) ||
		!strings.Contains(page, allowance.WarnAppliedAfterMoveOut) {
		t.Fatalf("page: %d\n%s", code, page)
	}
	for _, p := range dataseasim.Persons(seed, persons) {
		if strings.Contains(page, p.ID) {
			t.Fatal("the page shows a whole ID number")
		}
	}
	var dead datasea.Record
	for _, r := range recs {
		if r.Kind == datasea.Death {
			dead = r
			break
		}
	}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no form on the operator's page")
	}
	if code, _, _ := aud.Form("/console/datasea/confirm-alive", url.Values{"id_number": {dead.IDNumber}, "csrf_token": {csrf[1]}}); code != 403 {
		t.Fatalf("auditor confirmed a person: %d", code)
	}
	if code, _, loc := op.Form("/console/datasea/confirm-alive", url.Values{"id_number": {dead.IDNumber}, "note": {"seen"}, "csrf_token": {csrf[1]}}); code != 303 {
		t.Fatalf("confirm alive: %d %s", code, loc)
	}
	// The on-demand card-status query: CSRF-checked, operators only, the
	// answer shown inside the console's layout, masked.
	if code, _, _ := op.Form("/console/datasea/card-status", url.Values{"id_number": {lostCard.ID}}); code != 403 {
		t.Fatalf("card status without the CSRF token: %d", code)
	}
	if code, _, _ := aud.Form("/console/datasea/card-status", url.Values{"id_number": {lostCard.ID}, "csrf_token": {csrf[1]}}); code != 403 {
		t.Fatalf("auditor asked a card status: %d", code)
	}
	if code, body, _ := op.Form("/console/datasea/card-status", url.Values{"id_number": {lostCard.ID}, "csrf_token": {csrf[1]}}); code != 200 ||
		!strings.Contains(body, "挂失 · lost") || !strings.Contains(body, "卡状态查询结果") || strings.Contains(body, lostCard.ID) {
		t.Fatalf("card status: %d\n%s", code, body)
	}
	if code, body := op.Page("/console/datasea/report.csv"); code != 200 || !strings.Contains(body, "backpay") {
		t.Fatalf("report: %d\n%s", code, body)
	}
}

// waitExpectation waits until the first expectation name (today's; a
// successful pull registers tomorrow's) is in state.
func waitExpectation(t *testing.T, srv *hubtest.Server, name string, state monitor.ExpectationState) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got string
		err := srv.Hub.Store().QueryRow(srv.Hub.Store().Rebind(`SELECT state FROM monitor_expectations WHERE name = ? ORDER BY due_ms LIMIT 1`), name).Scan(&got)
		if err == nil && got == string(state) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expectation %s: %q (%v), want %s", name, got, err, state)
		}
		time.Sleep(50 * time.Millisecond) // the tracker checks every 100ms and signals nothing
	}
}

// lockedBuffer is a log sink safe for the hub's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDataseaRoutesWithoutURL: a hub served without datasea.url (the
// shipped profile) does not start the datasea routes, says why once in its
// log, and retries nothing; the other routes and the hub run.
func TestDataseaRoutesWithoutURL(t *testing.T) {
	var log lockedBuffer
	srv := hubtest.Start(t, hubtest.Options{Log: &log})
	// The engine starts its routes once it runs, and logs those it could
	// not start after: wait for both lines.
	notStarted := func(id string) []string {
		var lines []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "route not started") && strings.Contains(l, "route="+id+" ") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	for deadline := time.Now().Add(30 * time.Second); (len(notStarted("datasea-migration")) == 0 || len(notStarted("datasea-files")) == 0) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // the engine signals nothing when its routes are up
	}
	running := srv.Hub.Routes().Routes()
	if slices.Contains(running, "datasea-death") || slices.Contains(running, "datasea-migration") || slices.Contains(running, "datasea-files") {
		t.Fatalf("datasea routes running without datasea.url: %v", running)
	}
	if !slices.Contains(running, "verification-ministry-inbound") {
		t.Fatalf("the other shipped routes are not running: %v", running)
	}
	for _, id := range []string{"datasea-death", "datasea-migration"} {
		if lines := notStarted(id); len(lines) != 1 || !strings.Contains(lines[0], "datasea.url is unset") {
			t.Fatalf("route %s: want one log line saying datasea.url is unset, got %q", id, lines)
		}
	}
	if lines := notStarted("datasea-files"); len(lines) != 1 || !strings.Contains(lines[0], "datasea.sftp is unset") {
		t.Fatalf("route datasea-files: want one log line saying datasea.sftp is unset, got %q", lines)
	}
}

// TestDataseaDemo: the demo runs the same shipped routes against its
// simulated platform (the simulator's URL reaches them as datasea.url
// does); the day's records are applied before the demo's cycle cuts its
// list, and that cycle's batch leaves the persons stopped out.
func TestDataseaDemo(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Hub: hub.Options{Demo: true}})
	ctx := context.Background()
	period := time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01")
	late := time.After(2 * time.Minute)
	for {
		changed := srv.Hub.Disbursement().Changed()
		b, err := srv.Hub.Disbursement().Batch(ctx, bank.Disbursement, period)
		if err == nil && b.Records > 0 {
			break
		}
		select {
		case <-changed:
		case <-late:
			t.Fatalf("the demo's batch was not cut: %+v %v", b, err)
		}
	}
	var applied int
	sim := srv.Hub.DataseaSim()
	want := sim.Len("death") + sim.Len("migration") + sim.Dropped()
	if err := srv.Hub.Store().QueryRow(`SELECT COUNT(*) FROM allow_records`).Scan(&applied); err != nil || applied != want || sim.Dropped() == 0 {
		t.Fatalf("%d of the demo's %d data sea records (%d of them in batch files) applied when its list was cut (%v)", applied, want, sim.Dropped(), err)
	}
	var fromFiles int
	if err := srv.Hub.Store().QueryRow(`SELECT COUNT(*) FROM allow_records WHERE source = 'sftp'`).Scan(&fromFiles); err != nil || fromFiles != sim.Dropped() {
		t.Fatalf("%d records applied from the demo's batch files, want %d (%v)", fromFiles, sim.Dropped(), err)
	}
	// The demo's malformed line is quarantined with its file and line, never applied.
	var ref string
	if err := srv.Hub.Store().QueryRow(`SELECT ref FROM allow_quarantine WHERE source = 'sftp'`).Scan(&ref); err != nil ||
		!strings.HasPrefix(ref, "DEATH_") || !strings.Contains(ref, ".txt line ") {
		t.Fatalf("the demo's malformed line: quarantined as %q (%v)", ref, err)
	}
	running := srv.Hub.Routes().Routes()
	if !slices.Contains(running, "datasea-death") || !slices.Contains(running, "datasea-migration") || !slices.Contains(running, "datasea-files") {
		t.Fatalf("the demo does not run the datasea routes: %v", running)
	}
}

// TestDataseaFilesWithoutURL: a hub served with datasea.sftp and no
// datasea.url runs the shipped files route against the drop and holds the
// API's routes back: the day's good lines are applied from sftp, the bad
// line quarantined with its file and line, and the routes' list says why
// the others do not run.
func TestDataseaFilesWithoutURL(t *testing.T) {
	sim := dataseasim.New()
	if err := sim.StartDrop(filepath.Join(t.TempDir(), "drop")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	recs := dataseasim.Generate(20, 1, "2025-06-01", 13)
	if err := sim.DropDay("2025-06-01", recs, "X1|death|310101190001011231|王某|2025-06-01|310101|"); err != nil {
		t.Fatal(err)
	}
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		dc := datasea.DefaultConfig()
		sc := sim.DropConfig()
		dc.SFTP = &sc
		if err := config.SetSection(c, datasea.ConfigKey, dc); err != nil {
			t.Fatal(err)
		}
	}})
	ctx := context.Background()
	// Each apply of the consumer is followed by its events: wait on the
	// monitor's writer, then look in the state store.
	late := time.After(time.Minute)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		var applied, bad int
		if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_records WHERE source = 'sftp'`).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_quarantine WHERE source = 'sftp'`).Scan(&bad); err != nil {
			t.Fatal(err)
		}
		if applied == len(recs) && bad == 1 {
			break
		}
		select {
		case <-stored:
		case <-late:
			t.Fatalf("%d of %d records applied from the drop, %d of 1 bad lines quarantined", applied, len(recs), bad)
		}
	}
	var ref string
	if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT ref FROM allow_quarantine WHERE source = 'sftp'`).Scan(&ref); err != nil || ref != "DEATH_20250601.txt line "+strconv.Itoa(len(deathsOf(recs))+1) {
		t.Fatalf("the bad line quarantined as %q (%v)", ref, err)
	}
	if !slices.Contains(srv.Hub.Routes().Routes(), "datasea-files") {
		t.Fatalf("the files route is not running: %v", srv.Hub.Routes().Routes())
	}
	skipped := srv.Hub.Routes().Skipped()
	for _, id := range []string{"datasea-death", "datasea-migration"} {
		if skipped[id] != hub.DataseaOffReason {
			t.Errorf("route %s: skipped %q, want %q", id, skipped[id], hub.DataseaOffReason)
		}
	}
	if _, ok := skipped["datasea-files"]; ok {
		t.Errorf("the files route is listed as not started: %v", skipped)
	}
}

func deathsOf(recs []datasea.Record) []datasea.Record {
	var out []datasea.Record
	for _, r := range recs {
		if r.Kind == datasea.Death {
			out = append(out, r)
		}
	}
	return out
}
