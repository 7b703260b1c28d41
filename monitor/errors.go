package monitor

import "errors"

// Refusals of cycle requests (see Cycle). An implementation wraps its own
// cause with one of them so that the console can say why in the user's
// language.
var (
	// ErrNoCycle: no cycle of that kind and period.
	ErrNoCycle = errors.New("monitor: no such cycle")
	// ErrCycleDone: the cycle has finished; nothing to run.
	ErrCycleDone = errors.New("monitor: the cycle is done")
	// ErrCycleListTaken: the cycle took its list in already.
	ErrCycleListTaken = errors.New("monitor: the cycle took its list in already")
	// ErrCycleBadPeriod: a period that is not YYYY-MM.
	ErrCycleBadPeriod = errors.New("monitor: the period must be YYYY-MM")
	// ErrCycleNoList: the list named is not in the inbox.
	ErrCycleNoList = errors.New("monitor: no such list in the inbox")
	// ErrConfirmOrder: a confirmation before the confirmation stage, or the
	// city's before the district's.
	ErrConfirmOrder = errors.New("monitor: confirmation out of order")
	// ErrSameConfirmer: the city level confirmed by the district's account.
	ErrSameConfirmer = errors.New("monitor: the city must be confirmed by another account than the district")
)
