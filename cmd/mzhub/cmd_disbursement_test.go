package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
)

// TestDisbursementCLI runs a month from the CLI against the in-process bank
// simulators: the run waits for the letter total, the resume with the
// letter and two confirmers pays, and every stage reaches the configured
// monitor store. With another process holding the cycle lease (a running
// serve), the CLI only queues its request.
func TestDisbursementCLI(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	monPath := filepath.Join(dir, "monitor.db")
	dbPath := filepath.Join(dir, "state.db")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + dbPath +
		"\nmonitor:\n  sqlite_path: " + monPath +
		"\nsecurity:\n  key_provider: file\n  key_dir: " + filepath.Join(dir, "keys") +
		"\npaths:\n  partners: ../../configs/partners\n  routes: ../../configs/routes\n  mappings: ../../configs/mappings\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"disbursement", args[0], "--config", cfgPath, "--demo"}, args[1:]...)...)
		if code != want {
			t.Fatalf("mzhub disbursement %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out
	}

	out := run(0, "run", "--generate", "300", "--period", "2026-09")
	m := regexp.MustCompile(`waiting for the letter total; the system total is (\d+) fen`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run did not stop for the letter total: %s", out)
	}
	out = run(0, "resume", "--period", "2026-09", "--letter-total", m[1], "--confirm-district", "d.officer", "--confirm-city", "c.officer")
	if !strings.Contains(out, "disbursement-2026-09  stage done (done)") {
		t.Fatalf("resume did not finish the cycle: %s", out)
	}

	ctx := context.Background()
	ms, err := sqlite.Open(ctx, monPath)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ms.Search(ctx, monitor.Filter{BatchID: "disbursement-2026-09", Type: monitor.StageChanged, Limit: 500})
	_ = ms.Close()
	if err != nil {
		t.Fatal(err)
	}
	finished := map[string]bool{}
	for _, ev := range evs {
		if strings.HasPrefix(ev.Attrs["detail"], "finished:") {
			finished[ev.Stage] = true
		}
	}
	if len(finished) < 9 {
		t.Fatalf("the CLI run left %d finished stages in the monitor store (%v), want every stage", len(finished), finished)
	}

	// A serve replica holds the cycle lease: the CLI queues and leaves the run to it.
	sc := store.DefaultConfig()
	sc.Driver, sc.Path = "sqlite", dbPath
	db, err := store.Open(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	el, err := lease.New(ctx, db, lease.Options{Node: "serve-1"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := el.TryAcquire(ctx, hub.CycleLease); !ok || err != nil {
		t.Fatalf("take the lease: %v %v", ok, err)
	}
	out = run(0, "run", "--generate", "100", "--period", "2026-08")
	if !strings.Contains(out, "queued; the hub on serve-1 runs cycles") {
		t.Fatalf("run with serve holding the lease: %s", out)
	}
	out = run(0, "status", "--period", "2026-08")
	if !strings.Contains(out, "stage intake (queued)") {
		t.Fatalf("the queued batch was run by the CLI: %s", out)
	}
}
