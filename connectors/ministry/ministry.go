package ministry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
)

// PartnerID is the partner id in events and results.
const PartnerID = "ministry"

// Config configures the connector.
type Config struct {
	// URL is the platform's base URL.
	URL string `yaml:"url"`
	// NodeID is Shanghai's node id on the platform (header X-Node-Id).
	NodeID string `yaml:"node_id"`
	// Transport is the deadline, rate limit and breaker of each call.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Client talks to the platform.
type Client struct {
	base string
	hdr  map[string]string
	c    *httpx.Client
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if u, err := url.Parse(cfg.URL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("ministry: url %q is not an http(s) URL", cfg.URL)
	}
	c, err := httpx.NewClient("ministry", cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("ministry: %w", err)
	}
	return &Client{base: strings.TrimRight(cfg.URL, "/"), c: c, hdr: map[string]string{"X-Node-Id": cfg.NodeID, "Content-Type": "application/json"}}, nil
}

// ID is the partner id.
func (*Client) ID() string { return PartnerID }

// ObserveBreaker reports the client's circuit breaker changes as the
// partner's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, PartnerID) }

// Scopes are the provinces of the members not registered in Shanghai: one
// call per province.
func (*Client) Scopes(members []household.Member) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range members {
		p := household.Province(m.IDNumber)
		if p == "" || household.Local(m.IDNumber) || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// QueryRequest is a cross-province query.
type QueryRequest struct {
	// QueryID is the idempotency key and correlation reference.
	QueryID string `json:"query_id"`
	// Province is the two-digit code of the province asked.
	Province string `json:"province"`
	// AuthNo is the national personal e-authorisation reference.
	AuthNo string `json:"auth_no"`
	// Persons asked about.
	Persons []Person `json:"persons"`
}

// Person is one person.
type Person struct {
	// ID is the ID number.
	ID string `json:"id"`
	// Name of the person.
	Name string `json:"name"`
}

// Ask submits a query about the members of q's province (q.Scope); the
// answer is Pending with the platform's ticket.
func (c *Client) Ask(ctx context.Context, q household.Query) (household.Answer, error) {
	body := QueryRequest{QueryID: q.Key, Province: q.Scope, AuthNo: q.Authorization}
	for _, m := range q.Members {
		if q.Scope == "" || household.Province(m.IDNumber) == q.Scope {
			body.Persons = append(body.Persons, Person{ID: m.IDNumber, Name: m.Name})
		}
	}
	b, _ := json.Marshal(body)
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodPost, URL: c.base + "/v1/xzhc/queries", Headers: c.hdr, Body: b})
	if err != nil {
		return household.Answer{}, fmt.Errorf("ministry: ask: %w", err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, fmt.Errorf("ministry: ask: %w: endpoint not found", household.ErrBadAnswer)
	}
	return ParseStatus(resp.Body())
}

// Lookup polls the query q.Key: not found (never arrived), Pending, or the answer.
func (c *Client) Lookup(ctx context.Context, q household.Query) (household.Answer, bool, error) {
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: c.base + "/v1/xzhc/queries/" + url.PathEscape(q.Key), Headers: c.hdr})
	if err != nil {
		return household.Answer{}, false, fmt.Errorf("ministry: lookup: %w", err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, false, nil
	}
	a, err := ParseStatus(resp.Body())
	return a, err == nil, err
}

// Status is the platform's view of a query.
type Status struct {
	// Ticket is the platform's reference.
	Ticket string `json:"ticket"`
	// Status is accepted, processing or done.
	Status string `json:"status"`
	// AnsweredAt is when the province answered (RFC 3339), when done.
	AnsweredAt string `json:"answered_at,omitempty"`
	// Result is the province's answer, when done.
	Result *Result `json:"result,omitempty"`
}

// Result is a province's answer.
type Result struct {
	// Persons answered.
	Persons []PersonResult `json:"persons"`
}

// PersonResult is one person's items.
type PersonResult struct {
	// ID is the ID number.
	ID string `json:"id"`
	// Items found.
	Items []Item `json:"items"`
}

// Item is one finding.
type Item struct {
	// Type is income (monthly), evidence (monthly, employment), asset or status.
	Type string `json:"type"`
	// Kind names it (wage, pension, deposit, vehicle, ...).
	Kind string `json:"kind"`
	// Source names the unit that holds it.
	Source string `json:"source"`
	// Amount in yuan.
	Amount string `json:"amount"`
	// Period is the month (YYYY-MM), when it has one.
	Period string `json:"period,omitempty"`
}

// ParseStatus reads a query status into an answer (Pending until done).
func ParseStatus(data []byte) (household.Answer, error) {
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return household.Answer{}, fmt.Errorf("ministry: %w: %w", household.ErrBadAnswer, err)
	}
	switch s.Status {
	case "accepted", "processing":
		return household.Answer{PartnerRef: s.Ticket, Pending: true}, nil
	case "done":
	default:
		return household.Answer{}, fmt.Errorf("ministry: %w: status %q", household.ErrBadAnswer, s.Status)
	}
	at, err := time.Parse(time.RFC3339, s.AnsweredAt)
	if err != nil || s.Result == nil {
		return household.Answer{}, fmt.Errorf("ministry: %w: done without answered_at or result", household.ErrBadAnswer)
	}
	a := household.Answer{PartnerRef: s.Ticket, AsOf: at, Covered: []string{}, Facts: []household.Fact{}}
	for _, p := range s.Result.Persons {
		if p.ID == "" {
			return household.Answer{}, fmt.Errorf("ministry: %w: person without id", household.ErrBadAnswer)
		}
		a.Covered = append(a.Covered, p.ID)
		facts, err := itemFacts(p)
		if err != nil {
			return household.Answer{}, err
		}
		a.Facts = append(a.Facts, facts...)
	}
	return a, nil
}

func itemFacts(p PersonResult) ([]household.Fact, error) {
	var out []household.Fact
	for i, it := range p.Items {
		switch it.Type {
		case household.Income, household.Evidence, household.Asset, household.Status:
		default:
			return nil, fmt.Errorf("ministry: %w: item %d type %q", household.ErrBadAnswer, i+1, it.Type)
		}
		fen, err := household.ParseYuan(it.Amount)
		if err != nil {
			return nil, fmt.Errorf("ministry: %w: item %d: %w", household.ErrBadAnswer, i+1, err)
		}
		f := household.Fact{IDNumber: p.ID, Kind: it.Kind, Category: it.Type, AmountFen: fen, Source: it.Source}
		if it.Period != "" {
			if f.Period, err = household.ParseMonth(it.Period); err != nil {
				return nil, fmt.Errorf("ministry: %w: item %d: %w", household.ErrBadAnswer, i+1, err)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// Inbound is a request from another province.
type Inbound struct {
	// Ref is the platform's reference, the correlation key of the answer.
	Ref string `json:"ref"`
	// FromProvince is the asking province's two-digit code.
	FromProvince string `json:"from_province"`
	// AuthNo is the national e-authorisation reference.
	AuthNo string `json:"auth_no"`
	// ReceivedAt is when the platform received it (RFC 3339).
	ReceivedAt string `json:"received_at"`
	// Persons asked about (registered in Shanghai).
	Persons []Person `json:"persons"`
}

// Pull reads up to limit unacknowledged inbound requests.
func (c *Client) Pull(ctx context.Context, limit int) ([]Inbound, error) {
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: fmt.Sprintf("%s/v1/xzhc/inbound?limit=%d", c.base, limit), Headers: c.hdr})
	if err != nil {
		return nil, fmt.Errorf("ministry: pull: %w", err)
	}
	return ParseInbound(resp.Body())
}

// ParseInbound reads a list of inbound requests.
func ParseInbound(data []byte) ([]Inbound, error) {
	var r struct {
		Requests []Inbound `json:"requests"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("ministry: inbound: %w: %w", household.ErrBadAnswer, err)
	}
	for i, in := range r.Requests {
		if in.Ref == "" || len(in.FromProvince) != 2 || len(in.Persons) == 0 {
			return nil, fmt.Errorf("ministry: inbound: %w: request %d lacks ref, province or persons", household.ErrBadAnswer, i+1)
		}
		if _, err := time.Parse(time.RFC3339, in.ReceivedAt); err != nil {
			return nil, fmt.Errorf("ministry: inbound: %w: request %d received_at %q", household.ErrBadAnswer, i+1, in.ReceivedAt)
		}
	}
	return r.Requests, nil
}

// Ack tells the platform an inbound request is durably taken.
func (c *Client) Ack(ctx context.Context, ref string) error {
	_, err := c.c.Do(ctx, httpx.Request{Method: http.MethodPost, URL: c.base + "/v1/xzhc/inbound/" + url.PathEscape(ref) + "/ack", Headers: c.hdr, Body: []byte("{}")})
	if err != nil {
		return fmt.Errorf("ministry: ack %s: %w", ref, err)
	}
	return nil
}

// Return sends Shanghai's answer to an inbound request; complete is false
// when some Shanghai unit did not answer in time. Returning twice is
// harmless (the platform keeps the first).
func (c *Client) Return(ctx context.Context, ref string, facts []household.Fact, complete bool) error {
	idx := map[string]int{}
	var res Result
	for _, f := range facts {
		i, ok := idx[f.IDNumber]
		if !ok {
			i = len(res.Persons)
			idx[f.IDNumber] = i
			res.Persons = append(res.Persons, PersonResult{ID: f.IDNumber})
		}
		res.Persons[i].Items = append(res.Persons[i].Items, Item{Type: f.Category, Kind: f.Kind, Source: f.Source,
			Amount: household.FormatYuan(f.AmountFen), Period: f.Period})
	}
	status := "complete"
	if !complete {
		status = "partial"
	}
	b, _ := json.Marshal(map[string]any{"status": status, "result": res})
	if _, err := c.c.Do(ctx, httpx.Request{Method: http.MethodPost, URL: c.base + "/v1/xzhc/inbound/" + url.PathEscape(ref) + "/result", Headers: c.hdr, Body: b}); err != nil {
		return fmt.Errorf("ministry: return %s: %w", ref, err)
	}
	return nil
}
