package datasea

import (
	"context"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Expecter registers expected exchanges in the monitor (hubmon.Monitor).
type Expecter = monitor.Expecter

// ExpectationName names the daily pull's expectation in the monitor.
const ExpectationName = "datasea-daily-pull"

// ExpectationFor names a feed's daily expectation: ExpectationName for
// the death feed, ExpectationName-<feed> for the others.
func ExpectationFor(feed string) string {
	if feed == "death" {
		return ExpectationName
	}
	return ExpectationName + "-" + feed
}

// Job keeps the daily pull's schedule: Pull at PullAt (Asia/Shanghai)
// every day, at once when today's PullAt has passed (a restarted hub
// catches up; pulls are idempotent), again every RetryEvery until it
// succeeds, and it expects each day's pull of Feed in the monitor by DueBy
// (a missed one raises an alert). The datasea route kind runs one per
// route (route.go); the route engine runs it as a singleton (one replica
// at a time).
type Job struct {
	// Pull pulls once; an error is retried after RetryEvery.
	Pull func(ctx context.Context) error
	// Feed names the expectation's flow (ExpectationFor).
	Feed string
	// Config gives PullAt, DueBy and RetryEvery.
	Config Config
	// Expect, when set, receives the daily expectations.
	Expect Expecter
	// Clock and Logger (nil: real time, discard).
	Clock  clock.Clock
	Logger *slog.Logger
	// Immediate pulls once at start whatever the time (the demo).
	Immediate bool
}

// at returns the time h:m of the day of t, Asia/Shanghai.
func at(t time.Time, hm string) time.Time {
	h, m, _ := ParseClock(hm)
	t = t.In(clock.Shanghai)
	return time.Date(t.Year(), t.Month(), t.Day(), h, m, 0, 0, clock.Shanghai)
}

// Run pulls until ctx is done.
func (j *Job) Run(ctx context.Context) error {
	c := j.Clock
	if c == nil {
		c = clock.Real{}
	}
	log := j.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := c.Now()
	// The first pull: now when asked or when today's pull time has passed
	// (a restarted hub catches up; pulls are idempotent), else today's.
	next := at(now, j.Config.PullAt)
	if j.Immediate || !now.Before(next) {
		next = now
	}
	j.expect(ctx, log, at(now, j.Config.DueBy), now)
	for {
		if d := next.Sub(c.Now()); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-c.After(d):
			}
		}
		err := j.Pull(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("datasea: pull failed; retrying", "feed", j.Feed, "err", err, "retry_in", j.Config.RetryEvery)
			next = c.Now().Add(j.Config.RetryEvery)
			continue
		}
		// Tomorrow's pull, and its expectation.
		now = c.Now()
		next = at(now.AddDate(0, 0, 1), j.Config.PullAt)
		j.expect(ctx, log, at(now.AddDate(0, 0, 1), j.Config.DueBy), now)
	}
}

func (j *Job) expect(ctx context.Context, log *slog.Logger, due, now time.Time) {
	if j.Expect == nil || !now.Before(due) {
		return
	}
	if err := j.Expect.Expect(ctx, monitor.Expectation{Name: ExpectationFor(j.Feed), Partner: Partner, Flow: j.Feed,
		Type: monitor.Fetched, Due: due}); err != nil {
		log.Warn("datasea: expectation", "err", err)
	}
}
