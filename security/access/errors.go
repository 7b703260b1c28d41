package access

import "errors"

// Back-pressure errors of GroupCommit. The guard answers both with 503 and
// Retry-After (problem code unavailable), never with a 500.
var (
	// ErrOverloaded means the commit queue is full: the call was not
	// queued and nothing of it was written.
	ErrOverloaded = errors.New("access: overloaded: commit queue full")
	// ErrBusy means the call's batch was not durable in time or its
	// transaction failed; the call is refused (its nonce may or may not
	// have been recorded, so the partner signs a retry anew).
	ErrBusy = errors.New("access: state store busy")
	// ErrClosed means the group commit was closed.
	ErrClosed = errors.New("access: group commit closed")
)
