package routes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/store"
)

// A route test file (<route file>_test.yaml next to the route, like
// Benthos's config unit tests) feeds input messages through a route's steps
// with every sink and lookup mocked, and checks what each sink received.
//
//	file: village-banks.yaml        # default: this file's name without _test
//	route: village-bank-query-vb01  # needed when the file holds several routes
//	tests:                          # aggregates waiting for a timeout complete after the last input
//	  - name: found
//	    lookups: {ask-bank: {json: {req_no: r1, result: found}}}
//	    sinks: {answers: {fail: 1}}
//	    input:
//	      - json: {request_id: r1, person_token: t, period: "2026-10"}
//	    expect:
//	      answers:
//	        - expr: body.total_fen == 100
//	      dead_letters: 0

// TestFile is a route test file.
type TestFile struct {
	// File is the route file under test, relative to the test file.
	File string `yaml:"file"`
	// Route is the route id (required when File holds several routes).
	Route string `yaml:"route"`
	// Mappings is the mappings directory for map steps (default ../mappings beside the routes directory).
	Mappings string `yaml:"mappings"`
	// Tests are the cases.
	Tests []TestCase `yaml:"tests"`
}

// TestCase is one case of a route test file.
type TestCase struct {
	// Name of the case.
	Name string `yaml:"name"`
	// Input messages, fed in order.
	Input []TestMessage `yaml:"input"`
	// Lookups answer enrich steps, by step name.
	Lookups map[string]MockAnswer `yaml:"lookups"`
	// Sinks set the behaviour of mocked sinks, by sink name (default: accept).
	Sinks map[string]MockSink `yaml:"sinks"`
	// Expect is what each sink must have received, in order, by sink name,
	// plus the keys dropped and dead_letters (counts).
	Expect map[string]yaml.Node `yaml:"expect"`
}

// TestMessage is an input message or an expectation on a delivered one.
type TestMessage struct {
	// Body is the body as text.
	Body *string `yaml:"body"`
	// BodyFile reads the body from a file (relative to the test file).
	BodyFile string `yaml:"body_file"`
	// JSON is the body as a YAML value encoded to JSON (input) or compared structurally (expectation).
	JSON any `yaml:"json"`
	// Headers of the message (expectation: these must be present with these values).
	Headers map[string]string `yaml:"headers"`
	// Contains (expectation) must be a substring of the body.
	Contains string `yaml:"contains"`
	// Expr (expectation) is a boolean expression on the delivered message.
	Expr string `yaml:"expr"`
	// IdempotencyKey sets (input) or checks (expectation) the key.
	IdempotencyKey string `yaml:"idempotency_key"`
}

// MockAnswer is a lookup's answer.
type MockAnswer struct {
	// Body is the answer as text.
	Body string `yaml:"body"`
	// JSON is the answer as a YAML value encoded to JSON.
	JSON any `yaml:"json"`
	// Error makes the lookup fail with this message.
	Error string `yaml:"error"`
}

// MockSink sets a mocked sink's behaviour.
type MockSink struct {
	// Fail makes the first n sends fail.
	Fail int `yaml:"fail"`
	// Error is the failure's message (default "mock failure").
	Error string `yaml:"error"`
	// Permanent makes the failures permanent (no retry).
	Permanent bool `yaml:"permanent"`
}

// TestResult is the outcome of one case.
type TestResult struct {
	// File and Name identify the case.
	File, Name string
	// Failures are the mismatches (empty: passed).
	Failures []string
}

// Passed tells whether the case passed.
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

// RunTestFile runs the cases of a route test file.
func RunTestFile(ctx context.Context, path string) ([]TestResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tf TestFile
	if err := strictDecode(data, &tf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if tf.File == "" {
		base := filepath.Base(path)
		tf.File = strings.TrimSuffix(strings.TrimSuffix(base, "_test.yaml"), "_test.yml") + ".yaml"
	}
	rs, lerrs := LoadFile(filepath.Join(dir, tf.File))
	if lerrs != nil {
		return nil, lintErrors(lerrs)
	}
	var r *Route
	for _, x := range rs {
		if tf.Route == "" && len(rs) == 1 || x.ID == tf.Route {
			r = x
		}
	}
	if r == nil {
		return nil, fmt.Errorf("%s: route %q not found in %s (set route:)", path, tf.Route, tf.File)
	}
	mdir := tf.Mappings
	if mdir == "" {
		mdir = filepath.Join(dir, "..", "mappings")
	} else if !filepath.IsAbs(mdir) {
		mdir = filepath.Join(dir, mdir)
	}
	var out []TestResult
	for i, tc := range tf.Tests {
		name := tc.Name
		if name == "" {
			name = "test " + strconv.Itoa(i+1)
		}
		res := TestResult{File: path, Name: name}
		fails, err := runCase(ctx, dir, r, tc, NewMappingsMapper(mdir))
		if err != nil {
			fails = append(fails, err.Error())
		}
		res.Failures = fails
		out = append(out, res)
	}
	return out, nil
}

// mockKind is the connector kind standing in for every endpoint in tests.
const mockKind = "mzhub-test-mock"

type mockSet struct {
	mu      sync.Mutex
	got     map[string][]bus.Message
	fails   map[string]int
	sinks   map[string]MockSink
	lookups map[string]MockAnswer
}

type mockCfg struct {
	Name string `yaml:"name"`
}

type mockEndpoint struct {
	set  *mockSet
	name string
}

func (m *mockEndpoint) Send(ctx context.Context, msg bus.Message) error {
	s := m.set
	s.mu.Lock()
	defer s.mu.Unlock()
	beh := s.sinks[m.name]
	if s.fails[m.name] < beh.Fail {
		s.fails[m.name]++
		e := beh.Error
		if e == "" {
			e = "mock failure"
		}
		err := errors.New(e)
		if beh.Permanent {
			err = connectors.Permanent(err)
		}
		return err
	}
	s.got[m.name] = append(s.got[m.name], msg)
	return nil
}

func (m *mockEndpoint) Request(ctx context.Context, msg bus.Message) (bus.Message, error) {
	s := m.set
	s.mu.Lock()
	a, ok := s.lookups[strings.TrimPrefix(m.name, "lookup:")]
	s.mu.Unlock()
	if !ok {
		return bus.Message{}, connectors.Permanent(fmt.Errorf("no mocked answer for lookup %s", strings.TrimPrefix(m.name, "lookup:")))
	}
	if a.Error != "" {
		return bus.Message{}, errors.New(a.Error)
	}
	body := []byte(a.Body)
	if a.JSON != nil {
		body, _ = json.Marshal(a.JSON)
	}
	return bus.Message{Body: body}, nil
}

func (m *mockEndpoint) Endpoint() string { return "mock:" + m.name }

// captureBus records publishes (aggregates going back on the topic).
type captureBus struct {
	mu  sync.Mutex
	out []bus.Message
}

func (b *captureBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out = append(b.out, msgs...)
	return nil
}

func (b *captureBus) take() []bus.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.out
	b.out = nil
	return out
}

func (b *captureBus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	return nil, errors.New("routes test: no subscriptions")
}

func (b *captureBus) Close(ctx context.Context) error { return nil }

func mockNode(name string) yaml.Node {
	var n yaml.Node
	_ = n.Encode(mockCfg{Name: name})
	return n
}

// runCase runs one case with a fresh state store.
func runCase(ctx context.Context, dir string, r0 *Route, tc TestCase, mapper Mapper) ([]string, error) {
	tmp, err := os.MkdirTemp("", "mzhub-route-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(tmp, "state.db")
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	set := &mockSet{got: map[string][]bus.Message{}, fails: map[string]int{}, sinks: tc.Sinks, lookups: tc.Lookups}
	reg := connectors.NewRegistry()
	_ = reg.Register(connectors.Spec{
		Name: mockKind,
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return &mockCfg{} },
			New: func(c any, _ connectors.Deps) (connectors.Sink, error) {
				return &mockEndpoint{set: set, name: c.(*mockCfg).Name}, nil
			},
		},
	})
	// The route with every endpoint mocked.
	r := *r0
	r.To = append([]Endpoint(nil), r0.To...)
	r.Steps = append([]Step(nil), r0.Steps...)
	r.withDefaults()
	known := map[string]bool{}
	for i := range r.To {
		known[r.To[i].Name] = true
		r.To[i] = Endpoint{Name: r.To[i].Name, Kind: mockKind, Config: mockNode(r.To[i].Name), Idempotent: r.To[i].Idempotent, Timeout: r.To[i].Timeout}
	}
	for i := range r.Steps {
		if en, ok := r.Steps[i].Config.(*EnrichStep); ok {
			mocked := *en
			mocked.Via = Endpoint{Kind: mockKind, Config: mockNode("lookup:" + r.Steps[i].Name)}
			r.Steps[i].Config = &mocked
		}
	}
	r.From = Endpoint{Kind: kindBus, Config: mockNode("")}
	r.From.Config = func() yaml.Node { var n yaml.Node; _ = n.Encode(BusEndpointConfig{Topic: "mzhub-test.in"}); return n }()
	cb := &captureBus{}
	e, err := NewEngine(EngineConfig{}, Deps{Bus: cb, Store: db, Connectors: reg, Mapper: mapper})
	if err != nil {
		return nil, err
	}
	e.ledger = newLedger(db, e.clock.Now)
	defer e.ledger.close()
	rn, err := e.build(&r)
	if err != nil {
		return nil, err
	}
	var fails []string
	deadLetters, dropped := 0, 0
	runOne := func(msg bus.Message) {
		from := 0
		if s := msg.Headers[HeaderResumeStep]; s != "" {
			from, _ = strconv.Atoi(s)
		}
		for attempt := 1; ; attempt++ {
			m := &msgState{msg: msg, attempt: attempt}
			err := rn.process(ctx, m, from)
			switch {
			case err == nil || errors.Is(err, errConsumed):
				return
			case errors.Is(err, ErrFiltered):
				dropped++
				return
			case isPermanent(err) || attempt >= rn.r.Errors.MaxAttempts:
				deadLetters++
				return
			}
		}
	}
	for i, in := range tc.Input {
		msg := bus.Message{Headers: map[string]string{}, IdempotencyKey: in.IdempotencyKey}
		for k, v := range in.Headers {
			msg.Headers[k] = v
		}
		switch {
		case in.Body != nil:
			msg.Body = []byte(*in.Body)
		case in.BodyFile != "":
			b, err := os.ReadFile(filepath.Join(dir, in.BodyFile))
			if err != nil {
				return nil, fmt.Errorf("input %d: %w", i, err)
			}
			msg.Body = b
		case in.JSON != nil:
			msg.Body, _ = json.Marshal(in.JSON)
		}
		if err := rn.keys(&msg); err != nil {
			deadLetters++
			continue
		}
		runOne(msg)
		for _, again := range cb.take() {
			runOne(again)
		}
	}
	// The end of the input is the end of time: groups waiting for a
	// timeout complete now.
	for _, a := range rn.aggs {
		if a.timeout > 0 {
			if err := a.flushBefore(ctx, 1<<62); err != nil {
				return nil, err
			}
		}
	}
	for _, again := range cb.take() {
		runOne(again)
	}
	// Expectations.
	names := make([]string, 0, len(tc.Expect))
	for k := range tc.Expect {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		node := tc.Expect[name]
		switch name {
		case "dead_letters", "dropped":
			var n int
			if err := node.Decode(&n); err != nil {
				return nil, fmt.Errorf("expect.%s: %w", name, err)
			}
			got := deadLetters
			if name == "dropped" {
				got = dropped
			}
			if got != n {
				fails = append(fails, fmt.Sprintf("%s: got %d, want %d", name, got, n))
			}
			continue
		}
		if !known[name] {
			return nil, fmt.Errorf("expect: %q is not a sink of route %s", name, r.ID)
		}
		var want []TestMessage
		if err := node.Decode(&want); err != nil {
			return nil, fmt.Errorf("expect.%s: %w", name, err)
		}
		got := set.got[name]
		if len(got) != len(want) {
			fails = append(fails, fmt.Sprintf("sink %s: got %d messages, want %d%s", name, len(got), len(want), preview(got)))
			continue
		}
		for i, w := range want {
			for _, f := range checkMessage(got[i], w, r.Vars) {
				fails = append(fails, fmt.Sprintf("sink %s message %d: %s", name, i+1, f))
			}
		}
	}
	return fails, nil
}

func preview(ms []bus.Message) string {
	if len(ms) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(":")
	for i, m := range ms {
		if i == 3 {
			b.WriteString(" …")
			break
		}
		body := string(m.Body)
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		fmt.Fprintf(&b, " [%s]", body)
	}
	return b.String()
}

// checkMessage compares a delivered message with an expectation.
func checkMessage(m bus.Message, w TestMessage, vars map[string]string) []string {
	var fails []string
	if w.Body != nil && string(m.Body) != *w.Body {
		fails = append(fails, fmt.Sprintf("body %q, want %q", m.Body, *w.Body))
	}
	if w.JSON != nil {
		var got any
		if err := json.Unmarshal(m.Body, &got); err != nil {
			fails = append(fails, fmt.Sprintf("body is not JSON: %v", err))
		} else {
			wb, _ := json.Marshal(w.JSON)
			var want any
			_ = json.Unmarshal(wb, &want)
			if !reflect.DeepEqual(got, want) {
				fails = append(fails, fmt.Sprintf("body %s, want %s", m.Body, wb))
			}
		}
	}
	if w.Contains != "" && !strings.Contains(string(m.Body), w.Contains) {
		fails = append(fails, fmt.Sprintf("body does not contain %q", w.Contains))
	}
	for k, v := range w.Headers {
		if m.Headers[k] != v {
			fails = append(fails, fmt.Sprintf("header %s = %q, want %q", k, m.Headers[k], v))
		}
	}
	if w.IdempotencyKey != "" && m.IdempotencyKey != w.IdempotencyKey {
		fails = append(fails, fmt.Sprintf("idempotency key %q, want %q", m.IdempotencyKey, w.IdempotencyKey))
	}
	if w.Expr != "" {
		p, err := compileExpr(w.Expr, "bool")
		if err != nil {
			fails = append(fails, fmt.Sprintf("expr: %v", err))
		} else if ok, err := p.bool(newEnv(&msgState{msg: m}, vars)); err != nil || !ok {
			fails = append(fails, fmt.Sprintf("expr %s is false (body %s) %v", w.Expr, m.Body, err))
		}
	}
	return fails
}

// TestFiles lists the route test files under dir (recursively).
func TestFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isTestFile(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
