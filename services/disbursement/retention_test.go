package disbursement

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
)

// TestRetention: once a batch closes, the hub keeps no plaintext ID,
// name or account of it: the list copy is sealed (SM4-GCM) and still
// readable by the service, the bank files are gone, the list taken from
// the inbox left it, and every file and folder the cycle made is the
// owner's only.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 10 * time.Millisecond
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	svc := newService(t, openDB(t, dir), dir, simConfigs(sims), &monitortest.Recorder{}, nil)
	if err := os.MkdirAll(svc.InboxDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(svc.InboxDir(), "list-2026-11.csv")
	var buf bytes.Buffer
	if err := WriteList(&buf, GenerateOptions{Persons: 800, Seed: 11, Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte // every ID and account of the list
	var letter int64
	_ = readList(list, func(_ int64, r *listRecord) error {
		secrets = append(secrets, []byte(r.id()), []byte(r.account()))
		letter += r.amount()
		return nil
	})
	b, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: list, LetterTotal: letter, ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil || b.Stage != StageDone {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(list); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the list is still in the inbox: %v", err)
	}
	for _, p := range []string{svc.listPath(b), svc.outDir(b)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s kept after the batch closed: %v", p, err)
		}
	}
	requireNoPlaintext(t, svc.cfg.Dir, secrets)
	// The sealed list still serves the service (reports, re-keying).
	if rows, err := svc.streamReport(ctx, b); err != nil || len(rows) == 0 {
		t.Fatalf("report from the sealed list: %d rows, %v", len(rows), err)
	}
	// A second Run of the finished batch changes nothing.
	if _, err := svc.Run(ctx, RunOptions{Period: "2026-11"}); err != nil {
		t.Fatal(err)
	}
	if !svc.hasList(b) {
		t.Fatal("the sealed list is gone")
	}
}

// requireNoPlaintext fails for any file under root holding one of the
// secrets, and for any file or folder readable by others than the owner.
func requireNoPlaintext(t *testing.T, root string, secrets [][]byte) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want owner only", p, perm)
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s holds %s…%s in plaintext", p, s[:3], s[len(s)-4:])
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSealedFile: a sealed file reads back as it was, over several chunks;
// an altered, cut or reordered one, or one read without its key, fails.
func TestSealedFile(t *testing.T) {
	dir := t.TempDir()
	sl := testSealer(t)
	data := bytes.Repeat([]byte("310101194803120421,张伟,6216610000123456780\n"), 3*sealChunk/40)
	src, dst := filepath.Join(dir, "list.csv"), filepath.Join(dir, "list.csv.sealed")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sealFile(sl, src, dst); err != nil {
		t.Fatal(err)
	}
	sealed, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("6216610000123456780")) {
		t.Fatal("plaintext in the sealed file")
	}
	open := func(b []byte) ([]byte, error) {
		return io.ReadAll(&sealedReader{s: sl, r: bufioReader(b)})
	}
	if got, err := open(sealed); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d of %d bytes: %v", len(got), len(data), err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	if err := sealFile(sl, empty, empty+".sealed"); err != nil {
		t.Fatal(err)
	}
	if e, _ := os.ReadFile(empty + ".sealed"); true {
		if got, err := open(e); err != nil || len(got) != 0 {
			t.Fatalf("empty file: %q %v", got, err)
		}
	}
	first := len(sealedMagic) + 4 + int(uint32(sealed[len(sealedMagic)])<<24|uint32(sealed[len(sealedMagic)+1])<<16|uint32(sealed[len(sealedMagic)+2])<<8|uint32(sealed[len(sealedMagic)+3]))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string][]byte{
		"altered":           flipped,
		"cut after a chunk": sealed[:first],
		"cut in a chunk":    sealed[:len(sealed)-10],
		"chunk dropped":     append(append([]byte(nil), sealed[:len(sealedMagic)]...), sealed[first:]...),
		"data appended":     append(bytes.Clone(sealed), 'x'),
	} {
		if _, err := open(bad); !errors.Is(err, ErrSealedList) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// FuzzSealedReader feeds arbitrary bytes, and altered sealed files, to the
// sealed-file reader: it must not panic, and anything it cannot open ends
// with ErrSealedList, never with wrong plaintext.
func FuzzSealedReader(f *testing.F) {
	sl := testSealer(f)
	plain := []byte("person_id,name\n310101194803120421,张伟\n")
	var sealed bytes.Buffer
	if err := writeSealed(sl, bytes.NewReader(plain), &sealed); err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Bytes())
	f.Add([]byte(sealedMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := io.ReadAll(&sealedReader{s: sl, r: bufioReader(data)})
		if err != nil && !errors.Is(err, ErrSealedList) {
			t.Fatalf("error %v is not ErrSealedList", err)
		}
		if err == nil && (!bytes.Equal(data, sealed.Bytes()) || !bytes.Equal(got, plain)) {
			t.Fatalf("opened %q from %d bytes that are not the sealed file", got, len(data))
		}
	})
}

// BenchmarkSealList seals and opens again a list of 200,000 persons (about
// 17 MB): the cost a batch's close adds, per 200,000 persons.
func BenchmarkSealList(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "list.csv")
	var buf bytes.Buffer
	if err := WriteList(&buf, GenerateOptions{Persons: 200_000, Seed: 1, Period: "2026-11"}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(src, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	sl := testSealer(b)
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for range b.N {
		if err := sealFile(sl, src, src+".sealed"); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(src + ".sealed")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, &sealedReader{s: sl, r: bufio.NewReaderSize(f, 64<<10)})
		f.Close()
		if err != nil || n != int64(buf.Len()) {
			b.Fatalf("%d bytes, %v", n, err)
		}
	}
}
