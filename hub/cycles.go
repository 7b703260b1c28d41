package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// consoleCycles lets the console's batches page drive the disbursement
// service: it is the one place that knows both. The console is built
// (wireCore) before the service (wireDisbursement), so the adapter looks
// the service up on each call; serving starts only after both are built.
// The service audits every request: Submit as "console:<user>", Confirm
// under the user's own name (the two levels are told apart by it), as the
// service's JSON API does.
type consoleCycles struct{ h *Hub }

var _ console.Cycles = consoleCycles{}

// errNoCycles: the hub was built without the disbursement service.
var errNoCycles = errors.New("hub: the disbursement service is not built")

func (c consoleCycles) svc() (*disbursement.Service, error) {
	if c.h.disbursement == nil {
		return nil, errNoCycles
	}
	return c.h.disbursement, nil
}

func (c consoleCycles) List(ctx context.Context, limit int) ([]monitor.Cycle, error) {
	svc, err := c.svc()
	if err != nil {
		return nil, err
	}
	bs, err := svc.Batches(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]monitor.Cycle, 0, len(bs))
	for _, b := range bs {
		cy, err := c.cycle(ctx, svc, b)
		if err != nil {
			return nil, err
		}
		out = append(out, cy)
	}
	return out, nil
}

func (c consoleCycles) cycle(ctx context.Context, svc *disbursement.Service, b disbursement.Batch) (monitor.Cycle, error) {
	cy := monitor.Cycle{Name: b.Name, Kind: b.Kind, Period: b.Period, Stage: b.Stage, Status: cycleStatus(b.Status), Error: b.Error,
		Records: b.Records, Valid: b.Valid, SystemTotalFen: b.SystemTotal, LetterTotalFen: b.LetterTotal}
	cs, err := svc.Confirmations(ctx, bank.Kind(b.Kind), b.Period)
	if err != nil {
		return cy, err
	}
	for _, x := range cs {
		cy.Confirmations = append(cy.Confirmations, monitor.CycleConfirmation{Level: x.Level, User: x.User, At: x.At})
	}
	return cy, nil
}

// cycleStatus maps the service's batch statuses to the monitor's.
func cycleStatus(s string) string {
	switch s {
	case disbursement.BatchQueued:
		return monitor.CycleQueued
	case disbursement.BatchRunning:
		return monitor.CycleRunning
	case disbursement.BatchAwaitingLetter:
		return monitor.CycleAwaitingLetterTotal
	case disbursement.BatchAwaiting:
		return monitor.CycleAwaitingConfirmation
	case disbursement.BatchFailed:
		return monitor.CycleFailed
	case disbursement.BatchDone:
		return monitor.CycleDone
	}
	return s
}

func (c consoleCycles) Status(ctx context.Context, kind, period string) (*monitor.CycleStatus, error) {
	svc, err := c.svc()
	if err != nil {
		return nil, err
	}
	st, err := svc.Status(ctx, bank.Kind(kind), period)
	if err != nil {
		return nil, cycleRefusal(err)
	}
	cy, err := c.cycle(ctx, svc, st.Batch)
	if err != nil {
		return nil, err
	}
	out := &monitor.CycleStatus{Cycle: cy, Counts: st.Counts, Issues: st.Issues, Quarantined: st.Quarantined}
	for _, s := range st.Stages {
		cs := monitor.CycleStage{Stage: s.Stage, Detail: s.Detail}
		if s.StartedMs > 0 {
			cs.Started = time.UnixMilli(s.StartedMs)
		}
		if s.EndedMs > 0 {
			cs.Finished = time.UnixMilli(s.EndedMs)
		}
		out.Stages = append(out.Stages, cs)
	}
	return out, nil
}

func (c consoleCycles) Inbox(context.Context) (monitor.CycleInbox, error) {
	svc, err := c.svc()
	if err != nil {
		return monitor.CycleInbox{}, err
	}
	lists, err := svc.InboxLists()
	return monitor.CycleInbox{Dir: svc.InboxDir(), Lists: lists}, err
}

func (c consoleCycles) Submit(ctx context.Context, req monitor.CycleRequest, user string) (monitor.Cycle, error) {
	svc, err := c.svc()
	if err != nil {
		return monitor.Cycle{}, err
	}
	r := disbursement.Request{Kind: bank.Kind(req.Kind), Period: req.Period, LetterTotal: req.LetterTotalFen, Actor: "console:" + user}
	if req.List != "" {
		if r.ListFile, err = svc.InboxFile(req.List); err != nil {
			return monitor.Cycle{}, cycleRefusal(err)
		}
	}
	b, err := svc.Submit(ctx, r)
	if err != nil {
		cy := monitor.Cycle{}
		if b != nil {
			cy.Name = b.Name
		}
		return cy, cycleRefusal(err)
	}
	return c.cycle(ctx, svc, *b)
}

func (c consoleCycles) Confirm(ctx context.Context, kind, period, level, user string) error {
	svc, err := c.svc()
	if err != nil {
		return err
	}
	return cycleRefusal(svc.Confirm(ctx, bank.Kind(kind), period, level, user))
}

// cycleRefusal wraps a refusal of the service with the monitor's sentinel,
// so that the console says why; other errors pass as they are.
func cycleRefusal(err error) error {
	for _, x := range []struct{ svc, mon error }{
		{disbursement.ErrSameConfirmer, monitor.ErrSameConfirmer},
		{disbursement.ErrConfirmOrder, monitor.ErrConfirmOrder},
		{disbursement.ErrBatchDone, monitor.ErrCycleDone},
		{disbursement.ErrListTaken, monitor.ErrCycleListTaken},
		{disbursement.ErrBadPeriod, monitor.ErrCycleBadPeriod},
		{disbursement.ErrNotInInbox, monitor.ErrCycleNoList},
		{disbursement.ErrNoBatch, monitor.ErrNoCycle},
	} {
		if errors.Is(err, x.svc) {
			return fmt.Errorf("%w: %w", x.mon, err)
		}
	}
	return err
}
