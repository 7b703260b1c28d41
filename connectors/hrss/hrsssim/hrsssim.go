// Package hrsssim simulates the social-security WebService of the city's
// exchange-sharing platform: QueryPersons and QueryByKey over SOAP 1.1 with
// a WS-Security UsernameToken, answers from the shared synthetic
// population (householdsim.Profile), kept per idempotency key, and faults
// (down, slow, wrong answers, duplicated records).
package hrsssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hrss"
	"github.com/shanghai-mca/mzhub/connectors/soap"
)

// Credentials the simulator accepts.
const (
	Username = "mca-verify"
	Password = "sim-hrss-secret"
)

// Sim is a running simulator.
type Sim struct {
	// Faults are injected into answers.
	Faults householdsim.Faults
	// Ledger keeps the answers per key.
	Ledger *householdsim.Ledger
	// AsOf is the date of the data the simulator answers with.
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
func (s *Sim) URL() string { return s.srv.URL + "/ws/hrss" }

// Close stops the simulator.
func (s *Sim) Close() error { return s.srv.Close() }

// Config returns the connector configuration that reaches the simulator.
func (s *Sim) Config() hrss.Config {
	return hrss.Config{URL: s.URL(), Username: Username, Password: Password}
}

// ServeHTTP answers one SOAP call.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.Faults.Hold(w, r) {
		return
	}
	req, err := soap.ReadRequest(r)
	if err != nil {
		soap.WriteFault(w, soap.V11, soap.Fault{Code: "Client", Reason: "not a SOAP request"})
		return
	}
	if err := req.CheckToken(Username, Password); err != nil {
		soap.WriteFault(w, req.Version, soap.Fault{Code: "Client", Subcode: "FailedAuthentication", Reason: "bad token"})
		return
	}
	switch req.Operation {
	case "QueryPersons":
		var q hrss.Request
		if err := xml.Unmarshal(req.Body, &q); err != nil || q.Key == "" || len(q.Persons) == 0 {
			soap.WriteFault(w, req.Version, soap.Fault{Code: "Client", Reason: "bad QueryPersons"})
			return
		}
		b, _ := s.Ledger.Ask(q.Key, func() []byte { return s.answer(q) })
		s.Faults.Lag(r)
		soap.WriteBody(w, req.Version, b)
	case "QueryByKey":
		var q struct {
			Key string `xml:"Key"`
		}
		_ = xml.Unmarshal(req.Body, &q)
		b, ok := s.Ledger.Lookup(q.Key)
		if !ok {
			soap.WriteFault(w, req.Version, soap.Fault{Code: "Client", Subcode: "UnknownKey", Reason: "no query under this key"})
			return
		}
		soap.WriteBody(w, req.Version, b)
	default:
		soap.WriteFault(w, req.Version, soap.Fault{Code: "Client", Reason: "unknown operation"})
	}
}

func (s *Sim) answer(q hrss.Request) []byte {
	wrong, dup := s.Faults.Draw()
	b, _ := xml.Marshal(Respond(q, s.AsOf, "HRSS"+fmt.Sprint(s.Ledger.Total()), wrong, dup))
	return b
}

// Respond is social security's answer to q from the synthetic population
// (householdsim.Profile), for the month before asOf: the WebService's and
// the front-end platform's (Platform) alike. dup repeats each person's
// records; wrong answers the first person under someone else's number.
func Respond(q hrss.Request, asOf time.Time, ref string, wrong, dup bool) hrss.Response {
	month := asOf.AddDate(0, -1, 0).Format("200601")
	resp := hrss.Response{Ref: ref, AsOf: asOf.Format("2006-01-02")}
	for i, p := range q.Persons {
		prof := householdsim.Profile(p.Zjhm)
		pa := hrss.PersonAnswer{Zjhm: p.Zjhm}
		if prof.Employer != "" {
			pa.Employment = append(pa.Employment, hrss.Employment{Dwmc: prof.Employer, Jfjs: household.FormatYuan(prof.WageFen), Ny: month})
			pa.Contribution = append(pa.Contribution, hrss.Payment{Je: household.FormatYuan(prof.WageFen * 105 / 1000), Ny: month})
		}
		if prof.PensionFen > 0 {
			pa.Pension = append(pa.Pension, hrss.Payment{Je: household.FormatYuan(prof.PensionFen), Ny: month})
		}
		if prof.NursingFeeFen > 0 {
			pa.NursingFee = append(pa.NursingFee, hrss.Payment{Je: household.FormatYuan(prof.NursingFeeFen), Ny: month})
		}
		if dup && len(pa.Pension)+len(pa.Employment) > 0 {
			pa.Pension = append(pa.Pension, pa.Pension...)
			pa.Employment = append(pa.Employment, pa.Employment...)
		}
		if wrong && i == 0 {
			// Someone else's record under the wrong number: the hub must
			// reject it (a person not asked about).
			pa.Zjhm = "11010119800101" + fmt.Sprintf("%04d", len(p.Zjhm)*7)
		}
		resp.Persons = append(resp.Persons, pa)
	}
	return resp
}
