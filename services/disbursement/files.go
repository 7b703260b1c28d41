package disbursement

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/monitor"
)

// refPrefix is the reference prefix of a batch: YYYYMM and a kind digit.
func refPrefix(b *Batch) string {
	k := "1"
	if b.Kind == string(bank.Deduction) {
		k = "2"
	}
	return strings.ReplaceAll(b.Period, "-", "") + k
}

// reference is the payment reference of a record: prefix and 9-digit sequence.
func reference(prefix string, seq int64) string {
	return prefix + fmt.Sprintf("%09d", seq)
}

// seqOf parses a reference of the batch back into its sequence number.
func seqOf(prefix, ref string) (int64, bool) {
	if len(ref) != len(prefix)+9 || !strings.HasPrefix(ref, prefix) {
		return 0, false
	}
	n, err := strconv.ParseInt(ref[len(prefix):], 10, 64)
	return n, err == nil && n > 0
}

type bankTotals struct{ count, total int64 }

func (s *Service) totalsByBank(ctx context.Context, b *Batch, statuses string) (map[int]bankTotals, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT bank, COUNT(*), SUM(amount_fen) FROM disb_payments
		WHERE batch_id = ? AND status IN (`+statuses+`) GROUP BY bank`), b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]bankTotals{}
	for rows.Next() {
		var bi int
		var t bankTotals
		if err := rows.Scan(&bi, &t.count, &t.total); err != nil {
			return nil, err
		}
		out[bi] = t
	}
	return out, rows.Err()
}

func (s *Service) outDir(b *Batch) string { return filepath.Join(s.dir(b), "out") }

func (s *Service) outName(b *Batch, bk *bank.Bank) string {
	l := bk.Files.Outbound(Kind(b.Kind))
	return bk.Config.FileNameFor(Kind(b.Kind), b.Period, bank.Ext(l))
}

// files writes one file per bank in its layout, streaming the list.
func (s *Service) files(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	totals, err := s.totalsByBank(ctx, b, "0, 2")
	if err != nil {
		return "", err
	}
	rejected := map[int64]bool{}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT seq FROM disb_payments WHERE batch_id = ? AND status = 1`), b.ID)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var q int64
		_ = rows.Scan(&q)
		rejected[q] = true
	}
	rows.Close()
	if err := os.MkdirAll(s.outDir(b), 0o700); err != nil {
		return "", err
	}
	type out struct {
		f    *os.File
		w    *bank.FileWriter
		name string
	}
	outs := make([]*out, len(s.banks))
	defer func() {
		for _, o := range outs {
			if o != nil {
				_ = o.f.Close()
			}
		}
	}()
	kind := Kind(b.Kind)
	for i, bk := range s.banks {
		t, ok := totals[i]
		if !ok || t.count == 0 {
			continue
		}
		l := bk.Files.Outbound(kind)
		if l == nil {
			return "", fmt.Errorf("bank %s: no %s layout", bk.Config.Code, kind)
		}
		name := s.outName(b, bk)
		f, err := os.OpenFile(filepath.Join(s.outDir(b), name+".part"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		o := &out{f: f, name: name}
		outs[i] = o
		o.w, err = bank.NewFileWriter(l, f, bank.Header{BatchNo: batchNo(b, bk), FileDate: b.FileDate,
			PayerAccount: bk.Config.PayerAccount, PayerName: bk.Config.PayerName, Count: t.count, TotalFen: t.total})
		if err != nil {
			return "", fmt.Errorf("bank %s: %w", bk.Config.Code, err)
		}
	}
	// The list is read on this goroutine and each bank's file is encoded
	// on its own, so that both cores work.
	prefix := refPrefix(b)
	const chunk = 512
	chans := make([]chan []mappings.PaymentRecord, len(outs))
	werrs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i, o := range outs {
		if o == nil {
			continue
		}
		ch := make(chan []mappings.PaymentRecord, 4)
		chans[i] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := s.banks[i].Config.Code
			for recs := range ch {
				if werrs[i] != nil {
					continue
				}
				for j := range recs {
					if err := o.w.Write(&recs[j]); err != nil {
						var fe *mappings.FieldError
						if errors.As(err, &fe) {
							werrs[i] = fmt.Errorf("record %s refused by the %s layout (field %s): %v", recs[j].Reference[len(prefix):], code, fe.Field, fe.Err)
						} else {
							werrs[i] = fmt.Errorf("bank %s: write: %w", code, err)
						}
						break
					}
				}
			}
		}()
	}
	pending := make([][]mappings.PaymentRecord, len(outs))
	err = s.readBatch(b, func(seq int64, r *listRecord) error {
		if rejected[seq] {
			return nil
		}
		bi := s.bankOf(r.bank())
		if bi < 0 || outs[bi] == nil {
			return fmt.Errorf("record %d: bank %q has no file", seq, r.bank())
		}
		if pending[bi] == nil {
			pending[bi] = make([]mappings.PaymentRecord, 0, chunk)
		}
		pending[bi] = append(pending[bi], mappings.PaymentRecord{PersonID: r.id(), Name: r.name(), Account: r.account(),
			BankCode: s.banks[bi].Config.BankCode, AmountFen: r.amount(), Period: b.Period, Reference: reference(prefix, seq), Division: r.division()})
		if len(pending[bi]) == chunk {
			chans[bi] <- pending[bi]
			pending[bi] = nil
		}
		if seq%200_000 == 0 {
			opt.Progress(StageFiles, seq, b.Records)
		}
		return nil
	})
	for i, ch := range chans {
		if ch == nil {
			continue
		}
		if len(pending[i]) > 0 {
			ch <- pending[i]
		}
		close(ch)
	}
	wg.Wait()
	if err == nil {
		err = errors.Join(werrs...)
	}
	if err != nil {
		return "", err
	}
	var made []string
	for i, o := range outs {
		if o == nil {
			continue
		}
		bk := s.banks[i]
		if err := o.w.Close(); err != nil {
			return "", fmt.Errorf("bank %s: %w", bk.Config.Code, err)
		}
		if err := o.f.Sync(); err != nil {
			return "", err
		}
		if err := o.f.Close(); err != nil {
			return "", err
		}
		final := filepath.Join(s.outDir(b), o.name)
		if err := os.Rename(o.f.Name(), final); err != nil {
			return "", err
		}
		outs[i] = nil
		digest, size, err := sftp.DigestFile(final)
		if err != nil {
			return "", err
		}
		t := totals[i]
		if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_files (batch_id, bank, direction, name, records, total_fen, digest, state)
			VALUES (?, ?, 'out', ?, ?, ?, ?, 'generated')
			ON CONFLICT (batch_id, bank, direction, name) DO UPDATE SET records = excluded.records, total_fen = excluded.total_fen,
			digest = excluded.digest, state = excluded.state`), b.ID, bk.Config.Code, o.name, t.count, t.total, digest); err != nil {
			return "", err
		}
		s.emit(monitor.Event{Type: monitor.Transformed, Status: monitor.OK, BatchID: b.Name, Stage: StageFiles, Flow: flowOf(b),
			Partner: bk.Config.Partner(), Channel: "file", Direction: monitor.Outbound, FileName: o.name, Digest: digest, Bytes: size,
			Records: t.count, AmountFen: t.total})
		made = append(made, fmt.Sprintf("%s %d", bk.Config.Code, t.count))
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = 2 WHERE batch_id = ? AND status = 0`), b.ID); err != nil {
		return "", err
	}
	opt.Progress(StageFiles, b.Records, b.Records)
	return strings.Join(made, ", "), nil
}

func batchNo(b *Batch, bk *bank.Bank) string {
	k := "DF"
	if b.Kind == string(bank.Deduction) {
		k = "DK"
	}
	return k + strings.ReplaceAll(b.Period, "-", "") + strings.ToUpper(bk.Config.Code)
}

type outFile struct {
	bank           int
	name, digest   string
	records, total int64
	state          string
}

func (s *Service) outFiles(ctx context.Context, b *Batch) ([]outFile, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT bank, name, digest, records, total_fen, state FROM disb_files
		WHERE batch_id = ? AND direction = 'out' ORDER BY bank`), b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outFile
	for rows.Next() {
		var f outFile
		var code string
		if err := rows.Scan(&code, &f.name, &f.digest, &f.records, &f.total, &f.state); err != nil {
			return nil, err
		}
		f.bank = s.bankOf(code)
		out = append(out, f)
	}
	return out, rows.Err()
}

// upload sends the bank files (in parallel, one per bank); the SFTP upload
// ledger makes a resumed upload finish without sending a file twice.
func (s *Service) upload(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	files, err := s.outFiles(ctx, b)
	if err != nil {
		return "", err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(files))
	var mu sync.Mutex
	done := int64(0)
	for i, f := range files {
		if f.bank < 0 {
			errs[i] = fmt.Errorf("file %s: bank not configured", f.name)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			bk := s.banks[f.bank]
			tr, err := bk.Transport()
			if err != nil {
				errs[i] = err
				_, _ = s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE disb_files SET state = 'upload_failed', detail = ?
					WHERE batch_id = ? AND bank = ? AND direction = 'out' AND name = ?`), err.Error(), b.ID, bk.Config.Code, f.name)
				return
			}
			up, err := tr.Upload(ctx, sftp.Outbound{LocalPath: filepath.Join(s.outDir(b), f.name), Name: f.name,
				Records: f.records, TotalFen: f.total, BatchID: b.Name, Stage: StageUpload})
			if err != nil {
				errs[i] = fmt.Errorf("bank %s: %w", bk.Config.Code, err)
				if ctx.Err() == nil {
					// The status shows the file as failed, and why.
					_, _ = s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE disb_files SET state = 'upload_failed', detail = ?
						WHERE batch_id = ? AND bank = ? AND direction = 'out' AND name = ?`), err.Error(), b.ID, bk.Config.Code, f.name)
				}
				return
			}
			if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_files SET state = 'uploaded', detail = ? WHERE batch_id = ? AND bank = ? AND direction = 'out' AND name = ?`),
				up.RemotePath, b.ID, bk.Config.Code, f.name); err != nil {
				errs[i] = err
				return
			}
			due := s.deps.Clock.Now().Add(bk.Config.ReturnDeadline)
			if s.expect != nil {
				base := strings.TrimSuffix(f.name, filepath.Ext(f.name))
				if err := s.expect.Expect(ctx, monitor.Expectation{Name: "return " + bk.Config.Code + " " + b.Name, Partner: bk.Config.Partner(),
					Flow: flowOf(b), Type: monitor.Downloaded, BatchID: b.Name, FilePattern: base + "_RET*", Due: due}); err != nil {
					s.log.Warn("disbursement: expectation", "bank", bk.Config.Code, "err", err)
				}
			}
			s.emit(monitor.Event{Type: monitor.Sent, Status: monitor.OK, BatchID: b.Name, Stage: StageUpload, Flow: flowOf(b),
				Partner: bk.Config.Partner(), Channel: "sftp", Direction: monitor.Outbound, FileName: f.name, Digest: up.Digest,
				Records: f.records, AmountFen: f.total, Attrs: map[string]string{"return_due": due.Format(time.RFC3339), "expect": "return_file"}})
			mu.Lock()
			done += f.records
			opt.Progress(StageUpload, done, b.Valid)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d files uploaded", len(files)), nil
}
