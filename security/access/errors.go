package access

import (
	"errors"
	"fmt"

	"github.com/shanghai-mca/mzhub/store"
)

// Back-pressure errors of GroupCommit. The guard answers both with 503 and
// Retry-After (problem code unavailable), never with a 500.
var (
	// ErrOverloaded means the commit queue is full: the call was not
	// queued and nothing of it was written.
	// Both wrap store.ErrBusy, so store.IsTransient recognises them where
	// they come back through an audit append (a console login answers 503).
	ErrOverloaded = fmt.Errorf("access: overloaded: commit queue full (%w)", store.ErrBusy)
	// ErrBusy means the call's batch was not durable in time or its
	// transaction failed; the call is refused (its nonce may or may not
	// have been recorded, so the partner signs a retry anew).
	ErrBusy = fmt.Errorf("access: state store busy (%w)", store.ErrBusy)
	// ErrClosed means the group commit was closed.
	ErrClosed = errors.New("access: group commit closed")
)
