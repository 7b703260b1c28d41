package audit

import (
	"context"
	"strings"
)

// Appender is the one shape every auditing component takes: it appends one
// Record to the audit chain and returns its sequence number. *Log implements
// it; tests use audittest.Recorder.
//
// Contract: an action that must be audited is taken only after Append
// returned nil (audit first; an action that cannot be audited is not
// taken). Append masks Object and Detail and fills a zero Time, so callers
// hand in what happened and need not mask free text themselves.
//
// House style has the consumer declare its interface. This one is declared
// once, here, because every consumer (the partner guard, console accounts,
// the monitor console and alert inbox, dead-letter actions, the
// disbursement service) already builds an audit.Record from this package:
// identical one-method copies in each of them were the four signatures and
// the adapters between them that this replaces.
type Appender interface {
	Append(ctx context.Context, r Record) (int64, error)
}

var _ Appender = (*Log)(nil)

// UserActor returns the Actor of a person acting through the console or the
// CLI: "user:<name>". A name that already says what kind of actor it is
// ("user:…", "system:…", "partner:…") is returned as it is.
func UserActor(name string) string {
	if strings.Contains(name, ":") {
		return name
	}
	return "user:" + name
}
