package funeral

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/spool"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
)

// crashChildEnv names the data directory of TestCrashChild's run.
const crashChildEnv = "MZHUB_FUNERAL_CRASH_CHILD"

const crashNode = "crash-node"

// crashParts opens what the child and the parent's restart share: the
// state database (records, spool), the event store and the spool.
func crashParts(t testing.TB, dir string) (*store.DB, *sqlite.Store, *spool.Spool) {
	t.Helper()
	ctx := context.Background()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "state.db")
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(ctx, db, crashNode, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db, evs, sp
}

// TestCrashChild serves the partner API for TestSIGKILLKeepsEveryAcceptedPushEvent
// until it is killed; it skips in a normal test run. Its event writer
// stores nothing before the kill (a flush interval of an hour): whatever
// survives survives through the spool.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child process of TestSIGKILLKeepsEveryAcceptedPushEvent")
	}
	ctx := context.Background()
	db, evs, sp := crashParts(t, dir)
	w := monitor.NewWriter(evs, monitor.WriterOptions{FlushSize: 1 << 20, BufferSize: 1 << 20, FlushInterval: time.Hour, Spool: sp, Node: crashNode})
	go func() { _ = w.Run(ctx) }()
	reg := testPartners(t)
	cfg := DefaultConfig()
	cfg.RatePerSecond = 0
	api, err := NewAPI(ctx, cfg, Deps{Store: db, Events: w, Partners: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	_ = http.Serve(ln, guarded(t, reg, nil, api))
}

// TestSIGKILLKeepsEveryAcceptedPushEvent: pushes are answered 2xx only once
// their monitor event is durable. The API process is killed with SIGKILL
// under load, before its writer stored a single event; at the restart,
// every push that was answered 2xx has its event in the event store.
func TestSIGKILLKeepsEveryAcceptedPushEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the child did not listen")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// Eight partners' worth of pushes until 300 were accepted, then SIGKILL
	// while the rest are in flight.
	var mu sync.Mutex
	var accepted []string
	var n atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for worker := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				body, _ := json.Marshal(hall(1, 100000+i))
				r, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/partner/v1/halls/H-%d-%05d", addr, worker, i), bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				if err := sign.SignAt(r, "fh01-k1", testSecret("fh01-k1"), time.Now(), sign.NewNonce()); err != nil {
					t.Error(err)
					return
				}
				resp, err := client.Do(r)
				if err != nil {
					return // the child is gone
				}
				_ = resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					accepted = append(accepted, resp.Header.Get(problem.RequestIDHeader))
					mu.Unlock()
					if n.Add(1) >= 300 {
						once.Do(func() { close(enough) })
					}
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d pushes accepted in 2 minutes", n.Load())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	wg.Wait()

	// The restart: a writer over the same spool stores what was spooled.
	db, evs, sp := crashParts(t, dir)
	defer db.Close()
	defer evs.Close()
	if n, _ := evs.Search(context.Background(), monitor.Filter{Limit: 10}); len(n) != 0 {
		t.Fatalf("the child stored %d events before the kill: the test would prove nothing", len(n))
	}
	// It recovers the spool before its first flush, so the first batch it
	// stores holds every recovered event.
	w := monitor.NewWriter(evs, monitor.WriterOptions{FlushSize: 1 << 20, BufferSize: 1 << 20, FlushInterval: 10 * time.Millisecond, Spool: sp, Node: crashNode})
	stored := w.Stored()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-stored:
	case <-time.After(time.Minute):
		t.Error("the restarted writer stored nothing in a minute")
	}
	cancel()
	<-done
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := w.Close(cctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for i := 0; i < len(accepted); i += 200 {
		ids := accepted[i:min(i+200, len(accepted))]
		got, err := evs.Search(context.Background(), monitor.Filter{ExchangeIDs: ids, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, ev := range got {
			have[ev.ExchangeID] = true
		}
		for _, id := range ids {
			if !have[id] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d accepted pushes have no event after the crash", missing, len(accepted))
	}
	t.Logf("%d accepted pushes before SIGKILL, every one with its event", len(accepted))
}
