package datasea

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
)

// The data sea's connector kind for routes: a source pulling one feed of
// the platform's API (death records or household-registration moves) daily,
// page by page from the stored cursor, and emitting each record onto the
// route (configs/routes/datasea-*.yaml deliver them to Topic, where the
// allowance service applies them: Consumer). The endpoint, credentials,
// breaker, deadline, rate limit and schedule are the hub's datasea section:
// the hub hands the kind its Endpoint as the partner client "datasea"
// (connectors.Deps.Partners), so the demo's simulator reaches the route the
// same way a configured URL does. The feed "files" polls the platform's
// SFTP drop instead (files.go: FileSource).

// ConnectorKind is the connector kind's name in route files.
const ConnectorKind = "datasea"

// Headers of the messages the source emits.
const (
	// HeaderSource names the way in ("api", "sftp"); the consumer passes it to the applier.
	HeaderSource = "mzhub-source"
	// HeaderRef is the place of a quarantined record (feed, page cursor, item; or file and line).
	HeaderRef = "datasea-ref"
	// HeaderReason is why a record is quarantined; its body is the masked raw record.
	HeaderReason = "datasea-reason"
	// HeaderRecordID is the record id of a quarantined record, when it had one.
	HeaderRecordID = "datasea-record-id"
)

func init() {
	connectors.Register(connectors.Spec{
		Name:    ConnectorKind,
		Summary: "the data sea (数据海): one feed (death or migration) of the exchange-sharing platform's API pulled daily at datasea.pull_at from the stored cursor, page by page; each record emitted under its record id, the cursor stored once the page is on the bus; malformed records emitted as quarantined with their place and reason; endpoint, breaker, deadline, rate limit and schedule from the hub's datasea section. Feed files polls the platform's SFTP drop (datasea.sftp, every datasea.sftp_every): each claimed batch file's records emitted the same way, its bad lines quarantined with their line numbers, the file moved to processed/ once emitted; a done file miscounting the lines fails the file whole",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &SourceConfig{Partner: Partner} },
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("datasea: source config is %T, want *datasea.SourceConfig", cfg)
				}
				if c.Feed == FeedFiles {
					return NewFileSource(*c, deps)
				}
				return NewSource(*c, deps)
			},
		},
	})
}

// SourceConfig configures a datasea source.
type SourceConfig struct {
	// Partner is the hub's data sea client the source pulls through (datasea: the hub's datasea section, url to schedule).
	Partner string `yaml:"partner"`
	// Feed is the feed pulled: death (police death records) or migration (迁入 and 迁出) from the API, or files (the batch files of the SFTP drop, datasea.sftp).
	Feed string `yaml:"feed"`
}

// Validate reports every problem at once; it does no I/O.
func (c *SourceConfig) Validate() error {
	var errs []error
	if c.Partner != Partner {
		errs = append(errs, fmt.Errorf("partner: %q: want %s (the hub's data sea client)", c.Partner, Partner))
	}
	if _, ok := Feeds[c.Feed]; !ok && c.Feed != FeedFiles {
		errs = append(errs, fmt.Errorf("feed: %q: want death, migration or files", c.Feed))
	}
	return errors.Join(errs...)
}

// Leases runs f while this replica holds the lease name (store/lease.Elector).
type Leases interface {
	Run(ctx context.Context, name string, f func(context.Context) error) error
}

// Endpoint is what the hub hands the kind as its partner client Partner:
// the puller built from the hub's datasea section and what its schedule
// needs, and the SFTP drop of the files feed.
type Endpoint struct {
	// Puller pulls the API (its Config gives the schedule); nil without datasea.url.
	Puller *Puller
	// Drop is the SFTP drop the files feed polls; nil without datasea.sftp.
	Drop *Drop
	// Expect, when set, receives each feed's daily expectation.
	Expect Expecter
	// Leases, when set, makes one replica at a time pull a feed.
	Leases Leases
	// Immediate pulls once at start whatever the time (the demo).
	Immediate bool
}

// ErrNotConfigured is a datasea route on a hub without the way in it
// needs — datasea.url for the API feeds, datasea.sftp for the files feed:
// the route is not started (the engine logs it once; nothing is retried).
var ErrNotConfigured = errors.New("datasea: the hub's data sea way in of this route is not configured (datasea.url for the API feeds, datasea.sftp for the files); the route is not started")

// Clients finds the partner clients the hub built (connectors.Deps.Partners).
type Clients interface {
	PartnerClient(id string) (any, error)
}

// Source pulls one feed and emits its records.
type Source struct {
	cfg  SourceConfig
	ep   *Endpoint
	clk  clock.Clock
	log  *slog.Logger
	emit connectors.Emit
}

// NewSource returns a source pulling through the hub's Endpoint; without
// one (datasea.url unset) it fails with ErrNotConfigured.
func NewSource(cfg SourceConfig, deps connectors.Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, err := endpointOf(cfg, deps)
	if err != nil {
		return nil, err
	}
	if ep.Puller == nil {
		return nil, fmt.Errorf("%w: datasea.url is unset", ErrNotConfigured)
	}
	s := &Source{cfg: cfg, ep: ep, clk: deps.Clock, log: deps.Logger}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// endpointOf returns the hub's Endpoint among deps.Partners.
func endpointOf(cfg SourceConfig, deps connectors.Deps) (*Endpoint, error) {
	cl, ok := deps.Partners.(Clients)
	if !ok || cl == nil {
		return nil, ErrNotConfigured
	}
	x, err := cl.PartnerClient(cfg.Partner)
	if err != nil {
		return nil, ErrNotConfigured // the hub adds the client only with datasea.url or datasea.sftp
	}
	ep, ok := x.(*Endpoint)
	if !ok || ep == nil {
		return nil, fmt.Errorf("datasea: partner %s: the hub's client is %T, want *datasea.Endpoint", cfg.Partner, x)
	}
	return ep, nil
}

// Endpoint describes the source for events and dead letters.
func (s *Source) Endpoint() string { return "datasea " + s.cfg.Feed + " feed" }

// Run keeps the feed's daily schedule (Job) until ctx is done, on one
// replica at a time when the hub has leases.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	job := &Job{Feed: s.cfg.Feed, Config: s.ep.Puller.Config(), Expect: s.ep.Expect, Clock: s.clk, Logger: s.log,
		Immediate: s.ep.Immediate, Pull: func(ctx context.Context) error {
			res, err := s.Pull(ctx, emit)
			if err == nil {
				s.log.Info("datasea: pulled", "feed", s.cfg.Feed, "pages", res.Pages, "records", res.Records, "quarantined", res.Quarantined)
			}
			return err
		}}
	if s.ep.Leases != nil {
		return s.ep.Leases.Run(ctx, "datasea.pull."+s.cfg.Feed, job.Run)
	}
	return job.Run(ctx)
}

// Pull pulls the feed once to its end, emitting each page before its
// cursor is stored.
func (s *Source) Pull(ctx context.Context, emit connectors.Emit) (FeedPull, error) {
	return s.ep.Puller.PullFeed(ctx, s.cfg.Feed, func(ctx context.Context, feed, cursor string, good []Record, bad []Bad) error {
		msgs, err := Messages(feed, cursor, good, bad)
		if err != nil || len(msgs) == 0 {
			return err
		}
		return emit(ctx, msgs...)
	})
}

// Messages are a page's bus messages: each good record under its record id
// (key and idempotency key), each quarantined one under its place (the
// feed, the page's cursor, its item) with headers HeaderRef and
// HeaderReason and its masked raw text as body; the consumer keeps those
// aside and never applies them.
func Messages(feed, cursor string, good []Record, bad []Bad) ([]connectors.Message, error) {
	out := make([]connectors.Message, 0, len(good)+len(bad))
	for _, r := range good {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, connectors.Message{Key: r.ID, IdempotencyKey: r.ID, Body: b,
			Headers: map[string]string{"Content-Type": "application/json", HeaderSource: "api"}})
	}
	for _, b := range bad {
		key := "quarantine/" + feed + "/" + b.Ref
		out = append(out, connectors.Message{Key: key, IdempotencyKey: key, Body: []byte(b.Raw),
			Headers: map[string]string{HeaderSource: "api", HeaderRef: b.Ref, HeaderReason: b.Reason, HeaderRecordID: b.RecordID}})
	}
	return out, nil
}
