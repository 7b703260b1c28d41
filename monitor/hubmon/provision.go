package hubmon

import (
	"context"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/expect"
	"github.com/shanghai-mca/mzhub/monitor/quality"
)

// provision wires alerts, expectations and quality scoring (alerts and
// expectations need the state database) and the retention loop.
func (m *Monitor) provision(ctx context.Context, d Deps, cd *console.Deps) error {
	cfg := m.cfg
	scorer := &quality.Scorer{Store: m.store, Config: cfg.Quality, Clock: d.Clock, Logger: d.Logger}
	cd.Quality = scorer
	if d.State != nil {
		if err := alert.Migrate(ctx, d.State); err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		if err := expect.Migrate(ctx, d.State); err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		m.inbox = alert.NewInbox(d.State, d.Clock, d.Auditor, d.Metrics)
		scorer.Alerts = m.inbox
		rules := &alert.Rules{Store: m.store, Inbox: m.inbox, Clock: d.Clock, Schedules: cfg.Schedules,
			Thresholds: cfg.Thresholds, Every: cfg.CheckInterval, Logger: d.Logger}
		tr, err := expect.New(d.State, m.store, expect.Options{Rules: cfg.Expectations, Clock: d.Clock,
			Alerts: m.inbox, Emit: m.writer, Logger: d.Logger})
		if err != nil {
			return err
		}
		m.tracker = tr
		cd.Alerts, cd.Expectations = m.inbox, tr
		m.runs = append(m.runs, singleton(d, "monitor.alert_rules", rules.Run),
			singleton(d, "monitor.expectations", func(ctx context.Context) error { return tr.Run(ctx, cfg.CheckInterval) }))
	}
	m.runs = append(m.runs, singleton(d, "monitor.quality", func(ctx context.Context) error { return scorer.Run(ctx, time.Hour) }))
	if cfg.RetentionMonths > 0 {
		if r, ok := m.store.(retainer); ok {
			m.runs = append(m.runs, singleton(d, "monitor.retention", func(ctx context.Context) error { return retain(ctx, r, d, cfg.RetentionMonths) }))
		}
	}
	return nil
}

// singleton runs a periodic job under the lease name when d has leases:
// with several replicas, one checks, alerts and reports at a time.
func singleton(d Deps, name string, f func(context.Context) error) func(context.Context) error {
	if d.Leases == nil {
		return f
	}
	return func(ctx context.Context) error { return d.Leases.Run(ctx, name, f) }
}

// retainer drops whole months of events.
type retainer interface {
	DropMonthsBefore(ctx context.Context, t time.Time) ([]string, error)
}

func retain(ctx context.Context, r retainer, d Deps, months int) error {
	for {
		now := d.Clock.Now().In(clock.Shanghai)
		cut := time.Date(now.Year(), now.Month()-time.Month(months-1), 1, 0, 0, 0, 0, clock.Shanghai)
		if dropped, err := r.DropMonthsBefore(ctx, cut); err != nil {
			d.Logger.Warn("monitor: retention", "err", err)
		} else if len(dropped) > 0 {
			d.Logger.Info("monitor: retention dropped months", "partitions", dropped)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.Clock.After(6 * time.Hour):
		}
	}
}

// Expect registers a one-off expected exchange (e.g. a bank's return file
// for a batch). It fails when the monitor has no state database.
func (m *Monitor) Expect(ctx context.Context, e monitor.Expectation) error {
	if m.tracker == nil {
		return fmt.Errorf("monitor: expectations need the state database")
	}
	return m.tracker.Expect(ctx, e)
}

// Alerts is the alert inbox (nil without a state database).
func (m *Monitor) Alerts() *alert.Inbox { return m.inbox }
