package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

// TestDLQCommand: list shows a dead letter; replay is audited and turns it
// into a replay request; a second action on it is refused.
func TestDLQCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	body := fmt.Sprintf("profile: embedded\ndata_dir: %s\nstore:\n  path: %s\nmonitor:\n  sqlite_path: %s\nsecurity:\n  key_dir: %s\n",
		dir, filepath.Join(dir, "state.db"), filepath.Join(dir, "monitor.db"), filepath.Join(dir, "keys"))
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	kp, err := keys.New("file", filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Init(ctx, kp, time.Now()); err != nil {
		t.Fatal(err)
	}
	scfg := store.DefaultConfig()
	scfg.Path = filepath.Join(dir, "state.db")
	db, err := store.Open(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := routes.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO routes_dead_letters (route, sink, step, endpoint, error, attempts, idem, msg, created_at, state, code)
		VALUES ('village-bank-query-vb01', 'answers', '', 'POST http://vb01/deposit-query', '503', 6, 'r-1@vb01', '{"IdempotencyKey":"r-1@vb01","Body":"e30="}', 0, 'dead', 'in_doubt')`); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, "dlq", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "village-bank-query-vb01") || !strings.Contains(out, "POST http://vb01/deposit-query") || !strings.Contains(out, " in_doubt ") {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runCLI(t, "dlq", "replay", "--config", cfgPath, "--id", "1"); code != 2 {
		t.Fatalf("replay without --actor exited %d, want 2", code)
	}
	code, out, errOut = runCLI(t, "dlq", "replay", "--config", cfgPath, "--id", "1", "--actor", "ops.wang")
	if code != 0 || !strings.Contains(out, "replay requested") {
		t.Fatalf("replay: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runCLI(t, "dlq", "drop", "--config", cfgPath, "--id", "1", "--actor", "ops.wang"); code != 1 {
		t.Fatalf("drop after replay exited %d, want 1", code)
	}
	key, _ := kp.Get(ctx, keys.AuditName)
	alog, err := audit.Open(ctx, db, key)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := alog.List(ctx, audit.Filter{Action: "routes.dlq.replay"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "user:ops.wang" {
		t.Fatalf("audit entries: %+v %v", entries, err)
	}
	code, out, _ = runCLI(t, "dlq", "list", "--config", cfgPath, "--state", "replay", "--json")
	if code != 0 || !strings.Contains(out, `"State": "replay"`) {
		t.Fatalf("list replay: %d %s", code, out)
	}
}

// TestTestCommand: mzhub test passes on the shipped routes and mappings and
// fails on a wrong expectation.
func TestTestCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "test", "../../configs/routes")
	if code != 0 || !strings.Contains(out, " 0 failed") {
		t.Fatalf("shipped route tests: %d\n%s\n%s", code, out, errOut)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("id: r\nfrom: {kind: bus, config: {topic: x}}\nto:\n  - name: out\n    kind: bus\n    config: {topic: y}\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "r_test.yaml"), []byte("tests:\n  - name: wrong\n    input: [{body: a}]\n    expect: {out: [{body: b}]}\n"), 0o600)
	code, out, _ = runCLI(t, "test", dir)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, `body "a", want "b"`) {
		t.Fatalf("failing test: %d\n%s", code, out)
	}
}
