package routes

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// EngineConfig configures the route engine.
type EngineConfig struct {
	// Dir is the directory of route files (configs/routes); Load may name another.
	Dir string `yaml:"dir"`
	// ReloadInterval is how often the route files are checked for changes (default 2s; negative disables hot reload).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Node names this process in events.
	Node string `yaml:"node"`
	// DrainTimeout bounds a stop (Run's context done, Close): the routes
	// stop taking deliveries at once and those in flight get this long to
	// finish; then they are cut, and a cut send is in doubt (its claim
	// stays; the next attempt asks the partner's status). Default 10s; the
	// hub gives it most of http.shutdown_timeout.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// DefaultDrainTimeout is the default EngineConfig.DrainTimeout.
const DefaultDrainTimeout = 10 * time.Second

// DefaultEngineConfig returns the defaults: configs/routes, reloaded every
// 2s, 10s to drain at a stop.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{Dir: "configs/routes", ReloadInterval: 2 * time.Second, DrainTimeout: DefaultDrainTimeout}
}

// Validate reports every problem of the configuration; it does no I/O.
func (c EngineConfig) Validate() error {
	if c.ReloadInterval > 0 && c.ReloadInterval < 10*time.Millisecond {
		return fmt.Errorf("routes.reload_interval: %s: at least 10ms (negative disables hot reload)", c.ReloadInterval)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("routes.drain_timeout: %s: must not be negative", c.DrainTimeout)
	}
	return nil
}

// Deps is what the hub hands to the engine.
type Deps struct {
	// Bus carries messages between sources and the route consumers.
	Bus bus.Bus
	// Store is the state database (ledgers, aggregates, dead letters).
	Store *store.DB
	// Connectors builds sources and sinks (connectors.Builtin() in the hub).
	Connectors *connectors.Registry
	// Logger is scoped by the engine per route.
	Logger *slog.Logger
	// Metrics receives the engine's metrics (nil: not registered).
	Metrics prometheus.Registerer
	// Events receives monitor events (nil: discarded).
	Events connectors.Events
	// Clock tells the time (nil: the wall clock).
	Clock clock.Clock
	// Mapper runs map steps naming a mapping (nil: such routes fail to build).
	Mapper Mapper
	// DataDir is handed to connectors.
	DataDir string
	// Sealer seals the bodies of dead letters at rest (nil: stored as they
	// are). Give the one that seals the Bus, so that keys rotate together.
	Sealer bus.Sealer
	// Leases, when set, makes one replica at a time republish the dead
	// letters whose replay was requested (store/lease); nil: this one does.
	Leases Leases
	// Partners is handed to connectors as connectors.Deps.Partners (the
	// partner clients the hub built from its configuration; nil: none).
	Partners any
	// Skip, when set, is asked before a route starts: a non-empty answer
	// is why the route is not started (e.g. its partner is not configured,
	// so it would only fail against nothing). The route is logged, kept in
	// Skipped and in Definitions (the topology still draws it); Skip is
	// asked again when its file changes. nil: every route starts.
	Skip func(r *Route) string
}

// Leases runs f while this replica holds the lease name (store/lease.Elector).
type Leases interface {
	Run(ctx context.Context, name string, f func(context.Context) error) error
}

// Engine runs the routes of a directory.
type Engine struct {
	cfg     EngineConfig
	deps    Deps
	log     *slog.Logger
	clock   clock.Clock
	events  connectors.Events
	metrics *metrics
	dlq     *DeadLetters

	mu      sync.Mutex
	dir     string
	loaded  []*Route          // validated, not yet started
	files   map[string]string // file -> content digest of the running set
	runners map[string]*runner
	skipped map[string]skippedRoute // route id -> why it was not started (Deps.Skip)
	byFile  map[string][]string     // file -> route ids
	ledger  *ledger
	ctx     context.Context
	closed  bool
	wg      sync.WaitGroup
	stopRun context.CancelFunc
	// serving is a copy of runners for the HTTP handler, replaced after
	// every change, so requests never wait for a reload in progress.
	serving atomic.Pointer[map[string]*runner]
}

// publishLocked refreshes the handler's copy of the running routes.
func (e *Engine) publishLocked() {
	m := make(map[string]*runner, len(e.runners))
	for k, v := range e.runners {
		m[k] = v
	}
	e.serving.Store(&m)
}

type discard struct{}

func (discard) Emit(monitor.Event) {}

// NewEngine checks the dependencies and returns an engine; it does no I/O.
func NewEngine(cfg EngineConfig, deps Deps) (*Engine, error) {
	var errs []error
	if deps.Bus == nil {
		errs = append(errs, errors.New("routes: Deps.Bus is required"))
	}
	if deps.Store == nil {
		errs = append(errs, errors.New("routes: Deps.Store is required"))
	}
	if deps.Connectors == nil {
		errs = append(errs, errors.New("routes: Deps.Connectors is required"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Events == nil {
		deps.Events = discard{}
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = 2 * time.Second
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger.With("component", "routes"),
		clock:   deps.Clock,
		events:  deps.Events,
		metrics: m,
		dlq:     &DeadLetters{db: deps.Store, now: deps.Clock.Now, seal: deps.Sealer},
		dir:     cfg.Dir,
		files:   map[string]string{},
		runners: map[string]*runner{},
		byFile:  map[string][]string{},
	}
	return e, nil
}

// DeadLetters returns the engine's dead-letter store.
func (e *Engine) DeadLetters() *DeadLetters { return e.dlq }

// checker validates endpoints against the engine's registry.
func (e *Engine) checker() kindChecker { return registryChecker{e.deps.Connectors} }

// Load reads and validates every route file of dir; nothing is started
// (Run starts them). It returns every problem found. The routes of good
// files are kept even when other files have problems — one partner's bad
// file must not keep the others from running; the caller decides whether a
// problem is fatal. A file with problems is loaded by hot reload once it
// changes.
func (e *Engine) Load(dir string) error {
	routes, errs := loadDir(dir, e.checker())
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dir = dir
	e.loaded = routes
	e.files = digestDir(dir)
	if errs != nil {
		return lintErrors(errs)
	}
	return nil
}

// AddRoute adds a route built in code (tests, services); it is validated
// like a file.
func (e *Engine) AddRoute(r *Route) error {
	if errs := validateRoute(r, e.checker()); errs != nil {
		return lintErrors(errs)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx != nil {
		return e.startLocked(r)
	}
	e.loaded = append(e.loaded, r)
	return nil
}

// lintErrors turns lint errors into one error.
func lintErrors(errs []LintError) error {
	var out []error
	for _, le := range errs {
		out = append(out, errors.New(le.String()))
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(out...))
}

// Run migrates the schema, starts the loaded routes, watches the route files
// and carries out replay requests until ctx is done; then it stops the
// routes and returns nil.
func (e *Engine) Run(ctx context.Context) error {
	if err := Migrate(ctx, e.deps.Store); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.ctx = ctx
	e.stopRun = cancel
	e.ledger = newLedger(e.deps.Store, e.clock.Now)
	var startErrs []error
	for _, r := range e.loaded {
		if err := e.startLocked(r); err != nil {
			startErrs = append(startErrs, err)
		}
	}
	e.loaded = nil
	e.mu.Unlock()
	for _, err := range startErrs {
		e.log.Error("route not started", "err", err)
	}
	tick := time.Second
	if e.cfg.ReloadInterval > 0 && e.cfg.ReloadInterval < tick {
		tick = e.cfg.ReloadInterval
	}
	// Requested replays are carried out by their own loop: on this
	// replica, or under a lease on one replica at a time.
	replays := func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(tick):
			}
			e.replayRequested(ctx)
		}
	}
	if l := e.deps.Leases; l != nil {
		loop := replays
		replays = func(ctx context.Context) error { return l.Run(ctx, "routes.replay", loop) }
	}
	var replaying sync.WaitGroup
	replaying.Add(1)
	go func() {
		defer replaying.Done()
		_ = replays(ctx)
	}()
	defer func() {
		cancel()
		replaying.Wait()
	}()
	lastReload := time.Now()
	for {
		select {
		case <-ctx.Done():
			dctx, dcancel := context.WithTimeout(context.Background(), e.cfg.DrainTimeout)
			e.stopAll(dctx)
			dcancel()
			return nil
		case <-time.After(tick):
		}
		if e.dir != "" && e.cfg.ReloadInterval > 0 && time.Since(lastReload) >= e.cfg.ReloadInterval {
			lastReload = time.Now()
			e.Reload()
		}
	}
}

// Close stops the routes: no new deliveries, and those in flight get until
// ctx's deadline (at most DrainTimeout) to finish before they are cut (in
// doubt, not released).
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	cancel := e.stopRun
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	dctx, dcancel := context.WithTimeout(ctx, e.cfg.DrainTimeout)
	defer dcancel()
	done := make(chan struct{})
	go func() { e.stopAll(dctx); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("routes: close: %w", ctx.Err())
	}
}

// stopAll stops every route: all stop taking deliveries at once, then each
// waits for its deliveries in flight until ctx is done and cuts the rest.
func (e *Engine) stopAll(ctx context.Context) {
	e.mu.Lock()
	rs := e.runners
	e.runners = map[string]*runner{}
	e.publishLocked()
	l := e.ledger
	e.ledger = nil
	e.mu.Unlock()
	for _, rn := range rs {
		rn.stopIntake()
	}
	var wg sync.WaitGroup
	for _, rn := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rn.stop(ctx); err != nil {
				e.log.Warn("stop", "route", rn.r.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	if l != nil {
		l.close()
	}
}

// Routes lists the running route ids, sorted.
func (e *Engine) Routes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.runners))
	for id := range e.runners {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// skippedRoute is a route Deps.Skip kept from starting.
type skippedRoute struct {
	r   *Route
	why string
}

// Skipped returns the routes not started because Deps.Skip said so, by id,
// with the reason.
func (e *Engine) Skipped() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.skipped))
	for id, s := range e.skipped {
		out[id] = s.why
	}
	return out
}

// startLocked builds and starts a route, replacing a running one of the
// same id; a route Deps.Skip holds back is recorded, not started.
func (e *Engine) startLocked(r *Route) error {
	if e.deps.Skip != nil {
		if why := e.deps.Skip(r); why != "" {
			e.stopLocked(r.ID)
			if e.skipped == nil {
				e.skipped = map[string]skippedRoute{}
			}
			if _, known := e.skipped[r.ID]; !known {
				e.log.Warn("route not started", "route", r.ID, "file", r.file, "reason", why)
			}
			e.skipped[r.ID] = skippedRoute{r: r, why: why}
			return nil
		}
		delete(e.skipped, r.ID)
	}
	rn, err := e.build(r)
	if err != nil {
		return err
	}
	if old := e.runners[r.ID]; old != nil {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DrainTimeout)
		err := old.stop(ctx)
		cancel()
		if err != nil {
			e.log.Error("stop old route", "route", r.ID, "err", err)
		}
		delete(e.runners, r.ID)
	}
	if err := rn.start(e.ctx); err != nil {
		e.publishLocked()
		return err
	}
	e.runners[r.ID] = rn
	e.publishLocked()
	if r.file != "" {
		if !contains(e.byFile[r.file], r.ID) {
			e.byFile[r.file] = append(e.byFile[r.file], r.ID)
		}
	}
	e.log.Info("route started", "route", r.ID, "file", r.file)
	return nil
}

// Reload re-reads the route directory. Files whose content changed are
// validated; a valid file replaces its running routes, an invalid one is
// reported (log, event, the returned error) and its old routes keep running.
// Removed files stop their routes.
func (e *Engine) Reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil || e.dir == "" {
		return nil
	}
	now := digestDir(e.dir)
	var errs []error
	changed := false
	for f, sum := range now {
		if e.files[f] == sum {
			continue
		}
		changed = true
		routes, lerrs := loadFile(f, e.checker())
		retry := false
		if lerrs == nil {
			// An id still held by another file may be moving between files
			// in this very change: try again on the next round.
			lerrs = e.checkUniqueLocked(f, routes)
			retry = lerrs != nil
		}
		if lerrs != nil {
			err := lintErrors(lerrs)
			errs = append(errs, err)
			e.log.Error("route file rejected; the running routes are kept", "file", f, "err", err)
			e.events.Emit(monitor.Event{Time: e.clock.Now(), Type: monitor.Failed, Status: monitor.Error, Component: "routes", Channel: "file", FileName: f, ErrorClass: "config", ErrorMessage: err.Error(), Node: e.cfg.Node})
			if !retry {
				e.files[f] = sum // report once per content
			}
			continue
		}
		keep := map[string]bool{}
		for _, r := range routes {
			keep[r.ID] = true
			if err := e.startLocked(r); err != nil {
				errs = append(errs, err)
				e.log.Error("route not started", "route", r.ID, "err", err)
			}
		}
		for _, id := range e.byFile[f] {
			if !keep[id] {
				e.stopLocked(id)
			}
		}
		ids := make([]string, 0, len(routes))
		for _, r := range routes {
			ids = append(ids, r.ID)
		}
		e.byFile[f] = ids
		e.files[f] = sum
	}
	for f := range e.files {
		if _, ok := now[f]; !ok {
			changed = true
			for _, id := range e.byFile[f] {
				e.stopLocked(id)
			}
			delete(e.byFile, f)
			delete(e.files, f)
		}
	}
	if changed {
		e.metrics.reloads.Inc()
	}
	return errors.Join(errs...)
}

func (e *Engine) checkUniqueLocked(file string, routes []*Route) []LintError {
	var errs []LintError
	for _, r := range routes {
		for f, ids := range e.byFile {
			if f != file && contains(ids, r.ID) {
				errs = append(errs, LintError{File: file, Line: nodeLine(r.root, "id"), Message: fmt.Sprintf("route id %q is also defined in %s", r.ID, f)})
			}
		}
	}
	return errs
}

func (e *Engine) stopLocked(id string) {
	delete(e.skipped, id)
	rn := e.runners[id]
	if rn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DrainTimeout)
	defer cancel()
	if err := rn.stop(ctx); err != nil {
		e.log.Error("stop", "route", id, "err", err)
	}
	delete(e.runners, id)
	e.publishLocked()
	e.log.Info("route stopped", "route", id)
}

// digestDir maps each route file (and template) of dir to a digest of its content.
func digestDir(dir string) map[string]string {
	files, err := routeFiles(dir)
	out := map[string]string{}
	if err != nil {
		return out
	}
	// A template change must reload its instance files: fold the templates'
	// content into every instance file's digest.
	var tmpl []byte
	if entries, err := os.ReadDir(dir); err == nil {
		for _, en := range entries {
			if strings.HasSuffix(en.Name(), ".template.yaml") {
				b, _ := os.ReadFile(dir + "/" + en.Name())
				tmpl = append(tmpl, b...)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		h := sha256.New()
		h.Write(b)
		if strings.Contains(string(b), "use:") {
			h.Write(tmpl)
		}
		out[f] = fmt.Sprintf("%x", h.Sum(nil))
	}
	return out
}

// replayRequested republishes dead letters whose replay was requested.
func (e *Engine) replayRequested(ctx context.Context) {
	reqs, err := e.dlq.pendingReplays(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("replay: list", "err", err)
		}
		return
	}
	for _, d := range reqs {
		e.mu.Lock()
		rn := e.runners[d.Route]
		e.mu.Unlock()
		if rn == nil {
			continue
		}
		// A delivery in doubt keeps its pending claim when its sink can be
		// asked: the replayed message's delivery asks the status endpoint
		// before sending. Otherwise the claim is forgotten and the message
		// sent again, as the operator decided.
		resent := ""
		if d.Code != CodeInDoubt || !rn.canCheck(d.Sink) {
			if err := forgetPending(ctx, e.deps.Store, d.Route, d.Message.IdempotencyKey); err != nil {
				e.log.Error("replay: ledger", "err", err)
				continue
			}
			if d.Code == CodeInDoubt {
				resent = "true"
			}
		}
		msg := d.Message
		msg.ID, msg.PublishedAt = "", time.Time{}
		if msg.Headers == nil {
			msg.Headers = map[string]string{}
		}
		msg.Headers["mzhub-replay-of"] = fmt.Sprint(d.ID)
		if err := e.deps.Bus.Publish(ctx, rn.topic, msg); err != nil {
			e.log.Error("replay: publish", "err", err)
			continue
		}
		if err := e.dlq.markReplayed(ctx, d.ID); err != nil {
			e.log.Error("replay: mark", "err", err)
		}
		rn.event(monitor.Replayed, monitor.OK, &msg, func(ev *monitor.Event) {
			ev.Attrs = map[string]string{"dead_letter": fmt.Sprint(d.ID), "by": d.ResolvedBy}
			if d.Code != "" {
				ev.Attrs["code"] = d.Code
			}
			if resent != "" {
				// Sent again without asking the partner: say so.
				ev.Status = monitor.Warning
				ev.Attrs["resent_in_doubt"] = resent
			}
		})
	}
}

// Handler serves the HTTP sources of the routes: a request to
// /routes/<route id>[/...] goes to that route's source. The hub mounts it
// under /routes/.
func (e *Engine) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/routes/")
		id, _, _ := strings.Cut(rest, "/")
		var rn *runner
		if m := e.serving.Load(); m != nil {
			rn = (*m)[id]
		}
		if rn == nil || rn.httpIn == nil {
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		rn.httpIn.ServeHTTP(w, r)
	})
}

// build compiles a route into a runner (connectors constructed, expressions
// compiled); nothing runs yet.
func (e *Engine) build(r0 *Route) (*runner, error) {
	r := *r0
	r.Steps = append([]Step(nil), r0.Steps...)
	r.To = append([]Endpoint(nil), r0.To...)
	r.withDefaults()
	log := e.log.With("route", r.ID)
	cdeps := func(name string) connectors.Deps {
		return connectors.Deps{
			Logger:   log.With("connector", name),
			Metrics:  e.deps.Metrics,
			Store:    e.deps.Store,
			Clock:    e.clock,
			Events:   e.events,
			DataDir:  e.deps.DataDir,
			Partners: e.deps.Partners,
			Partner:  r.Partner,
		}
	}
	rn := &runner{
		e:        e,
		r:        &r,
		log:      log,
		topic:    r.Topic(),
		backlog:  make(chan struct{}, r.MaxBacklog),
		inflight: map[string]struct{}{},
		running:  make(chan struct{}),
		ledger:   e.ledger,
	}
	var err error
	if r.Key != "" {
		if rn.keyP, err = compileExpr(r.Key, "string"); err != nil {
			return nil, err
		}
	}
	if r.IdempotencyKey != "" {
		if rn.idemP, err = compileExpr(r.IdempotencyKey, "string"); err != nil {
			return nil, err
		}
	}
	if r.RateLimit != nil {
		b := r.RateLimit.Burst
		if b == 0 {
			b = max(1, int(r.RateLimit.PerSecond))
		}
		rn.lim = rate.NewLimiter(rate.Limit(r.RateLimit.PerSecond), b)
	}
	// Source.
	switch r.From.Kind {
	case kindBus:
		c, _, err := decodeEndpoint(e.deps.Connectors, roleSource, &r.From)
		if err != nil {
			return nil, err
		}
		rn.topic = c.(*BusEndpointConfig).Topic
	case kindSchedule:
		c, _, err := decodeEndpoint(e.deps.Connectors, roleSource, &r.From)
		if err != nil {
			return nil, err
		}
		rn.sched = c.(*ScheduleConfig)
	default:
		cfg, _, err := decodeEndpoint(e.deps.Connectors, roleSource, &r.From)
		if err != nil {
			return nil, fmt.Errorf("route %s: from: %w", r.ID, err)
		}
		spec, _ := e.deps.Connectors.Lookup(r.From.Kind)
		src, err := spec.Source.New(cfg, cdeps(r.From.Kind))
		if err != nil {
			return nil, fmt.Errorf("route %s: from %s: %w", r.ID, r.From.Kind, err)
		}
		rn.source = src
		if h, ok := src.(HTTPSource); ok {
			rn.httpIn = h
		}
	}
	// Sinks.
	for i := range r.To {
		t := &r.To[i]
		s, err := e.buildSink(t, cdeps(t.Kind))
		if err != nil {
			return nil, fmt.Errorf("route %s: to %s: %w", r.ID, t.Name, err)
		}
		if r.ReplyTo != "" {
			rp, ok := s.sink.(Replier)
			if !ok {
				return nil, fmt.Errorf("route %s: reply_to: sink %s (%s) does not answer (not a routes.Replier)", r.ID, t.Name, t.Kind)
			}
			s.replier = rp
			if a, ok := s.sink.(AnswerChecker); ok {
				s.answers = a
				s.checker = answerChecker{a}
			} else {
				s.checker = nil
			}
		}
		rn.sinks = append(rn.sinks, s)
	}
	if len(r.Steps) == 0 && len(rn.sinks) == 1 && rn.sinks[0].kind == kindBus && r.ReplyTo == "" && rn.lim == nil {
		// Nothing to do between the source and the sink's topic: the
		// source's messages go straight there (emitDirect).
		rn.direct = rn.sinks[0]
	}
	// Steps.
	for i := range r.Steps {
		st, err := e.buildStep(rn, i, &r.Steps[i], cdeps)
		if err != nil {
			return nil, fmt.Errorf("route %s: step %s: %w", r.ID, r.Steps[i].Name, err)
		}
		rn.steps = append(rn.steps, st)
		if a, ok := st.(*aggregateStep); ok {
			rn.aggs = append(rn.aggs, a)
		}
	}
	return rn, nil
}

func (e *Engine) buildSink(t *Endpoint, deps connectors.Deps) (*sinkRT, error) {
	s := &sinkRT{name: t.Name, kind: t.Kind, idempotent: t.Idempotent, resendInDoubt: t.ResendInDoubt, timeout: t.Timeout, endpoint: t.Kind}
	if t.Kind == kindBus {
		c, _, err := decodeEndpoint(e.deps.Connectors, roleSink, t)
		if err != nil {
			return nil, err
		}
		topic := c.(*BusEndpointConfig).Topic
		s.sink = busSink{b: e.deps.Bus, topic: topic}
		s.endpoint = "bus:" + topic
		// The next route's ledger protects its own sinks; a repeated publish
		// is harmless.
		s.idempotent = true
		return s, nil
	}
	cfg, _, err := decodeEndpoint(e.deps.Connectors, roleSink, t)
	if err != nil {
		return nil, err
	}
	spec, _ := e.deps.Connectors.Lookup(t.Kind)
	sink, err := spec.Sink.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	s.sink = sink
	if c, ok := sink.(DeliveryChecker); ok {
		s.checker = c
		if oc, ok := sink.(OptionalChecker); ok && !oc.CanCheckDelivery() {
			s.checker = nil
		}
	}
	if ep, ok := sink.(Endpointer); ok {
		s.endpoint = ep.Endpoint()
	}
	return s, nil
}

// busSink publishes to a topic of the hub's bus.
type busSink struct {
	b     bus.Bus
	topic string
}

func (s busSink) Send(ctx context.Context, msg bus.Message) error {
	return s.b.Publish(ctx, s.topic, sinkMessage(msg))
}

// sinkMessage is msg as a bus sink publishes it: a new message (no id,
// topic or time of its own) without the engine's resume header.
func sinkMessage(msg bus.Message) bus.Message {
	msg.ID, msg.Topic, msg.PublishedAt = "", "", time.Time{}
	h := make(map[string]string, len(msg.Headers))
	for k, v := range msg.Headers {
		if k != HeaderResumeStep {
			h[k] = v
		}
	}
	msg.Headers = h
	return msg
}

// buildStep builds step i of a route through its kind's config.
func (e *Engine) buildStep(rn *runner, i int, s *Step, cdeps func(string) connectors.Deps) (step, error) {
	cfg, ok := s.Config.(stepConfig)
	if !ok {
		return nil, fmt.Errorf("step %d: no kind", i)
	}
	return cfg.build(&stepBuild{e: e, rn: rn, index: i, name: s.Name, cdeps: cdeps})
}
