package allowance

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"

	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/security/mask"
)

var _ cardcenter.Applier = (*Service)(nil)

// CardStatuser asks the card center for card statuses (cardcenter.StatusClient).
type CardStatuser interface {
	Query(ctx context.Context, ids []string) (map[string]string, error)
}

// SetCardStatus makes Screen ask every listed person's card status: a
// lost, frozen or cancelled card is not paid that month (left out, and
// reported). A query that fails fails the screening (the list is not cut
// on a guess). Call it before the service screens.
func (s *Service) SetCardStatus(q CardStatuser) { s.cards = q }

// ApplyApplications stores card applications idempotently by application
// id and screens each new one: a card application later than a 迁出
// without a later 迁入 raises applied_after_move_out. Bad ones are
// quarantined (source cardcenter).
func (s *Service) ApplyApplications(ctx context.Context, apps []cardcenter.Application, bad []cardcenter.Bad) (int, error) {
	now := s.nowMS()
	var fresh []cardcenter.Application
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		fresh = fresh[:0]
		ins, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO allow_applications (app_id, person, id_masked, card_type, channel, yikatong,
			applied_on, district, bank_code, stage, stage_at, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'applied', ?, ?)
			ON CONFLICT (app_id) DO NOTHING`))
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, a := range apps {
			yk := 0
			if a.Yikatong {
				yk = 1
			}
			res, err := ins.ExecContext(ctx, a.ID, s.PersonKey(a.IDNumber), mask.IDNumber(a.IDNumber), a.CardType, a.Channel, yk,
				a.AppliedOn, a.District, a.BankCode, a.AppliedOn, now)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				fresh = append(fresh, a)
			}
		}
		for _, b := range bad {
			item := b.RecordID
			if item == "" {
				h := sha256.Sum256([]byte(b.Ref))
				item = "raw:" + hex.EncodeToString(h[:8])
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_quarantine (source, item, ref, record_id, reason, raw, created_ms)
				VALUES ('cardcenter', ?, ?, ?, ?, '', ?) ON CONFLICT (source, item) DO NOTHING`), item, b.Ref, b.RecordID, mask.Text(b.Reason), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("allowance: applications: %w", err)
	}
	for _, a := range fresh {
		source := "敬老卡 " + a.Channel
		if a.CardType == cardcenter.SocialSecurityCard {
			source = "社保卡 " + a.Channel
		}
		if _, err := s.CheckApplication(ctx, a.IDNumber, a.AppliedOn, source); err != nil {
			return 0, err
		}
	}
	return len(fresh), nil
}

var stageOrder = map[string]int{"applied": 0, "accepted": 1, "produced": 2, "issued": 3}

// ApplyProgress records card production steps (制卡): a step only moves
// an application forward; a repeated or older step changes nothing.
func (s *Service) ApplyProgress(ctx context.Context, steps []cardcenter.Progress) (int, error) {
	n := 0
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, st := range steps {
			var cur string
			err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT stage FROM allow_applications WHERE app_id = ?`), st.ID).Scan(&cur)
			if err == sql.ErrNoRows {
				continue // the application comes with a later page of its feed
			}
			if err != nil {
				return err
			}
			if stageOrder[st.Stage] <= stageOrder[cur] {
				continue
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_applications SET stage = ?, stage_at = ? WHERE app_id = ?`), st.Stage, st.At, st.ID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Application is a card application as the console shows it.
type Application struct {
	AppID, IDMasked, CardType, Channel, AppliedOn, District, Stage string
	Yikatong                                                       bool
}

// Applications lists the latest applications.
func (s *Service) Applications(ctx context.Context, limit int) ([]Application, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT app_id, id_masked, card_type, channel, applied_on, district, stage, yikatong
		FROM allow_applications ORDER BY received_ms DESC, app_id LIMIT ?`), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Application
	for rows.Next() {
		var a Application
		var yk int
		if err := rows.Scan(&a.AppID, &a.IDMasked, &a.CardType, &a.Channel, &a.AppliedOn, &a.District, &a.Stage, &yk); err != nil {
			return nil, err
		}
		a.Yikatong = yk == 1
		out = append(out, a)
	}
	return out, rows.Err()
}
