package access

import (
	"context"
	"errors"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/store"
)

// storeProblem answers a failure to record a call: contention, a full
// queue, a commit not durable in time or a caller that stopped waiting is
// back pressure (503 with Retry-After, problem code unavailable); anything
// else is internal.
func storeProblem(err error) problem.Problem {
	if errors.Is(err, ErrOverloaded) || errors.Is(err, ErrBusy) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || store.IsTransient(err) {
		p := problem.Unavailable(1)
		p.Detail = "the hub is busy; retry the call, signed anew, after Retry-After"
		p.Internal = err
		return p
	}
	return problem.Internal(err)
}
