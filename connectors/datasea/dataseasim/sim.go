// Package dataseasim simulates the data sea's exchange-sharing platform:
// the records API (feeds death and migration, paged by cursor), the
// recipients push (入海) with receipts, and batch files for an SFTP drop.
// Faults are injected at will: slow answers, the platform down, wrong
// answers, duplicate records across pages and malformed records.
package dataseasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/sftp/sftptest"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// Faults are the injectable faults; set them at any time.
type Faults struct {
	// Slow delays every answer.
	Slow atomic.Int64 // nanoseconds
	// Down makes every call answer 503.
	Down atomic.Bool
	// Wrong is the number of coming answers that are not JSON.
	Wrong atomic.Int32
	// Duplicates repeats the previous page's last record at the start of each page.
	Duplicates atomic.Bool
	// RejectPush makes the push endpoint accept one record fewer than sent (a wrong count).
	RejectPush atomic.Bool
	// HoldPush makes the push endpoint record a push and then hold its
	// answer until the caller goes away (a hub killed waiting for the receipt).
	HoldPush atomic.Bool
}

// Sim is the simulated platform. Its zero value is not usable; use New.
type Sim struct {
	// Faults are injected into the API.
	Faults Faults

	mu       sync.Mutex
	feeds    map[string][]json.RawMessage
	pushes   map[string]datasea.Receipt // by idempotency key
	bodies   map[string]datasea.PushBody
	calls    atomic.Int64
	pageHits atomic.Int64
	srv      *http.Server
	ln       net.Listener
	drop     *sftptest.Server // the SFTP drop (StartDrop)
	// dropPassword is the hub's password on drop; dropped and droppedBad
	// count the good records and the malformed lines DropDay wrote.
	dropPassword        string
	dropped, droppedBad int
	pushed              chan struct{} // closed (and replaced) at each new push
	paged               chan struct{} // closed (and replaced) at each page served
}

// New returns a platform with empty feeds.
func New() *Sim {
	return &Sim{feeds: map[string][]json.RawMessage{}, pushes: map[string]datasea.Receipt{},
		bodies: map[string]datasea.PushBody{}, pushed: make(chan struct{}), paged: make(chan struct{})}
}

// Add appends records to their feeds.
func (s *Sim) Add(recs ...datasea.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		b, _ := json.Marshal(r)
		f := datasea.FeedOf(r.Kind)
		s.feeds[f] = append(s.feeds[f], b)
	}
}

// AddRaw appends a raw record (malformed on purpose) to a feed.
func (s *Sim) AddRaw(feed string, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feeds[feed] = append(s.feeds[feed], json.RawMessage(raw))
}

// Len returns the number of records of a feed.
func (s *Sim) Len(feed string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.feeds[feed])
}

// Calls counts the API calls answered (faults included).
func (s *Sim) Calls() int64 { return s.calls.Load() }

// Pages counts the record pages served successfully.
func (s *Sim) Pages() int64 { return s.pageHits.Load() }

// Pushed returns the body pushed for a period (ok false when none).
func (s *Sim) Pushed(period string) (datasea.PushBody, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bodies[period]
	return b, ok
}

// NextPush returns a channel closed when the platform takes its next new
// push (take it before looking at Pushed: no push is missed).
func (s *Sim) NextPush() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushed
}

// NextPage returns a channel closed when the platform has served its next
// page of records.
func (s *Sim) NextPage() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paged
}

// PushCount returns the number of distinct pushes received.
func (s *Sim) PushCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pushes)
}

// Start serves the API on addr ("127.0.0.1:0" for any port).
func (s *Sim) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// URL is the base URL of the started API.
func (s *Sim) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the API and the SFTP drop.
func (s *Sim) Close() error {
	var errs []error
	s.mu.Lock()
	drop := s.drop
	s.mu.Unlock()
	if drop != nil {
		errs = append(errs, drop.Close())
	}
	if s.srv != nil {
		errs = append(errs, s.srv.Close())
	}
	return errors.Join(errs...)
}

// ServeHTTP answers the platform's API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if d := s.Faults.Slow.Load(); d > 0 {
		select {
		case <-time.After(time.Duration(d)):
		case <-r.Context().Done():
			return
		}
	}
	if s.Faults.Down.Load() {
		http.Error(w, "platform under maintenance", http.StatusServiceUnavailable)
		return
	}
	if s.Faults.Wrong.Load() > 0 && s.Faults.Wrong.Add(-1) >= 0 {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>网关错误 gateway says hello</body></html>")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "feeds" && parts[4] == "records":
		s.page(w, r, parts[3])
	case r.Method == http.MethodPost && len(parts) == 4 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "recipients":
		s.push(w, r, parts[3])
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) page(w http.ResponseWriter, r *http.Request, feed string) {
	if _, ok := datasea.Feeds[feed]; !ok {
		http.NotFound(w, r)
		return
	}
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "c"))
		if err != nil || n < 0 {
			http.Error(w, `{"code":"bad_cursor"}`, http.StatusBadRequest)
			return
		}
		start = n
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	s.mu.Lock()
	all := s.feeds[feed]
	end := min(start+limit, len(all))
	var recs []json.RawMessage
	if start < len(all) {
		recs = append(recs, all[start:end]...)
	}
	if s.Faults.Duplicates.Load() && start > 0 && start <= len(all) {
		recs = append([]json.RawMessage{all[start-1]}, recs...)
	}
	more := end < len(all)
	s.mu.Unlock()
	if end < start {
		end = start
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(datasea.Page{Records: recs, NextCursor: "c" + strconv.Itoa(end), More: more})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.pageHits.Add(1)
	s.mu.Lock()
	close(s.paged)
	s.paged = make(chan struct{})
	s.mu.Unlock()
}

func (s *Sim) push(w http.ResponseWriter, r *http.Request, period string) {
	var body datasea.PushBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<30)).Decode(&body); err != nil {
		http.Error(w, `{"code":"bad_body"}`, http.StatusBadRequest)
		return
	}
	var recs []datasea.Recipient
	if err := json.Unmarshal(body.Records, &recs); err != nil || len(recs) != body.Count || body.Period != period || body.Signature == "" {
		http.Error(w, `{"code":"count_or_signature"}`, http.StatusUnprocessableEntity)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	rc, ok := s.pushes[key]
	if !ok {
		rc = datasea.Receipt{ID: fmt.Sprintf("DS%s-%04d", strings.ReplaceAll(period, "-", ""), len(s.pushes)+1), Accepted: len(recs)}
		if s.Faults.RejectPush.Load() {
			rc.Accepted--
		}
		s.pushes[key] = rc
		s.bodies[period] = body
		close(s.pushed)
		s.pushed = make(chan struct{})
	}
	s.mu.Unlock()
	if s.Faults.HoldPush.Load() {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rc)
}

// Generate returns n realistic records of day (YYYY-MM-DD): about half
// deaths, the rest moves out and in. Deaths and moves out concern persons
// of the synthetic allowance list of seed (services/disbursement/synth:
// every step-th of its first persons), so that a list generated with the
// same seed contains them; moves in come from other provinces.
func Generate(n int, seed uint64, day string, step int) []datasea.Record {
	if step < 1 {
		step = 1
	}
	g := synth.New(seed)
	r := rand.New(rand.NewPCG(seed, 0xda7a5ea))
	out := make([]datasea.Record, 0, n)
	provinces := []string{"320102", "330106", "340104", "110105", "440305", "510107"}
	for i := 0; len(out) < n; i++ {
		p := g.Next()
		if i%step != 0 {
			continue
		}
		rec := datasea.Record{ID: fmt.Sprintf("%s-%s-%07d", strings.ReplaceAll(day, "-", ""), "R", len(out)+1),
			IDNumber: p.ID, Name: p.Name, Date: day, District: p.Division}
		switch k := r.IntN(10); {
		case k < 6:
			rec.Kind = datasea.Death
			rec.ID = "D" + rec.ID
		case k < 8:
			rec.Kind, rec.Region = datasea.MoveOut, provinces[r.IntN(len(provinces))]
			rec.ID = "O" + rec.ID
		default:
			// A move in: a person born elsewhere settling with family in Shanghai.
			id := provinces[r.IntN(len(provinces))] + p.ID[6:17]
			rec.IDNumber = id + string(synth.CheckDigit([]byte(id)))
			rec.Kind, rec.Region = datasea.MoveIn, id[:6]
			rec.ID = "I" + rec.ID
		}
		out = append(out, rec)
	}
	return out
}

// Persons returns the first n persons of the synthetic list of seed.
func Persons(seed uint64, n int) []synth.Person {
	g := synth.New(seed)
	out := make([]synth.Person, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}
