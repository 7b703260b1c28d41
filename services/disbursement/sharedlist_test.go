package disbursement

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
)

// TestListSubmittedOnAnotherReplica: in a cluster each replica has its own
// data directory; a list submitted on one (console, CLI) is run by the
// replica holding the cycle lease, which reads the shared copy from the
// state database (before, its intake failed with "no list file given").
// The shared copy is sealed at rest and gone once the batch closed.
func TestListSubmittedOnAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	sims := startSims(t, filepath.Join(dir, "sim"), banksim.DefaultOptions())
	db := openDB(t, dir)
	submitter := newService(t, db, filepath.Join(dir, "replica-a"), simConfigs(sims), &monitortest.Recorder{}, &audittest.Recorder{})
	runner := newService(t, db, filepath.Join(dir, "replica-b"), simConfigs(sims), &monitortest.Recorder{}, &audittest.Recorder{})
	ring := testSealer(t)
	submitter.SetSealer(ring)
	runner.SetSealer(ring)

	list := writeList(t, t.TempDir(), GenerateOptions{Persons: 40, Seed: 7, Period: "2026-10"})
	plain, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := submitter.Submit(ctx, Request{Period: "2026-10", ListFile: list, Actor: "user:a"}); err != nil {
		t.Fatal(err)
	}
	var stored string
	var sealed int
	if err := db.QueryRowContext(ctx, `SELECT sealed, body FROM disb_lists`).Scan(&sealed, &stored); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil {
		t.Fatal(err)
	}
	if sealed != 1 || strings.Contains(string(raw), string(plain[:min(len(plain), 200)])) {
		t.Fatal("the shared list is not sealed")
	}

	served := make(chan error, 1)
	go func() { served <- runner.Serve(ctx, time.Millisecond) }()
	late := time.After(60 * time.Second)
	for {
		changed := runner.Changed()
		b, err := runner.Batch(ctx, bank.Disbursement, "2026-10")
		if err != nil {
			t.Fatal(err)
		}
		if b.Status == BatchFailed {
			t.Fatalf("the runner failed the batch at %s: %s", b.Stage, b.Error)
		}
		if b.Status == BatchAwaitingLetter {
			if b.Valid == 0 {
				t.Fatalf("the runner took in no record: %+v", b)
			}
			break
		}
		select {
		case <-changed:
		case <-late:
			t.Fatalf("the runner never took the list in: %+v", b)
		}
	}
	got, err := os.ReadFile(runner.listPath(mustBatch(t, runner, "2026-10")))
	if err != nil || string(got) != string(plain) {
		t.Fatalf("the runner's list differs from the submitted one (%v)", err)
	}
	cancel()
	<-served
}

func mustBatch(t *testing.T, s *Service, period string) *Batch {
	t.Helper()
	b, err := s.Batch(context.Background(), bank.Disbursement, period)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
