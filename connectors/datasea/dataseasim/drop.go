package dataseasim

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/connectors/sftp/sftptest"
)

// DropDir is the folder of the SFTP drop the platform writes its batch
// files to (the hub's datasea.sftp.poll_dir).
const DropDir = "out"

// dropUser is the hub's login on the simulated drop.
const dropUser = "mca"

// StartDrop serves the platform's SFTP drop from root: an in-process SFTP
// server (sftptest) on 127.0.0.1 with a random password, closed by Close.
// DropDay writes batch files into it; DropConfig is the hub's
// datasea.sftp reaching it.
func (s *Sim) StartDrop(root string) error {
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	srv, err := sftptest.Start(root, dropUser, hex.EncodeToString(pw))
	if err != nil {
		return fmt.Errorf("datasea drop: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, DropDir), 0o750); err != nil {
		_ = srv.Close()
		return err
	}
	s.mu.Lock()
	s.drop, s.dropPassword = srv, hex.EncodeToString(pw)
	s.mu.Unlock()
	return nil
}

// DropConfig returns the hub's datasea.sftp for the started drop: the
// defaults with its address, login, pinned host key and DropDir.
func (s *Sim) DropConfig() sftp.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := sftp.DefaultConfig()
	if s.drop == nil {
		return c
	}
	c.Addr, c.User, c.Password, c.HostKeyFingerprint = s.drop.Addr(), dropUser, s.dropPassword, s.drop.Fingerprint()
	c.PollDir = DropDir
	return c
}

// DropRoot returns the folder the started drop serves ("" before StartDrop).
func (s *Sim) DropRoot() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drop == nil {
		return ""
	}
	return s.drop.Root()
}

// DropDay writes the batch files of day (YYYY-MM-DD) into the drop as the
// platform does: DEATH_YYYYMMDD.txt with the deaths of recs and
// MIGRATION_YYYYMMDD.txt with the moves (GB18030, datasea.WriteFile; a
// file with no record is not written), each complete before its done file
// (record count = lines, bytes, SM3) appears. bad are raw lines, malformed
// on purpose, appended to the death file and counted in its done file.
func (s *Sim) DropDay(day string, recs []datasea.Record, bad ...string) error {
	root := s.DropRoot()
	if root == "" {
		return errors.New("datasea drop: not started")
	}
	stamp := strings.ReplaceAll(day, "-", "")
	var deaths, moves []datasea.Record
	for _, r := range recs {
		if datasea.FeedOf(r.Kind) == "death" {
			deaths = append(deaths, r)
		} else {
			moves = append(moves, r)
		}
	}
	for _, f := range []struct {
		name string
		recs []datasea.Record
		bad  []string
	}{{"DEATH_" + stamp + ".txt", deaths, bad}, {"MIGRATION_" + stamp + ".txt", moves, nil}} {
		if len(f.recs)+len(f.bad) == 0 {
			continue
		}
		var b bytes.Buffer
		if err := datasea.WriteFile(&b, f.recs); err != nil {
			return err
		}
		for _, l := range f.bad {
			enc, err := simplifiedchinese.GB18030.NewEncoder().String(l + "\n")
			if err != nil {
				return err
			}
			b.WriteString(enc)
		}
		if err := WriteBatch(filepath.Join(root, DropDir), f.name, b.Bytes(), int64(len(f.recs)+len(f.bad))); err != nil {
			return err
		}
		s.mu.Lock()
		s.dropped += len(f.recs)
		s.droppedBad += len(f.bad)
		s.mu.Unlock()
	}
	return nil
}

// Dropped returns the number of good records DropDay wrote so far.
func (s *Sim) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// DroppedBad returns the number of malformed lines DropDay wrote so far.
func (s *Sim) DroppedBad() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.droppedBad
}

// WriteBatch writes one batch file into dir as the platform does: the data
// under a temporary name renamed into place, then its done file counting
// records (tests pass a wrong count to see the file refused).
func WriteBatch(dir, name string, data []byte, records int64) error {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p+".part", data, 0o640); err != nil {
		return err
	}
	if err := os.Rename(p+".part", p); err != nil {
		return err
	}
	digest, n, err := sftp.DigestFile(p)
	if err != nil {
		return err
	}
	done := sftp.DoneInfo{File: name, Bytes: n, Records: records, SM3: digest}
	if err := os.WriteFile(p+".done.part", done.Marshal(), 0o640); err != nil {
		return err
	}
	return os.Rename(p+".done.part", p+".done")
}
