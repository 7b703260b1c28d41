package funeral

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
)

type loadResult struct {
	// cpu is the process's CPU time during the run (hub and load generator).
	cpu       time.Duration
	writes    int
	failed    int
	elapsed   time.Duration
	p50, p99  time.Duration
	stored    int64
	revisions int64
	changes   int64
}

// runLoad has `partners` partners push `each` hall updates concurrently,
// signed, over HTTP, against a file-backed SQLite store, and counts what
// was stored.
//
// With ratePerPartner > 0 each partner sends on its own schedule (open
// loop: a write every 1/rate seconds, latency measured from the scheduled
// time, so a slow hub cannot hide its queueing); with 0 each partner sends
// its next write as soon as the last one is answered (closed loop).
func runLoad(t testing.TB, partners, each int, ratePerPartner float64) loadResult {
	t.Helper()
	ctx := context.Background()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "load.db")
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ps []Partner
	for i := 0; i < partners; i++ {
		ps = append(ps, Partner{ID: fmt.Sprintf("funeral.load%03d", i), Name: "load", Role: RoleFuneralHome, Environments: []string{EnvProduction},
			AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{fmt.Sprintf("load%03d-k1", i)}})
	}
	reg, err := NewRegistry(ps)
	if err != nil {
		t.Fatal(err)
	}
	fc := DefaultConfig()
	fc.RatePerSecond = 0
	// MZHUB_FUNERAL_LOAD_WAIT sets funeral.group_commit_wait (e.g. 1ms).
	fc.GroupCommitWait, _ = time.ParseDuration(os.Getenv("MZHUB_FUNERAL_LOAD_WAIT"))
	api, err := NewAPI(ctx, fc, Deps{Store: db, Partners: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close(ctx)
	srv := httptest.NewServer(guarded(t, reg, nil, api))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: partners, MaxConnsPerHost: partners}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// The partners sign on their own machines: sign every request before
	// the clock starts so the hub's figures do not include the load
	// generator's signing (it still pays for its HTTP client).
	type signed struct {
		req  *http.Request
		body []byte
	}
	work := make([][]signed, partners)
	for p := 0; p < partners; p++ {
		key := fmt.Sprintf("load%03d-k1", p)
		for i := 0; i < each; i++ {
			// Each partner cycles over 5 halls, raising versions.
			path := "/partner/v1/halls/H-" + strconv.Itoa(i%5)
			body := []byte(fmt.Sprintf(`{"version":%d,"name":"长青厅","category":"large","capacity":300,"price_fen":%d,"status":"available"}`, i/5+1, 100000+i))
			req, _ := http.NewRequest("PUT", srv.URL+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if err := sign.Sign(req, key, testSecret(key)); err != nil {
				t.Fatal(err)
			}
			work[p] = append(work[p], signed{req, body})
		}
	}
	lat := make([][]time.Duration, partners)
	var failed sync.Map
	var wg, ready sync.WaitGroup
	// Every partner is ready before the clock starts; then they all go at
	// once (gun), whatever the machine's load.
	gun := make(chan struct{})
	var start time.Time
	for p := 0; p < partners; p++ {
		wg.Add(1)
		ready.Add(1)
		go func(p int) {
			defer wg.Done()
			var every time.Duration
			if ratePerPartner > 0 {
				every = time.Duration(float64(time.Second) / ratePerPartner)
			}
			ready.Done()
			<-gun
			// Spread the partners' first writes over one interval.
			first := start.Add(time.Duration(p) * every / time.Duration(partners))
			for i, w := range work[p] {
				due := first.Add(time.Duration(i) * every)
				if every > 0 {
					// Open loop: each write is due at its time on the wall
					// clock (what this measures), not after the last answer.
					time.Sleep(time.Until(due))
				}
				t0 := time.Now()
				if every > 0 && due.Before(t0) {
					t0 = due
				}
				resp, err := client.Do(w.req)
				d := time.Since(t0)
				if err != nil {
					failed.Store(fmt.Sprintf("%d/%d", p, i), err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Store(fmt.Sprintf("%d/%d", p, i), resp.Status)
					continue
				}
				lat[p] = append(lat[p], d)
			}
		}(p)
	}
	ready.Wait()
	cpu0 := clock.ProcessCPU()
	start = time.Now()
	close(gun)
	wg.Wait()
	res := loadResult{elapsed: time.Since(start), cpu: clock.ProcessCPU() - cpu0}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	failed.Range(func(k, v any) bool {
		res.failed++
		if res.failed <= 3 {
			t.Logf("write %v failed: %v", k, v)
		}
		return true
	})
	res.writes = len(all)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	ws := api.Store().WriterStats()
	t.Logf("writer: %d transactions for %d writes (%.1f per transaction), %s committing (%.0f µs per write)",
		ws.Batches, ws.Writes, float64(ws.Writes)/float64(max(ws.Batches, 1)), ws.CommitTime.Round(time.Millisecond),
		float64(ws.CommitTime.Microseconds())/float64(max(ws.Writes, 1)))
	_ = db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(revision), 0) FROM funeral_records`).Scan(&res.stored, &res.revisions)
	_ = db.QueryRow(`SELECT COUNT(*) FROM funeral_changes`).Scan(&res.changes)
	return res
}

func (r loadResult) check(t testing.TB, partners int) {
	t.Helper()
	if r.failed > 0 {
		t.Errorf("%d writes failed", r.failed)
	}
	if r.revisions != int64(r.writes) || r.changes != int64(r.writes) {
		t.Errorf("count in %d, stored revisions %d, change log %d", r.writes, r.revisions, r.changes)
	}
	if want := int64(partners * 5); r.stored != want && r.writes >= partners*5 {
		t.Errorf("%d records stored, want %d", r.stored, want)
	}
}

// TestConcurrentPartnersLoseNothing is the load test at a size CI can
// afford: 200 partners pushing at once, every write accounted for. Set
// MZHUB_FUNERAL_LOAD_EACH (writes per partner) and MZHUB_FUNERAL_LOAD_RATE
// (writes per second per partner, 0 for closed loop) for the figures in
// docs/performance.md.
func TestConcurrentPartnersLoseNothing(t *testing.T) {
	each, rate := 10, 0.0
	if s := os.Getenv("MZHUB_FUNERAL_LOAD_EACH"); s != "" {
		each, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("MZHUB_FUNERAL_LOAD_RATE"); s != "" {
		rate, _ = strconv.ParseFloat(s, 64)
	}
	r := runLoad(t, 200, each, rate)
	r.check(t, 200)
	t.Logf("200 partners × %d writes (rate %.0f/s each): %d ok in %s = %.0f writes/s, p50 %s, p99 %s; stored %d records, %d revisions, %d changes; CPU %s = %.0f µs per write (%.2f cores)",
		each, rate, r.writes, r.elapsed.Round(time.Millisecond), float64(r.writes)/r.elapsed.Seconds(), r.p50, r.p99, r.stored, r.revisions, r.changes,
		r.cpu.Round(time.Millisecond), float64(r.cpu.Microseconds())/float64(max(r.writes, 1)), r.cpu.Seconds()/r.elapsed.Seconds())
}

// BenchmarkConcurrentPartners reports throughput and p99 latency of 200
// partners pushing hall updates concurrently (docs/performance.md).
func BenchmarkConcurrentPartners(b *testing.B) {
	each := b.N/200 + 1
	b.ResetTimer()
	r := runLoad(b, 200, each, 0)
	b.StopTimer()
	r.check(b, 200)
	b.ReportMetric(float64(r.writes)/r.elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
}

// BenchmarkPutHandler measures the server side alone: signed hall updates
// served in parallel by the handler (signature check, schema validation,
// group commit to a file-backed SQLite store), without HTTP or a client
// competing for the CPU.
func BenchmarkPutHandler(b *testing.B) {
	ctx := context.Background()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "bench.db")
	db, err := store.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const partners = 200
	var ps []Partner
	for i := 0; i < partners; i++ {
		ps = append(ps, Partner{ID: fmt.Sprintf("funeral.load%03d", i), Name: "load", Role: RoleFuneralHome, Environments: []string{EnvProduction},
			AllowIPs: []string{"192.0.2.1"}, KeyIDs: []string{fmt.Sprintf("load%03d-k1", i)}})
	}
	reg, _ := NewRegistry(ps)
	fc := DefaultConfig()
	fc.RatePerSecond = 0
	api, err := NewAPI(ctx, fc, Deps{Store: db, Partners: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close(ctx)
	h := guarded(b, reg, nil, api)
	// Pre-sign the requests so only the server's work is timed.
	reqs := make([]*http.Request, b.N)
	bodies := make([][]byte, b.N)
	for i := range reqs {
		p := i % partners
		key := fmt.Sprintf("load%03d-k1", p)
		bodies[i] = []byte(fmt.Sprintf(`{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":%d,"status":"available"}`, 100000+i))
		r := httptest.NewRequest("PUT", fmt.Sprintf("/partner/v1/halls/H-%d", i/partners), bytes.NewReader(bodies[i]))
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(r, key, testSecret(key)); err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	var next int64
	var mu sync.Mutex
	b.SetParallelism(partners / 2) // 200 goroutines with GOMAXPROCS=2
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, reqs[i])
			if w.Code != 200 {
				b.Errorf("%d: %s", w.Code, w.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}
