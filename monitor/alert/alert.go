package alert

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Errors.
var (
	// ErrNotFound: no alert with that id in a state the action applies to.
	ErrNotFound = errors.New("alert: not found or already in that state")
	// ErrNoUser: acknowledging and resolving need a named user.
	ErrNoUser = errors.New("alert: a named user is required")
)

// Inbox stores alerts. It is safe for concurrent use and across replicas
// (the live-fingerprint unique index de-duplicates).
type Inbox struct {
	db      *store.DB
	clock   clock.Clock
	auditor audit.Appender
	open    *prometheus.GaugeVec
	raised  *prometheus.CounterVec
}

// Migrate applies the alert schema to the state database.
func Migrate(ctx context.Context, db *store.DB) error {
	sub, _ := fs.Sub(migrations, "migrations")
	return db.Migrate(ctx, "monitor_alert", sub)
}

// NewInbox returns an inbox on a migrated state database. auditor records
// acknowledgements and resolutions; reg (may be nil) gets the alert metrics.
func NewInbox(db *store.DB, c clock.Clock, auditor audit.Appender, reg prometheus.Registerer) *Inbox {
	if c == nil {
		c = clock.Real{}
	}
	in := &Inbox{db: db, clock: c, auditor: auditor,
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mzhub_monitor_alerts_open",
			Help: "Alerts not resolved, by severity and state.",
		}, []string{"severity", "state"}),
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_monitor_alerts_raised_total",
			Help: "Alert raises (including de-duplicated repeats) by rule and severity.",
		}, []string{"rule", "severity"}),
	}
	if reg != nil {
		reg.MustRegister(in.open, in.raised)
	}
	return in
}

// Raise creates the alert or, while one with the same fingerprint is live,
// counts it again and refreshes its summary and severity. It reports
// whether a new alert was created.
func (in *Inbox) Raise(ctx context.Context, a monitor.Alert) (created bool, err error) {
	if a.Fingerprint == "" {
		a.Fingerprint = strings.Join([]string{a.Rule, a.Partner, a.Flow}, "/")
	}
	now := in.clock.Now().UnixMilli()
	args, err := encodeArgs(a.Args)
	if err != nil {
		return false, fmt.Errorf("alert: raise %s: %w", a.Fingerprint, err)
	}
	var count int64
	err = in.db.QueryRowContext(ctx, in.db.Rebind(`INSERT INTO monitor_alerts
		(fingerprint, rule, severity, partner, flow, summary, msg_key, msg_args, state, first_ms, last_ms, count)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 1)
		ON CONFLICT (fingerprint) WHERE state <> 'resolved'
		DO UPDATE SET last_ms = excluded.last_ms, count = monitor_alerts.count + 1,
			summary = excluded.summary, msg_key = excluded.msg_key, msg_args = excluded.msg_args,
			severity = excluded.severity
		RETURNING count`), a.Fingerprint, a.Rule, string(a.Severity), a.Partner, a.Flow, a.Summary, a.Message, args, now, now).Scan(&count)
	if err != nil {
		return false, fmt.Errorf("alert: raise %s: %w", a.Fingerprint, err)
	}
	in.raised.WithLabelValues(a.Rule, string(a.Severity)).Inc()
	return count == 1, nil
}

// Ack acknowledges an open alert as user, audited.
func (in *Inbox) Ack(ctx context.Context, id int64, user, note string) error {
	return in.act(ctx, id, user, note, "ack", `UPDATE monitor_alerts SET state = 'acked', acked_by = ?, acked_ms = ?, note = ?
		WHERE id = ? AND state = 'open'`)
}

// Resolve resolves a live alert as user, audited.
func (in *Inbox) Resolve(ctx context.Context, id int64, user, note string) error {
	return in.act(ctx, id, user, note, "resolve", `UPDATE monitor_alerts SET state = 'resolved', resolved_by = ?, resolved_ms = ?, note = ?
		WHERE id = ? AND state <> 'resolved'`)
}

// AutoResolve resolves a live alert on the monitor's own evidence (the
// partner answers again): resolved by monitor.AutoResolver at the clock's
// now, why as a message key with parameters (Alert.ResolveMessage) and in
// English as the note; audited as the system actor.
func (in *Inbox) AutoResolve(ctx context.Context, id int64, key string, args map[string]string, note string) error {
	enc, err := encodeArgs(args)
	if err != nil {
		return fmt.Errorf("alert: resolve %d: %w", id, err)
	}
	return in.act(ctx, id, monitor.AutoResolver, note, "resolve", `UPDATE monitor_alerts SET state = 'resolved', resolved_by = ?, resolved_ms = ?, note = ?,
		resolve_key = ?, resolve_args = ? WHERE id = ? AND state <> 'resolved'`, key, enc)
}

func (in *Inbox) act(ctx context.Context, id int64, user, note, action, q string, extra ...any) error {
	if strings.TrimSpace(user) == "" {
		return ErrNoUser
	}
	if in.auditor == nil {
		return errors.New("alert: no auditor configured: actions must be audited")
	}
	// Check first so that only actions that apply are audited. The audit log
	// may live in the same SQLite file, so it is written outside any
	// transaction of ours; the UPDATE below re-checks the state.
	var state string
	err := in.db.QueryRowContext(ctx, in.db.Rebind(`SELECT state FROM monitor_alerts WHERE id = ?`), id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) || state == string(monitor.AlertResolved) || (action == "ack" && state != string(monitor.AlertOpen)) {
		return fmt.Errorf("alert: %s %d: %w", action, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("alert: %s %d: %w", action, id, err)
	}
	if _, err := in.auditor.Append(ctx, audit.Record{Actor: audit.UserActor(user), Action: "monitor.alert." + action,
		Object: fmt.Sprintf("alert/%d", id), Outcome: audit.OutcomeSuccess, Detail: note}); err != nil {
		return fmt.Errorf("alert: audit %s of %d: %w", action, id, err)
	}
	res, err := in.db.ExecContext(ctx, in.db.Rebind(q), append(append([]any{user, in.clock.Now().UnixMilli(), note}, extra...), id)...)
	if err != nil {
		return fmt.Errorf("alert: %s %d: %w", action, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alert: %s %d: %w", action, id, ErrNotFound)
	}
	return nil
}

// List returns alerts in a state ("" for all), newest first.
func (in *Inbox) List(ctx context.Context, state monitor.AlertState, limit int) ([]monitor.Alert, error) {
	if limit <= 0 {
		limit = 100
	}
	return in.list(ctx, state, "", limit)
}

// Live returns the alerts of a rule that are not resolved, newest first.
func (in *Inbox) Live(ctx context.Context, rule string) ([]monitor.Alert, error) {
	return in.list(ctx, "", rule, 1000)
}

func (in *Inbox) list(ctx context.Context, state monitor.AlertState, rule string, limit int) ([]monitor.Alert, error) {
	q := `SELECT id, fingerprint, rule, severity, partner, flow, summary, msg_key, msg_args, state, first_ms, last_ms, count,
		acked_by, acked_ms, resolved_by, resolved_ms, note, resolve_key, resolve_args FROM monitor_alerts`
	var args []any
	switch {
	case state != "":
		q += ` WHERE state = ?`
		args = append(args, string(state))
	case rule != "":
		q += ` WHERE rule = ? AND state <> 'resolved'`
		args = append(args, rule)
	}
	q += ` ORDER BY CASE state WHEN 'open' THEN 0 WHEN 'acked' THEN 1 ELSE 2 END, last_ms DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := in.db.QueryContext(ctx, in.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("alert: list: %w", err)
	}
	defer rows.Close()
	var out []monitor.Alert
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scan(rows *sql.Rows) (monitor.Alert, error) {
	var a monitor.Alert
	var sev, state, args, resolveArgs string
	var first, last, acked, resolved int64
	if err := rows.Scan(&a.ID, &a.Fingerprint, &a.Rule, &sev, &a.Partner, &a.Flow, &a.Summary, &a.Message, &args, &state, &first, &last,
		&a.Count, &a.AckedBy, &acked, &a.ResolvedBy, &resolved, &a.Note, &a.ResolveMessage, &resolveArgs); err != nil {
		return a, fmt.Errorf("alert: scan: %w", err)
	}
	var err error
	if a.Args, err = decodeArgs(args); err != nil {
		return a, fmt.Errorf("alert: scan %d: %w", a.ID, err)
	}
	if a.ResolveArgs, err = decodeArgs(resolveArgs); err != nil {
		return a, fmt.Errorf("alert: scan %d: %w", a.ID, err)
	}
	a.Severity, a.State = monitor.Severity(sev), monitor.AlertState(state)
	a.FirstAt, a.LastAt = time.UnixMilli(first), time.UnixMilli(last)
	if acked > 0 {
		a.AckedAt = time.UnixMilli(acked)
	}
	if resolved > 0 {
		a.ResolvedAt = time.UnixMilli(resolved)
	}
	return a, nil
}

// encodeArgs stores message parameters as a JSON object ("" for none).
func encodeArgs(args map[string]string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	b, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("message parameters: %w", err)
	}
	return string(b), nil
}

func decodeArgs(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("message parameters: %w", err)
	}
	return m, nil
}

// RefreshGauge recounts live alerts for mzhub_monitor_alerts_open.
func (in *Inbox) RefreshGauge(ctx context.Context) error {
	rows, err := in.db.QueryContext(ctx, `SELECT severity, state, count(*) FROM monitor_alerts WHERE state <> 'resolved' GROUP BY severity, state`)
	if err != nil {
		return fmt.Errorf("alert: count: %w", err)
	}
	defer rows.Close()
	in.open.Reset()
	for rows.Next() {
		var sev, state string
		var n int64
		if err := rows.Scan(&sev, &state, &n); err != nil {
			return err
		}
		in.open.WithLabelValues(sev, state).Set(float64(n))
	}
	return rows.Err()
}
