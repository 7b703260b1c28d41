package disbursement

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// childEnv names the JSON file describing the child's run; the child test
// below only runs in a re-executed test binary. childEventsEnv, when set,
// tells the child to write its monitor events, one line each ("type
// partner file"), to file descriptor 3: the parent's signal of what the
// child is doing.
const (
	childEnv       = "MZHUB_DISB_CHILD"
	childEventsEnv = "MZHUB_DISB_CHILD_EVENTS"
)

// lineEvents writes each monitor event as a line "type partner file".
type lineEvents struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineEvents) Emit(e monitor.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s %s\n", e.Type, e.Partner, e.FileName)
}

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
	var events connectors.Events
	if os.Getenv(childEventsEnv) != "" {
		events = &lineEvents{w: os.NewFile(3, "events")}
	}
	svc := newService(t, openSQLiteDB(t, spec.Dir), spec.Dir, spec.Banks, events, nil)
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
	childLog := func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "child.log"))
		return string(log)
	}
	// start runs the child; each of its event lines is handed to onLine
	// (nil: dropped) as it comes; the returned channel is closed once the
	// child's end of the pipe is closed (it exited).
	start := func(onLine func(string)) (*exec.Cmd, <-chan struct{}) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+specPath, childEventsEnv+"=3")
		out, _ := os.Create(filepath.Join(dir, "child.log"))
		cmd.Stdout, cmd.Stderr = out, out
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{w}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() }) // when the test fails first
		_ = w.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer r.Close()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if onLine != nil {
					onLine(sc.Text())
				}
			}
		}()
		return cmd, done
	}
	// Each wait is for a signal: the bank server's (a transfer stalled) or
	// the child's (an event line); the minute is only a bound for failures.
	wait := func(what string, signal <-chan struct{}) {
		t.Helper()
		select {
		case <-signal:
		case <-time.After(60 * time.Second):
			t.Fatalf("timed out waiting for %s; child log:\n%s", what, childLog())
		}
	}
	kill := func(cmd *exec.Cmd, events <-chan struct{}) {
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
		<-events
	}
	bySim := map[string]*banksim.Bank{}
	for _, s := range sims {
		bySim[s.Config.Code] = s
	}
	boc, ccb := bySim["boc"], bySim["ccb"]

	// 1. During upload: BOC's server stalls the data transfer; the kill
	// comes while the temporary file is open on the server.
	boc.Server.Faults.StallOnly("*.part")
	boc.Server.Faults.StallReads.Store(true)
	cmd, events := start(nil)
	wait("BOC's upload to stall", boc.Server.Faults.Stalled())
	if m, _ := filepath.Glob(filepath.Join(boc.Root(), "upload", "*.part")); len(m) == 0 {
		t.Fatal("BOC's upload stalled but no temporary file is open on the server")
	}
	kill(cmd, events)
	boc.Server.Faults.Unstall()

	// 2. During download: CCB's return files stall while being read.
	ccb.Server.Faults.StallOnly("*_RET_*")
	ccb.Server.Faults.StallReads.Store(true)
	cmd, events = start(nil)
	wait("CCB's return download to stall", ccb.Server.Faults.Stalled())
	kill(cmd, events)
	ccb.Server.Faults.Unstall()

	// 3. During reconciliation: kill once the child has claimed a return
	// file, which it reconciles right after (the claimed event).
	claimed := make(chan struct{})
	var once sync.Once
	cmd, events = start(func(l string) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == string(monitor.Claimed) && strings.Contains(f[2], "_RET") {
			once.Do(func() { close(claimed) })
		}
	})
	wait("a return file claimed for reconciliation", claimed)
	kill(cmd, events)
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "hub", "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var inFlight int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sftp_claims WHERE state = 'claimed'`).Scan(&inFlight); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d return files claimed and not finished", inFlight)

	// 4. Resume to the end.
	cmd, events = start(nil)
	err = cmd.Wait()
	<-events
	if err != nil {
		t.Fatalf("resumed run failed: %v\n%s", err, childLog())
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
	if log := childLog(); !strings.Contains(log, "PASS") {
		t.Fatalf("child log:\n%s", log)
	}
}
