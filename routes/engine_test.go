package routes_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type harness struct {
	t      *testing.T
	dir    string
	bus    *routetest.Bus
	db     *store.DB
	sinks  *routetest.Sinks
	events *monitortest.Recorder
	eng    *routes.Engine
	cancel context.CancelFunc
	done   chan error
}

// start writes the route files into a fresh directory and runs an engine on them.
func start(t *testing.T, files map[string]string) *harness {
	t.Helper()
	return startWith(t, files)
}

// startWith is start with extra connector kinds in the registry.
func startWith(t *testing.T, files map[string]string, extra ...connectors.Spec) *harness {
	t.Helper()
	return startDeps(t, files, nil, extra...)
}

// startDeps is startWith with a last say on the engine's dependencies.
func startDeps(t *testing.T, files map[string]string, adjust func(*routes.Deps), extra ...connectors.Spec) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), bus: routetest.NewBus(), db: storetest.Open(t), sinks: routetest.NewSinks(), events: &monitortest.Recorder{}}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(h.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := h.sinks.Registry()
	for _, s := range extra {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	deps := routes.Deps{
		Bus: h.bus, Store: h.db, Connectors: reg, Events: h.events, Metrics: prometheus.NewRegistry(),
		Logger: testLogger(t),
	}
	if adjust != nil {
		adjust(&deps)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: 100 * time.Millisecond}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(h.dir); err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- eng.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("Run did not return")
	}
	h.cancel = nil
}

func (h *harness) publish(topic string, bodies ...string) {
	h.t.Helper()
	for _, b := range bodies {
		if err := h.bus.Publish(context.Background(), topic, bus.Message{Body: []byte(b), Headers: map[string]string{}}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ROUTES_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// The engine tests run in testing/synctest bubbles (the test bus, the
// SQLite store and the engine all inside): retries, backoffs, reload and
// replay ticks run on the bubble's fake clock, and synctest.Wait tells when
// the engine has done all it can without time passing. No test waits on
// the wall clock, and none depends on how loaded the machine is.

// waitFor lets the engine run until cond holds: each round waits until the
// bubble is idle, then lets 10 ms of fake time pass (retries and backoffs
// move on). It fails after a minute of fake time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute (fake time)", what)
		}
		time.Sleep(10 * time.Millisecond) // fake time
	}
}

// elapse lets d of fake time pass with the engine running, then waits until
// the bubble is idle: whatever the engine was going to do in d is done.
func elapse(d time.Duration) {
	time.Sleep(d) // fake time
	synctest.Wait()
}

func bodies(ms []bus.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

const baseRoute = `id: r1
partner: test.partner
flow: test
from:
  kind: bus
  config: {topic: in}
errors:
  max_attempts: 3
  backoff: 10ms
  max_backoff: 50ms
`

func TestSteps(t *testing.T) {
	cases := []struct {
		name  string
		route string
		in    []string
		want  map[string][]string // recorder -> bodies (sorted compare when order not guaranteed)
	}{
		{
			name: "map fields",
			route: baseRoute + `steps:
  - map:
      fields:
        name: body.first + " " + body.last
        fen: int(body.yuan * 100)
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"first":"Li","last":"Lei","yuan":12.5}`},
			want: map[string][]string{"out": {`{"fen":1250,"name":"Li Lei"}`}},
		},
		{
			name: "mask and sha256 in expressions",
			route: baseRoute + `steps:
  - map:
      fields:
        id: mask(body.id)
        acct: mask(body.acct)
        token: sha256(body.id)[0:8]
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"id":"11010519491231002X","acct":"6216610000123456780"}`},
			want: map[string][]string{"out": {`{"acct":"***************6780","id":"110***********002X","token":"426695a0"}`}},
		},
		{
			name: "filter and validate",
			route: baseRoute + `steps:
  - filter: {expr: 'body.kind == "burial"'}
  - validate:
      required: [id]
      on_fail: drop
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"kind":"burial","id":"a"}`, `{"kind":"hall","id":"b"}`, `{"kind":"burial"}`},
			want: map[string][]string{"out": {`{"kind":"burial","id":"a"}`}},
		},
		{
			name: "split lines then switch",
			route: baseRoute + `concurrency: 1
steps:
  - split: {lines: true, skip_lines: 1, skip_empty: true}
  - switch:
      cases:
        - when: 'raw startsWith "E"'
          to: [errors]
      default: [good]
to:
  - name: good
    kind: record
    config: {name: good}
  - name: errors
    kind: record
    config: {name: bad}
`,
			in:   []string{"HEADER\nA1\nE2\n\nA3\n"},
			want: map[string][]string{"good": {"A1", "A3"}, "bad": {"E2"}},
		},
		{
			name: "split items",
			route: baseRoute + `concurrency: 1
steps:
  - split: {items: body.records}
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"records":[{"n":1},{"n":2}]}`},
			want: map[string][]string{"out": {`{"n":1}`, `{"n":2}`}},
		},
		{
			name: "dedupe by business key",
			route: baseRoute + `concurrency: 1
steps:
  - dedupe: {key: body.id}
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"id":"1","v":1}`, `{"id":"2","v":1}`, `{"id":"1","v":2}`},
			want: map[string][]string{"out": {`{"id":"1","v":1}`, `{"id":"2","v":1}`}},
		},
		{
			name: "split then aggregate",
			route: baseRoute + `concurrency: 1
steps:
  - split: {lines: true}
  - aggregate: {key: 'raw[0:1]', count: 2}
  - map: {body: 'join(map(body, {string(#)}), "+")'}
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{"a1\nb1\na2\nb2\n"},
			want: map[string][]string{"out": {"a1+a2", "b1+b2"}},
		},
		{
			name: "aggregate by count",
			route: baseRoute + `concurrency: 1
steps:
  - aggregate: {key: body.batch, count: 2}
  - map: {body: 'len(body)'}
to:
  - kind: record
    config: {name: out}
`,
			in:   []string{`{"batch":"a","n":1}`, `{"batch":"b","n":2}`, `{"batch":"a","n":3}`},
			want: map[string][]string{"out": {`2`}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, map[string]string{"r1.yaml": tc.route})
				h.publish("in", tc.in...)
				for rec, want := range tc.want {
					r := h.sinks.Recorder(rec)
					waitFor(t, rec+" deliveries", func() bool { return len(r.Got()) >= len(want) })
				}
				elapse(time.Second) // nothing more arrives
				for rec, want := range tc.want {
					got := bodies(h.sinks.Recorder(rec).Got())
					if strings.Join(got, "|") != strings.Join(want, "|") {
						t.Errorf("%s got %q, want %q", rec, got, want)
					}
				}
			})
		})
	}
}

func TestAggregateTimeoutIsDurable(t *testing.T) { synctest.Test(t, testAggregateTimeoutIsDurable) }

func testAggregateTimeoutIsDurable(t *testing.T) {
	route := baseRoute + `steps:
  - aggregate: {key: body.batch, timeout: 200ms}
to:
  - kind: record
    config: {name: out}
`
	h := start(t, map[string]string{"r1.yaml": route})
	h.publish("in", `{"batch":"a","n":1}`, `{"batch":"a","n":2}`)
	out := h.sinks.Recorder("out")
	waitFor(t, "aggregate", func() bool { return len(out.Got()) == 1 })
	var parts []map[string]any
	if err := json.Unmarshal(out.Got()[0].Body, &parts); err != nil || len(parts) != 2 {
		t.Fatalf("aggregate body %s: %v", out.Got()[0].Body, err)
	}
	var n int
	if err := h.db.QueryRow(`SELECT COUNT(*) FROM routes_aggregate_parts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("parts left: %d %v", n, err)
	}
}

func TestRetryThenDeliver(t *testing.T) { synctest.Test(t, testRetryThenDeliver) }

func testRetryThenDeliver(t *testing.T) {
	route := baseRoute + `to:
  - kind: record
    config: {name: out}
`
	h := start(t, map[string]string{"r1.yaml": route})
	out := h.sinks.Recorder("out")
	out.FailNext(2, errors.New("503"))
	h.publish("in", `{"a":1}`)
	waitFor(t, "delivery", func() bool { return len(out.Got()) == 1 && h.events.CountType(monitor.Sent) == 1 })
	if n := h.events.CountType(monitor.Retried); n != 2 {
		t.Errorf("retried events = %d, want 2", n)
	}
	if n := h.events.CountType(monitor.Sent); n != 1 {
		t.Errorf("sent events = %d, want 1", n)
	}
}

// deadLetterCase is one case of TestDeadLetterAndReplay.
type deadLetterCase struct {
	name     string
	err      error
	attempts int
	sealed   bool
}

func TestDeadLetterAndReplay(t *testing.T) {
	for _, tc := range []deadLetterCase{
		{"exhausted", errors.New("connection refused"), 3, false},
		{"permanent", connectors.Permanent(errors.New("400 bad request")), 1, false},
		// Bus and dead letters sealed at rest, as the hub runs them.
		{"sealed", errors.New("connection refused"), 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testDeadLetterAndReplay(t, tc) })
		})
	}
}

func testDeadLetterAndReplay(t *testing.T, tc deadLetterCase) {
	route := baseRoute + `to:
  - name: partner
    kind: record
    config: {name: out}
`
	ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key for route tests"))
	if err != nil {
		t.Fatal(err)
	}
	h := startDeps(t, map[string]string{"r1.yaml": route}, func(d *routes.Deps) {
		if tc.sealed {
			d.Bus, d.Sealer = bus.Sealed(d.Bus, ring), ring
		}
	})
	out := h.sinks.Recorder("out")
	out.FailNext(100, tc.err)
	h.publish("in", `{"id":"310101199001011234"}`)
	dlq := h.eng.DeadLetters()
	var dls []routes.DeadLetter
	waitFor(t, "dead letter", func() bool {
		dls, _ = dlq.List(context.Background(), routes.ListFilter{})
		return len(dls) == 1
	})
	d := dls[0]
	if d.Route != "r1" || d.Sink != "partner" || d.Attempts != tc.attempts || string(d.Message.Body) != `{"id":"310101199001011234"}` || d.Endpoint == "" {
		t.Fatalf("dead letter %+v", d)
	}
	if strings.Contains(d.Error, "310101199001011234") {
		t.Errorf("error not masked: %s", d.Error)
	}
	if h.events.CountType(monitor.DeadLettered) != 1 {
		t.Errorf("no dead_lettered event")
	}
	// At rest the ID number is only in the unsealed dead letters; a
	// store without the key lists them with the body still sealed.
	var stored string
	if err := h.db.QueryRow(`SELECT msg FROM routes_dead_letters WHERE id = ?`, d.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if got := strings.Contains(stored, "310101199001011234") || strings.Contains(stored, base64.StdEncoding.EncodeToString([]byte(`{"id":"310101199001011234"}`))); got == tc.sealed {
		t.Errorf("plaintext body at rest: %v, sealed %v", got, tc.sealed)
	}
	if tc.sealed {
		keyless, err := routes.NewDeadLetters(h.db).Get(context.Background(), d.ID)
		if err != nil || keyless.Message.Headers[bus.HeaderSealed] == "" || fieldcrypt.SealedKID(keyless.Message.Body) != "k1" {
			t.Errorf("without the key: %v, headers %v", err, keyless.Message.Headers)
		}
	}
	// Replay: audited, then carried out by the running engine.
	out.FailNext(0, nil)
	aud := &audittest.Recorder{}
	if err := dlq.Replay(context.Background(), d.ID, "ops.zhang", aud); err != nil {
		t.Fatal(err)
	}
	if recs := aud.Records(); len(recs) != 1 || recs[0].Actor != "user:ops.zhang" || recs[0].Action != "routes.dlq.replay" ||
		recs[0].Outcome != audit.OutcomeSuccess || !strings.Contains(recs[0].Detail, "route=") {
		t.Errorf("audit = %+v", recs)
	}
	waitFor(t, "replayed delivery", func() bool { return len(out.Got()) == 1 })
	if got := out.Got()[0]; string(got.Body) != `{"id":"310101199001011234"}` || got.Headers[bus.HeaderSealed] != "" {
		t.Errorf("replayed %q %v", got.Body, got.Headers)
	}
	waitFor(t, "replayed event", func() bool { return h.events.CountType(monitor.Replayed) == 1 })
	if err := dlq.Drop(context.Background(), d.ID, "ops.zhang", aud); err == nil {
		t.Error("drop of a replayed letter succeeded")
	}
}

// TestLedgerSkipsDelivered: a redelivery of a message already delivered to
// one sink (the other failed) does not reach the first sink again.
func TestLedgerSkipsDelivered(t *testing.T) { synctest.Test(t, testLedgerSkipsDelivered) }

func testLedgerSkipsDelivered(t *testing.T) {
	route := baseRoute + `to:
  - name: a
    kind: record
    config: {name: a}
  - name: b
    kind: record
    config: {name: b}
`
	h := start(t, map[string]string{"r1.yaml": route})
	a, b := h.sinks.Recorder("a"), h.sinks.Recorder("b")
	b.FailNext(2, errors.New("timeout"))
	h.publish("in", `{"x":1}`)
	waitFor(t, "b", func() bool { return len(b.Got()) == 1 })
	elapse(50 * time.Millisecond)
	if n := len(a.Got()); n != 1 {
		t.Fatalf("sink a got %d deliveries, want 1", n)
	}
	// The same business message published again (a partner resending it) is skipped too.
	h.publish("in", `{"x":1}`)
	elapse(time.Second) // retries included
	if len(a.Got()) != 1 || len(b.Got()) != 1 {
		t.Fatalf("resend delivered again: a=%d b=%d", len(a.Got()), len(b.Got()))
	}
}

// TestInDoubtIsNotResent: a pending ledger entry (a crash between send and
// record) with a sink that cannot be asked is dead-lettered, not resent.
func TestInDoubtIsNotResent(t *testing.T) { synctest.Test(t, testInDoubtIsNotResent) }

func testInDoubtIsNotResent(t *testing.T) {
	route := baseRoute + `idempotency_key: body.id
to:
  - name: a
    kind: record
    config: {name: a}
`
	h := start(t, map[string]string{"r1.yaml": route})
	waitFor(t, "route", func() bool { return len(h.eng.Routes()) == 1 })
	if _, err := h.db.Exec(`INSERT INTO routes_deliveries (route, sink, idem, state, updated_at) VALUES ('r1', 'a', 'k1', 'pending', 0)`); err != nil {
		t.Fatal(err)
	}
	h.publish("in", `{"id":"k1"}`)
	waitFor(t, "dead letter", func() bool {
		d, _ := h.eng.DeadLetters().List(context.Background(), routes.ListFilter{})
		return len(d) == 1 && strings.Contains(d[0].Error, "in doubt")
	})
	if n := len(h.sinks.Recorder("a").Got()); n != 0 {
		t.Fatalf("in-doubt message was sent %d times", n)
	}
}

func TestEnrichCaches(t *testing.T) { synctest.Test(t, testEnrichCaches) }

func testEnrichCaches(t *testing.T) {
	route := baseRoute + `concurrency: 1
steps:
  - enrich:
      via: {kind: record, config: {name: lookup}}
      request: body.code
      target: district
to:
  - kind: record
    config: {name: out}
`
	h := start(t, map[string]string{"r1.yaml": route})
	lk := h.sinks.Recorder("lookup")
	lk.Answer = func(m bus.Message) []byte { return []byte(`{"name":"Huangpu"}`) }
	h.publish("in", `{"code":"310101","n":1}`, `{"code":"310101","n":2}`)
	out := h.sinks.Recorder("out")
	waitFor(t, "out", func() bool { return len(out.Got()) == 2 })
	if got := string(out.Got()[0].Body); got != `{"code":"310101","district":{"name":"Huangpu"},"n":1}` {
		t.Errorf("enriched body %s", got)
	}
	if lk.Requests != 1 {
		t.Errorf("lookups = %d, want 1 (cached)", lk.Requests)
	}
}

// TestHotReload: a good change replaces the route; a bad file leaves the old
// route running and is reported.
func TestHotReload(t *testing.T) { synctest.Test(t, testHotReload) }

func testHotReload(t *testing.T) {
	v1 := baseRoute + `to:
  - kind: record
    config: {name: v1}
`
	h := start(t, map[string]string{"r1.yaml": v1})
	h.publish("in", `1`)
	waitFor(t, "v1", func() bool { return len(h.sinks.Recorder("v1").Got()) == 1 })

	bad := baseRoute + `to:
  - kind: record
    confg: {name: v2}
`
	if err := os.WriteFile(filepath.Join(h.dir, "r1.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failure event", func() bool { return h.events.CountType(monitor.Failed) >= 1 })
	h.publish("in", `2`)
	waitFor(t, "v1 still running", func() bool { return len(h.sinks.Recorder("v1").Got()) == 2 })

	v2 := strings.Replace(v1, "name: v1", "name: v2", 1)
	if err := os.WriteFile(filepath.Join(h.dir, "r1.yaml"), []byte(v2), 0o600); err != nil {
		t.Fatal(err)
	}
	elapse(400 * time.Millisecond) // four reload ticks
	h.publish("in", `3`)
	waitFor(t, "v2", func() bool { return len(h.sinks.Recorder("v2").Got()) == 1 })
	if n := len(h.sinks.Recorder("v1").Got()); n != 2 {
		t.Errorf("v1 got %d after reload", n)
	}
	if err := os.Remove(filepath.Join(h.dir, "r1.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route stopped", func() bool { return len(h.eng.Routes()) == 0 })
}

func TestBackoff(t *testing.T) {
	j := 0.2
	p := routes.ErrorPolicy{Backoff: time.Second, MaxBackoff: 10 * time.Second, Jitter: &j}
	for _, tc := range []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{3, 0, 3200 * time.Millisecond},
		{4, 1, 9600 * time.Millisecond},
		{5, 0.5, 10 * time.Second},
		{30, 1, 10 * time.Second},
	} {
		if got := routes.BackoffDelay(p, tc.attempt, tc.u); got != tc.want {
			t.Errorf("attempt %d u %v: %v, want %v", tc.attempt, tc.u, got, tc.want)
		}
	}
}

func ExampleEngine() {
	fmt.Println("see docs/routes.md")
	// Output: see docs/routes.md
}

// TestLoadKeepsGoodFiles: a bad file at start is reported, the good ones
// run, and the bad one runs once it is fixed.
func TestLoadKeepsGoodFiles(t *testing.T) { synctest.Test(t, testLoadKeepsGoodFiles) }

func testLoadKeepsGoodFiles(t *testing.T) {
	good := baseRoute + "to:\n  - kind: record\n    config: {name: good}\n"
	bad := strings.Replace(good, "id: r1", "id: r2", 1) + "bogus: 1\n"
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(good), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600)
	sinks := routetest.NewSinks()
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: 50 * time.Millisecond}, routes.Deps{Bus: routetest.NewBus(), Store: storetest.Open(t), Connectors: sinks.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	err = eng.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("Load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	waitFor(t, "good route", func() bool { return strings.Join(eng.Routes(), ",") == "r1" })
	_ = os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(strings.Replace(bad, "bogus: 1\n", "", 1)), 0o600)
	waitFor(t, "fixed route", func() bool { return strings.Join(eng.Routes(), ",") == "r1,r2" })
	cancel()
	<-done
}

// TestScheduleSource: a schedule source emits a message per interval, each
// with its own idempotency key.
func TestScheduleSource(t *testing.T) { synctest.Test(t, testScheduleSource) }

func testScheduleSource(t *testing.T) {
	route := `id: tick
from:
  kind: schedule
  config: {every: 30ms, body: '{"poll":"datasea"}', headers: {flow: deaths}}
to:
  - kind: record
    config: {name: ticks}
`
	h := start(t, map[string]string{"tick.yaml": route})
	rec := h.sinks.Recorder("ticks")
	waitFor(t, "three ticks", func() bool { return len(rec.Got()) >= 3 })
	got := rec.Got()
	if got[0].IdempotencyKey == got[1].IdempotencyKey || got[0].Headers["flow"] != "deaths" || string(got[0].Body) != `{"poll":"datasea"}` {
		t.Fatalf("ticks: %+v", got[:2])
	}
}

// TestRouteMovesBetweenFiles: an id moved from one file to another in one
// change ends up running from the new file.
func TestRouteMovesBetweenFiles(t *testing.T) { synctest.Test(t, testRouteMovesBetweenFiles) }

func testRouteMovesBetweenFiles(t *testing.T) {
	r := baseRoute + "to:\n  - kind: record\n    config: {name: %s}\n"
	h := start(t, map[string]string{"b.yaml": fmt.Sprintf(r, "old")})
	waitFor(t, "route", func() bool { return len(h.eng.Routes()) == 1 })
	// a.yaml (read first) takes the id while b.yaml still holds it.
	if err := os.WriteFile(filepath.Join(h.dir, "a.yaml"), []byte(fmt.Sprintf(r, "new")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	elapse(600 * time.Millisecond) // six reload ticks: the move takes two
	h.publish("in", `{"x":1}`)
	waitFor(t, "delivery from the moved route", func() bool { return len(h.sinks.Recorder("new").Got()) == 1 })
}

// TestReplayOnOneReplica: replays are carried out by the replica holding
// the "routes.replay" lease only. While another replica holds it, this
// engine leaves a requested replay alone; once it is released, this engine
// takes the lease and replays.
func TestReplayOnOneReplica(t *testing.T) { synctest.Test(t, testReplayOnOneReplica) }

func testReplayOnOneReplica(t *testing.T) {
	route := baseRoute + `to:
  - name: partner
    kind: record
    config: {name: out}
`
	ctx := context.Background()
	shared := storetest.Open(t)
	other, err := lease.New(ctx, shared, lease.Options{Node: "other", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := other.TryAcquire(ctx, "routes.replay"); !ok || err != nil {
		t.Fatalf("other replica: %v %v", ok, err)
	}
	el, err := lease.New(ctx, shared, lease.Options{Node: "this", TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := startDeps(t, map[string]string{"r1.yaml": route}, func(d *routes.Deps) { d.Store, d.Leases = shared, el })
	out := h.sinks.Recorder("out")
	out.FailNext(100, connectors.Permanent(errors.New("400 bad request")))
	h.publish("in", `{"n":1}`)
	dlq := routes.NewDeadLetters(shared)
	var dls []routes.DeadLetter
	waitFor(t, "dead letter", func() bool {
		dls, _ = dlq.List(ctx, routes.ListFilter{})
		return len(dls) == 1
	})
	out.FailNext(0, nil)
	if err := dlq.Replay(ctx, dls[0].ID, "ops.zhang", &audittest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	elapse(2500 * time.Millisecond) // fake time: this engine's replay loop ran twice
	if n := len(out.Got()); n != 0 {
		t.Fatalf("replayed %d times while another replica held the lease", n)
	}
	if err := other.Release(ctx, "routes.replay"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay by this replica", func() bool { return len(out.Got()) == 1 })
	if d, err := dlq.Get(ctx, dls[0].ID); err != nil || d.State != routes.ReplayedState {
		t.Errorf("state %q, %v", d.State, err)
	}
}

// TestBusDeadLetterInDoubt: a message the bus itself dead-letters (its
// deliveries cut or crashed until it gave up) while a sink still holds its
// pending claim is dead-lettered as in doubt, so that a replay does not
// resend it blindly; without a claim it is an ordinary dead letter.
func TestBusDeadLetterInDoubt(t *testing.T) { synctest.Test(t, testBusDeadLetterInDoubt) }

func testBusDeadLetterInDoubt(t *testing.T) {
	route := baseRoute + `idempotency_key: body.id
to:
  - name: a
    kind: record
    config: {name: a}
`
	h := start(t, map[string]string{"r1.yaml": route})
	waitFor(t, "route", func() bool { return len(h.eng.Routes()) == 1 })
	if _, err := h.db.Exec(`INSERT INTO routes_deliveries (route, sink, idem, state, updated_at) VALUES ('r1', 'a', 'k1', 'pending', 0)`); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		msg := bus.Message{IdempotencyKey: k, Body: []byte(`{"id":"` + k + `"}`), Headers: map[string]string{bus.HeaderDeadLetterCause: "processing deadline exceeded", bus.HeaderDeadLetterAttempts: "5"}}
		if err := h.bus.Publish(context.Background(), "in.dlq", msg); err != nil {
			t.Fatal(err)
		}
	}
	var got []routes.DeadLetter
	waitFor(t, "dead letters", func() bool {
		got, _ = h.eng.DeadLetters().List(context.Background(), routes.ListFilter{})
		return len(got) == 2
	})
	codes := map[string]string{}
	for _, d := range got {
		codes[d.Message.IdempotencyKey] = d.Code
	}
	if codes["k1"] != routes.CodeInDoubt || codes["k2"] != "exhausted" {
		t.Errorf("codes %v, want k1 in_doubt (a pending claim), k2 exhausted", codes)
	}
}

func TestSkipKeepsRoutesFromStarting(t *testing.T) { synctest.Test(t, testSkipKeepsRoutesFromStarting) }

// testSkipKeepsRoutesFromStarting: a route Deps.Skip holds back is not
// started (its messages wait on the bus), is listed with the reason and
// still drawn (Definitions); the others run.
func testSkipKeepsRoutesFromStarting(t *testing.T) {
	off := strings.Replace(baseRoute, "id: r1", "id: off", 1) + "to:\n  - kind: record\n    config: {name: off}\n"
	off = strings.Replace(off, "topic: in", "topic: in-off", 1)
	on := baseRoute + "to:\n  - kind: record\n    config: {name: on}\n"
	h := startDeps(t, map[string]string{"off.yaml": off, "on.yaml": on}, func(d *routes.Deps) {
		d.Skip = func(r *routes.Route) string {
			if r.ID == "off" {
				return "its partner is not configured"
			}
			return ""
		}
	})
	h.publish("in", `{"a":1}`)
	h.publish("in-off", `{"a":2}`)
	waitFor(t, "the running route's delivery", func() bool { return len(h.sinks.Recorder("on").Got()) == 1 })
	if got := h.sinks.Recorder("off").Got(); len(got) != 0 {
		t.Fatalf("the skipped route delivered %d", len(got))
	}
	if s := h.eng.Skipped(); len(s) != 1 || s["off"] != "its partner is not configured" {
		t.Fatalf("skipped: %v", s)
	}
	if r := h.eng.Routes(); len(r) != 1 || r[0] != "r1" {
		t.Fatalf("running: %v", r)
	}
	var ids []string
	for _, r := range h.eng.Definitions() {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "off,r1" {
		t.Fatalf("definitions: %v", ids)
	}
}
