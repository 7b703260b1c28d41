package hpf

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/soap"
)

// Namespace of the fund's verification service.
const Namespace = "http://gjj.sh.gov.cn/ws/verify/2025"

// Operations and the partner id.
const (
	ActionQuery = Namespace + "/HouseholdQuery"
	ActionByKey = Namespace + "/HouseholdQueryResult"
	PartnerID   = "hpf"
)

// Config configures the connector.
type Config struct {
	// URL is the WebService endpoint.
	URL string `yaml:"url"`
	// Username of the WS-Security UsernameToken (empty: none).
	Username string `yaml:"username"`
	// Password of the token (from the key provider; never in files).
	Password string `yaml:"-"`
	// Transport is the deadline, rate limit and breaker of each call.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Client asks the housing fund about household members.
type Client struct{ c *soap.Client }

// New returns a client.
func New(cfg Config) (*Client, error) {
	sc := soap.DefaultConfig()
	sc.URL, sc.ClientConfig, sc.Action, sc.Version = cfg.URL, cfg.Transport, ActionQuery, soap.V12
	sc.Username = cfg.Username
	c, err := soap.New(*sc)
	if err != nil {
		return nil, fmt.Errorf("hpf: %w", err)
	}
	if cfg.Username != "" {
		c.WithToken(soap.UsernameToken{Username: cfg.Username, Password: cfg.Password})
	}
	return &Client{c: c}, nil
}

// ObserveBreaker reports the client's circuit breaker changes as the
// partner's events (the monitor's partner_down alert).
func (c *Client) ObserveBreaker(events connectors.Events) { c.c.Observe(events, PartnerID) }

// ID is the partner id.
func (*Client) ID() string { return PartnerID }

// Scopes: one call per household.
func (*Client) Scopes([]household.Member) []string { return []string{""} }

// Request is the HouseholdQuery operation.
type Request struct {
	XMLName xml.Name `xml:"http://gjj.sh.gov.cn/ws/verify/2025 HouseholdQuery"`
	// QueryNo is the idempotency key.
	QueryNo string `xml:"queryNo"`
	// AuthNo is the authorisation reference.
	AuthNo string `xml:"authNo"`
	// IDs are the members' ID numbers.
	IDs []string `xml:"member>idNo"`
}

// Ask runs the check.
func (c *Client) Ask(ctx context.Context, q household.Query) (household.Answer, error) {
	req := Request{QueryNo: q.Key, AuthNo: q.Authorization}
	for _, m := range q.Members {
		req.IDs = append(req.IDs, m.IDNumber)
	}
	body, err := xml.Marshal(req)
	if err != nil {
		return household.Answer{}, fmt.Errorf("hpf: %w", err)
	}
	out, err := c.c.Call(ctx, ActionQuery, body)
	if err != nil {
		return household.Answer{}, fmt.Errorf("hpf: ask: %w", err)
	}
	return ParseAnswer(out)
}

// Lookup asks for the answer kept under q.Key.
func (c *Client) Lookup(ctx context.Context, q household.Query) (household.Answer, bool, error) {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(q.Key))
	out, err := c.c.Call(ctx, ActionByKey, []byte(`<HouseholdQueryResult xmlns="`+Namespace+`"><queryNo>`+b.String()+`</queryNo></HouseholdQueryResult>`))
	var f *soap.Fault
	if errors.As(err, &f) && f.Subcode == "NoSuchQuery" {
		return household.Answer{}, false, nil
	}
	if err != nil {
		return household.Answer{}, false, fmt.Errorf("hpf: lookup: %w", err)
	}
	a, err := ParseAnswer(out)
	return a, err == nil, err
}

// Response is the HouseholdQueryResponse.
type Response struct {
	XMLName xml.Name `xml:"http://gjj.sh.gov.cn/ws/verify/2025 HouseholdQueryResponse"`
	// SerialNo is the fund's reference.
	SerialNo string `xml:"serialNo"`
	// DataDate is the date of the data (YYYYMMDD).
	DataDate string `xml:"dataDate"`
	// Members answered.
	Members []MemberAnswer `xml:"member"`
}

// MemberAnswer is one member's accounts and loans.
type MemberAnswer struct {
	// IDNo is the ID number.
	IDNo string `xml:"idNo"`
	// Accounts are housing fund accounts.
	Accounts []Account `xml:"account"`
	// Loans are housing fund loans.
	Loans []Loan `xml:"loan"`
}

// Account is one contribution account.
type Account struct {
	// Unit is the employer paying in.
	Unit string `xml:"unitName"`
	// Personal is the person's own monthly contribution in yuan.
	Personal string `xml:"personalMonthly"`
	// Rate is the contribution rate in percent ("7").
	Rate string `xml:"ratePercent"`
	// LastMonth is the last month paid (YYYYMM).
	LastMonth string `xml:"lastPaidMonth"`
}

// Loan is one housing loan.
type Loan struct {
	// ContractNo is the loan contract number.
	ContractNo string `xml:"contractNo"`
	// Monthly is the monthly repayment in yuan.
	Monthly string `xml:"monthlyRepayment"`
	// LastMonth is the last month repaid (YYYYMM).
	LastMonth string `xml:"lastRepaidMonth"`
}

// ParseAnswer reads a HouseholdQueryResponse into an answer with the
// verification rule applied: facts "hpf_wage" (the wage the contribution
// implies) and "hpf_loan_income" (the least income the repayment implies),
// both income evidence.
func ParseAnswer(data []byte) (household.Answer, error) {
	var r Response
	if err := xml.Unmarshal(data, &r); err != nil {
		return household.Answer{}, fmt.Errorf("hpf: %w: %w", household.ErrBadAnswer, err)
	}
	asOf, err := time.Parse("20060102", strings.TrimSpace(r.DataDate))
	if err != nil {
		return household.Answer{}, fmt.Errorf("hpf: %w: dataDate %q", household.ErrBadAnswer, r.DataDate)
	}
	a := household.Answer{PartnerRef: r.SerialNo, AsOf: asOf, Covered: []string{}, Facts: []household.Fact{}}
	bad := func(what string, err error) (household.Answer, error) {
		return household.Answer{}, fmt.Errorf("hpf: %w: %s: %w", household.ErrBadAnswer, what, err)
	}
	for _, m := range r.Members {
		id := strings.TrimSpace(m.IDNo)
		if id == "" {
			return bad("member", errors.New("without idNo"))
		}
		a.Covered = append(a.Covered, id)
		for _, acc := range m.Accounts {
			fen, err := household.ParseYuan(acc.Personal)
			if err != nil {
				return bad("personalMonthly", err)
			}
			rate, err := strconv.ParseInt(strings.TrimSpace(acc.Rate), 10, 64)
			if err != nil || rate < 1 || rate > 12 {
				return bad("ratePercent", fmt.Errorf("%q outside 1..12", acc.Rate))
			}
			month, err := household.ParseMonth(acc.LastMonth)
			if err != nil {
				return bad("lastPaidMonth", err)
			}
			a.Facts = append(a.Facts, household.Fact{IDNumber: id, Kind: "hpf_wage", Category: household.Evidence,
				AmountFen: WageFromContribution(fen, rate*10), Source: acc.Unit, Period: month})
		}
		for _, l := range m.Loans {
			fen, err := household.ParseYuan(l.Monthly)
			if err != nil {
				return bad("monthlyRepayment", err)
			}
			month, err := household.ParseMonth(l.LastMonth)
			if err != nil {
				return bad("lastRepaidMonth", err)
			}
			a.Facts = append(a.Facts, household.Fact{IDNumber: id, Kind: "hpf_loan_income", Category: household.Evidence,
				AmountFen: IncomeFromLoan(fen), Source: "loan " + l.ContractNo, Period: month})
		}
	}
	return a, nil
}
