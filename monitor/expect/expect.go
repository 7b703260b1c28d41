package expect

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the schema to the state database.
func Migrate(ctx context.Context, db *store.DB) error {
	sub, _ := fs.Sub(migrations, "migrations")
	return db.Migrate(ctx, "monitor_expect", sub)
}

// Raiser raises alerts (alert.Inbox).
type Raiser interface {
	Raise(ctx context.Context, a monitor.Alert) (bool, error)
}

// Emitter emits events (the monitor's writer).
type Emitter interface {
	Emit(ev monitor.Event)
}

// LateWatch is how long after its deadline a missed expectation is still
// watched for a late arrival (shown on the calendar).
const LateWatch = 7 * 24 * time.Hour

// Tracker checks expectations.
type Tracker struct {
	db     *store.DB
	events monitor.Store
	clock  clock.Clock
	rules  []rule
	alerts Raiser
	emit   Emitter
	log    *slog.Logger
}

type rule struct {
	monitor.ExpectationRule
	sched monitor.Schedule
}

// Options for a tracker; Alerts, Emit and Logger may be nil.
type Options struct {
	Rules  []monitor.ExpectationRule
	Clock  clock.Clock
	Alerts Raiser
	Emit   Emitter
	Logger *slog.Logger
}

// New returns a tracker over a migrated state database and an event store.
func New(db *store.DB, events monitor.Store, o Options) (*Tracker, error) {
	t := &Tracker{db: db, events: events, clock: o.Clock, alerts: o.Alerts, emit: o.Emit, log: o.Logger}
	if t.clock == nil {
		t.clock = clock.Real{}
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range o.Rules {
		s, err := monitor.ParseSchedule(r.Schedule)
		if err != nil {
			return nil, fmt.Errorf("expect: rule %s: %w", r.Name, err)
		}
		t.rules = append(t.rules, rule{r, s})
	}
	return t, nil
}

// Expect registers a one-off expectation, due at e.Due, met by events from
// e.From on (from now when e.From is zero). Registering the same name and
// due time again is a no-op.
func (t *Tracker) Expect(ctx context.Context, e monitor.Expectation) error {
	if e.Name == "" || e.Partner == "" || e.Due.IsZero() {
		return errors.New("expect: name, partner and due are required")
	}
	if e.FilePattern != "" {
		if _, err := path.Match(e.FilePattern, ""); err != nil {
			return fmt.Errorf("expect: %s: file pattern: %w", e.Name, err)
		}
	}
	from := t.clock.Now()
	if !e.From.IsZero() {
		if e.From.After(e.Due) {
			return fmt.Errorf("expect: %s: from %s is after due %s", e.Name, e.From.Format(time.RFC3339), e.Due.Format(time.RFC3339))
		}
		from = e.From
	}
	return t.insert(ctx, e, from)
}

func (t *Tracker) insert(ctx context.Context, e monitor.Expectation, from time.Time) error {
	_, err := t.db.ExecContext(ctx, t.db.Rebind(`INSERT INTO monitor_expectations
		(name, partner, flow, type, batch_id, file_pattern, from_ms, due_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')
		ON CONFLICT (name, due_ms) DO NOTHING`),
		e.Name, e.Partner, e.Flow, string(e.Type), e.BatchID, e.FilePattern, from.UnixMilli(), e.Due.UnixMilli())
	if err != nil {
		return fmt.Errorf("expect: register %s: %w", e.Name, err)
	}
	return nil
}

// materialise makes sure each rule has its upcoming and its last instance.
func (t *Tracker) materialise(ctx context.Context, now time.Time) error {
	for _, r := range t.rules {
		next := r.sched.Next(now)
		prev := r.sched.Prev(next)
		for _, due := range []time.Time{prev, next} {
			e := monitor.Expectation{Name: r.Name, Partner: r.Partner, Flow: r.Flow, Type: r.Type, FilePattern: r.FilePattern, Due: due}
			if err := t.insert(ctx, e, r.sched.Prev(due)); err != nil {
				return err
			}
		}
	}
	return nil
}

type row struct {
	monitor.Expectation
	from time.Time
}

// Check materialises recurring instances, marks met ones, and raises missed ones.
func (t *Tracker) Check(ctx context.Context) error {
	now := t.clock.Now()
	if err := t.materialise(ctx, now); err != nil {
		return err
	}
	rows, err := t.db.QueryContext(ctx, t.db.Rebind(`SELECT id, name, partner, flow, type, batch_id, file_pattern, from_ms, due_ms, state
		FROM monitor_expectations WHERE from_ms <= ? AND (state = 'pending' OR (state = 'missed' AND met_ms = 0 AND due_ms > ?))
		ORDER BY due_ms`), now.UnixMilli(), now.Add(-LateWatch).UnixMilli())
	if err != nil {
		return fmt.Errorf("expect: list pending: %w", err)
	}
	var todo []row
	for rows.Next() {
		var r row
		var from, due int64
		var typ, state string
		if err := rows.Scan(&r.ID, &r.Name, &r.Partner, &r.Flow, &typ, &r.BatchID, &r.FilePattern, &from, &due, &state); err != nil {
			rows.Close()
			return fmt.Errorf("expect: scan: %w", err)
		}
		r.Type, r.State = monitor.EventType(typ), monitor.ExpectationState(state)
		r.from, r.Due = time.UnixMilli(from), time.UnixMilli(due)
		todo = append(todo, r)
	}
	rows.Close()
	var errs []error
	for _, r := range todo {
		if err := t.check(ctx, r, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Tracker) check(ctx context.Context, r row, now time.Time) error {
	evs, err := t.events.Search(ctx, monitor.Filter{Partner: r.Partner, Flow: r.Flow, Type: r.Type, BatchID: r.BatchID,
		Status: monitor.OK, From: r.from, To: now.Add(time.Millisecond), Limit: 500})
	if err != nil {
		return fmt.Errorf("expect: %s: %w", r.Name, err)
	}
	var hit *monitor.Event
	for i := len(evs) - 1; i >= 0 && hit == nil; i-- { // newest first: take the earliest match
		if r.FilePattern != "" {
			if ok, _ := path.Match(r.FilePattern, evs[i].FileName); !ok {
				continue
			}
		}
		// One event meets one instance of a rule: a late file does not
		// also count for the next deadline. Nor does an event still open to
		// an earlier instance whose window holds it: stored between that
		// instance's search and this one's (the monitor's writer is
		// asynchronous), it would otherwise meet tomorrow's instance and
		// leave today's pending (a daily pull registers tomorrow's
		// expectation the moment it is done, in the same millisecond).
		var used int
		ms := evs[i].Time.UnixMilli()
		err := t.db.QueryRowContext(ctx, t.db.Rebind(`SELECT count(*) FROM monitor_expectations
			WHERE name = ? AND id <> ? AND (met_event_id = ?
				OR (state = 'pending' AND due_ms < ? AND from_ms <= ? AND due_ms >= ?))`),
			r.Name, r.ID, evs[i].ID, r.Due.UnixMilli(), ms, ms).Scan(&used)
		if err != nil {
			return fmt.Errorf("expect: %s: %w", r.Name, err)
		}
		if used == 0 {
			hit = &evs[i]
		}
	}
	switch {
	case hit != nil && !hit.Time.After(r.Due):
		return t.update(ctx, r.ID, monitor.ExpectMet, hit)
	case hit != nil && r.State == monitor.ExpectMissed:
		return t.update(ctx, r.ID, monitor.ExpectMissed, hit) // arrived late
	case now.After(r.Due) && r.State == monitor.ExpectPending:
		if err := t.update(ctx, r.ID, monitor.ExpectMissed, hit); err != nil {
			return err
		}
		t.missed(ctx, r)
	}
	return nil
}

func (t *Tracker) update(ctx context.Context, id int64, state monitor.ExpectationState, ev *monitor.Event) error {
	var ms int64
	var evID string
	if ev != nil {
		ms, evID = ev.Time.UnixMilli(), ev.ID
	}
	_, err := t.db.ExecContext(ctx, t.db.Rebind(`UPDATE monitor_expectations SET state = ?, met_ms = ?, met_event_id = ? WHERE id = ?`),
		string(state), ms, evID, id)
	if err != nil {
		return fmt.Errorf("expect: update %d: %w", id, err)
	}
	return nil
}

func (t *Tracker) missed(ctx context.Context, r row) {
	due := r.Due.In(clock.Shanghai).Format("2006-01-02 15:04")
	what := r.Name
	if r.BatchID != "" {
		what += " (batch " + r.BatchID + ")"
	}
	t.log.Warn("monitor: expectation missed", "expectation", r.Name, "partner", r.Partner, "flow", r.Flow, "due", due)
	if t.emit != nil {
		t.emit.Emit(monitor.Event{Time: t.clock.Now(), Partner: r.Partner, Flow: r.Flow, Direction: monitor.Internal,
			Type: monitor.ExpectationMissed, Status: monitor.Error, BatchID: r.BatchID, ExchangeID: fmt.Sprintf("expectation/%d", r.ID),
			ErrorClass: "expectation_missed", ErrorMessage: what + " due " + due, Component: "monitor.expect",
			Attrs: map[string]string{"expectation": r.Name, "due": due}})
	}
	if t.alerts != nil {
		msg, args := monitor.MsgExpectation, map[string]string{"name": r.Name, "due": r.Due.In(clock.Shanghai).Format(time.RFC3339)}
		if r.BatchID != "" {
			msg, args["batch"] = monitor.MsgExpectationBatch, r.BatchID
		}
		if _, err := t.alerts.Raise(ctx, monitor.Alert{Rule: "expectation", Severity: monitor.SevCritical, Partner: r.Partner,
			Flow: r.Flow, Fingerprint: fmt.Sprintf("expectation/%s/%d", r.Name, r.Due.UnixMilli()),
			Summary: what + " not received by " + due, Message: msg, Args: args}); err != nil {
			t.log.Error("monitor: raise expectation alert", "expectation", r.Name, "err", err)
		}
	}
}

// Between returns expectations due in [from, to), by due time.
func (t *Tracker) Between(ctx context.Context, from, to time.Time) ([]monitor.Expectation, error) {
	rows, err := t.db.QueryContext(ctx, t.db.Rebind(`SELECT id, name, partner, flow, type, batch_id, file_pattern, from_ms, due_ms, state, met_ms, met_event_id
		FROM monitor_expectations WHERE due_ms >= ? AND due_ms < ? ORDER BY due_ms, name`), from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("expect: list: %w", err)
	}
	defer rows.Close()
	var out []monitor.Expectation
	for rows.Next() {
		var e monitor.Expectation
		var typ, state string
		var from, due, met int64
		if err := rows.Scan(&e.ID, &e.Name, &e.Partner, &e.Flow, &typ, &e.BatchID, &e.FilePattern, &from, &due, &state, &met, &e.MetEventID); err != nil {
			return nil, fmt.Errorf("expect: scan: %w", err)
		}
		e.Type, e.State, e.From, e.Due = monitor.EventType(typ), monitor.ExpectationState(state), time.UnixMilli(from), time.UnixMilli(due)
		if met > 0 {
			e.MetAt = time.UnixMilli(met)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Run checks every interval until ctx is done.
func (t *Tracker) Run(ctx context.Context, every time.Duration) error {
	for {
		if err := t.Check(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("monitor: check expectations", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.clock.After(every):
		}
	}
}
