package routes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	monch "github.com/shanghai-mca/mzhub/monitor/store/clickhouse"
	monsqlite "github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
)

// countingStore counts the events a writer stores, passing them on to next
// when set.
type countingStore struct {
	n    atomic.Int64
	next monitor.Appender
}

func (c *countingStore) Append(ctx context.Context, evs []monitor.Event) error {
	c.n.Add(int64(len(evs)))
	if c.next != nil {
		return c.next.Append(ctx, evs)
	}
	return nil
}

// loadResult is what one load run measured.
type loadResult struct {
	// eventsPerMsg counts monitor events stored per delivered message.
	eventsPerMsg     float64
	clients          int
	duration         time.Duration
	accepted, errors int64
	delivered        int64
	// drained is the time from the start until the last delivery.
	drained        time.Duration
	acceptP50      time.Duration
	acceptP99      time.Duration
	e2eP50, e2eP99 time.Duration
	heapMB         float64
	// cpuPerMsg is the process CPU time (user+system: hub, load generator
	// and partner together) per delivered message.
	cpuPerMsg time.Duration
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d clients, %v: %d accepted (%.0f/s), %d errors, %d delivered in %v (%.0f/s end to end); request→202 p50 %v p99 %v; request→partner p50 %v p99 %v; heap %.0f MB; CPU %v per message (hub, load generator and partner together)",
		r.clients, r.duration, r.accepted, float64(r.accepted)/r.duration.Seconds(), r.errors, r.delivered, r.drained.Round(time.Millisecond), float64(r.delivered)/r.drained.Seconds(),
		r.acceptP50.Round(time.Microsecond*100), r.acceptP99.Round(time.Microsecond*100), r.e2eP50.Round(time.Microsecond*100), r.e2eP99.Round(time.Microsecond*100), r.heapMB, r.cpuPerMsg.Round(time.Microsecond))
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// runLoad runs the route HTTP in → (local bus, durable) → map → HTTP out
// with clients concurrent clients for d, on loopback, and measures.
//
// events names where the route's monitor events go: "" nowhere (no
// writer), "writer" a monitor writer whose store only takes the batches
// (the writer's own cost), "sqlite" a writer into a SQLite event store in
// the same process (the embedded profile), "clickhouse" a writer into the
// ClickHouse server named by MZHUB_TEST_CLICKHOUSE (the cluster profile).
// sealed seals the bodies on the bus (bus.seal_bodies).
func runLoad(t testing.TB, clients int, d time.Duration, idempotentSink bool, events string, sealed bool) loadResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The partner: records the end-to-end latency from the time in the body.
	var (
		mu         sync.Mutex
		e2e        = make([]time.Duration, 0, 1<<20)
		delivered  atomic.Int64
		deliveries = make(chan struct{}, 1)
	)
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			T int64 `json:"t"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		lat := time.Since(time.Unix(0, m.T))
		mu.Lock()
		e2e = append(e2e, lat)
		mu.Unlock()
		delivered.Add(1)
		select { // wake the drain wait
		case deliveries <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer partner.Close()

	scfg := store.DefaultConfig()
	scfg.Path = filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b bus.Bus
	if os.Getenv("MZHUB_ROUTES_LOAD_BUS") == "memory" {
		// For comparison only: the in-memory test bus (not durable).
		b = routetest.NewBus()
	} else {
		lb, err := local.Open(ctx, db, bus.DefaultConfig().Local, nil)
		if err != nil {
			t.Fatal(err)
		}
		b = lb
	}
	if sealed {
		ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key for the route load"))
		if err != nil {
			t.Fatal(err)
		}
		b = bus.Sealed(b, ring)
	}
	defer b.Close(context.Background())
	// The route's HTTP source says when it accepts requests (Running);
	// the clients start then, not after a pause.
	reg := connectors.NewRegistry()
	sources := make(chan *httpx.Source, 1)
	spec := httpx.Spec()
	newSource := spec.Source.New
	spec.Source.New = func(cfg any, deps connectors.Deps) (connectors.Source, error) {
		s, err := newSource(cfg, deps)
		if hs, ok := s.(*httpx.Source); ok {
			select {
			case sources <- hs:
			default:
			}
		}
		return s, err
	}
	_ = reg.Register(spec)
	dir := t.TempDir()
	route := fmt.Sprintf(`id: load
partner: test.partner
flow: load
from:
  kind: http
key: string(body.person)
idempotency_key: string(body.client) + "-" + string(body.seq)
concurrency: 128
max_backlog: 2000
steps:
  - map:
      fields:
        t: body.t
        person: body.person
        seq: body.seq
        amount_fen: int(body.amount_yuan * 100)
to:
  - name: partner
    kind: http
    idempotent: %v
    config:
      url: %s/in
      status_url: %s/status/{key}
      timeout: 5s
`, idempotentSink, partner.URL, partner.URL)
	if err := os.WriteFile(filepath.Join(dir, "load.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	var sink connectors.Events
	var emitted *countingStore
	if events != "" {
		emitted = &countingStore{}
		var st monitor.Appender = emitted
		switch events {
		case "sqlite":
			ms, err := monsqlite.Open(ctx, filepath.Join(t.TempDir(), "monitor.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ms.Close()
			emitted.next = ms
		case "clickhouse":
			o := monch.Options{Addr: os.Getenv("MZHUB_TEST_CLICKHOUSE"), Database: fmt.Sprintf("mzhub_routes_load_%d", time.Now().UnixNano())}
			ms, err := monch.Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ms.Close(); _ = monch.DropDatabase(context.Background(), o) }()
			emitted.next = ms
		}
		w := monitor.NewWriter(st, monitor.WriterOptions{Metrics: monitor.NewMetrics(nil)})
		wctx, wcancel := context.WithCancel(context.Background())
		wdone := make(chan struct{})
		go func() { _ = w.Run(wctx); close(wdone) }()
		defer func() {
			wcancel()
			<-wdone
			_ = w.Close(context.Background())
		}()
		sink = w
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: b, Store: db, Connectors: reg,
		Metrics: prometheus.NewRegistry(), Events: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- eng.Run(ctx) }()
	hub := httptest.NewServer(eng.Handler())
	defer hub.Close()
	select {
	case src := <-sources:
		select {
		case <-src.Running():
		case err := <-runDone:
			t.Fatalf("engine stopped before the route ran: %v", err)
		}
	case err := <-runDone:
		t.Fatalf("engine stopped before building the route: %v", err)
	}

	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		accepted, errs atomic.Int64
		lats           = make([][]time.Duration, clients)
		wg             sync.WaitGroup
	)
	stop := time.Now().Add(d)
	start := time.Now()
	cpu0 := clock.ProcessCPU()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			lats[c] = make([]time.Duration, 0, 8192)
			for seq := 0; time.Now().Before(stop); seq++ {
				t0 := time.Now()
				// person: the ordering key, one per payment as in a disbursement list.
				body := []byte(`{"client":` + strconv.Itoa(c) + `,"seq":` + strconv.Itoa(seq) + `,"person":` + strconv.Itoa(c*10_000_000+seq) + `,"amount_yuan":123.45,"t":` + strconv.FormatInt(t0.UnixNano(), 10) + `}`)
				resp, err := hc.Post(hub.URL+"/routes/load", "application/json", bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs.Add(1)
					continue
				}
				lats[c] = append(lats[c], time.Since(t0))
				accepted.Add(1)
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Let the consumers drain (woken by each delivery, bounded), then
	// measure the heap.
	drain := time.After(30 * time.Second)
drained:
	for delivered.Load() < accepted.Load() {
		select {
		case <-deliveries:
		case <-drain:
			break drained
		}
	}
	drained := time.Since(start)
	cpu := clock.ProcessCPU() - cpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var evs int64
	if emitted != nil {
		evs = emitted.n.Load()
	}
	cancel()
	<-runDone
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	mu.Lock()
	e := append([]time.Duration(nil), e2e...)
	mu.Unlock()
	return loadResult{
		clients: clients, duration: elapsed, drained: drained, accepted: accepted.Load(), errors: errs.Load(), delivered: delivered.Load(),
		acceptP50: pct(all, 0.50), acceptP99: pct(all, 0.99), e2eP50: pct(e, 0.50), e2eP99: pct(e, 0.99),
		heapMB:       float64(ms.HeapInuse) / (1 << 20),
		cpuPerMsg:    cpu / time.Duration(max(1, delivered.Load())),
		eventsPerMsg: float64(evs) / float64(max(1, delivered.Load())),
	}
}

// TestLoadHTTPRoute prints the figures of docs/performance.md (## Routes).
// It runs when MZHUB_ROUTES_LOAD is set (seconds of load, e.g. 10).
func TestLoadHTTPRoute(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("MZHUB_ROUTES_LOAD"))
	if secs <= 0 {
		t.Skip("MZHUB_ROUTES_LOAD not set: skipping the load run (set it to the seconds of load, e.g. 10)")
	}
	for _, idem := range []bool{false, true} {
		r := runLoad(t, 200, time.Duration(secs)*time.Second, idem, os.Getenv("MZHUB_ROUTES_LOAD_EVENTS"), false)
		t.Logf("sink idempotent=%v: %s", idem, r)
		if r.delivered != r.accepted {
			t.Errorf("delivered %d of %d accepted", r.delivered, r.accepted)
		}
	}
}

// BenchmarkHTTPRoute reports the route's throughput and latencies at 200
// clients for a short, bounded run: without monitor events, with a monitor
// writer whose store only takes the batches (the writer's overhead on the
// route), with a writer into SQLite (the embedded profile's whole cost) and,
// when MZHUB_TEST_CLICKHOUSE names a server, into ClickHouse.
func BenchmarkHTTPRoute(b *testing.B) {
	kinds := []string{"none", "writer", "sqlite"}
	if os.Getenv("MZHUB_TEST_CLICKHOUSE") != "" {
		kinds = append(kinds, "clickhouse")
	}
	// And with no events but the bus sealing bodies (bus.seal_bodies).
	kinds = append(kinds, "none/sealed")
	for _, events := range kinds {
		b.Run("events="+events, func(b *testing.B) {
			kind, sealed := events, events == "none/sealed"
			if kind == "none" || sealed {
				kind = ""
			}
			r := runLoad(b, 200, 3*time.Second, false, kind, sealed)
			b.ReportMetric(float64(r.accepted)/r.duration.Seconds(), "accepted/s")
			b.ReportMetric(float64(r.delivered)/r.drained.Seconds(), "delivered/s")
			b.ReportMetric(float64(r.acceptP99.Microseconds())/1000, "p99-accept-ms")
			b.ReportMetric(float64(r.e2eP99.Microseconds())/1000, "p99-e2e-ms")
			b.ReportMetric(float64(r.cpuPerMsg.Microseconds()), "cpu-us/msg")
			b.ReportMetric(r.eventsPerMsg, "events/msg")
		})
	}
}
