package routes_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/store"
)

// Environment of the crash child process.
const (
	envCrashChild = "MZHUB_ROUTES_CRASH_CHILD"
	envCrashDB    = "MZHUB_ROUTES_CRASH_DB"
	envCrashSink  = "MZHUB_ROUTES_CRASH_SINK"
	envCrashN     = "MZHUB_ROUTES_CRASH_N"
)

// partner is a non-idempotent partner: it counts every POST per idempotency
// key (a second POST of a key is a second payment) and answers a status
// query by key.
type partner struct {
	mu     sync.Mutex
	counts map[string]int
	posts  int
}

func (p *partner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		k := r.Header.Get("Idempotency-Key")
		p.mu.Lock()
		p.counts[k]++
		p.posts++
		p.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	case strings.HasPrefix(r.URL.Path, "/status/"):
		k := strings.TrimPrefix(r.URL.Path, "/status/")
		p.mu.Lock()
		n := p.counts[k]
		p.mu.Unlock()
		if n == 0 {
			w.WriteHeader(http.StatusNotFound)
		}
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func (p *partner) stats() (distinct, posts int, dups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, n := range p.counts {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return len(p.counts), p.posts, dups
}

// TestCrashEffectivelyOnce runs a route of 100,000 messages (generator
// source → local bus → map → non-idempotent HTTP partner) in a child
// process, SIGKILLs it at random points several times, restarts it, and
// checks that every message reached the partner exactly once.
func TestCrashEffectivelyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	n := 100000
	if raceEnabled {
		// The race detector slows the child several times; the kill points
		// matter more than the count there. Plain `go test` runs 100,000.
		n = 20000
	}
	if s := os.Getenv("MZHUB_ROUTES_CRASH_MESSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	p := &partner{counts: map[string]int{}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	dbPath := filepath.Join(t.TempDir(), "state.db")
	run := func(killAfter time.Duration) (killed bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), envCrashChild+"=1", envCrashDB+"="+dbPath, envCrashSink+"="+srv.URL, envCrashN+"="+strconv.Itoa(n))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if killAfter > 0 {
			select {
			case <-time.After(killAfter):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				return true
			case err := <-done:
				t.Fatalf("child ended before the kill: %v\n%s", err, out.String())
			}
		}
		// Final run: until the partner has every message, then a little
		// longer (late duplicates would show), then stop.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if d, _, _ := p.stats(); d >= n || time.Now().After(deadline) {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("child ended: %v\n%s", err, out.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
		time.Sleep(time.Second)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return false
	}
	kills := 0
	for i := 0; i < 5; i++ {
		// Kill points spread over start-up, steady state and catch-up.
		run(time.Duration(300+rand.IntN(2200)) * time.Millisecond)
		kills++
		d, posts, _ := p.stats()
		t.Logf("after kill %d: %d distinct delivered, %d posts", kills, d, posts)
	}
	run(0)
	distinct, posts, dups := p.stats()
	t.Logf("%d kills; partner saw %d distinct keys in %d posts", kills, distinct, posts)
	if len(dups) > 0 {
		if len(dups) > 10 {
			dups = dups[:10]
		}
		t.Errorf("duplicates at the partner: %v", dups)
	}
	if distinct != n {
		t.Errorf("partner has %d distinct messages, want %d", distinct, n)
	}
	if posts != n {
		t.Errorf("partner received %d posts, want exactly %d", posts, n)
	}
	// Nothing is left over as a dead letter either.
	scfg := store.DefaultConfig()
	scfg.Path = dbPath
	db, err := store.Open(context.Background(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dl int
	if err := db.QueryRow(`SELECT COUNT(*) FROM routes_dead_letters`).Scan(&dl); err != nil || dl != 0 {
		t.Errorf("dead letters: %d (%v)", dl, err)
	}
}

// genConfig configures the generator source of the crash test.
type genConfig struct {
	N     int `yaml:"n"`
	Batch int `yaml:"batch"`
}

// genSource emits messages 0..N-1 and keeps its cursor in the state store;
// the cursor moves only after emit returned (the source's "ack").
type genSource struct {
	cfg genConfig
	db  *store.DB
}

func (g *genSource) Run(ctx context.Context, emit connectors.Emit) error {
	if _, err := g.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS crash_cursor (id INTEGER PRIMARY KEY, next INTEGER NOT NULL)`); err != nil {
		return err
	}
	var next int
	err := g.db.QueryRowContext(ctx, `SELECT next FROM crash_cursor WHERE id = 1`).Scan(&next)
	if err == sql.ErrNoRows {
		_, err = g.db.ExecContext(ctx, `INSERT INTO crash_cursor (id, next) VALUES (1, 0)`)
	}
	if err != nil {
		return err
	}
	for next < g.cfg.N {
		end := min(next+g.cfg.Batch, g.cfg.N)
		msgs := make([]bus.Message, 0, end-next)
		for i := next; i < end; i++ {
			msgs = append(msgs, bus.Message{
				Key:            "person-" + strconv.Itoa(i%5000),
				IdempotencyKey: "pay-" + strconv.Itoa(i),
				Body:           []byte(fmt.Sprintf(`{"n":%d,"amount_yuan":%d.50}`, i, i%900+100)),
			})
		}
		if err := emit(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if _, err := g.db.ExecContext(ctx, `UPDATE crash_cursor SET next = ? WHERE id = 1`, end); err != nil {
			return err
		}
		next = end
	}
	<-ctx.Done()
	return nil
}

// TestCrashChild is the child process of TestCrashEffectivelyOnce.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envCrashChild) == "" {
		t.Skip("child process of TestCrashEffectivelyOnce")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// SIGTERM from the parent ends the run cleanly.
		ch := make(chan os.Signal, 1)
		signalNotify(ch)
		<-ch
		cancel()
	}()
	scfg := store.DefaultConfig()
	scfg.Path = os.Getenv(envCrashDB)
	db, err := store.Open(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := local.Open(ctx, db, bus.DefaultConfig().Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	n, _ := strconv.Atoi(os.Getenv(envCrashN))
	reg := connectors.NewRegistry()
	_ = reg.Register(httpx.Spec())
	_ = reg.Register(connectors.Spec{
		Name: "gen",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &genConfig{} },
			New: func(cfg any, _ connectors.Deps) (connectors.Source, error) {
				return &genSource{cfg: *cfg.(*genConfig), db: db}, nil
			},
		},
	})
	dir := t.TempDir()
	route := fmt.Sprintf(`id: crash
partner: test.bank
flow: disbursement
from:
  kind: gen
  config: {n: %d, batch: 200}
concurrency: 64
max_backlog: 4000
steps:
  - map:
      fields:
        n: body.n
        amount_fen: int(body.amount_yuan * 100)
to:
  - name: bank
    kind: http
    config:
      url: %s/pay
      status_url: %s/status/{key}
      timeout: 5s
errors:
  max_attempts: 50
  backoff: 20ms
  max_backoff: 500ms
`, n, os.Getenv(envCrashSink), os.Getenv(envCrashSink))
	if err := os.WriteFile(filepath.Join(dir, "crash.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: b, Store: db, Connectors: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
