package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Rules evaluates the alert rules over the event store.
type Rules struct {
	// Store is the event store.
	Store monitor.Store
	// Inbox receives the alerts.
	Inbox *Inbox
	// Clock tells the time.
	Clock clock.Clock
	// Schedules and Thresholds as in monitor.Config.
	Schedules  []monitor.FlowSchedule
	Thresholds monitor.Thresholds
	// MinEvents is the fewest events in the hour before the error-rate rule
	// applies (default 10), so one failure out of two is not an alarm.
	MinEvents int64
	// Every is the evaluation interval (default 1 minute).
	Every time.Duration
	// Logger reports evaluation errors.
	Logger *slog.Logger
}

// Evaluate runs every rule once.
func (r *Rules) Evaluate(ctx context.Context) error {
	now := r.Clock.Now()
	minEvents := r.MinEvents
	if minEvents <= 0 {
		minEvents = 10
	}
	cells, err := monitor.HealthMatrix(ctx, r.Store, now, r.Schedules, r.Thresholds)
	if err != nil {
		return err
	}
	th := r.Thresholds
	var errs []error
	raise := func(a monitor.Alert) {
		if _, err := r.Inbox.Raise(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range cells {
		if rate := c.H1.ErrorRate(); c.H1.Events >= minEvents {
			sev := monitor.Severity("")
			switch {
			case th.ErrorRateRed > 0 && rate >= th.ErrorRateRed:
				sev = monitor.SevCritical
			case th.ErrorRateAmber > 0 && rate >= th.ErrorRateAmber:
				sev = monitor.SevWarning
			}
			if sev != "" {
				raise(monitor.Alert{Rule: "error_rate", Severity: sev, Partner: c.Partner, Flow: c.Flow,
					Summary: fmt.Sprintf("error rate %.1f%% over the last hour (%d of %d events)", rate*100, c.H1.Errors, c.H1.Events),
					Message: monitor.MsgErrorRate, Args: map[string]string{"rate": pct(rate), "errors": num(c.H1.Errors), "events": num(c.H1.Events)}})
			}
		}
		switch {
		case th.BacklogRed > 0 && c.Backlog >= th.BacklogRed:
			raise(monitor.Alert{Rule: "backlog", Severity: monitor.SevCritical, Partner: c.Partner, Flow: c.Flow,
				Summary: fmt.Sprintf("%d dead letters waiting", c.Backlog),
				Message: monitor.MsgBacklog, Args: map[string]string{"count": strconv.Itoa(c.Backlog)}})
		case th.BacklogAmber > 0 && c.Backlog >= th.BacklogAmber:
			raise(monitor.Alert{Rule: "backlog", Severity: monitor.SevWarning, Partner: c.Partner, Flow: c.Flow,
				Summary: fmt.Sprintf("%d dead letters waiting", c.Backlog),
				Message: monitor.MsgBacklog, Args: map[string]string{"count": strconv.Itoa(c.Backlog)}})
		}
		if c.Stale(now) {
			sev, since := monitor.SevWarning, "never"
			msg, args := monitor.MsgStalenessNever, map[string]string{"every": c.Every.String()}
			if !c.LastOK.IsZero() {
				since = c.LastOK.In(clock.Shanghai).Format("2006-01-02 15:04")
				msg, args["since"] = monitor.MsgStaleness, c.LastOK.In(clock.Shanghai).Format(time.RFC3339)
				if now.Sub(c.LastOK) > 2*c.Every {
					sev = monitor.SevCritical
				}
			}
			raise(monitor.Alert{Rule: "staleness", Severity: sev, Partner: c.Partner, Flow: c.Flow,
				Summary: fmt.Sprintf("no success within %s (last success: %s)", c.Every, since), Message: msg, Args: args})
		}
	}
	// Incidents of the last two evaluation intervals (the overlap makes
	// sure none is missed; de-duplication absorbs repeats).
	every := r.Every
	if every <= 0 {
		every = time.Minute
	}
	if err := r.eventRules(ctx, now.Add(-2*every), now.Add(time.Millisecond), raise); err != nil {
		errs = append(errs, err)
	}
	if err := r.resolvePartnersDown(ctx, now, 2*every+time.Minute); err != nil {
		errs = append(errs, err)
	}
	if err := r.Inbox.RefreshGauge(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run evaluates every r.Every until ctx is done.
func (r *Rules) Run(ctx context.Context) error {
	every := r.Every
	if every <= 0 {
		every = time.Minute
	}
	for {
		if err := r.Evaluate(ctx); err != nil && ctx.Err() == nil && r.Logger != nil {
			r.Logger.Warn("monitor: evaluate alert rules", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.Clock.After(every):
		}
	}
}

// pct formats a share as a percentage with one decimal ("22.0"), num a count:
// message parameters are language neutral.
func pct(share float64) string { return strconv.FormatFloat(share*100, 'f', 1, 64) }

func num(n int64) string { return strconv.FormatInt(n, 10) }
