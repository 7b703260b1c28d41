package portal

import "errors"

// Sentinel errors. Match them with errors.Is.
var (
	// ErrBadRecord: a record of the business system's files breaks the rules; it is refused with its line and never applied.
	ErrBadRecord = errors.New("portal: bad record")
	// ErrUnknownItem: an item code the bureau does not have on the portal.
	ErrUnknownItem = errors.New("portal: unknown item")
	// ErrUnknownApplication: a status report for an application the hub never fetched.
	ErrUnknownApplication = errors.New("portal: unknown application")
	// ErrNodeOrder: a status report out of the node order of its application.
	ErrNodeOrder = errors.New("portal: node out of order")
	// ErrNoCase: no such 免申即享 case.
	ErrNoCase = errors.New("portal: no such case")
	// ErrDecided: the case was decided already.
	ErrDecided = errors.New("portal: case decided already")
	// ErrNoRow: no refused outbox row by that id (it was never refused, or an operator acted on it already).
	ErrNoRow = errors.New("portal: no such refused row")
)
