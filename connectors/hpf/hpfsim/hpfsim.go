// Package hpfsim simulates the housing fund centre's verification
// WebService (SOAP 1.2, UsernameToken with the password in text):
// HouseholdQuery and HouseholdQueryResult, answers from the shared
// synthetic population, kept per query number, and injectable faults.
package hpfsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hpf"
	"github.com/shanghai-mca/mzhub/connectors/soap"
)

// Credentials the simulator accepts.
const (
	Username = "mca-verify"
	Password = "sim-hpf-secret"
)

// Sim is a running simulator.
type Sim struct {
	// Faults are injected into answers.
	Faults householdsim.Faults
	// Ledger keeps the answers per query number.
	Ledger *householdsim.Ledger
	// AsOf is the date of the data.
	AsOf time.Time
	srv  *householdsim.Server
}

// Start starts a simulator on loopback.
func Start() (*Sim, error) {
	s := &Sim{Ledger: householdsim.NewLedger(), AsOf: time.Now()}
	srv, err := householdsim.Serve(s)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// URL is the WebService endpoint.
func (s *Sim) URL() string { return s.srv.URL + "/services/HouseholdVerify" }

// Close stops the simulator.
func (s *Sim) Close() error { return s.srv.Close() }

// Config returns the connector configuration that reaches the simulator.
func (s *Sim) Config() hpf.Config {
	return hpf.Config{URL: s.URL(), Username: Username, Password: Password}
}

// ServeHTTP answers one SOAP call.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.Faults.Hold(w, r) {
		return
	}
	req, err := soap.ReadRequest(r)
	if err != nil {
		soap.WriteFault(w, soap.V12, soap.Fault{Code: "Sender", Reason: "not a SOAP request"})
		return
	}
	if err := req.CheckToken(Username, Password); err != nil {
		soap.WriteFault(w, req.Version, soap.Fault{Code: "Sender", Subcode: "FailedAuthentication", Reason: "bad token"})
		return
	}
	switch req.Operation {
	case "HouseholdQuery":
		var q hpf.Request
		if err := xml.Unmarshal(req.Body, &q); err != nil || q.QueryNo == "" || len(q.IDs) == 0 {
			soap.WriteFault(w, req.Version, soap.Fault{Code: "Sender", Reason: "bad HouseholdQuery"})
			return
		}
		b, _ := s.Ledger.Ask(q.QueryNo, func() []byte { return s.answer(q) })
		s.Faults.Lag(r)
		soap.WriteBody(w, req.Version, b)
	case "HouseholdQueryResult":
		var q struct {
			QueryNo string `xml:"queryNo"`
		}
		_ = xml.Unmarshal(req.Body, &q)
		b, ok := s.Ledger.Lookup(q.QueryNo)
		if !ok {
			soap.WriteFault(w, req.Version, soap.Fault{Code: "Sender", Subcode: "NoSuchQuery", Reason: "unknown query number"})
			return
		}
		soap.WriteBody(w, req.Version, b)
	default:
		soap.WriteFault(w, req.Version, soap.Fault{Code: "Sender", Reason: "unknown operation"})
	}
}

func (s *Sim) answer(q hpf.Request) []byte {
	wrong, dup := s.Faults.Draw()
	month := s.AsOf.AddDate(0, -1, 0).Format("200601")
	resp := hpf.Response{SerialNo: fmt.Sprintf("GJJ%08d", s.Ledger.Total()), DataDate: s.AsOf.Format("20060102")}
	for i, id := range q.IDs {
		p := householdsim.Profile(id)
		m := hpf.MemberAnswer{IDNo: id}
		if p.HPFContributionFen > 0 {
			m.Accounts = append(m.Accounts, hpf.Account{Unit: p.Employer, Personal: household.FormatYuan(p.HPFContributionFen),
				Rate: fmt.Sprint(householdsim.HPFRatePermille / 10), LastMonth: month})
		}
		if p.HPFLoanRepaymentFen > 0 {
			m.Loans = append(m.Loans, hpf.Loan{ContractNo: "DK" + id[len(id)-6:], Monthly: household.FormatYuan(p.HPFLoanRepaymentFen), LastMonth: month})
		}
		if dup {
			m.Accounts = append(m.Accounts, m.Accounts...)
		}
		if wrong && i == 0 {
			m.Accounts = append(m.Accounts, hpf.Account{Unit: "?", Personal: "-12.5", Rate: "7", LastMonth: month})
		}
		resp.Members = append(resp.Members, m)
	}
	b, _ := xml.Marshal(resp)
	return b
}
