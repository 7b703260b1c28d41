package banksim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func writeFile(t *testing.T, b *Bank, dir string, n int) (string, int64) {
	t.Helper()
	files, err := bank.LoadFileSet(os.DirFS(mustMappings(t)), b.Config.Layouts)
	if err != nil {
		t.Fatal(err)
	}
	name := b.Config.FileNameFor(bank.Disbursement, "2026-11", bank.Ext(files.Disbursement))
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := synth.New(7)
	var total int64
	for i := range n {
		total += g.Next().AmountFen
		_ = i
	}
	w, err := bank.NewFileWriter(files.Disbursement, f, bank.Header{BatchNo: "DF202611", FileDate: time.Now(), PayerAccount: b.Config.PayerAccount, PayerName: b.Config.PayerName, Count: int64(n), TotalFen: total})
	if err != nil {
		t.Fatal(err)
	}
	g = synth.New(7)
	for i := range n {
		ps := g.Next()
		rec := mappings.PaymentRecord{PersonID: ps.ID, Name: ps.Name, Account: ps.Account, BankCode: b.Config.BankCode,
			AmountFen: ps.AmountFen, Period: "2026-11", Reference: fmt.Sprintf("2026111%09d", i+1), Division: ps.Division}
		if err := w.Write(&rec); err != nil {
			t.Fatalf("%s: write: %v", b.Config.Code, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p, total
}

func mustMappings(t *testing.T) string {
	t.Helper()
	p, err := FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSixBanksPayOnceAndReturn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	opts.FailureRate = 0.2
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	banks, err := StartAllWith(ctx, filepath.Join(dir, "sim"), os.DirFS(mustMappings(t)), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, b := range banks {
			_ = b.Close()
		}
	}()
	if len(banks) != 6 {
		t.Fatalf("%d banks", len(banks))
	}
	db := storetest.Open(t)
	if err := sftp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for _, b := range banks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := filepath.Join(dir, b.Config.Code)
			_ = os.MkdirAll(local, 0o750)
			p, total := writeFile(t, b, local, n)
			// The client logs why it leaves a file for later: a failure below
			// then says what the hub saw, not only what it missed.
			c, err := sftp.New(b.Config.Partner(), "disbursement", b.Config.SFTP,
				connectors.Deps{Store: db, DataDir: local, Logger: opts.Logger.With("hub", b.Config.Code)}, sftp.Keys{})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close(ctx)
			if _, err := c.Upload(ctx, sftp.Outbound{LocalPath: p, Name: filepath.Base(p), Records: n, TotalFen: total}); err != nil {
				t.Error(err)
				return
			}
			files, _ := bank.LoadFileSet(os.DirFS(mustMappings(t)), b.Config.Layouts)
			// The handler may see a file again after a transient fault
			// (at-least-once): results are kept per file.
			type result struct{ paid, failed int }
			results := map[string]result{}
			wantParts := 1
			if b.Config.MultiPartReturns {
				wantParts = opts.Parts
			}
			var polls sftp.PollResult
			// Each round waits for a whole pass of the bank that began after
			// the upload (or the last poll): the file has been taken and
			// every return file written by then, so one poll should take
			// them all; three rounds allow for a transient fault.
			for round := 0; len(results) < wantParts && round < 3; round++ {
				wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				err := b.Scanned(wctx)
				cancel()
				if err != nil {
					t.Errorf("%s: the bank never finished a pass: %v", b.Config.Code, err)
					return
				}
				pr, err := c.Poll(ctx, sftp.PollOptions{}, func(_ context.Context, in sftp.Inbound) error {
					f, err := os.Open(in.LocalPath)
					if err != nil {
						return err
					}
					defer f.Close()
					var r result
					res, err := bank.ReadPayments(files.Return, f, func(r mappings.Reject) { t.Errorf("%s: reject %s", b.Config.Code, r) }, func(p *mappings.PaymentRecord) error {
						switch p.Status {
						case mappings.StatusPaid:
							r.paid++
						case mappings.StatusFailed:
							r.failed++
							if p.ReasonCode == "" {
								t.Errorf("%s: failure without code", b.Config.Code)
							}
						}
						return nil
					})
					if err == nil && res.CheckErr != nil {
						t.Errorf("%s: %v", b.Config.Code, res.CheckErr)
					}
					results[in.RemotePath] = r
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				polls.Processed += pr.Processed
				polls.Failed += pr.Failed
				polls.Rejected += pr.Rejected
				polls.Duplicates += pr.Duplicates
				polls.Waiting += pr.Waiting
			}
			var paid, failed int
			for _, r := range results {
				paid += r.paid
				failed += r.failed
			}
			parts := len(results)
			if paid+failed != n || failed == 0 || int64(paid) != b.Paid.Total() || b.Paid.Double() != 0 || parts != wantParts {
				t.Errorf("%s: paid %d failed %d parts %d, counter %d double %d; polls %+v; bank outbox %v",
					b.Config.Code, paid, failed, parts, b.Paid.Total(), b.Paid.Double(), polls, listDir(filepath.Join(b.Root(), b.Config.SFTP.PollDir)))
			}
		}()
	}
	wg.Wait()
}

// listDir names the entries of dir, for failure messages.
func listDir(dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// startFirstBank runs the first shipped bank with no return delay, closed
// when the test ends.
func startFirstBank(t *testing.T) *Bank {
	t.Helper()
	cfgs, err := ShippedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.ReturnDelay = 0
	b, err := Start(context.Background(), t.TempDir(), cfgs[0], os.DirFS(mustMappings(t)), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRefusesWrongDigestAndIncompleteFiles(t *testing.T) {
	ctx := context.Background()
	b := startFirstBank(t)
	p, _ := writeFile(t, b, t.TempDir(), 5)
	data, _ := os.ReadFile(p)
	up := filepath.Join(b.Root(), "upload")
	// no done file: never taken
	_ = os.WriteFile(filepath.Join(up, "A.txt"), data, 0o640)
	// done file with a wrong digest: refused and reported
	_ = os.WriteFile(filepath.Join(up, "B.txt"), data, 0o640)
	_ = os.WriteFile(filepath.Join(up, "B.txt.done"), sftp.DoneInfo{File: "B.txt", Bytes: int64(len(data)), SM3: fmt.Sprintf("%064d", 0)}.Marshal(), 0o640)
	// One whole pass of the bank over both files.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := b.Scanned(wctx); err != nil {
		t.Fatalf("the bank never finished a pass: %v", err)
	}
	if b.Paid.Total() != 0 || b.Taken.Load() != 0 || b.Refused.Load() != 1 {
		t.Fatalf("paid %d taken %d refused %d", b.Paid.Total(), b.Taken.Load(), b.Refused.Load())
	}
	if _, err := os.Stat(filepath.Join(up, "rejected", "B.txt.rejected")); err != nil {
		t.Fatalf("no refusal report: %v", err)
	}
}

// TestHoldTaking: a held bank leaves a complete file where it is through
// whole passes, and takes it on its first pass after the hold is lifted.
func TestHoldTaking(t *testing.T) {
	ctx := context.Background()
	b := startFirstBank(t)
	b.HoldTaking.Store(true)
	p, _ := writeFile(t, b, t.TempDir(), 5)
	data, _ := os.ReadFile(p)
	up := filepath.Join(b.Root(), "upload")
	name := filepath.Base(p)
	digest, size := sum(data)
	_ = os.WriteFile(filepath.Join(up, name), data, 0o640)
	_ = os.WriteFile(filepath.Join(up, name+".done"), sftp.DoneInfo{File: name, Bytes: size, SM3: digest}.Marshal(), 0o640)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for range 2 {
		if err := b.Scanned(wctx); err != nil {
			t.Fatal(err)
		}
	}
	if b.Taken.Load() != 0 {
		t.Fatalf("a held bank took %d files", b.Taken.Load())
	}
	if _, err := os.Stat(filepath.Join(up, name)); err != nil {
		t.Fatalf("the held file moved: %v", err)
	}
	b.HoldTaking.Store(false)
	if err := b.Scanned(wctx); err != nil {
		t.Fatal(err)
	}
	if b.Taken.Load() != 1 || b.Paid.Total() != 5 {
		t.Fatalf("after the hold: taken %d paid %d", b.Taken.Load(), b.Paid.Total())
	}
}
