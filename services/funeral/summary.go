package funeral

import (
	"context"
	"fmt"
)

// KindSummary counts what a partner pushed of one kind.
type KindSummary struct {
	// Records ever stored (live and withdrawn).
	Records int64
	// Live records.
	Live int64
	// Updated counts records changed at least twice (create, then update).
	Updated int64
	// Deleted counts withdrawn records.
	Deleted int64
}

// Summary counts a partner's records per kind (for the pusher conformance
// run and the onboarding checklist).
func (s *Store) Summary(ctx context.Context, partnerID string) (map[string]KindSummary, error) {
	out := map[string]KindSummary{}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT kind, COUNT(*), SUM(CASE WHEN deleted = 0 THEN 1 ELSE 0 END), SUM(deleted)
		FROM funeral_records WHERE partner_id = ? GROUP BY kind`), partnerID)
	if err != nil {
		return nil, fmt.Errorf("funeral: summary: %w", err)
	}
	for rows.Next() {
		var k string
		var ks KindSummary
		if err := rows.Scan(&k, &ks.Records, &ks.Live, &ks.Deleted); err != nil {
			rows.Close()
			return nil, err
		}
		out[k] = ks
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT kind, COUNT(*) FROM (SELECT kind, record_id FROM funeral_changes
		WHERE partner_id = ? AND op = 'upsert' GROUP BY kind, record_id HAVING COUNT(*) >= 2) u GROUP BY kind`), partnerID)
	if err != nil {
		return nil, fmt.Errorf("funeral: summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		ks := out[k]
		ks.Updated = n
		out[k] = ks
	}
	return out, rows.Err()
}
