package bankaccounts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// monitorDown refuses every expectation.
type monitorDown struct{}

func (monitorDown) Expect(context.Context, monitor.Expectation) error {
	return errors.New("monitor store down")
}

// stepFailures takes the events emitted so far and returns the failed
// events of steps that could not finish, by partner and flow.
func (e *env) stepFailures() map[string][]monitor.Event {
	out := map[string][]monitor.Event{}
	for {
		select {
		case ev := <-e.ev.ch:
			if ev.Type == monitor.Failed && ev.ErrorCode == monitor.ErrCodeStepFailed {
				out[ev.Partner+" "+ev.Flow] = append(out[ev.Partner+" "+ev.Flow], ev)
			}
			continue
		default:
		}
		return out
	}
}

// TestFailedPassStepIsReported: a step of a pass that cannot finish turns
// its bank's operation flow red with a failed event — the listing of the
// bank's result folder, a result expectation the monitor refused — while
// the other banks go on; an upload the SFTP connector reported with its
// file is not reported again; each is retried at the next pass.
func TestFailedPassStepIsReported(t *testing.T) {
	ctx := context.Background()
	e := start(t, nil, t.TempDir())
	if err := e.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.stepFailures(); len(got) != 0 {
		t.Fatalf("a good pass reported failures: %v", got)
	}

	// BOC's result folder is gone: each operation's poll stops.
	boc := filepath.Join(e.sims["boc"].Root(), filepath.FromSlash(e.sims["boc"].Config.SFTP.PollDir))
	if err := os.RemoveAll(boc); err != nil {
		t.Fatal(err)
	}
	err := e.svc.Pass(ctx)
	if err == nil || !strings.Contains(err.Error(), "bank boc: results") || strings.Contains(err.Error(), "bank ccb") {
		t.Fatalf("pass without BOC's result folder: %v", err)
	}
	got := e.stepFailures()
	if len(got) != len(bank.AccountOps) {
		t.Fatalf("reported %d flows, want one per operation at BOC: %v", len(got), got)
	}
	for _, op := range bank.AccountOps {
		evs := got["bank.boc "+op.Flow()]
		if len(evs) != 1 {
			t.Fatalf("%s at BOC: %d failed events, want 1 (%v)", op, len(evs), got)
		}
		ev := evs[0]
		if ev.Status != monitor.Error || ev.Direction != monitor.Internal || ev.ErrorClass != "internal" ||
			!strings.HasPrefix(ev.ErrorMessage, "results: ") || ev.Component != "accounts" {
			t.Fatalf("failed event: %+v", ev)
		}
	}
	if err := os.MkdirAll(boc, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.stepFailures(); len(got) != 0 {
		t.Fatalf("a good pass after the fix reported failures: %v", got)
	}

	// CCB's upload folder is gone: the upload fails, which the connector
	// reports with the file; the pass does not report it again.
	p := synth.New(12).Next()
	if _, err := e.svc.Submit(ctx, []Request{{ExtID: "v1", Bank: "ccb", Op: bank.OpVerify, PersonID: p.ID, Name: p.Name, Account: p.Account, Division: p.Division}}); err != nil {
		t.Fatal(err)
	}
	ccb := filepath.Join(e.sims["ccb"].Root(), filepath.FromSlash(e.sims["ccb"].Config.SFTP.UploadDir))
	if err := os.RemoveAll(ccb); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Pass(ctx); err == nil || !strings.Contains(err.Error(), "upload") {
		t.Fatalf("pass without CCB's upload folder: %v", err)
	}
	if got := e.stepFailures(); len(got) != 0 {
		t.Fatalf("an upload failure was reported again by the pass: %v", got)
	}

	// Put right, with the monitor refusing expectations and CCB holding
	// the file unanswered: the file is sent; its result expectation fails
	// right after the upload (logged, retried at the next pass) and at the
	// next pass, which reports it.
	if err := os.MkdirAll(ccb, 0o750); err != nil {
		t.Fatal(err)
	}
	e.svc.expect = monitorDown{}
	e.sims["ccb"].HoldTaking.Store(true)
	if err := e.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.stepFailures(); len(got) != 0 {
		t.Fatalf("the expectation after the upload was reported at once: %v", got)
	}
	if err := e.svc.Pass(ctx); err == nil || !strings.Contains(err.Error(), "monitor store down") {
		t.Fatalf("pass with the monitor refusing: %v", err)
	}
	got = e.stepFailures()
	evs := got["bank.ccb "+bank.OpVerify.Flow()]
	if len(got) != 1 || len(evs) != 1 || !strings.HasPrefix(evs[0].ErrorMessage, "result expectation: ") {
		t.Fatalf("refused expectation: %v", got)
	}
	e.sims["ccb"].HoldTaking.Store(false)
	e.svc.expect = nil
	e.settle(t)
}
