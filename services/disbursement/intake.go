package disbursement

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
)

// ListHeader is the first line of a payment list file (UTF-8 CSV). bank is
// the bank's connector code (boc, …), amount_fen the monthly amount in
// fen, months are YYYY-MM (termination_month empty when open-ended).
const ListHeader = "person_id,name,account,bank,division,amount_fen,standard,last_paid_month,termination_month"

// GenerateOptions shape a synthetic list.
type GenerateOptions struct {
	// Persons is the number of records.
	Persons int
	// Seed makes the list reproducible.
	Seed uint64
	// Period is the month paid; last_paid_month is the month before.
	Period string
	// Anomalies adds about one problem record per 10,000 (bad check digit,
	// a person twice on two standards, shared accounts, terminated persons).
	Anomalies bool
}

// WriteList writes a synthetic payment list.
func WriteList(w io.Writer, opt GenerateOptions) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	prev := prevMonth(opt.Period)
	g := synth.New(opt.Seed)
	fmt.Fprintln(bw, ListHeader)
	var last synth.Person
	line := make([]byte, 0, 160)
	for i := range opt.Persons {
		p := g.Next()
		term := ""
		if opt.Anomalies && i > 0 {
			switch i % 10007 {
			case 11:
				p.ID = p.ID[:17] + string("0123456789"[(strings.IndexByte("0123456789X", p.ID[17])+1)%10])
			case 23:
				p.ID, p.Name, p.Standard = last.ID, last.Name, "A90" // same person, second standard
			case 37:
				p.Account = last.Account // several persons on one account
			case 51:
				term = prevMonth(prev) // terminated before this period
			}
		}
		line = line[:0]
		line = append(line, p.ID...)
		line = append(line, ',')
		line = append(line, p.Name...)
		line = append(line, ',')
		line = append(line, p.Account...)
		line = append(line, ',')
		line = append(line, synth.Banks[p.Bank].Code...)
		line = append(line, ',')
		line = append(line, p.Division...)
		line = append(line, ',')
		line = strconv.AppendInt(line, p.AmountFen, 10)
		line = append(line, ',')
		line = append(line, p.Standard...)
		line = append(line, ',')
		line = append(line, prev...)
		line = append(line, ',')
		line = append(line, term...)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
		last = p
	}
	return bw.Flush()
}

func prevMonth(period string) string {
	y, _ := strconv.Atoi(period[:4])
	m, _ := strconv.Atoi(period[5:7])
	m--
	if m == 0 {
		y, m = y-1, 12
	}
	return fmt.Sprintf("%04d-%02d", y, m)
}

func quarterEnd(period string) string {
	m, _ := strconv.Atoi(period[5:7])
	return fmt.Sprintf("%s-%02d", period[:4], ((m-1)/3+1)*3)
}

// listRecord is one parsed line of a list.
type listRecord struct {
	f [9]string
	n int
}

func (r *listRecord) id() string        { return r.f[0] }
func (r *listRecord) name() string      { return r.f[1] }
func (r *listRecord) account() string   { return r.f[2] }
func (r *listRecord) bank() string      { return r.f[3] }
func (r *listRecord) division() string  { return r.f[4] }
func (r *listRecord) standard() string  { return r.f[6] }
func (r *listRecord) lastPaid() string  { return r.f[7] }
func (r *listRecord) terminate() string { return r.f[8] }
func (r *listRecord) amount() int64 {
	v, err := strconv.ParseInt(r.f[5], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// readList streams the list file: fn gets each record with its sequence
// number (1-based line number after the header).
func readList(path string, fn func(seq int64, r *listRecord) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return readListFrom(f, fn)
}

// readListFrom is readList over a reader.
func readListFrom(in io.Reader, fn func(seq int64, r *listRecord) error) error {
	sc := bufio.NewScanner(bufio.NewReaderSize(in, 256<<10))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var r listRecord
	seq := int64(0)
	first := true
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r") // lists saved on Windows end lines with CRLF
		if first {
			first = false
			// Spreadsheet programs save UTF-8 CSV with a byte order mark.
			line = strings.TrimPrefix(line, "\uFEFF")
			if strings.HasPrefix(line, "person_id,") {
				continue
			}
		}
		seq++
		r.n = 0
		for r.n < len(r.f) {
			i := strings.IndexByte(line, ',')
			if i < 0 {
				r.f[r.n] = line
				r.n++
				break
			}
			r.f[r.n] = line[:i]
			r.n++
			line = line[i+1:]
		}
		for k := r.n; k < len(r.f); k++ {
			r.f[k] = ""
		}
		if err := fn(seq, &r); err != nil {
			return err
		}
	}
	return sc.Err()
}

func accountKey(acct string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(acct))
	return h.Sum64()
}

func (s *Service) listPath(b *Batch) string { return filepath.Join(s.dir(b), "list.csv") }

// intake copies the list into the batch and loads one compact row per person.
func (s *Service) intake(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	dst := s.listPath(b)
	if opt.ListFile == "" {
		if _, err := os.Stat(dst); err != nil {
			// Submitted on another replica: its shared copy.
			if err := os.MkdirAll(s.dir(b), 0o700); err != nil {
				return "", err
			}
			ok, err := s.fetchSharedList(ctx, b, dst)
			if err != nil {
				return "", fmt.Errorf("shared list: %w", err)
			}
			if !ok {
				return "", fmt.Errorf("no list file given")
			}
		}
	} else if abs1, _ := filepath.Abs(opt.ListFile); abs1 != mustAbs(dst) {
		if err := copyFile(opt.ListFile, dst); err != nil {
			return "", fmt.Errorf("copy list: %w", err)
		}
		s.takeFromInbox(opt.ListFile)
	}
	if err := s.screenList(ctx, b, opt.ListFile != "" && mustAbs(opt.ListFile) != mustAbs(dst)); err != nil {
		return "", err
	}
	var total int64
	if fi, err := os.Stat(dst); err == nil {
		total = fi.Size()
	}
	// A crashed intake is redone from scratch.
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_payments WHERE batch_id = ?`), b.ID); err != nil {
		return "", err
	}
	const rowsPerStmt = 200
	const rowsPerTx = 20_000
	stmtSQL := "INSERT INTO disb_payments (batch_id, seq, bank, division, amount_fen, status, person_key) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, 0, ?),", rowsPerStmt), ",")
	var tx *store.WriteTx
	var stmt *sql.Stmt
	args := make([]any, 0, rowsPerStmt*6)
	var n, inTx, sum, read int64
	flush := func(final bool) error {
		if len(args) > 0 {
			if len(args) == rowsPerStmt*6 {
				if _, err := stmt.ExecContext(ctx, args...); err != nil {
					return err
				}
			} else {
				rows := len(args) / 6
				q := "INSERT INTO disb_payments (batch_id, seq, bank, division, amount_fen, status, person_key) VALUES " +
					strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, 0, ?),", rows), ",")
				if _, err := tx.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
					return err
				}
			}
			args = args[:0]
		}
		if final || inTx >= rowsPerTx {
			if err := stmt.Close(); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			tx, stmt, inTx = nil, nil, 0
		}
		return nil
	}
	begin := func() error {
		var err error
		if tx, err = s.db.BeginWrite(ctx); err != nil {
			return err
		}
		stmt, err = tx.PrepareContext(ctx, s.db.Rebind(stmtSQL))
		return err
	}
	err := readList(dst, func(seq int64, r *listRecord) error {
		if tx == nil {
			if err := begin(); err != nil {
				return err
			}
		}
		bi, ok := s.byCode[r.bank()]
		if !ok {
			bi = -1
		}
		div, _ := strconv.Atoi(r.division())
		amt := r.amount()
		args = append(args, b.ID, seq, bi, div, amt, s.personKey(r.id()))
		n++
		inTx++
		sum += amt
		read += int64(len(r.f[0]) + 60)
		if len(args) == rowsPerStmt*6 {
			if err := flush(false); err != nil {
				return err
			}
			if n%50_000 == 0 {
				opt.Progress(StageIntake, min(read, total), total)
			}
		}
		return nil
	})
	if err == nil && tx != nil {
		err = flush(true)
	}
	if err != nil {
		if tx != nil {
			_ = tx.Rollback()
		}
		return "", fmt.Errorf("load list: %w", err)
	}
	opt.Progress(StageIntake, total, total)
	if err := s.setBatch(ctx, b, "records = ?", n); err != nil {
		return "", err
	}
	b.Records = n
	s.emit(monitor.Event{Type: monitor.Received, Status: monitor.OK, BatchID: b.Name, Stage: StageIntake, Flow: flowOf(b),
		Channel: "file", Direction: monitor.Inbound, FileName: "list.csv", Records: n, AmountFen: sum})
	return fmt.Sprintf("%d records, %s yuan", n, yuan(sum)), nil
}

func mustAbs(p string) string {
	a, _ := filepath.Abs(p)
	return a
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // names, IDs, accounts: owner only
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// Issue is a validation finding.
type Issue struct {
	Seq      int64
	Code     string
	Severity string // reject, flag or alert
	Detail   string
}

// validate applies the tender's list rules.
func (s *Service) validate(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	// Pass 1: who appears more than once, which accounts are shared.
	var ids, accts []uint64
	if err := s.readBatch(b, func(_ int64, r *listRecord) error {
		ids = append(ids, uint64(s.personKey(r.id())))
		accts = append(accts, accountKey(r.account()))
		return nil
	}); err != nil {
		return "", err
	}
	dupIDs, dupAccts := dups(ids), dups(accts)
	ids, accts = nil, nil
	// Carried persons by keyed person key, and those whose carry row still
	// holds the legacy hash (their batch's list file was gone when the
	// service re-keyed): matched here once, then re-keyed.
	carry, legacyCarry := map[int64]string{}, map[int64]string{}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT person_key, from_period, person_keys FROM disb_carry WHERE kind = ?`), b.Kind)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var k int64
		var p, pks string
		if err := rows.Scan(&k, &p, &pks); err != nil {
			rows.Close()
			return "", err
		}
		if pks == personKeysLegacy {
			legacyCarry[k] = p
		} else {
			carry[k] = p
		}
	}
	rows.Close()
	var rekeys [][2]int64 // legacy → keyed

	// Pass 2: the rules, record by record.
	var issues []Issue
	seenDup := map[uint64]bool{}
	qend := quarterEnd(b.Period)
	err = s.readBatch(b, func(seq int64, r *listRecord) error {
		reject := func(code, detail string) { issues = append(issues, Issue{seq, code, "reject", detail}) }
		switch {
		case r.n < 8:
			reject("malformed", fmt.Sprintf("%d columns", r.n))
			return nil
		case !synth.ValidID(r.id()):
			reject("bad_id", "ID number check digit or format wrong: "+maskID(r.id()))
		case s.bankOf(r.bank()) < 0:
			reject("unknown_bank", "bank "+r.bank())
		case r.amount() <= 0:
			reject("bad_amount", r.f[5])
		case r.terminate() != "" && b.Period > r.terminate():
			reject("past_termination", "terminated "+r.terminate())
		case r.lastPaid() != "" && r.lastPaid() >= b.Period:
			reject("already_paid", "last paid month "+r.lastPaid())
		case r.lastPaid() != "" && r.lastPaid() > qend:
			reject("past_quarter_end", "last paid month "+r.lastPaid()+" after quarter end "+qend)
		}
		pk := s.personKey(r.id())
		if dupIDs[uint64(pk)] {
			if seenDup[uint64(pk)] {
				reject("two_standards", "person "+maskID(r.id())+" listed again with standard "+r.standard())
			} else {
				issues = append(issues, Issue{seq, "two_standards", "flag", "person " + maskID(r.id()) + " on several standards; first kept (" + r.standard() + ")"})
			}
			seenDup[uint64(pk)] = true
		}
		if dupAccts[accountKey(r.account())] {
			issues = append(issues, Issue{seq, "shared_account", "flag", "account " + maskAccount(r.account()) + " shared by several persons"})
		}
		from, ok := carry[pk]
		if ok {
			delete(carry, pk)
		} else if len(legacyCarry) > 0 {
			lk := legacyPersonKey(r.id())
			if from, ok = legacyCarry[lk]; ok {
				delete(legacyCarry, lk)
				rekeys = append(rekeys, [2]int64{lk, pk})
			}
		}
		if ok {
			// Their last payment failed: they are in this run (noted, so
			// that the failures stage can clear them once paid).
			issues = append(issues, Issue{seq, "carried", "info", "last payment in " + from + " failed"})
		}
		if seq%200_000 == 0 {
			opt.Progress(StageValidate, seq, b.Records)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	for _, m := range []map[int64]string{carry, legacyCarry} {
		for _, from := range m {
			issues = append(issues, Issue{0, "carry_missing", "alert", "a person whose payment failed in " + from + " is not in this list"})
		}
	}
	var rejected int64
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_issues WHERE batch_id = ?`), b.ID); err != nil {
			return err
		}
		for _, rk := range rekeys {
			if err := rekeyCarry(ctx, tx, s.db.Rebind, b.Kind, rk[0], rk[1]); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = 0, reason = '' WHERE batch_id = ? AND status = 1`), b.ID); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO disb_issues (batch_id, seq, code, severity, detail) VALUES (?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer ins.Close()
		upd, err := tx.PrepareContext(ctx, s.db.Rebind(`UPDATE disb_payments SET status = 1, reason = ? WHERE batch_id = ? AND seq = ?`))
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, is := range issues {
			if _, err := ins.ExecContext(ctx, b.ID, is.Seq, is.Code, is.Severity, is.Detail); err != nil {
				return err
			}
			if is.Severity == "reject" {
				rejected++
				if _, err := upd.ExecContext(ctx, is.Code, b.ID, is.Seq); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	var valid, total sql.NullInt64
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*), SUM(amount_fen) FROM disb_payments WHERE batch_id = ? AND status = 0`), b.ID).Scan(&valid, &total); err != nil {
		return "", err
	}
	if err := s.setBatch(ctx, b, "valid = ?, system_total = ?", valid.Int64, total.Int64); err != nil {
		return "", err
	}
	b.Valid, b.SystemTotal = valid.Int64, total.Int64
	flags := int64(0)
	for _, is := range issues {
		if is.Severity == "flag" || is.Severity == "alert" {
			flags++
		}
	}
	st := monitor.OK
	if flags+rejected > 0 {
		st = monitor.Warning
	}
	s.emit(monitor.Event{Type: monitor.Validated, Status: st, BatchID: b.Name, Stage: StageValidate, Flow: flowOf(b),
		Records: b.Valid, RecordsFailed: rejected, AmountFen: b.SystemTotal, Attrs: map[string]string{"flags": strconv.FormatInt(flags, 10)}})
	opt.Progress(StageValidate, b.Records, b.Records)
	return fmt.Sprintf("%d valid (%s yuan), %d rejected, %d flags/alerts", b.Valid, yuan(b.SystemTotal), rejected, flags), nil
}

func (s *Service) bankOf(code string) int {
	if i, ok := s.byCode[code]; ok {
		return i
	}
	return -1
}

// dups returns the values present more than once.
func dups(v []uint64) map[uint64]bool {
	slices.Sort(v)
	out := map[uint64]bool{}
	for i := 1; i < len(v); i++ {
		if v[i] == v[i-1] {
			out[v[i]] = true
		}
	}
	return out
}

// totalCheck stops the run unless the letter total equals the system total.
func (s *Service) totalCheck(ctx context.Context, b *Batch, _ RunOptions) (string, error) {
	if b.LetterTotal == 0 {
		return "", fmt.Errorf("%w (system total %s yuan)", ErrAwaitingLetterTotal, yuan(b.SystemTotal))
	}
	if b.LetterTotal != b.SystemTotal {
		s.auditOutcome(ctx, systemActor, "total_check.failed", b.Name, audit.OutcomeFailure, "letter %s yuan, system %s yuan", yuan(b.LetterTotal), yuan(b.SystemTotal))
		return "", fmt.Errorf("%w: letter %s yuan, system %s yuan", ErrTotalMismatch, yuan(b.LetterTotal), yuan(b.SystemTotal))
	}
	s.auditf(ctx, systemActor, "total_check.ok", b.Name, "%s yuan", yuan(b.SystemTotal))
	return fmt.Sprintf("letter total = system total = %s yuan", yuan(b.SystemTotal)), nil
}

// maskID keeps the first 3 and last 4 characters of an ID number.
func maskID(id string) string {
	if len(id) < 8 {
		return "***"
	}
	return id[:3] + strings.Repeat("*", len(id)-7) + id[len(id)-4:]
}

// maskAccount keeps the last 4 digits.
func maskAccount(a string) string {
	if len(a) < 5 {
		return "****"
	}
	return strings.Repeat("*", len(a)-4) + a[len(a)-4:]
}
