package villagebank

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// PartnerPrefix prefixes the bank code in partner ids ("villagebank.vb01").
const PartnerPrefix = "villagebank."

// Template is what the 14 banks share.
type Template struct {
	// QueryPath is the deposit query's path under a bank's base URL.
	QueryPath string `yaml:"query_path"`
	// LookupPath is the path of a query's answer by key; {key} is replaced.
	LookupPath string `yaml:"lookup_path"`
	// Transport is the deadline, rate limit and breaker of each bank's calls.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Bank is one instance of the template.
type Bank struct {
	// Code is the bank's short code (partner id villagebank.<code>).
	Code string `yaml:"code"`
	// Name is the bank's name.
	Name string `yaml:"name"`
	// URL is the bank's base URL.
	URL string `yaml:"url"`
}

// File is the village banks' configuration file.
type File struct {
	// Template is shared by all banks.
	Template Template `yaml:"defaults"`
	// Banks are its instances.
	Banks []Bank `yaml:"banks"`
}

// DefaultTemplate returns the template's defaults.
func DefaultTemplate() Template {
	return Template{QueryPath: "/openapi/v1/deposit/query", LookupPath: "/openapi/v1/deposit/query/{key}"}
}

// Validate reports every problem.
func (f File) Validate() error {
	var errs []error
	if !strings.HasPrefix(f.Template.QueryPath, "/") || !strings.Contains(f.Template.LookupPath, "{key}") {
		errs = append(errs, errors.New("template: query_path must start with / and lookup_path contain {key}"))
	}
	seen := map[string]bool{}
	for i, b := range f.Banks {
		if b.Code == "" || seen[b.Code] {
			errs = append(errs, fmt.Errorf("banks[%d]: code %q empty or repeated", i, b.Code))
		}
		seen[b.Code] = true
		if u, err := url.Parse(b.URL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("banks[%d] %s: url %q is not an http(s) URL", i, b.Code, b.URL))
		}
	}
	return errors.Join(errs...)
}

// LoadFile reads and validates the configuration file, strictly.
func LoadFile(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("village banks: %w", err)
	}
	f := File{Template: DefaultTemplate()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("village banks: %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("village banks: %s: %w", path, err)
	}
	return f, nil
}

// Client asks one village bank.
type Client struct {
	t    Template
	bank Bank
	c    *httpx.Client
}

// New instantiates the template for one bank.
func New(t Template, b Bank) (*Client, error) {
	c, err := httpx.NewClient(PartnerPrefix+b.Code, t.Transport)
	if err != nil {
		return nil, fmt.Errorf("village bank %s: %w", b.Code, err)
	}
	return &Client{t: t, bank: b, c: c}, nil
}

// Clients instantiates the template for every bank of f.
func Clients(f File) ([]*Client, error) {
	var out []*Client
	for _, b := range f.Banks {
		c, err := New(f.Template, b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ID is the partner id, villagebank.<code>.
func (c *Client) ID() string { return PartnerPrefix + c.bank.Code }

// ObserveBreaker reports the client's circuit breaker changes as the
// bank's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, c.ID()) }

// Bank returns the instance's bank.
func (c *Client) Bank() Bank { return c.bank }

// Scopes: one call per household.
func (*Client) Scopes([]household.Member) []string { return []string{""} }

// Query is the deposit query body.
type Query struct {
	// ReqNo is the idempotency key.
	ReqNo string `json:"req_no"`
	// AuthNo is the authorisation reference.
	AuthNo string `json:"auth_no"`
	// Certs are the members' ID numbers.
	Certs []Cert `json:"certs"`
}

// Cert is one person asked about.
type Cert struct {
	// CertNo is the ID number.
	CertNo string `json:"cert_no"`
	// Name of the person.
	Name string `json:"name"`
}

// Ask runs the deposit query.
func (c *Client) Ask(ctx context.Context, q household.Query) (household.Answer, error) {
	body := Query{ReqNo: q.Key, AuthNo: q.Authorization}
	for _, m := range q.Members {
		body.Certs = append(body.Certs, Cert{CertNo: m.IDNumber, Name: m.Name})
	}
	b, _ := json.Marshal(body)
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodPost, URL: strings.TrimRight(c.bank.URL, "/") + c.t.QueryPath,
		Headers: map[string]string{"Content-Type": "application/json"}, Body: b})
	if err != nil {
		return household.Answer{}, fmt.Errorf("village bank %s: ask: %w", c.bank.Code, err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, fmt.Errorf("village bank %s: ask: %w: query path not found", c.bank.Code, household.ErrBadAnswer)
	}
	return ParseAnswer(c.bank.Name, resp.Body())
}

// Lookup reads the answer kept under q.Key.
func (c *Client) Lookup(ctx context.Context, q household.Query) (household.Answer, bool, error) {
	u := strings.TrimRight(c.bank.URL, "/") + strings.ReplaceAll(c.t.LookupPath, "{key}", url.PathEscape(q.Key))
	resp, err := c.c.Do(ctx, httpx.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return household.Answer{}, false, fmt.Errorf("village bank %s: lookup: %w", c.bank.Code, err)
	}
	if resp.StatusCode() == http.StatusNotFound {
		return household.Answer{}, false, nil
	}
	a, err := ParseAnswer(c.bank.Name, resp.Body())
	return a, err == nil, err
}

// Answer is the template's answer layout.
type Answer struct {
	// RspCode is 0000 on success.
	RspCode string `json:"rsp_code"`
	// RspMsg explains RspCode.
	RspMsg string `json:"rsp_msg"`
	// Serial is the bank's reference.
	Serial string `json:"serial"`
	// DataDate is the date of the balances (YYYYMMDD).
	DataDate string `json:"data_date"`
	// Searched lists the ID numbers searched.
	Searched []string `json:"searched"`
	// Accounts found.
	Accounts []Account `json:"accounts"`
}

// Account is one deposit account.
type Account struct {
	// CertNo is the holder's ID number.
	CertNo string `json:"cert_no"`
	// AcctNo is the account number.
	AcctNo string `json:"acct_no"`
	// AcctType is 活期 (demand) or 定期 (time).
	AcctType string `json:"acct_type"`
	// Balance in yuan.
	Balance string `json:"balance"`
	// Currency is CNY.
	Currency string `json:"currency"`
	// AttachmentURL links to the statement kept at the bank.
	AttachmentURL string `json:"attachment_url"`
}

// ParseAnswer reads a deposit answer: a "deposit" asset per account, with
// the account number masked and the attachment's link.
func ParseAnswer(bankName string, data []byte) (household.Answer, error) {
	var r Answer
	if err := json.Unmarshal(data, &r); err != nil {
		return household.Answer{}, fmt.Errorf("village bank: %w: %w", household.ErrBadAnswer, err)
	}
	if r.RspCode != "0000" {
		return household.Answer{}, fmt.Errorf("village bank: %w: rsp_code %q %s", household.ErrBadAnswer, r.RspCode, mask.Text(r.RspMsg))
	}
	asOf, err := time.Parse("20060102", r.DataDate)
	if err != nil {
		return household.Answer{}, fmt.Errorf("village bank: %w: data_date %q", household.ErrBadAnswer, r.DataDate)
	}
	a := household.Answer{PartnerRef: r.Serial, AsOf: asOf, Covered: append([]string{}, r.Searched...), Facts: []household.Fact{}}
	for i, acc := range r.Accounts {
		fen, err := household.ParseYuan(acc.Balance)
		if err != nil {
			return household.Answer{}, fmt.Errorf("village bank: %w: account %d balance: %w", household.ErrBadAnswer, i+1, err)
		}
		if acc.Currency != "" && acc.Currency != "CNY" {
			return household.Answer{}, fmt.Errorf("village bank: %w: account %d currency %q", household.ErrBadAnswer, i+1, acc.Currency)
		}
		if acc.AttachmentURL != "" {
			if u, err := url.Parse(acc.AttachmentURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return household.Answer{}, fmt.Errorf("village bank: %w: account %d attachment_url is not a link", household.ErrBadAnswer, i+1)
			}
		}
		a.Facts = append(a.Facts, household.Fact{IDNumber: acc.CertNo, Kind: "deposit", Category: household.Asset, AmountFen: fen,
			Source: bankName + " " + acc.AcctType + " " + mask.Account(acc.AcctNo), Link: acc.AttachmentURL})
	}
	return a, nil
}
