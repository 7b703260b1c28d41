package routes_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// The tests of this file run on real HTTP (a partner on httptest), outside
// synctest bubbles: they wait on signals (the partner's changes, the bus's
// acks, monitor events), each with a generous bound for a broken engine.

// doubtPartner is a non-idempotent partner with a status endpoint: it
// counts every POST per idempotency key on receipt (a second POST of a key
// is a second payment), may then hold the request (a slow partner: the
// client gives up, the partner has the message), and answers GET
// /status/{key}: 200 when it has the key, 404 when not, 503 while down.
type doubtPartner struct {
	mu      sync.Mutex
	counts  map[string]int
	posts   int
	changed chan struct{}
	// hold decides, for the n-th POST of a key, whether to hold it (nil: none).
	hold func(key string, n int) bool
	// held counts the requests being held; released are answered 201
	// when their index (order of holding) is even and release is closed.
	held    int
	release chan struct{}
	// statusDown makes the status endpoint answer 503.
	statusDown bool
}

func newDoubtPartner() *doubtPartner {
	return &doubtPartner{counts: map[string]int{}, changed: make(chan struct{}), release: make(chan struct{})}
}

func (p *doubtPartner) bumpLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *doubtPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		// Read the whole request first: then the server notices a client
		// that gives up (the request's context ends).
		_, _ = io.Copy(io.Discard, r.Body)
		k := r.Header.Get("Idempotency-Key")
		p.mu.Lock()
		p.counts[k]++
		p.posts++
		hold := p.hold != nil && p.hold(k, p.counts[k])
		idx := p.held
		if hold {
			p.held++
		}
		release := p.release
		p.bumpLocked()
		p.mu.Unlock()
		if hold {
			if idx%2 == 0 {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			} else {
				<-r.Context().Done()
				return
			}
		}
		w.WriteHeader(http.StatusCreated)
	case strings.HasPrefix(r.URL.Path, "/status/"):
		k := strings.TrimPrefix(r.URL.Path, "/status/")
		p.mu.Lock()
		n, down := p.counts[k], p.statusDown
		p.mu.Unlock()
		switch {
		case down:
			w.WriteHeader(http.StatusServiceUnavailable)
		case n == 0:
			w.WriteHeader(http.StatusNotFound)
		}
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

// set changes the partner's behaviour under its lock.
func (p *doubtPartner) set(f func(p *doubtPartner)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// wait blocks until cond (called under the lock) holds.
func (p *doubtPartner) wait(t *testing.T, what string, cond func(p *doubtPartner) bool) {
	t.Helper()
	late := time.After(time.Minute)
	for {
		p.mu.Lock()
		ok, ch := cond(p), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-late:
			t.Fatalf("partner: %s: not within a minute", what)
		}
	}
}

func (p *doubtPartner) stats() (distinct, posts int, dups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, n := range p.counts {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return len(p.counts), p.posts, dups
}

// doubtRig is a route from bus topic "in" to the partner, on an in-memory
// bus and a SQLite store that outlive the engines started on them.
type doubtRig struct {
	t       *testing.T
	bus     *watchedBus
	db      *store.DB
	dir     string
	partner *doubtPartner
	url     string
}

func newDoubtRig(t *testing.T, route func(url string) string) *doubtRig {
	p := newDoubtPartner()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	r := &doubtRig{t: t, bus: watch(routetest.NewBus()), db: storetest.Open(t), dir: t.TempDir(), partner: p, url: srv.URL}
	if err := os.WriteFile(filepath.Join(r.dir, "r1.yaml"), []byte(route(srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// engine is one run of the engine (a process of the hub).
type engineRun struct {
	eng     *routes.Engine
	events  *monitortest.Recorder
	metrics *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
}

// start runs an engine on the rig; drain bounds its stop.
func (r *doubtRig) start(drain time.Duration) *engineRun {
	r.t.Helper()
	reg := connectors.NewRegistry()
	if err := reg.Register(httpx.Spec()); err != nil {
		r.t.Fatal(err)
	}
	run := &engineRun{events: &monitortest.Recorder{}, metrics: prometheus.NewRegistry(), done: make(chan error, 1)}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1, DrainTimeout: drain}, routes.Deps{
		Bus: r.bus, Store: r.db, Connectors: reg, Events: run.events, Metrics: run.metrics, Logger: testLogger(r.t),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := eng.Load(r.dir); err != nil {
		r.t.Fatal(err)
	}
	run.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	run.cancel = cancel
	go func() { run.done <- eng.Run(ctx) }()
	r.t.Cleanup(func() { run.stop(r.t) })
	return run
}

// stop cancels the run (SIGTERM) and waits for Run to return.
func (run *engineRun) stop(t *testing.T) {
	if run.cancel == nil {
		return
	}
	run.cancel()
	run.cancel = nil
	select {
	case err := <-run.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Error("Run did not return within a minute of its cancel")
	}
}

// inDoubt reads mzhub_routes_in_doubt_total for an outcome.
func (run *engineRun) inDoubt(outcome string) float64 {
	fams, _ := run.metrics.Gather()
	var n float64
	for _, f := range fams {
		if f.GetName() != "mzhub_routes_in_doubt_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func (r *doubtRig) publish(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		msg := bus.Message{Body: []byte(fmt.Sprintf(`{"id":"pay-%d","amount_fen":%d}`, i, 100+i)), Headers: map[string]string{}}
		if err := r.bus.Publish(context.Background(), "in", msg); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *doubtRig) deadLetters() []routes.DeadLetter {
	d, err := routes.NewDeadLetters(r.db).List(context.Background(), routes.ListFilter{State: "all"})
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

// requireOnce checks that the partner has every one of n messages exactly once.
func (r *doubtRig) requireOnce(n int) {
	r.t.Helper()
	distinct, posts, dups := r.partner.stats()
	if len(dups) > 0 {
		r.t.Errorf("duplicates at the partner: %v", dups)
	}
	if distinct != n || posts != n {
		r.t.Errorf("partner has %d distinct messages in %d posts, want %d in %d", distinct, posts, n, n)
	}
}

func doubtRoute(concurrency, maxAttempts int, sink string) func(string) string {
	return func(url string) string {
		return fmt.Sprintf(`id: r1
partner: test.bank
flow: disbursement
from:
  kind: bus
  config: {topic: in}
idempotency_key: body.id
concurrency: %d
to:
  - name: bank
    kind: http
%s
errors:
  max_attempts: %d
  backoff: 10ms
  max_backoff: 100ms
`, concurrency, strings.ReplaceAll(sink, "URL", url), maxAttempts)
	}
}

// TestShutdownMidLoadSendsNothingTwice: a graceful stop (SIGTERM) in the
// middle of a load stops taking deliveries, lets those in flight finish
// until its deadline and cuts the rest; the cut ones stay in doubt and the
// next run asks the partner's status instead of sending them again. The
// partner ends with every message exactly once.
func TestShutdownMidLoadSendsNothingTwice(t *testing.T) {
	const n, concurrency = 200, 16
	r := newDoubtRig(t, doubtRoute(concurrency, 10, `    config:
      url: URL/pay
      status_url: URL/status/{key}
      timeout: 30s`))
	// After the first 40 payments, the partner holds every request: the
	// even ones until the test releases them (they finish during the
	// drain), the odd ones until the hub gives up (cut by the deadline
	// although the partner has them).
	r.partner.set(func(p *doubtPartner) { p.hold = func(string, int) bool { return p.posts > 40 } })
	r.publish(n)
	first := r.start(2 * time.Second)
	r.partner.wait(t, "every worker busy with a held request", func(p *doubtPartner) bool { return p.held == concurrency })
	first.cancel() // SIGTERM
	r.partner.set(func(p *doubtPartner) { close(p.release) })
	first.stop(t)
	_, posted, _ := r.partner.stats()
	if posted != 40+concurrency {
		t.Errorf("partner got %d posts by the stop, want %d: the stopping engine took new deliveries", posted, 40+concurrency)
	}
	if got := first.inDoubt("parked"); got < 1 {
		t.Errorf("no delivery was cut in doubt by the deadline (in_doubt parked = %v)", got)
	}
	if first.events.Count(func(ev monitor.Event) bool { return ev.Type == monitor.Failed && ev.ErrorClass == "in_doubt" }) == 0 {
		t.Error("no failed event of class in_doubt for the cut deliveries")
	}

	// The next run (a restarted hub) settles the cut ones by status.
	r.partner.set(func(p *doubtPartner) { p.hold = nil })
	second := r.start(2 * time.Second)
	r.bus.wait(t, "every message settled", time.Minute, func() bool { return r.bus.acked("in") == n })
	r.requireOnce(n)
	if got, want := second.inDoubt("delivered"), first.inDoubt("parked"); got != want {
		t.Errorf("settled by status: %v, want the %v cut in doubt", got, want)
	}
	if got := second.events.CountType(monitor.Reconciled); got == 0 {
		t.Error("no reconciled event for the deliveries settled by status")
	}
	if d := r.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters: %+v", d)
	}
}

// TestSlowSinkSettlesByStatus: a partner slower than the timeout has every
// message it was sent; each send ends in doubt (the default breaker opens
// on the timeouts) and the redelivery asks the status endpoint, which has
// its own breaker: every message settles without a second send.
func TestSlowSinkSettlesByStatus(t *testing.T) {
	n := int(httpx.DefaultSinkConfig().BreakerFailures) // every one sent before the breaker opens
	r := newDoubtRig(t, doubtRoute(16, 30, `    config:
      url: URL/pay
      status_url: URL/status/{key}
      timeout: 1s`))
	r.partner.set(func(p *doubtPartner) { p.hold = func(string, int) bool { return true } })
	run := r.start(time.Second)
	r.publish(n)
	r.bus.wait(t, "every message settled", time.Minute, func() bool { return r.bus.acked("in") == n })
	r.requireOnce(n)
	if d := r.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters: %d, first %+v", len(d), d[0])
	}
	if got := run.inDoubt("delivered"); got != float64(n) {
		t.Errorf("settled by status: %v, want %d", got, n)
	}
	// A further send finds the breaker open: refused before anything
	// left, so not in doubt (retried, never dead-lettered as in doubt).
	if got := run.inDoubt("parked"); got != float64(n) {
		t.Errorf("parked in doubt: %v, want %d", got, n)
	}
}

// TestInDoubtWithoutAnswer: what happens to a delivery in doubt the status
// endpoint cannot settle.
func TestInDoubtWithoutAnswer(t *testing.T) {
	slowFirst := func(p *doubtPartner) { p.hold = func(_ string, n int) bool { return n == 1 } }
	t.Run("no status_url: dead letter in doubt, not a resend; a replay resends marked", func(t *testing.T) {
		r := newDoubtRig(t, doubtRoute(4, 8, `    config:
      url: URL/pay
      timeout: 200ms`))
		r.partner.set(slowFirst)
		run := r.start(time.Second)
		r.publish(1)
		r.bus.wait(t, "dead-lettered", time.Minute, func() bool { return r.bus.acked("in") == 1 })
		d := r.deadLetters()
		if len(d) != 1 || d[0].Code != routes.CodeInDoubt || !strings.Contains(d[0].Error, "in doubt") || d[0].Attempts != 1 {
			t.Fatalf("dead letters %+v, want one in doubt after one attempt", d)
		}
		if _, posts, _ := r.partner.stats(); posts != 1 {
			t.Fatalf("partner got %d posts, want 1 (never resent blindly)", posts)
		}
		if run.events.Count(func(ev monitor.Event) bool {
			return ev.Type == monitor.DeadLettered && ev.ErrorClass == "in_doubt" && ev.ErrorCode == routes.CodeInDoubtSend
		}) != 1 {
			t.Error("no dead_lettered event of class in_doubt, code in_doubt_send")
		}
		// The operator's replay sends it again (nothing to ask), marked.
		replayed := run.events.Next(func(ev monitor.Event) bool { return ev.Type == monitor.Replayed })
		if err := run.eng.DeadLetters().Replay(context.Background(), d[0].ID, "ops.zhang", &audittest.Recorder{}); err != nil {
			t.Fatal(err)
		}
		ev := waitEvent(t, replayed)
		if ev.Attrs["resent_in_doubt"] != "true" || ev.Status != monitor.Warning {
			t.Errorf("replayed event %+v, want it marked resent_in_doubt", ev)
		}
		r.bus.wait(t, "replay settled", time.Minute, func() bool { return r.bus.acked("in") == 2 })
		if _, posts, _ := r.partner.stats(); posts != 2 {
			t.Errorf("partner got %d posts, want 2 (the operator's resend)", posts)
		}
	})
	t.Run("no status_url, resend_in_doubt: sent again", func(t *testing.T) {
		r := newDoubtRig(t, doubtRoute(4, 8, `    resend_in_doubt: true
    config:
      url: URL/pay
      timeout: 200ms`))
		r.partner.set(slowFirst)
		run := r.start(time.Second)
		r.publish(1)
		r.bus.wait(t, "settled", time.Minute, func() bool { return r.bus.acked("in") == 1 })
		if _, posts, _ := r.partner.stats(); posts != 2 {
			t.Errorf("partner got %d posts, want 2 (resent as the route allows)", posts)
		}
		if d := r.deadLetters(); len(d) != 0 {
			t.Errorf("dead letters: %+v", d)
		}
		if got := run.inDoubt("resent_unchecked"); got != 1 {
			t.Errorf("resent_unchecked = %v, want 1", got)
		}
	})
	t.Run("status endpoint down: in doubt until the last attempt; the replay asks it first", func(t *testing.T) {
		r := newDoubtRig(t, doubtRoute(4, 3, `    config:
      url: URL/pay
      status_url: URL/status/{key}
      timeout: 200ms`))
		r.partner.set(func(p *doubtPartner) { slowFirst(p); p.statusDown = true })
		run := r.start(time.Second)
		r.publish(1)
		r.bus.wait(t, "dead-lettered", time.Minute, func() bool { return r.bus.acked("in") == 1 })
		d := r.deadLetters()
		if len(d) != 1 || d[0].Code != routes.CodeInDoubt || d[0].Attempts != 3 {
			t.Fatalf("dead letters %+v, want one in doubt after 3 attempts", d)
		}
		if got := run.events.Count(func(ev monitor.Event) bool {
			return ev.Type == monitor.Retried && ev.ErrorCode == routes.CodeInDoubtStatusUnknown
		}); got != 1 {
			t.Errorf("retried events with code in_doubt_status_unknown: %d, want 1", got)
		}
		// The status endpoint is back; the replay asks it: the partner
		// has the message, so it settles without a second send.
		r.partner.set(func(p *doubtPartner) { p.statusDown = false })
		reconciled := run.events.Next(func(ev monitor.Event) bool { return ev.Type == monitor.Reconciled })
		if err := run.eng.DeadLetters().Replay(context.Background(), d[0].ID, "ops.zhang", &audittest.Recorder{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, reconciled)
		r.bus.wait(t, "replay settled", time.Minute, func() bool { return r.bus.acked("in") == 2 })
		r.requireOnce(1)
	})
}

func waitEvent(t *testing.T, ch <-chan monitor.Event) monitor.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(time.Minute):
		t.Fatal("event not within a minute")
		return monitor.Event{}
	}
}
