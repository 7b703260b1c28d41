package portal

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
)

// childEnv names the JSON file describing the child's run; the child test
// only runs in a re-executed test binary.
const childEnv = "MZHUB_PORTAL_CHILD"

type childSpec struct {
	Dir string
	URL string
}

// TestChildProcess is the hub side of TestSIGKILLNothingLostOrSentTwice:
// it runs rounds on the store in Dir against the portal at URL until the
// outbox is settled. It skips in a normal test run.
func TestChildProcess(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child process of TestSIGKILLNothingLostOrSentTwice")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var spec childSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: spec.Dir, db: openDB(t, spec.Dir), clk: nil, ring: testRing(t), events: &recEvents{}, pay: &fakePayments{reconciled: map[string]bool{}}}
	e.clk = clockAt()
	e.cfg = testConfig(spec.Dir, spec.URL)
	e.cfg.JobLib.Timeout, e.cfg.Mianshen.Timeout = time.Minute, time.Minute // the held call waits for the kill
	e.svc = e.open()
	// Pushes are answered with cases on the next round: a few rounds at least.
	for i := 0; i < 20; i++ {
		_ = e.round()
		if i >= 3 && e.settled() {
			break
		}
	}
	if !e.settled() {
		t.Fatal("not settled")
	}
}

// TestSIGKILLNothingLostOrSentTwice kills the hub (a child process) while
// the portal holds a send it has applied but not answered: the send is in
// doubt. The restarted hub re-checks it with the portal before sending
// anything again: every application's nodes arrive once, the push batch
// once, and nothing is lost.
func TestSIGKILLNothingLostOrSentTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	sim, err := joblibsim.Start(joblibsim.Options{KeyID: "k1", Secret: testSecret, Dept: "SHMZJ", ConsentPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	ids := sim.AddApplications(40)
	e := &env{t: t, dir: dir, cfg: testConfig(dir, sim.URL())}
	var recs []EligibleRecord
	for i := range 30 {
		recs = append(recs, NewEligible(idFor("310115", "19500101", i), "王伟", "310115", "shanghai", 0, ""))
	}
	e.register("MZ-LNZHJT", "2026-12", recs)
	spec, _ := json.Marshal(childSpec{Dir: dir, URL: sim.URL()})
	specFile := dir + "/child.json"
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+specFile)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
	// The first pushing call (the 预审 nodes) is applied and held.
	sim.SetFaults(joblibsim.Faults{HoldAfterApply: 1})
	first := child()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sim.Held:
	case <-time.After(2 * time.Minute):
		_ = first.Process.Kill()
		t.Fatal("the child sent nothing")
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.Wait()
	applied := sim.NodeCount()
	if applied == 0 {
		t.Fatal("the held call applied nothing")
	}
	db := openDB(t, dir)
	var sending int
	if err := db.QueryRow(`SELECT COUNT(*) FROM portal_outbox WHERE state = 'sending'`).Scan(&sending); err != nil || sending == 0 {
		t.Fatalf("no send in doubt after the kill (%d, %v)", sending, err)
	}
	second := child()
	if err := second.Run(); err != nil {
		t.Fatalf("the restarted hub: %v", err)
	}
	if d := sim.Duplicates.Load(); d != 0 {
		t.Fatalf("%d items sent again that the portal had", d)
	}
	for _, id := range ids {
		if n := sim.Nodes(id); len(n) == 0 || n[0].Seq != 1 {
			t.Fatalf("%s: nodes %+v", id, n)
		}
	}
	if sim.PushBatches() != 1 || sim.Pushed("MZ-LNZHJT") != 30 || len(sim.Cases()) != 30 {
		t.Fatalf("push batches %d, pushed %d, cases %d", sim.PushBatches(), sim.Pushed("MZ-LNZHJT"), len(sim.Cases()))
	}
	for _, c := range sim.Cases() {
		if sim.Decision(c.CaseID) == nil {
			t.Fatalf("case %s not confirmed", c.CaseID)
		}
	}
}
