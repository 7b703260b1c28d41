package bankaccounts

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestResumeAfterCrash: the hub stops after filing requests (before the
// upload) and after uploading (before recording it); a new service on the
// same state store delivers each file once, and the bank answers each
// request once.
func TestResumeAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := storetest.Open(t)
	e := start(t, db, dir)
	g := synth.New(21)
	var rs []Request
	for i := range 8 {
		p := g.Next()
		op := bank.OpVerify
		if i%2 == 1 {
			op = bank.OpOpen
			p.Account = ""
		}
		rs = append(rs, Request{ExtID: fmt.Sprint("r", i), Bank: "boc", Op: op, PersonID: p.ID, Name: p.Name, Account: p.Account})
	}
	if _, err := e.svc.Submit(ctx, rs); err != nil {
		t.Fatal(err)
	}
	bf := e.svc.banks["boc"]
	// Crash 1: the verifications filed, nothing uploaded.
	if n, err := e.svc.fileQueued(ctx, bf, bank.OpVerify); err != nil || n == "" {
		t.Fatalf("file: %q %v", n, err)
	}
	// Crash 2: the openings filed and uploaded, the upload not recorded.
	name, err := e.svc.fileQueued(ctx, bf, bank.OpOpen)
	if err != nil || name == "" {
		t.Fatalf("file: %q %v", name, err)
	}
	// The file's business day as filed (Asia/Shanghai): the hub writes the
	// file from it, so the restarted hub writes the same bytes. (The clock's
	// own zone is UTC: between 16:00 and 24:00 UTC its date is the day
	// before, the header differed and the test failed in those hours.)
	var day string
	if err := db.QueryRowContext(ctx, db.Rebind(`SELECT day FROM acct_files WHERE name = ?`), name).Scan(&day); err != nil {
		t.Fatal(err)
	}
	local, n, err := e.svc.writeFile(ctx, bf, name, bank.OpOpen, day)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bf.clients[bank.OpOpen].Upload(ctx, sftp.Outbound{LocalPath: local, Name: name, Records: n}); err != nil {
		t.Fatal(err)
	}
	_ = e.svc.Close(ctx)

	// The restarted hub (same store, same working directory).
	sims := e.sims
	e2 := &env{svc: nil, sims: sims, db: db, ev: e.ev}
	svc2, err := New(ctx, Options{DB: db, Fields: e.svc.fields, Banks: []*bank.Bank{bf.b, e.svc.banks["ccb"].b}, Dir: filepath.Join(dir, "work"),
		Deps: connectors.Deps{DataDir: filepath.Join(dir, "hub"), Events: e.ev}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc2.Close(ctx) })
	e2.svc = svc2
	e2.settle(t)
	sim := sims["boc"]
	if v, o := sim.AccountsAnswered(bank.OpVerify), sim.AccountsAnswered(bank.OpOpen); v != 4 || o != 4 {
		t.Fatalf("the bank answered %d verifications and %d openings, want 4 and 4", v, o)
	}
	var states int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM acct_state`).Scan(&states); err != nil || states != 8 {
		t.Fatalf("%d states (%v), want 8", states, err)
	}
}
