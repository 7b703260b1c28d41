// Package villagebanksim simulates the 14 village banks on one loopback
// server, each under its own path prefix (/vb01, …) with its own faults
// and ledger: deposit queries kept per request number, looked up by it,
// and statements served as the attachments the answers link to.
package villagebanksim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/villagebank"
)

// Names of the simulated banks, by code.
var Names = map[string]string{
	"vb01": "上海崇明沪农商村镇银行", "vb02": "上海奉贤浦发村镇银行", "vb03": "上海松江民生村镇银行", "vb04": "上海嘉定民生村镇银行",
	"vb05": "上海浦东江南村镇银行", "vb06": "上海闵行上银村镇银行", "vb07": "上海宝山富民村镇银行", "vb08": "上海金山惠民村镇银行",
	"vb09": "上海青浦刺桐红村镇银行", "vb10": "上海浦东建信村镇银行", "vb11": "上海松江富明村镇银行", "vb12": "上海浦东中银富登村镇银行",
	"vb13": "上海杨浦中银富登村镇银行", "vb14": "上海长宁中银富登村镇银行",
}

// Bank is one simulated bank.
type Bank struct {
	// Code of the bank.
	Code string
	// Faults are injected into its answers.
	Faults householdsim.Faults
	// Ledger keeps its answers per request number.
	Ledger *householdsim.Ledger
}

// Sim is the running simulator of all banks.
type Sim struct {
	// Banks by code.
	Banks map[string]*Bank
	// AsOf is the date of the balances.
	AsOf time.Time
	srv  *householdsim.Server
}

// Start starts the 14 banks.
func Start() (*Sim, error) {
	s := &Sim{Banks: map[string]*Bank{}, AsOf: time.Now()}
	for _, code := range householdsim.BankCodes {
		s.Banks[code] = &Bank{Code: code, Ledger: householdsim.NewLedger()}
	}
	srv, err := householdsim.Serve(s)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// Close stops the simulator.
func (s *Sim) Close() error { return s.srv.Close() }

// File returns the configuration of the 14 banks on the simulator.
func (s *Sim) File() villagebank.File {
	f := villagebank.File{Template: villagebank.DefaultTemplate()}
	for _, code := range householdsim.BankCodes {
		f.Banks = append(f.Banks, villagebank.Bank{Code: code, Name: Names[code], URL: s.srv.URL + "/" + code})
	}
	return f
}

// ServeHTTP routes /{code}/openapi/v1/deposit/query[/{key}] and
// /{code}/attachments/{name}.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	b, ok := s.Banks[code]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.HasPrefix(rest, "attachments/") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "%s 存款证明 %s\n", Names[code], strings.TrimPrefix(rest, "attachments/"))
		return
	}
	if !b.Faults.Hold(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && rest == "openapi/v1/deposit/query":
		var q villagebank.Query
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.ReqNo == "" || len(q.Certs) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"rsp_code":"9001","rsp_msg":"bad request"}`))
			return
		}
		ans, _ := b.Ledger.Ask(q.ReqNo, func() []byte { return s.answer(b, r, q) })
		b.Faults.Lag(r)
		_, _ = w.Write(ans)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "openapi/v1/deposit/query/"):
		ans, ok := b.Ledger.Lookup(strings.TrimPrefix(rest, "openapi/v1/deposit/query/"))
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"rsp_code":"9404","rsp_msg":"no such request"}`))
			return
		}
		_, _ = w.Write(ans)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) answer(b *Bank, r *http.Request, q villagebank.Query) []byte {
	wrong, dup := b.Faults.Draw()
	a := villagebank.Answer{RspCode: "0000", RspMsg: "成功", Serial: fmt.Sprintf("%s%010d", strings.ToUpper(b.Code), b.Ledger.Total()),
		DataDate: s.AsOf.Format("20060102"), Accounts: []villagebank.Account{}}
	for i, c := range q.Certs {
		a.Searched = append(a.Searched, c.CertNo)
		fen, ok := householdsim.Profile(c.CertNo).Deposits[b.Code]
		if !ok {
			continue
		}
		acct := fmt.Sprintf("62%s%012d", b.Code[2:], int64(len(c.CertNo))*1_000_003+fen%999_983)
		a.Accounts = append(a.Accounts, villagebank.Account{CertNo: c.CertNo, AcctNo: acct, AcctType: []string{"活期", "定期"}[i%2],
			Balance: household.FormatYuan(fen), Currency: "CNY", AttachmentURL: "http://" + r.Host + "/" + b.Code + "/attachments/" + q.ReqNo + "-" + fmt.Sprint(i+1) + ".pdf"})
	}
	if dup && len(a.Accounts) > 0 {
		a.Accounts = append(a.Accounts, a.Accounts[0])
	}
	if wrong {
		a.Searched = a.Searched[:len(a.Searched)-1] // one member not searched: incomplete
	}
	out, _ := json.Marshal(a)
	return out
}
