package disbursement

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Screener applies what other partners know of the persons before an
// allowance list is cut: services/allowance drops the dead and the moved
// out (data sea) and adds back-payments, so that such a person is never in
// a bank file.
type Screener interface {
	// Screen reads the list as submitted (ListHeader format) from in and
	// writes the list to pay, in the same format, to out, and a report of
	// what it did (CSV) to report. For the same input and period it must
	// write the same output when called again: a crashed intake is redone.
	Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (kept, excluded int64, summary string, err error)
}

type batchKey struct{}

// ScreenedBatch returns the name of the batch whose list a Screener is
// screening (from the context Screen is called with), "" outside one.
func ScreenedBatch(ctx context.Context) string {
	n, _ := ctx.Value(batchKey{}).(string)
	return n
}

// Screener returns the screener set by SetScreener (nil when none), so
// that another can be chained after it.
func (s *Service) Screener() Screener { return s.screener }

// SetScreener makes the intake of allowance lists (not deductions) pass
// each list through sc first; call it before Run.
func (s *Service) SetScreener(sc Screener) { s.screener = sc }

// SetDeductionScreener makes the intake of quarterly deduction lists pass
// each list through sc first (services/allowance adds the claw-backs of
// payments made after death); call it before Run.
func (s *Service) SetDeductionScreener(sc Screener) { s.dedScreener = sc }

// screenList passes the batch's list through the screener: the list as
// submitted is kept as list.submitted.csv (the input of every redo), the
// screened list replaces list.csv and screening.csv reports what was done.
// fresh tells that list.csv was just copied from the submitted file.
func (s *Service) screenList(ctx context.Context, b *Batch, fresh bool) error {
	sc := s.screener
	if b.Kind == string(bank.Deduction) {
		sc = s.dedScreener
	}
	if sc == nil {
		return nil
	}
	dst := s.listPath(b)
	orig := s.submittedListPath(b)
	if _, err := os.Stat(orig); fresh || err != nil {
		if err := copyFile(dst, orig); err != nil {
			return fmt.Errorf("screen: keep submitted list: %w", err)
		}
	}
	in, err := os.Open(orig)
	if err != nil {
		return fmt.Errorf("screen: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".screen", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("screen: %w", err)
	}
	rep, err := os.OpenFile(filepath.Join(s.dir(b), "screening.csv"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		_ = out.Close()
		return fmt.Errorf("screen: %w", err)
	}
	kept, excluded, summary, err := sc.Screen(context.WithValue(ctx, batchKey{}, b.Name), b.Period, in, out, rep)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if cerr := rep.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("screen: %w", err)
	}
	if err := os.Rename(dst+".screen", dst); err != nil {
		return fmt.Errorf("screen: %w", err)
	}
	st := monitor.OK
	if excluded > 0 {
		st = monitor.Warning
	}
	s.emit(monitor.Event{Type: monitor.Validated, Status: st, BatchID: b.Name, Stage: StageIntake, Flow: flowOf(b),
		Records: kept, RecordsFailed: excluded, FileName: "screening.csv", Attrs: map[string]string{"screen": summary}})
	s.log.Info("disbursement: list screened", "batch", b.Name, "kept", kept, "excluded", excluded, "summary", summary)
	return nil
}
