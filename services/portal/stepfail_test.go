package portal

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
)

// quiet waits for the service's round or drain under way, if any (both
// hold roundMu).
func (e *env) quiet() {
	e.svc.roundMu.Lock()
	e.svc.roundMu.Unlock() // an empty section: it waits for the holder
}

// stepFailures returns the failed events of flow that a round's step
// emitted because it could not finish.
func (r *recEvents) stepFailures(flow string) []monitor.Event {
	var out []monitor.Event
	for _, e := range r.find(flow, monitor.Failed) {
		if e.ErrorCode == monitor.ErrCodeStepFailed {
			out = append(out, e)
		}
	}
	return out
}

// TestFailedStepIsReported: a round's step that cannot finish (here the
// inbox folder cannot be read) turns its flow red with a failed event;
// the round goes on with the other steps and the next round retries.
func TestFailedStepIsReported(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if got := e.events.stepFailures(FlowInbox); len(got) != 0 {
		t.Fatalf("a good round reported failures: %+v", got)
	}
	// The inbox is a file instead of a folder: it cannot be listed.
	if err := os.RemoveAll(e.cfg.Inbox); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg.Inbox, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := e.round()
	if err == nil || !strings.Contains(err.Error(), "inbox") {
		t.Fatalf("round with an unreadable inbox: %v", err)
	}
	got := e.events.stepFailures(FlowInbox)
	if len(got) == 0 {
		t.Fatal("the failed inbox step emitted no failed event")
	}
	ev := got[0]
	if ev.Partner != PartnerBusiness || ev.Status != monitor.Error || ev.Direction != monitor.Internal ||
		ev.ErrorClass != "internal" || !strings.HasPrefix(ev.ErrorMessage, "inbox: ") || ev.Component != componentName {
		t.Fatalf("failed event: %+v", ev)
	}
	for _, flow := range []string{FlowPush, FlowPayout, FlowStatus} {
		if got := e.events.stepFailures(flow); len(got) != 0 {
			t.Fatalf("steps that did not fail reported %s: %+v", flow, got)
		}
	}
	// Put right, the next round is clean again.
	if err := os.Remove(e.cfg.Inbox); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.cfg.Inbox, 0o700); err != nil {
		t.Fatal(err)
	}
	e.quiet() // a background round that listed the file has reported
	n := len(e.events.stepFailures(FlowInbox))
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if got := e.events.stepFailures(FlowInbox); len(got) != n {
		t.Fatalf("a good round after the fix reported failures: %+v", got[n:])
	}
}

// TestReportedStepFailureIsNotRepeated: a step failure that emitted its
// own failed event (the outbox's publish, with its batch) is not reported
// a second time by the round; one that did not is, with its step's name.
func TestReportedStepFailureIsNotRepeated(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	e.stop()
	ctx := context.Background()
	e.svc.stepFailed(ctx, PartnerJobLib, FlowStatus, "outbox status", monitor.Reported(errors.New("portal: publish b1: bus down")))
	if got := e.events.stepFailures(FlowStatus); len(got) != 0 {
		t.Fatalf("a reported failure was reported again: %+v", got)
	}
	joined := errors.Join(errors.New("store: database is locked"))
	e.svc.stepFailed(ctx, PartnerJobLib, FlowStatus, "outbox status", joined)
	got := e.events.stepFailures(FlowStatus)
	if len(got) != 1 || got[0].Partner != PartnerJobLib || got[0].ErrorMessage != "outbox status: store: database is locked" {
		t.Fatalf("unreported failure: %+v", got)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	e.svc.stepFailed(stopped, PartnerJobLib, FlowStatus, "outbox status", errors.New("context canceled"))
	if got := e.events.stepFailures(FlowStatus); len(got) != 1 {
		t.Fatalf("a step stopped by the shutdown was reported: %+v", got[1:])
	}
}

// TestOutboxPublishFailureReportedOnce: when the bus refuses the outbox's
// batch, the batch's own failed event (class bus) reports it; the round's
// outbox step does not report it again. Once the bus is back, the batch is
// published and the round is clean.
func TestOutboxPublishFailureReportedOnce(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	e.bus.outDown.Store(true)
	e.sim.AddApplication(application("SBTEST000031", "MZ-GZFSQ", joblib.ChannelWeb, idFor("310104", "19700101", 1), "310104"))
	busFailures := func() int {
		n := 0
		for _, ev := range e.events.find(FlowStatus, monitor.Failed) {
			if ev.ErrorClass == "bus" {
				n++
			}
		}
		return n
	}
	e.waitFor("the node batch refused by the bus", func() bool { return busFailures() > 0 })
	e.quiet()
	if got := e.events.stepFailures(FlowStatus); len(got) != 0 {
		t.Fatalf("the publish failure was reported twice: %+v", got)
	}
	// Its retry, due after the back-off, fails in a round the same way.
	n := busFailures()
	e.clk.Advance(2 * e.cfg.RetryMaxWait)
	_ = e.svc.Round(context.Background())
	e.quiet()
	if busFailures() <= n {
		t.Fatal("the retry in the round was not refused by the bus")
	}
	if got := e.events.stepFailures(FlowStatus); len(got) != 0 {
		t.Fatalf("the publish failure was reported twice: %+v", got)
	}
	e.bus.outDown.Store(false)
	e.clk.Advance(2 * e.cfg.RetryMaxWait) // past the second back-off
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if e.bus.published(TopicOutNodes) == 0 {
		t.Fatal("nothing published once the bus was back")
	}
}
