package portal

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// PaidHeader is the header of a paid file: the payments the business
// system made for an item paid outside the allowance disbursement (payout
// paid_file), one line per person.
const PaidHeader = "id_number,amount_fen,result,reason"

var paidName = regexp.MustCompile(`^paid-([A-Z][A-Z0-9-]{1,31})-(20[0-9]{2}-(?:0[1-9]|1[0-2]))\.csv$`)

// PaidRecord is one line of a paid file.
type PaidRecord struct {
	// IDNumber is the person paid (or not).
	IDNumber string
	// AmountFen is the amount, in fen (positive when paid).
	AmountFen int64
	// Paid is true for result paid, false for failed.
	Paid bool
	// Reason says why a payment failed.
	Reason string
}

// ParsePaid reads a paid file and calls fn for each valid line; invalid
// lines are returned with their numbers and never reach fn. A file whose
// header is wrong is refused whole (an error wrapping ErrBadRecord).
func ParsePaid(data []byte, fn func(line int64, r PaidRecord) error) ([]LineError, error) {
	r, err := readCSV(data, PaidHeader)
	if err != nil {
		return nil, err
	}
	var bad []LineError
	seen := map[string]int64{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return bad, nil
		}
		if err != nil {
			bad = append(bad, LineError{Line: errLine(err), Reason: clipText(err.Error(), 200)})
			if !recoverable(err) {
				return bad, nil
			}
			continue
		}
		line, _ := r.FieldPos(0)
		p, reason := paidRecord(rec)
		if reason == "" {
			if prev, dup := seen[p.IDNumber]; dup {
				reason = fmt.Sprintf("the person is listed twice (also line %d)", prev)
			}
		}
		if reason != "" {
			bad = append(bad, LineError{Line: int64(line), Reason: reason})
			continue
		}
		seen[p.IDNumber] = int64(line)
		if err := fn(int64(line), p); err != nil {
			return bad, err
		}
	}
}

func paidRecord(rec []string) (PaidRecord, string) {
	if len(rec) != 4 {
		return PaidRecord{}, fmt.Sprintf("%d fields, want 4", len(rec))
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	p := PaidRecord{IDNumber: strings.ToUpper(rec[0]), Reason: rec[3]}
	if !mask.ValidID(p.IDNumber) {
		return p, "id_number " + mask.IDNumber(p.IDNumber) + " is not a valid resident ID number"
	}
	v, err := strconv.ParseInt(rec[1], 10, 64)
	if err != nil || v < 0 || v > 1e9 {
		return p, fmt.Sprintf("amount_fen %q: want a whole number of fen, 0..1000000000", clipText(rec[1], 20))
	}
	p.AmountFen = v
	switch rec[2] {
	case "paid":
		p.Paid = true
		if v == 0 {
			return p, "amount_fen: a payment made needs a positive amount"
		}
	case "failed":
		if p.Reason == "" {
			return p, "reason: required for a failed payment"
		}
	default:
		return p, fmt.Sprintf("result %q: want paid or failed", clipText(rec[2], 20))
	}
	if len([]rune(p.Reason)) > 200 {
		return p, "reason: at most 200 characters"
	}
	p.Reason = mask.Text(p.Reason)
	return p, ""
}

// applyPaid stores a paid file's lines and marks its month arrived.
func (s *Service) applyPaid(ctx context.Context, tx *sql.Tx, name string, data []byte, item, month string, good *int64) ([]LineError, error) {
	up, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO portal_paid (item_code, person_key, month, amount_fen, paid, reason, file)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_code, person_key, month) DO UPDATE SET amount_fen = excluded.amount_fen,
		paid = excluded.paid, reason = excluded.reason, file = excluded.file`))
	if err != nil {
		return nil, err
	}
	defer up.Close()
	bad, err := ParsePaid(data, func(_ int64, r PaidRecord) error {
		paid := 0
		if r.Paid {
			paid = 1
		}
		if _, err := up.ExecContext(ctx, item, s.d.Fields.BlindIndex(r.IDNumber), month, r.AmountFen, paid, r.Reason, name); err != nil {
			return err
		}
		*good++
		return nil
	})
	if err != nil {
		return bad, err
	}
	_, err = tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_paid_months (item_code, month, file, taken_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (item_code, month) DO UPDATE SET file = excluded.file, taken_at = excluded.taken_at`), item, month, name, s.now().UnixMilli())
	return bad, err
}

// paidFileOutcomes answers, for an item paid outside the disbursement, the
// month's outcome of each person (by blind index) once the month's paid
// file arrived (reconciled false before).
func (s *Service) paidFileOutcomes(ctx context.Context, item, month string, keys []string) (map[string]disbursement.PaymentOutcome, bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_paid_months WHERE item_code = ? AND month = ?`), item, month).Scan(&n); err != nil {
		return nil, false, err
	}
	if n == 0 {
		return nil, false, nil
	}
	out := map[string]disbursement.PaymentOutcome{}
	for _, k := range keys {
		var fen int64
		var paid int
		var reason string
		err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT amount_fen, paid, reason FROM portal_paid WHERE item_code = ? AND person_key = ? AND month = ?`),
			item, k, month).Scan(&fen, &paid, &reason)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		st := disbursement.StatusFailed
		if paid == 1 {
			st = disbursement.StatusPaid
		}
		out[k] = disbursement.PaymentOutcome{Status: st, AmountFen: fen, Reason: reason}
	}
	return out, true, nil
}

// WritePaid writes a paid file (the business system's side, for the demo
// and tests): the header, then one line per record (id_number, amount_fen,
// result, reason).
func WritePaid(w io.Writer, lines [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(strings.Split(PaidHeader, ",")); err != nil {
		return err
	}
	if err := cw.WriteAll(lines); err != nil {
		return err
	}
	return cw.Error()
}
