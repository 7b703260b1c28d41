package hubmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
)

// Deps is what the hub hands the monitor.
type Deps struct {
	// Logger is scoped by the caller; nil discards.
	Logger *slog.Logger
	// Metrics is the hub's registry; nil does not register.
	Metrics prometheus.Registerer
	// Clock tells the time; nil is the real clock.
	Clock clock.Clock
	// State is the state database (alerts and expectations live there so
	// they can be updated, acknowledged and audited); nil disables both.
	State *store.DB
	// Node names this replica on events that carry none (default: host name).
	Node string
	// Auth is the console's auth middleware (security's RequireRole); nil
	// leaves the console open (demo and tests only).
	Auth func(http.Handler) http.Handler
	// User names the logged-in console user of a request.
	User func(*http.Request) string
	// CanAct tells whether a console user may act (retry, replay, drop,
	// acknowledge, resolve); nil lets everyone past Auth act.
	CanAct func(*http.Request) bool
	// Actions retries, replays and drops dead letters (the route engine).
	Actions monitor.DeadLetterActions
	// Auditor writes the audit log (security/audit).
	Auditor audit.Appender
	// Store, when set, is used instead of opening the one cfg names (tests).
	Store monitor.Store
	// Cycles are the allowance cycles the console's batches page drives
	// (the hub adapts the disbursement service); nil hides them.
	Cycles console.Cycles
	// Accounts are the failed account openings the console lists and
	// retries (the hub adapts services/bankaccounts); nil hides the page.
	Accounts console.AccountFailures
	// CSRF returns the request's session CSRF token for the console's
	// action forms (security/accounts); nil when no login is configured.
	CSRF func(*http.Request) string
	// Leases, when set, runs the periodic jobs (alert rules, expectation
	// checks, quality reports, retention) on one replica at a time
	// (store/lease); nil runs them here.
	Leases Leases
	// Topology feeds the console's topology page (topology.Running); nil
	// hides the page.
	Topology console.Topology
	// PartnerName names a partner from a registry (the funeral homes'
	// names); nil: the dictionary and the id.
	PartnerName func(id string) (string, bool)
	// Spool keeps the events given to EmitDurable until stored (nil:
	// EmitDurable is Emit).
	Spool monitor.Spool
}

// Leases runs f while this replica holds the lease name (store/lease.Elector).
type Leases interface {
	Run(ctx context.Context, name string, f func(context.Context) error) error
}

// Monitor is the running monitor.
type Monitor struct {
	cfg     monitor.Config
	log     *slog.Logger
	store   monitor.Store
	ownsSt  bool
	writer  *monitor.Writer
	metrics *monitor.Metrics
	console *console.Console
	inbox   *alert.Inbox
	tracker *expect.Tracker

	runs []func(ctx context.Context) error
	wg   sync.WaitGroup
}

// New validates cfg, opens the event store and builds the parts. It does not
// start anything; call Run.
func New(ctx context.Context, cfg monitor.Config, d Deps) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Node == "" {
		d.Node, _ = os.Hostname()
	}
	m := &Monitor{cfg: cfg, log: d.Logger}
	m.store = d.Store
	if m.store == nil {
		st, err := OpenStore(ctx, cfg)
		if err != nil {
			return nil, err
		}
		m.store, m.ownsSt = st, true
	}
	m.metrics = monitor.NewMetrics(d.Metrics)
	m.writer = monitor.NewWriter(m.store, monitor.WriterOptions{
		FlushSize: cfg.EffectiveFlushSize(), FlushInterval: cfg.FlushInterval, BufferSize: cfg.BufferSize,
		Node: d.Node, Clock: d.Clock, Logger: d.Logger, Metrics: m.metrics, Spool: d.Spool,
	})
	cd := console.Deps{
		Store: m.store, Clock: d.Clock, Logger: d.Logger, Auth: d.Auth, User: d.User, CanAct: d.CanAct,
		Schedules: cfg.Schedules, Thresholds: cfg.Thresholds, StuckAfter: cfg.StuckAfter,
		Actions: d.Actions, Auditor: d.Auditor, Cycles: d.Cycles, CSRF: d.CSRF, Topology: d.Topology,
		Accounts: d.Accounts, PartnerName: d.PartnerName,
	}
	if err := m.provision(ctx, d, &cd); err != nil {
		m.closeStore()
		return nil, err
	}
	c, err := console.New(cd)
	if err != nil {
		m.closeStore()
		return nil, err
	}
	m.console = c
	return m, nil
}

// OpenStore opens the event store cfg names.
func OpenStore(ctx context.Context, cfg monitor.Config) (monitor.Store, error) {
	switch cfg.Store {
	case "sqlite":
		return sqlite.Open(ctx, cfg.SQLitePath)
	case "clickhouse":
		return openClickHouse(ctx, cfg)
	}
	return nil, fmt.Errorf("monitor: unknown store %q", cfg.Store)
}

// Emit queues an event; it never blocks or fails (connectors.Events).
func (m *Monitor) Emit(ev monitor.Event) { m.writer.Emit(ev) }

// EmitDurable returns once evs are in the spool (Deps.Spool), so that the
// caller may acknowledge its exchange (monitor.Writer.EmitDurable).
func (m *Monitor) EmitDurable(ctx context.Context, evs ...monitor.Event) error {
	return m.writer.EmitDurable(ctx, evs...)
}

// Writer is the event writer.
func (m *Monitor) Writer() *monitor.Writer { return m.writer }

// Store is the event store.
func (m *Monitor) Store() monitor.Store { return m.store }

// Console is the console handler; mount it with
// mux.Handle("/console/", http.StripPrefix("/console", m.Console())).
func (m *Monitor) Console() http.Handler { return m.console }

// Mount serves h at path inside the console, in its layout and navigation
// (console.Console.Mount), e.g. the funeral service's operational view.
func (m *Monitor) Mount(navKey, path string, h http.Handler) { m.console.Mount(navKey, path, h) }

// Link lists a page the hub serves under /console/path in the console's
// navigation (console.Console.Link).
func (m *Monitor) Link(navKey, path string) { m.console.Link(navKey, path) }

// Run runs the writer and the periodic checks until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	errs := make(chan error, len(m.runs)+1)
	run := func(f func(context.Context) error) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			errs <- f(ctx)
		}()
	}
	run(m.writer.Run)
	for _, f := range m.runs {
		run(f)
	}
	m.wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Close flushes the writer within ctx's deadline and closes the store. Call
// it after Run returned.
func (m *Monitor) Close(ctx context.Context) error {
	m.wg.Wait()
	err := m.writer.Close(ctx)
	return errors.Join(err, m.closeStore())
}

func (m *Monitor) closeStore() error {
	if m.ownsSt {
		m.ownsSt = false
		return m.store.Close()
	}
	return nil
}
