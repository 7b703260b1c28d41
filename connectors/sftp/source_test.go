package sftp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
)

// putInbound places a data file and its done file in the partner's download folder.
func (f *fixture) putInbound(t *testing.T, name string, data []byte, records, totalFen int64) {
	t.Helper()
	p := filepath.Join(f.srv.Root(), "download", name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	digest, size, err := DigestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	done := DoneInfo{File: name, Bytes: size, Records: records, TotalFen: totalFen, SM3: digest}
	if err := os.WriteFile(p+".done", done.Marshal(), 0o640); err != nil {
		t.Fatal(err)
	}
}

type emitted struct {
	mu       sync.Mutex
	msgs     []connectors.Message
	fail     error
	attempts int
}

func (e *emitted) emit(_ context.Context, msgs ...connectors.Message) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.attempts++
	if e.fail != nil {
		return e.fail
	}
	e.msgs = append(e.msgs, msgs...)
	return nil
}

func (e *emitted) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.msgs)
}

func (e *emitted) tries() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attempts
}

func TestSourceEmitsEachFileOnceAndAcksAfterEmit(t *testing.T) {
	f := newFixture(t)
	reg := connectors.NewRegistry()
	// The kind registered in init is what routes build from YAML.
	spec, err := connectors.Builtin().Lookup("sftp")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		t.Fatal(err)
	}
	cfg := spec.Source.NewConfig().(*SourceConfig)
	cfg.Config = f.config()
	cfg.Partner, cfg.Flow, cfg.Interval = "bank.test", "disbursement-return", 20*time.Millisecond
	// The source polls on a fake clock: each pass ends with Run waiting for
	// the next interval (BlockUntil), and the test decides when it starts.
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	deps := connectors.Deps{Store: f.db, Events: f.events, DataDir: f.dir, Clock: fake}
	src, err := spec.Source.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	f.putInbound(t, "RET_202611_1.txt", []byte("H|2\nD|1|100\nD|2|200\nT|2|300\n"), 2, 300)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	pass := func(what string) {
		t.Helper()
		if err := fake.BlockUntil(wctx, 1); err != nil {
			t.Fatalf("%s: the source never finished its pass: %v", what, err)
		}
	}

	// While the bus refuses, the file stays where it is (claimed, retried).
	out := &emitted{fail: errors.New("bus unavailable")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out.emit) }()
	for i := range 2 {
		pass("a pass while the bus refuses")
		if n := out.tries(); n < i+1 {
			t.Fatalf("after pass %d the source tried to emit %d times", i+1, n)
		}
		if _, err := os.Stat(filepath.Join(f.srv.Root(), "download", "RET_202611_1.txt")); err != nil {
			t.Fatalf("file moved although emit failed: %v", err)
		}
		fake.Advance(cfg.Interval)
	}
	// Once the bus accepts, the file is emitted once and moved to processed/.
	out.mu.Lock()
	out.fail = nil
	out.mu.Unlock()
	pass("the pass after the bus came back")
	if out.count() != 1 {
		t.Fatalf("emitted %d messages once the bus accepted, want 1", out.count())
	}
	for range 2 { // more passes must not emit it again
		fake.Advance(cfg.Interval)
		pass("a later pass")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.count() != 1 {
		t.Fatalf("emitted %d messages, want 1", out.count())
	}
	m := out.msgs[0]
	if string(m.Body) != "H|2\nD|1|100\nD|2|200\nT|2|300\n" || m.Headers["file-name"] != "RET_202611_1.txt" ||
		m.Headers["mzhub-records"] != "2" || m.Headers["mzhub-amount-fen"] != "300" || len(m.Headers["mzhub-digest"]) != 64 ||
		!strings.HasPrefix(m.IdempotencyKey, "bank.test/RET_202611_1.txt/") || m.Key != "bank.test" {
		t.Fatalf("message = %+v", m)
	}
	if _, err := os.Stat(filepath.Join(f.srv.Root(), "download", "processed", "RET_202611_1.txt")); err != nil {
		t.Fatalf("file not moved to processed/: %v", err)
	}

	// A restarted source (a new process) does not emit it again: its first
	// pass (on a clock of its own) ends without an emit.
	fake = clock.NewFake(t0)
	deps.Clock = fake
	src2, err := spec.Source.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	out2 := &emitted{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- src2.Run(ctx2, out2.emit) }()
	pass("the restarted source's first pass")
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("Run after restart: %v", err)
	}
	if out2.count() != 0 {
		t.Fatalf("restarted source emitted %d messages, want 0", out2.count())
	}
}

func TestSourceConfigValidate(t *testing.T) {
	c := DefaultSourceConfig()
	err := c.Validate()
	for _, want := range []string{"addr: required", "partner: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
