package disbursement

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
)

func TestFullCycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 20 * time.Millisecond
	opts.FailureRate = 0.05
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	events, aud := &monitortest.Recorder{}, &audittest.Recorder{}
	svc := newService(t, openDB(t, dir), dir, simConfigs(sims), events, aud)
	exp := &expecter{}
	svc.SetExpecter(exp)
	list := writeList(t, dir, GenerateOptions{Persons: 30000, Seed: 1, Period: "2026-11", Anomalies: true})

	// A wrong letter total stops the run before anything is sent.
	_, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: list, LetterTotal: 1})
	if !errors.Is(err, ErrTotalMismatch) {
		t.Fatalf("run with wrong letter total: %v", err)
	}
	for _, s := range sims {
		if s.Taken.Load() != 0 {
			t.Fatal("a file was sent despite the total mismatch")
		}
	}
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"bad_id", "two_standards", "shared_account", "past_termination"} {
		if st.Issues[code] == 0 {
			t.Errorf("validation found no %s issue: %v", code, st.Issues)
		}
	}
	letter := st.Batch.SystemTotal

	// Confirmation: city before district is refused; the run waits for both.
	_, err = svc.Run(ctx, RunOptions{Period: "2026-11", LetterTotal: letter})
	if !errors.Is(err, ErrAwaitingConfirmation) {
		t.Fatalf("run without confirmation: %v", err)
	}
	if err := svc.Confirm(ctx, bank.Disbursement, "2026-11", "city", "bob"); !errors.Is(err, ErrConfirmOrder) {
		t.Fatalf("city first: %v", err)
	}
	if err := svc.Confirm(ctx, bank.Disbursement, "2026-11", "district", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Confirm(ctx, bank.Disbursement, "2026-11", "city", "alice"); !errors.Is(err, ErrConfirmOrder) || !errors.Is(err, ErrSameConfirmer) {
		t.Fatalf("same user twice: %v", err)
	}
	if cs, err := svc.Confirmations(ctx, bank.Disbursement, "2026-11"); err != nil || len(cs) != 1 || cs[0].Level != "district" || cs[0].User != "alice" || cs[0].At.IsZero() {
		t.Fatalf("confirmations after the district's: %+v %v", cs, err)
	}
	b, err := svc.Run(ctx, RunOptions{Period: "2026-11", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Stage != StageDone {
		t.Fatalf("stage %s", b.Stage)
	}
	if cs, err := svc.Confirmations(ctx, bank.Disbursement, "2026-11"); err != nil || len(cs) != 2 || cs[0].User != "alice" || cs[1].Level != "city" || cs[1].User != "bob" {
		t.Fatalf("confirmations: %+v %v", cs, err)
	}
	st, err = svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	var simPaid int64
	for _, s := range sims {
		simPaid += s.Paid.Total()
		if s.Paid.Double() != 0 {
			t.Fatalf("%s paid someone twice", s.Config.Code)
		}
	}
	if st.Counts["sent"] != 0 || st.Counts["missing"] != 0 {
		t.Fatalf("records left open: %v", st.Counts)
	}
	if st.Counts["paid"] != simPaid || st.Counts["paid"]+st.Counts["failed"] != st.Batch.Valid || st.Counts["failed"] == 0 {
		t.Fatalf("counts %v, simulators paid %d, valid %d", st.Counts, simPaid, st.Batch.Valid)
	}
	// Failures are listed (masked) and carried over.
	fb, err := os.ReadFile(filepath.Join(dir, "batches", "disbursement-2026-11", "failures.csv"))
	if err != nil || strings.Count(string(fb), "\n") != int(st.Counts["failed"])+1 {
		t.Fatalf("failures.csv: %v", err)
	}
	if strings.Contains(string(fb), ",310101") && !strings.Contains(string(fb), "***") {
		t.Fatal("failures.csv shows whole ID numbers")
	}
	var carried int64
	_ = svc.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM disb_carry WHERE kind = 'disbursement'`).Scan(&carried)
	if carried != st.Counts["failed"] {
		t.Fatalf("carried %d, failed %d", carried, st.Counts["failed"])
	}
	rows, err := svc.Report(ctx, bank.Disbursement, "2026-11")
	if err != nil || len(rows) < 6 {
		t.Fatalf("report: %d rows, %v", len(rows), err)
	}
	// The report stage computes the same rows by streaming the list.
	streamed, err := svc.streamReport(ctx, b)
	if err != nil || !reflect.DeepEqual(streamed, rows) {
		t.Fatalf("streamed report differs (%v):\n%v\n%v", err, streamed, rows)
	}
	months, quarters, year, err := svc.Stats(ctx, bank.Disbursement, 2026)
	if err != nil || len(months) != 1 || len(quarters) != 1 || year.Paid != st.Counts["paid"] {
		t.Fatalf("stats %v %v %v %v", months, quarters, year, err)
	}
	// Every stage showed in the monitor, and the confirmations were audited.
	for _, stage := range Stages[:len(Stages)-1] {
		if events.Count(func(e monitor.Event) bool {
			return e.Type == monitor.StageChanged && e.Stage == stage && e.BatchID == b.Name
		}) == 0 {
			t.Errorf("no stage event for %s", stage)
		}
	}
	var actions []string
	for _, r := range aud.Records() {
		actions = append(actions, r.Actor+" "+r.Action+" "+r.Outcome)
	}
	if got := strings.Join(actions, "|"); !strings.Contains(got, "user:alice disbursement.confirm.district success") ||
		!strings.Contains(got, "user:bob disbursement.confirm.city success") || !strings.Contains(got, "system:disbursement disbursement.total_check.ok success") {
		t.Fatalf("audit %v", actions)
	}
	// Per bank: its file goes out by schedule_day 18:00 of the period
	// (registered after intake, met by the sent event), and its return is
	// due after the upload.
	var uploads, returns []monitor.Expectation
	for _, e := range exp.snapshot() {
		switch {
		case strings.HasPrefix(e.Name, "upload "):
			uploads = append(uploads, e)
		case strings.HasPrefix(e.Name, "return "):
			returns = append(returns, e)
		}
	}
	if len(returns) != 6 || returns[0].BatchID != b.Name || returns[0].Due.IsZero() {
		t.Fatalf("return expectations: %+v", returns)
	}
	if len(uploads) != 6 {
		t.Fatalf("upload expectations: %+v", uploads)
	}
	for _, e := range uploads {
		wantDue := time.Date(2026, 11, 5, 18, 0, 0, 0, clock.Shanghai)
		if !e.Due.Equal(wantDue) || e.BatchID != b.Name || e.Type != monitor.Sent || e.Flow != "disbursement" {
			t.Errorf("upload expectation %+v, want due %s", e, wantDue)
		}
		if events.Count(func(ev monitor.Event) bool {
			ok, _ := path.Match(e.FilePattern, ev.FileName)
			return ok && ev.Type == e.Type && ev.Partner == e.Partner && ev.BatchID == e.BatchID
		}) != 1 {
			t.Errorf("%s: no sent event matches %q", e.Name, e.FilePattern)
		}
	}
	// Next month: the persons whose payment failed must be in the list.
	list2 := writeList(t, t.TempDir(), GenerateOptions{Persons: 100, Seed: 99, Period: "2026-12"})
	_, err = svc.Run(ctx, RunOptions{Period: "2026-12", ListFile: list2, LetterTotal: 1})
	if !errors.Is(err, ErrTotalMismatch) {
		t.Fatal(err)
	}
	present := int64(0)
	_ = readList(list2, func(_ int64, r *listRecord) error {
		var n int
		_ = svc.db.QueryRowContext(ctx, svc.db.Rebind(`SELECT COUNT(*) FROM disb_carry WHERE person_key = ?`), svc.personKey(r.id())).Scan(&n)
		present += int64(n)
		return nil
	})
	st2, _ := svc.Status(ctx, bank.Disbursement, "2026-12")
	if st2.Issues["carried"] != present {
		t.Fatalf("carried persons noted %d, want %d", st2.Issues["carried"], present)
	}
	if st2.Issues["carry_missing"] != carried-present || carried-present <= 0 {
		t.Fatalf("carry_missing %d, want %d (%d carried, %d in the new list)", st2.Issues["carry_missing"], carried-present, carried, present)
	}
	// Once December is paid, the carried persons paid leave the carry list.
	if _, err := svc.Run(ctx, RunOptions{Period: "2026-12", LetterTotal: st2.Batch.SystemTotal, ConfirmDistrict: "alice", ConfirmCity: "bob"}); err != nil {
		t.Fatal(err)
	}
	var stillCarried int64
	_ = svc.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM disb_carry c JOIN disb_payments p ON p.person_key = c.person_key
		WHERE p.batch_id = ? AND p.status = 3`, st2.Batch.ID).Scan(&stillCarried)
	if stillCarried != 0 || present == 0 {
		t.Fatalf("%d persons paid in December are still carried (%d were carried into it)", stillCarried, present)
	}
}

type expecter struct {
	mu  sync.Mutex
	got []monitor.Expectation
}

func (e *expecter) snapshot() []monitor.Expectation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]monitor.Expectation(nil), e.got...)
}

func (e *expecter) Expect(_ context.Context, x monitor.Expectation) error {
	e.mu.Lock()
	e.got = append(e.got, x)
	e.mu.Unlock()
	return nil
}
