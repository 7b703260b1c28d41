package allowance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
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
	// Want is the number of records a pull ends with applied (the card
	// center's: applications stored).
	Want int
	// WantStages is, for a card center pull, the sum over the
	// applications of their final production stage's rank (applied 0 …
	// issued 3): reached only once every step is applied.
	WantStages int
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

// TestKillChild is the hub side of the SIGKILL tests' child process
// (TestSIGKILLPullAndPush, TestSIGKILLCardCenterPull): the shipped datasea
// routes pulling every feed onto the durable local bus, whose records the
// consumer applies, until Want records are applied (mode pull); a push of
// a recipients list (push); or the shipped cardcenter routes pulling both
// feeds, applied by the card center's consumer until Want applications
// are stored at their final stages (cardpull).
func TestKillChild(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child process of the SIGKILL tests")
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
	// A small cache: the backlog's bodies are read back from the
	// database, as after a restart.
	lc := bus.LocalConfig{CommitInterval: 5 * time.Millisecond, MaxBatch: 500, CacheBytes: 1 << 20}
	switch spec.Mode {
	case "pull":
		runRoutes(t, db, cfg, lc, al, spec.Want)
	case "cardpull":
		runCardRoutes(t, db, spec, lc, al)
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
	p, err := datasea.NewPuller(cfg, connectors.Deps{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, db, lc, routeRun{
		files:    []string{"datasea-death.yaml", "datasea-migration.yaml"},
		kinds:    []string{datasea.ConnectorKind},
		partners: partners{datasea.Partner: &datasea.Endpoint{Puller: p, Immediate: true}},
		consumer: func(b bus.Bus, applied func()) interface{ Run(context.Context) error } {
			return &datasea.Consumer{Bus: b, Apply: al, Applied: func(datasea.Applied) { applied() }}
		},
		done: func() (string, bool) {
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM allow_records`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%d of %d records applied", n, want), n >= want
		},
	})
}

// runCardRoutes runs the card center's routes
// (configs/routes/cardcenter-applications.yaml, cardcenter-progress.yaml)
// and the card center's consumer applying into al, as the hub wires them,
// until spec.Want applications are stored at their final stages.
func runCardRoutes(t testing.TB, db *store.DB, spec childSpec, lc bus.LocalConfig, al *allowance.Service) {
	cfg := cardcenter.DefaultConfig()
	cfg.URL = spec.URL
	cfg.Client = httpx.ClientConfig{Timeout: 30 * time.Second}
	client, err := cardcenter.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	banks, err := cardcenter.LoadBankTypes(os.DirFS("../../configs/mappings"), cardcenter.DefaultBankTypes)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, db, lc, routeRun{
		files:    []string{"cardcenter-applications.yaml", "cardcenter-progress.yaml"},
		kinds:    []string{cardcenter.Kind},
		partners: partners{cardcenter.Partner: client},
		// The spec's page size instead of the shipped one: the same pulls
		// in more pages, to be killed between.
		edit: func(b []byte) []byte {
			re := regexp.MustCompile(`(?m)^(\s+page_size:) \d+$`)
			if !re.Match(b) {
				t.Fatal("a cardcenter route has no page_size")
			}
			return re.ReplaceAll(b, []byte(fmt.Sprintf("${1} %d", spec.PageSize)))
		},
		consumer: func(b bus.Bus, applied func()) interface{ Run(context.Context) error } {
			return &cardcenter.Consumer{Bus: b, Apply: signalApplier{al, applied}, Banks: banks,
				Clock: clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai))}
		},
		done: func() (string, bool) {
			n, stages := cardProgress(t, db)
			return fmt.Sprintf("%d of %d applications, stages %d of %d", n, spec.Want, stages, spec.WantStages), n >= spec.Want && stages >= spec.WantStages
		},
	})
}

// stageRank is the SQL rank of an application's stage (applied 0 … issued 3).
const stageRank = `CASE stage WHEN 'accepted' THEN 1 WHEN 'produced' THEN 2 WHEN 'issued' THEN 3 ELSE 0 END`

// cardProgress returns the applications stored and the sum of their stages' ranks.
func cardProgress(t testing.TB, db *store.DB) (apps, stages int) {
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(`+stageRank+`), 0) FROM allow_applications`).Scan(&apps, &stages); err != nil {
		t.Fatal(err)
	}
	return apps, stages
}

// signalApplier applies into the allowance service and signals each apply.
type signalApplier struct {
	*allowance.Service
	applied func()
}

func (s signalApplier) ApplyApplications(ctx context.Context, apps []cardcenter.Application, bad []cardcenter.Bad) (int, error) {
	n, err := s.Service.ApplyApplications(ctx, apps, bad)
	s.applied()
	return n, err
}

func (s signalApplier) ApplyProgress(ctx context.Context, steps []cardcenter.Progress) (int, error) {
	n, err := s.Service.ApplyProgress(ctx, steps)
	s.applied()
	return n, err
}

// routeRun is what runEngine runs: the shipped route files (edited by
// edit, when set) with their connector kinds and partner clients, and
// the consumer of their topic, until done.
type routeRun struct {
	files    []string
	kinds    []string
	partners partners
	edit     func([]byte) []byte
	consumer func(b bus.Bus, applied func()) interface{ Run(context.Context) error }
	done     func() (progress string, ok bool)
}

// runEngine runs r's routes in the route engine on the state database's
// local bus (configured lc), and r's consumer, until r is done (checked at
// each apply), within a budget of five minutes.
func runEngine(t testing.TB, db *store.DB, lc bus.LocalConfig, r routeRun) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := local.Open(ctx, db, lc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(context.Background()) }()
	dir := t.TempDir()
	for _, f := range r.files {
		data, err := os.ReadFile(filepath.Join("../../configs/routes", f))
		if err != nil {
			t.Fatal(err)
		}
		if r.edit != nil {
			data = r.edit(data)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := connectors.NewRegistry()
	for _, k := range r.kinds {
		spec, err := connectors.Builtin().Lookup(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Register(spec); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: b, Store: db, Connectors: reg,
		Metrics: prometheus.NewRegistry(), Partners: r.partners})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	applied := make(chan struct{}, 1)
	var applies atomic.Int64
	defer func() { t.Logf("%d applies (transactions)", applies.Load()) }()
	cons := r.consumer(b, func() {
		applies.Add(1)
		select {
		case applied <- struct{}{}:
		default:
		}
	})
	done := make(chan error, 2)
	go func() { done <- eng.Run(ctx) }()
	go func() { done <- cons.Run(ctx) }()
	late := time.After(5 * time.Minute)
	for {
		progress, ok := r.done()
		if ok {
			break
		}
		select {
		case <-applied:
		case <-late:
			t.Fatal(progress)
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// partners hands the routes their partner clients as the hub does.
type partners map[string]any

func (p partners) PartnerClient(id string) (any, error) {
	c, ok := p[id]
	if !ok {
		return nil, errors.New("partner " + id + " is not configured")
	}
	return c, nil
}

type signerFunc func() []byte

func (f signerFunc) Sign(io.Reader) ([]byte, error) { return f(), nil }

// killHarness is the parent side of the SIGKILL tests: it runs this
// test binary again as the hub's side (TestKillChild) on one state
// database, and reads the child's progress from that database (the
// child's applies signal nothing across the process boundary).
type killHarness struct {
	t           *testing.T
	dir, dbPath string
	db          *store.DB
}

func newKillHarness(t *testing.T) *killHarness {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	return &killHarness{t: t, dir: dir, dbPath: filepath.Join(dir, "state.db")}
}

// run starts a child with spec (its DB set to the harness's).
func (h *killHarness) run(spec childSpec) *exec.Cmd {
	t := h.t
	t.Helper()
	spec.DB = h.dbPath
	p := filepath.Join(h.dir, spec.Mode+".json")
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+p)
	out, _ := os.Create(filepath.Join(h.dir, "child.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// log is the last child's output.
func (h *killHarness) log() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "child.log"))
	return string(b)
}

// wait waits for ch, a signal of the partner's simulator.
func (h *killHarness) wait(what string, ch <-chan struct{}) {
	h.t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		h.t.Fatalf("timed out waiting for %s; child log:\n%s", what, h.log())
	}
}

// state opens the child's state database (nil while the child has not
// created it).
func (h *killHarness) state() *store.DB {
	if h.db == nil {
		if _, err := os.Stat(h.dbPath); err != nil {
			return nil
		}
		h.db = openFile(h.t, h.dbPath)
	}
	return h.db
}

// count returns the first column of q on the child's database: 0 until
// the child has created its tables.
func (h *killHarness) count(q string) int {
	db := h.state()
	if db == nil {
		return 0
	}
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		return 0
	}
	return n
}

// killMidPull kills cmd after pages further pages of the partner's
// simulator (next) and once the child's progress (count of q) passed
// applied: the pages run ahead of the applies, and a child killed before
// its consumer applied anything would test the pull's cursor but not the
// hand-over. It returns the progress at the kill.
func (h *killHarness) killMidPull(cmd *exec.Cmd, pages int, next func() <-chan struct{}, q string, applied int) int {
	t := h.t
	t.Helper()
	for ; pages > 0; pages-- {
		h.wait("a page", next())
	}
	// Polled: the child's applies are seen only in the database.
	deadline := time.Now().Add(60 * time.Second)
	for h.count(q) <= applied {
		if time.Now().After(deadline) {
			t.Fatalf("no record applied in 60 s; child log:\n%s", h.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return h.count(q)
}

// TestSIGKILLPullAndPush kills the hub's side (SIGKILL) in the middle of a
// day's pull by the shipped datasea routes, at random pages, three times,
// and then lets it finish: every record is applied once and nothing is
// lost (the cursor moves only past pages durably on the bus). Then it kills the
// hub while the platform holds the answer to a recipients push, after the
// platform took it: the resumed push gets the first receipt, and the
// platform holds one push.
func TestSIGKILLPullAndPush(t *testing.T) {
	h := newKillHarness(t)
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
	spec := func(mode string) childSpec {
		return childSpec{URL: sim.URL(), Mode: mode, Want: len(recs), PageSize: pageSize}
	}
	const applies = `SELECT COUNT(*) FROM allow_records`
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	pages, applied := int64(0), 0
	for range 3 {
		// Killed after a random number of further pages (1..15 of about 120).
		applied = h.killMidPull(h.run(spec("pull")), 1+r.IntN(15), sim.NextPage, applies, applied)
		if sim.Pages() <= pages {
			t.Fatal("the killed pull made no progress")
		}
		pages = sim.Pages()
	}
	if applied >= len(recs) {
		t.Fatalf("after the kills %d of %d records applied: not killed mid-pull", applied, len(recs))
	}
	var persons, reviews int
	if err := h.run(spec("pull")).Wait(); err != nil {
		t.Fatalf("resumed pull: %v\n%s", err, h.log())
	}
	db := h.state()
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
	if !strings.Contains(h.log(), "PASS") {
		t.Fatalf("child log:\n%s", h.log())
	}

	// The push: killed while the platform holds its answer.
	sim.Faults.HoldPush.Store(true)
	next := sim.NextPush()
	cmd := h.run(spec("push"))
	h.wait("the push to reach the platform", next)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	st, ok, err := datasea.Pushed(context.Background(), db, "2026-11")
	if err != nil || !ok || st.State != "sending" {
		t.Fatalf("push state after the kill: %+v %v %v", st, ok, err)
	}
	sim.Faults.HoldPush.Store(false)
	if err := h.run(spec("push")).Wait(); err != nil {
		t.Fatalf("resumed push: %v\n%s", err, h.log())
	}
	st, _, _ = datasea.Pushed(context.Background(), db, "2026-11")
	if st.State != "received" || st.Receipt != "DS202611-0001" || sim.PushCount() != 1 || st.Records != 5000 {
		t.Fatalf("after the resumed push: %+v, platform holds %d pushes", st, sim.PushCount())
	}
}
