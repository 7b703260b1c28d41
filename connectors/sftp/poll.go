package sftp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Inbound is a file fetched from the partner and claimed for processing.
type Inbound struct {
	// RemotePath is where the file was picked up.
	RemotePath string
	// LocalPath is the complete local copy (valid during the handler).
	LocalPath string
	// Bytes and Digest (hex SM3) identify the content.
	Bytes  int64
	Digest string
	// Done is the partner's done file, nil when the file was picked by stable size.
	Done *DoneInfo
}

// Handler processes one inbound file. It must be idempotent: after a crash
// the same file is handed over again. A nil return moves the file to
// processed/, an error to failed/.
type Handler func(ctx context.Context, f Inbound) error

// PollResult counts what one poll pass did.
type PollResult struct {
	Processed, Failed, Rejected, Duplicates, Waiting int
}

// PollOptions narrow a poll pass and place it in a batch (monitor events).
type PollOptions struct {
	// BatchID and Stage go into the monitor events.
	BatchID, Stage string
	// Include, when set, further restricts the pass to names matching one
	// of these globs (e.g. the returns of one batch).
	Include []string
}

// Poll makes one pass over PollDir: it picks the ready files in name order,
// downloads, claims, verifies and hands each to h. Errors of single files
// are counted and reported in events; the returned error is for faults
// that stopped the pass (listing failed, ctx done).
func (c *Client) Poll(ctx context.Context, opt PollOptions, h Handler) (PollResult, error) {
	var res PollResult
	if c.ledger == nil {
		return res, fmt.Errorf("sftp %s: poll: no state store", c.partner)
	}
	type entry struct {
		name string
		size int64
	}
	var files []entry
	names := map[string]bool{}
	ev := monitor.Event{Direction: monitor.Inbound, BatchID: opt.BatchID, Stage: opt.Stage}
	err := c.retry(ctx, "list", ev, func(int) error {
		files, names = files[:0], map[string]bool{}
		return c.do(ctx, func(cn *conn) error {
			fis, err := cn.sftp.ReadDir(c.cfg.PollDir)
			if err != nil {
				return fmt.Errorf("list %s: %w", c.cfg.PollDir, err)
			}
			for _, fi := range fis {
				if fi.Mode().IsRegular() {
					names[fi.Name()] = true
					files = append(files, entry{fi.Name(), fi.Size()})
				}
			}
			return nil
		})
	})
	if err != nil {
		return res, fmt.Errorf("sftp %s: poll: %w", c.partner, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	now := c.deps.Clock.Now()
	for _, f := range files {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if !c.wanted(f.name) || !matchAny(opt.Include, f.name) {
			continue
		}
		hasDone := names[f.name+c.cfg.DoneSuffix]
		if !hasDone {
			if c.cfg.RequireDone || !c.stable(f.name, f.size, now) {
				res.Waiting++
				continue
			}
		}
		outcome, err := c.fetchOne(ctx, opt, f.name, hasDone, names[f.name+c.cfg.SigSuffix], h)
		if err != nil && ctx.Err() != nil {
			return res, ctx.Err()
		}
		switch outcome {
		case ClaimProcessed:
			res.Processed++
		case ClaimFailed:
			res.Failed++
		case ClaimRejected:
			res.Rejected++
		case "duplicate":
			res.Duplicates++
		default:
			res.Waiting++
		}
		if err != nil {
			c.log.Warn("sftp inbound file", "file", f.name, "outcome", outcome, "err", err)
		}
	}
	return res, nil
}

// Run polls every interval until ctx is done.
func (c *Client) Run(ctx context.Context, interval time.Duration, opt PollOptions, h Handler) error {
	for {
		if _, err := c.Poll(ctx, opt, h); err != nil && ctx.Err() == nil {
			c.log.Warn("sftp poll", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.deps.Clock.After(interval):
		}
	}
}

// matchAny tells whether name matches one of globs; no globs match all.
func matchAny(globs []string, name string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

func (c *Client) wanted(name string) bool {
	for _, s := range []string{c.cfg.TempSuffix, c.cfg.DoneSuffix, c.cfg.SigSuffix} {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	for _, g := range c.cfg.Exclude {
		if ok, _ := path.Match(g, name); ok {
			return false
		}
	}
	return matchAny(c.cfg.Include, name)
}

// stable tells whether a file without done file kept its size for StableFor.
func (c *Client) stable(name string, size int64, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, seen := c.observed[name]
	if !seen || o.size != size {
		c.observed[name] = observation{size: size, since: now}
		return false
	}
	return now.Sub(o.since) >= c.cfg.StableFor
}

// doneWaitOver tells whether the done file of name has failed to parse
// for done_wait, counting from the first poll that saw it so.
func (c *Client) doneWaitOver(name string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first, seen := c.badDone[name]
	if !seen {
		c.badDone[name] = now
		return c.cfg.DoneWait <= 0
	}
	return now.Sub(first) >= c.cfg.DoneWait
}

// doneParsed forgets name's unparsable done file.
func (c *Client) doneParsed(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.badDone, name)
}

// fetchOne handles one ready file and returns its outcome: a claim state,
// "duplicate" or "" (left for later).
func (c *Client) fetchOne(ctx context.Context, opt PollOptions, name string, hasDone, hasSig bool, h Handler) (string, error) {
	start := time.Now()
	remote := path.Join(c.cfg.PollDir, name)
	ev := monitor.Event{Direction: monitor.Inbound, BatchID: opt.BatchID, Stage: opt.Stage, FileName: name,
		ExchangeID: c.partner + ":" + remote}
	var done *DoneInfo
	var sig []byte
	doneSize := -1
	if hasDone || hasSig {
		err := c.retry(ctx, "read done", ev, func(int) error {
			return c.do(ctx, func(cn *conn) error {
				if hasDone {
					b, err := readSmall(cn, remote+c.cfg.DoneSuffix)
					if err != nil {
						return err
					}
					doneSize = len(b)
					d, err := ParseDone(b)
					if err != nil {
						return err
					}
					done = &d
				}
				if hasSig {
					b, err := readSmall(cn, remote+c.cfg.SigSuffix)
					if err != nil {
						return err
					}
					sig = b
				}
				return nil
			})
		})
		if errors.Is(err, ErrDoneFile) {
			// A done file caught while the partner still writes it reads
			// as incomplete: the data file waits, and the done file is
			// read again on the next polls for done_wait before the data
			// file is refused.
			if !c.doneWaitOver(name, c.deps.Clock.Now()) {
				c.log.Debug("sftp: done file does not parse yet; retried on the next poll", "file", name, "bytes", doneSize, "err", err)
				return "", nil
			}
			c.doneParsed(name)
			return c.reject(ctx, ev, ClaimKey{Partner: c.partner, Path: remote, Digest: "bad-done"},
				fmt.Errorf("%w (still after %s)", err, c.cfg.DoneWait))
		}
		if err == nil {
			c.doneParsed(name)
		}
		if err != nil {
			return "", err
		}
	}
	// With a done file the content is known before the download: a file
	// already processed is only moved away again.
	if done != nil {
		k := ClaimKey{Partner: c.partner, Path: remote, Bytes: done.Bytes, Digest: done.SM3}
		if st, err := c.ledger.State(ctx, k); err != nil {
			return "", err
		} else if st != "" && st != ClaimClaimed {
			return c.duplicate(ctx, ev, remote, st)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.localDir(), ".incoming"), 0o700); err != nil {
		return "", err
	}
	tmp := filepath.Join(c.localDir(), ".incoming", name+".part")
	var digest string
	var size int64
	attempts := 0
	err := c.retry(ctx, "download", ev, func(a int) error {
		attempts = a
		return c.do(ctx, func(cn *conn) error {
			var err error
			digest, size, err = download(cn, remote, tmp)
			return err
		})
	})
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	ev.Digest, ev.Bytes, ev.Attempt = digest, size, attempts
	k := ClaimKey{Partner: c.partner, Path: remote, Bytes: size, Digest: digest}
	if done != nil {
		ev.Records, ev.AmountFen = done.Records, done.TotalFen
		if done.SM3 != digest || (done.Bytes > 0 && done.Bytes != size) {
			_ = os.Remove(tmp)
			return c.reject(ctx, ev, k, fmt.Errorf("%w: done file says %d bytes sm3 %s…, got %d bytes sm3 %s…",
				ErrDigest, done.Bytes, done.SM3[:8], size, digest[:8]))
		}
	}
	if c.keys.Verifier != nil && (sig != nil || c.cfg.RequireSignature) {
		if sig == nil || verifyFile(c.keys.Verifier, tmp, sig) != nil {
			_ = os.Remove(tmp)
			return c.reject(ctx, ev, k, fmt.Errorf("%w: %s", ErrSignature, name))
		}
	} else if c.cfg.RequireSignature {
		_ = os.Remove(tmp)
		return c.reject(ctx, ev, k, fmt.Errorf("%w: no verifier for %s", ErrSignature, name))
	}
	e := ev
	e.Type, e.Status, e.Duration = monitor.Downloaded, monitor.OK, time.Since(start)
	c.emit(e)

	ok, st, err := c.ledger.Claim(ctx, k, c.cfg.Node, c.cfg.ClaimLease)
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if !ok {
		_ = os.Remove(tmp)
		if st == ClaimClaimed {
			return "", nil // another replica is on it
		}
		return c.duplicate(ctx, ev, remote, st)
	}
	e = ev
	e.Type, e.Status = monitor.Claimed, monitor.OK
	c.emit(e)

	local := filepath.Join(c.localDir(), name)
	if err := os.Rename(tmp, local); err != nil {
		return "", err
	}
	herr := h(ctx, Inbound{RemotePath: remote, LocalPath: local, Bytes: size, Digest: digest, Done: done})
	if herr != nil && (ctx.Err() != nil || errors.Is(herr, ErrRetry)) {
		// Stopping, or a transient fault: the claim stays ours and the
		// file is handed over again on the next pass.
		_ = os.Remove(local)
		e = ev
		e.Type, e.Status, e.ErrorClass, e.ErrorMessage = monitor.Retried, monitor.Warning, "handler", herr.Error()
		c.emit(e)
		return "", herr
	}
	state, dir := ClaimProcessed, c.cfg.ProcessedDir
	detail := ""
	if herr != nil {
		state, dir, detail = ClaimFailed, c.cfg.FailedDir, herr.Error()
	}
	if err := c.ledger.Finish(ctx, k, c.cfg.Node, state, detail); err != nil {
		return "", err
	}
	if err := c.moveAway(ctx, ev, remote, local, dir); err != nil {
		c.log.Warn("sftp move", "file", name, "err", err)
	}
	if herr != nil {
		e = ev
		e.Type, e.Status, e.ErrorClass, e.ErrorMessage = monitor.Failed, monitor.Error, "handler", herr.Error()
		c.emit(e)
	}
	return state, herr
}

// reject records a file that failed its checks and moves it to failed/.
func (c *Client) reject(ctx context.Context, ev monitor.Event, k ClaimKey, why error) (string, error) {
	if st, err := c.ledger.State(ctx, k); err == nil && st == ClaimRejected {
		// Already rejected and reported: do not report it again on every poll.
		_ = c.moveAway(ctx, ev, k.Path, "", c.cfg.FailedDir)
		return ClaimRejected, why
	}
	if err := c.ledger.Finish(ctx, k, c.cfg.Node, ClaimRejected, why.Error()); err != nil {
		return "", err
	}
	ev.Type, ev.Status, ev.ErrorClass, ev.ErrorMessage = monitor.Rejected, monitor.Error, "integrity", why.Error()
	switch {
	case errors.Is(why, ErrDigest):
		ev.ErrorCode = "digest_mismatch"
	case errors.Is(why, ErrSignature):
		ev.ErrorCode = "bad_signature"
	case errors.Is(why, ErrDoneFile):
		ev.ErrorCode = "bad_done_file"
	}
	c.emit(ev)
	if err := c.moveAway(ctx, ev, k.Path, "", c.cfg.FailedDir); err != nil {
		c.log.Warn("sftp move", "file", path.Base(k.Path), "err", err)
	}
	return ClaimRejected, why
}

// duplicate reports a file whose content was already handled and moves it away.
func (c *Client) duplicate(ctx context.Context, ev monitor.Event, remote, state string) (string, error) {
	ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode = monitor.Dropped, monitor.Warning, "duplicate", "already_"+state
	c.emit(ev)
	dir := c.cfg.ProcessedDir
	if state != ClaimProcessed {
		dir = c.cfg.FailedDir
	}
	return "duplicate", c.moveAway(ctx, ev, remote, "", dir)
}

// moveAway moves a handled file (with its done and signature files) to dir:
// on the server for move_to remote, else the local copy.
func (c *Client) moveAway(ctx context.Context, ev monitor.Event, remote, local, dir string) error {
	if c.cfg.MoveTo == MoveLocal {
		if local == "" {
			return nil
		}
		d := filepath.Join(c.localDir(), dir)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		return os.Rename(local, filepath.Join(d, filepath.Base(local)))
	}
	if local != "" {
		_ = os.Remove(local)
	}
	dest := path.Join(path.Dir(remote), dir)
	return c.retry(ctx, "move", ev, func(int) error {
		return c.do(ctx, func(cn *conn) error {
			if err := cn.sftp.MkdirAll(dest); err != nil {
				return err
			}
			// A crash between these renames leaves a done file without
			// data; the next pass ignores it (no data file to pick).
			for _, s := range []string{"", c.cfg.SigSuffix, c.cfg.DoneSuffix} {
				if err := rename(cn.sftp, remote+s, path.Join(dest, path.Base(remote)+s)); err != nil && s == "" {
					if ok, _ := remoteExists(cn.sftp, remote); ok {
						return err
					}
				}
			}
			return nil
		})
	})
}

func (c *Client) localDir() string {
	if c.cfg.LocalDir != "" {
		return c.cfg.LocalDir
	}
	return filepath.Join(c.deps.DataDir, "sftp", strings.ReplaceAll(c.partner, "/", "_"))
}

func verifyFile(v Verifier, p string, sig []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return v.Verify(f, sig)
}

func readSmall(cn *conn, p string) ([]byte, error) {
	f, err := cn.sftp.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(progressReader{r: f, cn: cn}, 1<<20))
}

// download streams remote to local, returning the SM3 digest and size.
func download(cn *conn, remote, local string) (string, int64, error) {
	rf, err := cn.sftp.Open(remote)
	if err != nil {
		return "", 0, fmt.Errorf("open %s: %w", path.Base(remote), err)
	}
	defer rf.Close()
	lf, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // partner data: owner only
	if err != nil {
		return "", 0, err
	}
	h := sm3.New()
	n, err := rf.WriteTo(progressWriter{w: io.MultiWriter(lf, h), cn: cn})
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("download %s: %w", path.Base(remote), err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
