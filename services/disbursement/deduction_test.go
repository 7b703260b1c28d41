package disbursement

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
)

// TestDeductionCycle runs the quarterly deduction through the same stages
// with the deduction layouts.
func TestDeductionCycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	svc := newService(t, openDB(t, dir), dir, simConfigs(sims), nil, nil)
	list := writeList(t, dir, GenerateOptions{Persons: 3000, Seed: 8, Period: "2026-12"})
	var letter int64
	_ = readList(list, func(_ int64, r *listRecord) error { letter += r.amount(); return nil })
	b, err := svc.Run(ctx, RunOptions{Kind: bank.Deduction, Period: "2026-12", ListFile: list, LetterTotal: letter,
		ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := svc.Status(ctx, bank.Deduction, "2026-12")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "deduction-2026-12" || st.Counts["sent"] != 0 || st.Counts["missing"] != 0 || st.Counts["paid"]+st.Counts["failed"] != 3000 {
		// Say which bank's return did not reconcile, and why.
		rows, qerr := svc.db.QueryContext(ctx, svc.db.Rebind(`SELECT bank, direction, name, state, COALESCE(detail, '') FROM disb_files WHERE batch_id = ?`), b.ID)
		if qerr == nil {
			for rows.Next() {
				var bankCode, dir, name, state, detail string
				if rows.Scan(&bankCode, &dir, &name, &state, &detail) == nil {
					t.Logf("file %s %s %s: %s %s", bankCode, dir, name, state, detail)
				}
			}
			rows.Close()
		}
		for _, s := range sims {
			t.Logf("sim %s: taken %d", s.Config.Code, s.Taken.Load())
		}
		t.Fatalf("%s: %v", b.Name, st.Counts)
	}
	for _, s := range sims {
		if s.Taken.Load() != 1 || s.Paid.Double() != 0 {
			t.Fatalf("%s: taken %d double %d", s.Config.Code, s.Taken.Load(), s.Paid.Double())
		}
	}
}
