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
	// Applications and Cases are what the child waits for before it ends.
	Applications, Cases int64
}

// TestChildProcess is the hub side of TestSIGKILLNothingLostOrSentTwice:
// the portal service and the route engine on the shipped portal routes,
// with the embedded durable bus in the state file in Dir, against the
// portal at URL, until every application and case is taken and the outbox
// is settled. It skips in a normal test run.
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
	db := openDB(t, spec.Dir)
	e := &env{t: t, dir: spec.Dir, db: db, bus: &countBus{Bus: openBus(t, db), n: map[string]int{}}, clk: clockAt(), ring: testRing(t),
		events: &recEvents{}, pay: &fakePayments{reconciled: map[string]bool{}}}
	e.cfg = testConfig(spec.Dir, spec.URL)
	e.cfg.JobLib.Timeout, e.cfg.Mianshen.Timeout = time.Minute, time.Minute // the held call waits for the kill
	e.start()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		e.svc.Kick()
		if e.count(`SELECT COUNT(*) FROM portal_applications`) == spec.Applications && e.count(`SELECT COUNT(*) FROM portal_cases`) == spec.Cases &&
			e.count(`SELECT COUNT(*) FROM portal_outbox`) > 0 && e.settled() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %s", e.state())
		}
		time.Sleep(50 * time.Millisecond)
		e.clk.Advance(2 * e.cfg.RetryMaxWait) // past any back-off
	}
}

// TestSIGKILLNothingLostOrSentTwice kills the hub (a child process running
// the portal service and the route engine on a durable bus) while the
// portal holds a call it has applied but not answered: the batch is on the
// bus, its delivery claimed and in doubt. The restarted hub publishes the
// batches left waiting again under their keys; the route settles the one
// in doubt by the portal's query and answers from it, without sending it
// again: every application's nodes arrive once, the push batch once, each
// case is confirmed once, and nothing is lost.
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
	spec, _ := json.Marshal(childSpec{Dir: dir, URL: sim.URL(), Applications: 40, Cases: 30})
	specFile := dir + "/child.json"
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"="+specFile)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
	// The first pushing call (the 预审 nodes, or the push) is applied and held.
	sim.SetFaults(joblibsim.Faults{HoldAfterApply: 1})
	first := child()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	var held string
	select {
	case held = <-sim.Held:
	case <-time.After(2 * time.Minute):
		_ = first.Process.Kill()
		t.Fatal("the child sent nothing")
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.Wait()
	if sim.NodeCount() == 0 && sim.PushBatches() == 0 {
		t.Fatal("the held call applied nothing")
	}
	db := openDB(t, dir)
	var sending, onBus int
	if err := db.QueryRow(`SELECT COUNT(*) FROM portal_outbox WHERE state = 'sending'`).Scan(&sending); err != nil || sending == 0 {
		t.Fatalf("no batch waiting for its answer after the kill (%d, %v)", sending, err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM bus_messages WHERE topic LIKE 'portal.out.%'`).Scan(&onBus); err != nil || onBus == 0 {
		t.Fatalf("no batch on the durable bus after the kill (%d, %v)", onBus, err)
	}
	t.Logf("killed while the portal held a %s call; %d rows waiting for their answer", held, sending)
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
