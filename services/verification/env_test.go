package verification

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hpf"
	"github.com/shanghai-mca/mzhub/connectors/hpf/hpfsim"
	"github.com/shanghai-mca/mzhub/connectors/hrss"
	"github.com/shanghai-mca/mzhub/connectors/hrss/hrsssim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/connectors/ministry/ministrysim"
	"github.com/shanghai-mca/mzhub/connectors/samr"
	"github.com/shanghai-mca/mzhub/connectors/samr/samrsim"
	"github.com/shanghai-mca/mzhub/connectors/villagebank"
	"github.com/shanghai-mca/mzhub/connectors/villagebank/villagebanksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/store"
)

// sims are the simulated partners of a test.
type sims struct {
	hrss     *hrsssim.Sim
	hpf      *hpfsim.Sim
	samr     *samrsim.Sim
	banks    *villagebanksim.Sim
	ministry *ministrysim.Sim
}

func startSims(t testing.TB) *sims {
	t.Helper()
	var s sims
	var err error
	if s.hrss, err = hrsssim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.hrss.Close() })
	if s.hpf, err = hpfsim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.hpf.Close() })
	if s.samr, err = samrsim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.samr.Close() })
	if s.banks, err = villagebanksim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.banks.Close() })
	if s.ministry, err = ministrysim.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.ministry.Close() })
	return &s
}

// simConfig is how a (child) process reaches the simulators.
type simConfig struct {
	HRSS     hrss.Config
	HPF      hpf.Config
	SAMR     samr.Config
	Banks    villagebank.File
	Ministry ministry.Config
}

func (s *sims) config(timeout time.Duration) simConfig {
	c := simConfig{HRSS: s.hrss.Config(), HPF: s.hpf.Config(), SAMR: s.samr.Config(), Banks: s.banks.File(), Ministry: s.ministry.Config()}
	c.HRSS.Transport.Timeout, c.HPF.Transport.Timeout, c.SAMR.Transport.Timeout = timeout, timeout, timeout
	c.Banks.Template.Transport.Timeout, c.Ministry.Transport.Timeout = timeout, timeout
	c.HRSS.Transport.BreakerFailures, c.HPF.Transport.BreakerFailures, c.SAMR.Transport.BreakerFailures = 1000, 1000, 1000
	c.Banks.Template.Transport.BreakerFailures, c.Ministry.Transport.BreakerFailures = 1000, 1000
	return c
}

func (c simConfig) partners(t testing.TB) []household.Partner {
	t.Helper()
	h, err := hrss.New(c.HRSS)
	if err != nil {
		t.Fatal(err)
	}
	f, err := hpf.New(c.HPF)
	if err != nil {
		t.Fatal(err)
	}
	m, err := samr.New(c.SAMR)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := ministry.New(c.Ministry)
	if err != nil {
		t.Fatal(err)
	}
	out := []household.Partner{h, f, m}
	vbs, err := villagebank.Clients(c.Banks)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vbs {
		out = append(out, v)
	}
	return append(out, mi)
}

// ledgers are every simulator's ledger by partner id.
func (s *sims) ledgers() map[string]*householdsim.Ledger {
	out := map[string]*householdsim.Ledger{"hrss": s.hrss.Ledger, "hpf": s.hpf.Ledger, "samr": s.samr.Ledger, "ministry": s.ministry.Ledger}
	for code, b := range s.banks.Banks {
		out[villagebank.PartnerPrefix+code] = b.Ledger
	}
	return out
}

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// events collects monitor events.
type events struct {
	mu  sync.Mutex
	evs []monitor.Event
}

func (e *events) Emit(ev monitor.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) find(f func(monitor.Event) bool) []monitor.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []monitor.Event
	for _, ev := range e.evs {
		if f(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	// Deadlines far beyond what a loaded machine needs: only the tests of
	// late partners shorten them.
	c.Deadline = 5 * time.Minute
	c.CrossProvinceDeadline = 5 * time.Minute
	c.PollEvery = 20 * time.Millisecond
	c.RetryWait = 50 * time.Millisecond
	c.Tick = 50 * time.Millisecond
	c.InboundEvery = 50 * time.Millisecond
	c.SampleRate = 0
	c.ReportEvery = 0
	c.SlowShare = 0
	return c
}

// newService starts a service over the partners, with the shipped
// verification routes (configs/routes/verification*.yaml) on a local bus
// in the same store delivering its calls, and runs both until the test ends.
func newService(t testing.TB, cfg Config, db *store.DB, partners []household.Partner, ev Events) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := local.Open(ctx, db, bus.DefaultConfig().Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]Partner, len(partners))
	for i, p := range partners {
		ps[i] = p
	}
	s, err := New(ctx, cfg, Deps{DB: db, Events: ev, DataDir: t.TempDir(), Bus: b}, ps)
	if err != nil {
		t.Fatal(err)
	}
	eng := startRoutes(t, db, b, household.NewDirectory(partners...))
	done := make(chan struct{})
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(ctx) }()
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-engDone; _ = b.Close(context.Background()) })
	return s
}

// startRoutes returns an engine loaded with the shipped verification
// routes (copied from configs/routes: the other families' routes are not
// this package's), with the verification connector kinds over dir.
func startRoutes(t testing.TB, db *store.DB, b bus.Bus, dir *household.Directory) *routes.Engine {
	t.Helper()
	reg := connectors.NewRegistry()
	for _, sp := range []connectors.Spec{hrss.Spec(), hpf.Spec(), samr.Spec(), villagebank.Spec(), ministry.Spec(),
		ministry.InboundSpec(), ministry.ReturnSpec()} {
		if err := reg.Register(sp); err != nil {
			t.Fatal(err)
		}
	}
	rdir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join("..", "..", "configs", "routes", "verification*.yaml"))
	if len(files) < 2 {
		t.Fatalf("shipped verification routes: %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rdir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1, DrainTimeout: time.Second}, routes.Deps{Bus: b, Store: db, Connectors: reg, Partners: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(rdir); err != nil {
		t.Fatal(err)
	}
	return eng
}

// waitFinal waits (on the service's signal) until every id is final.
func waitFinal(t testing.TB, s *Service, ids []string, bound time.Duration) []Result {
	t.Helper()
	deadline := time.After(bound)
	for {
		ch := s.Changed()
		var out []Result
		for _, id := range ids {
			r, err := s.Result(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != "final" {
				break
			}
			out = append(out, r)
		}
		if len(out) == len(ids) {
			return out
		}
		select {
		case <-ch:
		case <-deadline:
			r, _ := s.Result(context.Background(), ids[len(out)])
			t.Fatalf("%d of %d requests final after %s; next: %+v", len(out), len(ids), bound, r.Partners)
		}
	}
}

func submitHouseholds(t testing.TB, s *Service, from, n int, nonLocalEvery int) []string {
	t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		id, _, err := s.Submit(context.Background(), Request{Reference: "CASE-" + itoa(i), Household: "HH" + itoa(i), Authorization: "AUTH-" + itoa(i),
			Members: householdsim.Household(i, nonLocalEvery > 0 && i%nonLocalEvery == 0)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// expected recomputes a household's aggregate from the synthetic
// population by the verification rules, independently of the service.
func expected(members []household.Member) (income, assets int64) {
	for _, m := range members {
		p := householdsim.Profile(m.IDNumber)
		evidence := max(p.WageFen, hpf.WageFromContribution(p.HPFContributionFen, householdsim.HPFRatePermille), hpf.IncomeFromLoan(p.HPFLoanRepaymentFen))
		inc := p.PensionFen + p.NursingFeeFen
		var dep int64
		for _, v := range p.Deposits {
			dep += v
		}
		as := dep
		for _, c := range p.Companies {
			as += (c.CapitalFen*c.SharePermille + 500) / 1000
		}
		if !household.Local(m.IDNumber) {
			evidence = max(evidence, p.WageFen*8/10)
			inc += p.PensionFen * 9 / 10
			as += dep
		}
		income += inc + evidence
		assets += as
	}
	return income, assets
}
