package bankaccounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// MaxPerFile is the most requests one file carries.
const MaxPerFile = 5000

// Stages of the account files in the monitor's batch view (the batch is
// the day's account operations, "accounts-YYYYMMDD").
const (
	StageFiles   = "account_files"
	StageUpload  = "account_upload"
	StageResults = "account_results"
	// StageFailures is the 开户失败 stage of an allowance month: the
	// persons its list left out because their account failed.
	StageFailures = "account_failures"
)

func batchOf(day string) string { return "accounts-" + day }

// sendBank delivers the bank's files, operation by operation: first those
// filed but not sent (a crash between filing and upload), then new files
// of queued requests. A failure is reported on the operation's flow and
// the other operations go on.
func (s *Service) sendBank(ctx context.Context, bf *bankFlows) error {
	var errs []error
	for _, op := range bank.AccountOps {
		if err := s.sendOp(ctx, bf, op); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) sendOp(ctx context.Context, bf *bankFlows, op bank.AccountOp) error {
	fail := func(err error) error {
		s.stepFailed(ctx, bf.b.Config.Partner(), op.Flow(), "send", err)
		return err
	}
	pending, err := s.filedNotSent(ctx, bf.b.Config.Code, op)
	if err != nil {
		return fail(fmt.Errorf("files of %s not sent: %w", op, err))
	}
	for {
		name, err := s.fileQueued(ctx, bf, op)
		if err != nil {
			return fail(err)
		}
		if name == "" {
			break
		}
		pending = append(pending, name)
	}
	var errs []error
	for _, n := range pending {
		if err := s.deliver(ctx, bf, n); err != nil {
			errs = append(errs, fail(err))
		}
	}
	return errors.Join(errs...)
}

// filedNotSent lists the bank's files of op filed but not sent.
func (s *Service) filedNotSent(ctx context.Context, code string, op bank.AccountOp) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT name FROM acct_files WHERE bank = ? AND op = ? AND status = 'filed' ORDER BY name`), code, string(op))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// fileQueued assigns up to MaxPerFile queued requests of op to a new file
// and returns its name ("" when none wait). The file itself is written by
// deliver, from the requests assigned to it: filing is one transaction.
func (s *Service) fileQueued(ctx context.Context, bf *bankFlows, op bank.AccountOp) (string, error) {
	code := bf.b.Config.Code
	day := s.clock.Now().In(clock.Shanghai).Format("20060102")
	now := s.nowMS()
	var name string
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		name, n = "", 0
		var refs []string
		// A request waits while an earlier one about the same person at the
		// bank is open: the bank carries them out in the order asked (an
		// activation before the loss report that follows it).
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT q.ref FROM acct_requests q WHERE q.status = 'queued' AND q.bank = ? AND q.op = ?
			AND NOT EXISTS (SELECT 1 FROM acct_requests p WHERE p.person = q.person AND p.bank = q.bank AND p.ref < q.ref
				AND p.status IN ('queued', 'filed', 'sent'))
			ORDER BY q.ref LIMIT ?`), code, string(op), MaxPerFile)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return err
			}
			refs = append(refs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(refs) == 0 {
			return err
		}
		var k int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM acct_files WHERE bank = ? AND op = ? AND day = ?`), code, string(op), day).Scan(&k); err != nil {
			return err
		}
		name = bf.b.Config.FileNameFor(op.Kind(), fmt.Sprintf("%s-%02d", day, k+1), bank.Ext(bf.b.Files.Account))
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO acct_files (name, bank, op, day, records, status, created_ms, updated_ms)
			VALUES (?, ?, ?, ?, ?, 'filed', ?, ?)`), name, code, string(op), day, len(refs), now, now); err != nil {
			return err
		}
		up, err := tx.PrepareContext(ctx, s.db.Rebind(`UPDATE acct_requests SET status = 'filed', file = ?, updated_ms = ? WHERE ref = ? AND status = 'queued'`))
		if err != nil {
			return err
		}
		defer up.Close()
		for _, r := range refs {
			if _, err := up.ExecContext(ctx, name, now, r); err != nil {
				return err
			}
		}
		n = int64(len(refs))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("file %s: %w", op, err)
	}
	if name != "" {
		s.emit(monitor.Event{Type: monitor.Transformed, Status: monitor.OK, Partner: bf.b.Config.Partner(), Flow: op.Flow(),
			Direction: monitor.Outbound, BatchID: batchOf(day), Stage: StageFiles, FileName: name, Records: n})
	}
	return name, nil
}

// deliver writes a filed file from its requests (the same bytes however
// often it is rewritten) and uploads it; the SFTP ledger finishes a
// delivery a crash interrupted without the bank seeing the file twice.
func (s *Service) deliver(ctx context.Context, bf *bankFlows, name string) error {
	var opText, day string
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT op, day FROM acct_files WHERE name = ?`), name).Scan(&opText, &day); err != nil {
		return fmt.Errorf("file %s: %w", name, err)
	}
	op := bank.AccountOp(opText)
	c := bf.clients[op]
	local, n, err := s.writeFile(ctx, bf, name, op, day)
	if err != nil {
		s.emit(monitor.Event{Type: monitor.Failed, Status: monitor.Error, Partner: bf.b.Config.Partner(), Flow: op.Flow(), Direction: monitor.Outbound,
			BatchID: batchOf(day), Stage: StageFiles, FileName: name, ErrorClass: "file", ErrorMessage: mask.Text(err.Error())})
		return monitor.Reported(fmt.Errorf("file %s: %w", name, err))
	}
	if _, err := c.Upload(ctx, sftp.Outbound{LocalPath: local, Name: name, Records: n, BatchID: batchOf(day), Stage: StageUpload}); err != nil {
		// The SFTP connector reports a failed upload with its file.
		return monitor.Reported(fmt.Errorf("upload %s: %w", name, err))
	}
	now := s.nowMS()
	due := now + s.due.Milliseconds()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE acct_files SET status = 'sent', result_due_ms = ?, updated_ms = ? WHERE name = ? AND status = 'filed'`),
			due, now, name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE acct_requests SET status = 'sent', updated_ms = ? WHERE file = ? AND status = 'filed'`), now, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("file %s: mark sent: %w", name, err)
	}
	_ = os.Remove(local)
	// Before any poll: the result file's events must come after the expectation.
	if err := s.expectResults(ctx, name); err != nil {
		s.log.Warn("accounts: result expectation; registered at the next pass", "file", name, "err", err)
	}
	s.log.Info("accounts: file sent", "bank", bf.b.Config.Code, "op", string(op), "file", name, "records", n)
	s.notify()
	return nil
}

// writeFile writes the requests filed under name in the bank's layout.
func (s *Service) writeFile(ctx context.Context, bf *bankFlows, name string, op bank.AccountOp, day string) (string, int64, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT ref, id_sealed, name_sealed, account_sealed, division FROM acct_requests WHERE file = ? ORDER BY ref`), name)
	if err != nil {
		return "", 0, err
	}
	var qs []bank.AccountRequest
	for rows.Next() {
		var q bank.AccountRequest
		var idS, nameS, acctS string
		if err := rows.Scan(&q.Reference, &idS, &nameS, &acctS, &q.Division); err != nil {
			rows.Close()
			return "", 0, err
		}
		if q.PersonID, err = s.fields.Decrypt(idS); err == nil {
			if q.Name, err = s.fields.Decrypt(nameS); err == nil && acctS != "" {
				q.Account, err = s.fields.Decrypt(acctS)
			}
		}
		if err != nil {
			rows.Close()
			return "", 0, fmt.Errorf("open sealed fields of %s: %w", q.Reference, err)
		}
		q.Op = op
		qs = append(qs, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", 0, err
	}
	dir := filepath.Join(s.dir, bf.b.Config.Code)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	fileDate, _ := time.ParseInLocation("20060102", day, clock.Shanghai)
	w, err := bank.NewAccountWriter(bf.b.Files.Account, f, bank.AccountHeader{BatchNo: batchNo(name), FileDate: fileDate, Op: op,
		PayerName: bf.b.Config.PayerName, Count: int64(len(qs))})
	if err == nil {
		for i := range qs {
			if err = w.Write(&qs[i]); err != nil {
				var fe *mappings.FieldError
				if errors.As(err, &fe) {
					err = fmt.Errorf("request %s: %w", qs[i].Reference, err)
				}
				break
			}
		}
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p+".part", p)
	}
	if err != nil {
		_ = os.Remove(p + ".part")
		return "", 0, err
	}
	return p, int64(len(qs)), nil
}

// batchNo is the file's batch number for the bank: its digits and capitals.
func batchNo(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(strings.TrimSuffix(name, filepath.Ext(name))) {
		if (r >= '0' && r <= '9') || (r >= 'A' && r <= 'Z') {
			sb.WriteRune(r)
		}
	}
	out := sb.String()
	if len(out) > 18 {
		out = out[len(out)-18:]
	}
	return out
}

// ExpectationFor names the monitor expectation of the result file of the
// request file name sent to bank code.
func ExpectationFor(code, name string) string {
	return "result " + code + " " + strings.TrimSuffix(name, filepath.Ext(name))
}

// expectResults tells the monitor, for each sent request file (name, or
// every one when name is ""), that its result file is due by the deadline
// stored when it was sent: an expectation met when the bank's result file
// ({name}_RET…) is fetched through the operation's flow; a missed one
// shows the bank's operation late on the console and raises an alert.
// Each file is registered once (its due time is stored, so registering
// again after a crash changes nothing); a file answered before its
// registration (a crash in between) needs none.
func (s *Service) expectResults(ctx context.Context, name string) error {
	if s.expect == nil {
		return nil
	}
	q := `SELECT name, bank, op, result_due_ms FROM acct_files WHERE status = 'sent' AND result_expected = 0 AND result_due_ms > 0`
	args := []any{}
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q+` ORDER BY name`), args...)
	if err != nil {
		return fmt.Errorf("accounts: result expectations: %w", err)
	}
	type file struct {
		name, code string
		op         bank.AccountOp
		due        int64
	}
	var fs []file
	for rows.Next() {
		var f file
		var op string
		if err := rows.Scan(&f.name, &f.code, &op, &f.due); err != nil {
			rows.Close()
			return fmt.Errorf("accounts: result expectations: %w", err)
		}
		f.op = bank.AccountOp(op)
		fs = append(fs, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("accounts: result expectations: %w", err)
	}
	var errs []error
	for _, f := range fs {
		bf, ok := s.banks[f.code]
		if !ok {
			continue
		}
		base := strings.TrimSuffix(f.name, filepath.Ext(f.name))
		err := s.expect.Expect(ctx, monitor.Expectation{Name: ExpectationFor(f.code, f.name), Partner: bf.b.Config.Partner(), Flow: f.op.Flow(),
			Type: monitor.Downloaded, FilePattern: base + "_RET*", Due: time.UnixMilli(f.due)})
		if err == nil {
			_, err = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE acct_files SET result_expected = 1 WHERE name = ?`), f.name)
		}
		if err != nil {
			err = fmt.Errorf("accounts: expect the result of %s: %w", f.name, err)
			if name == "" { // at the pass (after an upload, the next pass retries and reports it)
				s.stepFailed(ctx, bf.b.Config.Partner(), f.op.Flow(), "result expectation", err)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
