package monitor

import (
	"errors"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// ErrCodeStepFailed is the error code of the failed event a service emits
// when a step of its round could not finish (the state store, a folder, the
// monitor's expectations); the step is tried again at the next round.
const ErrCodeStepFailed = "step_failed"

type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// Reported marks err as reported already: the step emitted its own failed
// event with it (with its file or batch), so StepFailed does not report it
// a second time. Reported(nil) is nil.
func Reported(err error) error {
	if err == nil {
		return nil
	}
	return reportedError{err}
}

// StepFailed returns the failed event of a step that could not finish
// (status error, class internal, code step_failed, the step's name and the
// masked error) on partner's flow, which turns the flow red and counts
// for the error-rate rule; false when err is nil or was Reported, anywhere
// in its chain.
func StepFailed(partner, flow, step string, err error) (Event, bool) {
	var r reportedError
	if err == nil || errors.As(err, &r) {
		return Event{}, false
	}
	return Event{Partner: partner, Flow: flow, Direction: Internal, Type: Failed, Status: Error,
		ErrorClass: "internal", ErrorCode: ErrCodeStepFailed, ErrorMessage: mask.Text(step + ": " + err.Error())}, true
}
