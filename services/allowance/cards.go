package allowance

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/security/audit"
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

// SetCardQuery gives the card center to the on-demand card-status query
// of the console (QueryCardStatus), whether or not lists are screened by
// card status.
func (s *Service) SetCardQuery(q CardStatuser) { s.cardQuery = q }

// CardAnswer is the answer of an on-demand card-status query.
type CardAnswer struct {
	// IDMasked is the person's masked ID number; Status the card center's
	// answer (normal, lost, frozen, cancelled, none).
	IDMasked, Status string
	// Person is the person's allowance status (active, deceased, moved_out).
	Person Person
	// Bank and AccountMasked are where a 一卡通 holder is paid ("" otherwise).
	Bank, AccountMasked string
}

// QueryCardStatus asks the card center the card status of one person for
// an operator, and audits the query with its answer (or its failure).
func (s *Service) QueryCardStatus(ctx context.Context, id, user string) (CardAnswer, error) {
	id = strings.ToUpper(strings.TrimSpace(id))
	if !mask.ValidID(id) {
		return CardAnswer{}, fmt.Errorf("%w: %s", ErrBadID, mask.IDNumber(id))
	}
	if s.cardQuery == nil {
		return CardAnswer{}, ErrNoCardCenter
	}
	a := CardAnswer{IDMasked: mask.IDNumber(id)}
	st, err := s.cardQuery.Query(ctx, []string{id})
	if err == nil && st[id] == "" {
		err = errors.New("no status in the answer")
	}
	if err != nil {
		if aerr := s.auditf(ctx, user, "card_status", a.IDMasked, audit.OutcomeFailure, "card center: %s", mask.Text(err.Error())); aerr != nil {
			return CardAnswer{}, fmt.Errorf("allowance: audit: %w", aerr)
		}
		return CardAnswer{}, fmt.Errorf("%w: %w", ErrCardCenter, err)
	}
	a.Status = st[id]
	if err := s.auditf(ctx, user, "card_status", a.IDMasked, audit.OutcomeSuccess, "card status %s", a.Status); err != nil {
		return CardAnswer{}, fmt.Errorf("allowance: audit: %w", err)
	}
	if a.Person, err = s.PersonOf(ctx, id); err != nil {
		return CardAnswer{}, err
	}
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT bank, account_masked FROM allow_yikatong WHERE person = ?`), s.PersonKey(id)).Scan(&a.Bank, &a.AccountMasked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return CardAnswer{}, err
	}
	return a, nil
}

// ApplyApplications stores card applications idempotently by application
// id and screens each new one: a card application later than a 迁出
// without a later 迁入 raises applied_after_move_out. A 一卡通
// application (checked by cardcenter.Application.Check, its Bank
// resolved) makes its card's bank and account where the person's
// allowance is paid, unless a later 一卡通 application of theirs is
// already known. Bad ones are quarantined (source cardcenter).
func (s *Service) ApplyApplications(ctx context.Context, apps []cardcenter.Application, bad []cardcenter.Bad) (int, error) {
	now := s.nowMS()
	// Accounts are sealed outside the transaction, which stays short.
	sealed := make(map[string]string)
	for _, a := range apps {
		if a.Yikatong && a.Bank != "" && a.Account != "" {
			c, err := s.fields.Encrypt(a.Account)
			if err != nil {
				return 0, fmt.Errorf("allowance: applications: seal: %w", err)
			}
			sealed[a.ID] = c
		}
	}
	var fresh []cardcenter.Application
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		fresh = fresh[:0]
		ins, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO allow_applications (app_id, person, id_masked, card_type, channel, yikatong,
			applied_on, district, bank_code, bank, account_masked, stage, stage_at, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'applied', ?, ?)
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
			person := s.PersonKey(a.IDNumber)
			acctMasked := ""
			if a.Account != "" {
				acctMasked = mask.Account(a.Account)
			}
			res, err := ins.ExecContext(ctx, a.ID, person, mask.IDNumber(a.IDNumber), a.CardType, a.Channel, yk,
				a.AppliedOn, a.District, a.BankCode, a.Bank, acctMasked, a.AppliedOn, now)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				fresh = append(fresh, a)
			}
			if c, ok := sealed[a.ID]; ok {
				// The latest application wins (by date, then id), whatever the order they come in.
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_yikatong (person, app_id, applied_on, bank, account_sealed, account_masked, updated_ms)
					VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (person) DO UPDATE SET app_id = excluded.app_id, applied_on = excluded.applied_on,
					bank = excluded.bank, account_sealed = excluded.account_sealed, account_masked = excluded.account_masked, updated_ms = excluded.updated_ms
					WHERE allow_yikatong.applied_on < excluded.applied_on OR (allow_yikatong.applied_on = excluded.applied_on AND allow_yikatong.app_id < excluded.app_id)`),
					person, a.ID, a.AppliedOn, a.Bank, c, acctMasked, now); err != nil {
					return err
				}
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
	// Bank and AccountMasked are the card's bank (connector code) and masked account, when known.
	Bank, AccountMasked string
	Yikatong            bool
}

// Applications lists the latest applications.
func (s *Service) Applications(ctx context.Context, limit int) ([]Application, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT app_id, id_masked, card_type, channel, applied_on, district, stage, yikatong, bank, account_masked
		FROM allow_applications ORDER BY received_ms DESC, app_id LIMIT ?`), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Application
	for rows.Next() {
		var a Application
		var yk int
		if err := rows.Scan(&a.AppID, &a.IDMasked, &a.CardType, &a.Channel, &a.AppliedOn, &a.District, &a.Stage, &yk, &a.Bank, &a.AccountMasked); err != nil {
			return nil, err
		}
		a.Yikatong = yk == 1
		out = append(out, a)
	}
	return out, rows.Err()
}

// yikatongRoute is where a 一卡通 holder's allowance is paid.
type yikatongRoute struct {
	bank, sealed, masked string
}

// yikatongRoutes loads the card bank and account of every 一卡通 holder.
func (s *Service) yikatongRoutes(ctx context.Context) (map[string]yikatongRoute, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT person, bank, account_sealed, account_masked FROM allow_yikatong`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]yikatongRoute{}
	for rows.Next() {
		var p string
		var r yikatongRoute
		if err := rows.Scan(&p, &r.bank, &r.sealed, &r.masked); err != nil {
			return nil, err
		}
		out[p] = r
	}
	return out, rows.Err()
}

// KnownApplication reports whether the card application id is stored.
func (s *Service) KnownApplication(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT 1 FROM allow_applications WHERE app_id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("allowance: application %s: %w", id, err)
	}
	return true, nil
}
