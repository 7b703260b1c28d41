// Package cardcentersim simulates the card center (卡中心): the
// applications and production feeds (paged by cursor) and the card-status
// query, with injectable faults (slow, down, wrong answers, duplicates).
package cardcentersim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// Faults are the injectable faults.
type Faults struct {
	// Slow delays every answer (nanoseconds).
	Slow atomic.Int64
	// Down answers 503.
	Down atomic.Bool
	// Wrong is the number of coming answers that are not JSON.
	Wrong atomic.Int32
	// Duplicates repeats the previous page's last item at the start of each page.
	Duplicates atomic.Bool
	// MaxBatch refuses card-status batches larger than this with 413 (0: 1000).
	MaxBatch atomic.Int32
}

// Sim is the simulated card center.
type Sim struct {
	// Faults are injected into every answer.
	Faults Faults

	mu       sync.Mutex
	feeds    map[string][]json.RawMessage
	statuses map[string]string
	cursors  map[string][]string // the cursors asked of each feed, in order
	paged    chan struct{}       // closed at the next page served
	pages    int64               // pages served (under mu, with paged)
	asked    atomic.Int64
	srv      *http.Server
	ln       net.Listener
}

// New returns an empty card center.
func New() *Sim {
	return &Sim{feeds: map[string][]json.RawMessage{}, statuses: map[string]string{}, cursors: map[string][]string{}, paged: make(chan struct{})}
}

// Pages counts the pages of the feeds served.
func (s *Sim) Pages() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages
}

// NextPage returns a channel closed when the card center has served its
// next page of a feed.
func (s *Sim) NextPage() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paged
}

// Cursors returns the cursors asked of a feed ("applications" or
// "production", the API's paths), in the order the pages were asked.
func (s *Sim) Cursors(feed string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cursors[feed]...)
}

// AddApplications appends applications to the feed.
func (s *Sim) AddApplications(apps ...cardcenter.Application) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range apps {
		b, _ := json.Marshal(a)
		s.feeds["applications"] = append(s.feeds["applications"], b)
	}
}

// AddProgress appends production steps to the feed.
func (s *Sim) AddProgress(steps ...cardcenter.Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range steps {
		b, _ := json.Marshal(p)
		s.feeds["production"] = append(s.feeds["production"], b)
	}
}

// SetStatus sets the status of a person's card (unset: normal).
func (s *Sim) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[id] = status
}

// Asked counts the ID numbers asked about.
func (s *Sim) Asked() int64 { return s.asked.Load() }

// Start serves on addr.
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

// URL is the base URL.
func (s *Sim) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving.
func (s *Sim) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// ServeHTTP answers the card center's API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := s.Faults.Slow.Load(); d > 0 {
		select {
		case <-time.After(time.Duration(d)):
		case <-r.Context().Done():
			return
		}
	}
	if s.Faults.Down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	if s.Faults.Wrong.Load() > 0 && s.Faults.Wrong.Add(-1) >= 0 {
		fmt.Fprint(w, "<html>系统繁忙</html>")
		return
	}
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/api/v1/applications" || r.URL.Path == "/api/v1/production"):
		s.page(w, r, strings.TrimPrefix(r.URL.Path, "/api/v1/"))
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/card-status":
		s.status(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) page(w http.ResponseWriter, r *http.Request, feed string) {
	cursor := r.URL.Query().Get("cursor")
	start, _ := strconv.Atoi(cursor)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 10000 {
		limit = 500
	}
	s.mu.Lock()
	s.cursors[feed] = append(s.cursors[feed], cursor)
	all := s.feeds[feed]
	start = min(max(start, 0), len(all))
	end := min(start+limit, len(all))
	items := append([]json.RawMessage(nil), all[start:end]...)
	if s.Faults.Duplicates.Load() && start > 0 {
		items = append([]json.RawMessage{all[start-1]}, items...)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(cardcenter.Page{Items: items, NextCursor: strconv.Itoa(end), More: end < len(all)})
	s.mu.Lock()
	s.pages++
	close(s.paged)
	s.paged = make(chan struct{})
	s.mu.Unlock()
}

func (s *Sim) status(w http.ResponseWriter, r *http.Request) {
	var req cardcenter.StatusRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&req); err != nil {
		http.Error(w, `{"code":"bad_body"}`, http.StatusBadRequest)
		return
	}
	limit := int(s.Faults.MaxBatch.Load())
	if limit == 0 {
		limit = 1000
	}
	if len(req.IDNumbers) > limit {
		http.Error(w, `{"code":"batch_too_large"}`, http.StatusRequestEntityTooLarge)
		return
	}
	s.asked.Add(int64(len(req.IDNumbers)))
	ans := cardcenter.StatusAnswer{Statuses: make([]cardcenter.CardStatus, len(req.IDNumbers))}
	s.mu.Lock()
	for i, id := range req.IDNumbers {
		st, ok := s.statuses[id]
		if !ok {
			st = cardcenter.StatusNormal
		}
		ans.Statuses[i] = cardcenter.CardStatus{IDNumber: id, Status: st}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// Generate returns n applications of persons of the synthetic list of
// seed (every step-th), made on day: about half 敬老卡 at a window or
// online, half 社保卡 (一卡通 for most of them) through the sscard channel.
// A 社保卡 carries its bank (the card center's bank-type code, which is
// the bank's CNAPS code) and its account at that bank, which is not the
// account of the person's list line, and for a third of them not even at
// the same bank.
func Generate(n int, seed uint64, day string, step int) []cardcenter.Application {
	step = max(step, 1)
	g := synth.New(seed)
	r := rand.New(rand.NewPCG(seed, 0xca7d))
	out := make([]cardcenter.Application, 0, n)
	for i := 0; len(out) < n; i++ {
		p := g.Next()
		if i%step != 0 {
			continue
		}
		a := cardcenter.Application{ID: fmt.Sprintf("A%s%06d", strings.ReplaceAll(day, "-", ""), len(out)+1), IDNumber: p.ID, Name: p.Name,
			AppliedOn: day, District: p.Division}
		if r.IntN(2) == 0 {
			a.CardType, a.Channel = cardcenter.SeniorCard, []string{"window", "online", "community"}[r.IntN(3)]
		} else {
			a.CardType, a.Channel, a.Yikatong = cardcenter.SocialSecurityCard, "sscard", r.IntN(10) < 8
			bank := p.Bank
			if r.IntN(3) == 0 {
				bank = (bank + 1 + r.IntN(len(synth.Banks)-1)) % len(synth.Banks)
			}
			a.BankCode, a.Account = synth.Banks[bank].CNAPS, CardAccount(r, bank)
		}
		out = append(out, a)
	}
	return out
}

// CardAccount returns a 19-digit card number of bank (an index of
// synth.Banks): its BIN, random digits and a Luhn check digit.
func CardAccount(r *rand.Rand, bank int) string {
	acct := []byte(synth.Banks[bank].BIN)
	for len(acct) < 18 {
		acct = append(acct, byte('0'+r.IntN(10)))
	}
	sum := 0
	for i := len(acct) - 1; i >= 0; i-- { // the check digit will double the last
		d := int(acct[i] - '0')
		if (len(acct)-i)%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return string(append(acct, byte('0'+(10-sum%10)%10)))
}

// Production returns the production steps (制卡) of apps as the card
// center reports them, in the order of their times, and the stage each
// application ends at: about a quarter each stay applied, or end
// accepted, produced or issued, each step after the one before it (a step
// comes some applications after its own); one issued card in ten is
// reported before its produced step, as a partner's late batch does.
func Production(apps []cardcenter.Application, seed uint64, day string) ([]cardcenter.Progress, map[string]string) {
	r := rand.New(rand.NewPCG(seed, 0x57e9))
	base, _ := time.ParseInLocation("2006-01-02", day, clock.Shanghai)
	type timed struct {
		at int
		p  cardcenter.Progress
	}
	var all []timed
	final := make(map[string]string, len(apps))
	stages := []string{"applied", "accepted", "produced", "issued"}
	lag := []int{0, 5, 40, 120} // how many applications later each step comes
	for i, a := range apps {
		end := r.IntN(len(stages))
		final[a.ID] = stages[end]
		for k := 1; k <= end; k++ {
			at := i + lag[k]
			if k == 3 && i%10 == 3 {
				at = i + lag[2] - 1 // issued reported before produced
			}
			all = append(all, timed{at, cardcenter.Progress{ID: a.ID, Stage: stages[k], At: base.Add(time.Duration(at) * time.Minute).Format(time.RFC3339)}})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	out := make([]cardcenter.Progress, len(all))
	for i, t := range all {
		out[i] = t.p
	}
	return out, final
}
