package monitor

import "context"

// DeadLetterActions act on a dead-lettered or failed exchange from the
// console. The route engine implements it (routes/); each call is made by a
// named console user and the implementation emits the matching event
// (replayed, retried, dropped). The console audits the request itself.
type DeadLetterActions interface {
	// Retry delivers the exchange again as it is, now.
	Retry(ctx context.Context, exchangeID, user string) error
	// Replay puts the original message back at the start of its route.
	Replay(ctx context.Context, exchangeID, user string) error
	// Drop gives the exchange up for good, with a reason.
	Drop(ctx context.Context, exchangeID, user, reason string) error
}
