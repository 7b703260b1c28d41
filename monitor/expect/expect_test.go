package expect_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func sh(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, clock.Shanghai)
}

type alerts struct {
	mu   sync.Mutex
	list []monitor.Alert
}

func (a *alerts) Raise(_ context.Context, al monitor.Alert) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, al)
	return true, nil
}

type emitter struct{ evs []monitor.Event }

func (e *emitter) Emit(ev monitor.Event) { e.evs = append(e.evs, ev) }

func setup(t *testing.T, start time.Time, rules ...monitor.ExpectationRule) (*expect.Tracker, monitor.Store, *clock.Fake, *alerts, *emitter) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t)
	if err := expect.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	fc := clock.NewFake(start)
	al, em := &alerts{}, &emitter{}
	tr, err := expect.New(db, st, expect.Options{Rules: rules, Clock: fc, Alerts: al, Emit: em})
	if err != nil {
		t.Fatal(err)
	}
	return tr, st, fc, al, em
}

func states(t *testing.T, tr *expect.Tracker, from, to time.Time) map[string]monitor.Expectation {
	t.Helper()
	list, err := tr.Between(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]monitor.Expectation{}
	for _, e := range list {
		m[e.Name+" "+e.Due.In(clock.Shanghai).Format("01-02 15:04")] = e
	}
	return m
}

func TestDailyDeathFile(t *testing.T) {
	ctx := context.Background()
	rule := monitor.ExpectationRule{Name: "death-daily", Partner: "datasea", Flow: "death", Type: monitor.Fetched,
		FilePattern: "DEATH_*.txt", Schedule: "daily 06:00"}
	tr, st, fc, al, em := setup(t, sh(2026, 11, 27, 5, 0), rule)
	add := func(id string, at time.Time, file string) {
		if err := st.Append(ctx, []monitor.Event{{ID: id, Time: at, Partner: "datasea", Flow: "death", Type: monitor.Fetched,
			Status: monitor.OK, FileName: file, ExchangeID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	add("y", sh(2026, 11, 26, 5, 40), "DEATH_20261126.txt")
	add("wrong", sh(2026, 11, 27, 5, 50), "MIGRATION_20261127.txt")
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s := states(t, tr, sh(2026, 11, 20, 0, 0), sh(2026, 12, 1, 0, 0))
	if e := s["death-daily 11-26 06:00"]; e.State != monitor.ExpectMet || !e.MetAt.Equal(sh(2026, 11, 26, 5, 40)) || e.MetEventID != "y" {
		t.Errorf("yesterday: %+v", e)
	}
	if e := s["death-daily 11-27 06:00"]; e.State != monitor.ExpectPending {
		t.Errorf("today before the deadline: %+v", e)
	}
	if len(al.list) != 0 {
		t.Fatalf("alerts before deadline: %+v", al.list)
	}
	fc.Set(sh(2026, 11, 27, 6, 1))
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s = states(t, tr, sh(2026, 11, 20, 0, 0), sh(2026, 12, 1, 0, 0))
	if e := s["death-daily 11-27 06:00"]; e.State != monitor.ExpectMissed || !e.MetAt.IsZero() {
		t.Errorf("today after the deadline: %+v", e)
	}
	if e, ok := s["death-daily 11-28 06:00"]; !ok || e.State != monitor.ExpectPending {
		t.Errorf("tomorrow's instance: %+v", e)
	}
	if len(al.list) != 1 || al.list[0].Rule != "expectation" || al.list[0].Severity != monitor.SevCritical || al.list[0].Partner != "datasea" {
		t.Fatalf("alerts %+v", al.list)
	}
	if a := al.list[0]; a.Message != monitor.MsgExpectation || a.Args["name"] != "death-daily" || a.Args["due"] != "2026-11-27T06:00:00+08:00" {
		t.Errorf("alert message %q %v, want %s with the expectation's name and due time", a.Message, a.Args, monitor.MsgExpectation)
	}
	if len(em.evs) != 1 || em.evs[0].Type != monitor.ExpectationMissed || em.evs[0].Flow != "death" {
		t.Fatalf("events %+v", em.evs)
	}
	// Checking again neither alerts nor emits twice.
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if len(al.list) != 1 || len(em.evs) != 1 {
		t.Errorf("repeated check: %d alerts %d events", len(al.list), len(em.evs))
	}
	// The file arrives late: still missed, with its arrival recorded.
	add("late", sh(2026, 11, 27, 6, 30), "DEATH_20261127.txt")
	fc.Set(sh(2026, 11, 27, 6, 31))
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s = states(t, tr, sh(2026, 11, 20, 0, 0), sh(2026, 12, 1, 0, 0))
	if e := s["death-daily 11-27 06:00"]; e.State != monitor.ExpectMissed || !e.MetAt.Equal(sh(2026, 11, 27, 6, 30)) {
		t.Errorf("late arrival: %+v", e)
	}
	// The late file is today's: it does not also meet tomorrow's expectation.
	if e := s["death-daily 11-28 06:00"]; e.State != monitor.ExpectPending {
		t.Errorf("tomorrow: %+v", e)
	}
}

func TestOneOffBankReturn(t *testing.T) {
	ctx := context.Background()
	tr, st, fc, al, _ := setup(t, sh(2026, 12, 1, 9, 0))
	due := sh(2026, 12, 5, 18, 0)
	for _, name := range []string{"boc-return-2026-11", "ccb-return-2026-11"} {
		partner := "bank." + name[:3]
		if err := tr.Expect(ctx, monitor.Expectation{Name: name, Partner: partner, Flow: "allowance",
			Type: monitor.Downloaded, BatchID: "2026-11", Due: due}); err != nil {
			t.Fatal(err)
		}
	}
	// Registering again is a no-op.
	if err := tr.Expect(ctx, monitor.Expectation{Name: "boc-return-2026-11", Partner: "bank.boc", Due: due}); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, []monitor.Event{
		{ID: "b", Time: sh(2026, 12, 5, 17, 0), Partner: "bank.boc", Flow: "allowance", Type: monitor.Downloaded, Status: monitor.OK, BatchID: "2026-11", ExchangeID: "b"},
		{ID: "c-other-batch", Time: sh(2026, 12, 5, 17, 0), Partner: "bank.ccb", Flow: "allowance", Type: monitor.Downloaded, Status: monitor.OK, BatchID: "2026-10", ExchangeID: "c"},
		{ID: "c-failed", Time: sh(2026, 12, 5, 17, 30), Partner: "bank.ccb", Flow: "allowance", Type: monitor.Downloaded, Status: monitor.Error, BatchID: "2026-11", ExchangeID: "c2"},
	}); err != nil {
		t.Fatal(err)
	}
	fc.Set(sh(2026, 12, 5, 18, 0).Add(time.Second))
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s := states(t, tr, sh(2026, 12, 1, 0, 0), sh(2026, 12, 31, 0, 0))
	if e := s["boc-return-2026-11 12-05 18:00"]; e.State != monitor.ExpectMet {
		t.Errorf("boc: %+v", e)
	}
	if e := s["ccb-return-2026-11 12-05 18:00"]; e.State != monitor.ExpectMissed {
		t.Errorf("ccb: %+v", e)
	}
	if len(al.list) != 1 || al.list[0].Partner != "bank.ccb" {
		t.Errorf("alerts %+v", al.list)
	}
	if len(s) != 2 {
		t.Errorf("expectations %v", s)
	}
}

func TestSchedules(t *testing.T) {
	cases := []struct {
		spec       string
		at         time.Time
		next, prev time.Time
	}{
		{"daily 06:00", sh(2026, 11, 27, 5, 0), sh(2026, 11, 27, 6, 0), sh(2026, 11, 26, 6, 0)},
		{"daily 06:00", sh(2026, 11, 27, 6, 0), sh(2026, 11, 28, 6, 0), sh(2026, 11, 26, 6, 0)},
		{"daily 00:00", sh(2026, 12, 31, 23, 0), sh(2027, 1, 1, 0, 0), sh(2026, 12, 31, 0, 0)},
		{"monthly 5 18:00", sh(2026, 11, 27, 9, 0), sh(2026, 12, 5, 18, 0), sh(2026, 11, 5, 18, 0)},
		{"monthly 31 12:00", sh(2027, 2, 10, 0, 0), sh(2027, 2, 28, 12, 0), sh(2027, 1, 31, 12, 0)},
		{"monthly 5 18:00", sh(2026, 12, 20, 0, 0), sh(2027, 1, 5, 18, 0), sh(2026, 12, 5, 18, 0)},
	}
	for _, tc := range cases {
		s, err := monitor.ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.Next(tc.at); !n.Equal(tc.next) {
			t.Errorf("%s Next(%v) = %v, want %v", tc.spec, tc.at, n, tc.next)
		}
		if p := s.Prev(tc.at); !p.Equal(tc.prev) {
			t.Errorf("%s Prev(%v) = %v, want %v", tc.spec, tc.at, p, tc.prev)
		}
	}
	for _, bad := range []string{"", "weekly 1 06:00", "daily 25:00", "monthly 0 06:00", "monthly x 06:00", "daily"} {
		if _, err := monitor.ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q): want error", bad)
		}
	}
}

// lateStore hides its events from the first search: the monitor's writer
// storing an event in the middle of a Check.
type lateStore struct {
	monitor.Store
	mu       sync.Mutex
	searched bool
}

func (s *lateStore) Search(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	s.mu.Lock()
	first := !s.searched
	s.searched = true
	s.mu.Unlock()
	if first {
		return nil, nil
	}
	return s.Store.Search(ctx, f)
}

// TestEventStoredDuringCheckMeetsTheEarlierInstance: a daily pull's event
// stored between the search of today's expectation and the search of
// tomorrow's (registered as the pull ended, its window starting at the
// event's own millisecond) meets today's, not tomorrow's.
func TestEventStoredDuringCheckMeetsTheEarlierInstance(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if err := expect.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	fc := clock.NewFake(sh(2026, 12, 3, 5, 0))
	tr, err := expect.New(db, &lateStore{Store: st}, expect.Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	today, tomorrow := sh(2026, 12, 3, 23, 59), sh(2026, 12, 4, 23, 59)
	if err := tr.Expect(ctx, monitor.Expectation{Name: "pull", Partner: "datasea", Flow: "death", Type: monitor.Fetched, Due: today}); err != nil {
		t.Fatal(err)
	}
	fc.Set(sh(2026, 12, 3, 5, 1))
	if err := st.Append(ctx, []monitor.Event{{ID: "e1", Time: fc.Now(), Partner: "datasea", Flow: "death", Type: monitor.Fetched, Status: monitor.OK, ExchangeID: "e1"}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Expect(ctx, monitor.Expectation{Name: "pull", Partner: "datasea", Flow: "death", Type: monitor.Fetched, Due: tomorrow}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := tr.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s := states(t, tr, sh(2026, 12, 1, 0, 0), sh(2026, 12, 31, 0, 0))
	if e := s["pull 12-03 23:59"]; e.State != monitor.ExpectMet {
		t.Errorf("today's: %+v, want met", e)
	}
	if e := s["pull 12-04 23:59"]; e.State != monitor.ExpectPending {
		t.Errorf("tomorrow's: %+v, want pending (today's event is not tomorrow's)", e)
	}
}

// TestExpectFrom: an expectation registered after the fact with From
// counts the events since From (the service registered it after its own
// commit, and the awaited event came in between); one without From counts
// only those after it was registered.
func TestExpectFrom(t *testing.T) {
	ctx := context.Background()
	tr, st, fc, al, _ := setup(t, sh(2026, 12, 1, 9, 0))
	if err := st.Append(ctx, []monitor.Event{{ID: "r", Time: sh(2026, 12, 1, 9, 0).Add(-time.Second), Partner: "bureau",
		Flow: "portal-inbox", Type: monitor.Reconciled, Status: monitor.OK, FileName: "eligible-MZ-JZZM-2026-12.csv", ExchangeID: "r"}}); err != nil {
		t.Fatal(err)
	}
	due := sh(2026, 12, 1, 11, 0)
	base := monitor.Expectation{Partner: "bureau", Flow: "portal-inbox", Type: monitor.Reconciled, FilePattern: "eligible-MZ-JZZM-*.csv", Due: due}
	with, without := base, base
	with.Name, with.From = "with-from", sh(2026, 12, 1, 8, 0)
	without.Name = "without-from"
	for _, e := range []monitor.Expectation{with, without} {
		if err := tr.Expect(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	late := base
	late.Name, late.From = "from-after-due", due.Add(time.Minute)
	if err := tr.Expect(ctx, late); err == nil {
		t.Error("a From after Due was accepted")
	}
	fc.Set(due.Add(time.Second))
	if err := tr.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s := states(t, tr, sh(2026, 12, 1, 0, 0), sh(2026, 12, 2, 0, 0))
	if e := s["with-from 12-01 11:00"]; e.State != monitor.ExpectMet || e.MetEventID != "r" || !e.From.Equal(with.From) {
		t.Errorf("with From: %+v", e)
	}
	if e := s["without-from 12-01 11:00"]; e.State != monitor.ExpectMissed {
		t.Errorf("without From: %+v", e)
	}
	if len(al.list) != 1 || al.list[0].Summary == "" {
		t.Errorf("alerts %+v", al.list)
	}
	if len(s) != 2 {
		t.Errorf("expectations %v", s)
	}
}
