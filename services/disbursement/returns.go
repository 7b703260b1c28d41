package disbursement

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// returns fetches the banks' return files and reconciles them until every
// bank is complete or the return deadline passed; records still open then
// are missing (an alert).
func (s *Service) returns(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	files, err := s.outFiles(ctx, b)
	if err != nil {
		return "", err
	}
	pending := map[int]outFile{}
	var deadline time.Time
	for _, f := range files {
		if f.bank < 0 {
			continue
		}
		pending[f.bank] = f
		wait := s.cfg.ReturnWait
		if wait <= 0 {
			wait = s.banks[f.bank].Config.ReturnDeadline
		}
		if d := time.Now().Add(wait); d.After(deadline) {
			deadline = d
		}
	}
	// Each bank is polled by its own goroutine: one slow or failing bank
	// does not hold up the others.
	var mu sync.Mutex
	var summary []string
	var firstErr error
	var wg sync.WaitGroup
	for bi, f := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := s.awaitBank(ctx, b, bi, f, deadline, opt)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if line != "" {
				summary = append(summary, line)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return "", firstErr
	}
	sort.Strings(summary)
	return strings.Join(summary, "; "), nil
}

// awaitBank polls one bank's returns until they are complete or the
// deadline passed, then settles the bank's records.
func (s *Service) awaitBank(ctx context.Context, b *Batch, bi int, f outFile, deadline time.Time, opt RunOptions) (string, error) {
	bk := s.banks[bi]
	base := strings.TrimSuffix(f.name, path.Ext(f.name))
	tr, err := bk.Transport()
	if err != nil {
		return "", err
	}
	for {
		_, err := tr.Poll(ctx, sftp.PollOptions{BatchID: b.Name, Stage: StageReturns, Include: []string{base + "_RET*"}},
			func(ctx context.Context, in sftp.Inbound) error { return s.reconcile(ctx, b, bi, in) })
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			s.log.Warn("disbursement: poll returns", "bank", bk.Config.Code, "err", err)
		}
		var got sql.NullInt64
		if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT SUM(records) FROM disb_files WHERE batch_id = ? AND direction = 'return' AND state = 'reconciled'`),
			b.ID).Scan(&got); err == nil {
			opt.Progress(StageReturns, got.Int64, b.Valid)
		}
		done, err := s.bankComplete(ctx, b, bi)
		if err != nil {
			return "", err
		}
		if done {
			return s.finishBank(ctx, b, bi, f)
		}
		if time.Now().After(deadline) {
			s.emit(monitor.Event{Type: monitor.ExpectationMissed, Status: monitor.Error, BatchID: b.Name, Stage: StageReturns,
				Flow: flowOf(b), Partner: bk.Config.Partner(), FileName: f.name, ErrorCode: "return_late"})
			line, err := s.finishBank(ctx, b, bi, f)
			return line + " (deadline passed)", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(s.cfg.PollEvery):
		}
	}
}

// bankComplete tells whether all parts of a bank's return are reconciled.
func (s *Service) bankComplete(ctx context.Context, b *Batch, bi int) (bool, error) {
	var parts, total sql.NullInt64
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(DISTINCT part_no), MAX(part_total) FROM disb_files
		WHERE batch_id = ? AND bank = ? AND direction = 'return' AND state = 'reconciled'`), b.ID, s.banks[bi].Config.Code).Scan(&parts, &total); err != nil {
		return false, err
	}
	return parts.Int64 > 0 && parts.Int64 >= total.Int64, nil
}

// finishBank declares the records still open missing and compares totals.
func (s *Service) finishBank(ctx context.Context, b *Batch, bi int, f outFile) (string, error) {
	bk := s.banks[bi]
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = 5, reason = 'missing' WHERE batch_id = ? AND bank = ? AND status = 2`), b.ID, bi)
	if err != nil {
		return "", err
	}
	missing, _ := res.RowsAffected()
	var paid, failed, paidFen, failedFen int64
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT status, COUNT(*), SUM(amount_fen) FROM disb_payments WHERE batch_id = ? AND bank = ? AND status IN (3, 4, 5) GROUP BY status`), b.ID, bi)
	if err != nil {
		return "", err
	}
	var missingFen int64
	for rows.Next() {
		var st int
		var n, fen int64
		if err := rows.Scan(&st, &n, &fen); err != nil {
			rows.Close()
			return "", err
		}
		switch st {
		case StatusPaid:
			paid, paidFen = n, fen
		case StatusFailed:
			failed, failedFen = n, fen
		case StatusMissing:
			missingFen = fen
		}
	}
	rows.Close()
	st := monitor.OK
	if missing > 0 || paidFen+failedFen+missingFen != f.total {
		st = monitor.Error
	} else if failed > 0 {
		st = monitor.Warning
	}
	ev := monitor.Event{Type: monitor.Reconciled, Status: st, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b), Partner: bk.Config.Partner(),
		FileName: f.name, Records: paid + failed, RecordsFailed: failed + missing, AmountFen: paidFen,
		Attrs: map[string]string{"paid": fmt.Sprint(paid), "failed": fmt.Sprint(failed), "missing": fmt.Sprint(missing),
			"sent_fen": fmt.Sprint(f.total), "paid_fen": fmt.Sprint(paidFen), "failed_fen": fmt.Sprint(failedFen)}}
	if missing > 0 {
		ev.ErrorCode, ev.ErrorMessage = "missing_records", fmt.Sprintf("%d sent records have no result", missing)
	}
	s.emit(ev)
	return fmt.Sprintf("%s: %d paid, %d failed, %d missing", bk.Config.Code, paid, failed, missing), nil
}

// reconcile loads one return file of bank bi. It is idempotent: a record
// already final is not changed, a file whose content was reconciled
// before (a duplicate delivery) is ignored.
func (s *Service) reconcile(ctx context.Context, b *Batch, bi int, in sftp.Inbound) error {
	bk := s.banks[bi]
	name := path.Base(in.RemotePath)
	var dup int
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM disb_files WHERE batch_id = ? AND direction = 'return'
		AND digest = ? AND state = 'reconciled' AND name <> ?`), b.ID, in.Digest, name).Scan(&dup); err != nil {
		return err
	}
	if dup > 0 {
		s.emit(monitor.Event{Type: monitor.Dropped, Status: monitor.Warning, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
			Partner: bk.Config.Partner(), FileName: name, Digest: in.Digest, ErrorClass: "duplicate", ErrorCode: "duplicate_return"})
		_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state)
			VALUES (?, ?, 'return', ?, 0, 0, ?, 'duplicate') ON CONFLICT DO NOTHING`), b.ID, bk.Config.Code, name, in.Digest)
		return err
	}
	l := bk.Files.Inbound(Kind(b.Kind))
	if l == nil {
		return fmt.Errorf("bank %s: no return layout", bk.Config.Code)
	}
	// Parse first, outside the database lock: several return files are
	// read at once (at most two, to bound memory), then applied in turn.
	select {
	case s.parseSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	p, err := s.parseReturn(b, l, in.LocalPath)
	<-s.parseSem
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	quar := p.quar
	var matched, failed, already, anomalies, paidFen int64

	// SQLite has one writer: reconciliations take turns, and a long file is
	// committed in slices so that other writers (ledgers, other stages)
	// never wait long. A crash in between is harmless: the file is handed
	// over again and records already final are left alone.
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	const perStmt = 200
	const perTx = 50_000
	var tx *sql.Tx
	var upd, multi *sql.Stmt
	closeTx := func(commit bool) error {
		if tx == nil {
			return nil
		}
		if upd != nil {
			_ = upd.Close()
		}
		if multi != nil {
			_ = multi.Close()
		}
		t := tx
		tx, upd, multi = nil, nil, nil
		if !commit {
			return t.Rollback()
		}
		return t.Commit()
	}
	defer func() { _ = closeTx(false) }()
	openTx := func() error {
		var err error
		if tx, err = s.db.BeginTx(ctx, nil); err != nil {
			return err
		}
		if upd, err = tx.PrepareContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = ?, reason = ?
			WHERE batch_id = ? AND seq = ? AND bank = ? AND amount_fen = ? AND status = 2`)); err != nil {
			return err
		}
		if s.db.Dialect() == store.SQLite {
			// One statement updates a whole slice of records (UPDATE FROM a
			// VALUES list): far fewer round trips than one per record.
			multi, err = tx.PrepareContext(ctx, `WITH v(seq, st, reason, amt) AS (VALUES `+
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", perStmt), ",")+`)
				UPDATE disb_payments SET status = v.st, reason = v.reason FROM v
				WHERE disb_payments.batch_id = ? AND disb_payments.seq = v.seq AND disb_payments.bank = ?
				AND disb_payments.amount_fen = v.amt AND disb_payments.status = 2`)
		}
		return err
	}
	count := func(o outcome) {
		matched++
		if o.st == StatusFailed {
			failed++
		} else {
			paidFen += o.amt
		}
	}
	// classify finds out why a record was not applied.
	classify := func(o outcome) error {
		var cur, cbank int
		var amt int64
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT status, bank, amount_fen FROM disb_payments WHERE batch_id = ? AND seq = ?`), b.ID, o.seq).Scan(&cur, &cbank, &amt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			quar = append(quar, quarantined{int64(o.line), "reference not sent in this batch"})
			anomalies++
		case err != nil:
			return err
		case cbank != bi:
			quar = append(quar, quarantined{int64(o.line), "record belongs to another bank"})
			anomalies++
		case amt != o.amt:
			quar = append(quar, quarantined{int64(o.line), fmt.Sprintf("amount %d fen differs from the %d fen sent", o.amt, amt)})
			anomalies++
		default:
			already++ // already reconciled (a resumed or repeated file)
		}
		return nil
	}
	apply := func(batch []outcome) error {
		if multi != nil && len(batch) == perStmt {
			args := make([]any, 0, perStmt*4+2)
			for _, o := range batch {
				args = append(args, int64(o.seq), int(o.st), p.reasons[o.reason], o.amt)
			}
			args = append(args, b.ID, bi)
			r, err := multi.ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == int64(len(batch)) {
				for _, o := range batch {
					count(o)
				}
				return nil
			}
			// Some were not applied: look at each (rare).
			for _, o := range batch {
				var cur int
				if err := tx.QueryRowContext(ctx, `SELECT status FROM disb_payments WHERE batch_id = ? AND seq = ? AND bank = ? AND amount_fen = ?`,
					b.ID, int64(o.seq), bi, o.amt).Scan(&cur); err == nil && cur == int(o.st) {
					count(o)
					continue
				}
				if err := classify(o); err != nil {
					return err
				}
			}
			return nil
		}
		for _, o := range batch {
			r, err := upd.ExecContext(ctx, int(o.st), p.reasons[o.reason], b.ID, int64(o.seq), bi, o.amt)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n == 1 {
				count(o)
			} else if err := classify(o); err != nil {
				return err
			}
		}
		return nil
	}
	err = func() error {
		for start := 0; start < len(p.outs); start += perTx {
			if err := openTx(); err != nil {
				return err
			}
			end := min(start+perTx, len(p.outs))
			for i := start; i < end; i += perStmt {
				if err := apply(p.outs[i:min(i+perStmt, end)]); err != nil {
					return err
				}
			}
			if end < len(p.outs) {
				if err := closeTx(true); err != nil {
					return err
				}
			}
		}
		if tx == nil {
			if err := openTx(); err != nil {
				return err
			}
		}
		detail := ""
		if p.res.CheckErr != nil {
			detail = p.res.CheckErr.Error()
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_quarantine WHERE batch_id = ? AND bank = ? AND file = ?`), b.ID, bk.Config.Code, name); err != nil {
			return err
		}
		for _, x := range quar {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_quarantine (batch_id, bank, file, line, problem) VALUES (?, ?, ?, ?, ?)`),
				b.ID, bk.Config.Code, name, x.line, x.problem); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state, part_no, part_total, detail)
			VALUES (?, ?, 'return', ?, ?, ?, ?, 'reconciled', ?, ?, ?)
			ON CONFLICT (batch_id, bank, direction, name) DO UPDATE SET records = excluded.records, total_fen = excluded.total_fen,
			digest = excluded.digest, state = excluded.state, part_no = excluded.part_no, part_total = excluded.part_total, detail = excluded.detail`),
			b.ID, bk.Config.Code, name, p.res.Summary.Details, p.res.Summary.AmountFen, in.Digest, max(p.res.PartNo, 1), max(p.res.PartTotal, 1), detail)
		if err != nil {
			return err
		}
		return closeTx(true)
	}()
	if err != nil {
		// Contention (SQLite busy, a PostgreSQL deadlock or serialization
		// failure) is worth another try on the next pass; the file stays
		// claimed by this node and is not moved to failed/.
		if store.IsTransient(err) {
			return fmt.Errorf("reconcile %s: %w: %w", name, sftp.ErrRetry, err)
		}
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	st := monitor.OK
	if len(quar) > 0 || anomalies > 0 {
		st = monitor.Warning
	}
	ev := monitor.Event{Type: monitor.Reconciled, Status: st, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
		Partner: bk.Config.Partner(), Channel: "sftp", Direction: monitor.Inbound, FileName: name, Digest: in.Digest, Bytes: in.Bytes,
		Records: matched, RecordsFailed: failed, AmountFen: paidFen,
		Attrs: map[string]string{"quarantined": fmt.Sprint(len(quar)), "already_final": fmt.Sprint(already)}}
	s.emit(ev)
	if len(quar) > 0 {
		s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Warning, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
			Partner: bk.Config.Partner(), FileName: name, RecordsFailed: int64(len(quar)), ErrorClass: "malformed_return_record",
			ErrorMessage: fmt.Sprintf("%d return records quarantined (first at line %d: %s)", len(quar), quar[0].line, quar[0].problem)})
	}
	return nil
}

type quarantined struct {
	line    int64
	problem string
}

// outcome is one parsed return record, kept compact (a file of 733,000
// records takes about 18 MB).
type outcome struct {
	amt    int64
	seq    int32
	line   int32
	reason uint16
	st     uint8
}

type parsedReturn struct {
	outs    []outcome
	reasons []string // reason texts; index 0 is ""
	quar    []quarantined
	res     bank.ReadResult
}

// parseReturn reads a return file into outcomes; malformed records are
// quarantined with their line numbers.
func (s *Service) parseReturn(b *Batch, l *mappings.Layout, local string) (*parsedReturn, error) {
	f, err := os.Open(local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &parsedReturn{reasons: []string{""}}
	reasonIdx := map[string]uint16{"": 0}
	prefix := refPrefix(b)
	var line int32
	p.res, err = bank.ReadPayments(l, f, func(r mappings.Reject) {
		p.quar = append(p.quar, quarantined{r.Line, r.Kind.String() + " " + r.Field + ": " + r.Problem})
	}, func(rec *mappings.PaymentRecord) error {
		line++
		seq, ok := seqOf(prefix, rec.Reference)
		if !ok {
			p.quar = append(p.quar, quarantined{int64(line), "record " + strconv.Itoa(int(line)) + ": unknown reference"})
			return nil
		}
		o := outcome{amt: rec.AmountFen, seq: int32(seq), line: line, st: StatusPaid}
		switch rec.Status {
		case mappings.StatusPaid:
		case mappings.StatusFailed:
			o.st = StatusFailed
			reason := strings.TrimSpace(rec.ReasonCode + " " + rec.ReasonText)
			i, ok := reasonIdx[reason]
			if !ok && len(p.reasons) < 65535 {
				i = uint16(len(p.reasons))
				reasonIdx[reason] = i
				p.reasons = append(p.reasons, reason)
			}
			o.reason = i
		default:
			p.quar = append(p.quar, quarantined{int64(line), "record " + strconv.Itoa(int(line)) + ": no result status"})
			return nil
		}
		p.outs = append(p.outs, o)
		return nil
	})
	return p, err
}
