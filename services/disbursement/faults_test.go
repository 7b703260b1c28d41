package disbursement

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
)

// TestNetworkFaults runs a cycle while each bank misbehaves in its own
// way; every case must be retried, rejected or ignored correctly, never
// processed twice, and show in the monitor.
func TestNetworkFaults(t *testing.T) {
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
	svc := newServiceTimeout(t, openDB(t, dir), dir, simConfigs(sims), events, nil, 700*time.Millisecond)
	list := writeList(t, dir, GenerateOptions{Persons: 12000, Seed: 5, Period: "2026-11"})
	var letter int64
	_ = readList(list, func(_ int64, r *listRecord) error { letter += r.amount(); return nil })

	bySim["boc"].Server.Faults.DropAfterBytes.Store(20 << 10) // connection dropped mid-upload
	bySim["bocom"].TruncateNextReturn.Store(true)             // truncated return file
	bySim["ceb"].DuplicateNextReturn.Store(true)              // the same return twice
	bySim["spdb"].CorruptNextReturn.Store(3)                  // three malformed return records
	bySim["cmb"].Server.Faults.RefuseLogin.Store(true)        // logins refused
	bySim["ccb"].Server.Faults.StallOnly("*_RET_*")           // return download stalls
	bySim["ccb"].Server.Faults.StallReads.Store(true)

	run := RunOptions{Period: "2026-11", ListFile: list, LetterTotal: letter, ConfirmDistrict: "alice", ConfirmCity: "bob"}
	if _, err := svc.Run(ctx, run); err == nil {
		t.Fatal("run succeeded while CMB refused every login")
	}
	if n := events.Count(func(e monitor.Event) bool { return e.Partner == "bank.cmb" && e.Type == monitor.Failed }); n == 0 {
		t.Fatal("refused logins not visible in the monitor")
	}
	bySim["cmb"].Server.Faults.RefuseLogin.Store(false)
	// CCB's return download stays stalled until the hub has timed it out
	// and said so (a Retried event for a CCB return file); then the bank
	// answers again.
	retried := events.Next(func(e monitor.Event) bool {
		return e.Partner == "bank.ccb" && e.Type == monitor.Retried && strings.Contains(e.FileName, "_RET_")
	})
	stalled := bySim["ccb"].Server.Faults.Stalled()
	stop, released := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		select {
		case <-stalled:
		case <-stop:
			return
		}
		select {
		case <-retried:
		case <-stop:
			return
		}
		bySim["ccb"].Server.Faults.Unstall()
	}()
	defer func() { close(stop); <-released }()
	b, err := svc.Run(ctx, RunOptions{Period: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Stage != StageDone {
		t.Fatalf("stage %s", b.Stage)
	}
	has := func(partner string, typ monitor.EventType, code string) bool {
		return events.Count(func(e monitor.Event) bool {
			return e.Partner == partner && e.Type == typ && (code == "" || e.ErrorCode == code || e.ErrorClass == code)
		}) > 0
	}
	for _, c := range []struct {
		partner string
		typ     monitor.EventType
		code    string
	}{
		{"bank.boc", monitor.Retried, ""},
		{"bank.bocom", monitor.Rejected, "digest_mismatch"},
		{"bank.ceb", monitor.Dropped, "duplicate_return"},
		{"bank.spdb", monitor.Rejected, "malformed_return_record"},
		{"bank.spdb", monitor.Reconciled, "missing_records"},
		{"bank.ccb", monitor.Retried, ""},
	} {
		if !has(c.partner, c.typ, c.code) {
			t.Errorf("no %s %s %s event", c.partner, c.typ, c.code)
		}
	}
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	var simPaid int64
	for _, s := range sims {
		simPaid += s.Paid.Total()
		if s.Paid.Double() != 0 || s.Taken.Load() != 1 {
			t.Errorf("%s: double %d taken %d", s.Config.Code, s.Paid.Double(), s.Taken.Load())
		}
	}
	// The three malformed SPDB records are quarantined with their line
	// numbers and end as missing; everything else reconciles once.
	for _, e := range events.Events() {
		if e.Type == monitor.Reconciled && e.Stage == StageReturns && e.FileName != "" && e.Attrs["missing"] != "" {
			t.Logf("%s %s %v %s", e.Partner, e.FileName, e.Attrs, e.ErrorMessage)
		}
	}
	if st.Quarantined != 3 || st.Counts["missing"] != 3 || st.Counts["sent"] != 0 {
		t.Fatalf("quarantined %d, counts %v", st.Quarantined, st.Counts)
	}
	if st.Counts["paid"] != simPaid-paidAmong(t, svc, b, bySim) {
		t.Fatalf("paid %d, simulators paid %d", st.Counts["paid"], simPaid)
	}
	var lines int
	_ = svc.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM disb_quarantine WHERE line > 1`).Scan(&lines)
	if lines != 3 {
		t.Fatalf("quarantine without line numbers")
	}
}

// paidAmong returns how many of the missing records the simulators had in
// fact paid (their return lines were garbled, so the hub cannot know).
func paidAmong(t *testing.T, svc *Service, b *Batch, bySim map[string]*banksim.Bank) int64 {
	t.Helper()
	rows, err := svc.db.Query(svc.db.Rebind(`SELECT seq, bank FROM disb_payments WHERE batch_id = ? AND status = 5`), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var c int64
	for rows.Next() {
		var seq int64
		var bi int
		if err := rows.Scan(&seq, &bi); err != nil {
			t.Fatal(err)
		}
		c += int64(bySim[svc.banks[bi].Config.Code].Paid.Times(reference(refPrefix(b), seq)))
	}
	return c
}
