package sftp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Outbound describes a local file to send.
type Outbound struct {
	// LocalPath is the complete local file.
	LocalPath string
	// Name is the remote base name (in UploadDir).
	Name string
	// Records and TotalFen go into the done file.
	Records, TotalFen int64
	// BatchID and Stage place the monitor events in a batch.
	BatchID, Stage string
}

// Uploaded tells what Upload did.
type Uploaded struct {
	// RemotePath is the final remote path (versioned names differ from Name).
	RemotePath string
	// Digest is the hex SM3 digest; Bytes the size.
	Digest string
	Bytes  int64
	// AlreadySent is true when the ledger shows the same content was
	// delivered before: nothing was sent again.
	AlreadySent bool
}

// Upload sends a file: temporary name, rename, detached signature, done
// file. It is resumable: after a crash at any point, calling it again with
// the same file finishes the delivery without the partner ever seeing the
// file twice (the partner takes a file only once its done file is there).
func (c *Client) Upload(ctx context.Context, o Outbound) (Uploaded, error) {
	if c.ledger == nil {
		return Uploaded{}, fmt.Errorf("sftp %s: upload %s: no state store", c.partner, o.Name)
	}
	start := time.Now()
	digest, size, err := DigestFile(o.LocalPath)
	if err != nil {
		return Uploaded{}, fmt.Errorf("sftp %s: upload %s: %w", c.partner, o.Name, err)
	}
	ev := monitor.Event{Direction: monitor.Outbound, BatchID: o.BatchID, Stage: o.Stage, FileName: o.Name,
		Digest: digest, Bytes: size, Records: o.Records, AmountFen: o.TotalFen, ExchangeID: c.partner + ":" + o.Name}
	fail := func(err error) (Uploaded, error) {
		e := ev
		e.Type, e.Status, e.ErrorClass, e.ErrorMessage = monitor.Failed, monitor.Error, "upload", err.Error()
		c.emit(e)
		return Uploaded{}, fmt.Errorf("sftp %s: upload %s: %w", c.partner, o.Name, err)
	}
	row, known, err := c.ledger.upload(ctx, c.partner, o.Name)
	if err != nil {
		return fail(err)
	}
	if known && row.digest == digest && row.state == upDone {
		return Uploaded{RemotePath: row.remotePath, Digest: digest, Bytes: size, AlreadySent: true}, nil
	}
	resume := known && row.digest == digest
	target := path.Join(c.cfg.UploadDir, o.Name)
	if resume {
		target = row.remotePath
	} else {
		target, err = c.chooseTarget(ctx, target)
		if err != nil {
			return fail(err)
		}
		row = uploadRow{remotePath: target, digest: digest, bytes: size, state: upStarted}
		if err := c.ledger.setUpload(ctx, c.partner, o.Name, row); err != nil {
			return fail(err)
		}
	}
	ev.FileName = path.Base(target)

	if row.state == upStarted {
		attempt := 0
		err := c.retry(ctx, "upload", ev, func(a int) error {
			attempt = a
			return c.do(ctx, func(cn *conn) error { return c.putData(cn, o.LocalPath, target, size, resume) })
		})
		if err != nil {
			return fail(err)
		}
		ev.Attempt = attempt
		row.state = upRenamed
		if err := c.ledger.setUpload(ctx, c.partner, o.Name, row); err != nil {
			return fail(err)
		}
	}
	if c.keys.Signer != nil {
		sig, err := signFile(c.keys.Signer, o.LocalPath)
		if err != nil {
			return fail(fmt.Errorf("sign: %w", err))
		}
		if err := c.retry(ctx, "signature", ev, func(int) error {
			return c.do(ctx, func(cn *conn) error { return c.putSmall(cn, target+c.cfg.SigSuffix, sig) })
		}); err != nil {
			return fail(err)
		}
	}
	done := DoneInfo{File: path.Base(target), Bytes: size, Records: o.Records, TotalFen: o.TotalFen, SM3: digest}
	if err := c.retry(ctx, "done file", ev, func(int) error {
		return c.do(ctx, func(cn *conn) error { return c.putSmall(cn, target+c.cfg.DoneSuffix, done.Marshal()) })
	}); err != nil {
		return fail(err)
	}
	row.state = upDone
	if err := c.ledger.setUpload(ctx, c.partner, o.Name, row); err != nil {
		return fail(err)
	}
	ev.Type, ev.Status, ev.Duration = monitor.Uploaded, monitor.OK, time.Since(start)
	c.emit(ev)
	c.log.Info("sftp uploaded", "file", path.Base(target), "bytes", size, "records", o.Records)
	return Uploaded{RemotePath: target, Digest: digest, Bytes: size}, nil
}

// chooseTarget applies the file_exists policy to a new upload.
func (c *Client) chooseTarget(ctx context.Context, target string) (string, error) {
	var out string
	err := c.retry(ctx, "stat", monitor.Event{Direction: monitor.Outbound, FileName: path.Base(target)}, func(int) error {
		return c.do(ctx, func(cn *conn) error {
			cand := target
			ext := path.Ext(target)
			stem := strings.TrimSuffix(target, ext)
			for v := 2; ; v++ {
				exists, err := remoteExists(cn.sftp, cand)
				if err != nil {
					return err
				}
				if !exists {
					if done, err := remoteExists(cn.sftp, cand+c.cfg.DoneSuffix); err != nil || !done {
						out = cand
						return err
					}
				}
				switch c.cfg.FileExists {
				case ExistsFail:
					return fmt.Errorf("%w: %s", ErrExists, cand)
				case ExistsOverwrite:
					out = cand
					return nil
				}
				cand = fmt.Sprintf("%s_v%d%s", stem, v, ext)
			}
		})
	})
	return out, err
}

func remoteExists(sc *sftp.Client, p string) (bool, error) {
	_, err := sc.Stat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// putData writes the data file under the temporary name and renames it. A
// resumed upload whose final file is already complete skips the copy.
func (c *Client) putData(cn *conn, local, target string, size int64, resume bool) error {
	if resume {
		if fi, err := cn.sftp.Stat(target); err == nil && fi.Size() == size {
			return nil // renamed before the crash; no done file yet, so unseen
		}
	}
	// An overwrite must not leave the old done file beside new data.
	for _, p := range []string{target + c.cfg.DoneSuffix, target + c.cfg.SigSuffix} {
		if err := cn.sftp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", path.Base(p), err)
		}
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp := target + c.cfg.TempSuffix
	rf, err := cn.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("open %s: %w", path.Base(tmp), err)
	}
	if _, err := rf.ReadFrom(progressReader{r: f, cn: cn, size: size}); err != nil {
		_ = rf.Close()
		return fmt.Errorf("write %s: %w", path.Base(tmp), err)
	}
	if err := rf.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path.Base(tmp), err)
	}
	cn.touch()
	fi, err := cn.sftp.Stat(tmp)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path.Base(tmp), err)
	}
	if fi.Size() != size {
		return fmt.Errorf("upload %s: remote has %d bytes, sent %d", path.Base(tmp), fi.Size(), size)
	}
	return rename(cn.sftp, tmp, target)
}

// signFile signs a local file; the signature file holds base64 text of the
// DER signature on one line.
func signFile(s Signer, p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	der, err := s.Sign(f)
	if err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(der) + "\n"), nil
}

// putSmall writes a small file atomically (temporary name, rename).
func (c *Client) putSmall(cn *conn, target string, data []byte) error {
	tmp := target + c.cfg.TempSuffix
	f, err := cn.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("open %s: %w", path.Base(tmp), err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path.Base(tmp), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path.Base(tmp), err)
	}
	return rename(cn.sftp, tmp, target)
}

// rename moves from to to, replacing to (POSIX rename when the server
// offers it).
func rename(sc *sftp.Client, from, to string) error {
	if err := sc.PosixRename(from, to); err == nil {
		return nil
	}
	if err := sc.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rename %s: %w", path.Base(from), err)
	}
	if err := sc.Rename(from, to); err != nil {
		return fmt.Errorf("rename %s: %w", path.Base(from), err)
	}
	return nil
}
