package bankaccounts

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// pollBank fetches and applies the bank's result files, operation by
// operation (each through its flow's client, so that its events carry the
// operation's flow).
func (s *Service) pollBank(ctx context.Context, bf *bankFlows) error {
	var errs []error
	for _, op := range bank.AccountOps {
		glob := strings.ToUpper(bf.b.Config.Code) + "_" + op.FileCode() + "_*_RET*"
		_, err := bf.clients[op].Poll(ctx, sftp.PollOptions{Stage: StageResults, Include: []string{glob}}, func(ctx context.Context, in sftp.Inbound) error {
			data, err := os.ReadFile(in.LocalPath)
			if err != nil {
				return err
			}
			_, err = s.ApplyResults(ctx, bf.b.Config.Code, remoteBase(in.RemotePath), in.Digest, data)
			return err
		})
		if err != nil {
			// The pass stopped (the listing failed): a file's own fault is
			// reported by the SFTP connector and not returned.
			s.stepFailed(ctx, bf.b.Config.Partner(), op.Flow(), "results", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func remoteBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Applied tells what ApplyResults did with a result file.
type Applied struct {
	// OK and Failed count the results applied; Rejected the malformed
	// records and results of no request sent (quarantined, never applied);
	// Seen the results of requests already answered.
	OK, Failed, Rejected, Seen int
	// AlreadyApplied says the file (bank, name, digest) was applied before:
	// nothing changed.
	AlreadyApplied bool
}

// ErrRefusedFile: a result file refused whole (its trailer or summary does
// not match its details, it is empty or cut, or not in its charset).
var ErrRefusedFile = errors.New("accounts: result file refused")

// ApplyResults applies one result file of a bank in one transaction: each
// result settles its request and moves the person's account state (see
// nextState). It is idempotent: the same file (bank, name and digest)
// applied again changes nothing, and a result of a request already
// settled is only counted. A refused file changes nothing and returns
// ErrRefusedFile.
func (s *Service) ApplyResults(ctx context.Context, code, name, digest string, data []byte) (Applied, error) {
	var a Applied
	bf, ok := s.banks[code]
	if !ok {
		return a, fmt.Errorf("accounts: bank %q takes no account files", code)
	}
	op, _ := bank.OpOfFileName(name)
	var results []bank.AccountResult
	var rejects []string
	res, err := bank.ReadAccountResults(bf.b.Files.AccountReturn, bytes.NewReader(data), func(r mappings.Reject) {
		rejects = append(rejects, r.String())
	}, func(r *bank.AccountResult) error {
		results = append(results, *r)
		return nil
	})
	if err == nil && res.Refused != nil {
		err = fmt.Errorf("%w: %w", ErrRefusedFile, res.Refused)
	}
	if err == nil && res.Op != "" && op != "" && res.Op != op {
		err = fmt.Errorf("%w: header says %s, name says %s", ErrRefusedFile, res.Op, op)
	}
	if op == "" {
		op = res.Op
	}
	day := s.clock.Now().In(clock.Shanghai).Format("20060102")
	ev := monitor.Event{Partner: bf.b.Config.Partner(), Flow: op.Flow(), Direction: monitor.Inbound, Channel: "sftp",
		Stage: StageResults, FileName: name, Digest: digest, ExchangeID: bf.b.Config.Partner() + ":" + name}
	if err != nil {
		e := ev
		e.BatchID = batchOf(day)
		e.Type, e.Status, e.ErrorClass, e.ErrorMessage = monitor.Failed, monitor.Error, "refused", mask.Text(err.Error())
		s.emit(e)
		return a, fmt.Errorf("accounts: %s %s: %w", code, name, err)
	}
	a.Rejected = len(rejects)
	now := s.nowMS()
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		a = Applied{Rejected: len(rejects)}
		var seen int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM acct_results WHERE bank = ? AND name = ? AND digest = ?`), code, name, digest).Scan(&seen); err != nil {
			return err
		}
		if seen > 0 {
			a.AlreadyApplied = true
			return nil
		}
		files := map[string]bool{}
		for _, r := range results {
			var rq struct{ op, status, person, idMasked, acctIndex, acctMasked, acctSealed, file string }
			err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT op, status, person, id_masked, account_index, account_masked, account_sealed, file
				FROM acct_requests WHERE ref = ? AND bank = ?`), r.Reference, code).Scan(&rq.op, &rq.status, &rq.person, &rq.idMasked,
				&rq.acctIndex, &rq.acctMasked, &rq.acctSealed, &rq.file)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && rq.op != string(r.Op)) {
				a.Rejected++
				rejects = append(rejects, "reference "+mask.Text(r.Reference)+": no such request of this operation")
				continue
			}
			if err != nil {
				return err
			}
			if rq.status == StatusDone || rq.status == StatusFailed {
				a.Seen++
				continue
			}
			if rq.status == StatusQueued {
				a.Rejected++
				rejects = append(rejects, "reference "+mask.Text(r.Reference)+": request not sent yet")
				continue
			}
			files[rq.file] = true
			status, reason := StatusDone, ""
			if r.OK() {
				a.OK++
			} else {
				a.Failed++
				status = StatusFailed
				reason = r.Op.Chinese() + "失败：" + strings.ReplaceAll(r.Text, ",", "，")
			}
			// An opening brings the new account.
			if r.Op == bank.OpOpen && r.OK() && r.Account != "" {
				sealed, err := s.fields.Encrypt(r.Account)
				if err != nil {
					return err
				}
				rq.acctIndex, rq.acctMasked, rq.acctSealed = s.accountKey(r.Account), mask.Account(r.Account), sealed
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE acct_requests SET status = ?, outcome = ?, code = ?, reason = ?,
				account_index = ?, account_masked = ?, account_sealed = ?, updated_ms = ? WHERE ref = ?`),
				status, r.Outcome, r.Code, reason, rq.acctIndex, rq.acctMasked, rq.acctSealed, now, r.Reference); err != nil {
				return err
			}
			var cur string
			err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT state FROM acct_state WHERE person = ? AND bank = ?`), rq.person, code).Scan(&cur)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			next := nextState(r.Op, r.Outcome, cur)
			if next == cur && reason == "" {
				continue
			}
			if next == cur {
				reason = "" // a refused request that leaves the state: the request keeps its reason
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO acct_state (person, bank, id_masked, account_index, account_masked, account_sealed,
				state, reason, last_ref, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (person, bank) DO UPDATE SET account_index = excluded.account_index, account_masked = excluded.account_masked,
				account_sealed = excluded.account_sealed, state = excluded.state, reason = excluded.reason, last_ref = excluded.last_ref,
				updated_ms = excluded.updated_ms`),
				rq.person, code, rq.idMasked, rq.acctIndex, rq.acctMasked, rq.acctSealed, next, reason, r.Reference, now); err != nil {
				return err
			}
		}
		for f := range files {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE acct_files SET status = 'answered', updated_ms = ? WHERE name = ?
				AND NOT EXISTS (SELECT 1 FROM acct_requests WHERE file = ? AND status IN ('filed', 'sent'))`), now, f, f); err != nil {
				return err
			}
			var d string
			if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT day FROM acct_files WHERE name = ?`), f).Scan(&d); err == nil {
				day = d
			}
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO acct_results (bank, name, digest, records, failed, rejected, applied_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), code, name, digest, a.OK+a.Failed, a.Failed, a.Rejected, now)
		return err
	})
	if err != nil {
		return a, fmt.Errorf("accounts: %s %s: apply: %w", code, name, err)
	}
	if a.AlreadyApplied {
		s.log.Info("accounts: result file applied before; nothing changed", "bank", code, "file", name)
		return a, nil
	}
	for _, r := range rejects {
		s.log.Warn("accounts: result quarantined", "bank", code, "file", name, "reject", r)
	}
	e := ev
	e.BatchID = batchOf(day)
	e.Type, e.Status, e.Records, e.RecordsFailed = monitor.Reconciled, monitor.OK, int64(a.OK+a.Failed), int64(a.Failed)
	if a.Failed > 0 || a.Rejected > 0 {
		e.Status = monitor.Warning
		e.ErrorClass = "account_refused"
		e.ErrorMessage = fmt.Sprintf("%d %s refused by the bank, %d records quarantined", a.Failed, op.Chinese(), a.Rejected)
	}
	e.Attrs = map[string]string{"op": string(op), "ok": fmt.Sprint(a.OK), "failed": fmt.Sprint(a.Failed), "rejected": fmt.Sprint(a.Rejected)}
	s.emit(e)
	s.log.Info("accounts: results applied", "bank", code, "file", name, "op", string(op), "ok", a.OK, "failed", a.Failed, "rejected", a.Rejected, "seen", a.Seen)
	s.notify()
	return a, nil
}

// nextState is the account state a result leaves, from the current one.
func nextState(op bank.AccountOp, outcome, cur string) string {
	switch outcome {
	case bank.OutcomeFrozen:
		return StateFrozen
	case bank.OutcomeClosed:
		return StateClosed
	case bank.OutcomeLost:
		if op != bank.OpOpen {
			return StateLost
		}
	}
	ok := outcome == bank.OutcomeOK
	switch op {
	case bank.OpVerify:
		if !ok {
			return StateVerifyFailed
		}
		if cur == "" || cur == StateVerifyFailed || cur == StateOpenFailed || cur == StateFrozen {
			return StateVerified
		}
	case bank.OpOpen:
		if !ok {
			return StateOpenFailed
		}
		return StateOpened
	case bank.OpActivate:
		if ok {
			return StateActive
		}
	case bank.OpLoss:
		if ok {
			return StateLost
		}
	case bank.OpUnfreeze:
		if ok {
			return StateActive
		}
	case bank.OpClose:
		if ok {
			return StateClosed
		}
	}
	return cur
}
