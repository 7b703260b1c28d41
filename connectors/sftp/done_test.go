package sftp

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
)

// TestDoneFileCaughtMidWrite: a partner that writes its done file in place
// (not by rename) can be polled between two writes. The half-written done
// file must leave the data file waiting, not reject it into failed/ (the
// return would then never be read); the finished done file is then
// honoured. A done file that stays malformed is retried on the next polls
// for done_wait (however long its size stays the same) and only then
// refused.
func TestDoneFileCaughtMidWrite(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.StableFor = time.Minute
	cfg.DoneWait = 5 * time.Minute
	fake := clock.NewFake(time.Date(2026, 11, 5, 9, 0, 0, 0, clock.Shanghai))
	c, err := New("bank.test", "disbursement", cfg, connectors.Deps{Store: f.db, Events: f.events, DataDir: f.dir, Clock: fake}, Keys{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	dl := filepath.Join(f.srv.Root(), "download")
	data := []byte("R|1|paid\nR|2|failed\n")
	digest, size, err := DigestFile(f.localFile(t, "tmp", data))
	if err != nil {
		t.Fatal(err)
	}
	whole := DoneInfo{File: "r.txt", Bytes: size, SM3: digest}.Marshal()
	if err := os.WriteFile(filepath.Join(dl, "r.txt"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	calls := 0
	h := func(context.Context, Inbound) error { calls++; return nil }
	ctx := context.Background()
	for _, cut := range []int{len("file=r.txt\n"), len(whole) - 20} { // before the sm3 line; inside the digest
		if err := os.WriteFile(filepath.Join(dl, "r.txt.done"), whole[:cut], 0o640); err != nil {
			t.Fatal(err)
		}
		res, err := c.Poll(ctx, PollOptions{}, h)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rejected != 0 || calls != 0 {
			t.Fatalf("done file cut at %d bytes: %+v, handler calls %d", cut, res, calls)
		}
		if _, err := os.Stat(filepath.Join(dl, "failed", "r.txt")); err == nil {
			t.Fatalf("done file cut at %d bytes: the data file went to failed/", cut)
		}
	}
	if err := os.WriteFile(filepath.Join(dl, "r.txt.done"), whole, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(ctx, PollOptions{}, h); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the completed done file was not honoured: handler calls %d", calls)
	}

	// A done file that stays malformed is retried for done_wait, then refused.
	if err := os.WriteFile(filepath.Join(dl, "m.txt"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dl, "m.txt.done"), []byte("file=m.txt\nsm3=zz\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, step := range []time.Duration{0, cfg.StableFor, cfg.DoneWait - cfg.StableFor - time.Second} {
		fake.Advance(step)
		if res, _ := c.Poll(ctx, PollOptions{}, h); res.Rejected != 0 || res.Waiting != 1 {
			t.Fatalf("%s into done_wait: %+v, want the file waiting", step, res)
		}
	}
	fake.Advance(time.Second)
	if res, _ := c.Poll(ctx, PollOptions{}, h); res.Rejected != 1 {
		t.Fatalf("a done file malformed for done_wait was not refused: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dl, "failed", "m.txt")); err != nil {
		t.Fatalf("the refused data file is not in failed/: %v", err)
	}
}
