package datasea

import (
	"context"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Expecter registers expected exchanges in the monitor (hubmon.Monitor).
type Expecter interface {
	Expect(ctx context.Context, e monitor.Expectation) error
}

// ExpectationName names the daily pull's expectation in the monitor.
const ExpectationName = "datasea-daily-pull"

// Job runs the daily pull: at PullAt (Asia/Shanghai) every day, again
// every RetryEvery until it succeeds, and it expects each day's pull in
// the monitor by DueBy (a missed one raises an alert). Run it as a
// singleton job (one replica at a time).
type Job struct {
	// Puller pulls the feeds.
	Puller *Puller
	// Config gives PullAt, DueBy and RetryEvery.
	Config Config
	// Expect, when set, receives the daily expectations.
	Expect Expecter
	// Clock and Logger (nil: real time, discard).
	Clock  clock.Clock
	Logger *slog.Logger
	// Immediate pulls once at start whatever the time (the demo).
	Immediate bool
	// Pulled, when set, is told about each successful pull (tests, the demo).
	Pulled func(Pull)
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
		res, err := j.Puller.Pull(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("datasea: pull failed; retrying", "err", err, "retry_in", j.Config.RetryEvery)
			next = c.Now().Add(j.Config.RetryEvery)
			continue
		}
		log.Info("datasea: pulled", "records", res.Records, "new", res.Applied.New, "seen", res.Applied.Seen, "quarantined", res.Applied.Quarantined)
		if j.Pulled != nil {
			j.Pulled(res)
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
	if err := j.Expect.Expect(ctx, monitor.Expectation{Name: ExpectationName, Partner: Partner, Flow: "death",
		Type: monitor.Fetched, Due: due}); err != nil {
		log.Warn("datasea: expectation", "err", err)
	}
}
