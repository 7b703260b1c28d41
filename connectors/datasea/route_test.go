package datasea_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/store"
)

// hubClients is the hub's partner clients as the engine hands them to the
// kind (connectors.Deps.Partners).
type hubClients map[string]any

func (c hubClients) PartnerClient(id string) (any, error) {
	x, ok := c[id]
	if !ok {
		return nil, errors.New("partner " + id + " is not configured")
	}
	return x, nil
}

// expectations records the expectations the routes register.
type expectations struct {
	mu  sync.Mutex
	got []monitor.Expectation
	// added is closed and replaced at each Expect (changed).
	added chan struct{}
}

func (e *expectations) Expect(_ context.Context, x monitor.Expectation) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, x)
	if e.added != nil {
		close(e.added)
	}
	e.added = make(chan struct{})
	return nil
}

// changed returns a channel closed at the next Expect.
func (e *expectations) changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.added == nil {
		e.added = make(chan struct{})
	}
	return e.added
}

func (e *expectations) names() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]bool{}
	for _, x := range e.got {
		out[x.Name+"/"+x.Flow] = true
	}
	return out
}

// routeEnv runs the shipped API routes (configs/routes/datasea-death.yaml, datasea-migration.yaml)
// in the route engine against the simulator, and the records topic's
// consumer applying into a memApplier, as the hub does.
type routeEnv struct {
	t       *testing.T
	sim     *dataseasim.Sim
	db      *store.DB
	cfg     datasea.Config
	bus     *routetest.Bus
	ev      *monitortest.Recorder
	mem     *memApplier
	expect  *expectations
	applied chan struct{}
	stop    func()
}

func newRouteEnv(t *testing.T) *routeEnv {
	sim, db, ev, cfg := setup(t)
	cfg.RetryEvery = 50 * time.Millisecond
	cfg.Client = httpx.ClientConfig{Timeout: 2 * time.Second, BreakerFailures: 2, BreakerOpen: 300 * time.Millisecond}
	e := &routeEnv{t: t, sim: sim, db: db, cfg: cfg, bus: routetest.NewBus(), ev: ev, mem: newMem(), expect: &expectations{},
		applied: make(chan struct{}, 1)}
	cons := &datasea.Consumer{Bus: e.bus, Apply: e.mem, Events: ev, Applied: func(datasea.Applied) {
		select {
		case e.applied <- struct{}{}:
		default:
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return e
}

// start runs the engine on the shipped route files with a new puller (a
// restarted hub: only the state store is the same).
func (e *routeEnv) start() {
	e.t.Helper()
	dir := e.t.TempDir()
	for _, f := range []string{"../../configs/routes/datasea-death.yaml", "../../configs/routes/datasea-migration.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	p, err := datasea.NewPuller(e.cfg, connectors.Deps{Store: e.db, Events: e.ev})
	if err != nil {
		e.t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	spec, err := connectors.Builtin().Lookup(datasea.ConnectorKind)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		e.t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: e.bus, Store: e.db, Connectors: reg,
		Events: e.ev, Metrics: prometheus.NewRegistry(),
		Partners: hubClients{datasea.Partner: &datasea.Endpoint{Puller: p, Expect: e.expect, Immediate: true}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	e.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Error(err)
			}
		case <-time.After(30 * time.Second):
			e.t.Error("the engine did not stop")
		}
		e.stop = nil
	}
}

// waitApplied waits until n distinct records were applied and bad
// quarantined (signalled by the consumer).
func (e *routeEnv) waitApplied(n, bad int) {
	e.t.Helper()
	late := time.After(time.Minute)
	for {
		e.mem.mu.Lock()
		got, q := len(e.mem.applied), len(e.mem.bad)
		e.mem.mu.Unlock()
		if got == n && q >= bad {
			return
		}
		select {
		case <-e.applied:
		case <-late:
			e.t.Fatalf("applied %d of %d records, %d of %d quarantined", got, n, q, bad)
		}
	}
}

func (e *routeEnv) waitEvent(what string, match func(monitor.Event) bool) {
	e.t.Helper()
	next := e.ev.Next(match)
	if e.ev.Count(match) > 0 {
		return
	}
	select {
	case <-next:
	case <-time.After(time.Minute):
		e.t.Fatalf("no %s event", what)
	}
}

// TestRoute runs the shipped routes against the simulator: every record
// of both feeds once, page by page, duplicates changing nothing, malformed
// records quarantined with their place; a restarted hub resumes at the
// stored cursors; a platform that is down fails the pull (failed events,
// the breaker opens), which is retried until the platform is back.
func TestRoute(t *testing.T) {
	e := newRouteEnv(t)
	recs := dataseasim.Generate(950, 3, "2026-12-01", 7)
	e.sim.Add(recs...)
	e.sim.AddRaw("death", `{"record_id":"DX1","type":"death","id_number":"310101199001011235","name":"王某","event_date":"2026-12-01","district":"310101"}`)
	e.sim.AddRaw("migration", `{"record_id":"MX2","type":"move_out","id_number":"310101190001011230","name":"李某","event_date":"2099-01-01","district":"310101"}`)
	e.sim.AddRaw("migration", `"not a record"`)
	e.sim.Faults.Duplicates.Store(true)
	e.start()
	e.waitApplied(len(recs), 3)
	ctx := context.Background()
	for _, feed := range []string{"death", "migration"} {
		if c, err := datasea.Cursor(ctx, e.db, feed); err != nil || c == "" {
			t.Fatalf("cursor of %s: %q %v", feed, c, err)
		}
	}
	e.mem.mu.Lock()
	seenTwice := 0
	for id, n := range e.mem.times {
		if n > 1 {
			seenTwice++
		}
		if r := e.mem.applied[id]; r.ID != id {
			t.Errorf("record %s handed over but not applied", id)
		}
	}
	for _, b := range e.mem.bad {
		if !strings.Contains(b.Ref, "page at cursor") || !strings.Contains(b.Ref, "item") || b.Reason == "" || strings.Contains(b.Raw, "310101199001011235") {
			t.Errorf("quarantined %+v", b)
		}
	}
	bad := len(e.mem.bad)
	e.mem.mu.Unlock()
	if seenTwice == 0 {
		t.Fatal("the platform's duplicates did not reach the applier: the test proves nothing about them")
	}
	// The consumer may apply a pull's last records before the pull has
	// reported itself (its fetched event) and registered tomorrow's
	// expectation: wait for those, then count.
	fetched := func(ev monitor.Event) bool {
		return ev.Partner == datasea.Partner && ev.Type == monitor.Fetched && ev.Status == monitor.OK
	}
	late := time.After(time.Minute)
	for {
		added, next := e.expect.changed(), e.ev.Next(fetched)
		got := e.expect.names()
		if got["datasea-daily-pull/death"] && got["datasea-daily-pull-migration/migration"] && e.ev.Count(fetched) >= 2 {
			break
		}
		select {
		case <-added:
		case <-next:
		case <-late:
			t.Fatalf("expectations %v, %d fetched events", got, e.ev.Count(fetched))
		}
	}
	if n := e.ev.Count(fetched); n != 2 {
		t.Fatalf("%d fetched events, want one per feed", n)
	}

	// A restarted hub resumes at the stored cursors: one page per feed.
	e.stop()
	more := dataseasim.Generate(30, 4, "2026-12-02", 3)
	e.sim.Add(more...)
	pages := e.sim.Pages()
	e.start()
	e.waitApplied(len(recs)+len(more), bad)
	e.waitEvent("second fetched", func(ev monitor.Event) bool {
		return ev.Type == monitor.Fetched && ev.Status == monitor.OK && ev.Flow == "migration"
	})
	if got := e.sim.Pages() - pages; got != 2 {
		t.Fatalf("the restarted routes fetched %d pages, want 2 (one per feed, from the cursor)", got)
	}

	// The platform is down: the pulls fail (failed events), the breaker
	// opens, the routes retry every retry_every; once the platform is back
	// the new records arrive, once.
	e.stop()
	e.sim.Faults.Down.Store(true)
	last := dataseasim.Generate(12, 5, "2026-11-30", 11)
	e.sim.Add(last...)
	e.start()
	e.waitEvent("failed", func(ev monitor.Event) bool {
		return ev.Partner == datasea.Partner && ev.Type == monitor.Failed && ev.Status == monitor.Error
	})
	e.waitEvent("breaker", func(ev monitor.Event) bool {
		return ev.Partner == datasea.Partner && ev.Type == monitor.Failed && ev.ErrorCode == "breaker"
	})
	e.waitEvent("breaker_open", func(ev monitor.Event) bool {
		return ev.Partner == datasea.Partner && ev.ErrorClass == "breaker" && ev.ErrorCode == "breaker_open"
	})
	e.sim.Faults.Down.Store(false)
	e.waitApplied(len(recs)+len(more)+len(last), bad)
	// Every record as the platform sent it: those seen twice changed nothing.
	e.mem.mu.Lock()
	defer e.mem.mu.Unlock()
	for _, r := range append(append(recs, more...), last...) {
		if e.mem.applied[r.ID] != r.Normalize() {
			t.Fatalf("record %s applied as %+v", r.ID, e.mem.applied[r.ID].Masked())
		}
	}
}
