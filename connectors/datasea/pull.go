package datasea

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the connector's schema (feed cursors, push receipts).
func Migrate(ctx context.Context, db *store.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, "datasea", sub)
}

// Partner is the partner id of the data sea in monitor events.
const Partner = "datasea"

// Applier applies records. It must be idempotent by record id: a record it
// has seen changes nothing the second time. bad are quarantined records it
// must keep (with their reasons) and never apply. source names the way in
// (api, sftp, dbtable).
type Applier interface {
	Apply(ctx context.Context, source string, recs []Record, bad []Bad) (Applied, error)
}

// Applied counts what Apply did.
type Applied struct {
	// New records applied now; Seen records applied before (no change);
	// Quarantined records kept aside with their reasons.
	New, Seen, Quarantined int
}

// Add sums two counts.
func (a Applied) Add(b Applied) Applied {
	return Applied{New: a.New + b.New, Seen: a.Seen + b.Seen, Quarantined: a.Quarantined + b.Quarantined}
}

// Page is one answer of the records API:
// GET {url}/api/v1/feeds/{feed}/records?cursor=C&limit=N.
type Page struct {
	// Records of the page, each decoded on its own (one malformed record
	// does not spoil the page).
	Records []json.RawMessage `json:"records"`
	// NextCursor is where the next page starts; it is stored once the page is applied.
	NextCursor string `json:"next_cursor"`
	// More is true while further pages follow.
	More bool `json:"more"`
}

// Puller pulls the platform's feeds through its API, page by page from
// the cursor kept in the state store. It hands each page to a Deliver (the
// datasea route kind emits it onto the route, route.go) and stores the
// cursor only once the page was delivered.
type Puller struct {
	cfg   Config
	c     *httpx.Client
	db    *store.DB
	ev    connectors.Events
	clock clock.Clock
	log   *slog.Logger
}

// Deliver hands one page's records on: good are the records to apply, bad
// those quarantined with their place and reason. cursor is where the page
// started (stable when the same page is pulled again). It returns nil only
// once the page is safe (durably on the bus); only then is the cursor
// stored.
type Deliver func(ctx context.Context, feed, cursor string, good []Record, bad []Bad) error

// NewPuller returns a puller of the API at cfg.URL; deps.Store keeps the
// cursors (migrated with Migrate).
func NewPuller(cfg Config, deps connectors.Deps) (*Puller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, errors.New("datasea: pull: no url")
	}
	if deps.Store == nil {
		return nil, errors.New("datasea: pull: state store required")
	}
	c, err := httpx.NewClient("datasea", cfg.Client)
	if err != nil {
		return nil, err
	}
	// Its breaker's changes are the data sea's events (partner_down).
	c.Observe(deps.Events, Partner)
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Puller{cfg: cfg, c: c, db: deps.Store, ev: deps.Events, clock: deps.Clock,
		log: deps.Logger.With("partner", Partner)}, nil
}

// Config returns the configuration the puller was built from (its
// schedule: pull_at, due_by, retry_every).
func (p *Puller) Config() Config { return p.cfg }

// Cursor returns the stored cursor of a feed ("" before the first page).
func Cursor(ctx context.Context, db *store.DB, feed string) (string, error) {
	var c string
	err := db.QueryRowContext(ctx, db.Rebind(`SELECT cursor FROM datasea_cursors WHERE feed = ?`), feed).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("datasea: cursor %s: %w", feed, err)
	}
	return c, nil
}

func (p *Puller) saveCursor(ctx context.Context, feed, cursor string) error {
	_, err := p.db.ExecContext(ctx, p.db.Rebind(`INSERT INTO datasea_cursors (feed, cursor, updated_ms) VALUES (?, ?, ?)
		ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms`),
		feed, cursor, p.clock.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("datasea: save cursor %s: %w", feed, err)
	}
	return nil
}

// FeedPull is the outcome of one pull of a feed.
type FeedPull struct {
	// Pages fetched, Records received, of which Quarantined were malformed.
	Pages, Records, Quarantined int
}

// PullFeed pulls a feed ("death" or "migration") from its stored cursor to
// the end, page by page: a page is delivered first and its cursor stored
// after, so a crash in between pulls the page again, which the records'
// idempotency (their record ids) makes harmless. It emits one monitor
// event: fetched (ok, counting the quarantined records as failed records:
// the pull succeeded, the consumer raises each as rejected) or failed. The
// feed's daily expectation is met by the fetched event.
func (p *Puller) PullFeed(ctx context.Context, feed string, deliver Deliver) (FeedPull, error) {
	if _, ok := Feeds[feed]; !ok {
		return FeedPull{}, fmt.Errorf("datasea: unknown feed %q", feed)
	}
	start := p.clock.Now()
	res, err := p.pullFeed(ctx, feed, deliver)
	ev := monitor.Event{Time: p.clock.Now(), Partner: Partner, Flow: feed, Direction: monitor.Inbound, Channel: "http",
		Type: monitor.Fetched, Status: monitor.OK, Records: int64(res.Records - res.Quarantined), RecordsFailed: int64(res.Quarantined),
		Duration: p.clock.Now().Sub(start), Component: "datasea", Attrs: map[string]string{"pages": strconv.Itoa(res.Pages)}}
	if err != nil {
		ev.Type, ev.Status, ev.ErrorMessage = monitor.Failed, monitor.Error, err.Error()
		ev.ErrorClass = "transient"
		if errors.Is(err, httpx.ErrCircuitOpen) {
			ev.ErrorCode = "breaker"
		} else if errors.Is(err, ErrBadAnswer) {
			ev.ErrorCode = "format"
		}
		err = fmt.Errorf("feed %s: %w", feed, err)
	}
	if p.ev != nil && ctx.Err() == nil {
		p.ev.Emit(ev)
	}
	return res, err
}

func (p *Puller) pullFeed(ctx context.Context, feed string, deliver Deliver) (FeedPull, error) {
	var res FeedPull
	cursor, err := Cursor(ctx, p.db, feed)
	if err != nil {
		return res, err
	}
	for res.Pages < p.cfg.MaxPages {
		page, err := p.fetch(ctx, feed, cursor)
		if err != nil {
			return res, err
		}
		res.Pages++
		good, bad := decodePage(feed, cursor, page.Records, p.clock.Now())
		res.Records += len(page.Records)
		res.Quarantined += len(bad)
		if err := deliver(ctx, feed, cursor, good, bad); err != nil {
			return res, fmt.Errorf("deliver page %d: %w", res.Pages, err)
		}
		if page.NextCursor != cursor {
			if err := p.saveCursor(ctx, feed, page.NextCursor); err != nil {
				return res, err
			}
			cursor = page.NextCursor
		}
		if !page.More {
			return res, nil
		}
	}
	p.log.Warn("datasea: max_pages reached; the rest follows in the next pull", "feed", feed, "pages", res.Pages)
	return res, nil
}

func (p *Puller) fetch(ctx context.Context, feed, cursor string) (Page, error) {
	u := strings.TrimRight(p.cfg.URL, "/") + "/api/v1/feeds/" + feed + "/records?" +
		url.Values{"cursor": {cursor}, "limit": {strconv.Itoa(p.cfg.PageSize)}}.Encode()
	resp, err := p.c.Do(ctx, httpx.Request{Method: "GET", URL: u, Headers: map[string]string{"Accept": "application/json"}})
	if err != nil {
		return Page{}, err
	}
	if resp.StatusCode() == 404 {
		return Page{}, fmt.Errorf("%w: GET %s: 404", ErrBadAnswer, feed)
	}
	var page Page
	if err := json.Unmarshal(resp.Body(), &page); err != nil {
		return Page{}, fmt.Errorf("%w: feed %s: %v", ErrBadAnswer, feed, err)
	}
	if page.More && (page.NextCursor == "" || page.NextCursor == cursor) {
		return Page{}, fmt.Errorf("%w: feed %s: more pages announced without a new cursor", ErrBadAnswer, feed)
	}
	if page.NextCursor == "" {
		page.NextCursor = cursor
	}
	return page, nil
}

// decodePage decodes each record on its own; those that cannot be applied
// become Bad with their place: the feed, the cursor the page started at and
// the item's number in the page.
func decodePage(feed, cursor string, raw []json.RawMessage, now time.Time) ([]Record, []Bad) {
	var good []Record
	var bad []Bad
	for i, r := range raw {
		ref := fmt.Sprintf("api %s page at cursor %q item %d", feed, cursor, i+1)
		var rec Record
		if err := json.Unmarshal(r, &rec); err != nil {
			bad = append(bad, Bad{Ref: ref, Reason: fmt.Sprintf("%v: not a record: %v", ErrMalformed, err), Raw: maskRaw(string(r))})
			continue
		}
		rec = rec.Normalize()
		if err := rec.Check(now); err != nil {
			bad = append(bad, Bad{Ref: ref, RecordID: rec.ID, Reason: err.Error(), Raw: maskRaw(string(r))})
			continue
		}
		if !kindIn(feed, rec.Kind) {
			bad = append(bad, Bad{Ref: ref, RecordID: rec.ID, Reason: fmt.Sprintf("%v: type %s in feed %s", ErrMalformed, rec.Kind, feed)})
			continue
		}
		good = append(good, rec)
	}
	return good, bad
}

func kindIn(feed string, k Kind) bool {
	for _, x := range Feeds[feed] {
		if x == k {
			return true
		}
	}
	return false
}
