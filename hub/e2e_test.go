package hub_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// TestServeRunsACycleFromTheConsole starts the whole hub as serve runs it
// (no demo driver) against six simulated banks and drives a month from the
// console API as two operators would: the list from the inbox, the letter
// total, district and city confirmations by two accounts. The hub's cycle
// runner does the rest; the monitor store and the audit chain show it.
func TestServeRunsACycleFromTheConsole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sims := hubtest.StartBanks(t, filepath.Join(dir, "banks"), "../configs/mappings")
	srv := hubtest.Start(t, hubtest.Options{Dir: filepath.Join(dir, "hub"), Hub: hub.Options{Banks: hubtest.BankConfigs(sims)}})
	svc := srv.Hub.Disbursement()
	if svc == nil {
		t.Fatal("serve built no disbursement service")
	}
	alice := srv.Console(t, "alice", accounts.RoleOperator)
	bob := srv.Console(t, "bob", accounts.RoleOperator)
	auditor := srv.Console(t, "carol", accounts.RoleAuditor)

	period := "2026-10"
	if err := os.MkdirAll(svc.InboxDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(svc.InboxDir(), "list-"+period+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	listOpts := disbursement.GenerateOptions{Persons: 600, Seed: 7, Period: period, Anomalies: true}
	if err := disbursement.WriteList(f, listOpts); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	base := "/console/disbursement/batches/disbursement/" + period
	// Auditors read but do not act; bad input gets problem+json.
	if code, out := auditor.Do("POST", base+"/run", map[string]any{"list": "list-" + period + ".csv"}); code != 403 || out["code"] != "forbidden" {
		t.Fatalf("auditor run: %d %v", code, out)
	}
	if code, out := alice.Do("POST", base+"/run", map[string]any{"list": "../etc/passwd"}); code != 422 || out["code"] != "validation_failed" {
		t.Fatalf("path in list: %d %v", code, out)
	}
	if code, out := alice.Do("POST", base+"/run", map[string]any{"list": "list-" + period + ".csv"}); code != 202 {
		t.Fatalf("run: %d %v", code, out)
	}
	b := waitBatch(t, srv, period, disbursement.BatchAwaitingLetter)
	if b.SystemTotal <= 0 || b.Valid == 0 {
		t.Fatalf("intake found nothing: %+v", b)
	}
	// A wrong letter total is a failed check: it settles nothing and the
	// batch shows failed with the reason.
	if code, out := alice.Do("POST", base+"/run", map[string]any{"letter_total_fen": b.SystemTotal + 1}); code != 202 {
		t.Fatalf("letter total: %d %v", code, out)
	}
	failed := waitBatch(t, srv, period, disbursement.BatchFailed)
	if failed.Stage != disbursement.StageTotalCheck || failed.Error == "" {
		t.Fatalf("wrong letter total: %+v", failed)
	}
	for _, s := range sims {
		if s.Taken.Load() != 0 {
			t.Fatal("a file went out despite the failed total check")
		}
	}
	if code, out := alice.Do("POST", base+"/run", map[string]any{"letter_total_fen": b.SystemTotal}); code != 202 {
		t.Fatalf("letter total: %d %v", code, out)
	}
	waitBatch(t, srv, period, disbursement.BatchAwaiting)
	if code, out := alice.Do("POST", base+"/confirm", map[string]any{"level": "district"}); code != 200 {
		t.Fatalf("district: %d %v", code, out)
	}
	// The city must be confirmed by another account.
	if code, out := alice.Do("POST", base+"/confirm", map[string]any{"level": "city"}); code != 409 || out["code"] != "conflict" {
		t.Fatalf("same user at city level: %d %v", code, out)
	}
	if code, out := bob.Do("POST", base+"/confirm", map[string]any{"level": "city"}); code != 200 {
		t.Fatalf("city: %d %v", code, out)
	}
	done := waitBatch(t, srv, period, disbursement.BatchDone)
	if code, out := auditor.Do("GET", base, nil); code != 200 || out["batch"].(map[string]any)["status"] != "done" {
		t.Fatalf("status: %d %v", code, out)
	}
	st, err := svc.Status(ctx, bank.Disbursement, period)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts["paid"] == 0 || st.Counts["sent"] != 0 || st.Counts["listed"] != 0 {
		t.Fatalf("after the cycle: %v", st.Counts)
	}

	// Every stage reached the configured monitor store.
	waitEvents(t, srv, done.Name, len(disbursement.Stages)-1)
	// The actions are in the audit chain under the console users' names.
	requireAudited(t, srv, []audited{
		{"console:alice", "disbursement.run"},
		{"console:alice", "disbursement.letter_total"},
		{"user:alice", "disbursement.confirm.district"},
		{"user:bob", "disbursement.confirm.city"},
	})
	// No personal data of the month is left in plaintext in the data directory.
	requireNoPersonalData(t, srv.Dir, listOpts)
}

// audited is an actor and an action the audit chain must hold.
type audited struct{ actor, action string }

// requireAudited fails the test for each want the hub's audit chain lacks.
func requireAudited(t *testing.T, srv *hubtest.Server, wants []audited) {
	t.Helper()
	for _, want := range wants {
		es, err := srv.Hub.Security().Audit.List(context.Background(), audit.Filter{Actor: want.actor, Action: want.action})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			t.Errorf("no audit record %s by %s", want.action, want.actor)
		}
	}
}

// waitBatch waits until the batch of period has status, looking again each
// time the service changes a batch, bounded by a minute.
func waitBatch(t *testing.T, srv *hubtest.Server, period, status string) *disbursement.Batch {
	t.Helper()
	svc := srv.Hub.Disbursement()
	late := time.After(60 * time.Second)
	for {
		next := svc.Changed()
		b, err := svc.Batch(context.Background(), bank.Disbursement, period)
		if err == nil && b.Status == status {
			return b
		}
		select {
		case <-next:
		case <-late:
			t.Fatalf("batch never reached %s: %+v (%v)", status, b, err)
		}
	}
}

// waitEvents waits until the monitor store holds at least n finished-stage
// events of batch, looking again each time the monitor's writer has stored
// a batch of events, bounded by 30 seconds.
func waitEvents(t *testing.T, srv *hubtest.Server, batch string, n int) {
	t.Helper()
	late := time.After(30 * time.Second)
	got := 0
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		evs, err := srv.Hub.Monitor().Store().Search(context.Background(), monitor.Filter{BatchID: batch, Type: monitor.StageChanged, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		stages := map[string]bool{}
		for _, ev := range evs {
			if len(ev.Attrs["detail"]) > 9 && ev.Attrs["detail"][:9] == "finished:" {
				stages[ev.Stage] = true
			}
		}
		if got = len(stages); got >= n {
			return
		}
		select {
		case <-stored:
		case <-late:
			t.Fatalf("monitor store holds %d finished stages of %s, want %d", got, batch, n)
		}
	}
}
