package joblib

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// The job library's connector kind for routes. As a source it pulls new
// applications (办件获取) or the 免申即享 cases the portal hands back, page by
// page from a cursor kept in the state store, and emits each record as one
// message; as a sink it delivers one call's batch (status nodes, a push, confirmations or
// payouts) and, when a delivery is in doubt, answers the route engine's
// question through the portal's query (routes.DeliveryChecker), so a send
// whose outcome is unknown is checked, never resent blindly.

// Kind is the connector kind's name in route files.
const Kind = "joblib"

// Partner ids and flows of the events the kind emits.
const (
	PartnerJobLib   = "portal.joblib"
	PartnerMianshen = "portal.mianshen"
	FlowFetch       = "case-pull"
	FlowCases       = "mianshen-fetch"
)

// Feeds a source pulls.
const (
	FeedApplications = "applications"
	FeedCases        = "cases"
)

// Operations a sink performs: one call of the portal per message.
const (
	OpNodes   = "nodes"
	OpPush    = "push"
	OpConfirm = "confirm"
	OpPayout  = "payout"
)

// Headers of the messages a source emits.
const (
	// HeaderRecord says what the body is: "application", "case" or "refused".
	HeaderRecord = "joblib-record"
	// HeaderReason is the reason of a refused record (masked).
	HeaderReason = "joblib-reason"
	// HeaderFeed is the feed the record came from.
	HeaderFeed = "joblib-feed"
)

//go:embed migrations/*.sql
var migrations embed.FS

func init() {
	connectors.Register(connectors.Spec{
		Name:    Kind,
		Summary: "one-stop portal (一网通办): the job library (办件库) and 免申即享 — pull applications or cases by cursor; deliver status nodes, pushes, confirmations and payouts, checked through the portal's query when in doubt",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { c := DefaultSourceConfig(); return &c },
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("joblib: source config is %T, want *joblib.SourceConfig", cfg)
				}
				return NewSource(*c, deps)
			},
		},
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { c := DefaultSinkConfig(); return &c },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*SinkConfig)
				if !ok {
					return nil, fmt.Errorf("joblib: sink config is %T, want *joblib.SinkConfig", cfg)
				}
				return NewSink(*c, deps)
			},
		},
	})
}

// PortalConfig is the portal interface a route endpoint talks to.
type PortalConfig struct {
	// Partner, when set (to "portal"), takes the client the hub built from its own portal configuration (address, signing key, rate limit and breaker: one per portal, shared with the portal service); base_url, key_id, key and the client settings are then not given here.
	Partner string `yaml:"partner"`
	// Dept is the bureau's department code on the portal (部门编码).
	Dept string `yaml:"dept"`
	// BaseURL is the interface's base URL (without the /joblib/v1 or /mianshen/v1 path).
	BaseURL string `yaml:"base_url"`
	// KeyID is the key id the portal issued to the bureau.
	KeyID string `yaml:"key_id"`
	// Key is the key provider's name of the signing secret the portal issued.
	Key string `yaml:"key"`
	// KeyProvider is where the secret is read: file (key_dir/<key>) or env (MZHUB_KEY_…).
	KeyProvider string `yaml:"key_provider"`
	// KeyDir is the file key provider's directory.
	KeyDir string `yaml:"key_dir"`
	// Timeout bounds one call.
	Timeout time.Duration `yaml:"timeout"`
	// RatePerSecond caps the calls of this endpoint to the portal.
	RatePerSecond float64 `yaml:"rate_per_second"`
	// BreakerFailures consecutive failures open the circuit breaker.
	BreakerFailures uint32 `yaml:"breaker_failures"`
	// BreakerOpen is how long the breaker stays open before a trial call.
	BreakerOpen time.Duration `yaml:"breaker_open"`
}

func defaultPortal() PortalConfig {
	return PortalConfig{Dept: "SHMZJ", Key: "portal/signing", KeyProvider: "file", KeyDir: "data/keys", Timeout: 10 * time.Second,
		RatePerSecond: 20, BreakerFailures: 5, BreakerOpen: 30 * time.Second}
}

func (c PortalConfig) validate() []error {
	var errs []error
	if c.Partner != "" {
		if c.Partner != PartnerPortal {
			errs = append(errs, fmt.Errorf("partner: %q: want %s (the hub's portal client) or none", clip(c.Partner), PartnerPortal))
		}
		if c.BaseURL != "" || c.KeyID != "" {
			errs = append(errs, errors.New("partner: base_url and key_id come from the hub's portal configuration; leave them out"))
		}
		return errs
	}
	if c.Dept == "" {
		errs = append(errs, errors.New("dept: required"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("base_url: %q: want an http(s) URL", c.BaseURL))
	}
	if c.KeyID == "" {
		errs = append(errs, errors.New("key_id: required"))
	}
	if err := keys.CheckName(c.Key); err != nil {
		errs = append(errs, fmt.Errorf("key: %w", err))
	}
	switch c.KeyProvider {
	case "file":
		if c.KeyDir == "" {
			errs = append(errs, errors.New("key_dir: required with key_provider file"))
		}
	case "env":
	default:
		errs = append(errs, fmt.Errorf("key_provider: %q: want file or env", c.KeyProvider))
	}
	if c.Timeout <= 0 || c.Timeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("timeout: %s: want (0, 5m]", c.Timeout))
	}
	if c.RatePerSecond < 0 {
		errs = append(errs, errors.New("rate_per_second: must not be negative"))
	}
	if c.BreakerOpen <= 0 {
		errs = append(errs, errors.New("breaker_open: must be positive"))
	}
	return errs
}

// client reads the signing secret and returns a client of the portal.
func (c PortalConfig) client(ctx context.Context) (*Client, error) {
	p, err := keys.New(c.KeyProvider, c.KeyDir)
	if err != nil {
		return nil, err
	}
	secret, err := p.Get(ctx, c.Key)
	if err != nil {
		return nil, fmt.Errorf("joblib: signing key %q: %w", c.Key, err)
	}
	ep := Endpoint{ClientConfig: httpx.ClientConfig{Timeout: c.Timeout, RatePerSecond: c.RatePerSecond, BreakerFailures: c.BreakerFailures,
		BreakerOpen: c.BreakerOpen}, BaseURL: c.BaseURL, KeyID: c.KeyID}
	return NewClient(c.Dept, ep, ep, secret, secret)
}

// SourceConfig configures a joblib source.
type SourceConfig struct {
	// PortalConfig is the portal interface.
	PortalConfig `yaml:",inline"`
	// Feed is what is pulled: applications (job library 办件获取) or cases (免申即享 cases handed back for confirmation).
	Feed string `yaml:"feed"`
	// Every is the pause between polls once the portal has nothing more.
	Every time.Duration `yaml:"every"`
	// PageSize is how many records one call asks for (1..1000).
	PageSize int `yaml:"page_size"`
	// Cursor names the cursor in the state store (default <dept>/<feed>); routes naming one cursor share it.
	Cursor string `yaml:"cursor"`
}

// DefaultSourceConfig returns the defaults.
func DefaultSourceConfig() SourceConfig {
	return SourceConfig{PortalConfig: defaultPortal(), Every: 30 * time.Second, PageSize: 200}
}

// Validate reports every problem at once; it does no I/O.
func (c *SourceConfig) Validate() error {
	errs := c.PortalConfig.validate()
	if c.Feed != FeedApplications && c.Feed != FeedCases {
		errs = append(errs, fmt.Errorf("feed: %q: want applications or cases", c.Feed))
	}
	if c.Every <= 0 {
		errs = append(errs, errors.New("every: must be positive"))
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		errs = append(errs, fmt.Errorf("page_size: %d: want 1..1000", c.PageSize))
	}
	return errors.Join(errs...)
}

// SinkConfig configures a joblib sink.
type SinkConfig struct {
	// PortalConfig is the portal interface.
	PortalConfig `yaml:",inline"`
	// Op is what each message is: nodes (status nodes to the job library), push (免申即享 persons), confirm (部门确认) or payout (兑付).
	Op string `yaml:"op"`
}

// DefaultSinkConfig returns the defaults.
func DefaultSinkConfig() SinkConfig { return SinkConfig{PortalConfig: defaultPortal()} }

// Validate reports every problem at once; it does no I/O.
func (c *SinkConfig) Validate() error {
	errs := c.PortalConfig.validate()
	switch c.Op {
	case OpNodes, OpPush, OpConfirm, OpPayout:
	default:
		errs = append(errs, fmt.Errorf("op: %q: want nodes, push, confirm or payout", c.Op))
	}
	return errors.Join(errs...)
}

// PartnerPortal is the partner id under which the hub hands the kind its
// portal client (connectors.Deps.Partners).
const PartnerPortal = "portal"

// Clients finds the partner clients the hub built from its configuration
// (connectors.Deps.Partners); the joblib kind asks it for PartnerPortal,
// which must be a *Client.
type Clients interface {
	PartnerClient(id string) (any, error)
}

// lazyClient builds the client on first use (the key is read then, so a
// route loads and lints without it), or takes the hub's.
type lazyClient struct {
	cfg  PortalConfig
	hub  Clients
	mu   sync.Mutex
	c    *Client
	last error
}

func newLazyClient(cfg PortalConfig, deps connectors.Deps) (*lazyClient, error) {
	l := &lazyClient{cfg: cfg}
	if cfg.Partner != "" {
		cl, ok := deps.Partners.(Clients)
		if !ok || cl == nil {
			return nil, errors.New("joblib: partner portal: the hub holds no partner clients")
		}
		l.hub = cl
	}
	return l, nil
}

func (l *lazyClient) get(ctx context.Context) (*Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil {
		return l.c, nil
	}
	if l.hub != nil {
		x, err := l.hub.PartnerClient(l.cfg.Partner)
		if err != nil {
			return nil, fmt.Errorf("joblib: partner %s: %w", l.cfg.Partner, err)
		}
		c, ok := x.(*Client)
		if !ok || c == nil {
			return nil, fmt.Errorf("joblib: partner %s: the hub's client is %T, want *joblib.Client", l.cfg.Partner, x)
		}
		l.c = c
		return c, nil
	}
	c, err := l.cfg.client(ctx)
	if err != nil {
		l.last = err
		return nil, err
	}
	l.c = c
	return c, nil
}

// Source pulls applications or cases from the portal.
type Source struct {
	cfg    SourceConfig
	deps   connectors.Deps
	client *lazyClient
	cursor string
}

// NewSource returns a source; the signing key is read on the first poll.
func NewSource(cfg SourceConfig, deps connectors.Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("joblib: source: the state store is required (the cursor lives there)")
	}
	name := cfg.Cursor
	if name == "" {
		name = cfg.Dept + "/" + cfg.Feed
	}
	lc, err := newLazyClient(cfg.PortalConfig, deps)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, deps: deps, client: lc, cursor: name}, nil
}

// Endpoint describes the source for events and dead letters.
func (s *Source) Endpoint() string { return s.cfg.endpoint() + " " + s.cfg.Feed }

func (c PortalConfig) endpoint() string {
	if c.Partner != "" {
		return "partner " + c.Partner
	}
	return c.BaseURL
}

func (s *Source) partnerFlow() (string, string) {
	if s.cfg.Feed == FeedCases {
		return PartnerMianshen, FlowCases
	}
	return PartnerJobLib, FlowFetch
}

// Run polls until ctx is done: page after page while the portal has more,
// then every cfg.Every. The cursor advances only after the page's records
// are durably on the bus (emit returned), so a crash re-pulls a page, never
// skips one; the records' idempotency keys (their ids) make the re-pull
// harmless.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := s.deps.Store.Migrate(ctx, "joblib", sub); err != nil {
		return fmt.Errorf("joblib: %w", err)
	}
	for {
		more, err := s.Poll(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.deps.Logger.Warn("joblib: poll", "feed", s.cfg.Feed, "err", err)
		}
		if more && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock().After(s.cfg.Every):
		}
	}
}

func (s *Source) clock() interface {
	After(time.Duration) <-chan time.Time
	Now() time.Time
} {
	if s.deps.Clock != nil {
		return s.deps.Clock
	}
	return realClock{}
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) Now() time.Time                         { return time.Now() }

func (s *Source) emitEvent(ev monitor.Event) {
	if s.deps.Events == nil {
		return
	}
	ev.Time = s.clock().Now()
	ev.Partner, ev.Flow = s.partnerFlow()
	ev.Direction, ev.Channel, ev.Component = monitor.Inbound, "http", "joblib"
	if ev.Status == "" {
		ev.Status = monitor.OK
	}
	s.deps.Events.Emit(ev)
}

// Poll takes one page: it emits each valid record (key and idempotency key
// its id) and each refused one (HeaderRecord "refused", with the reason; the
// consumer records it and never applies it), then advances the cursor. It
// reports whether the portal has more.
func (s *Source) Poll(ctx context.Context, emit connectors.Emit) (bool, error) {
	c, err := s.client.get(ctx)
	if err != nil {
		return false, err
	}
	cursor, err := s.readCursor(ctx)
	if err != nil {
		return false, err
	}
	start := s.clock().Now()
	var msgs []connectors.Message
	var refused []Refused
	var next string
	var more bool
	switch s.cfg.Feed {
	case FeedApplications:
		page, err := c.FetchApplications(ctx, cursor, s.cfg.PageSize)
		if err != nil {
			s.failed(err, start)
			return false, err
		}
		for _, a := range page.Applications {
			b, err := json.Marshal(a)
			if err != nil {
				return false, err
			}
			msgs = append(msgs, s.message("application", a.ApplicationID, b))
		}
		refused, next, more = page.Refused, page.Next, page.More
	default:
		page, err := c.FetchCases(ctx, cursor, s.cfg.PageSize)
		if err != nil {
			s.failed(err, start)
			return false, err
		}
		for _, x := range page.Cases {
			b, err := json.Marshal(x)
			if err != nil {
				return false, err
			}
			msgs = append(msgs, s.message("case", x.CaseID, b))
		}
		refused, next, more = page.Refused, page.Next, page.More
	}
	for _, r := range refused {
		b, _ := json.Marshal(map[string]any{"id": r.ID, "index": r.Index})
		m := s.message("refused", fmt.Sprintf("refused/%s/%s#%d", s.cfg.Feed, cursor, r.Index), b)
		m.Headers[HeaderReason] = r.Reason
		m.Key = r.ID
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		if err := emit(ctx, msgs...); err != nil {
			return false, fmt.Errorf("joblib: emit %s: %w", s.cfg.Feed, err)
		}
	}
	if next != cursor {
		if err := s.writeCursor(ctx, next); err != nil {
			return false, err
		}
	}
	if len(msgs) > 0 {
		st := monitor.OK
		if len(refused) > 0 {
			st = monitor.Warning
		}
		s.emitEvent(monitor.Event{Type: monitor.Fetched, Status: st, ExchangeID: s.cfg.Feed + ":" + next,
			Records: int64(len(msgs) - len(refused)), RecordsFailed: int64(len(refused)), Duration: s.clock().Now().Sub(start),
			Attrs: map[string]string{"cursor": next}})
	}
	return more, nil
}

func (s *Source) message(record, id string, body []byte) connectors.Message {
	return connectors.Message{Key: id, IdempotencyKey: s.cfg.Feed + "/" + id, Body: body,
		Headers: map[string]string{HeaderRecord: record, HeaderFeed: s.cfg.Feed}}
}

func (s *Source) failed(err error, start time.Time) {
	class := "transient"
	switch {
	case NotSent(err):
		class = "breaker"
	case errors.Is(err, ErrMalformed):
		class = "format"
	case IsRefused(err):
		class = "permanent"
	}
	s.emitEvent(monitor.Event{Type: monitor.Failed, Status: monitor.Error, Duration: s.clock().Now().Sub(start),
		ErrorClass: class, ErrorMessage: mask.Text(err.Error())})
}

func (s *Source) readCursor(ctx context.Context) (string, error) {
	db := s.deps.Store
	var v string
	err := db.QueryRowContext(ctx, db.Rebind(`SELECT value FROM joblib_cursors WHERE name = ?`), s.cursor).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("joblib: read cursor %s: %w", s.cursor, err)
	}
	return v, nil
}

func (s *Source) writeCursor(ctx context.Context, v string) error {
	db := s.deps.Store
	_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO joblib_cursors (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`), s.cursor, v, s.clock().Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("joblib: write cursor %s: %w", s.cursor, err)
	}
	return nil
}

// Batch is the body of a message a joblib sink delivers: the records of
// one call to the portal, of the sink's op.
type Batch struct {
	// Op is nodes, push, confirm or payout (the sink's op).
	Op string `json:"op"`
	// Nodes are status nodes (op nodes), in order: the nodes of one application by seq.
	Nodes []Node `json:"nodes,omitempty"`
	// Push is a batch of newly eligible persons (op push).
	Push *Push `json:"push,omitempty"`
	// Confirmations are department confirmations (op confirm).
	Confirmations []Confirmation `json:"confirmations,omitempty"`
	// Payouts are payout records (op payout).
	Payouts []Payout `json:"payouts,omitempty"`
}

// DecodeBatch decodes and checks a batch: its op, that it carries records
// of that op only, and every record's rules.
func DecodeBatch(body []byte) (Batch, error) {
	var b Batch
	if err := strictUnmarshal(body, &b); err != nil {
		return b, fmt.Errorf("%w: batch: %s", ErrInvalid, mask.Text(err.Error()))
	}
	n := 0
	for _, has := range []bool{len(b.Nodes) > 0, b.Push != nil, len(b.Confirmations) > 0, len(b.Payouts) > 0} {
		if has {
			n++
		}
	}
	if n != 1 {
		return b, fmt.Errorf("%w: batch: want records of exactly one op", ErrInvalid)
	}
	var errs []error
	switch b.Op {
	case OpNodes:
		for i := range b.Nodes {
			if err := b.Nodes[i].Validate(); err != nil {
				errs = append(errs, fmt.Errorf("nodes[%d]: %w", i, err))
			}
		}
		if len(b.Nodes) == 0 {
			errs = append(errs, fmt.Errorf("%w: op nodes without nodes", ErrInvalid))
		}
	case OpPush:
		if b.Push == nil || b.Push.BatchID == "" || len(b.Push.Persons) == 0 || len(b.Push.Persons) > MaxPushPersons {
			errs = append(errs, fmt.Errorf("%w: op push: a batch id and 1..%d persons are required", ErrInvalid, MaxPushPersons))
		}
	case OpConfirm:
		for i := range b.Confirmations {
			if err := b.Confirmations[i].Validate(); err != nil {
				errs = append(errs, fmt.Errorf("confirmations[%d]: %w", i, err))
			}
		}
		if len(b.Confirmations) == 0 {
			errs = append(errs, fmt.Errorf("%w: op confirm without confirmations", ErrInvalid))
		}
	case OpPayout:
		for i := range b.Payouts {
			if err := b.Payouts[i].Validate(); err != nil {
				errs = append(errs, fmt.Errorf("payouts[%d]: %w", i, err))
			}
		}
		if len(b.Payouts) == 0 {
			errs = append(errs, fmt.Errorf("%w: op payout without payouts", ErrInvalid))
		}
	default:
		errs = append(errs, fmt.Errorf("%w: op %q", ErrInvalid, clip(b.Op)))
	}
	return b, errors.Join(errs...)
}

// Sink delivers batches to the portal. It is a routes.DeliveryChecker:
// when a delivery is in doubt the engine asks Delivered, which asks the
// portal's query, before anything is sent again.
type Sink struct {
	cfg    SinkConfig
	deps   connectors.Deps
	client *lazyClient
}

// NewSink returns a sink; the signing key is read on the first call.
func NewSink(cfg SinkConfig, deps connectors.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lc, err := newLazyClient(cfg.PortalConfig, deps)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, deps: deps, client: lc}, nil
}

// Endpoint describes the sink for events and dead letters.
func (s *Sink) Endpoint() string { return s.cfg.endpoint() + " " + s.cfg.Op }

// RejectedError is a delivery the portal took but refused records of: it
// is permanent (sending the same records again cannot help), and lists
// each refused record with the portal's reason.
type RejectedError struct {
	// Refused are the refused records' results.
	Refused []Result
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "joblib: the portal refused %d record(s)", len(e.Refused))
	for i, r := range e.Refused {
		if i == 5 {
			fmt.Fprintf(&b, "; …")
			break
		}
		fmt.Fprintf(&b, "; %s: %s %s", r.ID, r.Outcome, r.Reason)
	}
	return mask.Text(b.String())
}

// Is makes a RejectedError match connectors.ErrPermanent.
func (e *RejectedError) Is(target error) bool { return target == connectors.ErrPermanent }

// OutOfOrderError is a delivery some of whose nodes came before their
// application's previous node: the others are taken, and the message is
// retried later (the portal answers the taken ones as duplicates).
type OutOfOrderError struct {
	// IDs are the nodes out of order.
	IDs []string
}

func (e *OutOfOrderError) Error() string {
	return fmt.Sprintf("joblib: %d node(s) out of order at the portal (first %s); retried after the earlier nodes", len(e.IDs), e.IDs[0])
}

// Send delivers one batch. A call refused as a whole (4xx) or records
// refused are permanent; a call that never left (breaker open) is not sent;
// any other failure after the request left is in doubt.
func (s *Sink) Send(ctx context.Context, msg connectors.Message) error {
	b, err := DecodeBatch(msg.Body)
	if err != nil {
		return connectors.Permanent(err)
	}
	if b.Op != s.cfg.Op {
		return connectors.Permanent(fmt.Errorf("joblib: a %s batch on a %s sink", b.Op, s.cfg.Op))
	}
	c, err := s.client.get(ctx)
	if err != nil {
		return connectors.NotSent(err)
	}
	var res map[string]Result
	switch b.Op {
	case OpNodes:
		res, err = c.PushNodes(ctx, b.Nodes)
	case OpPush:
		_, err = c.PushPersons(ctx, *b.Push)
	case OpConfirm:
		res, err = c.Confirm(ctx, b.Confirmations)
	case OpPayout:
		res, err = c.Payouts(ctx, b.Payouts)
	}
	if err != nil {
		return classify(err)
	}
	var refused []Result
	var late []string
	for _, r := range res {
		switch {
		case Delivered(r.Outcome):
		case r.Outcome == OutcomeOutOfOrder:
			late = append(late, r.ID)
		default:
			refused = append(refused, r)
		}
	}
	if len(refused) > 0 {
		return &RejectedError{Refused: refused}
	}
	if len(late) > 0 {
		return &OutOfOrderError{IDs: late}
	}
	return nil
}

// classify maps a failed call to the engine's classes.
func classify(err error) error {
	switch {
	case NotSent(err):
		return connectors.NotSent(err)
	case IsRefused(err):
		return connectors.Permanent(err)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err // the engine treats a cut call as in doubt
	default:
		// A 5xx, a lost connection or an answer out of format: the portal
		// may have applied the call.
		return connectors.InDoubt(err)
	}
}

// Delivered asks the portal whether it holds every record of msg's batch:
// true when it does, false when at least one is missing (the engine sends
// the batch again; the portal answers the ones it has as duplicates), an
// error when the portal cannot be asked.
func (s *Sink) Delivered(ctx context.Context, msg connectors.Message) (bool, error) {
	b, err := DecodeBatch(msg.Body)
	if err != nil {
		return false, err
	}
	c, err := s.client.get(ctx)
	if err != nil {
		return false, err
	}
	if b.Op == OpPush {
		_, err := c.PushStatus(ctx, b.Push.BatchID, len(b.Push.Persons))
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	return s.held(ctx, c, b)
}

// held asks the portal's query whether it holds every record of a nodes,
// confirm or payout batch.
func (s *Sink) held(ctx context.Context, c *Client, b Batch) (bool, error) {
	switch b.Op {
	case OpNodes:
		var ids []string
		seen := map[string]bool{}
		for _, n := range b.Nodes {
			if !seen[n.ApplicationID] {
				seen[n.ApplicationID] = true
				ids = append(ids, n.ApplicationID)
			}
		}
		st, err := c.NodeStatus(ctx, ids)
		if err != nil {
			return false, err
		}
		for _, n := range b.Nodes {
			if x := st[n.ApplicationID]; !x.Known || x.LastSeq < n.Seq {
				return false, nil
			}
		}
		return true, nil
	case OpConfirm:
		ids := make([]string, len(b.Confirmations))
		for i, x := range b.Confirmations {
			ids[i] = x.CaseID
		}
		st, err := c.CaseStatus(ctx, uniq(ids))
		if err != nil {
			return false, err
		}
		for _, x := range b.Confirmations {
			if st[x.CaseID].Decision != x.Decision {
				return false, nil
			}
		}
		return true, nil
	case OpPayout:
		ids := make([]string, len(b.Payouts))
		for i, x := range b.Payouts {
			ids[i] = x.CaseID
		}
		st, err := c.CaseStatus(ctx, uniq(ids))
		if err != nil {
			return false, err
		}
		for _, p := range b.Payouts {
			found := false
			for _, id := range st[p.CaseID].PayoutIDs {
				found = found || id == p.PayoutID
			}
			if !found {
				return false, nil
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("joblib: op %q", clip(b.Op))
}

func uniq(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

var (
	_ connectors.Source = (*Source)(nil)
	_ connectors.Sink   = (*Sink)(nil)
)
