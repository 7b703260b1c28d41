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
	var errs []error
	var wg sync.WaitGroup
	for bi, f := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := s.awaitBank(ctx, b, bi, f, deadline, opt)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if line != "" {
				summary = append(summary, line)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		// Every failed bank is named (a status shows them all).
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return "", errors.Join(errs...)
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
			// A refused return never settles the bank: its records stay
			// sent, the stage stops naming the bank and why, and a
			// resume polls again for the correct return.
			if why, err := s.refusedReturns(ctx, b, bi); err != nil {
				return "", err
			} else if why != "" {
				return "", fmt.Errorf("bank %s: %w: %s; its records stay unsettled until a correct return is read (mzhub disbursement resume polls again)",
					bk.Config.Code, ErrReturnRefused, why)
			}
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

// reconcile loads one return file of bank bi into the batch. It is
// idempotent: a record already final is not changed, a file whose content
// was reconciled before (a duplicate delivery) is ignored. It runs four
// stages:
//
//	dropDuplicate  the same content already reconciled under another name: record and stop
//	loadReturn     parse the file into outcomes, quarantining malformed records
//	applyReturn    settle the batch's payments from the outcomes and record the file
//	reportReturn   tell the monitor what the file settled and what it quarantined
func (s *Service) reconcile(ctx context.Context, b *Batch, bi int, in sftp.Inbound) error {
	name := path.Base(in.RemotePath)
	if dup, err := s.dropDuplicate(ctx, b, bi, name, in.Digest); dup || err != nil {
		return err
	}
	p, err := s.loadReturn(ctx, b, bi, name, in.LocalPath)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, mappings.ErrRefused) {
			return s.refuseReturn(ctx, b, bi, in, name, err)
		}
		return err
	}
	t, err := s.applyReturn(ctx, b, bi, name, in.Digest, p)
	if err != nil {
		// Contention (SQLite busy, a PostgreSQL deadlock or serialization
		// failure) is worth another try on the next pass; the file stays
		// claimed by this node and is not moved to failed/.
		if store.IsTransient(err) {
			return fmt.Errorf("reconcile %s: %w: %w", name, sftp.ErrRetry, err)
		}
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	s.reportReturn(b, bi, in, name, t)
	return nil
}

// refuseReturn records a return file that failed its checks: its
// disb_files row says refused and why (a reconciled file of the same name
// is left as it is), an error event raises the alert, and the returned
// error makes the SFTP client file it under failed/. The claim ledger keys
// the file by name, size and digest: the correct return the bank delivers
// next, under the same name or another, is read on the next poll.
func (s *Service) refuseReturn(ctx context.Context, b *Batch, bi int, in sftp.Inbound, name string, why error) error {
	bk := s.banks[bi]
	reason := why.Error()
	for e := why; e != nil; e = errors.Unwrap(e) { // the refusal itself, without the wrapping context
		if _, ok := e.(interface{ Unwrap() []error }); ok {
			reason = e.Error()
			break
		}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state, detail)
		VALUES (?, ?, 'return', ?, 0, 0, ?, 'refused', ?)
		ON CONFLICT (batch_id, bank, direction, name) DO UPDATE SET digest = excluded.digest, state = excluded.state, detail = excluded.detail
		WHERE disb_files.state <> 'reconciled'`), b.ID, bk.Config.Code, name, in.Digest, reason); err != nil {
		if store.IsTransient(err) {
			return fmt.Errorf("refuse %s: %w: %w", name, sftp.ErrRetry, err)
		}
		return fmt.Errorf("refuse %s: %w", name, err)
	}
	s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Error, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
		Partner: bk.Config.Partner(), Channel: "sftp", Direction: monitor.Inbound, FileName: name, Digest: in.Digest, Bytes: in.Bytes,
		ErrorClass: "return_refused", ErrorCode: "return_refused", ErrorMessage: reason})
	// The bank's reconciliation is blocked: a failed reconciliation event,
	// which the alert rules raise as a critical alert.
	s.emit(monitor.Event{Type: monitor.Reconciled, Status: monitor.Error, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
		Partner: bk.Config.Partner(), FileName: name, Digest: in.Digest, ErrorClass: "return_refused", ErrorCode: "return_refused",
		ErrorMessage: reason, Attrs: map[string]string{"waiting": "a correct return"}})
	s.log.Warn("disbursement: return refused", "bank", bk.Config.Code, "file", name, "why", reason)
	return fmt.Errorf("bank %s: return %s: %w: %s", bk.Config.Code, name, ErrReturnRefused, reason)
}

// refusedReturns describes the bank's refused return files of the batch
// ("" when none).
func (s *Service) refusedReturns(ctx context.Context, b *Batch, bi int) (string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT name, detail FROM disb_files WHERE batch_id = ? AND bank = ?
		AND direction = 'return' AND state = 'refused' ORDER BY name`), b.ID, s.banks[bi].Config.Code)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, detail string
		if err := rows.Scan(&name, &detail); err != nil {
			return "", err
		}
		out = append(out, name+" "+detail)
	}
	return strings.Join(out, "; "), rows.Err()
}

// dropDuplicate tells whether the file's content was reconciled before
// under another name (a bank delivering a return twice); such a file is
// recorded as a duplicate and reported, and reconciles nothing.
func (s *Service) dropDuplicate(ctx context.Context, b *Batch, bi int, name, digest string) (bool, error) {
	bk := s.banks[bi]
	var dup int
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM disb_files WHERE batch_id = ? AND direction = 'return'
		AND digest = ? AND state = 'reconciled' AND name <> ?`), b.ID, digest, name).Scan(&dup); err != nil {
		return false, err
	}
	if dup == 0 {
		return false, nil
	}
	s.emit(monitor.Event{Type: monitor.Dropped, Status: monitor.Warning, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
		Partner: bk.Config.Partner(), FileName: name, Digest: digest, ErrorClass: "duplicate", ErrorCode: "duplicate_return"})
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state)
		VALUES (?, ?, 'return', ?, 0, 0, ?, 'duplicate') ON CONFLICT DO NOTHING`), b.ID, bk.Config.Code, name, digest)
	return true, err
}

// loadReturn parses the return file at local in the bank's return layout.
// Parsing happens outside the database lock: several return files are read
// at once (at most two, to bound memory), then applied in turn.
func (s *Service) loadReturn(ctx context.Context, b *Batch, bi int, name, local string) (*parsedReturn, error) {
	bk := s.banks[bi]
	l := bk.Files.Inbound(Kind(b.Kind))
	if l == nil {
		return nil, fmt.Errorf("bank %s: no return layout", bk.Config.Code)
	}
	select {
	case s.parseSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p, err := s.parseReturn(b, l, local)
	<-s.parseSem
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", name, err)
	}
	return p, nil
}

// Slices of a return file's application: records per UPDATE statement
// (SQLite) and per transaction.
const (
	perStmt = 200
	perTx   = 5_000
)

// applyReturn settles the batch's payments from the outcomes of p and
// records the file: its quarantined lines and its disb_files row, written
// with the last slice of outcomes.
//
// SQLite has one writer: return files take turns (reconcileMu), and a long
// file is committed in slices of perTx records so that other writers
// (ledgers, other stages) never wait long. A crash in between is harmless:
// the file is handed over again and records already final are left alone.
func (s *Service) applyReturn(ctx context.Context, b *Batch, bi int, name, digest string, p *parsedReturn) (returnTally, error) {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	a := &returnApply{s: s, b: b, bi: bi, p: p, t: returnTally{quar: p.quar}}
	defer func() { _ = a.end(false) }()
	for start := 0; start < len(p.outs); start += perTx {
		if err := a.begin(ctx); err != nil {
			return a.t, err
		}
		end := min(start+perTx, len(p.outs))
		for i := start; i < end; i += perStmt {
			if err := a.apply(ctx, p.outs[i:min(i+perStmt, end)]); err != nil {
				return a.t, err
			}
		}
		if end < len(p.outs) {
			if err := a.end(true); err != nil {
				return a.t, err
			}
		}
	}
	if a.tx == nil { // no outcomes at all
		if err := a.begin(ctx); err != nil {
			return a.t, err
		}
	}
	if err := a.recordFile(ctx, name, digest); err != nil {
		return a.t, err
	}
	return a.t, a.end(true)
}

// reportReturn emits the file's Reconciled event and, when records were
// quarantined, a Rejected event naming the first.
func (s *Service) reportReturn(b *Batch, bi int, in sftp.Inbound, name string, t returnTally) {
	bk := s.banks[bi]
	st := monitor.OK
	if len(t.quar) > 0 || t.anomalies > 0 {
		st = monitor.Warning
	}
	s.emit(monitor.Event{Type: monitor.Reconciled, Status: st, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
		Partner: bk.Config.Partner(), Channel: "sftp", Direction: monitor.Inbound, FileName: name, Digest: in.Digest, Bytes: in.Bytes,
		Records: t.matched, RecordsFailed: t.failed, AmountFen: t.paidFen,
		Attrs: map[string]string{"quarantined": fmt.Sprint(len(t.quar)), "already_final": fmt.Sprint(t.already)}})
	if len(t.quar) > 0 {
		s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Warning, BatchID: b.Name, Stage: StageReturns, Flow: flowOf(b),
			Partner: bk.Config.Partner(), FileName: name, RecordsFailed: int64(len(t.quar)), ErrorClass: "malformed_return_record",
			ErrorMessage: fmt.Sprintf("%d return records quarantined (first at line %d: %s)", len(t.quar), t.quar[0].line, t.quar[0].problem)})
	}
}

// returnTally is what applying one return file did.
type returnTally struct {
	matched   int64 // outcomes applied (paid or failed)
	failed    int64 // of which failed
	paidFen   int64 // amount of the paid ones
	already   int64 // outcomes for records already final (a resumed or repeated file)
	anomalies int64 // outcomes that match no record of this bank and amount
	// quar holds the parse's quarantined records and the anomalies.
	quar []quarantined
}

// returnApply is the state of applyReturn: the open transaction of the
// current slice, its prepared statements, and the tally so far.
type returnApply struct {
	s  *Service
	b  *Batch
	bi int
	p  *parsedReturn
	t  returnTally

	tx    *store.WriteTx
	upd   *sql.Stmt // one record
	multi *sql.Stmt // perStmt records at once (SQLite only)
}

// begin opens the transaction of a slice and prepares its statements.
func (a *returnApply) begin(ctx context.Context) error {
	s := a.s
	var err error
	if a.tx, err = s.db.BeginWrite(ctx); err != nil {
		return err
	}
	if a.upd, err = a.tx.PrepareContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = ?, reason = ?
		WHERE batch_id = ? AND seq = ? AND bank = ? AND amount_fen = ? AND status = 2`)); err != nil {
		return err
	}
	if s.db.Dialect() == store.SQLite {
		// One statement updates a whole slice of records (UPDATE FROM a
		// VALUES list): far fewer round trips than one per record.
		a.multi, err = a.tx.PrepareContext(ctx, `WITH v(seq, st, reason, amt) AS (VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", perStmt), ",")+`)
			UPDATE disb_payments SET status = v.st, reason = v.reason FROM v
			WHERE disb_payments.batch_id = ? AND disb_payments.seq = v.seq AND disb_payments.bank = ?
			AND disb_payments.amount_fen = v.amt AND disb_payments.status = 2`)
	}
	return err
}

// end commits (or rolls back) the open transaction, if any.
func (a *returnApply) end(commit bool) error {
	if a.tx == nil {
		return nil
	}
	if a.upd != nil {
		_ = a.upd.Close()
	}
	if a.multi != nil {
		_ = a.multi.Close()
	}
	tx := a.tx
	a.tx, a.upd, a.multi = nil, nil, nil
	if !commit {
		return tx.Rollback()
	}
	return tx.Commit()
}

// apply settles one statement's worth of outcomes: a full slice in one
// statement when it can, else record by record; an outcome that changes
// nothing is classified.
func (a *returnApply) apply(ctx context.Context, batch []outcome) error {
	if a.multi != nil && len(batch) == perStmt {
		return a.applyMulti(ctx, batch)
	}
	for _, o := range batch {
		r, err := a.upd.ExecContext(ctx, int(o.st), a.p.reasons[o.reason], a.b.ID, int64(o.seq), a.bi, o.amt)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 1 {
			a.count(o)
		} else if err := a.classify(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// applyMulti settles perStmt outcomes in one statement; when some were not
// applied, it looks at each (rare).
func (a *returnApply) applyMulti(ctx context.Context, batch []outcome) error {
	args := make([]any, 0, perStmt*4+2)
	for _, o := range batch {
		args = append(args, int64(o.seq), int(o.st), a.p.reasons[o.reason], o.amt)
	}
	args = append(args, a.b.ID, a.bi)
	r, err := a.multi.ExecContext(ctx, args...)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == int64(len(batch)) {
		for _, o := range batch {
			a.count(o)
		}
		return nil
	}
	for _, o := range batch {
		var cur int
		if err := a.tx.QueryRowContext(ctx, `SELECT status FROM disb_payments WHERE batch_id = ? AND seq = ? AND bank = ? AND amount_fen = ?`,
			a.b.ID, int64(o.seq), a.bi, o.amt).Scan(&cur); err == nil && cur == int(o.st) {
			a.count(o)
			continue
		}
		if err := a.classify(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// count tallies an applied outcome.
func (a *returnApply) count(o outcome) {
	a.t.matched++
	if o.st == StatusFailed {
		a.t.failed++
	} else {
		a.t.paidFen += o.amt
	}
}

// classify finds out why an outcome was not applied: a record already
// final, or an anomaly (unknown reference, another bank's record, another
// amount) that is quarantined.
func (a *returnApply) classify(ctx context.Context, o outcome) error {
	var cur, cbank int
	var amt int64
	err := a.tx.QueryRowContext(ctx, a.s.db.Rebind(`SELECT status, bank, amount_fen FROM disb_payments WHERE batch_id = ? AND seq = ?`), a.b.ID, o.seq).Scan(&cur, &cbank, &amt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		a.quarantine(o, "reference not sent in this batch")
	case err != nil:
		return err
	case cbank != a.bi:
		a.quarantine(o, "record belongs to another bank")
	case amt != o.amt:
		a.quarantine(o, fmt.Sprintf("amount %d fen differs from the %d fen sent", o.amt, amt))
	default:
		a.t.already++ // already reconciled (a resumed or repeated file)
	}
	return nil
}

func (a *returnApply) quarantine(o outcome, problem string) {
	a.t.quar = append(a.t.quar, quarantined{int64(o.line), problem})
	a.t.anomalies++
}

// recordFile writes the file's quarantined lines (replacing those of an
// earlier attempt) and its disb_files row as reconciled, in the open
// transaction.
func (a *returnApply) recordFile(ctx context.Context, name, digest string) error {
	s, b, code, res := a.s, a.b, a.s.banks[a.bi].Config.Code, a.p.res
	detail := ""
	if res.CheckErr != nil {
		detail = res.CheckErr.Error()
	}
	if _, err := a.tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_quarantine WHERE batch_id = ? AND bank = ? AND file = ?`), b.ID, code, name); err != nil {
		return err
	}
	for _, x := range a.t.quar {
		if _, err := a.tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_quarantine (batch_id, bank, file, line, problem) VALUES (?, ?, ?, ?, ?)`),
			b.ID, code, name, x.line, x.problem); err != nil {
			return err
		}
	}
	_, err := a.tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state, part_no, part_total, detail)
		VALUES (?, ?, 'return', ?, ?, ?, ?, 'reconciled', ?, ?, ?)
		ON CONFLICT (batch_id, bank, direction, name) DO UPDATE SET records = excluded.records, total_fen = excluded.total_fen,
		digest = excluded.digest, state = excluded.state, part_no = excluded.part_no, part_total = excluded.part_total, detail = excluded.detail`),
		b.ID, code, name, res.Summary.Details, res.Summary.AmountFen, digest, max(res.PartNo, 1), max(res.PartTotal, 1), detail)
	return err
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
		if r.Charset {
			return // the file is refused as a whole (p.res.Refused)
		}
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
	if err != nil {
		// A file that cannot be read to its end (broken JSON or XML,
		// bytes invalid in its charset) is refused like one that fails
		// its checks.
		return p, mappings.Refusal(err)
	}
	return p, p.res.Refused
}
