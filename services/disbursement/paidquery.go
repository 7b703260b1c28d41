package disbursement

import (
	"context"
	"fmt"
	"strings"
)

// PaymentOutcome is one person's result in a reconciled allowance batch.
type PaymentOutcome struct {
	// Status is the payment status code (StatusPaid, StatusFailed, ...).
	Status int
	// AmountFen is the amount listed for the person.
	AmountFen int64
	// Reason is the bank's or the validation's reason when not paid.
	Reason string
}

// Paid reports whether the bank's return said the person was paid.
func (o PaymentOutcome) Paid() bool { return o.Status == StatusPaid }

// Outcomes is the read-only query other services (the one-stop portal's
// payout reports) use: the reconciled outcome of each of ids (resident ID
// numbers) in the batch of kind and period. reconciled is false, with no
// outcomes, until the batch is done (returns loaded and reconciled, failures
// handled), so nobody reads a payment that is still in flight. A person not
// in the batch has no entry. The ID numbers are only turned into the
// service's person keys; nothing is stored.
func (s *Service) Outcomes(ctx context.Context, k Kind, period string, ids []string) (out map[string]PaymentOutcome, reconciled bool, err error) {
	b, err := s.Batch(ctx, k, period)
	if err != nil {
		return nil, false, err
	}
	if b.Stage != StageDone {
		return nil, false, nil
	}
	byKey := make(map[int64]string, len(ids))
	for _, id := range ids {
		byKey[s.personKey(id)] = id
	}
	out = make(map[string]PaymentOutcome, len(ids))
	keys := make([]int64, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	const chunk = 500
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		part := keys[:n]
		keys = keys[n:]
		args := make([]any, 0, n+1)
		args = append(args, b.ID)
		for _, k := range part {
			args = append(args, k)
		}
		q := `SELECT person_key, status, amount_fen, reason FROM disb_payments WHERE batch_id = ? AND person_key IN (?` +
			strings.Repeat(",?", n-1) + `)`
		rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
		if err != nil {
			return nil, false, fmt.Errorf("disbursement: outcomes of %s: %w", b.Name, err)
		}
		for rows.Next() {
			var pk int64
			var o PaymentOutcome
			if err := rows.Scan(&pk, &o.Status, &o.AmountFen, &o.Reason); err != nil {
				rows.Close()
				return nil, false, fmt.Errorf("disbursement: outcomes of %s: %w", b.Name, err)
			}
			id := byKey[pk]
			// A person listed twice (two standards) counts as paid once any
			// of the rows was paid.
			if prev, ok := out[id]; ok && prev.Paid() {
				continue
			}
			out[id] = o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, false, fmt.Errorf("disbursement: outcomes of %s: %w", b.Name, err)
		}
	}
	return out, true, nil
}
