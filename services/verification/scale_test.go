package verification

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
)

// scaleEnv turns the scale measurements on; they take minutes.
const scaleEnv = "MZHUB_VERIFY_SCALE"

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// TestScaleFanOut submits 1,000 households at once to every partner
// (social security, housing fund, market supervision, 14 village banks;
// one in four also through the ministry platform: about 17,250 asks) with
// each partner's rate limit set, and reports the time to final per
// household (p50, p99, max), the partners' peak calls per second against
// their limits, CPU time and load. In process, SQLite state store.
func TestScaleFanOut(t *testing.T) {
	if os.Getenv(scaleEnv) == "" {
		t.Skip("set " + scaleEnv + "=1 to measure (minutes)")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv(scaleEnv)); err == nil && v > 1 {
		n = v
	}
	sm := startSims(t)
	cfgs := sm.config(30 * time.Second)
	limits := map[string]float64{"hrss": 100, "hpf": 100, "samr": 100, "ministry": 50, "bank": 50}
	cfgs.HRSS.Transport.RatePerSecond, cfgs.HRSS.Transport.RateBurst = limits["hrss"], 10
	cfgs.HPF.Transport.RatePerSecond, cfgs.HPF.Transport.RateBurst = limits["hpf"], 10
	cfgs.SAMR.Transport.RatePerSecond, cfgs.SAMR.Transport.RateBurst = limits["samr"], 10
	cfgs.Ministry.Transport.RatePerSecond, cfgs.Ministry.Transport.RateBurst = limits["ministry"], 5
	cfgs.Banks.Template.Transport.RatePerSecond, cfgs.Banks.Template.Transport.RateBurst = limits["bank"], 5
	cfg := testConfig()
	cfg.Deadline, cfg.CrossProvinceDeadline = 10*time.Minute, 10*time.Minute
	cfg.PollEvery = time.Second
	db := openDB(t, t.TempDir())
	s := newService(t, cfg, db, cfgs.partners(t), nil)
	cpu0, t0 := clock.ProcessCPU(), time.Now()
	ids := make([]string, 0, n)
	for i := range n {
		id, _, err := s.Submit(context.Background(), Request{Reference: fmt.Sprintf("S-%d", i), Household: fmt.Sprintf("H%d", i),
			Authorization: "A", Members: householdsim.Household(i, i%4 == 0)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	submitted := time.Since(t0)
	waitFinal(t, s, ids, 30*time.Minute)
	wall, cpu := time.Since(t0), clock.ProcessCPU()-cpu0
	rows, err := db.Query(`SELECT final_ms - created_ms FROM verif_requests`)
	if err != nil {
		t.Fatal(err)
	}
	var lat []int64
	for rows.Next() {
		var v int64
		_ = rows.Scan(&v)
		lat = append(lat, v)
	}
	rows.Close()
	slices.Sort(lat)
	var asks, lookups, answered int
	_ = db.QueryRow(`SELECT SUM(asks), SUM(lookups), SUM(CASE WHEN state = 'answered' THEN 1 ELSE 0 END) FROM verif_calls`).Scan(&asks, &lookups, &answered)
	t.Logf("%d households, %d asks + %d lookups, %d answered; submitted in %s, all final after %s; per household p50 %dms p99 %dms max %dms; CPU %s (%.0f µs/call); load %s",
		n, asks, lookups, answered, submitted.Round(time.Millisecond), wall.Round(time.Millisecond), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1],
		cpu, float64(cpu.Microseconds())/float64(asks+lookups), loadAvg())
	for p, l := range sm.ledgers() {
		limit := limits[p]
		if strings.HasPrefix(p, "villagebank.") {
			limit = limits["bank"]
		}
		if l.Repeated() != 0 {
			t.Errorf("%s asked again for %d keys", p, l.Repeated())
		}
		// A one-second window may see the burst on top of the rate.
		if peak := l.PeakPerSecond(); float64(peak) > limit+10 {
			t.Errorf("%s: %d calls in one second, limit %.0f/s", p, peak, limit)
		}
		if p == "hrss" || p == "villagebank.vb01" || p == "ministry" {
			t.Logf("%s: %d asks, peak %d/s (limit %.0f/s)", p, l.Total(), l.PeakPerSecond(), limit)
		}
	}
	if answered != asks-0 && answered == 0 {
		t.Fatal("nothing answered")
	}
}

// slowProvinces is the ministry platform as the waiting test needs it: it
// accepts every query and never answers, keeping no per-query state, so
// that the heap measured is the hub's alone.
type slowProvinces struct{ asks, polls atomic.Int64 }

func (*slowProvinces) ID() string { return "ministry" }

func (*slowProvinces) Scopes(ms []household.Member) []string { return (&ministry.Client{}).Scopes(ms) }

func (p *slowProvinces) Ask(_ context.Context, q household.Query) (household.Answer, error) {
	p.asks.Add(1)
	return household.Answer{PartnerRef: "T" + q.Key, Pending: true}, nil
}

func (p *slowProvinces) Lookup(_ context.Context, q household.Query) (household.Answer, bool, error) {
	p.polls.Add(1)
	return household.Answer{PartnerRef: "T" + q.Key, Pending: true}, true, nil
}

// TestScaleWaiting keeps 100,000 households waiting for cross-province
// answers (the platform accepts and never answers within the test) and
// reports the heap after each 20,000: it stays flat because the waiting
// calls live in the state store, not in memory.
func TestScaleWaiting(t *testing.T) {
	if os.Getenv(scaleEnv) == "" {
		t.Skip("set " + scaleEnv + "=1 to measure (minutes)")
	}
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv(scaleEnv)); err == nil && v > 1 {
		n = v * 100
	}
	cfg := testConfig()
	cfg.PollEvery = 10 * time.Minute
	cfg.CrossProvinceDeadline = time.Hour
	db := openDB(t, t.TempDir())
	p := &slowProvinces{}
	s := newService(t, cfg, db, []household.Partner{p}, nil)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	t0, cpu0 := time.Now(), clock.ProcessCPU()
	t.Logf("heap before: %.1f MiB", float64(heap())/(1<<20))
	step := n / 5
	for i := 0; i < n; i++ {
		members := []household.Member{householdsim.Household(i, true)[1]} // the member registered elsewhere
		if _, _, err := s.Submit(context.Background(), Request{Reference: fmt.Sprintf("W-%d", i), Household: fmt.Sprintf("H%d", i),
			Authorization: "A", Items: []string{ItemCrossProvince}, Members: members}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%step == 0 {
			// Let the outbox catch up: every call asked and waiting.
			for {
				ch := s.Changed()
				if p.asks.Load() >= int64(i+1) {
					break
				}
				<-ch
			}
			t.Logf("%6d requests waiting: heap %.1f MiB (after GC), goroutines %d, %s elapsed, CPU %s, load %s",
				i+1, float64(heap())/(1<<20), runtime.NumGoroutine(), time.Since(t0).Round(time.Second), clock.ProcessCPU()-cpu0, loadAvg())
		}
	}
	var waiting int
	_ = db.QueryRow(`SELECT COUNT(*) FROM verif_calls WHERE state = 'waiting'`).Scan(&waiting)
	if waiting != n {
		t.Fatalf("%d calls waiting, want %d", waiting, n)
	}
}
