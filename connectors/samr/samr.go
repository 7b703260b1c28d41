package samr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
)

// PartnerID is the partner id in events and results.
const PartnerID = "samr"

// Config configures the connector.
type Config struct {
	// URL is the base URL of the bureau's API.
	URL string `yaml:"url"`
	// AppKey identifies the bureau's client (header X-App-Key).
	AppKey string `yaml:"app_key"`
	// Transport is the deadline, rate limit and breaker of each call.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Client calls the market supervision API.
type Client struct {
	base string
	hdr  map[string]string
	c    *httpx.Client
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if u, err := url.Parse(cfg.URL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("samr: url %q is not an http(s) URL", cfg.URL)
	}
	c, err := httpx.NewClient("samr", cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("samr: %w", err)
	}
	return &Client{base: strings.TrimRight(cfg.URL, "/"), c: c, hdr: map[string]string{"X-App-Key": cfg.AppKey, "Content-Type": "application/json"}}, nil
}

// ID is the partner id.
func (*Client) ID() string { return PartnerID }

// ObserveBreaker reports the client's circuit breaker changes as the
// partner's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, PartnerID) }

// Scopes: one call per household.
func (*Client) Scopes([]household.Member) []string { return []string{""} }

// ShareholderQuery is the body of a shareholding query.
type ShareholderQuery struct {
	// Key is the idempotency key.
	Key string `json:"key"`
	// Auth is the authorisation reference.
	Auth string `json:"auth"`
	// Persons asked about.
	Persons []QueryPerson `json:"persons"`
}

// QueryPerson is one person asked about.
type QueryPerson struct {
	// ID is the ID number.
	ID string `json:"id"`
	// Name of the person.
	Name string `json:"name"`
}

// Ask runs the shareholding check.
func (c *Client) Ask(ctx context.Context, q household.Query) (household.Answer, error) {
	body := ShareholderQuery{Key: q.Key, Auth: q.Authorization}
	for _, m := range q.Members {
		body.Persons = append(body.Persons, QueryPerson{ID: m.IDNumber, Name: m.Name})
	}
	b, _ := json.Marshal(body)
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodPost, URL: c.base + "/api/v1/verify/shareholders", Headers: c.hdr, Body: b})
	if err != nil {
		return household.Answer{}, fmt.Errorf("samr: ask: %w", err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, fmt.Errorf("samr: ask: endpoint not found: %w", household.ErrBadAnswer)
	}
	return ParseAnswer(resp.Body())
}

// Lookup reads the answer kept under q.Key.
func (c *Client) Lookup(ctx context.Context, q household.Query) (household.Answer, bool, error) {
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: c.base + "/api/v1/verify/shareholders/" + url.PathEscape(q.Key), Headers: c.hdr})
	if err != nil {
		return household.Answer{}, false, fmt.Errorf("samr: lookup: %w", err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, false, nil
	}
	a, err := ParseAnswer(resp.Body())
	return a, err == nil, err
}

// Answer is the bureau's JSON answer.
type Answer struct {
	// Ref is the bureau's reference.
	Ref string `json:"ref"`
	// AsOf is the date of the data (YYYY-MM-DD).
	AsOf string `json:"as_of"`
	// Results per person.
	Results []PersonResult `json:"results"`
}

// PersonResult lists one person's companies.
type PersonResult struct {
	// ID is the ID number.
	ID string `json:"id"`
	// Companies the person registered or holds shares in.
	Companies []Company `json:"companies"`
}

// Company is one registration.
type Company struct {
	// Name of the company.
	Name string `json:"name"`
	// USCC is the unified social credit code.
	USCC string `json:"uscc"`
	// RegCapital is the registered capital in yuan.
	RegCapital string `json:"reg_capital"`
	// ShareRatio is the person's share, a decimal in 0..1 ("0.35").
	ShareRatio string `json:"share_ratio"`
	// Status is the registration status (存续, 注销, 吊销).
	Status string `json:"status"`
	// Abnormal is true when the company is on the abnormal-operation list.
	Abnormal bool `json:"abnormal"`
}

// ParseAnswer reads a shareholding answer: per company a "shareholding"
// asset (registered capital × share, in fen) and, when listed, an
// "abnormal_list" status fact.
func ParseAnswer(data []byte) (household.Answer, error) {
	var r Answer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return household.Answer{}, fmt.Errorf("samr: %w: %w", household.ErrBadAnswer, err)
	}
	asOf, err := time.Parse(time.DateOnly, r.AsOf)
	if err != nil {
		return household.Answer{}, fmt.Errorf("samr: %w: as_of %q", household.ErrBadAnswer, r.AsOf)
	}
	a := household.Answer{PartnerRef: r.Ref, AsOf: asOf, Covered: []string{}, Facts: []household.Fact{}}
	for _, p := range r.Results {
		if p.ID == "" {
			return household.Answer{}, fmt.Errorf("samr: %w: result without id", household.ErrBadAnswer)
		}
		a.Covered = append(a.Covered, p.ID)
		for _, co := range p.Companies {
			capital, err := household.ParseYuan(co.RegCapital)
			if err != nil {
				return household.Answer{}, fmt.Errorf("samr: %w: reg_capital: %w", household.ErrBadAnswer, err)
			}
			held, err := share(capital, co.ShareRatio)
			if err != nil {
				return household.Answer{}, fmt.Errorf("samr: %w: share_ratio: %w", household.ErrBadAnswer, err)
			}
			src := co.Name + " (" + co.USCC + ", " + co.Status + ")"
			a.Facts = append(a.Facts, household.Fact{IDNumber: p.ID, Kind: "shareholding", Category: household.Asset, AmountFen: held, Source: src})
			if co.Abnormal {
				a.Facts = append(a.Facts, household.Fact{IDNumber: p.ID, Kind: "abnormal_list", Category: household.Status, Source: src})
			}
		}
	}
	return a, nil
}

// share is capital × ratio (a decimal string in 0..1), exact, rounded half up.
func share(capitalFen int64, ratio string) (int64, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(ratio))
	if !ok || strings.ContainsAny(ratio, "/eE") || r.Sign() < 0 || r.Cmp(big.NewRat(1, 1)) > 0 {
		return 0, fmt.Errorf("%q is not a share in 0..1", ratio)
	}
	v := new(big.Rat).Mul(r, new(big.Rat).SetInt64(capitalFen))
	v.Add(v, big.NewRat(1, 2))
	q := new(big.Int).Quo(v.Num(), v.Denom())
	if !q.IsInt64() {
		return 0, errors.New("amount out of range")
	}
	return q.Int64(), nil
}

// Licence is a food business licence (食品经营许可证).
type Licence struct {
	// Number of the licence.
	Number string `json:"licence_no"`
	// Holder is the business holding it.
	Holder string `json:"holder"`
	// Address of the premises.
	Address string `json:"address"`
	// ValidTo is the last day of validity (YYYY-MM-DD).
	ValidTo string `json:"valid_to"`
}

// Valid reports whether the licence is valid on day.
func (l Licence) Valid(day time.Time) bool {
	t, err := time.Parse(time.DateOnly, l.ValidTo)
	return err == nil && !day.After(t.AddDate(0, 0, 1).Add(-time.Nanosecond))
}

// ErrNoLicence is a canteen with no food business licence on record.
var ErrNoLicence = errors.New("samr: no food business licence")

// Canteen finds the food business licences registered under a community
// elderly canteen's name (matching canteens to their licences).
func (c *Client) Canteen(ctx context.Context, name string) ([]Licence, error) {
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: c.base + "/api/v1/food-licences?holder=" + url.QueryEscape(name), Headers: c.hdr})
	if err != nil {
		return nil, fmt.Errorf("samr: canteen: %w", err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return nil, ErrNoLicence
	}
	return ParseLicences(resp.Body())
}

// ParseLicences reads a licence list.
func ParseLicences(data []byte) ([]Licence, error) {
	var r struct {
		Licences []Licence `json:"licences"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("samr: licences: %w: %w", household.ErrBadAnswer, err)
	}
	for i, l := range r.Licences {
		if l.Number == "" {
			return nil, fmt.Errorf("samr: licences: %w: entry %d without number", household.ErrBadAnswer, i+1)
		}
		if _, err := time.Parse(time.DateOnly, l.ValidTo); err != nil {
			return nil, fmt.Errorf("samr: licences: %w: entry %d valid_to %q", household.ErrBadAnswer, i+1, l.ValidTo)
		}
	}
	return r.Licences, nil
}

// Abnormal is an entry of the abnormal-operation list.
type Abnormal struct {
	// USCC is the company's unified social credit code.
	USCC string `json:"uscc"`
	// Name of the company.
	Name string `json:"name"`
	// ListedOn is the day it was listed (YYYY-MM-DD).
	ListedOn string `json:"listed_on"`
	// Reason for the listing.
	Reason string `json:"reason"`
}

// AbnormalSince reads the abnormal-operation list entries listed on or
// after since (the periodic list sync).
func (c *Client) AbnormalSince(ctx context.Context, since time.Time) ([]Abnormal, error) {
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: c.base + "/api/v1/abnormal?since=" + since.Format(time.DateOnly), Headers: c.hdr})
	if err != nil {
		return nil, fmt.Errorf("samr: abnormal list: %w", err)
	}
	return ParseAbnormal(resp.Body())
}

// ParseAbnormal reads an abnormal-operation list.
func ParseAbnormal(data []byte) ([]Abnormal, error) {
	var r struct {
		Entries []Abnormal `json:"entries"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("samr: abnormal list: %w: %w", household.ErrBadAnswer, err)
	}
	for i, e := range r.Entries {
		if len(e.USCC) != 18 {
			return nil, fmt.Errorf("samr: abnormal list: %w: entry %d uscc of %d characters", household.ErrBadAnswer, i+1, len(e.USCC))
		}
		if _, err := time.Parse(time.DateOnly, e.ListedOn); err != nil {
			return nil, fmt.Errorf("samr: abnormal list: %w: entry %d listed_on %q", household.ErrBadAnswer, i+1, e.ListedOn)
		}
	}
	return r.Entries, nil
}
