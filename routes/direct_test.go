package routes_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
)

// onceSource emits one batch and reports what emit returned.
type onceSource struct {
	msgs []bus.Message
	res  chan error
}

func (s onceSource) Run(ctx context.Context, emit connectors.Emit) error {
	s.res <- emit(ctx, s.msgs...)
	<-ctx.Done()
	return nil
}

// runFeed runs the route feed (the once source emitting msgs, then steps,
// to the bus topic out) on b, its events going to evs, and returns what
// emit returned; the engine runs until the test ends.
func runFeed(t *testing.T, b bus.Bus, evs connectors.Events, metrics *prometheus.Registry, steps string, msgs []bus.Message) error {
	t.Helper()
	res := make(chan error, 1)
	once := connectors.Spec{
		Name: "once",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &struct{}{} },
			New: func(any, connectors.Deps) (connectors.Source, error) {
				return onceSource{msgs: append([]bus.Message(nil), msgs...), res: res}, nil
			},
		},
	}
	route := "id: feed\npartner: p\nflow: f\nfrom: {kind: once}\n" + steps + "to:\n  - kind: bus\n    config: {topic: out}\n"
	startDeps(t, map[string]string{"feed.yaml": route}, func(d *routes.Deps) { d.Bus, d.Events, d.Metrics = b, evs, metrics }, once)
	return <-res
}

// eventLog keeps the events the engine emits.
type eventLog struct {
	mu  sync.Mutex
	evs []monitor.Event
}

func (l *eventLog) Emit(ev monitor.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *eventLog) of(t monitor.EventType) []monitor.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []monitor.Event
	for _, ev := range l.evs {
		if ev.Type == t {
			out = append(out, ev)
		}
	}
	return out
}

// failingBus refuses publishes to one topic.
type failingBus struct {
	bus.Bus
	topic string
}

var errRefused = errors.New("bus refuses the publish")

func (b failingBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if topic == b.topic {
		return errRefused
	}
	return b.Bus.Publish(ctx, topic, msgs...)
}

// TestDirectToBusSink: a route with no steps whose one sink is a bus topic
// (the datasea feeds) publishes its source's messages straight to that
// topic inside emit, one hop instead of two: when emit returns they are on
// the sink's topic with their keys, idempotency keys and headers, nothing
// went through the route's own topic, and the received and sent events and
// metrics are those of the two hops. A route with a step still goes
// through its topic; a refused publish is the source's error, and each
// received event is followed by a rejected one.
func TestDirectToBusSink(t *testing.T) {
	msgs := []bus.Message{
		{Key: "p1", IdempotencyKey: "rec-1", Body: []byte(`{"n":1}`), Headers: map[string]string{"mzhub-source": "api", "mzhub-parent-id": "page-7"}},
		{Key: "p2", Body: []byte(`{"n":2}`)}, // no idempotency key: the route's digest of the body
	}
	cases := []struct {
		name, steps string
		refuse      bool
		// direct: the messages are on out when emit returns, never on the route's topic.
		direct bool
	}{
		{name: "no steps", direct: true},
		{name: "a step", steps: "steps:\n  - map: {fields: {n: body.n}}\n"},
		{name: "publish refused", refuse: true},
		{name: "a step, publish refused", steps: "steps:\n  - map: {fields: {n: body.n}}\n", refuse: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := routetest.NewBus()
			var b bus.Bus = mem
			if tc.refuse {
				// The topic the source's messages go to first: the sink's
				// without steps, the route's own with a step.
				topic := "out"
				if tc.steps != "" {
					topic = "route.feed"
				}
				b = failingBus{Bus: mem, topic: topic}
			}
			evs := &eventLog{}
			metrics := prometheus.NewRegistry()
			emitErr := runFeed(t, b, evs, metrics, tc.steps, msgs)
			if tc.refuse {
				if !errors.Is(emitErr, errRefused) {
					t.Fatalf("emit: %v, want the bus's refusal", emitErr)
				}
				// The received events were committed beside the refused
				// publish: each is followed by a rejected event, so no
				// exchange looks received and then lost.
				rec, rej := evs.of(monitor.Received), evs.of(monitor.Rejected)
				if len(rec) != len(msgs) || len(rej) != len(msgs) || len(evs.of(monitor.Sent)) != 0 {
					t.Fatalf("events: %d received, %d rejected, %d sent; want %d, %d, 0", len(rec), len(rej), len(evs.of(monitor.Sent)), len(msgs), len(msgs))
				}
				for i := range rej {
					if rej[i].ExchangeID != rec[i].ExchangeID || rej[i].Status != monitor.Error || rej[i].ErrorMessage == "" {
						t.Errorf("rejected event %d: %+v, want the exchange %q with the error", i, rej[i], rec[i].ExchangeID)
					}
				}
				return
			}
			if emitErr != nil {
				t.Fatal(emitErr)
			}
			onRoute := mem.Published("route.feed")
			if !tc.direct {
				if len(onRoute) != len(msgs) {
					t.Fatalf("%d messages on the route's topic, want %d (a route with steps runs them from there)", len(onRoute), len(msgs))
				}
				return
			}
			if len(onRoute) != 0 {
				t.Fatalf("%d messages went through the route's topic, want none (one hop)", len(onRoute))
			}
			out := mem.Published("out")
			if len(out) != len(msgs) {
				t.Fatalf("%d messages on out when emit returned, want %d", len(out), len(msgs))
			}
			for i, m := range out {
				if m.Key != msgs[i].Key || string(m.Body) != string(msgs[i].Body) || m.IdempotencyKey == "" {
					t.Errorf("out[%d] = key %q idem %q body %s, want key %q body %s and an idempotency key", i, m.Key, m.IdempotencyKey, m.Body, msgs[i].Key, msgs[i].Body)
				}
			}
			if out[0].IdempotencyKey != "rec-1" || out[0].Headers["mzhub-source"] != "api" {
				t.Errorf("out[0] idem %q headers %v: the source's idempotency key and headers are kept", out[0].IdempotencyKey, out[0].Headers)
			}
			rec, sent := evs.of(monitor.Received), evs.of(monitor.Sent)
			if len(rec) != len(msgs) || len(sent) != len(msgs) {
				t.Fatalf("%d received and %d sent events, want %d of each", len(rec), len(sent), len(msgs))
			}
			for _, ev := range append(rec, sent...) {
				if ev.Partner != "p" || ev.Flow != "f" || ev.Component != "routes/feed" || ev.ExchangeID == "" {
					t.Errorf("event %+v: want the route's partner, flow, component and the exchange id", ev)
				}
			}
			if len(sent[0].ParentIDs) != 1 || sent[0].ParentIDs[0] != "page-7" || sent[0].Attrs["sink"] == "" {
				t.Errorf("sent event %+v: want the parent (lineage) and the sink", sent[0])
			}
			for name, want := range map[string]float64{
				"mzhub_routes_received_total":          2,
				"mzhub_routes_sink_deliveries_total":   2,
				"mzhub_routes_handled_total":           2,
				"mzhub_routes_handle_duration_seconds": 1, // one series
			} {
				var got float64
				var err error
				if name == "mzhub_routes_handle_duration_seconds" {
					got = float64(testutil.CollectAndCount(metrics, name))
				} else if got, err = gatherSum(metrics, name); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// gatherSum sums the counter series named name.
func gatherSum(g prometheus.Gatherer, name string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// signalLog is an eventLog that closes got at the first received event.
type signalLog struct {
	eventLog
	once sync.Once
	got  chan struct{}
}

func (l *signalLog) Emit(ev monitor.Event) {
	l.eventLog.Emit(ev)
	if ev.Type == monitor.Received {
		l.once.Do(func() { close(l.got) })
	}
}

// waitBus holds a publish to topic until the received event is out.
type waitBus struct {
	bus.Bus
	topic string
	got   <-chan struct{}
}

func (b waitBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if topic == b.topic {
		select {
		case <-b.got:
		case <-time.After(10 * time.Second):
			return errors.New("no received event while the publish was in flight: the two commits ran one after the other")
		}
	}
	return b.Bus.Publish(ctx, topic, msgs...)
}

// TestPublishAndReceivedEventSideBySide: a source's publish and the
// durable spool of its received events are committed side by side, so a
// partner waits for one commit, not two in turn: here the publish does not
// finish until the received event is out, and emit still succeeds.
func TestPublishAndReceivedEventSideBySide(t *testing.T) {
	for _, steps := range []string{"", "steps:\n  - map: {fields: {n: body.n}}\n"} {
		mem := routetest.NewBus()
		evs := &signalLog{got: make(chan struct{})}
		topic := "out"
		if steps != "" {
			topic = "route.feed"
		}
		b := waitBus{Bus: mem, topic: topic, got: evs.got}
		if err := runFeed(t, b, evs, prometheus.NewRegistry(), steps, []bus.Message{{IdempotencyKey: "rec-1", Body: []byte(`{"n":1}`)}}); err != nil {
			t.Errorf("steps %q: emit: %v", steps, err)
		}
	}
}
