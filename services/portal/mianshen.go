package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// planPushes groups the persons of each 免申即享 item not pushed yet into
// push batches (the batch id and the persons' marks committed with the
// outbox row, so a person goes in exactly one batch).
func (s *Service) planPushes(ctx context.Context) error {
	for _, code := range s.itemCodes() {
		it := s.items[code]
		if !it.Mianshen {
			continue
		}
		for ctx.Err() == nil {
			n, err := s.planPush(ctx, it)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return ctx.Err()
}

func (s *Service) itemCodes() []string {
	out := make([]string, 0, len(s.items))
	for c := range s.items {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func (s *Service) planPush(ctx context.Context, it *compiledItem) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT person_key, person_sealed, name_sealed, person_ref, division, month FROM portal_eligible
			WHERE item_code = ? AND pushed_batch = '' AND status = 'normal' ORDER BY month, person_key LIMIT ?`), it.Code, s.cfg.PushBatch)
		if err != nil {
			return err
		}
		type pr struct{ key, month string }
		var keys []pr
		byMonth := map[string][]joblib.EligiblePerson{}
		var months []string
		for rows.Next() {
			var key, psealed, nsealed, ref, div, month string
			if err := rows.Scan(&key, &psealed, &nsealed, &ref, &div, &month); err != nil {
				rows.Close()
				return err
			}
			id, err := s.d.Fields.Decrypt(psealed)
			if err != nil {
				rows.Close()
				return fmt.Errorf("portal: open person %s: %w", ref, err)
			}
			name, err := s.d.Fields.Decrypt(nsealed)
			if err != nil {
				rows.Close()
				return fmt.Errorf("portal: open name %s: %w", ref, err)
			}
			if _, ok := byMonth[month]; !ok {
				months = append(months, month)
			}
			byMonth[month] = append(byMonth[month], joblib.EligiblePerson{PersonRef: ref, IDNumber: id, Name: name, Division: div})
			keys = append(keys, pr{key, month})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(keys) == 0 {
			n = 0
			return nil
		}
		// One batch per month of the persons read (usually one month).
		month := months[0]
		persons := byMonth[month]
		seqMark := "push.seq." + it.Code + "." + month
		v, err := s.mark(ctx, tx, seqMark)
		if err != nil {
			return err
		}
		var seq int
		_, _ = fmt.Sscan(v, &seq)
		seq++
		batchID := fmt.Sprintf("MS-%s-%s-%04d", it.Code[3:], month[:4]+month[5:], seq)
		if err := s.setMark(ctx, tx, seqMark, fmt.Sprint(seq)); err != nil {
			return err
		}
		p := joblib.Push{BatchID: batchID, Dept: s.cfg.Dept, ItemCode: it.Code, Month: month, Persons: persons}
		plain, err := json.Marshal(p)
		if err != nil {
			return err
		}
		sealed, err := s.d.Fields.Seal(plain)
		if err != nil {
			return fmt.Errorf("portal: seal push: %w", err)
		}
		if err := s.enqueue(ctx, tx, kindPush, batchID, batchID, sealed); err != nil {
			return err
		}
		upd, err := tx.PrepareContext(ctx, s.db.Rebind(`UPDATE portal_eligible SET pushed_batch = ? WHERE item_code = ? AND person_key = ?`))
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, k := range keys {
			if k.month != month {
				continue
			}
			if _, err := upd.ExecContext(ctx, batchID, it.Code, k.key); err != nil {
				return err
			}
		}
		n = len(persons)
		return nil
	})
	return n, err
}

// expectPush registers, once per month and 免申即享 item, that the month's
// push is due by push_due_day 18:00 (the monitor shows it late after).
func (s *Service) expectPush(ctx context.Context) error {
	if s.d.Expect == nil {
		return nil
	}
	now := s.now().In(clock.Shanghai)
	month := monthOf(now)
	name := "expect.push." + month
	if v, err := s.mark(ctx, s.db, name); err != nil || v != "" {
		return err
	}
	due := time.Date(now.Year(), now.Month(), s.cfg.PushDueDay, 18, 0, 0, 0, clock.Shanghai)
	for _, code := range s.itemCodes() {
		if !s.items[code].Mianshen {
			continue
		}
		if err := s.d.Expect.Expect(ctx, monitor.Expectation{Name: "mianshen push " + code + " " + month, Partner: PartnerMianshen,
			Flow: FlowPush, Type: monitor.Sent, Due: due}); err != nil {
			return err
		}
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return s.setMark(ctx, tx, name, due.Format(time.RFC3339)) })
}

// takeCase records a new case and decides it; "" when the hub had it.
func (s *Service) takeCase(ctx context.Context, tx *sql.Tx, c *joblib.Case) (string, error) {
	var n int
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_cases WHERE case_id = ?`), c.CaseID).Scan(&n); err != nil || n > 0 {
		return "", err
	}
	key, sealed, err := s.person(c.IDNumber)
	if err != nil {
		return "", err
	}
	now := s.now()
	reason, err := s.confirmCheck(ctx, tx, c, key, now)
	if err != nil {
		return "", err
	}
	decision := joblib.DecisionConfirm
	if reason != "" {
		decision = joblib.DecisionRefuse
	} else if !s.cfg.AutoApprove {
		decision = decisionReview
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_cases (case_id, item_code, person_key, person_sealed, division, month,
		received_at, decision, reason, auto, decided_at, payout_next) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.CaseID, c.ItemCode, key, sealed, c.Division, c.Month, now.UnixMilli(), decision, reason, 1, now.UnixMilli(), c.Month); err != nil {
		return "", err
	}
	if decision == decisionReview {
		return decision, nil
	}
	return decision, s.queueConfirmation(ctx, tx, c.CaseID, decision, reason, true, now)
}

// decisionReview: a passing case waiting for an operator (auto_approve off).
const decisionReview = "review"

func (s *Service) queueConfirmation(ctx context.Context, tx *sql.Tx, caseID, decision, reason string, auto bool, now time.Time) error {
	cf := joblib.Confirmation{CaseID: caseID, Decision: decision, Reason: reason, Auto: auto, Dept: s.cfg.Dept, At: now.Truncate(time.Second)}
	if err := cf.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	body, err := json.Marshal(cf)
	if err != nil {
		return err
	}
	return s.enqueue(ctx, tx, kindConfirm, caseID, caseID, body)
}

// Decide confirms or refuses a case waiting for an operator (auto_approve
// off, or a case the rules passed that an operator must still see).
func (s *Service) Decide(ctx context.Context, caseID, decision, reason, user string) error {
	if decision != joblib.DecisionConfirm && decision != joblib.DecisionRefuse {
		return fmt.Errorf("%w: decision %q: want confirm or refuse", ErrBadRecord, decision)
	}
	if decision == joblib.DecisionRefuse && reason == "" {
		return fmt.Errorf("%w: a refusal needs a reason", ErrBadRecord)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT decision FROM portal_cases WHERE case_id = ?`), caseID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNoCase, caseID)
		}
		if err != nil {
			return err
		}
		if cur != decisionReview {
			return fmt.Errorf("%w: %s is %s", ErrDecided, caseID, cur)
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET decision = ?, reason = ?, auto = 0, decided_at = ? WHERE case_id = ?`),
			decision, reason, now.UnixMilli(), caseID); err != nil {
			return err
		}
		s.log.Info("portal: case decided", "case", caseID, "decision", decision, "user", user)
		return s.queueConfirmation(ctx, tx, caseID, decision, reason, false, now)
	})
}

// confirmCheck is the department's check of a case: the item is a
// 免申即享 item, the person is in its register with a normal status and
// passes its rule, and holds no application of the item in process and no
// confirmed case of it. "" passes; otherwise the reason to refuse.
func (s *Service) confirmCheck(ctx context.Context, tx *sql.Tx, c *joblib.Case, key string, now time.Time) (string, error) {
	it, ok := s.items[c.ItemCode]
	if !ok || !it.Mianshen {
		return "该事项不是本部门的免申即享事项", nil
	}
	first := now
	if t, err := time.ParseInLocation("2006-01", c.Month, clock.Shanghai); err == nil {
		first = t
	}
	reason, err := s.check(ctx, tx, it, c.IDNumber, key, first.AddDate(0, 1, -1))
	if err != nil || reason != "" {
		return reason, err
	}
	var app string
	err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT application_id FROM portal_applications WHERE person_key = ? AND item_code = ?
		AND result NOT IN ('reject', 'not_accepted', 'refused') ORDER BY received_at LIMIT 1`), key, c.ItemCode).Scan(&app)
	switch {
	case err == nil:
		return "已通过办件申请（" + app + "），不重复享受", nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", err
	}
	var other string
	err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT case_id FROM portal_cases WHERE person_key = ? AND item_code = ? AND decision = 'confirm'
		ORDER BY received_at LIMIT 1`), key, c.ItemCode).Scan(&other)
	switch {
	case err == nil:
		return "已享受该待遇（" + other + "），不重复享受", nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", err
	}
	return "", nil
}

// planPayouts looks for the payment of each confirmed case of an item
// paid by the disbursement, in the allowance month payout_next: once that
// month's batch is reconciled, a paid person gets a payout record queued; a
// failed or missing payment none (the next month is looked at, up to
// payout_months after the case's month, then the case closes without one).
func (s *Service) planPayouts(ctx context.Context) error {
	type pc struct {
		id, item, key, sealed, month, next string
	}
	rows, err := s.db.QueryContext(ctx, `SELECT case_id, item_code, person_key, person_sealed, month, payout_next FROM portal_cases
		WHERE decision = 'confirm' AND confirmed_at > 0 AND payout_state = '' ORDER BY case_id`)
	if err != nil {
		return err
	}
	byPeriod := map[string][]pc{}
	for rows.Next() {
		var c pc
		if err := rows.Scan(&c.id, &c.item, &c.key, &c.sealed, &c.month, &c.next); err != nil {
			rows.Close()
			return err
		}
		it := s.items[c.item]
		switch {
		case it == nil:
		case it.Payout == PayoutDisbursement && s.d.Payments != nil:
			// One lookup of the month's allowance for every such item.
			byPeriod[c.next] = append(byPeriod[c.next], c)
		case it.Payout == PayoutPaidFile:
			byPeriod[c.next+"\x00"+c.item] = append(byPeriod[c.next+"\x00"+c.item], c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	periods := make([]string, 0, len(byPeriod))
	for p := range byPeriod {
		periods = append(periods, p)
	}
	sort.Strings(periods)
	for _, group := range periods {
		cs := byPeriod[group]
		period, paidItem, fromFile := strings.Cut(group, "\x00")
		ids := make([]string, len(cs))
		var out map[string]disbursement.PaymentOutcome
		var reconciled bool
		source := "the reconciled allowance"
		if fromFile {
			// Paid outside the disbursement: the item's paid file of the month, by blind index.
			for i, c := range cs {
				ids[i] = c.key
			}
			out, reconciled, err = s.paidFileOutcomes(ctx, paidItem, period, ids)
			source = "paid file " + paidItem
		} else {
			for i, c := range cs {
				if ids[i], err = s.d.Fields.Decrypt(c.sealed); err != nil {
					return fmt.Errorf("portal: open case %s: %w", c.id, err)
				}
			}
			out, reconciled, err = s.d.Payments.Outcomes(ctx, bank.Disbursement, period, ids)
		}
		if errors.Is(err, disbursement.ErrNoBatch) || (err == nil && !reconciled) {
			continue // the month's cycle has not run or is not reconciled yet, or its paid file has not come
		}
		if err != nil {
			return fmt.Errorf("portal: payments of %s: %w", period, err)
		}
		now := s.now()
		var queued, none int
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			queued, none = 0, 0
			for i, c := range cs {
				o, listed := out[ids[i]]
				if listed && o.Paid() {
					p := joblib.Payout{PayoutID: "PO-" + c.id + "-" + period[:4] + period[5:], CaseID: c.id, Month: period, AmountFen: o.AmountFen,
						PaidAt: now.Truncate(time.Second), Dept: s.cfg.Dept}
					body, err := json.Marshal(p)
					if err != nil {
						return err
					}
					if err := s.enqueue(ctx, tx, kindPayout, c.id, p.PayoutID, body); err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET payout_state = 'queued', paid_month = ?, paid_fen = ? WHERE case_id = ?`),
						period, o.AmountFen, c.id); err != nil {
						return err
					}
					queued++
					continue
				}
				note := "not in the allowance list of " + period
				if fromFile {
					note = "not in the paid file of " + period
				}
				if listed {
					note = "payment " + disbursement.StatusName(o.Status) + " in " + period + ": " + o.Reason
				}
				next, last := nextMonth(period), addMonths(c.month, s.cfg.PayoutMonths)
				state := ""
				if next > last {
					state, next = "none", period
					none++
				}
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET payout_state = ?, payout_next = ?, payout_note = ? WHERE case_id = ?`),
					state, next, mask.Text(note), c.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("portal: plan payouts of %s: %w", period, err)
		}
		s.log.Info("portal: payouts planned", "from", source, "period", period, "queued", queued, "closed_without_payout", none, "cases", len(cs))
	}
	return nil
}

func addMonths(month string, n int) string {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return month
	}
	return t.AddDate(0, n, 0).Format("2006-01")
}

func nextMonth(month string) string { return addMonths(month, 1) }
