// Package banksim simulates the six partner banks: each is an in-process SFTP
// server on 127.0.0.1 that takes complete disbursement and deduction files
// only (a file without its done file is never taken; one whose digest or
// size does not match its done file is refused and reported), "pays" every
// record once, counting it, and after a delay writes a return file in the
// bank's layout with configurable failure rates and realistic failure
// codes (account closed, name mismatch, frozen). CCB answers with several
// return files whose records come in another order. Faults can be switched
// on: truncated, duplicated or malformed return files, and the SFTP
// server's own faults (sftptest.Faults).
package banksim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/connectors/sftp/sftptest"
	"github.com/shanghai-mca/mzhub/mappings"
)

// Options tune a simulated bank.
type Options struct {
	// FailureRate is the share of records answered as failed (0..1).
	FailureRate float64
	// ReturnDelay is the time between taking a file and writing its return.
	ReturnDelay time.Duration
	// Parts is the number of return files of a multi-part bank (CCB).
	Parts int
	// PollEvery is how often the bank looks for new files.
	PollEvery time.Duration
	// Logger receives the bank's log (discarded when nil).
	Logger *slog.Logger
	// AccountFailureRate is the share of verifications and openings
	// refused for a name or ID mismatch (0..1); FailPerson forces one.
	AccountFailureRate float64
}

// DefaultOptions are the demo settings.
func DefaultOptions() Options {
	return Options{FailureRate: 0.02, ReturnDelay: 200 * time.Millisecond, Parts: 3, PollEvery: 50 * time.Millisecond}
}

// Bank is one running simulated bank.
type Bank struct {
	// Config is the hub-side configuration that reaches this bank (address,
	// pinned host key and credentials filled in).
	Config bank.Config
	// Server is the bank's SFTP server (its Faults can be switched).
	Server *sftptest.Server
	// Paid counts the records paid; Paid.Double() must stay 0.
	Paid *Counter
	// Refused counts files refused for a wrong digest or size.
	Refused atomic.Int64
	// Taken counts files taken.
	Taken atomic.Int64
	// TruncateNextReturn serves the next return file cut in half (its done
	// file describes the whole); the whole file replaces it once the hub
	// has moved the truncated one away.
	TruncateNextReturn atomic.Bool
	// DuplicateNextReturn serves the next return file twice, under a second name.
	DuplicateNextReturn atomic.Bool
	// CorruptNextReturn garbles the reference of that many records of the
	// next return file; the file stays consistent (count and total), so
	// the hub quarantines those records with their lines.
	CorruptNextReturn atomic.Int64
	// ShortNextReturn serves the next return file cut at a line end in its
	// middle, with a done file that matches the cut file (a bank that
	// announced what it had written): only the trailer or summary check
	// can tell. The whole file replaces it once the hub has moved the cut
	// one away (unless HoldRepairs).
	ShortNextReturn atomic.Bool
	// EmptyNextReturn serves the next return file empty, with a matching
	// done file; the whole file replaces it as for ShortNextReturn.
	EmptyNextReturn atomic.Bool
	// BadBytesNextReturn writes the invalid GBK pair 81 7F over the first
	// Chinese character of the next return file (its done file matches),
	// repaired as for ShortNextReturn.
	BadBytesNextReturn atomic.Bool
	// HoldRepairs keeps the whole files that replace truncated, cut or
	// empty returns back while set (a bank that has not answered yet).
	HoldRepairs atomic.Bool
	// HoldTaking keeps the bank from taking (and so answering) new files
	// while set: a bank that has not looked yet. Its passes still run and
	// count for Scanned.
	HoldTaking atomic.Bool

	files bank.FileSet
	opts  Options
	log   *slog.Logger
	fails []mappings.CodeSpec // failure codes of the disbursement return layout

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	repair map[string][]byte // truncated return name -> whole content
	// The account book (accounts.go), under mu.
	accounts map[string]*simAccount
	forced   map[string]string // ID number -> outcome of every request
	answered map[bank.AccountOp]int64

	// Scan passes, for Scanned: started and finished count them; scanned
	// is closed (and replaced) when one finishes.
	scanMu            sync.Mutex
	started, finished uint64
	scanned           chan struct{}
}

// Start runs a simulated bank in dir for the bank described by cfg (its
// SFTP section is replaced); mappingsFS is the mappings root (banks/ and
// codetables/).
func Start(ctx context.Context, dir string, cfg bank.Config, mappingsFS fs.FS, opts Options) (*Bank, error) {
	files, err := bank.LoadFileSet(mappingsFS, cfg.Layouts)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", cfg.Code, err)
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 50 * time.Millisecond
	}
	if opts.Parts < 1 {
		opts.Parts = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(dir, cfg.Code)
	for _, d := range []string{cfg.SFTP.UploadDir, cfg.SFTP.PollDir} {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o750); err != nil {
			return nil, err
		}
	}
	srv, err := sftptest.Start(root, "mzhub", "sim-"+cfg.Code)
	if err != nil {
		return nil, fmt.Errorf("sim %s: %w", cfg.Code, err)
	}
	cfg.SFTP.Addr = srv.Addr()
	cfg.SFTP.User, cfg.SFTP.Password = "mzhub", "sim-"+cfg.Code
	cfg.SFTP.HostKeyFingerprint, cfg.SFTP.KnownHostsFile, cfg.SFTP.PrivateKeyFile = srv.Fingerprint(), "", ""
	b := &Bank{Config: cfg, Server: srv, Paid: newCounter(), files: files, opts: opts,
		log: opts.Logger.With("sim", cfg.Code), repair: map[string][]byte{}}
	if files.Return != nil {
		if i := files.Return.Detail.CanonicalIndex(mappings.CanonStatus); i >= 0 && files.Return.Detail.Fields[i].Codes != nil {
			for _, e := range files.Return.Detail.Fields[i].Codes.Entries {
				if e.Value == string(mappings.StatusFailed) && realistic(e.Text) {
					b.fails = append(b.fails, e)
				}
			}
		}
	}
	b.scanned = make(chan struct{})
	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(1)
	go b.loop(ctx)
	return b, nil
}

// Scanned returns once the bank has finished a whole pass over its upload
// folder that began after the call, or with ctx's error. A file complete
// (data and done file) before the call has then been taken and answered
// (its return files and their done files written) or refused, unless
// HoldTaking is set: tests wait on this instead of sleeping for a while and
// hoping the bank looked.
func (b *Bank) Scanned(ctx context.Context) error {
	b.scanMu.Lock()
	target := b.started + 1 // the next pass to start
	for b.finished < target {
		ch := b.scanned
		b.scanMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.scanMu.Lock()
	}
	b.scanMu.Unlock()
	return nil
}

// realistic keeps the failures of a disbursement: closed or unknown
// account, name mismatch, frozen.
func realistic(text string) bool {
	for _, w := range []string{"销户", "户名", "冻结", "不存在"} {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// Root is the bank's SFTP root on local disk.
func (b *Bank) Root() string { return b.Server.Root() }

// Close stops the bank.
func (b *Bank) Close() error {
	b.cancel()
	b.wg.Wait()
	return b.Server.Close()
}

func (b *Bank) loop(ctx context.Context) {
	defer b.wg.Done()
	for {
		b.scanMu.Lock()
		b.started++
		b.scanMu.Unlock()
		if err := b.scan(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("sim scan", "err", err)
		}
		b.scanMu.Lock()
		b.finished++
		close(b.scanned)
		b.scanned = make(chan struct{})
		b.scanMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.opts.PollEvery):
		}
	}
}

func (b *Bank) scan(ctx context.Context) error {
	b.repairReturns()
	if b.HoldTaking.Load() {
		return nil
	}
	in := filepath.Join(b.Root(), filepath.FromSlash(b.Config.SFTP.UploadDir))
	es, err := os.ReadDir(in)
	if err != nil {
		return err
	}
	done := b.Config.SFTP.DoneSuffix
	for _, e := range es {
		if ctx.Err() != nil {
			return nil
		}
		if e.IsDir() || !strings.HasSuffix(e.Name(), done) {
			continue
		}
		name := strings.TrimSuffix(e.Name(), done)
		if _, err := os.Stat(filepath.Join(in, name)); err != nil {
			continue // a done file without data: not complete
		}
		if err := b.take(ctx, in, name); err != nil {
			b.log.Warn("sim take", "file", name, "err", err)
		}
	}
	return nil
}

// take checks and processes one complete file.
func (b *Bank) take(ctx context.Context, in, name string) error {
	cfg := b.Config.SFTP
	data := filepath.Join(in, name)
	raw, err := os.ReadFile(data + cfg.DoneSuffix)
	if err != nil {
		return err
	}
	d, derr := sftp.ParseDone(raw)
	digest, size, err := sftp.DigestFile(data)
	if err != nil {
		return err
	}
	if derr != nil || d.SM3 != digest || d.Bytes != size {
		b.Refused.Add(1)
		why := fmt.Sprintf("refused %s: done file does not match the data (digest or size)\n", name)
		if derr != nil {
			why = fmt.Sprintf("refused %s: %v\n", name, derr)
		}
		_ = os.WriteFile(data+".rejected", []byte(why), 0o640)
		return moveAll(in, "rejected", name, cfg)
	}
	if _, ok := bank.OpOfFileName(name); ok {
		body, err := os.ReadFile(data)
		if err != nil {
			return err
		}
		if err := moveAll(in, "taken", name, cfg); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.opts.ReturnDelay):
		}
		return b.takeAccounts(name, body)
	}
	kind := bank.Disbursement
	if strings.Contains(name, "_DK_") {
		kind = bank.Deduction
	}
	lin, lout := b.files.Outbound(kind), b.files.Inbound(kind)
	if lin == nil || lout == nil {
		return fmt.Errorf("no layout for %s", kind)
	}
	f, err := os.Open(data)
	if err != nil {
		return err
	}
	defer f.Close()
	b.Taken.Add(1)
	// Move the file away first: the bank takes a file once.
	if err := moveAll(in, "taken", name, cfg); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.opts.ReturnDelay):
	}
	corrupt := b.CorruptNextReturn.Swap(0)
	err = b.answer(name, f, lin, lout, d, corrupt, false, true)
	if errors.Is(err, mappings.ErrTrailerMismatch) {
		// The summary header of the return needs counts the done file did
		// not give (records refused on reading): count first, write again.
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return serr
		}
		err = b.answer(name, f, lin, lout, d, corrupt, true, false)
	}
	return err
}

// answer pays each record (when pay is set) and writes the return file(s),
// garbling the reference of corrupt records. Summary headers get their
// counts from the done file unless prepass is set, which counts the
// accepted records in a first pass.
func (b *Bank) answer(name string, in io.ReadSeeker, lin, lout *mappings.Layout, d sftp.DoneInfo, corrupt int64, prepass, pay bool) error {
	parts := 1
	if b.Config.MultiPartReturns {
		parts = b.opts.Parts
	}
	base := strings.TrimSuffix(name, filepath.Ext(name))
	ext := bank.Ext(lout)
	now := time.Now().In(clock.Shanghai)
	type part struct {
		name string
		buf  *os.File
		w    *bank.FileWriter
	}
	outDir := filepath.Join(b.Root(), filepath.FromSlash(b.Config.SFTP.PollDir))
	var ps []*part
	closeAll := func() {
		for _, p := range ps {
			_ = p.buf.Close()
			_ = os.Remove(p.buf.Name())
		}
	}
	// Summary headers need count and total before the details: count
	// the accepted records of each part in a first pass.
	counts, totals := make([]int64, parts), make([]int64, parts)
	if !prepass {
		for i := range parts {
			counts[i] = (d.Records - int64(i) + int64(parts) - 1) / int64(parts)
		}
		if parts == 1 {
			totals[0] = d.TotalFen
		}
	} else if lout.Header != nil {
		k := 0
		if _, err := bank.ReadPayments(lin, in, nil, func(p *mappings.PaymentRecord) error {
			counts[k%parts]++
			totals[k%parts] += p.AmountFen
			k++
			return nil
		}); err != nil {
			return err
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	for i := range parts {
		n := base + "_RET" + ext
		if parts > 1 {
			n = fmt.Sprintf("%s_RET_%dOF%d%s", base, i+1, parts, ext)
		}
		tmp, err := os.CreateTemp(b.Root(), ".ret-*")
		if err != nil {
			closeAll()
			return err
		}
		p := &part{name: n, buf: tmp}
		ps = append(ps, p)
		w, err := bank.NewFileWriter(lout, tmp, bank.Header{BatchNo: batchNo(base), FileDate: now, PartNo: int64(i + 1), PartTotal: int64(parts), Count: counts[i], TotalFen: totals[i]})
		if err != nil {
			closeAll()
			return err
		}
		p.w = w
	}
	i := 0
	stride := max(1, d.Records/(corrupt+1))
	_, err := bank.ReadPayments(lin, in, func(r mappings.Reject) {
		b.log.Warn("sim: record refused", "file", name, "reject", r.String())
	}, func(p *mappings.PaymentRecord) error {
		b.decide(p, now)
		if pay && p.Status == mappings.StatusPaid {
			b.Paid.add(p.Reference)
		}
		if corrupt > 0 && int64(i)%stride == stride-1 {
			corrupt--
			p.Reference = strings.Repeat("#", len(p.Reference))
		}
		// Multi-part returns interleave the records: order is not kept.
		err := ps[i%len(ps)].w.Write(p)
		i++
		return err
	})
	if err != nil {
		closeAll()
		return fmt.Errorf("read %s: %w", name, err)
	}
	for _, p := range ps {
		if err := p.w.Close(); err != nil {
			closeAll()
			return err
		}
	}
	for _, p := range ps {
		if err := b.publish(outDir, p.name, p.buf); err != nil {
			closeAll()
			return err
		}
	}
	closeAll()
	return nil
}

// publish writes one return file and its done file into the outbox,
// applying the switched-on faults.
func (b *Bank) publish(dir, name string, tmp *os.File) error {
	if !b.TruncateNextReturn.Load() && !b.DuplicateNextReturn.Load() && !b.ShortNextReturn.Load() && !b.EmptyNextReturn.Load() && !b.BadBytesNextReturn.Load() {
		// No fault: the file is moved into place, never held in memory.
		digest, size, err := sftp.DigestFile(tmp.Name())
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		if err := os.Rename(tmp.Name(), p); err != nil {
			return err
		}
		d := sftp.DoneInfo{File: name, Bytes: size, SM3: digest}
		return b.writeDone(p, d)
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	write := func(name string, body []byte, whole []byte) error {
		digest, size := sum(whole)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p+".part", body, 0o640); err != nil {
			return err
		}
		if err := os.Rename(p+".part", p); err != nil {
			return err
		}
		d := sftp.DoneInfo{File: name, Bytes: size, SM3: digest}
		return b.writeDone(p, d)
	}
	if b.TruncateNextReturn.CompareAndSwap(true, false) {
		b.mu.Lock()
		b.repair[name] = data
		b.mu.Unlock()
		return write(name, data[:len(data)/2], data)
	}
	if b.ShortNextReturn.CompareAndSwap(true, false) {
		b.mu.Lock()
		b.repair[name] = data
		b.mu.Unlock()
		cut := data[:bytes.LastIndexByte(data[:len(data)/2], '\n')+1]
		return write(name, cut, cut)
	}
	if b.BadBytesNextReturn.CompareAndSwap(true, false) {
		b.mu.Lock()
		b.repair[name] = data
		b.mu.Unlock()
		bad := bytes.Clone(data)
		if i := bytes.IndexFunc(bad, func(r rune) bool { return r >= 0x80 }); i >= 0 && i+1 < len(bad) {
			bad[i], bad[i+1] = 0x81, 0x7F
		}
		return write(name, bad, bad)
	}
	if b.EmptyNextReturn.CompareAndSwap(true, false) {
		b.mu.Lock()
		b.repair[name] = data
		b.mu.Unlock()
		return write(name, nil, nil)
	}
	if err := write(name, data, data); err != nil {
		return err
	}
	if b.DuplicateNextReturn.CompareAndSwap(true, false) {
		ext := filepath.Ext(name)
		return write(strings.TrimSuffix(name, ext)+"_DUP"+ext, data, data)
	}
	return nil
}

// writeDone puts the done file of p in place as a well-behaved bank does:
// written under the temporary suffix, then renamed, so that a poll never
// reads it half-written.
func (b *Bank) writeDone(p string, d sftp.DoneInfo) error {
	done := p + b.Config.SFTP.DoneSuffix
	if err := os.WriteFile(done+b.Config.SFTP.TempSuffix, d.Marshal(), 0o640); err != nil {
		return err
	}
	return os.Rename(done+b.Config.SFTP.TempSuffix, done)
}

// repairReturns re-serves whole files for truncated ones the hub moved away.
func (b *Bank) repairReturns() {
	if b.HoldRepairs.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dir := filepath.Join(b.Root(), filepath.FromSlash(b.Config.SFTP.PollDir))
	for name, data := range b.repair {
		// Re-deliver only once the hub has taken the whole previous
		// delivery away (data and done file), never into the middle of it.
		_, errData := os.Stat(filepath.Join(dir, name))
		_, errDone := os.Stat(filepath.Join(dir, name+b.Config.SFTP.DoneSuffix))
		if errors.Is(errData, os.ErrNotExist) && errors.Is(errDone, os.ErrNotExist) {
			p := filepath.Join(dir, name)
			digest, size := sum(data)
			if os.WriteFile(p+".part", data, 0o640) == nil && os.Rename(p+".part", p) == nil {
				d := sftp.DoneInfo{File: name, Bytes: size, SM3: digest}
				_ = b.writeDone(p, d)
				delete(b.repair, name)
			}
		}
	}
}

// decide sets the outcome of one payment, deterministic per reference.
func (b *Bank) decide(p *mappings.PaymentRecord, now time.Time) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(b.Config.Code))
	_, _ = h.Write([]byte(p.Reference))
	v := h.Sum64()
	p.PayDate = now
	if len(b.fails) > 0 && float64(v%1_000_000)/1_000_000 < b.opts.FailureRate {
		e := b.fails[(v>>20)%uint64(len(b.fails))]
		p.Status, p.ReasonCode, p.ReasonText = mappings.StatusFailed, e.Code, e.Text
		return
	}
	p.Status, p.ReasonCode, p.ReasonText = mappings.StatusPaid, "", ""
}

func batchNo(base string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(base) {
		if (r >= '0' && r <= '9') || (r >= 'A' && r <= 'Z') {
			sb.WriteRune(r)
		}
	}
	s := sb.String()
	if len(s) > 18 {
		s = s[len(s)-18:]
	}
	return s
}

func moveAll(dir, sub, name string, cfg sftp.Config) error {
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
		return err
	}
	for _, s := range []string{"", cfg.SigSuffix, cfg.DoneSuffix, ".rejected"} {
		err := os.Rename(filepath.Join(dir, name+s), filepath.Join(dir, sub, name+s))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
