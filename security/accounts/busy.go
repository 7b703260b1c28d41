package accounts

import (
	"context"
	"errors"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/store"
)

// busyText is the login page's message when the state store is contended.
const busyText = "系统繁忙，请稍后重试 · the hub is busy, try again in a moment"

// busy reports whether err is contention at the state store (SQLite's
// write lock, a full or slow audit group commit, a PostgreSQL
// serialization failure), a deadline that ran out waiting for it, or an
// audit record that could not be written: back pressure, answered 503
// with Retry-After, never a 500.
func busy(err error) bool {
	return err != nil && (store.IsTransient(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrAuditUnavailable))
}

// ErrAuditUnavailable refuses a login whose audit record could not be
// written (MLPS level 3: every access is in the audit trail, so the
// console fails closed). It is answered as a busy store, 503 with
// Retry-After: the audit log is usually only contended.
var ErrAuditUnavailable = errors.New("accounts: the audit trail cannot be written; the login is refused")

// busyProblem is the problem+json answer of a busy store.
func busyProblem(err error) problem.Problem {
	p := problem.Unavailable(1)
	p.Detail = "the hub is busy; try again after Retry-After"
	p.Internal = err
	return p
}
