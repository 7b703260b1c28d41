package datasea_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
)

// TestJobSchedule: a route started before pull_at waits for it; a failed
// pull is tried again after retry_every; a successful one registers
// tomorrow's expectation and waits for tomorrow's pull_at; a start past
// pull_at pulls at once.
func TestJobSchedule(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := datasea.DefaultConfig() // pull_at 05:00, due_by 06:00, retry_every 10m
	start := time.Date(2026, 12, 2, 4, 0, 0, 0, clock.Shanghai)
	fc := clock.NewFake(start)
	pulls := make(chan time.Time, 10)
	fail := 1
	exp := &expectations{}
	job := &datasea.Job{Feed: "migration", Config: cfg, Expect: exp, Clock: fc, Pull: func(context.Context) error {
		pulls <- fc.Now()
		if fail > 0 {
			fail--
			return errors.New("platform down")
		}
		return nil
	}}
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	next := func(want time.Time) {
		t.Helper()
		select {
		case got := <-pulls:
			if !got.Equal(want) {
				t.Fatalf("pulled at %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no pull at %s", want)
		}
	}
	advanceTo := func(at time.Time) {
		t.Helper()
		if err := fc.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fc.Set(at)
	}
	pullAt := time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)
	advanceTo(pullAt.Add(-time.Minute))
	select {
	case got := <-pulls:
		t.Fatalf("pulled at %s, before pull_at", got)
	default:
	}
	advanceTo(pullAt)
	next(pullAt) // fails
	advanceTo(pullAt.Add(cfg.RetryEvery))
	next(pullAt.Add(cfg.RetryEvery)) // succeeds
	tomorrow := pullAt.AddDate(0, 0, 1)
	advanceTo(tomorrow)
	next(tomorrow)
	got := exp.names()
	if !got["datasea-daily-pull-migration/migration"] || len(exp.got) < 2 {
		t.Fatalf("expectations %+v", exp.got)
	}
	exp.mu.Lock()
	if d := exp.got[0].Due; !d.Equal(time.Date(2026, 12, 2, 6, 0, 0, 0, clock.Shanghai)) {
		t.Errorf("today's due %s", d)
	}
	if d := exp.got[1].Due; !d.Equal(time.Date(2026, 12, 3, 6, 0, 0, 0, clock.Shanghai)) {
		t.Errorf("tomorrow's due %s", d)
	}
	exp.mu.Unlock()
	cancel()
	<-done

	// Started past pull_at: at once.
	late := clock.NewFake(pullAt.Add(3 * time.Hour))
	fail = 0
	fc = late
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	job.Clock = late
	go func() { done <- job.Run(ctx2) }()
	next(late.Now())
	cancel2()
	<-done
}
