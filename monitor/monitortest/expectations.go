package monitortest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/store"
)

// Alerts keeps every alert raised to it; safe for concurrent use.
type Alerts struct {
	mu   sync.Mutex
	list []monitor.Alert
}

// Raise records a (always as new).
func (a *Alerts) Raise(_ context.Context, al monitor.Alert) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, al)
	return true, nil
}

// List returns a copy of the alerts raised so far.
func (a *Alerts) List() []monitor.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]monitor.Alert(nil), a.list...)
}

// Expectations is the monitor's real expectation tracker for a service's
// tests: its table in the service's state database, a fresh SQLite event
// store for the events it checks, and recorders of the alerts and the
// expectation_missed events it raises.
type Expectations struct {
	*expect.Tracker
	Events monitor.Store
	Alerts *Alerts
	Missed *Recorder
	seq    int
}

// NewExpectations migrates the tracker's table into db and opens the
// event store (closed when the test ends); the tracker tells time by clk.
func NewExpectations(t testing.TB, db *store.DB, clk clock.Clock) *Expectations {
	t.Helper()
	ctx := context.Background()
	if err := expect.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "monitor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	x := &Expectations{Events: st, Alerts: &Alerts{}, Missed: &Recorder{}}
	if x.Tracker, err = expect.New(db, st, expect.Options{Clock: clk, Alerts: x.Alerts, Emit: x.Missed}); err != nil {
		t.Fatal(err)
	}
	return x
}

// Store appends a service's events to the event store, each with a fresh
// id, as the hub's monitor writer stores them.
func (x *Expectations) Store(t testing.TB, evs ...monitor.Event) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	evs = append([]monitor.Event(nil), evs...)
	for i := range evs {
		x.seq++
		evs[i].ID = fmt.Sprintf("ev-%d", x.seq)
	}
	if err := x.Events.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}
