package hrss

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/soap"
)

// Namespace of the exchange platform's social-security operations.
const Namespace = "urn:sh-bdc:exchange:hrss:v1"

// Operations (SOAPAction).
const (
	ActionQuery  = Namespace + "#QueryPersons"
	ActionByKey  = Namespace + "#QueryByKey"
	PartnerID    = "hrss"
	faultUnknown = "UnknownKey"
)

// Config configures the connector.
type Config struct {
	// URL is the WebService endpoint of the exchange-sharing platform.
	URL string `yaml:"url"`
	// Username of the WS-Security UsernameToken (empty: none).
	Username string `yaml:"username"`
	// Password of the token (from the key provider; never in files).
	Password string `yaml:"-"`
	// Transport is the deadline, rate limit and breaker of each call.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Client asks social security about household members.
type Client struct{ c *soap.Client }

// New returns a client.
func New(cfg Config) (*Client, error) {
	sc := soap.DefaultConfig()
	sc.URL, sc.ClientConfig, sc.Action = cfg.URL, cfg.Transport, ActionQuery
	sc.Username = cfg.Username
	c, err := soap.New(*sc)
	if err != nil {
		return nil, fmt.Errorf("hrss: %w", err)
	}
	if cfg.Username != "" {
		c.WithToken(soap.UsernameToken{Username: cfg.Username, Password: cfg.Password, Digest: true})
	}
	return &Client{c: c}, nil
}

// ID is the partner id in events and results.
func (*Client) ID() string { return PartnerID }

// ObserveBreaker reports the client's circuit breaker changes as the
// partner's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, PartnerID) }

// Scopes: one call per household.
func (*Client) Scopes([]household.Member) []string { return []string{""} }

// Request is the QueryPersons operation.
type Request struct {
	XMLName xml.Name `xml:"urn:sh-bdc:exchange:hrss:v1 QueryPersons"`
	// Key is the idempotency key.
	Key string `xml:"Key"`
	// Auth is the authorisation reference.
	Auth string `xml:"Auth"`
	// Persons are asked about.
	Persons []Person `xml:"Person"`
}

// Person is one person in a request.
type Person struct {
	// Zjhm is the ID number (证件号码).
	Zjhm string `xml:"Zjhm" json:"zjhm"`
	// Xm is the name (姓名).
	Xm string `xml:"Xm" json:"xm"`
}

// Ask runs the check for q.
func (c *Client) Ask(ctx context.Context, q household.Query) (household.Answer, error) {
	req := Request{Key: q.Key, Auth: q.Authorization}
	for _, m := range q.Members {
		req.Persons = append(req.Persons, Person{Zjhm: m.IDNumber, Xm: m.Name})
	}
	body, err := xml.Marshal(req)
	if err != nil {
		return household.Answer{}, fmt.Errorf("hrss: %w", err)
	}
	out, err := c.c.Call(ctx, ActionQuery, body)
	if err != nil {
		return household.Answer{}, fmt.Errorf("hrss: ask: %w", err)
	}
	return ParseAnswer(out)
}

// Lookup asks for the answer kept under q.Key (a call in doubt).
func (c *Client) Lookup(ctx context.Context, q household.Query) (household.Answer, bool, error) {
	body := []byte(`<hr:QueryByKey xmlns:hr="` + Namespace + `"><hr:Key>` + xmlEscape(q.Key) + `</hr:Key></hr:QueryByKey>`)
	out, err := c.c.Call(ctx, ActionByKey, body)
	var f *soap.Fault
	if errors.As(err, &f) && f.Subcode == faultUnknown {
		return household.Answer{}, false, nil
	}
	if err != nil {
		return household.Answer{}, false, fmt.Errorf("hrss: lookup: %w", err)
	}
	a, err := ParseAnswer(out)
	return a, err == nil, err
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Response is the QueryPersonsResponse.
type Response struct {
	XMLName xml.Name `xml:"urn:sh-bdc:exchange:hrss:v1 QueryPersonsResponse"`
	// Ref is the platform's reference.
	Ref string `xml:"Ref"`
	// AsOf is the date of the data (YYYY-MM-DD).
	AsOf string `xml:"AsOf"`
	// Persons answered.
	Persons []PersonAnswer `xml:"Person"`
}

// PersonAnswer is what social security holds about one person.
type PersonAnswer struct {
	// Zjhm is the ID number.
	Zjhm string `xml:"Zjhm" json:"zjhm"`
	// Employment records (employer, wage base, month).
	Employment []Employment `xml:"Employment" json:"employment,omitempty"`
	// Pension payments.
	Pension []Payment `xml:"Pension" json:"pension,omitempty"`
	// NursingFee is the work-injury nursing fee.
	NursingFee []Payment `xml:"NursingFee" json:"nursing_fee,omitempty"`
	// Contribution is the person's monthly social-insurance contribution.
	Contribution []Payment `xml:"Contribution" json:"contribution,omitempty"`
}

// Employment is one employer's record.
type Employment struct {
	// Dwmc is the employer (单位名称).
	Dwmc string `xml:"Dwmc" json:"dwmc"`
	// Jfjs is the contribution wage base in yuan (缴费基数).
	Jfjs string `xml:"Jfjs" json:"jfjs"`
	// Ny is the month (年月, YYYYMM).
	Ny string `xml:"Ny" json:"ny"`
}

// Payment is a monthly amount.
type Payment struct {
	// Je is the amount in yuan (金额).
	Je string `xml:"Je" json:"je"`
	// Ny is the month (YYYYMM).
	Ny string `xml:"Ny" json:"ny"`
}

// ParseAnswer reads the content of a QueryPersonsResponse Body into an
// answer; any malformed part is ErrBadAnswer with the reason.
func ParseAnswer(data []byte) (household.Answer, error) {
	var r Response
	if err := xml.Unmarshal(data, &r); err != nil {
		return household.Answer{}, fmt.Errorf("hrss: %w: %w", household.ErrBadAnswer, err)
	}
	return r.Answer()
}

// Answer checks and normalises the response (amounts in fen, months,
// every person named): the one reading of social security's answer,
// whether it came as the WebService's document (ParseAnswer) or as a row
// of the exchange platform's front-end answer table (ParseRow). Any
// malformed part is ErrBadAnswer with the reason.
func (r Response) Answer() (household.Answer, error) {
	asOf, err := time.Parse("2006-01-02", strings.TrimSpace(r.AsOf))
	if err != nil {
		return household.Answer{}, fmt.Errorf("hrss: %w: AsOf %q", household.ErrBadAnswer, r.AsOf)
	}
	a := household.Answer{PartnerRef: r.Ref, AsOf: asOf, Covered: []string{}, Facts: []household.Fact{}}
	for i, p := range r.Persons {
		id := strings.TrimSpace(p.Zjhm)
		if id == "" {
			return household.Answer{}, fmt.Errorf("hrss: %w: person %d without Zjhm", household.ErrBadAnswer, i+1)
		}
		a.Covered = append(a.Covered, id)
		for _, e := range p.Employment {
			f, err := fact(id, "wage", household.Evidence, e.Dwmc, e.Jfjs, e.Ny)
			if err != nil {
				return household.Answer{}, err
			}
			a.Facts = append(a.Facts, f)
		}
		for _, k := range []struct {
			kind string
			ps   []Payment
		}{{"pension", p.Pension}, {"nursing_fee", p.NursingFee}, {"si_contribution", p.Contribution}} {
			kind, cat := k.kind, household.Income
			if kind == "si_contribution" {
				cat = household.Status
			}
			for _, pay := range k.ps {
				f, err := fact(id, kind, cat, "", pay.Je, pay.Ny)
				if err != nil {
					return household.Answer{}, err
				}
				a.Facts = append(a.Facts, f)
			}
		}
	}
	return a, nil
}

func fact(id, kind, cat, source, amount, month string) (household.Fact, error) {
	fen, err := household.ParseYuan(amount)
	if err != nil {
		return household.Fact{}, fmt.Errorf("hrss: %w: %s of %s: %w", household.ErrBadAnswer, kind, household.Province(id), err)
	}
	m, err := household.ParseMonth(month)
	if err != nil {
		return household.Fact{}, fmt.Errorf("hrss: %w: %s: %w", household.ErrBadAnswer, kind, err)
	}
	return household.Fact{IDNumber: id, Kind: kind, Category: cat, AmountFen: fen, Source: source, Period: m}, nil
}
