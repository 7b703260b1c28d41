package routes

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/shanghai-mca/mzhub/security/audit"
)

// AuditLog adapts the hub's audit chain (security/audit) to Auditor.
func AuditLog(l *audit.Log) Auditor { return auditAdapter{l} }

type auditAdapter struct{ l *audit.Log }

func (a auditAdapter) Record(ctx context.Context, actor, action, target string, details map[string]string) error {
	keys := make([]string, 0, len(details))
	for k := range details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", k, details[k])
	}
	if !strings.Contains(actor, ":") {
		actor = "user:" + actor
	}
	_, err := a.l.Append(ctx, audit.Record{Actor: actor, Action: action, Object: target, Outcome: audit.OutcomeSuccess, Detail: b.String()})
	return err
}
