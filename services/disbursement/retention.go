package disbursement

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Sealer seals whole payloads at rest and opens them again
// (security/fieldcrypt's *Ring: SM4-GCM under the hub's field keys, as
// bus bodies are sealed). Open must accept everything Seal produced under
// any key still held.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// SetSealer makes the service seal the payment list it keeps once a batch
// closes; call it before Run. Without a sealer the list is removed instead.
func (s *Service) SetSealer(sl Sealer) { s.sealer = sl }

// ErrSealedList: a sealed list file cannot be opened (no sealer, a key no
// longer held, or the file was altered or cut).
var ErrSealedList = errors.New("disbursement: sealed list cannot be opened")

// sealedMagic starts a sealed file; then frames of a 4-byte big-endian
// length and one sealed chunk. A chunk's plaintext is its 8-byte index,
// a final flag byte and up to sealChunk bytes of the file: chunks cannot be
// reordered, dropped or the file cut without Open noticing.
const (
	sealedMagic = "MZHUB-SEALED-FILE 1\n"
	sealChunk   = 1 << 20
)

func (s *Service) sealedListPath(b *Batch) string { return s.listPath(b) + ".sealed" }

// submittedListPath is the list as submitted, kept beside the screened one.
func (s *Service) submittedListPath(b *Batch) string {
	return filepath.Join(s.dir(b), "list.submitted.csv")
}

// readBatch streams the batch's list: the plain copy while the batch is
// open, the sealed one after it closed.
func (s *Service) readBatch(b *Batch, fn func(seq int64, r *listRecord) error) error {
	p := s.listPath(b)
	if _, err := os.Stat(p); err == nil || s.sealer == nil {
		return readList(p, fn)
	}
	f, err := os.Open(s.sealedListPath(b))
	if err != nil {
		return err
	}
	defer f.Close()
	return readListFrom(&sealedReader{s: s.sealer, r: bufio.NewReaderSize(f, 64<<10)}, fn)
}

// OpenList returns the payment list of a batch (ListHeader format) as the
// batch pays it: the plain copy while the batch runs, the sealed one opened
// after it closed. The caller closes it; the content is personal data and
// must not be written anywhere in plaintext.
func (s *Service) OpenList(ctx context.Context, k Kind, period string) (io.ReadCloser, error) {
	b, err := s.Batch(ctx, k, period)
	if err != nil {
		return nil, err
	}
	if f, err := os.Open(s.listPath(b)); err == nil || s.sealer == nil {
		return f, err
	}
	f, err := os.Open(s.sealedListPath(b))
	if err != nil {
		return nil, fmt.Errorf("disbursement %s: list: %w", b.Name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{&sealedReader{s: s.sealer, r: bufio.NewReaderSize(f, 64<<10)}, f}, nil
}

// hasList tells whether the batch still has its list (plain or sealed).
func (s *Service) hasList(b *Batch) bool {
	for _, p := range []string{s.listPath(b), s.sealedListPath(b)} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// closeBatch applies the retention of a finished batch's files (see
// docs/disbursement.md, "Retention"): the payment list copy is sealed
// (removed without a sealer), the bank files in out/ are removed (the banks
// have them; their digests stay in disb_files), and failures.csv and
// report.csv, masked, stay. It is idempotent: a crash in between is
// finished by the next call.
func (s *Service) closeBatch(ctx context.Context, b *Batch) error {
	// The list as paid, and the list as submitted when a screener
	// changed it (list.submitted.csv).
	for _, plain := range []string{s.listPath(b), s.submittedListPath(b)} {
		if _, err := os.Stat(plain); err == nil {
			if s.sealer != nil {
				if err := sealFile(s.sealer, plain, plain+".sealed"); err != nil {
					return fmt.Errorf("disbursement %s: seal %s: %w", b.Name, filepath.Base(plain), err)
				}
			}
			if err := os.Remove(plain); err != nil {
				return fmt.Errorf("disbursement %s: %w", b.Name, err)
			}
		}
		for _, tmp := range []string{plain + ".part", plain + ".screen"} {
			_ = os.Remove(tmp)
		}
	}
	if err := os.RemoveAll(s.outDir(b)); err != nil {
		return fmt.Errorf("disbursement %s: remove the bank files: %w", b.Name, err)
	}
	if err := s.dropSharedList(ctx, b); err != nil {
		return fmt.Errorf("disbursement %s: remove the shared list: %w", b.Name, err)
	}
	what := "list sealed"
	if s.sealer == nil {
		what = "list removed"
	}
	s.emit(monitor.Event{Type: monitor.StageChanged, Status: monitor.OK, BatchID: b.Name, Stage: StageDone, Flow: flowOf(b),
		Attrs: map[string]string{"detail": "retention: " + what + ", bank files removed"}})
	return nil
}

// sealFile writes the sealed form of src to dst (mode 0600, by rename).
func sealFile(sl Sealer, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".part", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 64<<10)
	err = writeSealed(sl, in, w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst + ".part")
		return err
	}
	return os.Rename(dst+".part", dst)
}

func writeSealed(sl Sealer, in io.Reader, w io.Writer) error {
	if _, err := io.WriteString(w, sealedMagic); err != nil {
		return err
	}
	buf := make([]byte, 9+sealChunk)
	next := make([]byte, sealChunk)
	n, rerr := io.ReadFull(in, next)
	for idx := uint64(0); ; idx++ {
		copy(buf[9:], next[:n])
		size := n
		var m int
		if rerr == nil {
			m, rerr = io.ReadFull(in, next)
		}
		final := rerr != nil && m == 0
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return rerr
		}
		binary.BigEndian.PutUint64(buf[:8], idx)
		buf[8] = 0
		if final {
			buf[8] = 1
		}
		sealed, err := sl.Seal(buf[:9+size])
		if err != nil {
			return err
		}
		var lb [4]byte
		binary.BigEndian.PutUint32(lb[:], uint32(len(sealed)))
		if _, err := w.Write(lb[:]); err != nil {
			return err
		}
		if _, err := w.Write(sealed); err != nil {
			return err
		}
		if final {
			return nil
		}
		n = m
	}
}

// sealedReader opens a sealed file chunk by chunk.
type sealedReader struct {
	s      Sealer
	r      *bufio.Reader
	magic  bool
	idx    uint64
	final  bool
	chunk  []byte
	closed error
}

func (sr *sealedReader) Read(p []byte) (int, error) {
	for len(sr.chunk) == 0 {
		if sr.closed != nil {
			return 0, sr.closed
		}
		if sr.final {
			sr.closed = io.EOF
			if _, err := sr.r.Peek(1); err == nil {
				sr.closed = fmt.Errorf("%w: data after the last chunk", ErrSealedList)
			}
			continue
		}
		if err := sr.next(); err != nil {
			sr.closed = fmt.Errorf("%w: %w", ErrSealedList, err)
		}
	}
	n := copy(p, sr.chunk)
	sr.chunk = sr.chunk[n:]
	return n, nil
}

func (sr *sealedReader) next() error {
	if !sr.magic {
		m := make([]byte, len(sealedMagic))
		if _, err := io.ReadFull(sr.r, m); err != nil || string(m) != sealedMagic {
			return errors.New("not a sealed file")
		}
		sr.magic = true
	}
	var lb [4]byte
	if _, err := io.ReadFull(sr.r, lb[:]); err != nil {
		return fmt.Errorf("cut before its last chunk: %w", err)
	}
	l := binary.BigEndian.Uint32(lb[:])
	if l > sealChunk+1024 {
		return fmt.Errorf("chunk of %d bytes", l)
	}
	sealed := make([]byte, l)
	if _, err := io.ReadFull(sr.r, sealed); err != nil {
		return fmt.Errorf("chunk %d cut: %w", sr.idx, err)
	}
	pt, err := sr.s.Open(sealed)
	if err != nil {
		return fmt.Errorf("chunk %d: %w", sr.idx, err)
	}
	if len(pt) < 9 || binary.BigEndian.Uint64(pt[:8]) != sr.idx {
		return fmt.Errorf("chunk %d out of order", sr.idx)
	}
	sr.idx++
	sr.final = pt[8] == 1
	sr.chunk = pt[9:]
	return nil
}

// takeFromInbox removes a list taken in from the inbox: the batch has its
// own copy, and personal data is not left behind in the drop folder. A
// list given from elsewhere (the CLI's --list) is the caller's and stays.
func (s *Service) takeFromInbox(p string) {
	if isUnder(p, s.InboxDir()) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("disbursement: remove the list from the inbox", "list", filepath.Base(p), "err", err)
		}
	}
}

// isUnder tells whether p is inside dir.
func isUnder(p, dir string) bool {
	ap, err1 := filepath.Abs(p)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}
