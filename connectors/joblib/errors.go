package joblib

import "errors"

// Sentinel errors. Match them with errors.Is.
var (
	// ErrMalformed: an answer of the portal is not in the documented format.
	ErrMalformed = errors.New("joblib: malformed answer")
	// ErrInvalid: a record fails the interface's rules (an ID number, a
	// channel, a node out of the known set, ...).
	ErrInvalid = errors.New("joblib: invalid record")
	// ErrRefused: the portal answered a call with a 4xx problem: the call
	// itself was wrong and sending it again cannot help.
	ErrRefused = errors.New("joblib: refused by the portal")
	// ErrNotFound: the portal does not know the push, case or application asked for.
	ErrNotFound = errors.New("joblib: not found at the portal")
)
