package bankaccounts

import (
	"bufio"
	"context"
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
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
)

// The child process of TestSIGKILLAccountFiles: childEnv names its spec;
// its monitor events go as lines "type partner file" to file descriptor 3
// (the parent's signal of what it does); freezeEnv, "type partner", makes
// it stop for good right after writing the first such event (the sftp
// client emits it synchronously: uploaded is after the file reached the
// bank and before the service records it sent, claimed is after the
// result file is claimed and before its results are applied), so that the
// parent's SIGKILL lands exactly there.
const (
	killChildEnv = "MZHUB_ACCOUNTS_CHILD"
	freezeEnv    = "MZHUB_ACCOUNTS_FREEZE"
)

type killSpec struct {
	Dir   string
	Banks []bank.Config
	Reqs  []Request
}

type freezingEvents struct {
	mu     sync.Mutex
	w      io.Writer
	freeze string
}

func (f *freezingEvents) Emit(e monitor.Event) {
	f.mu.Lock()
	line := fmt.Sprintf("%s %s %s", e.Type, e.Partner, e.FileName)
	fmt.Fprintln(f.w, line)
	frozen := f.freeze != "" && strings.HasPrefix(line, f.freeze)
	f.mu.Unlock()
	if frozen {
		select {} // until the SIGKILL
	}
}

// TestAccountsKillChild is the account service of the child process; it
// skips in a normal test run. It submits the spec's requests (stored once
// by ext_id: a restart submits nothing new) and runs passes until every
// request is answered.
func TestAccountsKillChild(t *testing.T) {
	p := os.Getenv(killChildEnv)
	if p == "" {
		t.Skip("runs only as the child process of TestSIGKILLAccountFiles")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var spec killSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(spec.Dir, "state.db")
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sftp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key of the tests"))
	if err != nil {
		t.Fatal(err)
	}
	mroot, err := banksim.FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	ev := &freezingEvents{w: os.NewFile(3, "events"), freeze: os.Getenv(freezeEnv)}
	var banks []*bank.Bank
	for _, c := range spec.Banks {
		files, err := bank.LoadFileSet(os.DirFS(mroot), c.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bank.New(c, files, connectors.Deps{Store: db, DataDir: filepath.Join(spec.Dir, "hub")}, "disbursement", sftp.Keys{})
		if err != nil {
			t.Fatal(err)
		}
		banks = append(banks, b)
	}
	svc, err := New(ctx, Options{DB: db, Fields: ring, Banks: banks, Dir: filepath.Join(spec.Dir, "work"),
		Deps: connectors.Deps{DataDir: filepath.Join(spec.Dir, "hub"), Events: ev}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	if _, err := svc.Submit(ctx, spec.Reqs); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := svc.Pass(ctx); err != nil {
			t.Logf("pass: %v", err)
		}
		n, err := svc.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests unanswered", n)
		}
		svc.wait(ctx, 50*time.Millisecond) // the service's own pause between passes
	}
}

// TestSIGKILLAccountFiles kills the account service (SIGKILL) while an
// account request file is being uploaded to BOC, after CCB has a file but
// before the service recorded it sent, and after a result file is claimed
// but before its results are applied; then lets it finish. Every request
// is answered by its bank exactly once (none sent twice, none lost), every
// result is applied once, and each person has one state.
func TestSIGKILLAccountFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	mroot, err := banksim.FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := banksim.ShippedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 20 * time.Millisecond
	sims := map[string]*banksim.Bank{}
	var spec killSpec
	spec.Dir = filepath.Join(dir, "hub")
	for _, c := range cfgs {
		if c.Code != "boc" && c.Code != "ccb" {
			continue
		}
		sim, err := banksim.Start(context.Background(), filepath.Join(dir, "sim"), c, os.DirFS(mroot), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sim.Close() })
		sims[c.Code] = sim
		spec.Banks = append(spec.Banks, sim.Config)
	}
	// 60 persons: openings and verifications at both banks, a few refused.
	g := synth.New(41)
	want := map[string]int64{}
	for i := range 60 {
		p := g.Next()
		code, op, acct := "boc", bank.OpOpen, ""
		if i%2 == 1 {
			code = "ccb"
		}
		if i%3 == 2 {
			op, acct = bank.OpVerify, p.Account
		}
		if i%10 == 0 {
			sims[code].FailPerson(p.ID, bank.OutcomeMismatch)
		}
		spec.Reqs = append(spec.Reqs, Request{ExtID: fmt.Sprint("k", i), Bank: code, Op: op, PersonID: p.ID, Name: p.Name, Account: acct, Division: p.Division})
		want[code]++
	}
	specPath := filepath.Join(dir, "child.json")
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	childLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "child.log")); return string(b) }
	// start runs the child, frozen at freeze ("" never); each event line
	// goes to onLine; the channel closes once the child's end is closed.
	start := func(freeze string, onLine func(string)) (*exec.Cmd, <-chan struct{}) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAccountsKillChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), killChildEnv+"="+specPath, freezeEnv+"="+freeze)
		out, _ := os.OpenFile(filepath.Join(dir, "child.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		cmd.Stdout, cmd.Stderr = out, out
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{w}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
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
	// on returns a line handler closing the channel at the first line with prefix.
	on := func(prefix string) (func(string), <-chan struct{}) {
		ch := make(chan struct{})
		var once sync.Once
		return func(l string) {
			if strings.HasPrefix(l, prefix) {
				once.Do(func() { close(ch) })
			}
		}, ch
	}

	// 1. Mid-upload: BOC's server stalls the transfer of the temporary file.
	boc := sims["boc"]
	boc.Server.Faults.StallOnly("*.part")
	boc.Server.Faults.StallReads.Store(true)
	cmd, events := start("", nil)
	wait("BOC's upload to stall", boc.Server.Faults.Stalled())
	if m, _ := filepath.Glob(filepath.Join(boc.Root(), "upload", "*.part")); len(m) == 0 {
		t.Fatal("BOC's upload stalled but no temporary file is open on the server")
	}
	kill(cmd, events)
	boc.Server.Faults.Unstall()
	if boc.AccountsAnswered(bank.OpOpen)+boc.AccountsAnswered(bank.OpVerify) != 0 {
		t.Fatal("BOC answered a file whose upload was killed")
	}

	// 2. CCB has the file, the service has not recorded it sent.
	h, uploaded := on(string(monitor.Uploaded) + " bank.ccb ")
	cmd, events = start(string(monitor.Uploaded)+" bank.ccb", h)
	wait("CCB's upload", uploaded)
	kill(cmd, events)
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(spec.Dir, "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var unrecorded int
	if err := db.QueryRow(`SELECT COUNT(*) FROM acct_files WHERE bank = 'ccb' AND status = 'filed'`).Scan(&unrecorded); err != nil || unrecorded == 0 {
		t.Fatalf("killed with %d of CCB's files uploaded and not recorded sent (%v)", unrecorded, err)
	}

	// 3. A result file claimed, its results not applied.
	h, claimed := on(string(monitor.Claimed) + " bank.")
	cmd, events = start(string(monitor.Claimed)+" bank.", h)
	wait("a result file claimed", claimed)
	kill(cmd, events)
	var claimedOpen int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sftp_claims WHERE state = 'claimed'`).Scan(&claimedOpen); err != nil || claimedOpen == 0 {
		t.Fatalf("killed with %d result files claimed and not finished (%v)", claimedOpen, err)
	}

	// 4. Resume to the end.
	cmd, events = start("", nil)
	err = cmd.Wait()
	<-events
	if err != nil {
		t.Fatalf("resumed run failed: %v\n%s", err, childLog())
	}
	for code, sim := range sims {
		if got := sim.AccountsAnswered(bank.OpOpen) + sim.AccountsAnswered(bank.OpVerify); got != want[code] {
			t.Errorf("%s answered %d requests, want %d (each once)", code, got, want[code])
		}
	}
	var settled, results, states int
	var applied int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM acct_requests WHERE status IN ('done', 'failed')`).Scan(&settled); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(records), 0) FROM acct_results`).Scan(&results, &applied); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM acct_state`).Scan(&states); err != nil {
		t.Fatal(err)
	}
	if settled != len(spec.Reqs) || applied != int64(len(spec.Reqs)) || states != len(spec.Reqs) {
		t.Fatalf("%d of %d requests settled, %d results applied from %d files, %d states", settled, len(spec.Reqs), applied, results, states)
	}
	if !strings.Contains(childLog(), "PASS") {
		t.Fatalf("child log:\n%s", childLog())
	}
}
