package disbursement

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
)

// Batch statuses (disb_batches.status).
const (
	// BatchNew: being created by a request; no runner touches it yet.
	BatchNew = "new"
	// BatchQueued: asked for (console, CLI, a confirmation that completed
	// the pair); the cycle runner picks it up.
	BatchQueued = "queued"
	// BatchRunning: a runner works on it, or worked on it when the hub
	// stopped (the next runner resumes it).
	BatchRunning = "running"
	// BatchAwaiting: stopped at the confirmation stage until the district
	// and the city have confirmed.
	BatchAwaiting = "awaiting_confirmation"
	// BatchAwaitingLetter: stopped at the total check until the official
	// letter's total is entered.
	BatchAwaitingLetter = "awaiting_letter_total"
	// BatchFailed: a stage failed (the error says which and why); it stays
	// until someone resumes it.
	BatchFailed = "failed"
	// BatchDone: every stage finished.
	BatchDone = "done"
)

// Sentinel errors of requests.
var (
	// ErrBatchDone: the batch has finished; nothing to run.
	ErrBatchDone = errors.New("disbursement: batch already done")
	// ErrListTaken: the batch took its list in already; a new list needs a new batch.
	ErrListTaken = errors.New("disbursement: the list was taken in already")
)

// Request asks for a cycle to be run: by the hub's cycle runner (Serve),
// or by the caller itself through RunRequested.
type Request struct {
	// Kind is disbursement (default) or deduction.
	Kind Kind
	// Period is the month, "2026-11".
	Period string
	// ListFile is the payment list to take in; only before intake.
	ListFile string
	// LetterTotal is the official letter total in fen (发函总额); 0 keeps the stored one.
	LetterTotal int64
	// Actor names who asked (console user, "cli:<user>"); it is audited.
	Actor string
}

// Submit records a request: it creates the batch when new, copies the list
// in, records the letter total and queues the batch for the cycle runner.
// Every request is audited with its actor. A confirmation that completes
// the pair queues the batch by itself (see Confirm).
func (s *Service) Submit(ctx context.Context, r Request) (*Batch, error) {
	if r.Kind == "" {
		r.Kind = bank.Disbursement
	}
	if r.Actor == "" {
		return nil, errors.New("disbursement: a request needs an actor")
	}
	// A new batch is invisible to cycle runners (status new) until its
	// list is in place and it is queued below: a runner scanning meanwhile
	// would otherwise start the intake without the list and fail it.
	b, err := s.create(ctx, r.Kind, r.Period, BatchNew)
	if err != nil {
		return nil, err
	}
	if b.Status == BatchDone {
		return b, fmt.Errorf("%w: %s", ErrBatchDone, b.Name)
	}
	if r.ListFile != "" {
		if b.Stage != StageIntake {
			return b, fmt.Errorf("%w: %s is at stage %s", ErrListTaken, b.Name, b.Stage)
		}
		if err := os.MkdirAll(s.dir(b), 0o700); err != nil {
			return b, fmt.Errorf("disbursement %s: %w", b.Name, err)
		}
		if err := copyFile(r.ListFile, s.listPath(b)); err != nil {
			return b, fmt.Errorf("disbursement %s: copy list: %w", b.Name, err)
		}
		// Whichever replica holds the cycle lease runs the batch.
		if err := s.shareList(ctx, b, s.listPath(b)); err != nil {
			return b, fmt.Errorf("disbursement %s: share list: %w", b.Name, err)
		}
		s.takeFromInbox(r.ListFile)
		s.auditf(ctx, r.Actor, "list", b.Name, "list %s taken for intake", filepath.Base(r.ListFile))
	}
	if r.LetterTotal != 0 && r.LetterTotal != b.LetterTotal {
		if err := s.setBatch(ctx, b, "letter_total = ?", r.LetterTotal); err != nil {
			return b, err
		}
		b.LetterTotal = r.LetterTotal
		s.auditf(ctx, r.Actor, "letter_total", b.Name, "letter total %s yuan", yuan(r.LetterTotal))
	}
	if err := s.setBatch(ctx, b, "status = ?, error = ''", BatchQueued); err != nil {
		return b, err
	}
	b.Status, b.Error = BatchQueued, ""
	s.auditf(ctx, r.Actor, "run", b.Name, "queued at stage %s", b.Stage)
	s.wake()
	return b, nil
}

// wake tells a local cycle runner that a batch was queued.
func (s *Service) wake() {
	select {
	case s.wakeup <- struct{}{}:
	default:
	}
}

// Runnable lists the batches a cycle runner should work on: queued ones and
// those left running when a hub stopped.
func (s *Service) Runnable(ctx context.Context) ([]Batch, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT kind, period FROM disb_batches WHERE status IN (?, ?) ORDER BY id`),
		BatchQueued, BatchRunning)
	if err != nil {
		return nil, fmt.Errorf("disbursement: runnable batches: %w", err)
	}
	defer rows.Close()
	var out []Batch
	for rows.Next() {
		var b Batch
		if err := rows.Scan(&b.Kind, &b.Period); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// RunRequested runs one queued or interrupted batch in this process until
// it is done, waits for a confirmation, fails, or ctx ends. The caller must
// be the only runner (the hub holds the lease disbursement.cycles).
// opt.ListFile and opt.LetterTotal are ignored (Submit records them);
// ConfirmDistrict and ConfirmCity confirm on those users' behalf.
func (s *Service) RunRequested(ctx context.Context, opt RunOptions) (*Batch, error) {
	if opt.Kind == "" {
		opt.Kind = bank.Disbursement
	}
	k, period := opt.Kind, opt.Period
	opt.ListFile, opt.LetterTotal = "", 0
	// Claim the request first, so that one arriving while this run works
	// (a confirmation) is seen afterwards instead of being overwritten.
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_batches SET status = ?, updated_at = ? WHERE name = ? AND status = ?`),
		BatchRunning, s.deps.Clock.Now().UnixMilli(), BatchName(k, period), BatchQueued); err != nil {
		return nil, fmt.Errorf("disbursement: claim %s: %w", BatchName(k, period), err)
	}
	s.notifyChanged()
	b, err := s.Run(ctx, opt)
	if Waiting(err) && b != nil {
		status := BatchAwaiting
		if errors.Is(err, ErrAwaitingLetterTotal) {
			status = BatchAwaitingLetter
		}
		// Only a batch nobody queued meanwhile (a confirmation that
		// completed the pair queues it again) waits.
		if _, uerr := s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE disb_batches SET status = ?, updated_at = ?
			WHERE id = ? AND status = ?`), status, s.deps.Clock.Now().UnixMilli(), b.ID, BatchRunning); uerr != nil {
			s.log.Warn("disbursement: mark waiting", "batch", b.Name, "err", uerr)
		}
		s.notifyChanged()
		b.Status = status
	}
	return b, err
}

// Serve is the cycle runner: it runs every queued batch, and on start the
// batches a stopped hub left running, each in its own goroutine, until ctx
// is done. Batches queued on another replica are found within rescan.
func (s *Service) Serve(ctx context.Context, rescan time.Duration) error {
	if rescan <= 0 {
		rescan = 5 * time.Second
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inFlight = map[string]bool{}
	)
	defer wg.Wait()
	for {
		batches, err := s.Runnable(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("disbursement: cycle runner", "err", err)
		}
		for _, b := range batches {
			name := BatchName(Kind(b.Kind), b.Period)
			mu.Lock()
			busy := inFlight[name]
			inFlight[name] = true
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func(k Kind, period string) {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(inFlight, name)
					mu.Unlock()
				}()
				got, err := s.RunRequested(ctx, RunOptions{Kind: k, Period: period})
				switch {
				case err == nil:
					s.log.Info("disbursement cycle done", "batch", name)
				case Waiting(err):
					s.log.Info("disbursement cycle waits", "batch", name, "for", err.Error())
				case ctx.Err() != nil:
					// Stopping: the batch stays running and the next runner resumes it.
				default:
					stage := ""
					if got != nil {
						stage = got.Stage
					}
					s.log.Error("disbursement cycle stopped", "batch", name, "stage", stage, "err", err)
				}
			}(Kind(b.Kind), b.Period)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wakeup:
		case <-s.deps.Clock.After(rescan):
		}
	}
}
