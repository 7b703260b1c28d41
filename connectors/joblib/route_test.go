package joblib_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var routeSecret = []byte("0123456789abcdef0123456789abcdef")

// routeEnv runs the route engine on route files that use the joblib kind
// against the portal simulator.
type routeEnv struct {
	t      *testing.T
	sim    *joblibsim.Sim
	keyDir string
	dir    string
	bus    *routetest.Bus
	db     *store.DB
	events *monitortest.Recorder
	cancel context.CancelFunc
	done   chan error
	// partners is handed to the engine as connectors.Deps.Partners.
	partners any
}

func newRouteEnv(t *testing.T, opts joblibsim.Options) *routeEnv {
	t.Helper()
	opts.KeyID, opts.Secret, opts.Dept = "k1", routeSecret, "SHMZJ"
	sim, err := joblibsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	e := &routeEnv{t: t, sim: sim, keyDir: t.TempDir(), bus: routetest.NewBus(), db: storetest.Open(t), events: &monitortest.Recorder{}}
	if err := keys.NewFile(e.keyDir).Put(context.Background(), "portal/signing", routeSecret); err != nil {
		t.Fatal(err)
	}
	return e
}

// portal is the endpoint configuration every test route uses.
func (e *routeEnv) portal(indent string) string {
	return fmt.Sprintf("base_url: %s\n%skey_id: k1\n%skey_dir: %s\n%stimeout: 2s\n%sbreaker_open: 200ms", e.sim.URL(), indent, indent, e.keyDir, indent, indent)
}

// start runs the engine on the given route files.
func (e *routeEnv) start(files map[string]string) {
	e.t.Helper()
	e.dir = e.t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(body), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	reg := connectors.NewRegistry()
	spec, err := connectors.Builtin().Lookup(joblib.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		e.t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: e.bus, Store: e.db, Connectors: reg,
		Events: e.events, Metrics: prometheus.NewRegistry(), Partners: e.partners})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := eng.Load(e.dir); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- eng.Run(ctx) }()
	e.t.Cleanup(e.stop)
}

func (e *routeEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		e.t.Error("the engine did not stop")
	}
	e.cancel = nil
}

// waitFor polls cond until it holds or a minute passes.
func (e *routeEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRouteSourcePullsApplicationsByCursor(t *testing.T) {
	e := newRouteEnv(t, joblibsim.Options{Seed: 3})
	e.sim.AddApplications(25)
	e.sim.SetFaults(joblibsim.Faults{DuplicatePages: true, WrongRecords: 3})
	route := `id: portal-applications
description: new applications from the job library onto the bus
partner: portal.joblib
flow: case-pull
from:
  kind: joblib
  config:
    feed: applications
    page_size: 10
    every: 50ms
    ` + e.portal("    ") + `
to:
  - kind: bus
    config: {topic: portal.applications}
`
	e.start(map[string]string{"portal-applications.yaml": route})
	byKind := func() (map[string]bool, int) {
		apps, refused := map[string]bool{}, 0
		for _, m := range e.bus.Published("portal.applications") {
			switch m.Headers[joblib.HeaderRecord] {
			case "application":
				var a joblib.Application
				if err := json.Unmarshal(m.Body, &a); err != nil {
					t.Fatal(err)
				}
				if m.IdempotencyKey != "applications/"+a.ApplicationID || m.Key != a.ApplicationID {
					t.Fatalf("keys %q %q for %s", m.IdempotencyKey, m.Key, a.ApplicationID)
				}
				apps[a.ApplicationID] = true
			case "refused":
				if m.Headers[joblib.HeaderReason] == "" {
					t.Fatal("a refused record without its reason")
				}
				refused++
			}
		}
		return apps, refused
	}
	e.waitFor("25 applications and 3 refused records", func() bool { a, r := byKind(); return len(a) == 25 && r == 3 })
	var cursor string
	if err := e.db.QueryRow(`SELECT value FROM joblib_cursors WHERE name = 'SHMZJ/applications'`).Scan(&cursor); err != nil || cursor == "" {
		t.Fatalf("cursor %q, %v", cursor, err)
	}
	// Later applications are pulled from the cursor.
	e.sim.AddApplications(5)
	e.waitFor("30 applications", func() bool { a, _ := byKind(); return len(a) == 30 })
	if e.events.Count(func(ev monitor.Event) bool { return ev.Type == monitor.Fetched && ev.Partner == joblib.PartnerJobLib }) == 0 {
		t.Fatal("no fetched event")
	}
}

func nodesBatch(t *testing.T, ids []string, seq int) []byte {
	t.Helper()
	names := []string{"", joblib.NodePreReview, joblib.NodeAccepted}
	results := []string{"", joblib.ResultPass, joblib.ResultAccepted}
	b := joblib.Batch{Op: joblib.OpNodes}
	for _, id := range ids {
		b.Nodes = append(b.Nodes, joblib.Node{ApplicationID: id, Seq: seq, Node: names[seq], Result: results[seq], Dept: "SHMZJ",
			At: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)})
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (e *routeEnv) nodesRoute() string {
	return `id: portal-status
description: status nodes to the job library
partner: portal.joblib
flow: status-push
from:
  kind: bus
  config: {topic: portal.nodes}
to:
  - kind: joblib
    config:
      op: nodes
      ` + e.portal("      ") + `
errors:
  max_attempts: 20
  backoff: 50ms
  max_backoff: 200ms
`
}

// TestRouteSinkInDoubtIsCheckedNotResent: a call the portal applied but
// answered 500, or answered without an item, is in doubt; the engine asks
// the portal's query before sending again, and nothing reaches it twice.
func TestRouteSinkInDoubtIsCheckedNotResent(t *testing.T) {
	for _, f := range []joblibsim.Faults{{FailAfterApply: 1}, {DropResult: 1}, {FailNext: 2}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			e := newRouteEnv(t, joblibsim.Options{})
			ids := e.sim.AddApplications(6)
			e.sim.SetFaults(f)
			e.start(map[string]string{"portal-status.yaml": e.nodesRoute()})
			ctx := context.Background()
			if err := e.bus.Publish(ctx, "portal.nodes", bus.Message{Key: "b1", IdempotencyKey: "nodes/b1", Body: nodesBatch(t, ids, 1)}); err != nil {
				t.Fatal(err)
			}
			e.waitFor("every node delivered", func() bool {
				for _, id := range ids {
					if len(e.sim.Nodes(id)) != 1 {
						return false
					}
				}
				return e.events.CountType(monitor.Sent)+e.events.CountType(monitor.Reconciled) > 0
			})
			if d := e.sim.Duplicates.Load(); d != 0 {
				t.Fatalf("%d nodes sent again that the portal had", d)
			}
			if f.FailNext == 0 && e.events.CountType(monitor.Reconciled) == 0 {
				t.Fatal("the delivery in doubt was not settled through the portal's query")
			}
		})
	}
}

// TestRouteSinkRefusedRecordsDeadLettered: a node the portal refuses is a
// permanent failure with the portal's reason; it is dead-lettered, not
// retried.
func TestRouteSinkRefusedRecordsDeadLettered(t *testing.T) {
	e := newRouteEnv(t, joblibsim.Options{})
	ids := e.sim.AddApplications(2)
	e.start(map[string]string{"portal-status.yaml": e.nodesRoute()})
	// 受理 before 预审: the portal answers out of order, then (预审 sent) takes it.
	ctx := context.Background()
	if err := e.bus.Publish(ctx, "portal.nodes", bus.Message{Key: ids[0], IdempotencyKey: "nodes/late", Body: nodesBatch(t, ids[:1], 2)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a retry of the node out of order", func() bool { return e.events.CountType(monitor.Retried) > 0 })
	if err := e.bus.Publish(ctx, "portal.nodes", bus.Message{Key: "other", IdempotencyKey: "nodes/first", Body: nodesBatch(t, ids[:1], 1)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("both nodes at the portal", func() bool { return len(e.sim.Nodes(ids[0])) == 2 })
	// A node of an application the portal does not know is refused.
	if err := e.bus.Publish(ctx, "portal.nodes", bus.Message{Key: "x", IdempotencyKey: "nodes/unknown", Body: nodesBatch(t, []string{"SBZZ26120299999"}, 1)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the refused node dead-lettered", func() bool { return e.events.CountType(monitor.DeadLettered) == 1 })
	for _, ev := range e.events.Events() {
		if ev.Type == monitor.DeadLettered && (ev.ErrorClass != "permanent" || !strings.Contains(ev.ErrorMessage, "refused")) {
			t.Fatalf("dead letter %+v", ev)
		}
	}
}

var (
	_ routes.Replier       = (*joblib.Sink)(nil)
	_ routes.AnswerChecker = (*joblib.Sink)(nil)
)

// hubClients stands for the hub's partner directory: the portal client
// the hub built from its configuration.
type hubClients struct{ c *joblib.Client }

func (h hubClients) PartnerClient(id string) (any, error) {
	if id != joblib.PartnerPortal {
		return nil, fmt.Errorf("partner %s is not configured", id)
	}
	return h.c, nil
}

func (e *routeEnv) hubClient() {
	e.t.Helper()
	ep := joblib.Endpoint{BaseURL: e.sim.URL(), KeyID: "k1"}
	ep.Timeout, ep.BreakerFailures, ep.BreakerOpen = 2*time.Second, 5, 200*time.Millisecond
	c, err := joblib.NewClient("SHMZJ", ep, ep, routeSecret, routeSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	e.partners = hubClients{c}
}

const replyRoute = `id: portal-nodes
description: status nodes to the job library, answered per record
partner: portal.joblib
flow: status-push
from:
  kind: bus
  config: {topic: portal.out.nodes}
reply_to: portal.answers
to:
  - kind: joblib
    config:
      partner: portal
      op: nodes
errors:
  max_attempts: 20
  backoff: 50ms
  max_backoff: 200ms
`

// answers decodes the answers published so far, by the request's key.
func (e *routeEnv) answers() map[string][]joblib.Answer {
	out := map[string][]joblib.Answer{}
	for _, m := range e.bus.Published("portal.answers") {
		if m.Headers[routes.HeaderReplyStatus] != "ok" {
			out[m.Headers[routes.HeaderReplyOf]] = append(out[m.Headers[routes.HeaderReplyOf]], joblib.Answer{Op: "failed"})
			continue
		}
		a, err := joblib.DecodeAnswer(m.Body)
		if err != nil {
			e.t.Fatal(err)
		}
		out[m.Headers[routes.HeaderReplyOf]] = append(out[m.Headers[routes.HeaderReplyOf]], a)
	}
	return out
}

// TestRouteReplyAnswersEveryRecord: through the hub's portal client
// (partner: portal), a batch is answered on reply_to with every record's
// outcome — delivered, out of order, refused with the portal's reason —
// once per request.
func TestRouteReplyAnswersEveryRecord(t *testing.T) {
	e := newRouteEnv(t, joblibsim.Options{})
	ids := e.sim.AddApplications(3)
	e.hubClient()
	e.start(map[string]string{"portal-nodes.yaml": replyRoute})
	ctx := context.Background()
	var b joblib.Batch
	for _, body := range [][]byte{nodesBatch(t, ids[:2], 1), nodesBatch(t, ids[2:], 2), nodesBatch(t, []string{"SBZZ26120299999"}, 1)} {
		var x joblib.Batch
		if err := json.Unmarshal(body, &x); err != nil {
			t.Fatal(err)
		}
		b.Op = x.Op
		b.Nodes = append(b.Nodes, x.Nodes...)
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, "portal.out.nodes", bus.Message{Key: "b1", IdempotencyKey: "out/1", Body: body}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the answer", func() bool { return len(e.answers()["out/1"]) == 1 })
	a := e.answers()["out/1"][0]
	want := map[string]string{ids[0] + "#1": joblib.OutcomeOK, ids[1] + "#1": joblib.OutcomeOK, ids[2] + "#2": joblib.OutcomeOutOfOrder,
		"SBZZ26120299999#1": joblib.OutcomeUnknown}
	if len(a.Results) != len(want) || a.Checked {
		t.Fatalf("answer %+v", a)
	}
	for i, r := range a.Results {
		if r.ID != b.Nodes[i].Key() || r.Outcome != want[r.ID] {
			t.Fatalf("result %d: %+v, want %s %s", i, r, b.Nodes[i].Key(), want[b.Nodes[i].Key()])
		}
		if r.Outcome == joblib.OutcomeUnknown && r.Reason == "" {
			t.Fatal("a refused record without the portal's reason")
		}
	}
	if n := len(e.sim.Nodes(ids[0])); n != 1 {
		t.Fatalf("%d nodes at the portal", n)
	}
}

// TestRouteReplyInDoubtAnsweredByQuery: a call the portal applied but
// answered 500 (or without an item) is answered from the portal's query
// (mzhub-reply-via lookup), never sent again.
func TestRouteReplyInDoubtAnsweredByQuery(t *testing.T) {
	for _, f := range []joblibsim.Faults{{FailAfterApply: 1}, {DropResult: 1}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			e := newRouteEnv(t, joblibsim.Options{})
			ids := e.sim.AddApplications(4)
			e.sim.SetFaults(f)
			e.hubClient()
			e.start(map[string]string{"portal-nodes.yaml": replyRoute})
			if err := e.bus.Publish(context.Background(), "portal.out.nodes", bus.Message{Key: "b1", IdempotencyKey: "out/1", Body: nodesBatch(t, ids, 1)}); err != nil {
				t.Fatal(err)
			}
			e.waitFor("the answer", func() bool { return len(e.answers()["out/1"]) == 1 })
			var via string
			for _, m := range e.bus.Published("portal.answers") {
				via = m.Headers[routes.HeaderReplyVia]
			}
			a := e.answers()["out/1"][0]
			if via != "lookup" || !a.Checked || len(a.Results) != 4 {
				t.Fatalf("via %q, answer %+v", via, a)
			}
			for _, r := range a.Results {
				if r.Outcome != joblib.OutcomeDuplicate {
					t.Fatalf("result %+v", r)
				}
			}
			if d := e.sim.Duplicates.Load(); d != 0 {
				t.Fatalf("%d nodes sent again that the portal had", d)
			}
		})
	}
}

func TestPartnerConfigRules(t *testing.T) {
	c := joblib.DefaultSinkConfig()
	c.Op, c.Partner = joblib.OpNodes, "portal"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.BaseURL = "https://portal.example/"
	if err := c.Validate(); err == nil {
		t.Fatal("partner with base_url accepted")
	}
	c.BaseURL, c.Partner = "", "bank"
	if err := c.Validate(); err == nil {
		t.Fatal("partner bank accepted")
	}
	c.Partner = "portal"
	if _, err := joblib.NewSink(c, connectors.Deps{}); err == nil {
		t.Fatal("partner portal without the hub's clients accepted")
	}
}

func TestDecodeBatchRules(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"not json", `{`},
		{"unknown key", `{"op":"nodes","nodes":[],"x":1}`},
		{"no records", `{"op":"nodes"}`},
		{"two ops", `{"op":"push","push":{"batch_id":"B1","persons":[{"person_ref":"p"}]},"payouts":[{"payout_id":"P1"}]}`},
		{"bad node", `{"op":"nodes","nodes":[{"application_id":"x","node_seq":1,"node":"prereview","dept":"D","at":"2026-12-02T10:00:00Z"}]}`},
		{"unknown op", `{"op":"fax","nodes":[{"application_id":"x"}]}`},
		{"push without persons", `{"op":"push","push":{"batch_id":"B1","persons":[]}}`},
	} {
		if _, err := joblib.DecodeBatch([]byte(tc.body)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"op":"nodes","nodes":[{"application_id":"SBLN26120200001","node_seq":1,"node":"prereview","result":"pass","dept":"D","at":"2026-12-02T10:00:00Z"}]}`))
	f.Add([]byte(`{"op":"confirm","confirmations":[{"case_id":"C1","decision":"refuse","dept":"D","at":"2026-12-02T10:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := joblib.DecodeBatch(body)
		if err != nil {
			return
		}
		if _, err := json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRouteReplyStopBetweenSendAndAnswer: the engine stops while the
// portal holds a call it has applied (the hub killed mid-call). The next
// run asks the portal's query instead of sending again, and publishes the
// batch's answer once.
func TestRouteReplyStopBetweenSendAndAnswer(t *testing.T) {
	e := newRouteEnv(t, joblibsim.Options{})
	ids := e.sim.AddApplications(5)
	e.sim.SetFaults(joblibsim.Faults{HoldAfterApply: 1})
	e.hubClient()
	e.start(map[string]string{"portal-nodes.yaml": replyRoute})
	if err := e.bus.Publish(context.Background(), "portal.out.nodes", bus.Message{Key: "b1", IdempotencyKey: "out/1", Body: nodesBatch(t, ids, 1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.sim.Held:
	case <-time.After(time.Minute):
		t.Fatal("nothing reached the portal")
	}
	e.stop()
	if n := len(e.answers()["out/1"]); n != 0 {
		t.Fatalf("%d answers before the restart", n)
	}
	if err := e.bus.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.bus = e.bus.Reopen()
	e.start(map[string]string{"portal-nodes.yaml": replyRoute})
	e.waitFor("the answer", func() bool { return len(e.answers()["out/1"]) == 1 })
	a := e.answers()["out/1"][0]
	if !a.Checked || len(a.Results) != len(ids) {
		t.Fatalf("answer %+v", a)
	}
	if d := e.sim.Duplicates.Load(); d != 0 {
		t.Fatalf("%d nodes sent again that the portal had", d)
	}
	for _, id := range ids {
		if n := len(e.sim.Nodes(id)); n != 1 {
			t.Fatalf("%s: %d nodes", id, n)
		}
	}
}
