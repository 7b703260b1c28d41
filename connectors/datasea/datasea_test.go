package datasea_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// memApplier applies records once by id, as the allowance service does.
type memApplier struct {
	mu      sync.Mutex
	applied map[string]datasea.Record
	times   map[string]int
	bad     []datasea.Bad
	fail    error
}

func newMem() *memApplier {
	return &memApplier{applied: map[string]datasea.Record{}, times: map[string]int{}}
}

func (m *memApplier) Apply(_ context.Context, _ string, recs []datasea.Record, bad []datasea.Bad) (datasea.Applied, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return datasea.Applied{}, m.fail
	}
	var a datasea.Applied
	for _, r := range recs {
		m.times[r.ID]++
		if _, ok := m.applied[r.ID]; ok {
			a.Seen++
			continue
		}
		m.applied[r.ID] = r
		a.New++
	}
	m.bad = append(m.bad, bad...)
	a.Quarantined = len(bad)
	return a, nil
}

var day = time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)

func setup(t *testing.T) (*dataseasim.Sim, *store.DB, *monitortest.Recorder, datasea.Config) {
	t.Helper()
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	db := storetest.Open(t)
	if err := datasea.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	cfg := datasea.DefaultConfig()
	cfg.URL = sim.URL()
	cfg.PageSize = 100
	cfg.Client = httpx.ClientConfig{Timeout: 2 * time.Second, BreakerFailures: 3, BreakerOpen: time.Hour}
	return sim, db, &monitortest.Recorder{}, cfg
}

func puller(t *testing.T, cfg datasea.Config, db *store.DB, ev connectors.Events) *datasea.Puller {
	t.Helper()
	p, err := datasea.NewPuller(cfg, connectors.Deps{Store: db, Events: ev, Clock: clock.NewFake(day)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pull pulls both feeds, handing each page to a, as the route and the
// consumer do; it sums what a did.
func pull(ctx context.Context, p *datasea.Puller, a datasea.Applier) (datasea.Applied, error) {
	var sum datasea.Applied
	var errs []error
	for _, feed := range []string{"death", "migration"} {
		_, err := p.PullFeed(ctx, feed, func(ctx context.Context, _, _ string, good []datasea.Record, bad []datasea.Bad) error {
			got, err := a.Apply(ctx, "api", good, bad)
			sum = sum.Add(got)
			return err
		})
		errs = append(errs, err)
	}
	return sum, errors.Join(errs...)
}

func TestPull(t *testing.T) {
	ctx := context.Background()
	sim, db, ev, cfg := setup(t)
	recs := dataseasim.Generate(950, 3, "2026-12-01", 7)
	sim.Add(recs...)
	sim.AddRaw("death", `{"record_id":"DX1","type":"death","id_number":"310101199001011235","name":"王某","event_date":"2026-12-01","district":"310101"}`)
	sim.AddRaw("migration", `{"record_id":"MX2","type":"move_out","id_number":"310101190001011230","name":"李某","event_date":"2099-01-01","district":"310101"}`)
	sim.AddRaw("migration", `"not a record"`)
	sim.Faults.Duplicates.Store(true)
	mem := newMem()
	p := puller(t, cfg, db, ev)
	res, err := pull(ctx, p, mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.applied) != len(recs) {
		t.Fatalf("applied %d of %d", len(mem.applied), len(recs))
	}
	if res.New != len(recs) || res.Seen == 0 || res.Quarantined != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, b := range mem.bad {
		if strings.Contains(b.Raw, "310101199001011235") || b.Reason == "" || b.Ref == "" {
			t.Errorf("quarantined %+v", b)
		}
	}
	// A second pull starts at the stored cursors: nothing new, one page each.
	pages := sim.Pages()
	res, err = pull(ctx, p, mem)
	if err != nil {
		t.Fatal(err)
	}
	if res.New != 0 || sim.Pages()-pages != 2 {
		t.Fatalf("second pull: %+v, %d pages", res, sim.Pages()-pages)
	}
	// New records arrive; a fresh puller (a restarted hub) resumes.
	more := dataseasim.Generate(30, 4, "2026-12-02", 3)
	sim.Add(more...)
	res, err = pull(ctx, puller(t, cfg, db, ev), mem)
	if err != nil || res.New != len(more) {
		t.Fatalf("resumed pull: %+v %v", res, err)
	}
	var fetched int
	for _, e := range ev.Events() {
		if e.Type == monitor.Fetched && e.Partner == datasea.Partner {
			fetched++
		}
	}
	if fetched != 6 {
		t.Fatalf("%d fetched events", fetched)
	}
}

func TestPullFaults(t *testing.T) {
	ctx := context.Background()
	sim, db, ev, cfg := setup(t)
	sim.Add(dataseasim.Generate(250, 5, "2026-12-01", 1)...)
	mem := newMem()
	p := puller(t, cfg, db, ev)

	// A wrong answer: nothing applied past it, cursor kept, error event.
	sim.Faults.Wrong.Store(1)
	if _, err := pull(ctx, p, mem); !errors.Is(err, datasea.ErrBadAnswer) {
		t.Fatalf("wrong answer: %v", err)
	}
	if e := ev.Events()[0]; e.Type != monitor.Failed || e.Status != monitor.Error || e.ErrorCode != "format" {
		t.Fatalf("event %+v", e)
	}
	// The page cannot be handed on (the bus is down, the applier busy):
	// the cursor does not move.
	mem.fail = errors.New("database is locked")
	if _, err := pull(ctx, p, mem); err == nil {
		t.Fatal("pull with a failing applier succeeded")
	}
	if c, _ := datasea.Cursor(ctx, db, "death"); c != "" {
		t.Fatalf("cursor moved past an unapplied page: %q", c)
	}
	mem.fail = nil

	// The platform is down: the breaker opens after three failures and
	// later calls fail fast, without reaching the platform.
	sim.Faults.Down.Store(true)
	for range 2 {
		if _, err := pull(ctx, p, mem); err == nil {
			t.Fatal("pull from a platform that is down succeeded")
		}
	}
	calls := sim.Calls()
	if _, err := pull(ctx, p, mem); !errors.Is(err, httpx.ErrCircuitOpen) {
		t.Fatalf("open breaker: %v", err)
	}
	if sim.Calls() != calls {
		t.Fatal("the open breaker let a call through")
	}
	// A new puller (the breaker closed again, as after its open time) gets everything once.
	sim.Faults.Down.Store(false)
	if _, err := pull(ctx, puller(t, cfg, db, ev), mem); err != nil {
		t.Fatal(err)
	}
	for id, n := range mem.times {
		if n > 2 {
			t.Fatalf("record %s handed over %d times", id, n)
		}
	}
	if len(mem.applied) != 250 {
		t.Fatalf("applied %d", len(mem.applied))
	}

	// Slow answers hit the deadline.
	sim.Faults.Slow.Store(int64(3 * time.Second))
	cfg.Client.Timeout = 50 * time.Millisecond
	if _, err := pull(ctx, puller(t, cfg, db, ev), mem); err == nil {
		t.Fatal("slow platform: no deadline")
	}
}

type sm2 struct{}

func (sm2) Sign(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return []byte("sig-" + base64.StdEncoding.EncodeToString(b.Bytes()[:8])), err
}

func TestPush(t *testing.T) {
	ctx := context.Background()
	sim, db, ev, cfg := setup(t)
	p, err := datasea.NewPusher(cfg, connectors.Deps{Store: db, Events: ev, Clock: clock.NewFake(day)}, sm2{})
	if err != nil {
		t.Fatal(err)
	}
	recs := []datasea.Recipient{{Person: "310***********1234", Token: "ab", Name: "王*", District: "310101", Standard: "A70", AmountFen: 15000},
		{Person: "310***********5678", Token: "cd", Name: "李*", District: "310104", Standard: "A90", AmountFen: 60000}}
	sim.Faults.RejectPush.Store(true)
	if _, err := p.Push(ctx, "2026-11", recs); !errors.Is(err, datasea.ErrBadAnswer) {
		t.Fatalf("wrong count accepted: %v", err)
	}
	st, ok, _ := datasea.Pushed(ctx, db, "2026-11")
	if !ok || st.State != "sending" || st.Detail == "" {
		t.Fatalf("state after a wrong answer: %+v", st)
	}
	sim.Faults.RejectPush.Store(false)
	// The platform keeps its first answer for the key; a fresh period pushes fine.
	st, err = p.Push(ctx, "2026-12", recs)
	if err != nil || st.State != "received" || st.Receipt == "" || st.Records != 2 || st.TotalFen != 75000 {
		t.Fatalf("push: %+v %v", st, err)
	}
	body, ok := sim.Pushed("2026-12")
	if !ok || body.Count != 2 || body.TotalFen != 75000 || body.SM3 == "" || body.Signature == "" {
		t.Fatalf("pushed body %+v", body)
	}
	n := sim.PushCount()
	if st2, err := p.Push(ctx, "2026-12", recs); err != nil || st2.Receipt != st.Receipt || sim.PushCount() != n {
		t.Fatalf("second push of a received period: %+v %v", st2, err)
	}
}

func TestParseFile(t *testing.T) {
	recs := dataseasim.Generate(20, 9, "2026-12-01", 1)
	var b bytes.Buffer
	if err := datasea.WriteFile(&b, recs); err != nil {
		t.Fatal(err)
	}
	b.WriteString("X1|death|310101190001011230|张三|2026-12-01|310101\n\n")
	b.WriteString("X2|unknown|310101190001011230|张三|2026-13-01|3101|\n")
	got, bad, err := datasea.ParseFile("DEATH_20261201.txt", &b, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || got[0] != recs[0] {
		t.Fatalf("%d records, first %+v", len(got), got[0])
	}
	if len(bad) != 2 || bad[0].Ref != "DEATH_20261201.txt line 21" || bad[1].Ref != "DEATH_20261201.txt line 23" {
		t.Fatalf("bad %+v", bad)
	}
	if strings.Contains(bad[0].Raw, "310101190001011230") {
		t.Fatal("raw line not masked")
	}
}

func FuzzParseFile(f *testing.F) {
	var b bytes.Buffer
	_ = datasea.WriteFile(&b, dataseasim.Generate(3, 1, "2026-12-01", 1))
	f.Add(b.Bytes())
	f.Add([]byte("a|b|c\n|||||||\n\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, bad, err := datasea.ParseFile("F.txt", bytes.NewReader(data), day)
		if err != nil {
			return
		}
		for _, r := range recs {
			if err := r.Check(day); err != nil {
				t.Fatalf("accepted a record that fails its check: %v", err)
			}
		}
		// Each bad line names its line, in order, within the file; no line
		// counts twice.
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(recs)+len(bad) > lines {
			t.Fatalf("%d records and %d bad lines from %d lines", len(recs), len(bad), lines)
		}
		last := 0
		for _, x := range bad {
			if x.Reason == "" {
				t.Fatal("quarantined without a reason")
			}
			n, err := strconv.Atoi(strings.TrimPrefix(x.Ref, "F.txt line "))
			if err != nil || n <= last || n > lines {
				t.Fatalf("bad line's place %q (after line %d of %d)", x.Ref, last, lines)
			}
			last = n
		}
	})
}
