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
	// ErrInDoubt means a previous delivery to a sink started but its outcome
	// was never recorded (the hub crashed in between) and the sink cannot be
	// asked; the message is dead-lettered instead of being sent again.
	ErrInDoubt = errors.New("routes: delivery in doubt")
	// ErrClosed is returned after the engine was closed.
	ErrClosed = errors.New("routes: engine closed")
	// ErrNotFound is returned for an unknown dead letter.
	ErrNotFound = errors.New("routes: not found")
)
