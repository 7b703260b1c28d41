package routes_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// The tests of this file run a request/answer route (reply_to) against a
// partner that answers queries and keeps each answer under its key. They
// wait on signals (the partner's and the bus's), never on time.

// quizPartner answers each query with a computed answer, keeps it under the
// query's idempotency key and counts the asks and lookups per key.
type quizPartner struct {
	mu      sync.Mutex
	asks    map[string]int
	lookups map[string]int
	kept    map[string]string
	changed chan struct{}
	// reject makes the partner refuse the query with a permanent error.
	reject func(body string) bool
}

func newQuizPartner() *quizPartner {
	return &quizPartner{asks: map[string]int{}, lookups: map[string]int{}, kept: map[string]string{}, changed: make(chan struct{})}
}

func (p *quizPartner) bumpLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// quizSink is the sink of kind "quiz": a Replier and an AnswerChecker.
type quizSink struct{ p *quizPartner }

func (s quizSink) Send(ctx context.Context, msg bus.Message) error {
	_, err := s.Reply(ctx, msg)
	return err
}

func (s quizSink) Reply(_ context.Context, msg bus.Message) (bus.Message, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reject != nil && p.reject(string(msg.Body)) {
		return bus.Message{}, connectors.Permanent(fmt.Errorf("quiz: refused %s", msg.Body))
	}
	p.asks[msg.IdempotencyKey]++
	p.kept[msg.IdempotencyKey] = "answer to " + string(msg.Body)
	p.bumpLocked()
	return bus.Message{Headers: map[string]string{"quiz": "yes"}, Body: []byte(p.kept[msg.IdempotencyKey])}, nil
}

func (s quizSink) Answer(_ context.Context, msg bus.Message) (bus.Message, bool, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookups[msg.IdempotencyKey]++
	p.bumpLocked()
	a, ok := p.kept[msg.IdempotencyKey]
	if !ok {
		return bus.Message{}, false, nil
	}
	return bus.Message{Headers: map[string]string{"quiz": "yes"}, Body: []byte(a)}, true, nil
}

type quizConfig struct {
	// Name is unused; the partner is the test's.
	Name string `yaml:"name"`
}

func quizSpec(p *quizPartner) connectors.Spec {
	return connectors.Spec{Name: "quiz", Summary: "test partner answering queries", Sink: &connectors.SinkSpec{
		NewConfig: func() any { return &quizConfig{} },
		New:       func(any, connectors.Deps) (connectors.Sink, error) { return quizSink{p}, nil },
	}}
}

// blockingBus blocks every publish to a topic while block is set, until
// the publisher's context ends (a process stopped between the partner's
// answer and its publication).
type blockingBus struct {
	bus.Bus
	topic   string
	mu      sync.Mutex
	block   bool
	blocked int
	changed chan struct{}
}

func (b *blockingBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	b.mu.Lock()
	if topic == b.topic && b.block {
		b.blocked++
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	b.mu.Unlock()
	return b.Bus.Publish(ctx, topic, msgs...)
}

type replyRig struct {
	t       *testing.T
	bus     *blockingBus
	mem     *routetest.Bus
	db      *store.DB
	dir     string
	partner *quizPartner
}

const replyRoute = `id: quiz
partner: test.quiz
flow: verification
from:
  kind: bus
  config: {topic: ask}
idempotency_key: body
reply_to: answers
concurrency: 8
to:
  - kind: quiz
errors:
  max_attempts: 5
  backoff: 10ms
  max_backoff: 50ms
`

func newReplyRig(t *testing.T, route string) *replyRig {
	mem := routetest.NewBus()
	r := &replyRig{t: t, mem: mem, bus: &blockingBus{Bus: mem, topic: "answers", changed: make(chan struct{})}, db: storetest.Open(t), dir: t.TempDir(), partner: newQuizPartner()}
	if err := os.WriteFile(filepath.Join(r.dir, "quiz.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replyRig) start(drain time.Duration) *engineRun {
	r.t.Helper()
	reg := connectors.NewRegistry()
	if err := reg.Register(quizSpec(r.partner)); err != nil {
		r.t.Fatal(err)
	}
	run := &engineRun{events: &monitortest.Recorder{}, done: make(chan error, 1)}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1, DrainTimeout: drain}, routes.Deps{
		Bus: r.bus, Store: r.db, Connectors: reg, Events: run.events, Logger: testLogger(r.t),
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

func (r *replyRig) ask(n int) {
	r.t.Helper()
	for i := range n {
		msg := bus.Message{Key: fmt.Sprintf("hh-%d", i), Body: []byte(fmt.Sprintf("q%02d", i)), Headers: map[string]string{"call": fmt.Sprintf("c%d", i)}}
		if err := r.bus.Publish(context.Background(), "ask", msg); err != nil {
			r.t.Fatal(err)
		}
	}
}

// waitAnswers waits until the answers topic holds n distinct answer keys.
func (r *replyRig) waitAnswers(n int) map[string][]bus.Message {
	r.t.Helper()
	late := time.After(time.Minute)
	for {
		byKey := map[string][]bus.Message{}
		for _, m := range r.mem.Published("answers") {
			byKey[m.IdempotencyKey] = append(byKey[m.IdempotencyKey], m)
		}
		if len(byKey) >= n {
			return byKey
		}
		r.partner.mu.Lock()
		ch := r.partner.changed
		r.partner.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(20 * time.Millisecond): // the publish follows the partner's change
		case <-late:
			r.t.Fatalf("%d answers of %d within a minute", len(byKey), n)
		}
	}
}

// TestReplyToPublishesEachAnswer: every query is asked once and its answer
// published on reply_to under the query's key plus /reply, with the
// query's key and headers and the partner's answer.
func TestReplyToPublishesEachAnswer(t *testing.T) {
	const n = 20
	r := newReplyRig(t, replyRoute)
	r.start(5 * time.Second)
	r.ask(n)
	byKey := r.waitAnswers(n)
	for i := range n {
		q := fmt.Sprintf("q%02d", i)
		got := byKey[q+routes.ReplySuffix]
		if len(got) != 1 {
			t.Errorf("%s: %d answers, want 1", q, len(got))
			continue
		}
		a := got[0]
		h := a.Headers
		if string(a.Body) != "answer to "+q || a.Key != fmt.Sprintf("hh-%d", i) || h["call"] != fmt.Sprintf("c%d", i) || h["quiz"] != "yes" ||
			h[routes.HeaderReplyOf] != q || h[routes.HeaderReplyStatus] != routes.ReplyOK || h[routes.HeaderReplyVia] != routes.ReplyViaSend ||
			h[routes.HeaderReplyRoute] != "quiz" {
			t.Errorf("%s: answer %q key %q headers %v", q, a.Body, a.Key, h)
		}
	}
	r.partner.mu.Lock()
	defer r.partner.mu.Unlock()
	for k, c := range r.partner.asks {
		if c != 1 {
			t.Errorf("%s asked %d times", k, c)
		}
	}
}

// TestReplyToFailureAnswer: a query the partner refuses (permanent) is
// dead-lettered and the requester gets a failure answer saying why.
func TestReplyToFailureAnswer(t *testing.T) {
	r := newReplyRig(t, replyRoute)
	r.partner.reject = func(body string) bool { return body == "q01" }
	r.start(5 * time.Second)
	r.ask(3)
	byKey := r.waitAnswers(3)
	f := byKey["q01"+routes.FailedSuffix]
	if len(f) != 1 {
		t.Fatalf("failure answers %v", byKey)
	}
	h := f[0].Headers
	if h[routes.HeaderReplyStatus] != routes.ReplyFailed || h[routes.HeaderReplyClass] != "permanent" || !strings.Contains(h[routes.HeaderReplyError], "refused") ||
		h["call"] != "c1" || len(f[0].Body) != 0 {
		t.Errorf("failure answer headers %v body %q", h, f[0].Body)
	}
	if len(byKey["q00"+routes.ReplySuffix]) != 1 || len(byKey["q02"+routes.ReplySuffix]) != 1 {
		t.Errorf("answers %v", byKey)
	}
	dl, err := routes.NewDeadLetters(r.db).List(context.Background(), routes.ListFilter{State: "all"})
	if err != nil || len(dl) != 1 || dl[0].Message.IdempotencyKey != "q01" {
		t.Errorf("dead letters %+v %v", dl, err)
	}
}

// TestReplyToStopBetweenAskAndAnswer stops the engine while every answer
// is on its way to the bus (the partner answered, the publication hangs):
// the deliveries are cut in doubt. The next run asks the partner nothing
// again: it fetches each answer by key and publishes it once.
func TestReplyToStopBetweenAskAndAnswer(t *testing.T) {
	const n = 12
	r := newReplyRig(t, replyRoute)
	r.bus.block = true
	run := r.start(200 * time.Millisecond)
	r.ask(n)
	late := time.After(time.Minute)
	for {
		r.bus.mu.Lock()
		blocked, ch := r.bus.blocked, r.bus.changed
		r.bus.mu.Unlock()
		if blocked >= 8 { // the route's concurrency: all workers hang
			break
		}
		select {
		case <-ch:
		case <-late:
			t.Fatalf("%d answers hanging within a minute", blocked)
		}
	}
	run.stop(t)
	r.partner.mu.Lock()
	asked := len(r.partner.asks)
	r.partner.mu.Unlock()
	if asked < 8 {
		t.Fatalf("partner asked %d queries before the stop", asked)
	}
	if got := len(r.mem.Published("answers")); got != 0 {
		t.Fatalf("%d answers published before the stop", got)
	}
	r.bus.mu.Lock()
	r.bus.block = false
	r.bus.mu.Unlock()
	r.start(5 * time.Second)
	byKey := r.waitAnswers(n)
	via := map[string]int{}
	for k, ms := range byKey {
		if len(ms) != 1 || !strings.HasSuffix(k, routes.ReplySuffix) {
			t.Errorf("%s: %d answers", k, len(ms))
		}
		q := strings.TrimSuffix(k, routes.ReplySuffix)
		if string(ms[0].Body) != "answer to "+q {
			t.Errorf("%s: answer %q", k, ms[0].Body)
		}
		via[ms[0].Headers[routes.HeaderReplyVia]]++
	}
	if via[routes.ReplyViaLookup] < 8 {
		t.Errorf("answers by way %v: want the cut ones (at least 8) fetched by lookup", via)
	}
	r.partner.mu.Lock()
	defer r.partner.mu.Unlock()
	if len(r.partner.asks) != n {
		t.Errorf("partner asked %d distinct queries, want %d", len(r.partner.asks), n)
	}
	for k, c := range r.partner.asks {
		if c != 1 {
			t.Errorf("%s asked %d times", k, c)
		}
	}
}

// TestReplyToNeedsAnAnsweringSink: reply_to with a sink kind that does not
// answer fails to start; with two sinks or a bus sink it does not lint.
func TestReplyToNeedsAnAnsweringSink(t *testing.T) {
	for name, tc := range map[string]struct{ route, want string }{
		"two sinks": {strings.Replace(replyRoute, "  - kind: quiz\n", "  - kind: quiz\n  - kind: quiz\n    name: second\n", 1), "exactly one sink"},
		"bus sink":  {strings.Replace(replyRoute, "  - kind: quiz\n", "  - kind: bus\n    config: {topic: x}\n", 1), "not a bus topic"},
		"own topic": {strings.Replace(replyRoute, "reply_to: answers", "reply_to: ask", 1), "the topic the route consumes"},
		"bad topic": {strings.Replace(replyRoute, "reply_to: answers", "reply_to: 'a b'", 1), "is not a topic"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newReplyRig(t, tc.route)
			reg := connectors.NewRegistry()
			_ = reg.Register(quizSpec(r.partner))
			eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: r.bus, Store: r.db, Connectors: reg})
			if err != nil {
				t.Fatal(err)
			}
			err = eng.Load(r.dir)
			if err == nil || !errors.Is(err, routes.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want %q", err, tc.want)
			}
		})
	}
}
