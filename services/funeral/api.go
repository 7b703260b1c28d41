package funeral

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	apispec "github.com/shanghai-mca/mzhub/docs/api"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/problem"
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
	// Auth is the partner-auth middleware of the security package
	// (signature, nonce, timestamp window, IP allowlist, audit). When nil,
	// the API uses its built-in HMAC-SM3 check (SignatureAuth) with Secret.
	Auth func(http.Handler) http.Handler
	// PartnerFrom returns the authenticated partner id that Auth put in the
	// request context. Required with Auth.
	PartnerFrom func(ctx context.Context) (string, bool)
	// Secret returns the secret of a partner key id, for the built-in check.
	Secret func(ctx context.Context, keyID string) ([]byte, error)
}

// API is the funeral partner API served under /partner/v1/. Mount it
// without stripping the prefix: it routes on the full path.
type API struct {
	cfg         Config
	log         *slog.Logger
	clock       clock.Clock
	events      connectors.Events
	bus         Publisher
	partners    *Registry
	spec        *apispec.Spec
	store       *Store
	handler     http.Handler
	partnerFrom func(context.Context) (string, bool)
	ops         map[string]opHandler
	limMu       sync.Mutex
	limiters    map[string]*rate.Limiter
	stats       *stats
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
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
	if deps.Auth != nil && deps.PartnerFrom == nil {
		return nil, errors.New("funeral: deps.PartnerFrom is required with deps.Auth")
	}
	if deps.Auth == nil && deps.Secret == nil {
		return nil, errors.New("funeral: deps.Auth or deps.Secret is required")
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
	a := &API{
		cfg: cfg, log: deps.Logger.With("env", cfg.Environment), clock: deps.Clock, events: deps.Events, bus: deps.Bus,
		partners: deps.Partners, spec: spec, store: st, limiters: map[string]*rate.Limiter{}, stats: newStats(),
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
	inner := http.Handler(http.HandlerFunc(a.serve))
	if deps.Auth != nil {
		a.partnerFrom = deps.PartnerFrom
		inner = deps.Auth(inner)
	} else {
		auth := NewSignatureAuth(deps.Partners, deps.Secret, cfg.SignatureWindow, cfg.MaxBodyBytes, deps.Clock.Now)
		a.partnerFrom = PartnerFromContext
		inner = auth.Middleware(inner, a.refused)
	}
	a.handler = problem.Recover(a.log, inner)
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

// refused records a call the auth layer turned away.
func (a *API) refused(r *http.Request, partnerID string, p problem.Problem) {
	a.record(r, "auth", partnerID, "", p.Status, p.Code, 0)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (s *statusWriter) WriteHeader(c int) {
	if s.status == 0 {
		s.status = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	start := a.clock.Now()
	sw := &statusWriter{ResponseWriter: w}
	c := &call{}
	opName := "unknown"
	partnerID, _ := a.partnerFrom(r.Context())
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
		} else {
			sw.code = p.Code
		}
		problem.WriteError(sw, r, err)
		if sw.code == "" {
			sw.code = problem.CodeInternal
		}
	}
	d := a.clock.Now().Sub(start)
	a.record(r, opName, partnerID, c.kind+"/"+c.ref, sw.status, sw.code, d)
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

// record meters a call and emits its monitor event.
func (a *API) record(r *http.Request, op, partnerID, ref string, status int, code string, d time.Duration) {
	a.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	a.latency.WithLabelValues(op).Observe(d.Seconds())
	write := r.Method == http.MethodPut || r.Method == http.MethodDelete
	a.stats.add(partnerID, a.clock.Now(), write, status >= 400)
	if a.events == nil {
		return
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
	a.events.Emit(ev)
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

func writeJSON(w http.ResponseWriter, status int, etag string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if etag != "" {
		h.Set("ETag", etag)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func recordID(k kindSpec, c *call) (string, error) {
	if k.Name == KindInstitution {
		return KindInstitution, nil
	}
	id := c.params["id"]
	if !recordIDRE.MatchString(id) {
		p := problem.ValidationFailed(problem.FieldError{Field: "id (path)", Reason: "want 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit"})
		return "", &p
	}
	return id, nil
}

func (a *API) getRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c)
		if err != nil {
			return err
		}
		c.kind, c.ref = k.Name, id
		rec, ok, err := a.store.Get(r.Context(), c.partner.ID, k.Name, id)
		if err != nil {
			return err
		}
		if !ok || rec.Deleted {
			return notFound(k.Name, id)
		}
		body, _ := json.Marshal(rec)
		writeJSON(w, http.StatusOK, rec.ETag(), body)
		return nil
	}
}

func (a *API) putRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c)
		if err != nil {
			return err
		}
		c.kind, c.ref = k.Name, id
		if !k.allows(c.partner.Role) {
			p := problem.Forbidden(fmt.Sprintf("a %s may not push %s records", c.partner.Role, k.Name))
			return &p
		}
		idem, ifMatch, err := conditionHeaders(r)
		if err != nil {
			return err
		}
		body, perr := a.readBody(w, r)
		if perr != nil {
			return perr
		}
		v, perr := decodeJSON(body)
		if perr != nil {
			return perr
		}
		fes, err := a.spec.Validate(k.Schema, v)
		if err != nil {
			return err
		}
		if len(fes) > 0 {
			p := problem.ValidationFailed(toFieldErrors(fes)...)
			return &p
		}
		obj := v.(map[string]any) // the schema requires an object
		normalizeNumbers(obj)
		canonical, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		prep, ferrs := prepare(k, c.partner.Role, obj, canonical)
		if len(ferrs) > 0 {
			out := make([]problem.FieldError, len(ferrs))
			for i, f := range ferrs {
				out[i] = problem.FieldError{Field: f.field, Reason: f.reason}
			}
			p := problem.ValidationFailed(out...)
			return &p
		}
		res, err := a.store.Apply(r.Context(), Write{
			PartnerID: c.partner.ID, Kind: k.Name, ID: id, Version: prep.version, Hash: prep.hash, Data: prep.data,
			Status: prep.status, RefAt: prep.refAt, IfMatch: ifMatch, IdemKey: idem, ReqHash: r.URL.Path + ":" + prep.hash,
		})
		if err != nil {
			return err
		}
		if res.Replayed != nil {
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, res.Replayed.Status, res.Replayed.ETag, res.Replayed.Body)
			return nil
		}
		out, _ := json.Marshal(res.Record)
		writeJSON(w, http.StatusOK, res.Record.ETag(), out)
		return nil
	}
}

func (a *API) deleteRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c)
		if err != nil {
			return err
		}
		c.kind, c.ref = k.Name, id
		if !k.allows(c.partner.Role) {
			p := problem.Forbidden(fmt.Sprintf("a %s may not withdraw %s records", c.partner.Role, k.Name))
			return &p
		}
		_, ifMatch, err := conditionHeaders(r)
		if err != nil {
			return err
		}
		if _, err := a.store.Apply(r.Context(), Write{PartnerID: c.partner.ID, Kind: k.Name, ID: id, Delete: true, IfMatch: ifMatch}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// conditionHeaders reads and checks Idempotency-Key and If-Match. A header
// sent empty is an error for Idempotency-Key (it has a pattern) and means
// no condition for If-Match.
func conditionHeaders(r *http.Request) (idem, ifMatch string, err error) {
	var fes []problem.FieldError
	if vs, sent := r.Header["Idempotency-Key"]; sent {
		idem = vs[0]
		if len(vs) > 1 || !idemKeyRE.MatchString(idem) {
			fes = append(fes, problem.FieldError{Field: "Idempotency-Key (header)", Reason: "want one value of 8 to 64 characters of [A-Za-z0-9._:-]"})
		}
	}
	ifMatch = r.Header.Get("If-Match")
	if len(ifMatch) > 64 {
		fes = append(fes, problem.FieldError{Field: "If-Match (header)", Reason: "longer than 64 characters"})
	}
	if len(fes) > 0 {
		p := problem.ValidationFailed(fes...)
		return "", "", &p
	}
	return idem, ifMatch, nil
}

// pageSize reads page_size (default 50).
func pageSize(r *http.Request) (int, *problem.FieldError) {
	q := r.URL.Query()
	if !q.Has("page_size") {
		return 50, nil
	}
	n, err := strconv.Atoi(q.Get("page_size"))
	if err != nil || n < 1 || n > 200 {
		return 0, &problem.FieldError{Field: "page_size (query)", Reason: "want an integer from 1 to 200"}
	}
	return n, nil
}

// page reads page_size and a record page_token (a change sequence).
func page(r *http.Request) (int, int64, error) {
	var fes []problem.FieldError
	size, fe := pageSize(r)
	if fe != nil {
		fes = append(fes, *fe)
	}
	var after int64
	if t := r.URL.Query().Get("page_token"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		n, err2 := strconv.ParseInt(string(b), 10, 64)
		if err != nil || err2 != nil || n < 0 {
			fes = append(fes, problem.FieldError{Field: "page_token (query)", Reason: "not a token from a previous page"})
		}
		after = n
	}
	if len(fes) > 0 {
		p := problem.ValidationFailed(fes...)
		return 0, 0, &p
	}
	return size, after, nil
}

func pageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

type pageJSON struct {
	Items         []json.RawMessage `json:"items"`
	NextPageToken string            `json:"next_page_token,omitempty"`
}

func (a *API) listRecords(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		c.kind = k.Name
		size, after, err := page(r)
		if err != nil {
			return err
		}
		var since time.Time
		if q := r.URL.Query(); q.Has("updated_since") {
			t, err := time.Parse(time.RFC3339, q.Get("updated_since"))
			if err != nil {
				p := problem.ValidationFailed(problem.FieldError{Field: "updated_since (query)", Reason: "want an RFC 3339 time with an offset"})
				return &p
			}
			since = t
		}
		recs, next, err := a.store.List(r.Context(), Query{PartnerID: c.partner.ID, Kind: k.Name, AfterSeq: after, Since: since, Limit: size})
		if err != nil {
			return err
		}
		out := pageJSON{Items: make([]json.RawMessage, 0, len(recs))}
		for _, rec := range recs {
			b, _ := json.Marshal(rec)
			out.Items = append(out.Items, b)
		}
		if next > 0 {
			out.NextPageToken = pageToken(next)
		}
		b, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, "", b)
		return nil
	}
}

func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if p := problem.RequireContentType(r, "application/json"); p != nil {
		return nil, p
	}
	if r.ContentLength > a.cfg.MaxBodyBytes {
		p := problem.BodyTooLarge(a.cfg.MaxBodyBytes)
		return nil, &p
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p := problem.BodyTooLarge(a.cfg.MaxBodyBytes)
			return nil, &p
		}
		p := problem.BadJSON("the body could not be read")
		return nil, &p
	}
	return b, nil
}

// decodeJSON decodes one JSON value with json.Number numbers.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		p := problem.BadJSON("the body is not valid JSON")
		if errors.Is(err, io.EOF) {
			p = problem.BadJSON("the body is empty")
		}
		return nil, &p
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		p := problem.BadJSON("trailing data after the JSON value")
		return nil, &p
	}
	return v, nil
}

func toFieldErrors(fes []apispec.FieldError) []problem.FieldError {
	out := make([]problem.FieldError, len(fes))
	for i, f := range fes {
		out[i] = problem.FieldError{Field: f.Field, Reason: f.Reason}
	}
	return out
}

func (a *API) listBureau(kind string) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		var fes []problem.FieldError
		size, fe := pageSize(r)
		if fe != nil {
			fes = append(fes, *fe)
		}
		after := ""
		if t := r.URL.Query().Get("page_token"); t != "" {
			b, err := base64.RawURLEncoding.DecodeString(t)
			if err != nil {
				fes = append(fes, problem.FieldError{Field: "page_token (query)", Reason: "not a token from a previous page"})
			}
			after = string(b)
		}
		if len(fes) > 0 {
			p := problem.ValidationFailed(fes...)
			return &p
		}
		list := r.URL.Query().Get("list")
		if r.URL.Query().Has("list") && list != "red" && list != "black" {
			p := problem.ValidationFailed(problem.FieldError{Field: "list (query)", Reason: "want red or black"})
			return &p
		}
		items, err := a.store.ListBureau(r.Context(), kind, "", after, 1000)
		if err != nil {
			return err
		}
		out := pageJSON{Items: []json.RawMessage{}}
		for _, it := range items {
			if list != "" {
				var e struct {
					List string `json:"list"`
				}
				_ = json.Unmarshal(it.Data, &e)
				if e.List != list {
					continue
				}
			}
			if len(out.Items) == size {
				// More remain: the next page starts after the last one shown.
				out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(after))
				break
			}
			out.Items = append(out.Items, it.Data)
			after = it.ID
		}
		b, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, "", b)
		return nil
	}
}

func (a *API) getIntermediary(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.params["id"]
	it, ok, err := a.store.GetBureau(r.Context(), BureauIntermediary, id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(BureauIntermediary, id)
	}
	writeJSON(w, http.StatusOK, "", it.Data)
	return nil
}

func (a *API) listStaff(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.params["id"]
	if _, ok, err := a.store.GetBureau(r.Context(), BureauIntermediary, id); err != nil {
		return err
	} else if !ok {
		return notFound(BureauIntermediary, id)
	}
	items, err := a.store.ListBureau(r.Context(), BureauStaff, id, "", 1000)
	if err != nil {
		return err
	}
	out := pageJSON{Items: []json.RawMessage{}}
	for _, it := range items {
		out.Items = append(out.Items, it.Data)
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, "", b)
	return nil
}
