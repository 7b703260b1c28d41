package verification

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const childEnv = "MZHUB_VERIFY_CHILD"

type childSpec struct {
	Dir        string
	Households int
	Sims       simConfig
}

// TestChildProcess is the verification run of TestSIGKILLMidFanOut's
// child process: it submits the households (again, after a kill: the
// references make that idempotent) and works until all are final.
func TestChildProcess(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child process of TestSIGKILLMidFanOut")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var spec childSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Concurrency = 4
	s := newService(t, cfg, openDB(t, spec.Dir), spec.Sims.partners(t), nil)
	ids := submitHouseholds(t, s, 0, spec.Households, 4)
	waitFinal(t, s, ids, 2*time.Minute)
}

// TestSIGKILLMidFanOut kills the verification process (SIGKILL) twice while
// its calls are out at slow partners, resumes it, and checks that every
// request became final and complete and that no partner was asked twice
// for the same request: calls in doubt were looked up by their keys.
func TestSIGKILLMidFanOut(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	sm := startSims(t)
	// Slow partners: answers are kept at once and sent late, so a kill
	// finds calls whose answer the partner has and the hub does not.
	sm.hrss.Faults.Delay.Store(int64(150 * time.Millisecond))
	sm.hpf.Faults.Delay.Store(int64(100 * time.Millisecond))
	for _, b := range sm.banks.Banks {
		b.Faults.Delay.Store(int64(50 * time.Millisecond))
	}
	sm.ministry.AnswerAfter.Store(int64(300 * time.Millisecond))
	const households = 40
	specPath := filepath.Join(dir, "child.json")
	b, _ := json.Marshal(childSpec{Dir: filepath.Join(dir, "hub"), Households: households, Sims: sm.config(10 * time.Second)})
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "child.log")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"="+specPath)
		out, _ := os.Create(logPath)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	childLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	// waitAsks waits (on the simulator's signal) until social security has
	// been asked about n households.
	waitAsks := func(n int) {
		t.Helper()
		bound := time.After(time.Minute)
		for sm.hrss.Ledger.Keys() < n {
			select {
			case <-sm.hrss.Ledger.Asked():
			case <-bound:
				t.Fatalf("social security asked about %d households; child log:\n%s", sm.hrss.Ledger.Keys(), childLog())
			}
		}
	}
	for _, at := range []int{8, 20} {
		cmd := start()
		waitAsks(at)
		_ = cmd.Process.Kill() // SIGKILL, calls in flight
		_ = cmd.Wait()
		t.Logf("killed with social security asked about %d households", sm.hrss.Ledger.Keys())
	}
	cmd := start()
	if err := cmd.Wait(); err != nil || !strings.Contains(childLog(), "PASS") {
		t.Fatalf("resumed run: %v\n%s", err, childLog())
	}
	nonLocal := 0
	for i := range households {
		if i%4 == 0 {
			nonLocal++
		}
	}
	for p, l := range sm.ledgers() {
		want := households
		if p == "ministry" {
			want = nonLocal
		}
		if l.Repeated() != 0 || l.Keys() != want {
			t.Errorf("%s: %d keys asked (want %d), %d asked again", p, l.Keys(), want, l.Repeated())
		}
	}
	db := openDB(t, filepath.Join(dir, "hub"))
	var open, incomplete, lookups int
	if err := db.QueryRow(`SELECT COUNT(*) FROM verif_requests WHERE status <> 'final'`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM verif_calls WHERE state <> 'answered'`).Scan(&incomplete); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COALESCE(SUM(lookups), 0) FROM verif_calls WHERE partner <> 'ministry'`).Scan(&lookups); err != nil {
		t.Fatal(err)
	}
	if incomplete != 0 {
		rows, _ := db.Query(`SELECT partner, state, reason, asks, lookups FROM verif_calls WHERE state <> 'answered'`)
		for rows.Next() {
			var p, st, reason string
			var a, l int
			_ = rows.Scan(&p, &st, &reason, &a, &l)
			t.Logf("%s %s asks %d lookups %d: %s", p, st, a, l, reason)
		}
		rows.Close()
	}
	if open != 0 || incomplete != 0 {
		t.Fatalf("%d requests open, %d calls not answered", open, incomplete)
	}
	if lookups == 0 {
		t.Error("no in-doubt call was looked up: the kills did not land mid-call")
	}
	t.Logf("in-city calls looked up after the kills: %d", lookups)
	_ = context.Background()
}
