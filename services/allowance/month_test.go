package allowance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestMonthWithDeathsAndMoves runs December's allowance cycle after a day's
// pull of deaths and moves from the simulated data sea: no dead or
// moved-out person is in any bank file, everyone else is, the person
// already paid after death has a claw-back item.
func TestMonthWithDeathsAndMoves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := storetest.Open(t)
	fc := clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai))
	al, _ := newService(t, db, fc)

	// The data sea: deaths and moves of persons of the list, one death
	// already in October (November was paid after it).
	const seed, persons, period = 21, 600, "2026-12"
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	recs := dataseasim.Generate(60, seed, "2026-11-10", 9)
	early := dataseasim.Persons(seed, persons)[1]
	recs = append(recs, datasea.Record{ID: "D-early", Kind: datasea.Death, IDNumber: early.ID, Name: early.Name, Date: "2026-10-05", District: early.Division})
	sim.Add(recs...)
	if err := datasea.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	cfg := datasea.DefaultConfig()
	cfg.URL, cfg.PageSize = sim.URL(), 25
	cfg.Client = httpx.ClientConfig{Timeout: 5 * time.Second}
	p, err := datasea.NewPuller(cfg, connectors.Deps{Store: db, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pullInto(ctx, p, al); err != nil {
		t.Fatal(err)
	}
	stopped := map[string]bool{early.Account: true}
	byID := map[string]string{}
	for _, q := range dataseasim.Persons(seed, persons) {
		byID[q.ID] = q.Account
	}
	var deaths, moves int
	for _, r := range recs {
		switch r.Kind {
		case datasea.Death:
			deaths++
			stopped[byID[r.IDNumber]] = true
		case datasea.MoveOut:
			moves++
			stopped[byID[r.IDNumber]] = true
		}
	}
	if deaths == 0 || moves == 0 {
		t.Fatalf("%d deaths, %d moves: the test needs both", deaths, moves)
	}

	// The disbursement service over the six simulated banks, screening
	// its lists through the allowance rules.
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 20 * time.Millisecond
	mroot, err := banksim.FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	sims, err := banksim.StartAllWith(ctx, filepath.Join(dir, "sim"), os.DirFS(mroot), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range sims {
			_ = s.Close()
		}
	})
	deps := connectors.Deps{Store: db, Events: &monitortest.Recorder{}, DataDir: dir}
	var banks []*bank.Bank
	for _, s := range sims {
		c := s.Config
		c.SFTP.RetryBackoff = 20 * time.Millisecond
		fs, err := bank.LoadFileSet(os.DirFS(mroot), c.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		bk, err := bank.New(c, fs, deps, "disbursement", sftp.Keys{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bk.SFTP.Close(ctx) })
		banks = append(banks, bk)
	}
	dc := disbursement.DefaultConfig()
	dc.Dir, dc.PollEvery, dc.ReturnWait = filepath.Join(dir, "batches"), 30*time.Millisecond, 10*time.Minute
	svc, err := disbursement.New(ctx, dc, banks, deps, &audittest.Recorder{}, []byte("month test person key"))
	if err != nil {
		t.Fatal(err)
	}
	svc.SetScreener(al)
	list := filepath.Join(dir, "list.csv")
	f, err := os.Create(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := disbursement.WriteList(f, disbursement.GenerateOptions{Persons: persons, Seed: seed, Period: period}); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if _, err := svc.Run(ctx, disbursement.RunOptions{Period: period, ListFile: list, LetterTotal: 1}); !errors.Is(err, disbursement.ErrTotalMismatch) {
		t.Fatalf("run with a wrong letter total: %v", err)
	}
	st, err := svc.Status(ctx, bank.Disbursement, period)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(persons - len(stopped)); st.Batch.Records != want {
		t.Fatalf("%d records in the batch, want %d (%d stopped)", st.Batch.Records, want, len(stopped))
	}
	b, err := svc.Run(ctx, disbursement.RunOptions{Period: period, LetterTotal: st.Batch.SystemTotal, ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Stage != disbursement.StageDone {
		t.Fatalf("stage %s", b.Stage)
	}

	// The bank files, as the banks took them (the hub removes its copies
	// when the batch closes): every kept person once, no stopped one.
	var all bytes.Buffer
	files := 0
	for _, s := range sims {
		out := filepath.Join(s.Root(), filepath.FromSlash(s.Config.SFTP.UploadDir), "taken")
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasSuffix(e.Name(), ".done") || strings.HasSuffix(e.Name(), ".sig") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			all.Write(data)
			files++
		}
	}
	if files < 6 {
		t.Fatalf("%d bank files", files)
	}
	text := all.String()
	for _, q := range dataseasim.Persons(seed, persons) {
		in := strings.Contains(text, q.Account)
		if stopped[q.Account] && in {
			t.Errorf("stopped person (account %s) is in a bank file", q.Account[len(q.Account)-4:])
		}
		if !stopped[q.Account] && !in {
			t.Errorf("person (account %s) missing from the bank files", q.Account[len(q.Account)-4:])
		}
	}
	ov, err := al.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Clawbacks != 1 || ov.ClawbackFen != early.AmountFen {
		t.Fatalf("claw-backs %+v", ov)
	}
	if rep, err := os.ReadFile(filepath.Join(dc.Dir, b.Name, "screening.csv")); err != nil || strings.Count(string(rep), "left_out") != len(stopped) {
		t.Fatalf("screening.csv: %v\n%s", err, rep)
	}

	// The quarter's deduction: the claw-back of the early death joins the
	// submitted list (one other person), goes to the bank of the account
	// the month was paid to, and the bank's return settles it.
	svc.SetDeductionScreener(al.Deductions())
	other := dataseasim.Persons(seed, persons+1)[persons]
	dlist := filepath.Join(dir, "deduction.csv")
	if err := os.WriteFile(dlist, []byte(header+"\n"+fmt.Sprintf("%s,%s,%s,%s,%s,300,%s,,\n", other.ID, other.Name, other.Account,
		synth.Banks[other.Bank].Code, other.Division, other.Standard)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(ctx, disbursement.RunOptions{Kind: bank.Deduction, Period: period, ListFile: dlist, LetterTotal: 300 + early.AmountFen,
		ConfirmDistrict: "alice", ConfirmCity: "bob"}); err != nil {
		t.Fatal(err)
	}
	// (The letter total above already holds the claw-back's amount.) The
	// early death was stopped this month: their account is only in the
	// deduction file of their bank.
	for _, s := range sims {
		out := filepath.Join(s.Root(), filepath.FromSlash(s.Config.SFTP.UploadDir), "taken")
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			n += strings.Count(string(data), early.Account)
		}
		if want := map[bool]int{true: 1}[s.Config.Code == synth.Banks[early.Bank].Code]; n != want {
			t.Fatalf("the claw-back's account %d times in %s's files, want %d", n, s.Config.Code, want)
		}
	}
	outcomes := func(ctx context.Context, period string, ids []string) (map[string]allowance.DeductionOutcome, bool, error) {
		res, ok, err := svc.Outcomes(ctx, bank.Deduction, period, ids)
		out := map[string]allowance.DeductionOutcome{}
		for id, o := range res {
			out[id] = allowance.DeductionOutcome{Deducted: o.Paid(), Reason: o.Reason}
		}
		return out, ok, err
	}
	res, _, err := svc.Outcomes(ctx, bank.Deduction, period, []string{early.ID})
	if err != nil || len(res) != 1 {
		t.Fatalf("outcomes %v %v", res, err)
	}
	want := allowance.Settled{Deducted: 1}
	if !res[early.ID].Paid() {
		want = allowance.Settled{Failed: 1}
	}
	if st, err := al.SettleDeductions(ctx, period, outcomes); err != nil || st != want {
		t.Fatalf("settled %+v, want %+v (%v)", st, want, err)
	}
	if st, err := al.SettleDeductions(ctx, period, outcomes); err != nil || st != (allowance.Settled{}) {
		t.Fatalf("settled twice: %+v %v", st, err)
	}
	if ov, _ := al.Overview(ctx); (ov.Clawbacks == 0) != res[early.ID].Paid() {
		t.Fatalf("after the deduction: %+v (deducted %v)", ov, res[early.ID].Paid())
	}
}

// pullInto pulls both feeds and applies each page to al as the records
// topic's consumer does (the datasea routes carry them in the hub).
func pullInto(ctx context.Context, p *datasea.Puller, al datasea.Applier) (datasea.Applied, error) {
	var sum datasea.Applied
	for _, feed := range []string{"death", "migration"} {
		if _, err := p.PullFeed(ctx, feed, func(ctx context.Context, _, _ string, good []datasea.Record, bad []datasea.Bad) error {
			a, err := al.Apply(ctx, "api", good, bad)
			sum = sum.Add(a)
			return err
		}); err != nil {
			return sum, err
		}
	}
	return sum, nil
}
