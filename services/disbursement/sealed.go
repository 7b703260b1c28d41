package disbursement

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// What the disbursement service keeps sealed, for `mzhub keys reencrypt`:
// the shared lists of queued batches (base64 text of envelopes, when
// sealed is 1) and the sealed list files of closed batches.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "disb_lists", Key: []string{"batch_id", "chunk"}, Column: "body", Guard: "sealed", Codec: sharedChunk64{}})
	fieldcrypt.Register(SealedFiles{})
}

type sharedChunk64 struct{}

func (sharedChunk64) decode(sealed, v []byte) ([]byte, error) {
	if strings.TrimSpace(string(sealed)) != "1" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil {
		return nil, fmt.Errorf("disbursement: shared list chunk: %w", err)
	}
	if fieldcrypt.SealedKID(b) == "" {
		return nil, fmt.Errorf("disbursement: shared list chunk: %w", fieldcrypt.ErrCiphertext)
	}
	return b, nil
}

func (c sharedChunk64) KIDs(sealed, v []byte) ([]string, error) {
	b, err := c.decode(sealed, v)
	if err != nil || b == nil {
		return nil, err
	}
	return []string{fieldcrypt.SealedKID(b)}, nil
}

func (c sharedChunk64) Open(r *fieldcrypt.Ring, sealed, v []byte) error {
	b, err := c.decode(sealed, v)
	if err == nil && b != nil {
		_, err = r.Open(b)
	}
	return err
}

func (c sharedChunk64) Reseal(r *fieldcrypt.Ring, sealed, v []byte) ([]byte, error) {
	b, err := c.decode(sealed, v)
	if err != nil || b == nil {
		return v, err
	}
	nb, _, err := r.Reseal(b)
	if err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(nb)), nil
}

// SealedFiles is the fieldcrypt.Target of the sealed list files
// ("*.sealed" starting with the sealed-file magic) under the place's
// directories. Each chunk counts as one value.
type SealedFiles struct{}

func (SealedFiles) String() string { return "files *.sealed (disbursement lists)" }

// each calls fn for every sealed file under the place's directories, once
// each even when the directories nest.
func (SealedFiles) each(at fieldcrypt.Place, fn func(path string) error) error {
	seen := map[string]bool{}
	for _, dir := range at.Dirs {
		if dir == "" {
			continue
		}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".sealed") || !d.Type().IsRegular() || seen[p] {
				return nil
			}
			seen[p] = true
			ok, err := isSealedFile(p)
			if err != nil || !ok {
				return err
			}
			return fn(p)
		})
		if err != nil {
			return fmt.Errorf("disbursement: sealed files under %s: %w", dir, err)
		}
	}
	return nil
}

func isSealedFile(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	m := make([]byte, len(sealedMagic))
	if _, err := io.ReadFull(f, m); err != nil {
		return false, nil
	}
	return string(m) == sealedMagic, nil
}

// chunkKIDs returns the key id of each chunk of a sealed file, without
// opening them.
func chunkKIDs(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	if _, err := r.Discard(len(sealedMagic)); err != nil {
		return nil, err
	}
	var kids []string
	for {
		var lb [4]byte
		if _, err := io.ReadFull(r, lb[:]); errors.Is(err, io.EOF) {
			return kids, nil
		} else if err != nil {
			return kids, fmt.Errorf("%s: cut: %w", filepath.Base(p), err)
		}
		l := int(binary.BigEndian.Uint32(lb[:]))
		if l > sealChunk+1024 || l < 2 {
			return kids, fmt.Errorf("%s: chunk of %d bytes", filepath.Base(p), l)
		}
		head, err := r.Peek(min(l, 2+255))
		if err != nil {
			return kids, fmt.Errorf("%s: cut: %w", filepath.Base(p), err)
		}
		kid := fieldcrypt.SealedKID(head)
		if kid == "" {
			return kids, fmt.Errorf("%s: %w", filepath.Base(p), fieldcrypt.ErrCiphertext)
		}
		kids = append(kids, kid)
		if _, err := r.Discard(l); err != nil {
			return kids, fmt.Errorf("%s: cut: %w", filepath.Base(p), err)
		}
	}
}

// Inventory counts the chunks of the sealed files by key id; with a ring,
// a file whose chunks do not all open with it counts once as unreadable.
func (s SealedFiles) Inventory(_ context.Context, at fieldcrypt.Place, open *fieldcrypt.Ring) (fieldcrypt.Inventory, error) {
	inv := fieldcrypt.Inventory{}
	err := s.each(at, func(p string) error {
		kids, err := chunkKIDs(p)
		if err == nil && open != nil {
			err = readSealedFile(open, p)
		}
		if err != nil {
			inv[fieldcrypt.Unreadable]++
			return nil
		}
		for _, k := range kids {
			inv[k]++
		}
		return nil
	})
	return inv, err
}

// Move seals again, under the active key, every file with a chunk under
// another key: the new file is written beside it (mode 0600), synced and
// renamed over it, so a stop half-way leaves the old file whole and a
// reader never sees a mix. A file that cannot be opened is left as it is.
func (s SealedFiles) Move(ctx context.Context, at fieldcrypt.Place, r *fieldcrypt.Ring) (fieldcrypt.Moved, error) {
	var m fieldcrypt.Moved
	fail := func(err error) {
		m.Failed++
		if m.Err == nil {
			m.Err = err
		}
	}
	err := s.each(at, func(p string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		kids, err := chunkKIDs(p)
		if err != nil {
			fail(err)
			return nil
		}
		stale := false
		for _, k := range kids {
			stale = stale || k != r.ActiveKID()
		}
		if !stale {
			return nil
		}
		if err := resealFile(r, p); err != nil {
			fail(fmt.Errorf("%s: %w", filepath.Base(p), err))
			return nil
		}
		m.Values += int64(len(kids))
		return nil
	})
	return m, err
}

// readSealedFile opens every chunk of a sealed file with r.
func readSealedFile(r *fieldcrypt.Ring, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, &sealedReader{s: r, r: bufio.NewReaderSize(f, 64<<10)})
	return err
}

func resealFile(r *fieldcrypt.Ring, p string) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := p + ".reseal"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 64<<10)
	err = writeSealed(r, &sealedReader{s: r, r: bufio.NewReaderSize(in, 64<<10)}, w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
