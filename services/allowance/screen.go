package allowance

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// listColumns is the number of columns of a payment list
// (services/disbursement.ListHeader): person_id, name, account, bank,
// division, amount_fen, standard, last_paid_month, termination_month.
const listColumns = 9

type stop struct {
	status, month, record string
}

type backpay struct {
	month string
	fen   int64
}

// Screen applies the rules to a payment list before it is cut (the
// disbursement intake calls it through disbursement.Screener):
//
//   - a person stopped (deceased, moved out) from a month on or before
//     period is left out and the month is recorded as withheld; when the
//     list says they were already paid for months from the stop month on,
//     each such month becomes a claw-back item;
//   - a 一卡通 holder (a 社保卡 application with the 一卡通 flag) is paid
//     to their card: the line's bank and account become the card's (the
//     latest 一卡通 application's), so that bank's file carries them;
//   - a person with back-payments due (补发) gets them added to this
//     month's amount, and they are marked as listed in period;
//   - an ID number not starting with 310 whose person has no 迁入 record
//     raises the warning non_shanghai_without_move_in.
//
// Lines it cannot read are passed on unchanged (list validation rejects
// them). The report lists every person left out, every back-payment and
// every warning (masked). Screening the same list for the same period
// again gives the same list.
func (s *Service) Screen(ctx context.Context, period string, in io.Reader, out, report io.Writer) (kept, excluded int64, summary string, err error) {
	stops, backpays, movedIn, err := s.screenState(ctx, period)
	if err != nil {
		return 0, 0, "", err
	}
	routes, err := s.yikatongRoutes(ctx)
	if err != nil {
		return 0, 0, "", err
	}
	var routed int
	type withheld struct {
		person, month, reason, record string
		fen                           int64
	}
	type claw struct {
		person, month, masked, record, sealed string
		fen                                   int64
	}
	type warning struct{ person, masked, detail string }
	var held []withheld
	var claws []claw
	var warns []warning
	var listed []string
	var backFen, clawFen int64

	// With card statuses, kept lines wait in chunks for one status query each.
	type waiting struct {
		line             int
		id, masked, body string
		fen              int64
	}
	const cardChunk = 20000
	var pending []waiting
	var cardStops int
	var flushCards func() error

	br := bufio.NewReaderSize(in, 256<<10)
	bw := bufio.NewWriterSize(out, 256<<10)
	rw := bufio.NewWriter(report)
	fmt.Fprint(rw, "\uFEFF")
	fmt.Fprintln(rw, "line,person,action,reason,months,amount_fen")
	flushCards = func() error {
		if len(pending) == 0 {
			return nil
		}
		ids := make([]string, len(pending))
		for i, h := range pending {
			ids[i] = h.id
		}
		st, err := s.cards.Query(ctx, ids)
		if err != nil {
			return err
		}
		for _, h := range pending {
			switch c := st[h.id]; c {
			case "lost", "frozen", "cancelled":
				excluded++
				cardStops++
				fmt.Fprintf(rw, "%d,%s,left_out,card %s,,%d\n", h.line, h.masked, c, h.fen)
			default:
				fmt.Fprintln(bw, h.body)
				kept++
			}
		}
		pending = pending[:0]
		return nil
	}
	line := 0
	var f [listColumns]string
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
		if line == 1 && strings.HasPrefix(body, "person_id,") {
			fmt.Fprintln(bw, body)
			line = 0
			continue
		}
		n := split(body, f[:])
		if n != listColumns || !mask.ValidID(f[0]) {
			fmt.Fprintln(bw, body)
			kept++
			continue
		}
		id := f[0]
		person := s.PersonKey(id)
		masked := mask.IDNumber(id)
		amount, _ := strconv.ParseInt(f[5], 10, 64)
		if st, ok := stops[person]; ok && period >= st.month {
			excluded++
			held = append(held, withheld{person, period, st.status, st.record, amount})
			months := ""
			if last := f[7]; last != "" && last >= st.month && st.status == StatusDeceased {
				// The quarterly deduction takes it back from the account
				// the months were paid to: the 一卡通 card's when so routed.
				g := f
				if rt, ok := routes[person]; ok {
					if g[2], err = s.fields.Decrypt(rt.sealed); err != nil {
						return 0, 0, "", fmt.Errorf("allowance: screen %s: 一卡通 account of %s: %w", period, masked, err)
					}
					g[3] = rt.bank
				}
				sealed, err := s.fields.Encrypt(strings.Join(g[:], ","))
				if err != nil {
					return 0, 0, "", fmt.Errorf("allowance: screen %s: seal: %w", period, err)
				}
				for m := st.month; m <= last; m = addMonth(m) {
					claws = append(claws, claw{person, m, masked, st.record, sealed, amount})
					clawFen += amount
					months += m + " "
				}
			}
			fmt.Fprintf(rw, "%d,%s,left_out,%s since %s,,%d\n", line, masked, st.status, st.month, amount)
			if months != "" {
				fmt.Fprintf(rw, "%d,%s,claw_back,paid after death,%s,%d\n", line, masked, strings.TrimSpace(months), amount*int64(len(strings.Fields(months))))
			}
			continue
		}
		if rt, ok := routes[person]; ok {
			acct, err := s.fields.Decrypt(rt.sealed)
			if err != nil {
				return 0, 0, "", fmt.Errorf("allowance: screen %s: 一卡通 account of %s: %w", period, masked, err)
			}
			if f[2] != acct || f[3] != rt.bank {
				fmt.Fprintf(rw, "%d,%s,yikatong,paid to the card: %s %s (was %s %s),,%s\n", line, masked, rt.bank, rt.masked, f[3], mask.Account(f[2]), f[5])
				f[2], f[3] = acct, rt.bank
				body = strings.Join(f[:], ",")
				routed++
			}
		}
		if bp := backpays[person]; len(bp) > 0 {
			var add int64
			var ms []string
			for _, b := range bp {
				add += b.fen
				ms = append(ms, b.month)
			}
			delete(backpays, person)
			listed = append(listed, person)
			backFen += add
			f[5] = strconv.FormatInt(amount+add, 10)
			body = strings.Join(f[:], ",")
			fmt.Fprintf(rw, "%d,%s,back_pay,withheld wrongly,%s,%d\n", line, masked, strings.Join(ms, " "), add)
		}
		if !strings.HasPrefix(id, "310") && !movedIn[person] {
			warns = append(warns, warning{person, masked, "ID number not from Shanghai (" + id[:3] + "…) and no 迁入 record"})
			fmt.Fprintf(rw, "%d,%s,warning,%s,,\n", line, masked, WarnNoMoveIn)
		}
		if s.cards == nil {
			fmt.Fprintln(bw, body)
			kept++
			continue
		}
		pending = append(pending, waiting{line, id, masked, body, amount})
		if len(pending) == cardChunk {
			if err := flushCards(); err != nil {
				return 0, 0, "", err
			}
		}
	}
	if err := flushCards(); err != nil {
		return 0, 0, "", err
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, "", err
	}
	if err := rw.Flush(); err != nil {
		return 0, 0, "", err
	}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, h := range held {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_withheld (person, month, amount_fen, reason, record_id) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (person, month) DO UPDATE SET amount_fen = excluded.amount_fen, reason = excluded.reason, record_id = excluded.record_id`),
				h.person, h.month, h.fen, h.reason, h.record); err != nil {
				return err
			}
		}
		for _, c := range claws {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_clawbacks (person, month, id_masked, amount_fen, record_id, found_in, state, line_sealed)
				VALUES (?, ?, ?, ?, ?, ?, 'open', ?) ON CONFLICT (person, month) DO NOTHING`), c.person, c.month, c.masked, c.fen, c.record, period, c.sealed); err != nil {
				return err
			}
		}
		for _, p := range listed {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE allow_backpays SET state = 'listed', period = ? WHERE person = ? AND (state = 'due' OR period = ?)`),
				period, p, period); err != nil {
				return err
			}
		}
		for _, w := range warns {
			if err := s.warn(ctx, tx, w.person, WarnNoMoveIn, w.masked, w.detail, "list "+period); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, "", fmt.Errorf("allowance: screen %s: %w", period, err)
	}
	summary = fmt.Sprintf("%d kept, %d left out (%d dead or moved out, %d by card status), %d paid to their 一卡通 card, %d back-paid (%d fen), %d claw-back months (%d fen), %d warnings",
		kept, excluded, int(excluded)-cardStops, cardStops, routed, len(listed), backFen, len(claws), clawFen, len(warns))
	return kept, excluded, summary, nil
}

// screenState loads what screening a list needs: the stopped persons,
// the back-payments due (or already listed in period: a redo lists them
// again) and the persons with a 迁入 record.
func (s *Service) screenState(ctx context.Context, period string) (map[string]stop, map[string][]backpay, map[string]bool, error) {
	stops := map[string]stop{}
	rows, err := s.db.QueryContext(ctx, `SELECT person, status, stop_month, record_id FROM allow_persons WHERE status <> 'active'`)
	if err != nil {
		return nil, nil, nil, err
	}
	for rows.Next() {
		var p string
		var st stop
		if err := rows.Scan(&p, &st.status, &st.month, &st.record); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		stops[p] = st
	}
	rows.Close()
	backpays := map[string][]backpay{}
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT person, month, amount_fen FROM allow_backpays WHERE state = 'due' OR (state = 'listed' AND period = ?) ORDER BY person, month`), period)
	if err != nil {
		return nil, nil, nil, err
	}
	for rows.Next() {
		var p string
		var b backpay
		if err := rows.Scan(&p, &b.month, &b.fen); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		backpays[p] = append(backpays[p], b)
	}
	rows.Close()
	movedIn := map[string]bool{}
	rows, err = s.db.QueryContext(ctx, `SELECT DISTINCT person FROM allow_records WHERE kind = 'move_in' AND state = 'applied'`)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, nil, nil, err
		}
		movedIn[p] = true
	}
	return stops, backpays, movedIn, rows.Err()
}

// split splits a comma-separated line into f and returns the number of fields.
func split(line string, f []string) int {
	n := 0
	for n < len(f) {
		i := strings.IndexByte(line, ',')
		if i < 0 {
			f[n] = line
			return n + 1
		}
		f[n] = line[:i]
		n++
		line = line[i+1:]
	}
	return n + 1 // more fields than f holds
}

func addMonth(m string) string { return nextMonth(m + "-01") }
