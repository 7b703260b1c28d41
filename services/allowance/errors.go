package allowance

import "errors"

// Sentinel errors of the service.
var (
	// ErrNoDeath: a person confirmed alive has no applied death record.
	ErrNoDeath = errors.New("allowance: no applied death record for this person")
	// ErrNoReview: no pending review of that record.
	ErrNoReview = errors.New("allowance: no pending review")
	// ErrBadID: an ID number that fails its check.
	ErrBadID = errors.New("allowance: bad ID number")
	// ErrNoCardCenter: no card center is configured to ask.
	ErrNoCardCenter = errors.New("allowance: no card center configured")
	// ErrCardCenter: the card center did not answer a card-status query.
	ErrCardCenter = errors.New("allowance: the card center did not answer")
)
