package portal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
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
	sim    *joblibsim.Sim
	clk    *clock.Fake
	ring   *fieldcrypt.Ring
	pay    *fakePayments
	events *recEvents
	cfg    Config
	svc    *Service
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

// envDB opens the env's state store: SQLite in dir, or a fresh schema of
// the test PostgreSQL for a test marked onPostgres.
func envDB(t testing.TB, dir string) *store.DB {
	if _, ok := onPostgres.Load(t); ok {
		return storetest.OpenPostgres(t)
	}
	return openDB(t, dir)
}

func testConfig(dir, url string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	ep := joblib.Endpoint{ClientConfig: httpx.ClientConfig{Timeout: 5 * time.Second, BreakerFailures: 3, BreakerOpen: time.Hour}, BaseURL: url, KeyID: "k1"}
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
	e := &env{t: t, dir: dir, db: envDB(t, dir), sim: sim, clk: clock.NewFake(t0), ring: testRing(t),
		pay: &fakePayments{reconciled: map[string]bool{}, out: map[string]map[string]disbursement.PaymentOutcome{}}, events: &recEvents{}}
	e.cfg = testConfig(dir, sim.URL())
	if mod != nil {
		mod(&e.cfg)
	}
	e.svc = e.open()
	return e
}

func clockAt() *clock.Fake { return clock.NewFake(t0) }

// open builds a service on the env's store (a restart when called again).
func (e *env) open() *Service {
	e.t.Helper()
	c, err := joblib.NewClient(e.cfg.Dept, e.cfg.JobLib, e.cfg.Mianshen, testSecret, testSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(context.Background(), e.cfg, Deps{DB: e.db, Client: c, Fields: e.ring, Payments: e.pay, Events: e.events,
		Logger: slog.New(slog.DiscardHandler), Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// round runs a round and moves the clock past any back-off.
func (e *env) round() error {
	err := e.svc.Round(context.Background())
	e.clk.Advance(2 * e.cfg.RetryMaxWait)
	return err
}

func (e *env) drop(name string, write func(io.Writer) error) {
	e.t.Helper()
	if err := os.MkdirAll(e.cfg.Inbox, 0o700); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(e.cfg.Inbox, name))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := write(f); err != nil {
		e.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
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
