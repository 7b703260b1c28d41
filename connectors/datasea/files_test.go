package datasea_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/connectors/sftp/sftptest"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// drop writes a batch file and its done file (counting records lines) into dir.
func drop(t *testing.T, dir, name string, data []byte, records int64) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	digest, n, err := filesign.DigestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	done := sftp.DoneInfo{File: name, Bytes: n, Records: records, SM3: digest}
	if err := os.WriteFile(p+".done", done.Marshal(), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := sftptest.Start(filepath.Join(dir, "remote"), "mca", "secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	out := filepath.Join(srv.Root(), "out")
	if err := os.MkdirAll(out, 0o750); err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t)
	if err := sftp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	deaths := dataseasim.Generate(40, 12, "2026-12-01", 1)
	var b bytes.Buffer
	if err := datasea.WriteFile(&b, deaths); err != nil {
		t.Fatal(err)
	}
	b.WriteString("X9|death|310101190001011231|王五|2026-12-01|310101|\n") // wrong check digit
	drop(t, out, "DEATH_20261201.txt", b.Bytes(), int64(len(deaths)+1))
	drop(t, out, "MIGRATION_20261201.txt", b.Bytes(), 3) // the done file miscounts
	drop(t, out, "OTHER_20261201.txt", b.Bytes(), int64(len(deaths)+1))

	sc := sftp.DefaultConfig()
	sc.Addr, sc.User, sc.Password, sc.HostKeyFingerprint = srv.Addr(), "mca", "secret", srv.Fingerprint()
	sc.PollDir, sc.LocalDir, sc.Node = "out", filepath.Join(dir, "local"), "node-a"
	sc.OpTimeout, sc.RetryBackoff = 5*time.Second, 10*time.Millisecond
	cfg := datasea.DefaultConfig()
	cfg.SFTP = &sc
	mem := newMem()
	ev := &monitortest.Recorder{}
	files, err := datasea.NewFiles(cfg, connectors.Deps{Store: db, Events: ev, Clock: clock.NewFake(day), DataDir: dir}, mem)
	if err != nil {
		t.Fatal(err)
	}
	res, err := files.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Processed != 1 || res.Failed != 1 {
		t.Fatalf("poll: %+v", res)
	}
	if len(mem.applied) != len(deaths) || len(mem.bad) != 1 || !strings.HasSuffix(mem.bad[0].Ref, "line 41") {
		t.Fatalf("applied %d, bad %+v", len(mem.applied), mem.bad)
	}
	if ev.Count(func(e monitor.Event) bool {
		return e.Type == monitor.Rejected && e.FileName == "MIGRATION_20261201.txt" && e.ErrorCode == "trailer_mismatch"
	}) != 1 {
		t.Fatal("the miscounted file was not rejected with its reason")
	}
	// Polled again: nothing is handed over twice, the unknown file stays.
	res, err = files.Poll(ctx)
	if err != nil || res.Processed != 0 {
		t.Fatalf("second poll: %+v %v", res, err)
	}
	for id, n := range mem.times {
		if n != 1 {
			t.Fatalf("record %s applied %d times", id, n)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "OTHER_20261201.txt")); err != nil {
		t.Fatalf("a file not of the platform was taken: %v", err)
	}
}
