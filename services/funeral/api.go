package funeral

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/store"
)

// Deps is what the hub hands to the funeral API.
type Deps struct {
	// Logger is scoped by the caller (logger.With("component", "funeral")).
	Logger *slog.Logger
	// Metrics is the hub's registerer; nil registers nothing.
	Metrics prometheus.Registerer
	// Store is the state database (for the sandbox: a separate one).
	Store *store.DB
	// Clock tells the time; nil is the wall clock.
	Clock clock.Clock
	// Events receives a monitor event per call; nil drops them.
	Events connectors.Events
	// Bus receives change events on TopicChanges; nil keeps them in the
	// change log only (the bureau's feed still serves them).
	Bus Publisher
	// Partners is the partner registry.
	Partners *Registry
	// Sealer seals stored record bodies (deceased persons' names, contacts)
	// at rest (security/fieldcrypt.Ring); nil stores them as they are.
	Sealer Sealer
	// MaxBodyBytes is the largest request body read; a larger one is
	// answered 413 problem+json, code body_too_large. The hub passes the
	// partner API's one body limit, security.partner_api.max_body_bytes,
	// which its guard enforces first; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes is the body limit of an API built without
// Deps.MaxBodyBytes: the default of security.partner_api.max_body_bytes.
const DefaultMaxBodyBytes = 1 << 20

// API is the funeral partner API served under /partner/v1/. Mount it
// without stripping the prefix: it routes on the full path.
//
// The API does not authenticate: it serves the partner the security guard
// (security/access, which the hub runs in front of every partner API:
// signature, nonce, timestamp window, IP allowlist, rate limits, audit) put
// in the request context, read with security.PartnerFrom. A request without
// one is answered 401 unauthenticated.
type API struct {
	maxBody  int64
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock
	events   connectors.Events
	bus      Publisher
	partners *Registry
	spec     *apispec.Spec
	store    *Store
	handler  http.Handler
	ops      map[string]opHandler
	limMu    sync.Mutex
	limiters map[string]*rate.Limiter
	stats    *stats
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

type opHandler func(w http.ResponseWriter, r *http.Request, c *call) error

// call is the state of one request.
type call struct {
	op      *apispec.Operation
	params  map[string]string
	partner Partner
	kind    string
	ref     string
}

var recordIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
var idemKeyRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)

// NewAPI validates cfg, migrates the funeral schema and returns the API.
// Call Run to relay changes to the bus and Close to stop.
func NewAPI(ctx context.Context, cfg Config, deps Deps) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Partners == nil {
		return nil, errors.New("funeral: deps.Store and deps.Partners are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	spec, err := apispec.Partner()
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, deps.Store, deps.Clock.Now)
	if err != nil {
		return nil, err
	}
	st.SetGroupCommitWait(cfg.GroupCommitWait)
	if deps.Sealer != nil {
		st.SealWith(deps.Sealer)
	}
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = DefaultMaxBodyBytes
	}
	a := &API{
		maxBody: deps.MaxBodyBytes, cfg: cfg, log: deps.Logger.With("env", cfg.Environment), clock: deps.Clock, events: deps.Events, bus: deps.Bus,
		partners: deps.Partners, spec: spec, store: st, limiters: map[string]*rate.Limiter{}, stats: newStats(),
	}
	if deps.Bus != nil {
		// Publish only what the service declares (Topology).
		a.bus = Topology.Guard(deps.Bus)
	}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mzhub_funeral_requests_total", Help: "Partner API requests by operation and status code.",
	}, []string{"operation", "code"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mzhub_funeral_request_duration_seconds", Help: "Partner API request duration.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"operation"})
	if deps.Metrics != nil {
		reg := prometheus.WrapRegistererWith(prometheus.Labels{"env": cfg.Environment}, deps.Metrics)
		for _, c := range []prometheus.Collector{a.requests, a.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("funeral: metrics: %w", err)
			}
		}
	}
	a.ops = a.operations()
	for _, op := range spec.Operations() {
		if _, ok := a.ops[op.ID]; !ok {
			return nil, fmt.Errorf("funeral: operation %s of the spec has no handler", op.ID)
		}
	}
	a.handler = problem.Recover(a.log, http.HandlerFunc(a.serve))
	return a, nil
}

// ServeHTTP serves the partner API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Store returns the API's record store (read APIs, ops views, tools).
func (a *API) Store() *Store { return a.store }

// Spec returns the parsed partner API document.
func (a *API) Spec() *apispec.Spec { return a.spec }

// Run relays stored changes to the bus until ctx is done. Without a bus it
// just waits.
func (a *API) Run(ctx context.Context) error {
	if a.bus == nil {
		<-ctx.Done()
		return nil
	}
	a.store.RunRelay(ctx, a.bus, a.cfg.RelayInterval, func(err error) { a.log.Warn("relay changes to the bus", "err", err) })
	return nil
}

// Close stops the store's writer within ctx's deadline.
func (a *API) Close(ctx context.Context) error { return a.store.Close(ctx) }

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	start := a.clock.Now()
	// A write is answered only once its monitor event is durable: the
	// response is held meanwhile, so that an accepted push never lacks its
	// event after a crash (reads stream as they are).
	write := r.Method == http.MethodPut || r.Method == http.MethodDelete || r.Method == http.MethodPost
	var held *heldResponse
	if write {
		held = newHeldResponse(w)
		w = held
	}
	sw := problem.NewRecorder(w)
	c := &call{}
	opName := "unknown"
	caller, _ := security.PartnerFrom(r.Context())
	partnerID := caller.ID
	err := func() error {
		if partnerID == "" {
			p := problem.Unauthenticated("no authenticated partner")
			return &p
		}
		op, params, ok := a.spec.Find(r.Method, r.URL.Path)
		if !ok {
			if allow := a.allowed(r.URL.Path); allow != "" {
				sw.Header().Set("Allow", allow)
				p := problem.MethodNotAllowed(allow)
				return &p
			}
			p := problem.NotFound("no operation at " + r.Method + " " + r.URL.Path)
			return &p
		}
		opName = op.ID
		c.op, c.params = op, params
		partner, ok := a.partners.Partner(partnerID)
		if !ok || !partner.Allowed(a.cfg.Environment) {
			p := problem.Forbidden("the partner is not enabled in the " + a.cfg.Environment + " environment")
			return &p
		}
		c.partner = partner
		if lim := a.limiter(partnerID); lim != nil && !lim.Allow() {
			p := problem.RateLimited(1)
			return &p
		}
		return a.ops[op.ID](sw, r, c)
	}()
	if err != nil {
		var p *problem.Problem
		if !errors.As(err, &p) {
			a.log.Error("funeral api", "operation", opName, "partner", partnerID, "err", err)
		}
		problem.WriteError(sw, r, err)
	}
	d := a.clock.Now().Sub(start)
	ev, ok := a.record(r, opName, partnerID, c.kind+"/"+c.ref, sw.Status(), sw.Code(), d)
	if held == nil {
		if ok {
			a.events.Emit(ev)
		}
		return
	}
	if ok && sw.Status() < 300 {
		if err := monitor.EmitDurable(r.Context(), a.events, ev); err != nil {
			// The record is stored; the partner resends (idempotent by
			// record id) and that call's event is kept.
			a.log.Error("funeral api: monitor event not durable; answering 503", "operation", opName, "partner", partnerID, "err", err)
			held.discard()
			problem.Write(held.w, r, problem.Unavailable(1))
			return
		}
	} else if ok {
		a.events.Emit(ev)
	}
	held.commit()
}

// heldResponse buffers a response until commit writes it to w (or discard
// drops it). Partner API answers are small.
type heldResponse struct {
	w      http.ResponseWriter
	header http.Header
	status int
	body   []byte
}

func newHeldResponse(w http.ResponseWriter) *heldResponse {
	return &heldResponse{w: w, header: http.Header{}}
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	h.body = append(h.body, b...)
	return len(b), nil
}

func (h *heldResponse) discard() { h.header, h.status, h.body = http.Header{}, 0, nil }

func (h *heldResponse) commit() {
	dst := h.w.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	if h.status == 0 {
		h.status = http.StatusOK
	}
	h.w.WriteHeader(h.status)
	_, _ = h.w.Write(h.body)
}

func (a *API) allowed(path string) string {
	var ms []string
	for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
		if _, _, ok := a.spec.Find(m, path); ok {
			ms = append(ms, m)
		}
	}
	return strings.Join(ms, ", ")
}

// record meters a call and returns its monitor event (ok false when the
// API has no event sink).
func (a *API) record(r *http.Request, op, partnerID, ref string, status int, code string, d time.Duration) (monitor.Event, bool) {
	a.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	a.latency.WithLabelValues(op).Observe(d.Seconds())
	write := r.Method == http.MethodPut || r.Method == http.MethodDelete
	a.stats.add(partnerID, a.clock.Now(), write, status >= 400)
	if a.events == nil {
		return monitor.Event{}, false
	}
	ev := monitor.Event{
		Time: a.clock.Now(), Partner: partnerID, Flow: "funeral-api", Direction: monitor.Inbound, Channel: "http",
		Type: monitor.Received, Status: monitor.OK, ExchangeID: r.Header.Get(problem.RequestIDHeader), PartnerRef: ref,
		Duration: d, Component: "funeral", Attrs: map[string]string{"operation": op, "status": strconv.Itoa(status), "env": a.cfg.Environment},
	}
	if strings.HasPrefix(ref, KindBurial+"/") {
		ev.Flow = "burial-push"
	} else if write {
		ev.Flow = "funeral-push"
	}
	switch {
	case status >= 500:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode = monitor.Failed, monitor.Error, "internal", code
	case status >= 400:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode = monitor.Rejected, monitor.Warning, "partner", code
	}
	return ev, true
}

func (a *API) limiter(partnerID string) *rate.Limiter {
	if a.cfg.RatePerSecond <= 0 {
		return nil
	}
	a.limMu.Lock()
	defer a.limMu.Unlock()
	l, ok := a.limiters[partnerID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.cfg.RatePerSecond), a.cfg.RateBurst)
		a.limiters[partnerID] = l
	}
	return l
}

// operations maps every operationId of the spec to its handler.
func (a *API) operations() map[string]opHandler {
	m := map[string]opHandler{
		"getInstitution":        a.getRecord(institutionKind),
		"putInstitution":        a.putRecord(institutionKind),
		"listIntermediaries":    a.listBureau(BureauIntermediary),
		"getIntermediary":       a.getIntermediary,
		"listIntermediaryStaff": a.listStaff,
		"listCreditEntries":     a.listBureau(BureauCredit),
	}
	for _, k := range kinds {
		m["list"+k.Op+"s"] = a.listRecords(k)
		m["get"+k.Op] = a.getRecord(k)
		m["put"+k.Op] = a.putRecord(k)
		m["delete"+k.Op] = a.deleteRecord(k)
	}
	return m
}
