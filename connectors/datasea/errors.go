package datasea

import "errors"

// Sentinel errors of the connector.
var (
	// ErrMalformed marks a record or a line that cannot be applied; it is
	// quarantined with its reason.
	ErrMalformed = errors.New("datasea: malformed record")
	// ErrBadAnswer is a platform answer that is not what the API promises
	// (not JSON, a cursor going backwards, a page without a cursor).
	ErrBadAnswer = errors.New("datasea: bad answer from the platform")
	// ErrNoReceipt is a push the platform answered without a receipt.
	ErrNoReceipt = errors.New("datasea: push answered without a receipt")
)
