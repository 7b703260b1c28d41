// Package samrsim simulates the market supervision bureau's API: the
// shareholding check (kept per key, looked up by key), the food business
// licence lookup of community canteens and the abnormal-operation list,
// from the shared synthetic population, with injectable faults.
package samrsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/samr"
)

// AppKey is the client key the simulator accepts.
const AppKey = "sim-samr-app"

// Canteens are the simulated community elderly canteens with licences;
// "徐汇区长桥街道社区长者食堂" has none.
var Canteens = map[string]samr.Licence{
	"黄浦区外滩街道社区长者食堂": {Number: "JY23101010001234", Holder: "黄浦区外滩街道社区长者食堂", Address: "上海市黄浦区福州路1号", ValidTo: "2029-06-30"},
	"静安区临汾路街道长者食堂":  {Number: "JY23101060004321", Holder: "静安区临汾路街道长者食堂", Address: "上海市静安区临汾路380号", ValidTo: "2025-03-31"},
	"浦东新区花木街道社区食堂":  {Number: "JY23101150007788", Holder: "浦东新区花木街道社区食堂", Address: "上海市浦东新区梅花路100号", ValidTo: "2030-12-31"},
}

// Sim is a running simulator.
type Sim struct {
	// Faults are injected into shareholding answers.
	Faults householdsim.Faults
	// Ledger keeps the answers per key.
	Ledger *householdsim.Ledger
	// AsOf is the date of the data.
	AsOf time.Time
	srv  *householdsim.Server
	mux  *http.ServeMux
}

// Start starts a simulator on loopback.
func Start() (*Sim, error) {
	s := &Sim{Ledger: householdsim.NewLedger(), AsOf: time.Now(), mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /api/v1/verify/shareholders", s.ask)
	s.mux.HandleFunc("GET /api/v1/verify/shareholders/{key}", s.lookup)
	s.mux.HandleFunc("GET /api/v1/food-licences", s.licences)
	s.mux.HandleFunc("GET /api/v1/abnormal", s.abnormal)
	srv, err := householdsim.Serve(s)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// URL is the API's base URL.
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the simulator.
func (s *Sim) Close() error { return s.srv.Close() }

// Config returns the connector configuration that reaches the simulator.
func (s *Sim) Config() samr.Config { return samr.Config{URL: s.URL(), AppKey: AppKey} }

// ServeHTTP checks the app key and faults, then routes.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-App-Key") != AppKey {
		http.Error(w, `{"error":"unknown app key"}`, http.StatusUnauthorized)
		return
	}
	if !s.Faults.Hold(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Sim) ask(w http.ResponseWriter, r *http.Request) {
	var q samr.ShareholderQuery
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Key == "" || len(q.Persons) == 0 {
		http.Error(w, `{"error":"bad query"}`, http.StatusBadRequest)
		return
	}
	b, _ := s.Ledger.Ask(q.Key, func() []byte { return s.answer(q) })
	s.Faults.Lag(r)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Sim) lookup(w http.ResponseWriter, r *http.Request) {
	b, ok := s.Ledger.Lookup(r.PathValue("key"))
	if !ok {
		http.Error(w, `{"error":"unknown key"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Sim) answer(q samr.ShareholderQuery) []byte {
	wrong, dup := s.Faults.Draw()
	a := samr.Answer{Ref: fmt.Sprintf("SAMR-%d", s.Ledger.Total()), AsOf: s.AsOf.Format(time.DateOnly), Results: []samr.PersonResult{}}
	for i, p := range q.Persons {
		pr := samr.PersonResult{ID: p.ID, Companies: []samr.Company{}}
		for _, c := range householdsim.Profile(p.ID).Companies {
			pr.Companies = append(pr.Companies, samr.Company{Name: c.Name, USCC: c.CreditCode, RegCapital: household.FormatYuan(c.CapitalFen),
				ShareRatio: fmt.Sprintf("%d.%03d", c.SharePermille/1000, c.SharePermille%1000), Status: "存续", Abnormal: c.Abnormal})
		}
		if dup {
			pr.Companies = append(pr.Companies, pr.Companies...)
		}
		if wrong && i == 0 {
			pr.Companies = append(pr.Companies, samr.Company{Name: "?", USCC: "?", RegCapital: "1000000", ShareRatio: "1.7", Status: "存续"})
		}
		a.Results = append(a.Results, pr)
	}
	b, _ := json.Marshal(a)
	return b
}

func (s *Sim) licences(w http.ResponseWriter, r *http.Request) {
	l, ok := Canteens[strings.TrimSpace(r.URL.Query().Get("holder"))]
	if !ok {
		http.Error(w, `{"error":"no licence"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"licences": []samr.Licence{l}})
}

func (s *Sim) abnormal(w http.ResponseWriter, r *http.Request) {
	since, err := time.Parse(time.DateOnly, r.URL.Query().Get("since"))
	if err != nil {
		http.Error(w, `{"error":"since"}`, http.StatusBadRequest)
		return
	}
	entries := []samr.Abnormal{}
	for i := range 5 {
		day := s.AsOf.AddDate(0, 0, -7*i)
		if day.Before(since) {
			break
		}
		entries = append(entries, samr.Abnormal{USCC: fmt.Sprintf("91310115MA1K%06d", 4000+i), Name: fmt.Sprintf("上海沪申%d号商贸有限公司", i+1),
			ListedOn: day.Format(time.DateOnly), Reason: "通过登记的住所或者经营场所无法联系"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"entries": entries})
}
