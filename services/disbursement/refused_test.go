package disbursement

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
)

// TestReturnRefused: a return file whose done file matches it but that is
// empty, cut short or holds bytes invalid in its charset is refused
// visibly (an error event naming why), never settles its bank, and the
// correct return the bank delivers next under the same name is read and
// reconciled by the next poll: nobody ends missing.
func TestReturnRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	bySim := map[string]*banksim.Bank{}
	for _, s := range sims {
		bySim[s.Config.Code] = s
	}
	events := &monitortest.Recorder{}
	svc := newService(t, openDB(t, dir), dir, simConfigs(sims), events, nil)
	list := writeList(t, dir, GenerateOptions{Persons: 3000, Seed: 7, Period: "2026-11"})
	var letter int64
	_ = readList(list, func(_ int64, r *listRecord) error { letter += r.amount(); return nil })

	cases := []struct {
		bank  string
		fault func(*banksim.Bank)
		why   string
	}{
		{"boc", func(b *banksim.Bank) { b.BadBytesNextReturn.Store(true) }, "invalid byte sequence for the charset"},
		{"bocom", func(b *banksim.Bank) { b.ShortNextReturn.Store(true) }, "total_count is"},
		{"ceb", func(b *banksim.Bank) { b.EmptyNextReturn.Store(true) }, "no detail records"},
		{"cmb", func(b *banksim.Bank) { b.EmptyNextReturn.Store(true) }, "no detail records"},
	}
	for _, c := range cases {
		c.fault(bySim[c.bank])
	}
	b, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: list, LetterTotal: letter, ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Stage != StageDone {
		t.Fatalf("stage %s", b.Stage)
	}
	for _, c := range cases {
		t.Run(c.bank, func(t *testing.T) {
			n := events.Count(func(e monitor.Event) bool {
				return e.Partner == "bank."+c.bank && e.Type == monitor.Rejected && e.Status == monitor.Error &&
					e.ErrorCode == "return_refused" && strings.Contains(e.ErrorMessage, c.why)
			})
			if n != 1 {
				for _, e := range events.Events() {
					if e.Partner == "bank."+c.bank && e.Stage == StageReturns {
						t.Logf("%s %s %s %s %s", e.Type, e.Status, e.FileName, e.ErrorCode, e.ErrorMessage)
					}
				}
				t.Fatalf("%d refusal events saying %q, want 1", n, c.why)
			}
		})
	}
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts["missing"] != 0 || st.Counts["sent"] != 0 || st.Counts["paid"] == 0 {
		t.Fatalf("counts %v: the correct returns were not reconciled", st.Counts)
	}
	for _, s := range sims {
		if s.Paid.Double() != 0 || s.Taken.Load() != 1 {
			t.Errorf("%s: double %d taken %d", s.Config.Code, s.Paid.Double(), s.Taken.Load())
		}
	}
	for _, f := range st.Files {
		if f.Direction == "return" && f.State != "reconciled" {
			t.Errorf("return %s %s: %s %s", f.Bank, f.Name, f.State, f.Detail)
		}
	}
}

// TestReturnRefusedUntilResume: a bank whose return was refused and that
// sends nothing better by the return deadline is not settled: the returns
// stage stops naming the bank and why, the status shows the refused file,
// and a resume reads the correct return once the bank sends it.
func TestReturnRefusedUntilResume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	var bocom *banksim.Bank
	for _, s := range sims {
		if s.Config.Code == "bocom" {
			bocom = s
		}
	}
	// Only BOCOM is configured: the list's other persons are rejected at
	// validation, so the deadline concerns this bank alone.
	events := &monitortest.Recorder{}
	svc := newServiceWith(t, openDB(t, dir), dir, []bank.Config{bocom.Config}, events, nil, 5*time.Second,
		func(c *Config) { c.ReturnWait = 3 * time.Second })
	list := writeList(t, dir, GenerateOptions{Persons: 600, Seed: 3, Period: "2026-11"})
	bocom.ShortNextReturn.Store(true)
	bocom.HoldRepairs.Store(true)
	refused := events.Next(func(e monitor.Event) bool { return e.ErrorCode == "return_refused" })

	run := RunOptions{Period: "2026-11", ListFile: list, ConfirmDistrict: "alice", ConfirmCity: "bob"}
	if _, err := svc.Run(ctx, run); !errors.Is(err, ErrAwaitingLetterTotal) {
		t.Fatalf("first run: %v", err)
	}
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	run.LetterTotal = st.Batch.SystemTotal
	b, err := svc.Run(ctx, run)
	if !errors.Is(err, ErrReturnRefused) || !strings.Contains(err.Error(), "bank bocom") {
		t.Fatalf("run with a refused return and no better one: %v (stage %s)", err, b.Stage)
	}
	<-refused
	st, err = svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if st.Batch.Stage != StageReturns || st.Batch.Status != "failed" || !strings.Contains(st.Batch.Error, "bocom") {
		t.Fatalf("batch %+v", st.Batch)
	}
	if st.Counts["missing"] != 0 || st.Counts["paid"] != 0 {
		t.Fatalf("the refused return settled records: %v", st.Counts)
	}
	var shown bool
	for _, f := range st.Files {
		shown = shown || (f.Bank == "bocom" && f.Direction == "return" && f.State == "refused" && strings.Contains(f.Detail, "file refused"))
	}
	if !shown {
		t.Fatalf("the status does not show the refused return: %+v", st.Files)
	}

	// The bank sends the whole return; a resume reads it.
	bocom.HoldRepairs.Store(false)
	if err := bocom.Scanned(ctx); err != nil {
		t.Fatal(err)
	}
	b, err = svc.Run(ctx, RunOptions{Period: "2026-11"})
	if err != nil || b.Stage != StageDone {
		t.Fatalf("resume: %v (stage %s)", err, b.Stage)
	}
	st, err = svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts["missing"] != 0 || st.Counts["sent"] != 0 || st.Counts["paid"] == 0 {
		t.Fatalf("after resume: %v", st.Counts)
	}
}
