package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// TestDisbursementStatusCreatesNoKeys: status only reads; on a hub that
// has no keys yet it creates none.
func TestDisbursementStatusCreatesNoKeys(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	keyDir := filepath.Join(dir, "keys")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + filepath.Join(dir, "state.db") +
		"\nmonitor:\n  sqlite_path: " + filepath.Join(dir, "monitor.db") +
		"\nsecurity:\n  key_provider: file\n  key_dir: " + keyDir +
		"\npaths:\n  partners: ../../configs/partners\n  routes: ../../configs/routes\n  mappings: ../../configs/mappings\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "disbursement", "status", "--config", cfgPath, "--period", "2026-09")
	if code == 0 {
		t.Fatalf("status of nothing succeeded: %s %s", out, errOut)
	}
	if es, _ := os.ReadDir(keyDir); len(es) > 0 {
		t.Fatalf("status created %d key files", len(es))
	}
}

// TestWriteStatus: the status is tables a person reads (no Go maps), a
// failed upload and a refused return are shown as such with why, and a
// cycle that ended with every record missing is a failure.
func TestWriteStatus(t *testing.T) {
	st := &disbursement.StatusReport{
		Batch:  disbursement.Batch{Name: "disbursement-2026-11", Stage: disbursement.StageDone, Status: "done", Records: 516, Valid: 516},
		Stages: []disbursement.StageInfo{{Stage: "returns", StartedMs: 1000, EndedMs: 3500, Detail: "bocom: 0 paid, 0 failed, 516 missing"}},
		Counts: map[string]int64{"missing": 516},
		Issues: map[string]int64{"shared_account": 2},
		Files: []disbursement.FileInfo{
			{Bank: "bocom", Direction: "out", Name: "BOCOM_DF_202611.txt", State: "upload_failed", Records: 516, TotalFen: 38700000, Detail: "sftp bank.bocom: upload: connection refused"},
			{Bank: "bocom", Direction: "return", Name: "BOCOM_DF_202611_RET.txt", State: "refused", Detail: "file refused: no detail records"},
		},
	}
	var b bytes.Buffer
	writeStatus(&b, st)
	out := b.String()
	for _, want := range []string{"disbursement-2026-11  stage done (done)", "STAGE", "2.50s", "RECORDS", "missing", "516",
		"ISSUE", "shared_account", "BANK", "UPLOAD FAILED", "connection refused", "REFUSED", "no detail records", "387000.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "map[") {
		t.Errorf("status prints Go maps:\n%s", out)
	}
	if allMissing(st) == "" {
		t.Error("a cycle with every record missing passes")
	}
	st.Counts = map[string]int64{"missing": 3, "paid": 513}
	if msg := allMissing(st); msg != "" {
		t.Errorf("a cycle with payments fails: %s", msg)
	}
}
