package allowance_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/store"
)

const childEnv = "MZHUB_ALLOWANCE_CHILD"

type childSpec struct {
	DB, URL, Mode string
	// Want is the number of records a pull ends with applied.
	Want int
	// PageSize is the pull's page size.
	PageSize int
}

func openFile(t testing.TB, path string) *store.DB {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Path = path
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestKillChild is the hub side of TestSIGKILLPullAndPush's child
// process: the shipped datasea routes pulling every feed onto the durable
// local bus, whose records the consumer applies, until Want records are
// applied; or a push of a recipients list.
func TestKillChild(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child process of TestSIGKILLPullAndPush")
	}
	var spec childSpec
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := openFile(t, spec.DB)
	al, _ := newService(t, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
	if err := datasea.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	cfg := datasea.DefaultConfig()
	cfg.URL, cfg.PageSize = spec.URL, spec.PageSize
	cfg.Client = httpx.ClientConfig{Timeout: 30 * time.Second}
	deps := connectors.Deps{Store: db}
	switch spec.Mode {
	case "pull":
		// A small cache: the backlog's bodies are read back from the
		// database, as after a restart.
		runRoutes(t, db, cfg, bus.LocalConfig{CommitInterval: 5 * time.Millisecond, MaxBatch: 500, CacheBytes: 1 << 20}, al, spec.Want)
	case "push":
		p, err := datasea.NewPusher(cfg, deps, signerFunc(func() []byte { return []byte("sig") }))
		if err != nil {
			t.Fatal(err)
		}
		var recs []datasea.Recipient
		for _, q := range dataseasim.Persons(8, 5000) {
			recs = append(recs, datasea.Recipient{Person: q.ID[:3] + "***", Token: al.PersonKey(q.ID), Name: "x", District: q.Division, Standard: q.Standard, AmountFen: q.AmountFen})
		}
		if _, err := p.Push(ctx, "2026-11", recs); err != nil {
			t.Fatal(err)
		}
	}
}

// runRoutes runs the API routes (configs/routes/datasea-death.yaml,
// datasea-migration.yaml) in the route engine on the state database's
// local bus (configured lc), and the consumer applying into al, until want
// records are applied (as the hub runs them).
func runRoutes(t testing.TB, db *store.DB, cfg datasea.Config, lc bus.LocalConfig, al *allowance.Service, want int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := local.Open(ctx, db, lc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(context.Background()) }()
	dir := t.TempDir()
	for _, f := range []string{"../../configs/routes/datasea-death.yaml", "../../configs/routes/datasea-migration.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := datasea.NewPuller(cfg, connectors.Deps{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	spec, err := connectors.Builtin().Lookup(datasea.ConnectorKind)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: b, Store: db, Connectors: reg,
		Metrics: prometheus.NewRegistry(), Partners: endpoint{&datasea.Endpoint{Puller: p, Immediate: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	applied := make(chan struct{}, 1)
	var applies atomic.Int64
	defer func() { t.Logf("%d applies (transactions)", applies.Load()) }()
	cons := &datasea.Consumer{Bus: b, Apply: al, Applied: func(datasea.Applied) {
		applies.Add(1)
		select {
		case applied <- struct{}{}:
		default:
		}
	}}
	done := make(chan error, 2)
	go func() { done <- eng.Run(ctx) }()
	go func() { done <- cons.Run(ctx) }()
	late := time.After(5 * time.Minute)
	for {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM allow_records`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= want {
			break
		}
		select {
		case <-applied:
		case <-late:
			t.Fatalf("%d of %d records applied", n, want)
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// endpoint hands the routes the data sea endpoint as the hub does.
type endpoint struct{ ep *datasea.Endpoint }

func (e endpoint) PartnerClient(id string) (any, error) {
	if id != datasea.Partner {
		return nil, errors.New("partner " + id + " is not configured")
	}
	return e.ep, nil
}

type signerFunc func() []byte

func (f signerFunc) Sign(io.Reader) ([]byte, error) { return f(), nil }

// TestSIGKILLPullAndPush kills the hub's side (SIGKILL) in the middle of a
// day's pull by the shipped datasea routes, at random pages, three times,
// and then lets it finish: every record is applied once and nothing is
// lost (the cursor moves only past pages durably on the bus). Then it kills the
// hub while the platform holds the answer to a recipients push, after the
// platform took it: the resumed push gets the first receipt, and the
// platform holds one push.
func TestSIGKILLPullAndPush(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	// About 60 pages either way; under -race each record's apply through
	// the bus is some ten times slower, so the day is smaller.
	n, pageSize := 12000, 200
	if raceEnabled {
		n, pageSize = 2000, 33
	}
	recs := dataseasim.Generate(n, 8, "2026-12-01", 1)
	sim.Add(recs...)
	sim.Faults.Duplicates.Store(true)
	dbPath := filepath.Join(dir, "state.db")
	run := func(mode string) *exec.Cmd {
		spec := filepath.Join(dir, mode+".json")
		b, _ := json.Marshal(childSpec{DB: dbPath, URL: sim.URL(), Mode: mode, Want: len(recs), PageSize: pageSize})
		if err := os.WriteFile(spec, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+spec)
		out, _ := os.Create(filepath.Join(dir, "child.log"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	childLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "child.log")); return string(b) }
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(60 * time.Second):
			t.Fatalf("timed out waiting for %s; child log:\n%s", what, childLog())
		}
	}
	// The parent reads the child's progress from the state database (the
	// child's applies signal nothing across the process boundary).
	var db *store.DB
	count := func() int {
		if db == nil {
			if _, err := os.Stat(dbPath); err != nil {
				return 0
			}
			db = openFile(t, dbPath)
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM allow_records`).Scan(&n); err != nil {
			return 0 // the child has not created the table yet
		}
		return n
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	pages, applied := int64(0), 0
	for range 3 {
		cmd := run("pull")
		// Kill after a random number of further pages (1..15 of about
		// 120) and at least one more record applied: the pages run ahead
		// of the applies, and a child killed before its consumer applied
		// anything would test the pull's cursor but not the hand-over.
		for n := 1 + r.IntN(15); n > 0; n-- {
			wait("a page", sim.NextPage())
		}
		deadline := time.Now().Add(60 * time.Second)
		for count() <= applied {
			if time.Now().After(deadline) {
				t.Fatalf("no record applied in 60 s; child log:\n%s", childLog())
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if sim.Pages() <= pages {
			t.Fatal("the killed pull made no progress")
		}
		pages, applied = sim.Pages(), count()
	}
	if applied >= len(recs) {
		t.Fatalf("after the kills %d of %d records applied: not killed mid-pull", applied, len(recs))
	}
	var persons, reviews int
	if err := run("pull").Wait(); err != nil {
		t.Fatalf("resumed pull: %v\n%s", err, childLog())
	}
	_ = db.QueryRow(`SELECT COUNT(*) FROM allow_records`).Scan(&applied)
	_ = db.QueryRow(`SELECT COUNT(*) FROM allow_persons`).Scan(&persons)
	_ = db.QueryRow(`SELECT COUNT(*) FROM allow_reviews`).Scan(&reviews)
	wantPersons, wantReviews := map[string]bool{}, 0
	for _, rec := range recs {
		if rec.Kind == datasea.MoveIn {
			wantReviews++
		} else {
			wantPersons[rec.IDNumber] = true
		}
	}
	if applied != len(recs) || persons != len(wantPersons) || reviews != wantReviews {
		t.Fatalf("applied %d of %d records; %d stopped persons (want %d), %d reviews (want %d)", applied, len(recs), persons, len(wantPersons), reviews, wantReviews)
	}
	if !strings.Contains(childLog(), "PASS") {
		t.Fatalf("child log:\n%s", childLog())
	}

	// The push: killed while the platform holds its answer.
	sim.Faults.HoldPush.Store(true)
	next := sim.NextPush()
	cmd := run("push")
	wait("the push to reach the platform", next)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	st, ok, err := datasea.Pushed(context.Background(), db, "2026-11")
	if err != nil || !ok || st.State != "sending" {
		t.Fatalf("push state after the kill: %+v %v %v", st, ok, err)
	}
	sim.Faults.HoldPush.Store(false)
	if err := run("push").Wait(); err != nil {
		t.Fatalf("resumed push: %v\n%s", err, childLog())
	}
	st, _, _ = datasea.Pushed(context.Background(), db, "2026-11")
	if st.State != "received" || st.Receipt != "DS202611-0001" || sim.PushCount() != 1 || st.Records != 5000 {
		t.Fatalf("after the resumed push: %+v, platform holds %d pushes", st, sim.PushCount())
	}
}
