// Package joblibsim simulates the one-stop portal's job library (办件库) and
// 免申即享 interfaces for tests, benchmarks and `mzhub demo`: it serves the
// interfaces of docs/portal.md on a loopback listener, checks every call's
// MZ-HMAC-SM3 signature and nonce, enforces the portal's rate limit (429),
// keeps node order and idempotency per application as the portal does, and
// has injectable faults: slow answers, an outage, 5xx answers before or
// after applying a call (the in-doubt case), duplicated pages and wrong
// records.
package joblibsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// Item is one of the bureau's items as the portal lists it.
type Item struct {
	// Code and Name of the item.
	Code, Name string
}

// Items are the bureau's items in the simulated portal.
var Items = []Item{
	{"MZ-LNZHJT", "老年综合津贴"},
	{"MZ-ZDCJHL", "重度残疾人护理补贴"},
	{"MZ-GZFSQ", "公共租赁住房申请"},
	{"MZ-ZFBT", "廉租住房租金补贴"},
	{"MZ-JZZM", "救助证明"},
}

// Options configure a simulator.
type Options struct {
	// KeyID and Secret are the credentials the portal issued to the bureau.
	KeyID  string
	Secret []byte
	// Dept is the bureau's department code.
	Dept string
	// RatePerSecond is the portal's rate limit per interface (0: none);
	// calls over it get 429.
	RatePerSecond float64
	// ConsentPercent is the share of pushed persons who agree and become
	// cases (default 90).
	ConsentPercent int
	// Seed makes generated applications reproducible.
	Seed uint64
	// Clock stamps records (default the system clock).
	Clock clock.Clock
}

// Faults are injected into the simulator's answers; set them with SetFaults.
type Faults struct {
	// Slow delays every answer.
	Slow time.Duration
	// Down answers every call 503 without looking at it.
	Down bool
	// FailNext answers the next n calls 500 without applying them.
	FailNext int
	// FailAfterApply applies the next n pushing calls, then answers 500
	// (the caller cannot know it was applied: in doubt).
	FailAfterApply int
	// DuplicatePages repeats the previous page's items at the head of each
	// fetched page.
	DuplicatePages bool
	// WrongRecords adds that many malformed records to the next fetched pages.
	WrongRecords int
	// DropResult leaves one item out of the next n answers to pushing calls.
	DropResult int
	// RefuseNodes refuses the next n status nodes that the portal would
	// otherwise take (outcome invalid: the portal's own review holds the
	// application), without taking them.
	RefuseNodes int
	// HoldAfterApply applies the next n pushing calls, announces each on
	// Sim.Held and never answers it (the caller times out or dies).
	HoldAfterApply int
}

type app struct {
	a      joblib.Application
	nodes  []joblib.Node
	closed bool
}

type pcase struct {
	c        joblib.Case
	decision *joblib.Confirmation
	payouts  map[string]joblib.Payout
}

type pushRec struct {
	ack  joblib.PushAck
	item string
}

// Sim is a running simulator.
type Sim struct {
	opts   Options
	ln     net.Listener
	srv    *http.Server
	verify *sign.Verifier
	jl, ms *rate.Limiter

	mu       sync.Mutex
	faults   Faults
	nonces   map[string]time.Time
	apps     []*app
	byApp    map[string]*app
	pushes   map[string]pushRec
	pushed   map[string]map[string]string // item → id number → person ref
	cases    []*pcase
	byCase   map[string]*pcase
	gen      *synth.Generator
	lastPage []json.RawMessage
	nextCase int

	calls, limited, faulted atomic.Int64
	// drained counts the pages answered with nothing more, per feed.
	appsDrained, casesDrained atomic.Int64

	// Held receives the kind of each call held by HoldAfterApply.
	Held chan string
	// Duplicates counts items sent again that the portal held already (a
	// node, push batch, confirmation or payout): the hub's exactly-once
	// promise keeps it at 0 across in-doubt sends and restarts.
	Duplicates atomic.Int64
}

// Drained counts the pages of a feed ("applications" or "cases") answered
// with nothing more after them: a poll that finds it has everything the
// simulator held when the page was answered (tests wait on it).
func (s *Sim) Drained(feed string) int64 {
	if feed == joblib.FeedCases {
		return s.casesDrained.Load()
	}
	return s.appsDrained.Load()
}

// Start listens on 127.0.0.1 and serves until Close.
func Start(o Options) (*Sim, error) {
	if o.KeyID == "" || len(o.Secret) == 0 || o.Dept == "" {
		return nil, errors.New("joblibsim: key id, secret and dept are required")
	}
	if o.ConsentPercent == 0 {
		o.ConsentPercent = 90
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	s := &Sim{opts: o, nonces: map[string]time.Time{}, byApp: map[string]*app{}, pushes: map[string]pushRec{},
		pushed: map[string]map[string]string{}, byCase: map[string]*pcase{}, gen: synth.New(o.Seed + 14),
		Held: make(chan string, 16)}
	s.verify = &sign.Verifier{Window: 5 * time.Minute, MaxBody: 32 << 20, Now: o.Clock.Now,
		Secret: func(_ context.Context, id string) ([]byte, error) {
			if id != o.KeyID {
				return nil, fmt.Errorf("%w: %s", sign.ErrUnknownKey, id)
			}
			return o.Secret, nil
		}}
	if o.RatePerSecond > 0 {
		b := max(int(o.RatePerSecond), 1)
		s.jl = rate.NewLimiter(rate.Limit(o.RatePerSecond), b)
		s.ms = rate.NewLimiter(rate.Limit(o.RatePerSecond), b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("joblibsim: listen: %w", err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /joblib/v1/applications", s.fetchApplications)
	mux.HandleFunc("POST /joblib/v1/nodes", s.pushNodes)
	mux.HandleFunc("POST /joblib/v1/nodes/query", s.queryNodes)
	mux.HandleFunc("POST /mianshen/v1/pushes", s.pushPersons)
	mux.HandleFunc("GET /mianshen/v1/pushes/{batch}", s.pushStatus)
	mux.HandleFunc("GET /mianshen/v1/cases", s.fetchCases)
	mux.HandleFunc("POST /mianshen/v1/confirmations", s.confirm)
	mux.HandleFunc("POST /mianshen/v1/payouts", s.payouts)
	mux.HandleFunc("POST /mianshen/v1/cases/query", s.queryCases)
	s.srv = &http.Server{Handler: s.guard(mux), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the simulator's base URL (both interfaces).
func (s *Sim) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the listener.
func (s *Sim) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Stats counts calls answered, refused by the rate limit and failed by a fault.
func (s *Sim) Stats() (calls, limited, faulted int64) {
	return s.calls.Load(), s.limited.Load(), s.faulted.Load()
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problemBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// guard applies faults, the rate limit and the signature check.
func (s *Sim) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.mu.Lock()
		f := s.faults
		fail := f.Down || f.FailNext > 0
		if !f.Down && f.FailNext > 0 {
			s.faults.FailNext--
		}
		s.mu.Unlock()
		if f.Slow > 0 {
			select {
			case <-time.After(f.Slow):
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			s.faulted.Add(1)
			writeProblem(w, http.StatusServiceUnavailable, "unavailable", "the portal is unavailable")
			return
		}
		lim := s.jl
		if strings.HasPrefix(r.URL.Path, "/mianshen/") {
			lim = s.ms
		}
		if lim != nil && !lim.Allow() {
			s.limited.Add(1)
			writeProblem(w, http.StatusTooManyRequests, "rate-limited", "over the portal's rate limit")
			return
		}
		res, err := s.verify.Verify(r)
		if err != nil {
			writeProblem(w, http.StatusUnauthorized, "signature", err.Error())
			return
		}
		s.mu.Lock()
		now := s.opts.Clock.Now()
		if _, seen := s.nonces[res.Nonce]; seen {
			s.mu.Unlock()
			writeProblem(w, http.StatusUnauthorized, "replay", "nonce used before")
			return
		}
		s.nonces[res.Nonce] = now
		if len(s.nonces) > 100000 {
			for n, t := range s.nonces {
				if now.Sub(t) > 10*time.Minute {
					delete(s.nonces, n)
				}
			}
		}
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// finish answers a pushing call once it is applied; it is called with
// s.mu held and releases it. FailAfterApply turns the answer into a 500;
// HoldAfterApply announces the applied call on Held and keeps the caller
// waiting until it goes away (a client killed mid-call: in doubt).
func (s *Sim) finish(w http.ResponseWriter, r *http.Request, what string, v any) {
	fail := s.faults.FailAfterApply > 0
	if fail {
		s.faults.FailAfterApply--
		s.faulted.Add(1)
	}
	hold := s.faults.HoldAfterApply > 0
	if hold {
		s.faults.HoldAfterApply--
	}
	s.mu.Unlock()
	if hold {
		select {
		case s.Held <- what:
		default:
		}
		<-r.Context().Done()
		return
	}
	if fail {
		writeProblem(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	writeJSON(w, v)
}

func (s *Sim) dropResult(rs []joblib.Result) []joblib.Result {
	if s.faults.DropResult > 0 && len(rs) > 0 {
		s.faults.DropResult--
		return rs[1:]
	}
	return rs
}

func (s *Sim) checkDept(w http.ResponseWriter, dept string) bool {
	if dept != s.opts.Dept {
		writeProblem(w, http.StatusForbidden, "dept", fmt.Sprintf("department %q is not the key's department", dept))
		return false
	}
	return true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed", err.Error())
		return false
	}
	return true
}

// AddApplications adds n new applications, spread over the items, channels
// and districts, and returns their ids.
func (s *Sim) AddApplications(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now().In(clock.Shanghai)
	ids := make([]string, 0, n)
	for range n {
		p := s.gen.Next()
		i := len(s.apps)
		it := Items[i%len(Items)]
		ch := joblib.Channels[(i/len(Items))%len(joblib.Channels)]
		a := joblib.Application{
			ApplicationID: fmt.Sprintf("SB%s%s%06d", p.Division, now.Format("20060102"), i+1),
			ItemCode:      it.Code, ItemName: it.Name, Channel: ch,
			Applicant:   joblib.Applicant{IDNumber: p.ID, Name: p.Name, Phone: fmt.Sprintf("139%08d", i%100000000)},
			Division:    p.Division,
			SubmittedAt: now.Add(-time.Duration(n-len(ids)) * time.Second).Truncate(time.Second),
			Form:        formFor(it.Code, i),
		}
		if ch == joblib.ChannelTerminal {
			a.TerminalID = fmt.Sprintf("ZZ-%s-%03d", p.Division, i%40+1)
		}
		s.add(a)
		ids = append(ids, a.ApplicationID)
	}
	return ids
}

// AddApplication adds one given application (tests).
func (s *Sim) AddApplication(a joblib.Application) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(a)
}

func (s *Sim) add(a joblib.Application) {
	x := &app{a: a}
	s.apps = append(s.apps, x)
	s.byApp[a.ApplicationID] = x
}

func formFor(item string, i int) map[string]string {
	switch item {
	case "MZ-ZDCJHL":
		return map[string]string{"disability_card": fmt.Sprintf("3101%014d", i), "disability_grade": "1"}
	case "MZ-GZFSQ", "MZ-ZFBT":
		return map[string]string{"household_size": strconv.Itoa(1 + i%4), "monthly_income_fen": strconv.Itoa(150000 + i%5*50000)}
	case "MZ-JZZM":
		return map[string]string{"purpose": []string{"学费减免", "医疗救助", "水电费减免"}[i%3]}
	}
	return nil
}

func cursorIndex(after string) (int, bool) {
	if after == "" {
		return 0, true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(after, "c"))
	if err != nil || !strings.HasPrefix(after, "c") || n < 0 {
		return 0, false
	}
	return n, true
}

func pageLimit(w http.ResponseWriter, r *http.Request) (int, int, bool) {
	q := r.URL.Query()
	from, ok := cursorIndex(q.Get("after"))
	if !ok {
		writeProblem(w, http.StatusBadRequest, "cursor", "after is not a cursor of this interface")
		return 0, 0, false
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > 1000 {
		writeProblem(w, http.StatusBadRequest, "limit", "limit must be 1..1000")
		return 0, 0, false
	}
	return from, limit, true
}

func (s *Sim) fetchApplications(w http.ResponseWriter, r *http.Request) {
	if !s.checkDept(w, r.URL.Query().Get("dept")) {
		return
	}
	from, limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from = min(from, len(s.apps))
	to := min(from+limit, len(s.apps))
	var items []json.RawMessage
	if s.faults.DuplicatePages {
		items = append(items, s.lastPage...)
	}
	var page []json.RawMessage
	for _, a := range s.apps[from:to] {
		b, _ := json.Marshal(a.a)
		page = append(page, b)
	}
	items = append(items, page...)
	s.lastPage = page
	for ; s.faults.WrongRecords > 0; s.faults.WrongRecords-- {
		items = append(items, s.wrongApplication(len(items)))
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	if to >= len(s.apps) {
		s.appsDrained.Add(1)
	}
	writeJSON(w, map[string]any{"applications": items, "next": "c" + strconv.Itoa(to), "more": to < len(s.apps)})
}

// wrongApplication is a record the hub must refuse: a bad check digit, an
// unknown channel, or no applicant at all, in turn.
func (s *Sim) wrongApplication(i int) json.RawMessage {
	p := s.gen.Next()
	a := joblib.Application{ApplicationID: fmt.Sprintf("SBBAD%06d", i), ItemCode: Items[0].Code, ItemName: Items[0].Name,
		Channel: joblib.ChannelWeb, Applicant: joblib.Applicant{IDNumber: p.ID, Name: p.Name}, Division: p.Division,
		SubmittedAt: s.opts.Clock.Now().Truncate(time.Second)}
	switch i % 3 {
	case 0:
		last := a.Applicant.IDNumber[17]
		a.Applicant.IDNumber = a.Applicant.IDNumber[:17] + string("0123456789"[(strings.IndexByte("0123456789X", last)+1)%10])
	case 1:
		a.Channel = "fax"
	default:
		return json.RawMessage(fmt.Sprintf(`{"application_id":"SBBAD%06d","item_code":"MZ-LNZHJT","applicant":"?"}`, i))
	}
	b, _ := json.Marshal(a)
	return b
}

func (s *Sim) pushNodes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Dept  string        `json:"dept"`
		Nodes []joblib.Node `json:"nodes"`
	}
	if !decodeBody(w, r, &req) || !s.checkDept(w, req.Dept) {
		return
	}
	if len(req.Nodes) == 0 || len(req.Nodes) > 1000 {
		writeProblem(w, http.StatusBadRequest, "size", "1..1000 nodes per call")
		return
	}
	s.mu.Lock()
	rs := make([]joblib.Result, 0, len(req.Nodes))
	for _, n := range req.Nodes {
		rs = append(rs, s.takeNode(n))
	}
	s.finish(w, r, "nodes", map[string]any{"results": s.dropResult(rs)})
}

func (s *Sim) takeNode(n joblib.Node) joblib.Result {
	res := joblib.Result{ID: n.Key(), Outcome: joblib.OutcomeOK}
	if err := n.Validate(); err != nil {
		res.Outcome, res.Reason = joblib.OutcomeInvalid, err.Error()
		return res
	}
	a := s.byApp[n.ApplicationID]
	switch {
	case a == nil:
		res.Outcome, res.Reason = joblib.OutcomeUnknown, "no such application"
	case n.Seq <= len(a.nodes):
		prev := a.nodes[n.Seq-1]
		if prev.Node == n.Node && prev.Result == n.Result && prev.Reason == n.Reason && prev.CertificateRef == n.CertificateRef {
			res.Outcome = joblib.OutcomeDuplicate
			s.Duplicates.Add(1)
		} else {
			res.Outcome, res.Reason = joblib.OutcomeConflict, fmt.Sprintf("node %d is held with other content", n.Seq)
		}
	case a.closed:
		res.Outcome, res.Reason = joblib.OutcomeClosed, "the application is closed"
	case n.Seq != len(a.nodes)+1:
		res.Outcome, res.Reason = joblib.OutcomeOutOfOrder, fmt.Sprintf("node %d before node %d", n.Seq, len(a.nodes)+1)
	case s.faults.RefuseNodes > 0:
		s.faults.RefuseNodes--
		res.Outcome, res.Reason = joblib.OutcomeInvalid, "办件信息与办件库不符，待核实 (held by the portal's review)"
	default:
		a.nodes = append(a.nodes, n)
		a.closed = joblib.Final(n.Node, n.Result)
	}
	return res
}

func (s *Sim) queryNodes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Dept string   `json:"dept"`
		IDs  []string `json:"application_ids"`
	}
	if !decodeBody(w, r, &req) || !s.checkDept(w, req.Dept) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]joblib.NodeStatus, 0, len(req.IDs))
	seen := map[string]bool{}
	for _, id := range req.IDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		st := joblib.NodeStatus{ApplicationID: id}
		if a := s.byApp[id]; a != nil {
			st.Known, st.LastSeq = true, len(a.nodes)
		}
		out = append(out, st)
	}
	writeJSON(w, map[string]any{"applications": out})
}

// Application returns an application the portal holds.
func (s *Sim) Application(id string) (joblib.Application, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byApp[id]; a != nil {
		return a.a, true
	}
	return joblib.Application{}, false
}

// Nodes returns the nodes the portal holds for an application.
func (s *Sim) Nodes(id string) []joblib.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byApp[id]; a != nil {
		return append([]joblib.Node(nil), a.nodes...)
	}
	return nil
}

// NodeCount counts the nodes held over all applications.
func (s *Sim) NodeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.apps {
		n += len(a.nodes)
	}
	return n
}

func (s *Sim) pushPersons(w http.ResponseWriter, r *http.Request) {
	var p joblib.Push
	if !decodeBody(w, r, &p) || !s.checkDept(w, p.Dept) {
		return
	}
	switch {
	case !joblib.ValidRef(p.BatchID) || !joblib.ValidMonth(p.Month) || p.ItemCode == "":
		writeProblem(w, http.StatusBadRequest, "invalid", "batch_id, item_code and month are required")
		return
	case len(p.Persons) == 0 || len(p.Persons) > joblib.MaxPushPersons:
		writeProblem(w, http.StatusBadRequest, "size", "1..1000 persons per batch")
		return
	}
	for i, x := range p.Persons {
		if !joblib.ValidRef(x.PersonRef) || len(x.IDNumber) != 18 {
			writeProblem(w, http.StatusBadRequest, "invalid", fmt.Sprintf("persons[%d]: person_ref and id_number are required", i))
			return
		}
	}
	s.mu.Lock()
	if prev, ok := s.pushes[p.BatchID]; ok {
		s.Duplicates.Add(1)
		s.finish(w, r, "push", prev.ack)
		return
	}
	ack := joblib.PushAck{BatchID: p.BatchID}
	m := s.pushed[p.ItemCode]
	if m == nil {
		m = map[string]string{}
		s.pushed[p.ItemCode] = m
	}
	now := s.opts.Clock.Now().Truncate(time.Second)
	for _, x := range p.Persons {
		if _, dup := m[x.IDNumber]; dup {
			ack.Duplicates++
			continue
		}
		ack.Accepted++
		m[x.IDNumber] = x.PersonRef
		// The portal notifies the person; most agree and become a case.
		h := fnv.New32a()
		_, _ = h.Write([]byte(x.IDNumber))
		if int(h.Sum32()%100) < s.opts.ConsentPercent {
			s.newCase(joblib.Case{ItemCode: p.ItemCode, PersonRef: x.PersonRef, IDNumber: x.IDNumber, Name: x.Name,
				Division: x.Division, Month: p.Month, ConsentedAt: now})
		}
	}
	s.pushes[p.BatchID] = pushRec{ack: ack, item: p.ItemCode}
	s.finish(w, r, "push", ack)
}

func (s *Sim) newCase(c joblib.Case) {
	s.nextCase++
	c.CaseID = fmt.Sprintf("MSJX%s%07d", strings.ReplaceAll(strings.TrimPrefix(c.ItemCode, "MZ-"), "-", ""), s.nextCase)
	x := &pcase{c: c, payouts: map[string]joblib.Payout{}}
	s.cases = append(s.cases, x)
	s.byCase[c.CaseID] = x
}

// AddCase hands back a case for a person who was not pushed (found the
// item on the portal by themselves) and returns its id.
func (s *Sim) AddCase(c joblib.Case) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newCase(c)
	return s.cases[len(s.cases)-1].c.CaseID
}

func (s *Sim) pushStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pushes[r.PathValue("batch")]
	if !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no such batch")
		return
	}
	writeJSON(w, p.ack)
}

// Pushed counts the distinct persons pushed for an item.
func (s *Sim) Pushed(item string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pushed[item])
}

// PushBatches counts the push batches taken.
func (s *Sim) PushBatches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pushes)
}

func (s *Sim) fetchCases(w http.ResponseWriter, r *http.Request) {
	if !s.checkDept(w, r.URL.Query().Get("dept")) {
		return
	}
	from, limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from = min(from, len(s.cases))
	to := min(from+limit, len(s.cases))
	items := make([]joblib.Case, 0, to-from)
	for _, c := range s.cases[from:to] {
		items = append(items, c.c)
	}
	if to >= len(s.cases) {
		s.casesDrained.Add(1)
	}
	writeJSON(w, map[string]any{"cases": items, "next": "c" + strconv.Itoa(to), "more": to < len(s.cases)})
}

func (s *Sim) confirm(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Dept          string                `json:"dept"`
		Confirmations []joblib.Confirmation `json:"confirmations"`
	}
	if !decodeBody(w, r, &req) || !s.checkDept(w, req.Dept) {
		return
	}
	if len(req.Confirmations) == 0 || len(req.Confirmations) > 1000 {
		writeProblem(w, http.StatusBadRequest, "size", "1..1000 confirmations per call")
		return
	}
	s.mu.Lock()
	rs := make([]joblib.Result, 0, len(req.Confirmations))
	for _, c := range req.Confirmations {
		res := joblib.Result{ID: c.CaseID, Outcome: joblib.OutcomeOK}
		x := s.byCase[c.CaseID]
		switch err := c.Validate(); {
		case err != nil:
			res.Outcome, res.Reason = joblib.OutcomeInvalid, err.Error()
		case x == nil:
			res.Outcome, res.Reason = joblib.OutcomeUnknown, "no such case"
		case x.decision != nil && x.decision.Decision == c.Decision && x.decision.Reason == c.Reason:
			res.Outcome = joblib.OutcomeDuplicate
			s.Duplicates.Add(1)
		case x.decision != nil:
			res.Outcome, res.Reason = joblib.OutcomeConflict, "the case was decided otherwise"
		default:
			cc := c
			x.decision = &cc
		}
		rs = append(rs, res)
	}
	s.finish(w, r, "confirmations", map[string]any{"results": s.dropResult(rs)})
}

func (s *Sim) payouts(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Dept    string          `json:"dept"`
		Payouts []joblib.Payout `json:"payouts"`
	}
	if !decodeBody(w, r, &req) || !s.checkDept(w, req.Dept) {
		return
	}
	if len(req.Payouts) == 0 || len(req.Payouts) > 1000 {
		writeProblem(w, http.StatusBadRequest, "size", "1..1000 payouts per call")
		return
	}
	s.mu.Lock()
	rs := make([]joblib.Result, 0, len(req.Payouts))
	for _, p := range req.Payouts {
		res := joblib.Result{ID: p.PayoutID, Outcome: joblib.OutcomeOK}
		x := s.byCase[p.CaseID]
		switch err := p.Validate(); {
		case err != nil:
			res.Outcome, res.Reason = joblib.OutcomeInvalid, err.Error()
		case x == nil:
			res.Outcome, res.Reason = joblib.OutcomeUnknown, "no such case"
		case x.decision == nil || x.decision.Decision != joblib.DecisionConfirm:
			res.Outcome, res.Reason = joblib.OutcomeClosed, "the case is not confirmed"
		default:
			if prev, ok := x.payouts[p.PayoutID]; ok {
				if prev.AmountFen == p.AmountFen && prev.Month == p.Month {
					res.Outcome = joblib.OutcomeDuplicate
					s.Duplicates.Add(1)
				} else {
					res.Outcome, res.Reason = joblib.OutcomeConflict, "payout held with other content"
				}
			} else {
				x.payouts[p.PayoutID] = p
			}
		}
		rs = append(rs, res)
	}
	s.finish(w, r, "payouts", map[string]any{"results": s.dropResult(rs)})
}

func (s *Sim) queryCases(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Dept string   `json:"dept"`
		IDs  []string `json:"case_ids"`
	}
	if !decodeBody(w, r, &req) || !s.checkDept(w, req.Dept) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]joblib.CaseStatus, 0, len(req.IDs))
	seen := map[string]bool{}
	for _, id := range req.IDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		st := joblib.CaseStatus{CaseID: id, PayoutIDs: []string{}}
		if x := s.byCase[id]; x != nil {
			st.Known = true
			if x.decision != nil {
				st.Decision = x.decision.Decision
			}
			for pid := range x.payouts {
				st.PayoutIDs = append(st.PayoutIDs, pid)
			}
			sort.Strings(st.PayoutIDs)
		}
		out = append(out, st)
	}
	writeJSON(w, map[string]any{"cases": out})
}

// Decision returns the confirmation the portal holds for a case (nil when none).
func (s *Sim) Decision(caseID string) *joblib.Confirmation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.byCase[caseID]; x != nil && x.decision != nil {
		c := *x.decision
		return &c
	}
	return nil
}

// Payouts returns the payouts the portal holds for a case.
func (s *Sim) Payouts(caseID string) []joblib.Payout {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []joblib.Payout
	if x := s.byCase[caseID]; x != nil {
		for _, p := range x.payouts {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PayoutID < out[j].PayoutID })
	return out
}

// Cases lists the cases handed back, in order.
func (s *Sim) Cases() []joblib.Case {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]joblib.Case, len(s.cases))
	for i, c := range s.cases {
		out[i] = c.c
	}
	return out
}
