package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/tlcp"
	"github.com/shanghai-mca/mzhub/store"
)

// Component is a long-running part of the hub (route engine, monitor,
// schedulers, simulators in the demo).
type Component interface {
	// Run works until ctx is done and then returns; it returns early only
	// on a fault it cannot recover from.
	Run(ctx context.Context) error
}

// ComponentFunc adapts a function to Component.
type ComponentFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f ComponentFunc) Run(ctx context.Context) error { return f(ctx) }

// Check reports whether a dependency is ready; nil means ready.
type Check func(ctx context.Context) error

type component struct {
	name string
	c    Component
}

// Hub is one running mzhub process.
type Hub struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	db       *store.DB
	mux      *http.ServeMux
	clock    clock.Clock
	node     string
	started  time.Time
	closers  []func(ctx context.Context) error
	mu       sync.Mutex
	comps    []component
	checks   map[string]Check
	running  map[string]bool
	addr     string
	addrOnce chan struct{}
	// metrics serves /metrics: on http.metrics_listen, or (that empty) on
	// the main listener behind the console login (ServeMetricsBehind).
	metrics     http.Handler
	metricsAddr string
	// fatal carries an error that must stop Run (a lost node claim).
	fatal chan error
	// compsUp is closed once Run has started every component.
	compsUp chan struct{}

	buildInfo prometheus.Gauge
	up        *prometheus.GaugeVec

	// cli is set for a CLI process (BuildCycles): it takes a node
	// identity of its own instead of claiming the replica's.
	cli bool

	parts // what Build wires (empty after New alone)
}

// New opens the state store and prepares the HTTP surface. Components and
// handlers are added before Run.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Hub, error) {
	if err := security.SelfTest(); err != nil {
		return nil, fmt.Errorf("hub: refusing to start: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	node := cfg.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub: data dir: %w", err)
	}
	db, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := &Hub{
		cfg:      cfg,
		log:      log,
		reg:      reg,
		db:       db,
		mux:      http.NewServeMux(),
		clock:    clock.Real{},
		node:     node,
		started:  time.Now(),
		checks:   map[string]Check{},
		running:  map[string]bool{},
		addrOnce: make(chan struct{}),
		fatal:    make(chan error, 1),
		compsUp:  make(chan struct{}),
	}
	h.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mzhub_component_up",
		Help: "1 while a hub component is running, 0 after it stopped.",
	}, []string{"component"})
	h.buildInfo = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mzhub_build_info",
		Help:        "Build information of the running binary (always 1).",
		ConstLabels: prometheus.Labels{"version": Version, "commit": Commit, "profile": cfg.Profile},
	})
	h.buildInfo.Set(1)
	reg.MustRegister(h.up, h.buildInfo)
	h.AddCheck("store", func(ctx context.Context) error { return db.PingContext(ctx) })
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})
	return h, nil
}

// Config returns the configuration the hub runs with.
func (h *Hub) Config() config.Config { return h.cfg }

// Logger returns the hub's logger.
func (h *Hub) Logger() *slog.Logger { return h.log }

// Registerer returns the hub's own metrics registry (never the global one).
func (h *Hub) Registerer() prometheus.Registerer { return h.reg }

// Gatherer returns the hub's metrics registry for reading.
func (h *Hub) Gatherer() prometheus.Gatherer { return h.reg }

// Store returns the state database.
func (h *Hub) Store() *store.DB { return h.db }

// Clock returns the hub's clock.
func (h *Hub) Clock() clock.Clock { return h.clock }

// Node returns the node name.
func (h *Hub) Node() string { return h.node }

// Handle mounts a handler on the listener (Go 1.22 patterns).
func (h *Hub) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// AddComponent registers a component run by Run. The hub is ready only
// once every component has started.
func (h *Hub) AddComponent(name string, c Component) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.comps = append(h.comps, component{name: name, c: c})
}

// AddCheck registers a readiness check shown by /readyz.
func (h *Hub) AddCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// OnClose registers a function called (in reverse order) after components
// stopped, before the store closes: flush writers, close clients.
func (h *Hub) OnClose(fn func(ctx context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closers = append(h.closers, fn)
}

// Started returns a channel closed once Run has started every component
// (each is marked running, as /readyz reports) and logged "components
// started". With the store reachable the hub is then ready: a test or an
// embedding program waits on it rather than polling /readyz.
func (h *Hub) Started() <-chan struct{} { return h.compsUp }

// ServeMetricsBehind mounts /metrics on the main listener wrapped in guard
// (the console's login) when http.metrics_listen is empty; with a metrics
// address it does nothing (/metrics is served there only).
func (h *Hub) ServeMetricsBehind(guard func(http.Handler) http.Handler) {
	if h.cfg.HTTP.MetricsListen == "" {
		h.mux.Handle("GET /metrics", guard(h.metrics))
	}
}

// MetricsAddr returns the address of the metrics listener once Run has
// bound it ("" when /metrics is on the main listener).
func (h *Hub) MetricsAddr(ctx context.Context) (string, error) {
	select {
	case <-h.addrOnce:
		return h.metricsAddr, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Addr returns the listening address once Run has bound it.
func (h *Hub) Addr(ctx context.Context) (string, error) {
	select {
	case <-h.addrOnce:
		return h.addr, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (h *Hub) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "node": h.node, "version": Version, "uptime_s": int(time.Since(h.started).Seconds())})
}

// ErrDegraded marks a check's error that /readyz reports without
// failing readiness: the hub goes on working around it (the monitor store
// down while its events are buffered).
var ErrDegraded = errors.New("degraded")

// readyz reports every dependency check and every component: 200 when
// all checks pass (or are only degraded) and every component runs, 503
// naming what is not ready otherwise.
func (h *Hub) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h.mu.Lock()
	checks := make(map[string]Check, len(h.checks))
	for k, v := range h.checks {
		checks[k] = v
	}
	components := make(map[string]string, len(h.comps))
	for _, c := range h.comps {
		components[c.name] = "running"
		if !h.running[c.name] {
			components[c.name] = "not running"
		}
	}
	h.mu.Unlock()
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	results := make([]string, len(names))
	hard := make([]bool, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := checks[n](ctx); err != nil {
				results[i], hard[i] = err.Error(), !errors.Is(err, ErrDegraded)
			} else {
				results[i] = "ok"
			}
		}()
	}
	wg.Wait()
	result := map[string]string{}
	var failing []string
	for i, n := range names {
		result[n] = results[i]
		if hard[i] {
			failing = append(failing, n)
		}
	}
	for n, st := range components {
		if st != "running" {
			failing = append(failing, "component "+n)
		}
	}
	sort.Strings(failing)
	w.Header().Set("Content-Type", "application/json")
	status := "ready"
	if len(failing) > 0 {
		status = "not ready"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "node": h.node, "failing": failing,
		"checks": result, "components": components})
}

// Run serves HTTP and runs the components until ctx is done, then shuts
// down: the listener stops accepting and in-flight requests get
// http.shutdown_timeout to finish, components are cancelled and awaited
// within the same deadline, closers run, the store closes.
func (h *Hub) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.cfg.HTTP.Listen)
	if err != nil {
		_ = h.db.Close()
		return fmt.Errorf("hub: listen %s: %w", h.cfg.HTTP.Listen, err)
	}
	var mln net.Listener
	if m := h.cfg.HTTP.MetricsListen; m != "" {
		if mln, err = net.Listen("tcp", m); err != nil {
			_ = ln.Close()
			_ = h.db.Close()
			return fmt.Errorf("hub: listen %s (http.metrics_listen): %w", m, err)
		}
		h.metricsAddr = mln.Addr().String()
	}
	var tln net.Listener
	if t := h.cfg.Security.Console.TLCP; t.Listen != "" {
		if tln, err = tlcp.Listen(t); err != nil {
			_ = ln.Close()
			if mln != nil {
				_ = mln.Close()
			}
			_ = h.db.Close()
			return fmt.Errorf("hub: security.console.tlcp: %w", err)
		}
	}
	h.addr = ln.Addr().String()
	close(h.addrOnce)
	srv := h.server(ctx, h.front(problem.Unmatched(h.mux)))
	var tsrv *http.Server
	if tln != nil {
		// The console over TLCP with a required SM2 client certificate (the
		// administrators' cryptographic second factor).
		tsrv = h.server(ctx, h.front(tlcp.Handler(problem.Unmatched(h.mux))))
		tsrv.ConnContext = tlcp.ConnContext
		go func() {
			if err := tsrv.Serve(tln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("TLCP console listener stopped", "err", err)
			}
		}()
		h.log.Info("console TLCP listener", "addr", tln.Addr().String())
	}
	var msrv *http.Server
	if mln != nil {
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", h.metrics)
		if h.cfg.HTTP.Pprof {
			mmux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mmux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
			mmux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
			mmux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
			mmux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		}
		msrv = h.server(ctx, h.front(problem.Unmatched(mmux)))
		go func() {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	compCtx, cancelComps := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelComps()
	var wg, up sync.WaitGroup
	errc := make(chan error, len(h.comps)+1)
	h.mu.Lock()
	comps := append([]component(nil), h.comps...)
	h.mu.Unlock()
	up.Add(len(comps))
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.setRunning(c.name, true)
			up.Done()
			err := c.c.Run(compCtx)
			h.setRunning(c.name, false)
			if err != nil && !errors.Is(err, context.Canceled) {
				h.log.Error("component stopped", "component", c.name, "err", err)
				errc <- fmt.Errorf("hub: component %s: %w", c.name, err)
			}
		}()
	}
	go func() {
		var err error
		if h.cfg.HTTP.TLSCertFile != "" {
			err = srv.ServeTLS(ln, h.cfg.HTTP.TLSCertFile, h.cfg.HTTP.TLSKeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("hub: serve: %w", err)
		}
	}()
	h.log.Info("mzhub listening", "addr", h.addr, "metrics", h.metricsAddr, "profile", h.cfg.Profile, "node", h.node, "store", h.db.String())
	go func() {
		up.Wait()
		h.log.Info("components started", "components", len(comps))
		close(h.compsUp)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	case runErr = <-h.fatal:
	}
	h.log.Info("shutting down", "deadline", h.cfg.HTTP.ShutdownTimeout.String())
	sdCtx, cancel := context.WithTimeout(context.Background(), h.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sdCtx); err != nil {
		h.log.Warn("http shutdown incomplete", "err", err)
		_ = srv.Close()
	}
	if msrv != nil {
		_ = msrv.Shutdown(sdCtx)
	}
	if tsrv != nil {
		_ = tsrv.Shutdown(sdCtx)
	}
	cancelComps()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sdCtx.Done():
		h.log.Error("components did not stop within the deadline; exiting anyway (their work is resumable)")
	}
	_ = h.Close(sdCtx)
	h.log.Info("stopped")
	return runErr
}

// Close runs the closers (in reverse order: flush writers, close clients)
// and closes the store. Run calls it at its end; a hub built but never run
// (a CLI command using its parts) calls it itself.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	closers := h.closers
	h.closers = nil
	h.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](ctx); err != nil {
			h.log.Warn("close", "err", err)
		}
	}
	if err := h.db.Close(); err != nil {
		h.log.Warn("close store", "err", err)
		return err
	}
	return nil
}

// server returns an HTTP server with the listener limits every listener of
// the hub gets: header, read (body included), write and idle timeouts, and
// a hard cap on header bytes (front answers above http.max_header_bytes
// with problem+json; Go's server refuses beyond four times that).
func (h *Hub) server(ctx context.Context, handler http.Handler) *http.Server {
	c := h.cfg.HTTP
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    4 * c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// front is what every request passes first: problem.Front's refusals
// (headers over http.max_header_bytes, dot or empty path segments) and
// every answer under /console/ the console's security headers (pages may
// set stricter ones).
func (h *Hub) front(next http.Handler) http.Handler {
	return problem.Front(h.cfg.HTTP.MaxHeaderBytes, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/console/") {
			hd := w.Header()
			hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
			hd.Set("X-Content-Type-Options", "nosniff")
			hd.Set("X-Frame-Options", "DENY")
			hd.Set("Referrer-Policy", "no-referrer")
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	}))
}

func (h *Hub) setRunning(name string, v bool) {
	h.mu.Lock()
	h.running[name] = v
	h.mu.Unlock()
	if v {
		h.up.WithLabelValues(name).Set(1)
	} else {
		h.up.WithLabelValues(name).Set(0)
	}
}
