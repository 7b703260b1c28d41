package routes

import "errors"

// Sentinel errors of the route engine.
var (
	// ErrInvalid marks a route file that failed decoding or validation.
	ErrInvalid = errors.New("routes: invalid route")
	// ErrUnknownRoute is returned for a route id the engine does not run.
	ErrUnknownRoute = errors.New("routes: unknown route")
	// ErrFiltered is returned by a step that drops the message on purpose.
	ErrFiltered = errors.New("routes: message filtered")
	// ErrInDoubt means a delivery to a sink started and its outcome is
	// unknown: the send timed out, was cancelled (a shutdown's deadline) or
	// lost its connection after the request was written, or the hub stopped
	// in between. The ledger keeps its claim; the next attempt asks the
	// partner's status instead of sending again, and a message still in
	// doubt at its last attempt (or with a sink that cannot be asked) is
	// dead-lettered with the error class and code "in_doubt".
	ErrInDoubt = errors.New("routes: delivery in doubt")
	// ErrClosed is returned after the engine was closed.
	ErrClosed = errors.New("routes: engine closed")
	// ErrNotFound is returned for an unknown dead letter.
	ErrNotFound = errors.New("routes: not found")
)
