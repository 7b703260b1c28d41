package cardcenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Feeds the card center offers, as route files name them.
const (
	// FeedApplications is 申领: GET {url}/api/v1/applications.
	FeedApplications = "applications"
	// FeedProgress is 制卡 progress: GET {url}/api/v1/production.
	FeedProgress = "progress"
)

// feedPath is the API path of a feed.
func feedPath(feed string) string {
	if feed == FeedProgress {
		return "production"
	}
	return feed
}

// FlowOf is the monitor flow of a feed (card-apply, card-production).
func FlowOf(feed string) string {
	if feed == FeedProgress {
		return "card-production"
	}
	return "card-apply"
}

// Page is one answer of a feed: GET {url}/api/v1/{applications|production}?cursor=C&limit=N.
type Page struct {
	// Items of the page, decoded one by one.
	Items []json.RawMessage `json:"items"`
	// NextCursor is stored once the page is applied; More tells that pages follow.
	NextCursor string `json:"next_cursor"`
	More       bool   `json:"more"`
}

// Client is the card center's API client the hub builds from its
// cardcenter section (one deadline, retry policy, rate limit and circuit
// breaker for the feeds): the cardcenter routes take it through
// connectors.Deps.Partners under Partner.
type Client struct {
	url    string
	c      *httpx.Client
	leases Leases
	expect Expecter
}

// Leases runs f while this replica holds the lease name (store/lease.Elector).
type Leases interface {
	Run(ctx context.Context, name string, f func(context.Context) error) error
}

// Expecter registers expected exchanges in the monitor (hubmon.Monitor).
type Expecter = monitor.Expecter

// ExpectBy is the time of day (Asia/Shanghai) by which each feed is
// expected to have been pulled successfully at least once: a day whose
// pulls all failed shows as missed on the console's calendar and raises an
// alert.
const ExpectBy = 9 * time.Hour

// ExpectationFor names a feed's daily expectation in the monitor.
func ExpectationFor(feed string) string { return "cardcenter-daily-" + feed }

// SetExpect makes the routes pulling through c register, after each
// day's first successful pull of a feed, the next day's expectation of
// one (ExpectationFor, due at ExpectBy).
func (c *Client) SetExpect(e Expecter) { c.expect = e }

// SetLeases makes the routes pulling through c pull each feed on one
// replica at a time (lease cardcenter.pull.<feed>); without it every
// replica pulls (harmless: the records are keyed, only redundant).
func (c *Client) SetLeases(l Leases) { c.leases = l }

// NewClient returns a client of cfg.URL.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, ErrNotConfigured
	}
	c, err := httpx.NewClient("cardcenter", cfg.Client)
	if err != nil {
		return nil, err
	}
	return &Client{url: strings.TrimRight(cfg.URL, "/"), c: c}, nil
}

// ObserveBreaker reports the feeds' circuit breaker changes as the card
// center's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, Partner) }

// Fetch returns the page of feed after cursor ("" from the start).
func (c *Client) Fetch(ctx context.Context, feed, cursor string, limit int) (Page, error) {
	u := c.url + "/api/v1/" + feedPath(feed) + "?" + url.Values{"cursor": {cursor}, "limit": {strconv.Itoa(limit)}}.Encode()
	resp, err := c.c.Do(ctx, httpx.Request{Method: "GET", URL: u})
	if err != nil {
		return Page{}, err
	}
	var pg Page
	if err := json.Unmarshal(resp.Body(), &pg); err != nil || resp.StatusCode() != 200 || (pg.More && pg.NextCursor == cursor) {
		return Page{}, fmt.Errorf("%w: %s after cursor %q (status %d)", ErrBadAnswer, feed, cursor, resp.StatusCode())
	}
	return pg, nil
}

// DecodeApplication decodes and checks one item of the applications feed
// (Application.Check, its bank resolved by banks); ref says where it came
// from. A malformed item is returned as a Bad with its reason.
func DecodeApplication(raw []byte, ref string, now time.Time, banks *BankTypes) (Application, *Bad) {
	var a Application
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, &Bad{Ref: ref, Reason: fmt.Sprintf("%v: %v", ErrMalformed, err)}
	}
	if err := a.Check(now, banks); err != nil {
		return a, &Bad{Ref: ref, RecordID: a.ID, Reason: err.Error()}
	}
	return a, nil
}

// DecodeProgress decodes and checks one item of the progress feed.
func DecodeProgress(raw []byte, ref string) (Progress, *Bad) {
	var s Progress
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, &Bad{Ref: ref, Reason: fmt.Sprintf("%v: %v", ErrMalformed, err)}
	}
	var why []string
	if strings.TrimSpace(s.ID) == "" || len(s.ID) > 64 {
		why = append(why, "application id missing or longer than 64")
	}
	if s.Stage != "accepted" && s.Stage != "produced" && s.Stage != "issued" {
		why = append(why, fmt.Sprintf("stage %q is not accepted, produced or issued", clip(s.Stage)))
	}
	if _, err := time.Parse(time.RFC3339, s.At); err != nil {
		why = append(why, fmt.Sprintf("at %q is not an RFC 3339 time", clip(s.At)))
	}
	if len(why) > 0 {
		id := s.ID
		if len(id) > 64 {
			id = ""
		}
		return s, &Bad{Ref: ref, RecordID: progressRecord(id, s.Stage), Reason: fmt.Sprintf("%v: %s", ErrMalformed, strings.Join(why, "; "))}
	}
	return s, nil
}

// progressRecord names a progress step in the quarantine (apart from its
// application's own entry).
func progressRecord(id, stage string) string {
	if id == "" {
		return ""
	}
	return id + "/" + clip(stage)
}

// errNoClient is a hub that holds no card center client for the routes.
var errNoClient = errors.New("cardcenter: the hub holds no partner clients")
