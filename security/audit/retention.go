package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

// MinRetention is the shortest retention MLPS level 3 allows (180 days).
const MinRetention = 180 * 24 * time.Hour

// ErrRetention is returned by Prune for a cut-off younger than the retention.
var ErrRetention = errors.New("audit: prune would remove records younger than the retention period")

// Prune removes the oldest records, those before the cut-off, keeping the
// chain verifiable: the removed prefix is replaced by a MACed base marker.
// The cut-off must be at least retention (never less than MinRetention)
// before now. Export first for off-host keeping. Prune appends its own audit
// record and returns how many records it removed.
func (l *Log) Prune(ctx context.Context, before time.Time, retention time.Duration) (int64, error) {
	if retention < MinRetention {
		retention = MinRetention
	}
	now := l.clock.Now()
	if before.After(now.Add(-retention)) {
		return 0, fmt.Errorf("%w: cut-off %s, retention %s", ErrRetention, before.UTC().Format(time.RFC3339), retention)
	}
	var removed, upTo int64
	l.mu.Lock()
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT head_seq FROM audit_state WHERE id = 1`
		if l.db.Dialect() == store.Postgres {
			q += ` FOR UPDATE`
		}
		var head int64
		if err := tx.QueryRowContext(ctx, q).Scan(&head); err != nil {
			return err
		}
		// The prefix to remove ends before the first record at or after the
		// cut-off, so the chain never gets a hole in the middle.
		var firstKept sql.NullInt64
		if err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT MIN(seq) FROM audit_log WHERE at_ms >= ?`), before.UnixMilli()).Scan(&firstKept); err != nil {
			return err
		}
		upTo = head
		if firstKept.Valid {
			upTo = firstKept.Int64 - 1
		}
		var mac string
		err := tx.QueryRowContext(ctx, l.db.Rebind(`SELECT mac FROM audit_log WHERE seq = ?`), upTo).Scan(&mac)
		if errors.Is(err, sql.ErrNoRows) {
			upTo = 0 // nothing to remove (or already pruned to here)
			return nil
		}
		if err != nil {
			return err
		}
		// The base moves first: the append-only trigger allows deleting only
		// records at or below it.
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE audit_state SET base_seq = ?, base_mac = ?, base_tag = ? WHERE id = 1`),
			upTo, mac, tag(l.key, "base", upTo, mac)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, l.db.Rebind(`DELETE FROM audit_log WHERE seq <= ?`), upTo)
		if err != nil {
			return err
		}
		removed, _ = res.RowsAffected()
		return nil
	})
	l.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("audit: prune: %w", err)
	}
	if removed > 0 {
		if _, err := l.Append(ctx, Record{
			Actor: "system:audit", Action: "audit.prune", Object: "audit_log", Outcome: OutcomeSuccess,
			Detail: fmt.Sprintf("removed %d records up to seq %d (before %s)", removed, upTo, before.UTC().Format(time.RFC3339)),
		}); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
