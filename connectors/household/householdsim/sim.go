// Package householdsim holds what the verification partners' simulators
// share: the synthetic population they all answer about (deterministic
// from the ID number, so every simulated partner agrees and tests can
// compute what the hub should find), the injectable faults (slow, down,
// wrong answers, duplicated facts), and the ledger that keeps each answer
// under its idempotency key and counts how often a key was asked.
package householdsim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Company is a registered company a person holds shares in.
type Company struct {
	// Name of the company.
	Name string
	// CreditCode is the unified social credit code (18 characters).
	CreditCode string
	// CapitalFen is the registered capital in fen.
	CapitalFen int64
	// SharePermille is the person's share in thousandths.
	SharePermille int64
	// Abnormal means the company is on the abnormal-operation list.
	Abnormal bool
}

// Person is what the simulated partners know about one ID number.
type Person struct {
	// Employer is empty when not employed.
	Employer string
	// WageFen is the monthly contribution wage base.
	WageFen int64
	// PensionFen is the monthly pension.
	PensionFen int64
	// NursingFeeFen is the monthly work-injury nursing fee.
	NursingFeeFen int64
	// HPFContributionFen is the monthly housing fund contribution (person's part).
	HPFContributionFen int64
	// HPFLoanRepaymentFen is the monthly housing fund loan repayment.
	HPFLoanRepaymentFen int64
	// Companies the person holds shares in.
	Companies []Company
	// Deposits by village bank code, in fen (absent: no account there).
	Deposits map[string]int64
}

// HPFRatePermille is the simulated person's housing fund contribution rate
// (7%): contribution = wage base × 7%.
const HPFRatePermille = 70

var employers = []string{"上海浦江机械有限公司", "上海申城物流有限公司", "上海东方餐饮管理有限公司", "上海徐汇社区服务中心", "上海临港电子科技有限公司"}

// BankCodes are the 14 simulated village banks.
var BankCodes = []string{"vb01", "vb02", "vb03", "vb04", "vb05", "vb06", "vb07", "vb08", "vb09", "vb10", "vb11", "vb12", "vb13", "vb14"}

// Profile returns the person behind an ID number. The same number always
// gives the same person.
func Profile(id string) Person {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15))
	var p Person
	switch k := r.IntN(10); {
	case k < 5:
		p.Employer = employers[r.IntN(len(employers))]
		p.WageFen = int64(3000+r.IntN(12000)) * 100
		p.HPFContributionFen = p.WageFen * HPFRatePermille / 1000
		if r.IntN(3) == 0 {
			p.HPFLoanRepaymentFen = int64(1500+r.IntN(5000)) * 100
		}
	case k < 8:
		p.PensionFen = int64(2500+r.IntN(4000)) * 100
	}
	if r.IntN(12) == 0 {
		p.NursingFeeFen = int64(800+r.IntN(1500)) * 100
	}
	if r.IntN(6) == 0 {
		n := 1 + r.IntN(2)
		for i := range n {
			p.Companies = append(p.Companies, Company{
				Name:          fmt.Sprintf("上海%s贸易有限公司", []string{"晨光", "汇丰源", "新沪", "锦程"}[r.IntN(4)]),
				CreditCode:    fmt.Sprintf("91310%03d%010d", r.IntN(1000), r.Int64N(1e10)),
				CapitalFen:    int64(10+r.IntN(490)) * 1_000_000,
				SharePermille: int64(100 + 100*i + r.IntN(400)),
				Abnormal:      r.IntN(5) == 0,
			})
		}
	}
	p.Deposits = map[string]int64{}
	for _, b := range BankCodes {
		if r.IntN(7) == 0 {
			p.Deposits[b] = int64(r.IntN(20_000_000)) + int64(r.IntN(100))
		}
	}
	return p
}

// Faults are injected into a simulator's answers. The zero value injects
// none. Fields are safe to change while the simulator runs.
type Faults struct {
	// Down answers every call 503.
	Down atomic.Bool
	// Delay holds each new answer this long after computing it
	// (nanoseconds; a slow partner); lookups are not delayed.
	Delay atomic.Int64
	mu    sync.Mutex
	// wrong is the share of answers that are wrong (a fact about a person
	// not asked about, a malformed amount): per mille.
	wrong int
	// dup is the share of answers that repeat a fact, per mille.
	dup int
	rng *rand.Rand
}

// SetRates sets the per-mille shares of wrong and duplicated answers.
func (f *Faults) SetRates(wrongPermille, dupPermille int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wrong, f.dup = wrongPermille, dupPermille
}

// Draw decides whether this answer is wrong and whether it repeats a fact.
func (f *Faults) Draw() (wrong, dup bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng == nil {
		f.rng = rand.New(rand.NewPCG(1, 2))
	}
	return f.rng.IntN(1000) < f.wrong, f.rng.IntN(1000) < f.dup
}

// Hold applies Down to one call: it answers 503 and returns false when
// the partner is down.
func (f *Faults) Hold(w http.ResponseWriter, r *http.Request) bool {
	if f.Down.Load() {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// Lag applies Delay to an answer the partner has already computed and
// kept: a slow partner whose caller may give up first, leaving the call in
// doubt at the hub (the answer is there under its key).
func (f *Faults) Lag(r *http.Request) {
	if d := time.Duration(f.Delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}

// Ledger keeps each answer under its idempotency key and counts asks.
type Ledger struct {
	mu      sync.Mutex
	answers map[string][]byte
	asks    map[string]int
	total   atomic.Int64
	dups    atomic.Int64
	meter   Meter
	notify  chan struct{}
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{answers: map[string][]byte{}, asks: map[string]int{}, notify: make(chan struct{}, 1)}
}

// Ask records an ask under key. When the key was answered before, it
// returns that answer and true (the partner's idempotency); otherwise make
// builds the answer, which is kept.
func (l *Ledger) Ask(key string, make func() []byte) ([]byte, bool) {
	l.total.Add(1)
	l.meter.Tick()
	l.mu.Lock()
	l.asks[key]++
	if l.asks[key] > 1 {
		l.dups.Add(1)
	}
	if b, ok := l.answers[key]; ok {
		l.mu.Unlock()
		l.signal()
		return b, true
	}
	l.mu.Unlock()
	b := make()
	l.mu.Lock()
	l.answers[key] = b
	l.mu.Unlock()
	l.signal()
	return b, false
}

// Put keeps an answer under key without counting an ask (asynchronous
// partners completing a query).
func (l *Ledger) Put(key string, b []byte) {
	l.mu.Lock()
	l.answers[key] = b
	l.mu.Unlock()
}

func (l *Ledger) signal() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Asked returns a channel that receives after asks (coalesced): the
// signal tests wait on.
func (l *Ledger) Asked() <-chan struct{} { return l.notify }

// Lookup returns the answer kept under key.
func (l *Ledger) Lookup(key string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.answers[key]
	return b, ok
}

// Total is the number of asks.
func (l *Ledger) Total() int64 { return l.total.Load() }

// Repeated is the number of asks for a key asked before.
func (l *Ledger) Repeated() int64 { return l.dups.Load() }

// Keys is the number of distinct keys asked.
func (l *Ledger) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.asks)
}

// PeakPerSecond is the most asks seen within one second.
func (l *Ledger) PeakPerSecond() int { return l.meter.Peak() }

// Meter finds the largest number of events within any one-second window.
type Meter struct {
	mu    sync.Mutex
	times []time.Time
	peak  int
}

// Tick records one event now.
func (m *Meter) Tick() {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.times = append(m.times, now)
	i := 0
	for i < len(m.times) && now.Sub(m.times[i]) >= time.Second {
		i++
	}
	m.times = m.times[i:]
	m.peak = max(m.peak, len(m.times))
}

// Peak returns the largest count within one second.
func (m *Meter) Peak() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}
