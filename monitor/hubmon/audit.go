package hubmon

import (
	"context"
	"strings"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
)

// AuditAppender is security/audit's log.
type AuditAppender interface {
	Append(ctx context.Context, r audit.Record) (int64, error)
}

// AuditTo adapts the audit log to monitor.Auditor: console users become
// "user:<name>" actors, the action is recorded as a success once requested
// (the action's own result is visible as a monitor event).
func AuditTo(log AuditAppender) monitor.Auditor { return auditAdapter{log} }

type auditAdapter struct{ log AuditAppender }

func (a auditAdapter) Audit(ctx context.Context, actor, action, object, detail string) error {
	if !strings.Contains(actor, ":") {
		actor = "user:" + actor
	}
	_, err := a.log.Append(ctx, audit.Record{Actor: actor, Action: action, Object: object, Outcome: audit.OutcomeSuccess, Detail: detail})
	return err
}
