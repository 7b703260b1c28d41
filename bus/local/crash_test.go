package local_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// crashEnv makes the test binary act as the crashing child of
// TestKill9NothingLost: it names the database file.
const crashEnv = "MZHUB_BUS_CRASH_CHILD_DB"

const crashTopic = "crash.topic"

// TestKill9NothingLost runs a child process (this test binary) that publishes
// and consumes concurrently, SIGKILLs it mid-flight, reopens the bus on the
// same file and checks that every message whose Publish returned nil in the
// child is either handed to Ack by the child or delivered now. It does it
// twice on the same file.
func TestKill9NothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: skipping the kill -9 test")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	published := map[string]bool{}
	acked := map[string]bool{}
	for round := range 2 {
		runCrashChild(t, path, round, published, acked)
	}
	db := openDB(t, path)
	var check string
	if err := db.QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity check: %q %v", check, err)
	}
	b := openBus(t, db)
	defer b.Close(context.Background())
	s, err := b.Subscribe(context.Background(), bus.SubscribeOptions{Topic: crashTopic, Subscription: "s", Prefetch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	after := map[string]bool{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := s.Receive(ctx)
		cancel()
		if err != nil {
			break
		}
		after[d.Message().IdempotencyKey] = true
		_ = d.Ack(context.Background())
	}
	lost := 0
	for k := range published {
		if !acked[k] && !after[k] {
			lost++
			if lost < 10 {
				t.Errorf("lost %s: Publish returned nil in the child, never handed to Ack, not delivered after restart", k)
			}
		}
	}
	redelivered := 0
	for k := range after {
		if acked[k] {
			redelivered++
		}
	}
	t.Logf("published %d, acked by children %d, delivered after restart %d (of which %d acked before the kill: at-least-once), lost %d",
		len(published), len(acked), len(after), redelivered, lost)
	if len(acked) == 0 || len(published) < 1000 {
		t.Fatalf("child did too little work to prove anything: %d published, %d acked", len(published), len(acked))
	}
}

func runCrashChild(t *testing.T, path string, round int, published, acked map[string]bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("MZHUB_BUS_CRASH_ROUND=%d", round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	p, a := 0, 0
	timeout := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timeout.Stop()
	killed := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "P "):
			published[line[2:]] = true
			p++
		case strings.HasPrefix(line, "A "):
			acked[line[2:]] = true
			a++
		}
		if !killed && p >= 3000 && a >= 500 {
			// SIGKILL in the middle of publishing and consuming.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("round %d: child ended before the kill (published %d, acked %d): %v", round, p, a, err)
	}
	t.Logf("round %d: killed child after %d publishes and %d acks seen", round, p, a)
}

// TestCrashChild is the child process of TestKill9NothingLost; it runs only
// when crashEnv is set, and never returns on its own (it is killed).
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process of TestKill9NothingLost")
	}
	round := os.Getenv("MZHUB_BUS_CRASH_ROUND")
	db := openDB(t, path)
	b := openBus(t, db)
	ctx := context.Background()
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: crashTopic, Subscription: "s", Prefetch: 64})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	emit := func(kind, key string) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "%s %s\n", kind, key)
		mu.Unlock()
	}
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				n := 1 + i%8
				msgs := make([]bus.Message, n)
				for j := range msgs {
					msgs[j] = bus.Message{
						Key:            fmt.Sprintf("k%d", (i+j)%32),
						IdempotencyKey: fmt.Sprintf("r%s-w%d-%d-%d", round, w, i, j),
						Body:           []byte("payload"),
					}
				}
				if err := b.Publish(ctx, crashTopic, msgs...); err != nil {
					fmt.Fprintln(os.Stderr, "child publish:", err)
					return
				}
				for _, m := range msgs {
					emit("P", m.IdempotencyKey)
				}
			}
		}()
	}
	for range 2 {
		go func() {
			for {
				d, err := s.Receive(ctx)
				if err != nil {
					return
				}
				// Announce before acking: an ack may commit before a line
				// printed after it, and the kill can fall in between.
				emit("A", d.Message().IdempotencyKey)
				_ = d.Ack(ctx)
			}
		}()
	}
	select {} // killed by the parent
}
