package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// t0 is a working day in December 2026, Shanghai time.
var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, clock.Shanghai)

type recEvents struct {
	mu  sync.Mutex
	evs []monitor.Event
}

func (r *recEvents) Emit(e monitor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recEvents) find(flow string, typ monitor.EventType) []monitor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []monitor.Event
	for _, e := range r.evs {
		if e.Flow == flow && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// fakePayments answers Outcomes from a table: period → ID → outcome.
type fakePayments struct {
	mu         sync.Mutex
	reconciled map[string]bool
	out        map[string]map[string]disbursement.PaymentOutcome
}

func (f *fakePayments) Outcomes(_ context.Context, _ disbursement.Kind, period string, ids []string) (map[string]disbursement.PaymentOutcome, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.reconciled[period] {
		return nil, false, nil
	}
	res := map[string]disbursement.PaymentOutcome{}
	for _, id := range ids {
		if o, ok := f.out[period][id]; ok {
			res[id] = o
		}
	}
	return res, true, nil
}

func (f *fakePayments) set(period, id string, status int, fen int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.out[period] == nil {
		f.out[period] = map[string]disbursement.PaymentOutcome{}
	}
	f.out[period][id] = disbursement.PaymentOutcome{Status: status, AmountFen: fen, Reason: "bank: account closed"}
	f.reconciled[period] = true
}

type env struct {
	t      testing.TB
	dir    string
	db     *store.DB
	bus    *countBus
	sim    *joblibsim.Sim
	clk    *clock.Fake
	ring   *fieldcrypt.Ring
	pay    *fakePayments
	events *recEvents
	cfg    Config
	svc    *Service
	// every is the feeds' poll pause in the test's copy of the shipped routes.
	every  string
	stopFn func()
	// patience bounds a wait (waitFor): 20 s for tests, longer for the
	// benchmarks' months.
	patience time.Duration
}

// exclusive runs f as a round would: alone with the service's rounds and
// its publishing of what an applied message made due (a benchmark drives
// the steps itself while Run is live).
func (e *env) exclusive(f func() error) error {
	e.svc.roundMu.Lock()
	defer e.svc.roundMu.Unlock()
	return f()
}

// countBus counts what is published per topic (the env waits until the
// service applied as many messages as the routes published).
type countBus struct {
	bus.Bus
	mu sync.Mutex
	n  map[string]int
	// outDown refuses what the service publishes for the routes (the
	// topics but the three the routes publish to it).
	outDown atomic.Bool
}

func (b *countBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if b.outDown.Load() && topic != TopicApplications && topic != TopicCases && topic != TopicAnswers {
		return errors.New("bus down")
	}
	err := b.Bus.Publish(ctx, topic, msgs...)
	if err == nil {
		b.mu.Lock()
		b.n[topic] += len(msgs)
		b.mu.Unlock()
	}
	return err
}

func (b *countBus) published(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[topic]
}

// hubClient hands the routes' `partner: portal` the env's client, as the
// hub hands its own (hub/portal.go).
type hubClient struct{ c *joblib.Client }

func (h hubClient) PartnerClient(id string) (any, error) {
	if id != joblib.PartnerPortal {
		return nil, fmt.Errorf("no partner %s", id)
	}
	return h.c, nil
}

func testRing(t testing.TB) *fieldcrypt.Ring {
	r, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind-key-0123456789abcdef-xyz!!"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openDB(t testing.TB, dir string) *store.DB {
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// onPostgres marks the tests (by their testing.TB) whose env runs on the
// PostgreSQL server of MZHUB_TEST_POSTGRES instead of SQLite.
var onPostgres sync.Map

// envDB opens the env's state store and bus: SQLite in dir with the
// embedded durable bus in it, or a fresh schema of the test PostgreSQL for
// a test marked onPostgres, with an in-memory bus.
func envDB(t testing.TB, dir string) (*store.DB, bus.Bus) {
	if _, ok := onPostgres.Load(t); ok {
		return storetest.OpenPostgres(t), routetest.NewBus()
	}
	db := openDB(t, dir)
	return db, openBus(t, db)
}

func openBus(t testing.TB, db *store.DB) bus.Bus {
	b, err := local.Open(context.Background(), db, bus.DefaultConfig().Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func testConfig(dir, url string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	ep := joblib.Endpoint{ClientConfig: httpx.ClientConfig{Timeout: 5 * time.Second, BreakerFailures: 3, BreakerOpen: 300 * time.Millisecond}, BaseURL: url, KeyID: "k1"}
	cfg.JobLib, cfg.Mianshen = ep, ep
	cfg.Inbox = filepath.Join(dir, "inbox")
	cfg.RetryWait, cfg.RetryMaxWait = time.Second, time.Minute
	return cfg
}

func newEnv(t testing.TB, simOpts joblibsim.Options, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	simOpts.KeyID, simOpts.Secret, simOpts.Dept = "k1", testSecret, "SHMZJ"
	sim, err := joblibsim.Start(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	db, b := envDB(t, dir)
	e := &env{t: t, dir: dir, db: db, bus: &countBus{Bus: b, n: map[string]int{}}, sim: sim, clk: clock.NewFake(t0), ring: testRing(t),
		pay: &fakePayments{reconciled: map[string]bool{}, out: map[string]map[string]disbursement.PaymentOutcome{}}, events: &recEvents{}}
	e.cfg = testConfig(dir, sim.URL())
	if mod != nil {
		mod(&e.cfg)
	}
	e.start()
	return e
}

func clockAt() *clock.Fake { return clock.NewFake(t0) }

// open builds a service on the env's store and bus.
func (e *env) open() *Service {
	e.t.Helper()
	svc, err := New(context.Background(), e.cfg, Deps{DB: e.db, Bus: e.bus, Fields: e.ring, Payments: e.pay, Events: e.events,
		Logger: testLogger(), Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// routeFiles copies the shipped portal routes (configs/routes/portal*.yaml)
// into a directory of the test, the feeds polling every e.every.
func (e *env) routeFiles() string {
	e.t.Helper()
	src, err := filepath.Glob(filepath.Join("..", "..", "configs", "routes", "portal*.yaml"))
	if err != nil || len(src) < 4 {
		e.t.Fatalf("the shipped portal routes: %v %v", src, err)
	}
	dir := e.t.TempDir()
	every := e.every
	if every == "" {
		every = "20ms"
	}
	for _, f := range src {
		b, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		if strings.HasSuffix(f, "portal-feed.template.yaml") {
			b = []byte(strings.Replace(string(b), "    default: 10s\n", "    default: "+every+"\n", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// start runs the service and the route engine on the shipped portal
// routes (the one path, as in the hub), against the env's simulator.
func (e *env) start() {
	e.t.Helper()
	e.svc = e.open()
	// The new service counts what it applies from zero.
	e.bus.mu.Lock()
	clear(e.bus.n)
	e.bus.mu.Unlock()
	c, err := joblib.NewClient(e.cfg.Dept, e.cfg.JobLib, e.cfg.Mianshen, testSecret, testSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	spec, err := connectors.Builtin().Lookup(joblib.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		e.t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: e.bus, Store: e.db, Connectors: reg,
		Events: e.events, Metrics: prometheus.NewRegistry(), Partners: hubClient{c}, Logger: testLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := eng.Load(e.routeFiles()); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = eng.Run(ctx) })
	wg.Go(func() { _ = e.svc.Run(ctx) })
	e.stopFn = func() {
		cancel()
		wg.Wait()
	}
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.stopFn != nil {
		e.stopFn()
		e.stopFn = nil
	}
}

// restart stops the service and the routes and starts them again on the
// same store and bus.
func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

// round runs a round, waits until the routes and the service are quiet
// (quiesce), and moves the clock past any back-off.
func (e *env) round() error {
	err := e.svc.Round(context.Background())
	e.quiesce()
	e.clk.Advance(2 * e.cfg.RetryMaxWait)
	return err
}

// quiesce waits until the exchanges rest: each feed polled to its end
// twice since (so the pages before are on the bus), every message the
// routes published applied by the service, no batch waiting for its
// answer, nothing due unpublished — and nothing changed over a pass.
func (e *env) quiesce() {
	e.t.Helper()
	prev := ""
	for {
		a0, c0 := e.sim.Drained(joblib.FeedApplications), e.sim.Drained(joblib.FeedCases)
		e.waitFor("the feeds polled", func() bool {
			return e.sim.Drained(joblib.FeedApplications) >= a0+2 && e.sim.Drained(joblib.FeedCases) >= c0+2
		})
		e.waitFor("the service applied what the routes published, and every batch answered", func() bool {
			for _, topic := range []string{TopicApplications, TopicCases, TopicAnswers} {
				if int(testutil.ToFloat64(e.svc.consumed.WithLabelValues(topic))) < e.bus.published(topic) {
					return false
				}
			}
			if e.count(`SELECT COUNT(*) FROM portal_outbox WHERE state = 'sending'`) > 0 {
				return false
			}
			for _, sd := range e.svc.senders() {
				if due, err := e.svc.due(context.Background(), sd); err != nil || len(due) > 0 {
					e.svc.poke() // published at once
					return false
				}
			}
			return true
		})
		fp := fmt.Sprint(e.bus.published(TopicApplications), e.bus.published(TopicCases), e.bus.published(TopicAnswers),
			e.count(`SELECT COUNT(*) FROM portal_outbox`), e.count(`SELECT COUNT(*) FROM portal_outbox WHERE state = 'delivered'`))
		if fp == prev {
			return
		}
		prev = fp
	}
}

// state describes the exchanges for a failure message.
func (e *env) state() string {
	var b strings.Builder
	for _, topic := range []string{TopicApplications, TopicCases, TopicAnswers, TopicOutNodes, TopicOutPush, TopicOutConfirm, TopicOutPayout} {
		fmt.Fprintf(&b, "%s published %d applied %v; ", topic, e.bus.published(topic), testutil.ToFloat64(e.svc.consumed.WithLabelValues(topic)))
	}
	rows, err := e.db.Query(`SELECT kind, state, COUNT(*) FROM portal_outbox GROUP BY kind, state`)
	if err == nil {
		for rows.Next() {
			var k, st string
			var n int
			_ = rows.Scan(&k, &st, &n)
			fmt.Fprintf(&b, "outbox %s %s: %d; ", k, st, n)
		}
		rows.Close()
	}
	return b.String()
}

// waitFor polls cond until it holds or two minutes pass.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	wait := e.patience
	if wait == 0 {
		wait = 20 * time.Second
	}
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: %s", what, e.state())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) drop(name string, write func(io.Writer) error) {
	e.t.Helper()
	if err := os.MkdirAll(e.cfg.Inbox, 0o700); err != nil {
		e.t.Fatal(err)
	}
	// Written under a temporary name and renamed, as the business system
	// must: the service's rounds run meanwhile.
	tmp := filepath.Join(e.cfg.Inbox, "."+name+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := write(f); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.cfg.Inbox, name)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRowContext(context.Background(), e.db.Rebind(q), args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// settled reports whether every outbox row is delivered or failed.
func (e *env) settled() bool {
	return e.count(`SELECT COUNT(*) FROM portal_outbox WHERE state NOT IN ('delivered', 'failed', 'skipped')`) == 0
}

// idFor makes a valid ID number of a Shanghai division, a birth date
// (YYYYMMDD) and a sequence.
func idFor(division, birth string, seq int) string {
	id17 := fmt.Sprintf("%s%s%03d", division, birth, seq%1000)
	return id17 + string(synth.CheckDigit([]byte(id17)))
}

func testLogger() *slog.Logger {
	if os.Getenv("MZHUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}
