package allowance

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// Deductions adds the open claw-back items to the quarterly deduction
// list (services/disbursement calls its Screen for deduction batches
// through SetDeductionScreener).
type Deductions struct{ s *Service }

// Deductions returns the claw-backs' screener of deduction lists.
func (s *Service) Deductions() *Deductions { return &Deductions{s: s} }

// clawItem is a claw-back item to deduct.
type clawItem struct {
	person, month, sealed, masked string
	fen                           int64
}

// Screen passes the deduction list as submitted and adds each person's
// open claw-back items (payments after death), once: a person already on
// the list gets the items' amount added to their line, any other gets a
// line of their own — the list line the months were paid by, to the
// account they were paid to, with the amount to deduct. The items are
// marked listed in period; a redo of the same period lists the same
// items again; items listed in another period, deducted or cancelled
// (person confirmed alive) are never listed. Items whose payment line was
// not kept (found before claw-backs were deducted) are reported and left
// open.
func (d *Deductions) Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (kept, excluded int64, summary string, err error) {
	s := d.s
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT person, month, line_sealed, id_masked, amount_fen FROM allow_clawbacks
		WHERE state = 'open' OR (state = 'listed' AND deduct_period = ?) ORDER BY person, month`), period)
	if err != nil {
		return 0, 0, "", fmt.Errorf("allowance: deductions %s: %w", period, err)
	}
	byPerson := map[string][]clawItem{}
	var order []string
	for rows.Next() {
		var c clawItem
		if err := rows.Scan(&c.person, &c.month, &c.sealed, &c.masked, &c.fen); err != nil {
			rows.Close()
			return 0, 0, "", err
		}
		if len(byPerson[c.person]) == 0 {
			order = append(order, c.person)
		}
		byPerson[c.person] = append(byPerson[c.person], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, "", err
	}
	rw := bufio.NewWriter(report)
	fmt.Fprint(rw, "\uFEFF")
	fmt.Fprintln(rw, "line,person,action,reason,months,amount_fen")
	bw := bufio.NewWriterSize(out, 256<<10)
	br := bufio.NewReaderSize(in, 256<<10)
	var listed []clawItem
	var listedFen int64
	var f [listColumns]string
	line := 0
	for {
		text, rerr := br.ReadString('\n')
		if text == "" && rerr != nil {
			if rerr != io.EOF {
				return 0, 0, "", rerr
			}
			break
		}
		line++
		body := strings.TrimRight(text, "\r\n")
		if line == 1 && strings.HasPrefix(strings.TrimPrefix(body, "\uFEFF"), "person_id,") {
			fmt.Fprintln(bw, body)
			line = 0
			continue
		}
		kept++
		if split(body, f[:]) != listColumns || !mask.ValidID(f[0]) {
			fmt.Fprintln(bw, body)
			continue
		}
		person := s.PersonKey(f[0])
		items := byPerson[person]
		if len(items) > 0 {
			amount, _ := strconv.ParseInt(f[5], 10, 64)
			add, months := sumItems(items)
			f[5] = strconv.FormatInt(amount+add, 10)
			body = strings.Join(f[:], ",")
			fmt.Fprintf(rw, "%d,%s,claw_back,paid after death (added to the listed line),%s,%d\n", line, items[0].masked, months, add)
			listed = append(listed, items...)
			listedFen += add
			delete(byPerson, person)
		}
		fmt.Fprintln(bw, body)
	}
	var unkept int
	for _, p := range order {
		items := byPerson[p]
		if len(items) == 0 {
			continue
		}
		add, months := sumItems(items)
		// The latest month's line (the same line for every month of one screening).
		sealed := items[len(items)-1].sealed
		if sealed == "" {
			unkept += len(items)
			fmt.Fprintf(rw, ",%s,claw_back_not_listed,no payment line on record (deduct by hand),%s,%d\n", items[0].masked, months, add)
			continue
		}
		l, err := s.fields.Decrypt(sealed)
		if err != nil {
			return 0, 0, "", fmt.Errorf("allowance: deductions %s: line of %s: %w", period, items[0].masked, err)
		}
		if split(l, f[:]) != listColumns {
			return 0, 0, "", fmt.Errorf("allowance: deductions %s: line of %s: not a list line", period, items[0].masked)
		}
		f[5], f[7], f[8] = strconv.FormatInt(add, 10), "", ""
		fmt.Fprintln(bw, strings.Join(f[:], ","))
		kept++
		line++
		fmt.Fprintf(rw, "%d,%s,claw_back,paid after death,%s,%d\n", line, items[0].masked, months, add)
		listed = append(listed, items...)
		listedFen += add
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, "", err
	}
	if err := rw.Flush(); err != nil {
		return 0, 0, "", err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, c := range listed {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_clawbacks SET state = 'listed', deduct_period = ?
				WHERE person = ? AND month = ? AND (state = 'open' OR (state = 'listed' AND deduct_period = ?))`), period, c.person, c.month, period); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, "", fmt.Errorf("allowance: deductions %s: %w", period, err)
	}
	summary = fmt.Sprintf("%d claw-back months listed (%d fen), %d not listed (no payment line)", len(listed), listedFen, unkept)
	return kept, 0, summary, nil
}

func sumItems(items []clawItem) (int64, string) {
	var fen int64
	ms := make([]string, len(items))
	for i, c := range items {
		fen += c.fen
		ms[i] = c.month
	}
	sort.Strings(ms)
	return fen, strings.Join(ms, " ")
}

// DeductionOutcome is a person's result in a reconciled deduction batch.
type DeductionOutcome struct {
	// Deducted tells that the bank's return said the amount was taken.
	Deducted bool
	// Reason is the bank's (or the validation's) reason when not.
	Reason string
}

// DeductionOutcomes gives the results of the deduction batch of a period
// for ID numbers; reconciled is false until the batch is done
// (services/disbursement's Outcomes).
type DeductionOutcomes func(ctx context.Context, period string, ids []string) (out map[string]DeductionOutcome, reconciled bool, err error)

// Settled counts what SettleDeductions did.
type Settled struct {
	// Deducted, Failed (open again for the next quarter) and RefundDue
	// (cancelled after listing, yet deducted) items.
	Deducted, Failed, RefundDue int
}

// SettleDeductions settles the claw-back items listed in the deduction
// of period by its reconciled results: deducted items are closed; failed
// ones (the bank's reason kept, or not in the batch) are open again and
// go into the next quarter's list; a cancelled item the bank deducted
// anyway becomes refund_due. Nothing happens before the batch is
// reconciled; settling again changes nothing.
func (s *Service) SettleDeductions(ctx context.Context, period string, outcomes DeductionOutcomes) (Settled, error) {
	var st Settled
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT person, month, line_sealed, state FROM allow_clawbacks
		WHERE deduct_period = ? AND state IN ('listed', 'cancelled') AND settled_ms = 0`), period)
	if err != nil {
		return st, fmt.Errorf("allowance: settle %s: %w", period, err)
	}
	type listedItem struct{ person, month, sealed, state string }
	var items []listedItem
	for rows.Next() {
		var it listedItem
		if err := rows.Scan(&it.person, &it.month, &it.sealed, &it.state); err != nil {
			rows.Close()
			return st, err
		}
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(items) == 0 {
		return st, err
	}
	idOf := map[string]string{}
	var ids []string
	var f [listColumns]string
	for _, it := range items {
		if _, ok := idOf[it.person]; ok || it.sealed == "" {
			continue
		}
		l, err := s.fields.Decrypt(it.sealed)
		if err != nil {
			return st, fmt.Errorf("allowance: settle %s: %w", period, err)
		}
		if split(l, f[:]) != listColumns {
			return st, errors.New("allowance: settle: a claw-back's line is not a list line")
		}
		idOf[it.person] = f[0]
		ids = append(ids, f[0])
	}
	res, reconciled, err := outcomes(ctx, period, ids)
	if err != nil || !reconciled {
		return st, err
	}
	now := s.nowMS()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		st = Settled{}
		for _, it := range items {
			o, ok := res[idOf[it.person]]
			var state, detail string
			switch {
			case ok && o.Deducted && it.state == "cancelled":
				state, detail, st.RefundDue = "refund_due", "deducted after the person was confirmed alive: refund due", st.RefundDue+1
			case it.state == "cancelled":
				state, detail = "cancelled", "not deducted"
			case ok && o.Deducted:
				state, detail, st.Deducted = "deducted", "deducted in "+period, st.Deducted+1
			default:
				reason := "not in the deduction batch"
				if ok {
					reason = mask.Text(o.Reason)
				}
				state, detail, st.Failed = "open", "deduction "+period+" failed: "+reason, st.Failed+1
			}
			// A failed item is open again (no deduction period, not settled);
			// the others keep their period and are settled.
			q := `UPDATE allow_clawbacks SET state = ?, detail = ?, attempts = attempts + 1, settled_ms = ? WHERE person = ? AND month = ? AND deduct_period = ? AND settled_ms = 0`
			args := []any{state, detail, now, it.person, it.month, period}
			if state == "open" {
				q = `UPDATE allow_clawbacks SET state = ?, detail = ?, attempts = attempts + 1, deduct_period = '' WHERE person = ? AND month = ? AND deduct_period = ? AND settled_ms = 0`
				args = []any{state, detail, it.person, it.month, period}
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Settled{}, fmt.Errorf("allowance: settle %s: %w", period, err)
	}
	return st, nil
}
