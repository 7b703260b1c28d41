package allowance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// ConfirmAlive records an operator's confirmation that the person of an ID
// number is alive: their applied death records are invalidated, their
// status is restored (to moved_out when an applied move out still stands,
// else active), the open claw-back items of the death are cancelled and
// the months withheld because of the death become back-payments (补发),
// due in the next list. The decision is audited first.
func (s *Service) ConfirmAlive(ctx context.Context, id, user, note string) (backpayFen int64, err error) {
	if !mask.ValidID(id) {
		return 0, fmt.Errorf("%w: %s", ErrBadID, mask.IDNumber(id))
	}
	person := s.PersonKey(id)
	var n int
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM allow_records WHERE person = ? AND kind = 'death' AND state = 'applied'`), person).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		_ = s.auditf(ctx, user, "confirm_alive", mask.IDNumber(id), audit.OutcomeFailure, "no applied death record")
		return 0, fmt.Errorf("%w: %s", ErrNoDeath, mask.IDNumber(id))
	}
	if err := s.auditf(ctx, user, "confirm_alive", mask.IDNumber(id), audit.OutcomeSuccess, "death record(s) invalidated: %s", note); err != nil {
		return 0, fmt.Errorf("allowance: audit: %w", err)
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		backpayFen = 0
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_records SET state = 'invalidated' WHERE person = ? AND kind = 'death' AND state = 'applied'`), person); err != nil {
			return err
		}
		// What stands after the death is gone: the latest applied move out
		// not followed by a move in, if any.
		var outID, outDate string
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT record_id, event_date FROM allow_records o WHERE person = ? AND kind = 'move_out' AND state = 'applied'
			AND NOT EXISTS (SELECT 1 FROM allow_records i WHERE i.person = o.person AND i.kind = 'move_in' AND i.state = 'applied' AND i.event_date > o.event_date)
			ORDER BY event_date DESC LIMIT 1`), person).Scan(&outID, &outDate)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_persons SET status = 'active', stop_month = '', record_id = '', updated_ms = ? WHERE person = ?`), s.nowMS(), person); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_persons SET status = 'moved_out', stop_month = ?, record_id = ?, updated_ms = ? WHERE person = ?`),
				nextMonth(outDate), outID, s.nowMS(), person); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_clawbacks SET state = 'cancelled' WHERE person = ? AND state IN ('open', 'listed')`), person); err != nil {
			return err
		}
		// 补发: every month withheld because of the death. Months also
		// covered by a standing move out stay withheld.
		stopOut := ""
		if outDate != "" {
			stopOut = nextMonth(outDate)
		}
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT month, amount_fen FROM allow_withheld WHERE person = ? AND reason = 'deceased' ORDER BY month`), person)
		if err != nil {
			return err
		}
		type wm struct {
			month string
			fen   int64
		}
		var due []wm
		for rows.Next() {
			var m wm
			if err := rows.Scan(&m.month, &m.fen); err != nil {
				rows.Close()
				return err
			}
			if stopOut == "" || m.month < stopOut {
				due = append(due, m)
			}
		}
		rows.Close()
		for _, m := range due {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_backpays (person, month, id_masked, amount_fen, state) VALUES (?, ?, ?, ?, 'due')
				ON CONFLICT (person, month) DO NOTHING`), person, m.month, mask.IDNumber(id), m.fen); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM allow_withheld WHERE person = ? AND month = ?`), person, m.month); err != nil {
				return err
			}
			backpayFen += m.fen
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("allowance: confirm alive: %w", err)
	}
	return backpayFen, nil
}

// Review is a 迁入 entry awaiting or past district review.
type Review struct {
	RecordID, IDMasked, District, Region, Date, State, DecidedBy string
}

// Decide records the district's decision on a 迁入 entry: approved
// restores a person whose payment a move out stopped (from the next list
// on); rejected leaves everything as it is. Audited first.
func (s *Service) Decide(ctx context.Context, recordID string, approve bool, user string) error {
	var person, date string
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT person, event_date FROM allow_reviews WHERE record_id = ? AND state = 'pending'`), recordID).Scan(&person, &date)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNoReview, recordID)
	}
	if err != nil {
		return err
	}
	state := "rejected"
	if approve {
		state = "approved"
	}
	if err := s.auditf(ctx, user, "review."+state, recordID, audit.OutcomeSuccess, "迁入 %s", date); err != nil {
		return fmt.Errorf("allowance: audit: %w", err)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_reviews SET state = ?, decided_by = ?, decided_ms = ? WHERE record_id = ?`),
			state, user, s.nowMS(), recordID); err != nil {
			return err
		}
		if !approve {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_persons SET status = 'active', stop_month = '', record_id = '', updated_ms = ?
			WHERE person = ? AND status = 'moved_out'`), s.nowMS(), person)
		return err
	})
}

// Reviews lists the 迁入 entries in a state ("" for all), newest first.
func (s *Service) Reviews(ctx context.Context, state string, limit int) ([]Review, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT record_id, id_masked, district, region, event_date, state, decided_by FROM allow_reviews
		WHERE (? = '' OR state = ?) ORDER BY event_date DESC, record_id LIMIT ?`), state, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Review
	for rows.Next() {
		var r Review
		if err := rows.Scan(&r.RecordID, &r.IDMasked, &r.District, &r.Region, &r.Date, &r.State, &r.DecidedBy); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Warning codes.
const (
	// WarnNoMoveIn: an ID number not starting with 310 and no 迁入 record.
	WarnNoMoveIn = "non_shanghai_without_move_in"
	// WarnAppliedAfterMoveOut: a card application later than a 迁出 without a later 迁入.
	WarnAppliedAfterMoveOut = "applied_after_move_out"
)

// CheckApplication screens a card application (敬老卡 or 社保卡 一卡通)
// made on date (YYYY-MM-DD): a 迁出 before it without a later 迁入 raises
// the warning applied_after_move_out (kept once per person). It returns
// whether the warning holds.
func (s *Service) CheckApplication(ctx context.Context, id, appliedOn, source string) (bool, error) {
	if !mask.ValidID(id) {
		return false, fmt.Errorf("%w: %s", ErrBadID, mask.IDNumber(id))
	}
	person := s.PersonKey(id)
	var outDate string
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT MAX(event_date) FROM allow_records o WHERE person = ? AND kind = 'move_out' AND state = 'applied'
		AND event_date < ? AND NOT EXISTS (SELECT 1 FROM allow_records i WHERE i.person = o.person AND i.kind = 'move_in'
		AND i.state = 'applied' AND i.event_date > o.event_date)`), person, appliedOn).Scan(&sqlNullString{&outDate})
	if err != nil {
		return false, err
	}
	if outDate == "" {
		return false, nil
	}
	return true, s.warn(ctx, s.db, person, WarnAppliedAfterMoveOut, mask.IDNumber(id),
		fmt.Sprintf("%s application of %s after 迁出 of %s, no later 迁入", source, appliedOn, outDate), source)
}

// sqlNullString scans a nullable text into a string ("" for NULL).
type sqlNullString struct{ p *string }

func (n *sqlNullString) Scan(v any) error {
	var ns sql.NullString
	if err := ns.Scan(v); err != nil {
		return err
	}
	*n.p = ns.String
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Service) warn(ctx context.Context, db execer, person, code, masked, detail, foundIn string) error {
	_, err := db.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_warnings (person, code, id_masked, detail, found_in, created_ms) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (person, code) DO UPDATE SET detail = excluded.detail, found_in = excluded.found_in`), person, code, masked, detail, foundIn, s.nowMS())
	return err
}
