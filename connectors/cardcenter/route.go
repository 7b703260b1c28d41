package cardcenter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Kind is the connector kind's name in route files.
const Kind = "cardcenter"

// Topic is the bus topic the shipped cardcenter routes deliver to and the
// allowance service consumes (Consumer).
const Topic = "cardcenter.records"

// Headers of the messages a source emits.
const (
	// HeaderFeed is the feed of the record: applications or progress.
	HeaderFeed = "cardcenter-feed"
	// HeaderRef says where the record came from (feed, cursor, item).
	HeaderRef = "cardcenter-ref"
)

func init() { connectors.Register(Spec()) }

// SourceConfig configures a cardcenter source.
type SourceConfig struct {
	// Partner is "cardcenter": the client the hub built from its cardcenter section (url, deadline, retries, rate limit, breaker); when cardcenter.url is not set the route stays idle and says so once in the log.
	Partner string `yaml:"partner"`
	// Feed is what is pulled: applications (申领 of 敬老卡 and 社保卡) or progress (制卡 progress: accepted, produced, issued).
	Feed string `yaml:"feed"`
	// Every is the pause between pulls once the card center has nothing more (or failed).
	Every time.Duration `yaml:"every"`
	// PageSize is how many records one call asks for (1..10000).
	PageSize int `yaml:"page_size"`
}

// DefaultSourceConfig returns the defaults.
func DefaultSourceConfig() SourceConfig {
	return SourceConfig{Partner: Partner, Every: 15 * time.Minute, PageSize: 500}
}

// Validate reports every problem at once; it does no I/O.
func (c *SourceConfig) Validate() error {
	var errs []error
	if c.Partner != Partner {
		errs = append(errs, fmt.Errorf("partner: %q: want %s (the hub's card center client)", clip(c.Partner), Partner))
	}
	if c.Feed != FeedApplications && c.Feed != FeedProgress {
		errs = append(errs, fmt.Errorf("feed: %q: want applications or progress", clip(c.Feed)))
	}
	if c.Every < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("every: %s: want at least 100ms", c.Every))
	}
	if c.PageSize < 1 || c.PageSize > 10000 {
		errs = append(errs, fmt.Errorf("page_size: %d: want 1..10000", c.PageSize))
	}
	return errors.Join(errs...)
}

// Spec is the "cardcenter" connector kind: a source pulling one feed of
// the card center page by page from a cursor kept in the state store.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:    Kind,
		Summary: "card center (卡中心): pulls the applications (申领, 敬老卡 and 社保卡 一卡通) or production progress (制卡) feed by cursor, one message per record keyed by its application id, the cursor stored once the page is on the bus; endpoint from the hub's cardcenter section",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { c := DefaultSourceConfig(); return &c },
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("cardcenter: source config is %T, want *cardcenter.SourceConfig", cfg)
				}
				return NewSource(*c, deps)
			},
		},
	}
}

// Clients finds the partner clients the hub built from its configuration
// (connectors.Deps.Partners); the kind asks it for Partner, a *Client,
// which the hub holds only when cardcenter.url is set.
type Clients interface {
	PartnerClient(id string) (any, error)
}

// Source pulls one feed of the card center.
type Source struct {
	cfg   SourceConfig
	deps  connectors.Deps
	log   *slog.Logger
	clock clock.Clock
}

// NewSource returns a source; the hub's client is taken when it runs.
func NewSource(cfg SourceConfig, deps connectors.Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("cardcenter: source: the state store is required (the cursor lives there)")
	}
	s := &Source{cfg: cfg, deps: deps, log: deps.Logger, clock: deps.Clock}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	return s, nil
}

// Endpoint describes the source for events and dead letters.
func (s *Source) Endpoint() string { return "partner " + s.cfg.Partner + " " + s.cfg.Feed }

// client takes the hub's card center client.
func (s *Source) client() (*Client, error) {
	cl, ok := s.deps.Partners.(Clients)
	if !ok || cl == nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConfigured, errNoClient)
	}
	x, err := cl.PartnerClient(s.cfg.Partner)
	if err != nil {
		// The hub adds the client only with cardcenter.url.
		return nil, fmt.Errorf("%w: %w", ErrNotConfigured, err)
	}
	c, ok := x.(*Client)
	if !ok || c == nil {
		return nil, fmt.Errorf("cardcenter: the hub's client is %T, want *cardcenter.Client", x)
	}
	return c, nil
}

// Run polls until ctx is done: page after page while the card center has
// more, then every cfg.Every. When the hub has no card center
// (cardcenter.url not set) it says so once and waits for ctx, asking
// nobody: the route is idle, not failing.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	if err := Migrate(ctx, s.deps.Store); err != nil {
		return fmt.Errorf("cardcenter: %w", err)
	}
	c, err := s.client()
	if errors.Is(err, ErrNotConfigured) {
		s.log.Info("cardcenter: route idle: the card center is not configured (cardcenter.url is not set); nothing is pulled until it is set and the hub restarted",
			"feed", s.cfg.Feed)
		<-ctx.Done()
		return nil
	}
	if err != nil {
		return err
	}
	if c.leases != nil {
		return c.leases.Run(ctx, "cardcenter.pull."+s.cfg.Feed, func(ctx context.Context) error { return s.loop(ctx, c, emit) })
	}
	return s.loop(ctx, c, emit)
}

// loop polls until ctx is done: page after page while the card center has
// more, then every cfg.Every.
func (s *Source) loop(ctx context.Context, c *Client, emit connectors.Emit) error {
	var expected time.Time // the last expectation registered
	for {
		more, err := s.Poll(ctx, c, emit)
		if err == nil && c.expect != nil {
			now := s.clock.Now().In(clock.Shanghai)
			y, m, d := now.AddDate(0, 0, 1).Date()
			due := time.Date(y, m, d, 0, 0, 0, 0, clock.Shanghai).Add(ExpectBy)
			if !due.Equal(expected) {
				if err := c.expect.Expect(ctx, monitor.Expectation{Name: ExpectationFor(s.cfg.Feed), Partner: Partner,
					Flow: FlowOf(s.cfg.Feed), Type: monitor.Fetched, Due: due}); err != nil {
					s.log.Warn("cardcenter: expectation", "feed", s.cfg.Feed, "err", err)
				} else {
					expected = due
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("cardcenter: pull failed; trying again", "feed", s.cfg.Feed, "after", s.cfg.Every, "err", err)
		}
		if more && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(s.cfg.Every):
		}
	}
}

// Poll takes one page of the feed: each item is emitted as one message
// (key the application id, idempotency key feed/id; for progress key
// id#progress and idempotency key feed/id/stage; an item without a readable id is keyed by cursor and index),
// the items as the card center sent them (the consumer checks and
// quarantines); only once emit returned is the cursor stored, so a crash
// pulls the page again under the same keys. It reports whether the card
// center has more.
func (s *Source) Poll(ctx context.Context, c *Client, emit connectors.Emit) (bool, error) {
	cursor, err := s.readCursor(ctx)
	if err != nil {
		return false, err
	}
	start := s.clock.Now()
	pg, err := c.Fetch(ctx, s.cfg.Feed, cursor, s.cfg.PageSize)
	if err != nil {
		s.failed(err, start)
		return false, err
	}
	msgs := make([]connectors.Message, 0, len(pg.Items))
	for i, raw := range pg.Items {
		msgs = append(msgs, s.message(raw, cursor, i))
	}
	if len(msgs) > 0 {
		if err := emit(ctx, msgs...); err != nil {
			return false, fmt.Errorf("cardcenter: emit %s: %w", s.cfg.Feed, err)
		}
	}
	if pg.NextCursor != "" && pg.NextCursor != cursor {
		if err := s.writeCursor(ctx, pg.NextCursor); err != nil {
			return false, err
		}
	}
	// Also an empty page: a pull that found nothing new still meets the
	// day's expectation.
	s.event(monitor.Event{Type: monitor.Fetched, Status: monitor.OK, ExchangeID: s.cfg.Feed + ":" + pg.NextCursor,
		Records: int64(len(msgs)), Duration: s.clock.Now().Sub(start), Attrs: map[string]string{"cursor": pg.NextCursor}})
	return pg.More, nil
}

// message is the bus message of one item.
func (s *Source) message(raw json.RawMessage, cursor string, i int) connectors.Message {
	var k struct {
		ID    string `json:"app_id"`
		Stage string `json:"stage"`
	}
	ref := fmt.Sprintf("api %s after cursor %q item %d", s.cfg.Feed, clip(cursor), i+1)
	m := connectors.Message{Body: raw, Headers: map[string]string{"Content-Type": "application/json", HeaderFeed: s.cfg.Feed, HeaderRef: ref}}
	if json.Unmarshal(raw, &k) != nil || k.ID == "" || len(k.ID) > 64 || len(k.Stage) > 64 {
		m.Key = "unreadable"
		m.IdempotencyKey = fmt.Sprintf("cardcenter/%s/unreadable/%s#%d", s.cfg.Feed, clip(cursor), i+1)
		return m
	}
	m.Key = k.ID
	m.IdempotencyKey = "cardcenter/" + s.cfg.Feed + "/" + k.ID
	if s.cfg.Feed == FeedProgress {
		// A key of its own: a step waiting for its application (redelivered
		// until the application is stored) never blocks the application
		// behind it on a bus that orders by key.
		m.Key = k.ID + "#progress"
		m.IdempotencyKey += "/" + k.Stage
	}
	return m
}

func (s *Source) event(ev monitor.Event) {
	if s.deps.Events == nil {
		return
	}
	ev.Time = s.clock.Now()
	ev.Partner, ev.Flow = Partner, FlowOf(s.cfg.Feed)
	ev.Direction, ev.Channel, ev.Component = monitor.Inbound, "http", "cardcenter"
	s.deps.Events.Emit(ev)
}

func (s *Source) failed(err error, start time.Time) {
	ev := monitor.Event{Type: monitor.Failed, Status: monitor.Error, Duration: s.clock.Now().Sub(start),
		ErrorClass: "transient", ErrorMessage: mask.Text(err.Error())}
	if errors.Is(err, httpx.ErrCircuitOpen) {
		ev.ErrorCode = "breaker"
	}
	s.event(ev)
}

// cursorName keeps the names the earlier pull job stored its cursors
// under (the API's path), so a hub upgraded in place resumes where it was.
func (s *Source) cursorName() string { return feedPath(s.cfg.Feed) }

func (s *Source) readCursor(ctx context.Context) (string, error) {
	db := s.deps.Store
	var v string
	err := db.QueryRowContext(ctx, db.Rebind(`SELECT cursor FROM cardcenter_cursors WHERE feed = ?`), s.cursorName()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cardcenter: read cursor %s: %w", s.cfg.Feed, err)
	}
	return v, nil
}

func (s *Source) writeCursor(ctx context.Context, v string) error {
	db := s.deps.Store
	_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO cardcenter_cursors (feed, cursor, updated_ms) VALUES (?, ?, ?)
		ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms`), s.cursorName(), v, s.clock.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("cardcenter: write cursor %s: %w", s.cfg.Feed, err)
	}
	return nil
}
