package joblib

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// Endpoint configures one of the portal's two interfaces (the job library,
// 免申即享): where it is, the key id the portal issued to the bureau and
// the transport (deadline, rate limit, breaker).
type Endpoint struct {
	// ClientConfig is the transport: deadline, rate limit, circuit breaker (retries stay 0: the service retries with back-off).
	httpx.ClientConfig `yaml:",inline"`
	// BaseURL is the interface's base URL (https://…, without the /joblib/v1 or /mianshen/v1 path).
	BaseURL string `yaml:"base_url"`
	// KeyID is the key id the portal issued to the bureau; the secret is the key provider's portal key.
	KeyID string `yaml:"key_id"`
}

// Validate reports every problem, naming keys under prefix.
func (e Endpoint) Validate(prefix string) error {
	var errs []error
	if e.BaseURL != "" {
		if u, err := url.Parse(e.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.base_url: %q is not an http(s) URL", prefix, e.BaseURL))
		}
		if e.KeyID == "" {
			errs = append(errs, fmt.Errorf("%s.key_id: required with a base_url", prefix))
		}
	}
	if e.Retries != 0 {
		errs = append(errs, fmt.Errorf("%s.retries: must be 0 (a retried call re-uses its nonce; the service retries with back-off)", prefix))
	}
	if e.RatePerSecond < 0 {
		errs = append(errs, fmt.Errorf("%s.rate_per_second: must not be negative", prefix))
	}
	return errors.Join(errs...)
}

// Client calls the portal's job library and 免申即享 interfaces. It is safe
// for concurrent use.
type Client struct {
	dept     string
	jl, ms   *httpx.Client
	jlURL    string
	msURL    string
	jlKey    string
	msKey    string
	jlSecret []byte
	msSecret []byte
}

// NewClient returns a client of the two interfaces; secret is the key the
// portal issued (the same for both unless msSecret is set).
func NewClient(dept string, jl, ms Endpoint, jlSecret, msSecret []byte) (*Client, error) {
	if dept == "" {
		return nil, errors.New("joblib: dept is required")
	}
	if len(jlSecret) == 0 || len(msSecret) == 0 {
		return nil, errors.New("joblib: the portal's signing secret is missing")
	}
	jc, err := httpx.NewClient("portal.joblib", jl.ClientConfig)
	if err != nil {
		return nil, err
	}
	mc, err := httpx.NewClient("portal.mianshen", ms.ClientConfig)
	if err != nil {
		return nil, err
	}
	return &Client{dept: dept, jl: jc, ms: mc, jlURL: strings.TrimRight(jl.BaseURL, "/"), msURL: strings.TrimRight(ms.BaseURL, "/"),
		jlKey: jl.KeyID, msKey: ms.KeyID, jlSecret: jlSecret, msSecret: msSecret}, nil
}

// ObserveBreaker reports the circuit breaker changes of the two
// interfaces as events of their partners (portal.joblib, portal.mianshen):
// a portal that stops answering raises partner_down and turns red.
func (c *Client) ObserveBreaker(events connectors.Events) {
	c.jl.Observe(events, "portal.joblib")
	c.ms.Observe(events, "portal.mianshen")
}

// Dept is the bureau's department code the client speaks for.
func (c *Client) Dept() string { return c.dept }

// NotSent reports whether err means the call never reached the portal (the
// breaker was open or the context ended before the rate limiter let it
// go): such a call is not in doubt.
func NotSent(err error) bool {
	return errors.Is(err, httpx.ErrCircuitOpen) || errors.Is(err, errNotSent)
}

// IsRefused reports whether the portal refused the call itself (4xx): not in
// doubt and not to be retried unchanged.
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }

var errNotSent = errors.New("joblib: not sent")

func (c *Client) call(ctx context.Context, ms bool, method, path string, query url.Values, body any) ([]byte, int, error) {
	hc, base, key, secret := c.jl, c.jlURL, c.jlKey, c.jlSecret
	if ms {
		hc, base, key, secret = c.ms, c.msURL, c.msKey, c.msSecret
	}
	if base == "" {
		return nil, 0, fmt.Errorf("%w: no base_url configured", errNotSent)
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, 0, fmt.Errorf("joblib: encode %s: %w", path, err)
		}
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	// Sign a request of the same method, URL and body; the headers travel
	// with the httpx call (which must not retry: a nonce is used once).
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
	if err != nil {
		return nil, 0, fmt.Errorf("joblib: %s %s: %w", method, path, err)
	}
	if err := sign.Sign(req, key, secret); err != nil {
		return nil, 0, fmt.Errorf("joblib: sign %s: %w", path, err)
	}
	h := map[string]string{"Accept": "application/json"}
	if body != nil {
		h["Content-Type"] = "application/json"
	}
	for _, k := range []string{sign.HeaderKeyID, sign.HeaderTimestamp, sign.HeaderNonce, sign.HeaderContentSM3, sign.HeaderSignature} {
		h[k] = req.Header.Get(k)
	}
	if ctx.Err() != nil {
		return nil, 0, fmt.Errorf("%w: %w", errNotSent, ctx.Err())
	}
	resp, err := hc.Do(ctx, httpx.Request{Method: method, URL: u, Headers: h, Body: b})
	if err != nil {
		if errors.Is(err, connectors.ErrPermanent) {
			return nil, statusOf(err), fmt.Errorf("%w: %s %s: %w", ErrRefused, method, path, err)
		}
		return nil, statusOf(err), fmt.Errorf("joblib: %s %s: %w", method, path, err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return nil, 404, fmt.Errorf("%w: %s %s", ErrNotFound, method, path)
	}
	out := resp.Body()
	if len(out) > 64<<20 {
		return nil, resp.StatusCode(), fmt.Errorf("%w: %s answer over 64 MiB", ErrMalformed, path)
	}
	return out, resp.StatusCode(), nil
}

func statusOf(err error) int {
	var se *httpx.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// FetchApplications asks for new applications after cursor ("" from the
// start), at most limit.
func (c *Client) FetchApplications(ctx context.Context, cursor string, limit int) (ApplicationPage, error) {
	q := url.Values{"dept": {c.dept}, "after": {cursor}, "limit": {strconv.Itoa(limit)}}
	b, _, err := c.call(ctx, false, http.MethodGet, "/joblib/v1/applications", q, nil)
	if err != nil {
		return ApplicationPage{}, err
	}
	return ParseApplicationPage(b)
}

// PushNodes sends status nodes (in order: nodes of one application by seq)
// and returns the portal's outcome for each, keyed by Node.Key.
func (c *Client) PushNodes(ctx context.Context, nodes []Node) (map[string]Result, error) {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.Key()
	}
	b, _, err := c.call(ctx, false, http.MethodPost, "/joblib/v1/nodes", nil, map[string]any{"dept": c.dept, "nodes": nodes})
	if err != nil {
		return nil, err
	}
	return ParseResults(b, ids)
}

// NodeStatus asks what the job library holds of applications (the re-check
// of a push in doubt).
func (c *Client) NodeStatus(ctx context.Context, ids []string) (map[string]NodeStatus, error) {
	b, _, err := c.call(ctx, false, http.MethodPost, "/joblib/v1/nodes/query", nil, map[string]any{"dept": c.dept, "application_ids": ids})
	if err != nil {
		return nil, err
	}
	return ParseNodeStatus(b, ids)
}

// PushPersons sends a batch of newly eligible persons.
func (c *Client) PushPersons(ctx context.Context, p Push) (PushAck, error) {
	p.Dept = c.dept
	b, _, err := c.call(ctx, true, http.MethodPost, "/mianshen/v1/pushes", nil, p)
	if err != nil {
		return PushAck{}, err
	}
	return ParsePushAck(b, p.BatchID, len(p.Persons))
}

// PushStatus asks whether the portal holds a push batch (ErrNotFound when
// not): the re-check of a push in doubt. sent is the batch's size.
func (c *Client) PushStatus(ctx context.Context, batchID string, sent int) (PushAck, error) {
	b, _, err := c.call(ctx, true, http.MethodGet, "/mianshen/v1/pushes/"+url.PathEscape(batchID), nil, nil)
	if err != nil {
		return PushAck{}, err
	}
	return ParsePushAck(b, batchID, sent)
}

// FetchCases asks for cases handed back for confirmation after cursor.
func (c *Client) FetchCases(ctx context.Context, cursor string, limit int) (CasePage, error) {
	q := url.Values{"dept": {c.dept}, "after": {cursor}, "limit": {strconv.Itoa(limit)}}
	b, _, err := c.call(ctx, true, http.MethodGet, "/mianshen/v1/cases", q, nil)
	if err != nil {
		return CasePage{}, err
	}
	return ParseCasePage(b)
}

// Confirm sends confirmations and returns the outcome of each by case id.
func (c *Client) Confirm(ctx context.Context, cs []Confirmation) (map[string]Result, error) {
	ids := make([]string, len(cs))
	for i, x := range cs {
		ids[i] = x.CaseID
	}
	b, _, err := c.call(ctx, true, http.MethodPost, "/mianshen/v1/confirmations", nil, map[string]any{"dept": c.dept, "confirmations": cs})
	if err != nil {
		return nil, err
	}
	return ParseResults(b, ids)
}

// Payouts sends payout records and returns the outcome of each by payout id.
func (c *Client) Payouts(ctx context.Context, ps []Payout) (map[string]Result, error) {
	ids := make([]string, len(ps))
	for i, x := range ps {
		ids[i] = x.PayoutID
	}
	b, _, err := c.call(ctx, true, http.MethodPost, "/mianshen/v1/payouts", nil, map[string]any{"dept": c.dept, "payouts": ps})
	if err != nil {
		return nil, err
	}
	return ParseResults(b, ids)
}

// CaseStatus asks what the portal holds of cases (the re-check of a
// confirmation or payout in doubt).
func (c *Client) CaseStatus(ctx context.Context, ids []string) (map[string]CaseStatus, error) {
	b, _, err := c.call(ctx, true, http.MethodPost, "/mianshen/v1/cases/query", nil, map[string]any{"dept": c.dept, "case_ids": ids})
	if err != nil {
		return nil, err
	}
	return ParseCaseStatus(b, ids)
}
