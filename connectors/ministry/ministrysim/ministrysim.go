// Package ministrysim simulates the ministry's data security exchange
// platform: cross-province queries accepted at once and answered after
// AnswerAfter (the other province's data, from the shared synthetic
// population), polled by query id; and an inbound queue of other
// provinces' requests (Inject) that the hub pulls, acknowledges and
// answers, with what was returned kept for checks.
package ministrysim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
)

// NodeID is Shanghai's node id the simulator expects.
const NodeID = "310000-MCA"

// Returned is one answer returned to another province.
type Returned struct {
	// Ref of the inbound request.
	Ref string
	// Status is complete or partial.
	Status string
	// Persons answered.
	Persons int
	// At is when it was returned.
	At time.Time
}

type query struct {
	req    ministry.QueryRequest
	ticket string
	at     time.Time
}

type inbound struct {
	in    ministry.Inbound
	acked bool
}

// Sim is a running simulator.
type Sim struct {
	// Faults are injected into query answers.
	Faults householdsim.Faults
	// Ledger counts the queries asked per query id.
	Ledger *householdsim.Ledger
	// AnswerAfter is how long a province takes to answer (nanoseconds).
	AnswerAfter atomic.Int64
	// Polls counts status polls.
	Polls atomic.Int64

	mu       sync.Mutex
	queries  map[string]*query
	inbound  []*inbound
	returned map[string]Returned
	nextIn   int
	srv      *householdsim.Server
	mux      *http.ServeMux
}

// Start starts the simulator; provinces answer after answerAfter.
func Start(answerAfter time.Duration) (*Sim, error) {
	s := &Sim{Ledger: householdsim.NewLedger(), queries: map[string]*query{}, returned: map[string]Returned{}, mux: http.NewServeMux()}
	s.AnswerAfter.Store(int64(answerAfter))
	s.mux.HandleFunc("POST /v1/xzhc/queries", s.ask)
	s.mux.HandleFunc("GET /v1/xzhc/queries/{id}", s.status)
	s.mux.HandleFunc("GET /v1/xzhc/inbound", s.pull)
	s.mux.HandleFunc("POST /v1/xzhc/inbound/{ref}/ack", s.ack)
	s.mux.HandleFunc("POST /v1/xzhc/inbound/{ref}/result", s.result)
	srv, err := householdsim.Serve(s)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// URL is the platform's base URL.
func (s *Sim) URL() string { return s.srv.URL }

// Close stops the simulator.
func (s *Sim) Close() error { return s.srv.Close() }

// Config returns the connector configuration that reaches the simulator.
func (s *Sim) Config() ministry.Config { return ministry.Config{URL: s.URL(), NodeID: NodeID} }

// ServeHTTP checks the node id and faults, then routes.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Node-Id") != NodeID {
		http.Error(w, `{"error":"unknown node"}`, http.StatusForbidden)
		return
	}
	if !s.Faults.Hold(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	s.mux.ServeHTTP(w, r)
}

func (s *Sim) ask(w http.ResponseWriter, r *http.Request) {
	var q ministry.QueryRequest
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.QueryID == "" || len(q.Persons) == 0 || len(q.Province) != 2 {
		http.Error(w, `{"error":"bad query"}`, http.StatusBadRequest)
		return
	}
	b, repeated := s.Ledger.Ask(q.QueryID, func() []byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		t := fmt.Sprintf("MCA%s%08d", q.Province, len(s.queries)+1)
		s.queries[q.QueryID] = &query{req: q, ticket: t, at: time.Now()}
		out, _ := json.Marshal(ministry.Status{Ticket: t, Status: "accepted"})
		return out
	})
	s.Faults.Lag(r)
	if !repeated {
		w.WriteHeader(http.StatusAccepted)
	}
	_, _ = w.Write(b)
}

func (s *Sim) status(w http.ResponseWriter, r *http.Request) {
	s.Polls.Add(1)
	s.mu.Lock()
	q, ok := s.queries[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"unknown query"}`, http.StatusNotFound)
		return
	}
	if time.Since(q.at) < time.Duration(s.AnswerAfter.Load()) {
		_ = json.NewEncoder(w).Encode(ministry.Status{Ticket: q.ticket, Status: "processing"})
		return
	}
	if b, ok := s.Ledger.Lookup("done:" + q.req.QueryID); ok {
		_, _ = w.Write(b)
		return
	}
	wrong, _ := s.Faults.Draw()
	res := &ministry.Result{}
	for _, p := range q.req.Persons {
		prof := householdsim.Profile(p.ID)
		pr := ministry.PersonResult{ID: p.ID, Items: []ministry.Item{}}
		if prof.WageFen > 0 {
			pr.Items = append(pr.Items, ministry.Item{Type: household.Evidence, Kind: "wage", Source: "省人社厅", Amount: household.FormatYuan(prof.WageFen * 8 / 10)})
		}
		if prof.PensionFen > 0 {
			pr.Items = append(pr.Items, ministry.Item{Type: household.Income, Kind: "pension", Source: "省社保中心", Amount: household.FormatYuan(prof.PensionFen * 9 / 10)})
		}
		var dep int64
		for _, v := range prof.Deposits {
			dep += v
		}
		if dep > 0 {
			pr.Items = append(pr.Items, ministry.Item{Type: household.Asset, Kind: "deposit", Source: "省内银行", Amount: household.FormatYuan(dep)})
		}
		if wrong {
			pr.Items = append(pr.Items, ministry.Item{Type: household.Income, Kind: "pension", Source: "?", Amount: "-1.00"})
		}
		res.Persons = append(res.Persons, pr)
	}
	b, _ := json.Marshal(ministry.Status{Ticket: q.ticket, Status: "done", AnsweredAt: time.Now().UTC().Format(time.RFC3339), Result: res})
	s.Ledger.Put("done:"+q.req.QueryID, b)
	_, _ = w.Write(b)
}

// Inject queues n requests from province about the given Shanghai
// residents (one household each) and returns their references.
func (s *Sim) Inject(province string, households [][]ministry.Person) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var refs []string
	for _, h := range households {
		s.nextIn++
		ref := fmt.Sprintf("IN%s%06d", province, s.nextIn)
		s.inbound = append(s.inbound, &inbound{in: ministry.Inbound{Ref: ref, FromProvince: province, AuthNo: "EA" + ref,
			ReceivedAt: time.Now().UTC().Format(time.RFC3339), Persons: h}})
		refs = append(refs, ref)
	}
	return refs
}

func (s *Sim) pull(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 50
	}
	s.mu.Lock()
	out := []ministry.Inbound{}
	for _, in := range s.inbound {
		if !in.acked && len(out) < limit {
			out = append(out, in.in)
		}
	}
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"requests": out})
}

func (s *Sim) ack(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.inbound {
		if in.in.Ref == r.PathValue("ref") {
			in.acked = true
			_, _ = w.Write([]byte(`{"ok":true}`))
			return
		}
	}
	http.Error(w, `{"error":"unknown ref"}`, http.StatusNotFound)
}

func (s *Sim) result(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status string          `json:"status"`
		Result ministry.Result `json:"result"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":"bad result"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := r.PathValue("ref")
	if _, dup := s.returned[ref]; !dup {
		s.returned[ref] = Returned{Ref: ref, Status: body.Status, Persons: len(body.Result.Persons), At: time.Now()}
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// Returned lists the answers returned so far, by reference.
func (s *Sim) Returned() map[string]Returned {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Returned, len(s.returned))
	for k, v := range s.returned {
		out[k] = v
	}
	return out
}
