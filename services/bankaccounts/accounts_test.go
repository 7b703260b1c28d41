package bankaccounts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type events struct {
	ch chan monitor.Event
}

func (e *events) Emit(ev monitor.Event) {
	select {
	case e.ch <- ev:
	default:
	}
}

type env struct {
	svc  *Service
	sims map[string]*banksim.Bank
	db   *store.DB
	ev   *events
}

// start runs the simulated BOC and CCB and the service over them.
func start(t *testing.T, db *store.DB, dir string) *env {
	t.Helper()
	ctx := context.Background()
	mroot, err := banksim.FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := banksim.ShippedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	if db == nil {
		db = storetest.Open(t)
	}
	if err := sftp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key of the tests"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sims: map[string]*banksim.Bank{}, db: db, ev: &events{ch: make(chan monitor.Event, 1000)}}
	var banks []*bank.Bank
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 0
	for _, c := range cfgs {
		if c.Code != "boc" && c.Code != "ccb" {
			continue
		}
		sim, err := banksim.Start(ctx, filepath.Join(dir, "sim"), c, os.DirFS(mroot), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sim.Close() })
		e.sims[c.Code] = sim
		files, err := bank.LoadFileSet(os.DirFS(mroot), sim.Config.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bank.New(sim.Config, files, connectors.Deps{Store: db, DataDir: filepath.Join(dir, "hub")}, "disbursement", sftp.Keys{})
		if err != nil {
			t.Fatal(err)
		}
		banks = append(banks, b)
	}
	e.svc, err = New(ctx, Options{DB: db, Fields: ring, Banks: banks, Dir: filepath.Join(dir, "work"),
		Deps: connectors.Deps{DataDir: filepath.Join(dir, "hub"), Events: e.ev}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.svc.Close(context.Background()) })
	return e
}

// settle makes passes until no request waits for its result, each after a
// whole pass of the banks (they have then answered every file sent).
func (e *env) settle(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := e.svc.Pass(ctx); err != nil {
			t.Logf("pass: %v", err)
		}
		var open int
		if err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM acct_requests WHERE status IN ('queued', 'filed', 'sent')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still open", open)
		}
		for _, s := range e.sims {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := s.Scanned(wctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func (e *env) state(t *testing.T, id, code string) (state, reason, acct string) {
	t.Helper()
	err := e.db.QueryRowContext(context.Background(), e.db.Rebind(`SELECT state, reason, account_masked FROM acct_state WHERE person = ? AND bank = ?`),
		e.svc.PersonKey(id), code).Scan(&state, &reason, &acct)
	if err != nil {
		t.Fatalf("state of %s at %s: %v", id[:6], code, err)
	}
	return
}

// sealedAccount opens the account the state holds.
func (e *env) account(t *testing.T, id, code string) string {
	t.Helper()
	var sealed string
	if err := e.db.QueryRowContext(context.Background(), e.db.Rebind(`SELECT account_sealed FROM acct_state WHERE person = ? AND bank = ?`),
		e.svc.PersonKey(id), code).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	a, err := e.svc.fields.Decrypt(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const listHeader = "person_id,name,account,bank,division,amount_fen,standard,last_paid_month,termination_month"

func (e *env) screen(t *testing.T, lines []string) (kept []string, report string) {
	t.Helper()
	var out, rep bytes.Buffer
	in := listHeader + "\n" + strings.Join(lines, "\n") + "\n"
	k, ex, _, err := e.svc.Screen(context.Background(), "2026-12", strings.NewReader(in), &out, &rep)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")[1:]
	if int(k) != len(got) || int(k+ex) != len(lines) {
		t.Fatalf("kept %d excluded %d of %d; list has %d lines", k, ex, len(lines), len(got))
	}
	return got, rep.String()
}

// TestLifecycleDrivesPayment: openings (one refused for a name mismatch),
// activation, loss report, release and closure through the simulated
// banks' SFTP; the allowance list screening follows each state.
func TestLifecycleDrivesPayment(t *testing.T) {
	e := start(t, nil, t.TempDir())
	ctx := context.Background()
	g := synth.New(5)
	var ps []synth.Person
	for range 4 {
		ps = append(ps, g.Next())
	}
	e.sims["boc"].FailPerson(ps[3].ID, bank.OutcomeMismatch)
	var open []Request
	for i, p := range ps {
		code := "boc"
		if i == 2 {
			code = "ccb"
		}
		open = append(open, Request{ExtID: fmt.Sprintf("open-%d", i), Bank: code, Op: bank.OpOpen, PersonID: p.ID, Name: p.Name, Division: p.Division})
	}
	if n, err := e.svc.Submit(ctx, open); err != nil || n != 4 {
		t.Fatalf("submit: %d, %v", n, err)
	}
	if n, err := e.svc.Submit(ctx, open[:2]); err != nil || n != 0 {
		t.Fatalf("resubmit stored %d (%v), want 0", n, err)
	}
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "x", Bank: "boc", Op: bank.OpLoss, PersonID: "310101194803120429", Name: "张"}}); err == nil ||
		!strings.Contains(err.Error(), "account missing") || strings.Contains(err.Error(), "194803120429") {
		t.Fatalf("bad request: %v", err)
	}
	e.settle(t)
	for i, code := range []string{"boc", "boc", "ccb"} {
		if st, _, acct := e.state(t, ps[i].ID, code); st != StateOpened || !strings.HasPrefix(acct, "*") && !strings.Contains(acct, "*") {
			t.Fatalf("person %d: state %q account %q", i, st, acct)
		}
	}
	st, reason, _ := e.state(t, ps[3].ID, "boc")
	if st != StateOpenFailed || !strings.Contains(reason, "开户失败") || !strings.Contains(reason, "户名") {
		t.Fatalf("mismatch: state %q reason %q", st, reason)
	}
	accts := []string{e.account(t, ps[0].ID, "boc"), e.account(t, ps[1].ID, "boc"), e.account(t, ps[2].ID, "ccb")}
	line := func(i int, acct, code string) string {
		return fmt.Sprintf("%s,%s,%s,%s,%s,75000,A65,2026-11,", ps[i].ID, ps[i].Name, acct, code, ps[i].Division)
	}
	list := []string{line(0, accts[0], "boc"), line(1, accts[1], "boc"), line(2, accts[2], "ccb"), line(3, "6216610000123456780", "boc")}
	kept, rep := e.screen(t, list)
	if len(kept) != 3 || !strings.Contains(rep, "开户失败") || strings.Contains(rep, ps[3].ID) {
		t.Fatalf("after openings: kept %d, report %q", len(kept), rep)
	}

	// 激活 all, 挂失 the first: suspended; the second closed: stopped.
	var reqs []Request
	for i := range 3 {
		code := "boc"
		if i == 2 {
			code = "ccb"
		}
		reqs = append(reqs, Request{ExtID: fmt.Sprintf("act-%d", i), Bank: code, Op: bank.OpActivate, PersonID: ps[i].ID, Name: ps[i].Name, Account: accts[i]})
	}
	reqs = append(reqs, Request{ExtID: "loss-0", Bank: "boc", Op: bank.OpLoss, PersonID: ps[0].ID, Name: ps[0].Name, Account: accts[0]})
	if _, err := e.svc.Submit(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "close-1", Bank: "boc", Op: bank.OpClose, PersonID: ps[1].ID, Name: ps[1].Name, Account: accts[1]}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	if st, _, _ := e.state(t, ps[0].ID, "boc"); st != StateLost {
		t.Fatalf("after loss: %q", st)
	}
	kept, rep = e.screen(t, list)
	if len(kept) != 1 || !strings.HasPrefix(kept[0], ps[2].ID) || !strings.Contains(rep, "挂失") || !strings.Contains(rep, "注销") {
		t.Fatalf("after loss and closure: kept %q, report %q", kept, rep)
	}
	// Another account of the person who lost a card is still paid.
	if kept, _ := e.screen(t, []string{line(0, "6222620010002345679", "boc")}); len(kept) != 1 {
		t.Fatal("another account of a person with a lost card was left out")
	}

	// 解挂失 restores the payment.
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "unfreeze-0", Bank: "boc", Op: bank.OpUnfreeze, PersonID: ps[0].ID, Name: ps[0].Name, Account: accts[0]}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	kept, _ = e.screen(t, list)
	if len(kept) != 2 {
		st, reason, _ := e.state(t, ps[0].ID, "boc")
		var outcome, why string
		_ = e.db.QueryRowContext(ctx, `SELECT outcome, reason FROM acct_requests WHERE ext_id = 'unfreeze-0'`).Scan(&outcome, &why)
		t.Fatalf("after release: kept %d; state %q %q; request %q %q", len(kept), st, reason, outcome, why)
	}

	// The fixed person is opened on retry, and paid.
	e.sims["boc"].FailPerson(ps[3].ID, "")
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "open-3-retry", Bank: "boc", Op: bank.OpOpen, PersonID: ps[3].ID, Name: ps[3].Name}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	if st, _, _ := e.state(t, ps[3].ID, "boc"); st != StateOpened {
		t.Fatalf("retried opening: %q", st)
	}
	if kept, _ = e.screen(t, list); len(kept) != 3 {
		t.Fatalf("after the retried opening: kept %d", len(kept))
	}

	// Events: each operation's flow, results reconciled, nothing whole.
	flows := map[string]bool{}
	close(e.ev.ch)
	for ev := range e.ev.ch {
		flows[ev.Flow] = true
		for _, p := range ps {
			if strings.Contains(fmt.Sprint(ev), p.ID) {
				t.Fatalf("event carries a whole ID number: %+v", ev)
			}
		}
		for _, a := range accts {
			if strings.Contains(fmt.Sprint(ev), a) {
				t.Fatalf("event carries a whole account: %+v", ev)
			}
		}
	}
	for _, f := range []string{"account-open", "account-activate", "loss-report", "loss-unfreeze", "account-cancel"} {
		if !flows[f] {
			t.Errorf("no event of flow %s", f)
		}
	}
}

// TestResultFileTwice: a result file applied twice, or again under another
// name, changes nothing the second time.
func TestResultFileTwice(t *testing.T) {
	e := start(t, nil, t.TempDir())
	ctx := context.Background()
	g := synth.New(9)
	var rs []Request
	for i := range 6 {
		p := g.Next()
		rs = append(rs, Request{ExtID: fmt.Sprint("v", i), Bank: "boc", Op: bank.OpVerify, PersonID: p.ID, Name: p.Name, Account: p.Account})
		if i == 2 {
			e.sims["boc"].FailPerson(p.ID, bank.OutcomeIDInvalid)
		}
	}
	if _, err := e.svc.Submit(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// Send, and take the bank's result file ourselves. The bank holds its
	// answer until the pass is over: the pass also polls for results, and
	// on a loaded machine it would find and apply the file first.
	sim := e.sims["boc"]
	sim.HoldTaking.Store(true)
	if err := e.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	sim.HoldTaking.Store(false)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var data []byte
	var name string
	for data == nil {
		if err := sim.Scanned(wctx); err != nil {
			t.Fatal(err)
		}
		ms, _ := filepath.Glob(filepath.Join(sim.Root(), "download", "BOC_HC_*_RET.txt"))
		if len(ms) == 1 {
			name = filepath.Base(ms[0])
			var err error
			if data, err = os.ReadFile(ms[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	snapshot := func() string {
		var sb strings.Builder
		for _, q := range []string{`SELECT ref, status, outcome, reason, updated_ms FROM acct_requests ORDER BY ref`,
			`SELECT person, state, reason, last_ref, updated_ms FROM acct_state ORDER BY person`} {
			rows, err := e.db.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var a, b, c, d string
				var ms int64
				if err := rows.Scan(&a, &b, &c, &d, &ms); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintln(&sb, a, b, c, d, ms)
			}
			rows.Close()
		}
		return sb.String()
	}
	a1, err := e.svc.ApplyResults(ctx, "boc", name, "d1", data)
	if err != nil || a1.OK != 5 || a1.Failed != 1 || a1.AlreadyApplied {
		t.Fatalf("first: %+v %v", a1, err)
	}
	before := snapshot()
	a2, err := e.svc.ApplyResults(ctx, "boc", name, "d1", data)
	if err != nil || !a2.AlreadyApplied {
		t.Fatalf("second: %+v %v", a2, err)
	}
	a3, err := e.svc.ApplyResults(ctx, "boc", "BOC_HC_2026120299_RET.txt", "d1", data)
	if err != nil || a3.Seen != 6 || a3.OK+a3.Failed != 0 {
		t.Fatalf("under another name: %+v %v", a3, err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
	// The hub's own poll takes the same file from the bank: nothing changes either.
	e.settle(t)
	if after := snapshot(); after != before {
		t.Fatalf("state changed by the poll:\n%s\n%s", before, after)
	}
	// A cut file is refused whole and changes nothing.
	cut := data[:bytes.LastIndexByte(data[:len(data)/2], '\n')+1]
	if _, err := e.svc.ApplyResults(ctx, "boc", "BOC_HC_2026120298_RET.txt", "d2", cut); err == nil {
		t.Fatal("a cut result file was applied")
	}
}
