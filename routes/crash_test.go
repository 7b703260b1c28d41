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

	"github.com/prometheus/client_golang/prometheus"

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
// process, SIGKILLs it (and stops it with SIGTERM) at random points several
// times, restarts it, and checks that every message reached the partner
// exactly once.
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
	run := func(killAfter time.Duration, sig syscall.Signal) (killed bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), envCrashChild+"=1", envCrashDB+"="+dbPath, envCrashSink+"="+srv.URL, envCrashN+"="+strconv.Itoa(n))
		out := newChildOutput(crashDrained)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if killAfter > 0 {
			select {
			case <-time.After(killAfter):
				_ = cmd.Process.Signal(sig)
				select {
				case <-done:
				case <-time.After(time.Minute):
					t.Errorf("child did not exit within a minute of %s", sig)
					_ = cmd.Process.Kill()
					<-done
				}
				return true
			case err := <-done:
				t.Fatalf("child ended before the kill: %v\n%s", err, out.String())
			}
		}
		// Final run: until the child says it is drained - every message
		// generated and none pending on its bus, so nothing more can reach
		// the partner (no late duplicate can still come) - then stop.
		select {
		case <-out.seen:
		case err := <-done:
			t.Fatalf("child ended: %v\n%s", err, out.String())
		case <-time.After(5 * time.Minute):
			d, posts, _ := p.stats()
			t.Errorf("the child did not drain within 5 minutes (%d distinct delivered, %d posts)", d, posts)
		}
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
	for i := 0; i < 7; i++ {
		// Kill points spread over start-up, steady state and catch-up;
		// SIGKILLs and graceful stops (SIGTERM: the engine drains what is
		// in flight) alternate.
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		run(time.Duration(300+rand.IntN(2200))*time.Millisecond, sig)
		kills++
		d, posts, _ := p.stats()
		t.Logf("after %s %d: %d distinct delivered, %d posts", sig, kills, d, posts)
	}
	run(0, 0)
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
// the cursor moves only after emit returned (the source's "ack"). done is
// called once all N were emitted (in this run or before).
type genSource struct {
	cfg  genConfig
	db   *store.DB
	done func()
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
	g.done()
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
	metrics := prometheus.NewRegistry()
	lb, err := local.Open(ctx, db, bus.DefaultConfig().Local, nil, local.WithRegisterer(metrics))
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close(context.Background())
	b := watch(lb)
	n, _ := strconv.Atoi(os.Getenv(envCrashN))
	generated := make(chan struct{})
	var genOnce sync.Once
	genDone := func() { genOnce.Do(func() { close(generated) }) }
	reg := connectors.NewRegistry()
	_ = reg.Register(httpx.Spec())
	_ = reg.Register(connectors.Spec{
		Name: "gen",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &genConfig{} },
			New: func(cfg any, _ connectors.Deps) (connectors.Source, error) {
				return &genSource{cfg: *cfg.(*genConfig), db: db, done: genDone}, nil
			},
		},
	})
	// Tell the parent once drained: every message generated and none
	// pending on the bus. Looked at after each subscription and ack, and
	// when the generator is through - never on a timer.
	go func() {
		gen := generated
		for {
			changed := b.next()
			select {
			case <-gen:
				gen = nil
			default:
			}
			if gen == nil && pendingMessages(t, metrics) == 0 {
				fmt.Println(crashDrained)
				return
			}
			select {
			case <-changed:
			case <-gen:
			case <-ctx.Done():
				return
			}
		}
	}()
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

// crashDrained is the line the crash child prints once drained.
const crashDrained = "crash child: drained"

// pendingMessages sums the local bus's mzhub_bus_pending_messages gauge.
func pendingMessages(t *testing.T, reg *prometheus.Registry) float64 {
	fams, err := reg.Gather()
	if err != nil {
		t.Error(err)
		return -1
	}
	var n float64
	for _, f := range fams {
		if f.GetName() == "mzhub_bus_pending_messages" {
			for _, m := range f.GetMetric() {
				n += m.GetGauge().GetValue()
			}
		}
	}
	return n
}

// childOutput collects a child's output, safe for the copying goroutine
// and a reader; seen is closed once a line equal to want was written.
type childOutput struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
}

func newChildOutput(want string) *childOutput {
	return &childOutput{want: want, seen: make(chan struct{})}
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	from := strings.LastIndexByte(o.b.String(), '\n') + 1
	o.b.Write(p)
	select {
	case <-o.seen:
	default:
		for _, l := range strings.Split(o.b.String()[from:], "\n") {
			if l == o.want {
				close(o.seen)
				break
			}
		}
	}
	return len(p), nil
}

func (o *childOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
