package disbursement

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/store"
)

// childEnv names the JSON file describing the child's run; the child test
// below only runs in a re-executed test binary.
const childEnv = "MZHUB_DISB_CHILD"

type childSpec struct {
	Dir         string
	List        string
	LetterTotal int64
	Banks       []bank.Config
}

// TestChildProcess is the disbursement run of TestSIGKILLResume's child
// process; it skips in a normal test run.
func TestChildProcess(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child process of TestSIGKILLResume")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var spec childSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	svc := newService(t, openSQLiteDB(t, spec.Dir), spec.Dir, spec.Banks, nil, nil)
	_, err = svc.Run(context.Background(), RunOptions{Period: "2026-11", ListFile: spec.List, LetterTotal: spec.LetterTotal,
		ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSIGKILLResume kills the disbursement process (SIGKILL) during upload,
// during download and during reconciliation, resumes it each time, and
// checks that every person was paid exactly once at the simulators and
// every record reconciled.
func TestSIGKILLResume(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	opts.FailureRate = 0.03
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	list := writeList(t, dir, GenerateOptions{Persons: 60000, Seed: 3, Period: "2026-11"})
	var letter int64
	if err := readList(list, func(_ int64, r *listRecord) error { letter += r.amount(); return nil }); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "child.json")
	b, _ := json.Marshal(childSpec{Dir: filepath.Join(dir, "hub"), List: list, LetterTotal: letter, Banks: simConfigs(sims)})
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+specPath)
		out, _ := os.Create(filepath.Join(dir, "child.log"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "child.log"))
				t.Fatalf("timed out waiting for %s; child log:\n%s", what, log)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	kill := func(cmd *exec.Cmd) {
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
	}
	exists := func(glob string) bool {
		m, _ := filepath.Glob(glob)
		return len(m) > 0
	}
	boc, ccb := sims[0], sims[1]

	// 1. During upload: BOC's server stalls the data transfer; the kill
	// comes while the temporary file is open on the server.
	boc.Server.Faults.StallOnly("*.part")
	boc.Server.Faults.StallReads.Store(true)
	cmd := start()
	waitFor("upload in flight", func() bool { return exists(filepath.Join(boc.Root(), "upload", "*.part")) })
	kill(cmd)
	boc.Server.Faults.Unstall()

	// 2. During download: CCB's return files stall while being read.
	ccb.Server.Faults.StallOnly("*_RET_*")
	ccb.Server.Faults.StallReads.Store(true)
	cmd = start()
	waitFor("return download in flight", func() bool {
		return exists(filepath.Join(dir, "hub", "sftp", "bank.ccb", ".incoming", "*.part"))
	})
	kill(cmd)
	ccb.Server.Faults.Unstall()

	// 3. During reconciliation: kill while a return file is claimed and
	// being reconciled.
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "hub", "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cmd = start()
	waitFor("reconciliation in progress", func() bool {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM sftp_claims WHERE state = 'claimed'`).Scan(&n)
		return err == nil && n > 0
	})
	kill(cmd)

	// 4. Resume to the end.
	cmd = start()
	if err := cmd.Wait(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "child.log"))
		t.Fatalf("resumed run failed: %v\n%s", err, log)
	}
	var sent, paid, failed, open, missing int64
	row := db.QueryRow(`SELECT COUNT(*), SUM(CASE WHEN status = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 4 THEN 1 ELSE 0 END),
		SUM(CASE WHEN status = 2 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 5 THEN 1 ELSE 0 END) FROM disb_payments`)
	var ns [5]sql.NullInt64
	if err := row.Scan(&ns[0], &ns[1], &ns[2], &ns[3], &ns[4]); err != nil {
		t.Fatal(err)
	}
	sent, paid, failed, open, missing = ns[0].Int64, ns[1].Int64, ns[2].Int64, ns[3].Int64, ns[4].Int64
	var simPaid int64
	for _, s := range sims {
		if s.Paid.Double() != 0 {
			t.Errorf("%s paid %d records twice", s.Config.Code, s.Paid.Double())
		}
		if s.Taken.Load() != 1 {
			t.Errorf("%s took %d files, want 1", s.Config.Code, s.Taken.Load())
		}
		simPaid += s.Paid.Total()
	}
	if sent != 60000 || open != 0 || missing != 0 || paid+failed != sent || paid != simPaid {
		t.Fatalf("records %d: paid %d failed %d open %d missing %d; simulators paid %d", sent, paid, failed, open, missing, simPaid)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "child.log")); !strings.Contains(string(log), "PASS") {
		t.Fatalf("child log:\n%s", log)
	}
}
