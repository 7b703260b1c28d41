package cardcenter_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type mem struct {
	mu    sync.Mutex
	apps  map[string]int
	banks map[string]string
	bad   []cardcenter.Bad
	steps map[string]string
}

func (m *mem) ApplyApplications(_ context.Context, apps []cardcenter.Application, bad []cardcenter.Bad) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range apps {
		if m.apps[a.ID] == 0 {
			n++
		}
		m.apps[a.ID]++
		if m.banks != nil {
			m.banks[a.ID] = a.Bank
		}
	}
	m.bad = append(m.bad, bad...)
	return n, nil
}

func (m *mem) KnownApplication(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apps[id] > 0, nil
}

func (m *mem) ApplyProgress(_ context.Context, steps []cardcenter.Progress) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range steps {
		m.steps[s.ID] = s.Stage
	}
	return len(steps), nil
}

// bankOf is the shipped dictionary's bank of each code.
var bankOf = map[string]string{"104": "boc", "301": "bocom", "303": "ceb", "308": "cmb", "310": "spdb", "105": "ccb"}

func bankTypes(t testing.TB) *cardcenter.BankTypes {
	t.Helper()
	bt, err := cardcenter.LoadBankTypes(os.DirFS("../../configs/mappings"), cardcenter.DefaultBankTypes)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// TestApplicationCheck checks the intake's checks of an application,
// the 一卡通 bank-type dictionary among them.
func TestApplicationCheck(t *testing.T) {
	bt := bankTypes(t)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, clock.Shanghai)
	good := cardcenter.Application{ID: "A1", IDNumber: synth.New(1).Next().ID, CardType: cardcenter.SocialSecurityCard, Channel: "sscard",
		Yikatong: true, AppliedOn: "2026-12-01", District: "310101", BankCode: "301", Account: "6222620000111122223"}
	for _, tc := range []struct {
		name   string
		change func(a *cardcenter.Application)
		reason string // "" accepted
		bank   string
	}{
		{"一卡通 at a listed bank", func(*cardcenter.Application) {}, "", "bocom"},
		{"every shipped code", func(a *cardcenter.Application) { a.BankCode = "105" }, "", "ccb"},
		{"senior card without a bank", func(a *cardcenter.Application) {
			a.CardType, a.Yikatong, a.BankCode, a.Account = cardcenter.SeniorCard, false, "", ""
		}, "", ""},
		{"unknown bank code", func(a *cardcenter.Application) { a.BankCode = "102" }, `bank_code "102" is not in the card center's bank-type dictionary (cardcenter-bank-types)`, ""},
		{"a connector code is no card center code", func(a *cardcenter.Application) { a.BankCode = "boc" }, `bank_code "boc" is not in`, ""},
		{"unknown code on a card without 一卡通", func(a *cardcenter.Application) { a.Yikatong = false; a.BankCode = "999" }, `bank_code "999"`, ""},
		{"一卡通 without a bank", func(a *cardcenter.Application) { a.BankCode = "" }, "一卡通 without the card's bank_code", ""},
		{"一卡通 without an account", func(a *cardcenter.Application) { a.Account = "" }, "一卡通 without the card's account", ""},
		{"an account not of digits", func(a *cardcenter.Application) { a.Account = "62226200001111X2223" }, "account ***************2223 is not 12 to 32 digits", ""},
		{"一卡通 on a senior card", func(a *cardcenter.Application) { a.CardType = cardcenter.SeniorCard }, "一卡通 on a card that is not a social-security card", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := good
			tc.change(&a)
			err := a.Check(now, bt)
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && (err == nil || !strings.Contains(err.Error(), tc.reason) || !errors.Is(err, cardcenter.ErrMalformed)):
				t.Fatalf("got %v, want a reason with %q", err, tc.reason)
			case tc.reason == "" && a.Bank != tc.bank:
				t.Fatalf("bank %q, want %q", a.Bank, tc.bank)
			}
			if err != nil && strings.Contains(err.Error(), a.Account) && a.Account != "" {
				t.Fatal("the reason shows the whole account")
			}
		})
	}
	// A dictionary whose values are not banks is refused.
	bad := fstest.MapFS{"t.yaml": {Data: []byte("kind: codetable\nname: t\ncodes:\n  - {code: \"104\", text: 中国银行}\n")}}
	if _, err := cardcenter.LoadBankTypes(bad, "t.yaml"); err == nil {
		t.Fatal("a dictionary without banks loaded")
	}
}

var day = time.Date(2026, 12, 2, 9, 0, 0, 0, clock.Shanghai)

func start(t *testing.T) (*cardcentersim.Sim, cardcenter.Config) {
	t.Helper()
	sim := cardcentersim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	cfg := cardcenter.DefaultConfig()
	cfg.URL = sim.URL()
	cfg.Client = httpx.ClientConfig{Timeout: 5 * time.Second, BreakerFailures: 2, BreakerOpen: time.Hour}
	return sim, cfg
}

// partners is the hub's connectors.Deps.Partners as the kind sees it.
type partners struct {
	c   *cardcenter.Client
	err error
}

func (p partners) PartnerClient(id string) (any, error) {
	if id != cardcenter.Partner || p.err != nil {
		return nil, p.err
	}
	return p.c, nil
}

// delivery is one bus delivery handed to the consumer.
type delivery struct {
	m     connectors.Message
	acked bool
	nack  error
}

func (d *delivery) Message() connectors.Message                            { return d.m }
func (d *delivery) Attempt() int                                           { return 1 }
func (d *delivery) Ack(context.Context) error                              { d.acked = true; return nil }
func (d *delivery) Nack(_ context.Context, _ time.Duration, c error) error { d.nack = c; return nil }

// source builds the kind's source for feed as a route file would.
func source(t *testing.T, feed string, deps connectors.Deps) *cardcenter.Source {
	t.Helper()
	c := cardcenter.DefaultSourceConfig()
	c.Feed, c.PageSize = feed, 50
	s, err := cardcenter.NewSource(c, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain polls a feed to its end, collecting what is emitted.
func drain(t *testing.T, s *cardcenter.Source, c *cardcenter.Client, out *[]connectors.Message) {
	t.Helper()
	for more := true; more; {
		var err error
		more, err = s.Poll(context.Background(), c, func(_ context.Context, msgs ...connectors.Message) error {
			*out = append(*out, msgs...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRouteFeeds pulls both feeds through the route kind and applies what
// it emits through the consumer: every application once by its id (the
// simulator's duplicates carry the same idempotency keys), the malformed
// ones quarantined with their reasons, the cursor stored only after the
// emit succeeded, a production step before its application redelivered,
// the breaker's failures as error events.
func TestRouteFeeds(t *testing.T) {
	ctx := context.Background()
	sim, cfg := start(t)
	apps := cardcentersim.Generate(180, 4, "2026-12-01", 2)
	bad := apps[0]
	bad.ID, bad.IDNumber = "ABAD", bad.IDNumber[:17]+"Y"
	unknownBank := apps[1]
	unknownBank.ID, unknownBank.CardType, unknownBank.Channel, unknownBank.Yikatong = "ABANK", cardcenter.SocialSecurityCard, "sscard", true
	unknownBank.BankCode, unknownBank.Account = "999", "6222000011112222333"
	sim.AddApplications(apps...)
	sim.AddApplications(bad, unknownBank)
	sim.AddProgress(cardcenter.Progress{ID: apps[0].ID, Stage: "produced", At: "2026-12-01T10:00:00+08:00"},
		cardcenter.Progress{ID: "x", Stage: "melted"}, cardcenter.Progress{ID: "LATER", Stage: "issued", At: "2026-12-01T11:00:00+08:00"})
	sim.Faults.Duplicates.Store(true)
	db := storetest.Open(t)
	ev := &monitortest.Recorder{}
	client, err := cardcenter.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deps := connectors.Deps{Store: db, Events: ev, Clock: clock.NewFake(day), Partners: partners{c: client}}
	if err := cardcenter.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	as, ps := source(t, cardcenter.FeedApplications, deps), source(t, cardcenter.FeedProgress, deps)

	// An emit that fails (the bus down): the cursor stays, the page is pulled again.
	if _, err := as.Poll(ctx, client, func(context.Context, ...connectors.Message) error { return errors.New("bus down") }); err == nil {
		t.Fatal("a failed emit was not reported")
	}
	var msgs []connectors.Message
	drain(t, ps, client, &msgs) // production first: its step waits for its application
	drain(t, as, client, &msgs)
	keys := map[string]int{}
	for _, m := range msgs {
		keys[m.IdempotencyKey]++
	}
	if keys["cardcenter/applications/"+apps[0].ID] != 1 || keys["cardcenter/progress/"+apps[0].ID+"/produced"] != 1 {
		t.Fatalf("keys: %d messages, first application %d", len(msgs), keys["cardcenter/applications/"+apps[0].ID])
	}
	// The duplicates the simulator repeats across pages keep their keys.
	if len(keys) != len(apps)+2+3 {
		t.Fatalf("%d distinct keys of %d messages", len(keys), len(msgs))
	}
	m := &mem{apps: map[string]int{}, steps: map[string]string{}, banks: map[string]string{}}
	cons := &cardcenter.Consumer{Apply: m, Banks: bankTypes(t), Events: ev, Clock: clock.NewFake(day)}
	var waiting []*delivery
	for _, msg := range msgs {
		d := &delivery{m: msg}
		cons.Handle(ctx, d)
		switch {
		case d.nack != nil:
			waiting = append(waiting, d)
		case !d.acked:
			t.Fatalf("%s neither acked nor nacked", msg.IdempotencyKey)
		}
	}
	if len(waiting) != 2 {
		t.Fatalf("%d deliveries waiting, want the two production steps", len(waiting))
	}
	for _, d := range waiting { // redelivered once the application is stored
		d.nack = nil
		cons.Handle(ctx, d)
	}
	if len(m.apps) != len(apps) || m.steps[apps[0].ID] != "produced" || waiting[0].nack != nil || waiting[1].nack == nil {
		t.Fatalf("%d applications, steps %v, waiting %v %v", len(m.apps), m.steps, waiting[0].nack, waiting[1].nack)
	}
	reasons := map[string]string{}
	for _, b := range m.bad {
		reasons[b.RecordID] = b.Reason
		if strings.Contains(b.Reason, unknownBank.Account) || b.Ref == "" {
			t.Fatalf("quarantined: %+v", b)
		}
	}
	if len(m.bad) != 3 || !strings.Contains(reasons["ABAD"], "fails its check digit") ||
		!strings.Contains(reasons["ABANK"], `bank_code "999" is not in the card center's bank-type dictionary (cardcenter-bank-types)`) ||
		!strings.Contains(reasons["x/melted"], `stage "melted" is not accepted, produced or issued`) {
		t.Fatalf("quarantined: %+v", m.bad)
	}
	var yk, ss int
	for _, a := range apps {
		if a.CardType == cardcenter.SocialSecurityCard {
			ss++
			if a.Yikatong {
				yk++
			}
			if got := m.banks[a.ID]; got == "" || got != bankOf[a.BankCode] {
				t.Fatalf("%s: bank code %s resolved to %q", a.ID, a.BankCode, got)
			}
		}
	}
	if ss == 0 || yk == 0 {
		t.Fatal("the generator made no 社保卡 / 一卡通 applications")
	}
	if ev.Count(func(e monitor.Event) bool { return e.Type == monitor.Rejected && e.Flow == "card-apply" }) != 2 {
		t.Fatal("no rejected events for the quarantined applications")
	}
	// Resumed from the cursors (a new source, as after a restart): nothing
	// new, only the simulator's repeated last item under its known key.
	msgs = msgs[:0]
	drain(t, source(t, cardcenter.FeedApplications, deps), client, &msgs)
	for _, msg := range msgs {
		if keys[msg.IdempotencyKey] == 0 {
			t.Fatalf("%s again after the feed's end", msg.IdempotencyKey)
		}
	}
	if len(msgs) > 1 {
		t.Fatalf("%d messages after the feed's end", len(msgs))
	}
	// Down: the breaker opens (reported as the card center's event, the
	// monitor's partner_down); the failure is an error event of the feed's flow.
	client.ObserveBreaker(ev)
	sim.Faults.Down.Store(true)
	emit := func(context.Context, ...connectors.Message) error { return nil }
	for range 3 {
		_, err = as.Poll(ctx, client, emit)
	}
	if !errors.Is(err, httpx.ErrCircuitOpen) {
		t.Fatalf("down: %v", err)
	}
	if ev.Count(func(e monitor.Event) bool {
		return e.Type == monitor.Failed && e.Status == monitor.Error && e.Partner == "cardcenter" && e.Flow == "card-apply"
	}) == 0 {
		t.Fatal("no error event")
	}
	if ev.Count(func(e monitor.Event) bool { return e.Partner == "cardcenter" && e.ErrorCode == "breaker_open" }) != 1 {
		t.Fatal("the breaker's opening was not reported")
	}
}

// TestRouteIdleWithoutCardCenter: a route of the kind in a hub without
// cardcenter.url says so once, asks nobody and waits for its end without
// an error (the route engine would restart a source that returned one,
// every 5 s, forever).
func TestRouteIdleWithoutCardCenter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		partners any
	}{
		{"the hub's answer", partners{err: cardcenter.ErrNotConfigured}},
		{"no partner clients at all", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
			s := source(t, cardcenter.FeedApplications, connectors.Deps{Store: storetest.Open(t), Logger: log, Partners: tc.partners})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			emitted := false
			go func() {
				done <- s.Run(ctx, func(context.Context, ...connectors.Message) error { emitted = true; return nil })
			}()
			// The line is written before the source waits.
			for {
				mu.Lock()
				n := strings.Count(logs.String(), "route idle: the card center is not configured (cardcenter.url is not set)")
				mu.Unlock()
				if n == 1 {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("the source returned before its end: %v", err)
				default:
					runtime.Gosched()
				}
			}
			cancel()
			if err := <-done; err != nil || emitted {
				t.Fatalf("idle source: %v, emitted %v", err, emitted)
			}
			if n := strings.Count(logs.String(), "route idle"); n != 1 {
				t.Fatalf("said %d times", n)
			}
		})
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	sim, cfg := start(t)
	cfg.StatusBatch, cfg.StatusParallel = 100, 4
	g := synth.New(2)
	var ids []string
	for range 1050 {
		ids = append(ids, g.Next().ID)
	}
	sim.SetStatus(ids[3], cardcenter.StatusLost)
	sim.SetStatus(ids[500], cardcenter.StatusFrozen)
	sim.SetStatus(ids[1049], cardcenter.StatusCancelled)
	ev := &monitortest.Recorder{}
	q, err := cardcenter.NewStatusClient(cfg, connectors.Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Query(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) || got[ids[3]] != "lost" || got[ids[500]] != "frozen" || got[ids[1049]] != "cancelled" || got[ids[0]] != "normal" {
		t.Fatalf("%d statuses: %v %v %v", len(got), got[ids[3]], got[ids[500]], got[ids[1049]])
	}
	// A batch larger than the card center takes, or a wrong answer: no statuses at all.
	sim.Faults.MaxBatch.Store(50)
	if _, err := q.Query(ctx, ids); err == nil {
		t.Fatal("refused batches gave statuses")
	}
	sim.Faults.MaxBatch.Store(0)
	// Every answer wrong (requests of the query above the server still
	// answers after the client gave up would use up a smaller count).
	sim.Faults.Wrong.Store(1 << 20)
	// A fresh client: the refusals above (and the batches they cancelled)
	// may have opened the first one's breaker.
	q, err = cardcenter.NewStatusClient(cfg, connectors.Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Query(ctx, ids); !errors.Is(err, cardcenter.ErrBadAnswer) {
		t.Fatalf("wrong answer: %v", err)
	}
	if n := ev.Count(func(e monitor.Event) bool { return e.Flow == "card-status" && e.Type == monitor.Failed }); n != 2 {
		t.Fatalf("%d failed events", n)
	}
}

// feedLease is a fake store/lease.Elector: held by another replica until
// free is closed, then this replica's.
type feedLease struct {
	mu    sync.Mutex
	names []string
	free  chan struct{}
	asked chan string // each lease asked for
}

func (l *feedLease) Run(ctx context.Context, name string, f func(context.Context) error) error {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	l.asked <- name
	select {
	case <-ctx.Done():
		return nil
	case <-l.free:
	}
	return f(ctx)
}

// TestRoutePullsUnderTheFeedLease: with the hub's leases set on the
// client, a replica pulls a feed only while it holds the feed's lease
// (cardcenter.pull.<feed>): nothing is asked or emitted while another
// replica holds it, and the pull starts once this one gets it.
func TestRoutePullsUnderTheFeedLease(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, cfg := start(t)
	sim.AddApplications(cardcentersim.Generate(20, 1, "2026-12-01", 2)...)
	client, err := cardcenter.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &feedLease{free: make(chan struct{}), asked: make(chan string, 1)}
	client.SetLeases(l)
	db := storetest.Open(t)
	s := source(t, cardcenter.FeedApplications, connectors.Deps{Store: db, Clock: clock.NewFake(day), Partners: partners{c: client}})
	got := make(chan int, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, msgs ...connectors.Message) error { got <- len(msgs); return nil })
	}()
	select {
	case name := <-l.asked:
		if name != "cardcenter.pull.applications" {
			t.Fatalf("lease %q", name)
		}
	case n := <-got:
		t.Fatalf("%d records emitted without asking for the lease", n)
	case <-time.After(time.Minute):
		t.Fatal("the source never asked for the feed's lease")
	}
	select {
	case n := <-got:
		t.Fatalf("%d records emitted without the lease", n)
	default:
	}
	close(l.free)
	if n := <-got; n == 0 {
		t.Fatal("an empty page emitted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// expecter records the expectations registered.
type expecter struct {
	mu    sync.Mutex
	got   []monitor.Expectation
	added chan struct{} // one per Expect
}

func (e *expecter) Expect(_ context.Context, x monitor.Expectation) error {
	e.mu.Lock()
	e.got = append(e.got, x)
	e.mu.Unlock()
	e.added <- struct{}{}
	return nil
}

func (e *expecter) all() []monitor.Expectation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// TestRouteRegistersTheDailyExpectation: a feed's first successful pull of
// a day registers the next day's expectation (a fetched event of the
// feed's flow by 09:00 Asia/Shanghai), once a day however often it pulls;
// an empty page still reports a fetched event, which meets it.
func TestRouteRegistersTheDailyExpectation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, cfg := start(t)
	client, err := cardcenter.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ex := &expecter{added: make(chan struct{}, 10)}
	client.SetExpect(ex)
	fc := clock.NewFake(day) // 2026-12-02 09:00 Shanghai
	ev := &monitortest.Recorder{}
	s := source(t, cardcenter.FeedProgress, connectors.Deps{Store: storetest.Open(t), Clock: fc, Events: ev, Partners: partners{c: client}})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(context.Context, ...connectors.Message) error { return nil }) }()
	// waitFor waits for n expectations in all and for the source to wait
	// on the clock again (its pull done).
	waitFor := func(what string, n int) {
		t.Helper()
		for len(ex.all()) < n {
			select {
			case <-ex.added:
			case <-time.After(time.Minute):
				t.Fatalf("timed out waiting for %s: %+v", what, ex.all())
			}
		}
		if err := fc.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the first expectation", 1)
	fc.Advance(15 * time.Minute) // the next pull, the same day
	waitFor("the second pull", 1)
	fc.Advance(24 * time.Hour) // the next day's pull
	waitFor("the next day's expectation", 2)
	got := ex.all()
	want := []time.Time{time.Date(2026, 12, 3, 9, 0, 0, 0, clock.Shanghai), time.Date(2026, 12, 4, 9, 0, 0, 0, clock.Shanghai)}
	if len(got) != 2 {
		t.Fatalf("expectations %+v, want one a day", got)
	}
	for i, x := range got {
		if x.Name != "cardcenter-daily-progress" || x.Partner != cardcenter.Partner || x.Flow != cardcenter.FlowOf(cardcenter.FeedProgress) ||
			x.Type != monitor.Fetched || !x.Due.Equal(want[i]) {
			t.Errorf("expectation %d: %+v, want due %s", i, x, want[i])
		}
	}
	fetched := 0
	for _, e := range ev.Events() {
		if e.Type == monitor.Fetched && e.Status == monitor.OK && e.Flow == cardcenter.FlowOf(cardcenter.FeedProgress) {
			fetched++
		}
	}
	if fetched < 2 {
		t.Fatalf("%d fetched events for empty pulls, want one per pull", fetched)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
