package disbursement

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

// failures lists the failed and missing payments for follow-up and carries
// them into the next run of the same kind.
func (s *Service) failures(ctx context.Context, b *Batch, _ RunOptions) (string, error) {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Carried persons (noted by validation) who were paid now leave the list.
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_carry WHERE kind = ? AND person_key IN
			(SELECT p.person_key FROM disb_issues i JOIN disb_payments p ON p.batch_id = i.batch_id AND p.seq = i.seq
			 WHERE i.batch_id = ? AND i.code = 'carried' AND p.status = 3)`), b.Kind, b.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_carry (kind, person_key, from_period, reason)
			SELECT ?, person_key, ?, reason FROM disb_payments WHERE batch_id = ? AND status IN (4, 5)
			ON CONFLICT (kind, person_key) DO UPDATE SET from_period = excluded.from_period, reason = excluded.reason`), b.Kind, b.Period, b.ID)
		return err
	})
	if err != nil {
		return "", err
	}
	failed := map[int64][2]string{} // status, reason
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT seq, status, reason FROM disb_payments WHERE batch_id = ? AND status IN (4, 5)`), b.ID)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var seq int64
		var st int
		var reason string
		if err := rows.Scan(&seq, &st, &reason); err != nil {
			rows.Close()
			return "", err
		}
		failed[seq] = [2]string{StatusName(st), reason}
	}
	rows.Close()
	p := filepath.Join(s.dir(b), "failures.csv")
	f, err := os.OpenFile(p+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriter(f)
	w, err := newCSVFile(bw, "seq", "reference", "person_id", "name", "account", "bank", "division", "amount_fen", "status", "reason")
	prefix := refPrefix(b)
	if err == nil {
		err = s.readBatch(b, func(seq int64, r *listRecord) error {
			if x, ok := failed[seq]; ok {
				return w.row(strconv.FormatInt(seq, 10), reference(prefix, seq), maskID(r.id()), maskName(r.name()),
					maskAccount(r.account()), r.bank(), r.division(), strconv.FormatInt(r.amount(), 10), x[0], x[1])
			}
			return nil
		})
	}
	if err == nil {
		err = w.close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(p+".part", p); err != nil {
		return "", err
	}
	if len(failed) > 0 {
		s.emit(monitor.Event{Type: monitor.Failed, Status: monitor.Warning, BatchID: b.Name, Stage: StageFailures, Flow: flowOf(b),
			RecordsFailed: int64(len(failed)), FileName: "failures.csv", ErrorClass: "payment_failed",
			ErrorMessage: fmt.Sprintf("%d payments failed or missing; carried into the next run", len(failed))})
	}
	return fmt.Sprintf("%d failures listed and carried over", len(failed)), nil
}

// maskName keeps the surname.
func maskName(n string) string {
	r := []rune(n)
	if len(r) == 0 {
		return ""
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

// ReportRow is one line of a batch report.
type ReportRow struct {
	Bank, Division, Status string
	Count, AmountFen       int64
}

// Report returns counts and amounts per bank, district and status.
func (s *Service) Report(ctx context.Context, k Kind, period string) ([]ReportRow, error) {
	b, err := s.Batch(ctx, k, period)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT bank, division, status, COUNT(*), SUM(amount_fen) FROM disb_payments
		WHERE batch_id = ? GROUP BY bank, division, status ORDER BY bank, division, status`), b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReportRow
	for rows.Next() {
		var bi, div, st int
		var r ReportRow
		if err := rows.Scan(&bi, &div, &st, &r.Count, &r.AmountFen); err != nil {
			return nil, err
		}
		r.Bank = "unknown"
		if bi >= 0 && bi < len(s.banks) {
			r.Bank = s.banks[bi].Config.Code
		}
		r.Division, r.Status = strconv.Itoa(div), StatusName(st)
		out = append(out, r)
	}
	return out, rows.Err()
}

// streamReport computes the rows of Report by reading the list once and
// only the records not paid from the database: much cheaper than grouping
// millions of rows in SQL. Records with no row status other than paid are paid.
func (s *Service) streamReport(ctx context.Context, b *Batch) ([]ReportRow, error) {
	other := map[int64]int{}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT seq, status FROM disb_payments WHERE batch_id = ? AND status <> 3`), b.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var seq int64
		var st int
		if err := rows.Scan(&seq, &st); err != nil {
			rows.Close()
			return nil, err
		}
		other[seq] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	type key struct {
		bank, div, st int
	}
	agg := map[key]*ReportRow{}
	err = s.readBatch(b, func(seq int64, r *listRecord) error {
		st, ok := other[seq]
		if !ok {
			st = StatusPaid
		}
		div, _ := strconv.Atoi(r.division())
		k := key{s.bankOf(r.bank()), div, st}
		row := agg[k]
		if row == nil {
			row = &ReportRow{Bank: "unknown", Division: strconv.Itoa(div), Status: StatusName(st)}
			if k.bank >= 0 {
				row.Bank = s.banks[k.bank].Config.Code
			}
			agg[k] = row
		}
		row.Count++
		row.AmountFen += r.amount()
		return nil
	})
	if err != nil {
		return nil, err
	}
	keys := make([]key, 0, len(agg))
	for k := range agg {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := keys[i], keys[j]
		if a.bank != c.bank {
			return a.bank < c.bank
		}
		if a.div != c.div {
			return a.div < c.div
		}
		return a.st < c.st
	})
	out := make([]ReportRow, 0, len(keys))
	for _, k := range keys {
		out = append(out, *agg[k])
	}
	return out, nil
}

// report writes report.csv (per bank, district and status) into the batch folder.
func (s *Service) report(ctx context.Context, b *Batch, _ RunOptions) (string, error) {
	rows, err := s.streamReport(ctx, b)
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.dir(b), "report.csv")
	var buf bytes.Buffer
	w, err := newCSVFile(&buf, "bank", "division", "status", "count", "amount_fen", "amount_yuan")
	if err != nil {
		return "", err
	}
	var paid, paidFen int64
	for _, r := range rows {
		if err := w.row(r.Bank, r.Division, r.Status, strconv.FormatInt(r.Count, 10), strconv.FormatInt(r.AmountFen, 10), yuan(r.AmountFen)); err != nil {
			return "", err
		}
		if r.Status == "paid" {
			paid += r.Count
			paidFen += r.AmountFen
		}
	}
	if err := w.close(); err != nil {
		return "", err
	}
	if err := ownerfile.Write(p, buf.Bytes()); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d paid, %s yuan; report.csv", paid, yuan(paidFen)), nil
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// StageInfo is one stage of a batch in Status.
type StageInfo struct {
	Stage              string
	StartedMs, EndedMs int64
	Detail             string
}

// StatusReport is the state of a batch.
type StatusReport struct {
	Batch  Batch
	Stages []StageInfo
	// Counts per payment status name.
	Counts map[string]int64
	// Issues per validation code.
	Issues map[string]int64
	// Quarantined return records.
	Quarantined int64
	// Files are the bank files sent and the returns received, by bank.
	Files []FileInfo
}

// FileInfo is one bank file of a batch in Status.
type FileInfo struct {
	// Bank is the bank's code.
	Bank string
	// Direction is out (sent to the bank) or return.
	Direction string
	// Name is the file name.
	Name string
	// State is generated, uploaded or upload_failed (out); reconciled,
	// refused or duplicate (return).
	State string
	// Records and TotalFen are what the file holds (out) or what was
	// reconciled from it (return).
	Records, TotalFen int64
	// Detail is the remote path (uploaded), or why it failed or was refused.
	Detail string
}

// Status tells where a batch stands.
func (s *Service) Status(ctx context.Context, k Kind, period string) (*StatusReport, error) {
	b, err := s.Batch(ctx, k, period)
	if err != nil {
		return nil, err
	}
	st := &StatusReport{Batch: *b, Counts: map[string]int64{}, Issues: map[string]int64{}}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT stage, started_at, finished_at, detail FROM disb_stages WHERE batch_id = ?`), b.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var si StageInfo
		if err := rows.Scan(&si.Stage, &si.StartedMs, &si.EndedMs, &si.Detail); err != nil {
			rows.Close()
			return nil, err
		}
		st.Stages = append(st.Stages, si)
	}
	rows.Close()
	sort.Slice(st.Stages, func(i, j int) bool { return indexOf(st.Stages[i].Stage) < indexOf(st.Stages[j].Stage) })
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT status, COUNT(*) FROM disb_payments WHERE batch_id = ? GROUP BY status`), b.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var code int
		var n int64
		if err := rows.Scan(&code, &n); err != nil {
			rows.Close()
			return nil, err
		}
		st.Counts[StatusName(code)] = n
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT code, COUNT(*) FROM disb_issues WHERE batch_id = ? GROUP BY code`), b.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			rows.Close()
			return nil, err
		}
		st.Issues[c] = n
	}
	rows.Close()
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM disb_quarantine WHERE batch_id = ?`), b.ID).Scan(&st.Quarantined); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT bank, direction, name, state, records, total_fen, detail FROM disb_files
		WHERE batch_id = ? ORDER BY bank, direction DESC, name`), b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var f FileInfo
		if err := rows.Scan(&f.Bank, &f.Direction, &f.Name, &f.State, &f.Records, &f.TotalFen, &f.Detail); err != nil {
			return nil, err
		}
		st.Files = append(st.Files, f)
	}
	return st, rows.Err()
}

// PeriodStats are the paid counts and amounts of a month, quarter or year.
type PeriodStats struct {
	Period                string // 2026-11, 2026-Q4 or 2026
	Paid, Failed, Missing int64
	PaidFen               int64
}

// Stats returns monthly, quarterly and yearly statistics of a kind for a year.
func (s *Service) Stats(ctx context.Context, k Kind, year int) (months, quarters []PeriodStats, total PeriodStats, err error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT b.period, p.status, COUNT(*), SUM(p.amount_fen) FROM disb_payments p
		JOIN disb_batches b ON p.batch_id = b.id WHERE b.kind = ? AND b.period LIKE ? AND p.status IN (3, 4, 5)
		GROUP BY b.period, p.status ORDER BY b.period`), string(k), fmt.Sprintf("%04d-%%", year))
	if err != nil {
		return nil, nil, total, err
	}
	defer rows.Close()
	byMonth := map[string]*PeriodStats{}
	byQ := map[string]*PeriodStats{}
	total.Period = strconv.Itoa(year)
	add := func(ps *PeriodStats, st int, n, fen int64) {
		switch st {
		case StatusPaid:
			ps.Paid += n
			ps.PaidFen += fen
		case StatusFailed:
			ps.Failed += n
		case StatusMissing:
			ps.Missing += n
		}
	}
	for rows.Next() {
		var period string
		var st int
		var n, fen int64
		if err := rows.Scan(&period, &st, &n, &fen); err != nil {
			return nil, nil, total, err
		}
		m, _ := strconv.Atoi(period[5:7])
		q := fmt.Sprintf("%d-Q%d", year, (m-1)/3+1)
		if byMonth[period] == nil {
			byMonth[period] = &PeriodStats{Period: period}
		}
		if byQ[q] == nil {
			byQ[q] = &PeriodStats{Period: q}
		}
		add(byMonth[period], st, n, fen)
		add(byQ[q], st, n, fen)
		add(&total, st, n, fen)
	}
	for _, v := range byMonth {
		months = append(months, *v)
	}
	for _, v := range byQ {
		quarters = append(quarters, *v)
	}
	sort.Slice(months, func(i, j int) bool { return months[i].Period < months[j].Period })
	sort.Slice(quarters, func(i, j int) bool { return quarters[i].Period < quarters[j].Period })
	return months, quarters, total, rows.Err()
}
