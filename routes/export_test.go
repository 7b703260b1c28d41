package routes

import (
	"context"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/store"
)

// BackoffDelay exposes backoffDelay to tests.
var BackoffDelay = backoffDelay

// AddDeadLetter stores a dead letter (tests of the store).
func AddDeadLetter(d *DeadLetters, route, sink, endpoint string, cause error, attempts int) error {
	return d.add(context.Background(), route, sink, "", endpoint, cause, attempts, bus.Message{IdempotencyKey: "k", Body: []byte("{}")})
}

// LedgerRoundTrip claims, records done and reads back one ledger entry.
func LedgerRoundTrip(db *store.DB) (string, error) {
	l := newLedger(db, time.Now)
	defer l.close()
	ctx := context.Background()
	if st, err := l.do(ctx, opClaim, "r", "s", "k"); err != nil || st != "" {
		return st, err
	}
	if st, err := l.do(ctx, opClaim, "r", "s", "k"); err != nil || st != statePending {
		return "claim twice: " + st, err
	}
	if _, err := l.do(ctx, opDone, "r", "s", "k"); err != nil {
		return "", err
	}
	return l.do(ctx, opCheck, "r", "s", "k")
}
