// Package sftptest is an in-process SFTP server (pkg/sftp request server
// over golang.org/x/crypto/ssh) on 127.0.0.1, serving one local directory.
// Tests and the bank simulators use it; it can inject the faults of a bad
// partner: refused logins, a connection dropped mid-transfer, stalled reads.
package sftptest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Faults are switched on and off by tests while the server runs.
type Faults struct {
	// RefuseLogin makes every authentication fail.
	RefuseLogin atomic.Bool
	// DropAfterBytes, when positive, cuts the connection once a single file
	// transfer (read or write) has moved that many bytes; it then resets to 0
	// (one-shot).
	DropAfterBytes atomic.Int64
	// StallReads makes file transfers (reads and writes) block until the
	// connection is closed or Unstall is called.
	StallReads atomic.Bool

	mu      sync.Mutex
	unstall chan struct{}
	stalled chan struct{} // closed by the first transfer that stalls
	isStall bool          // stalled is closed
	pattern string
}

// Stalled returns a channel that is closed once a file transfer is blocked
// by StallReads: a test waits on it to act while the transfer is in flight
// (kill the client, time it out) instead of sleeping. Unstall starts a new
// round: Stalled then returns a channel for the next stall.
func (f *Faults) Stalled() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == nil {
		f.stalled = make(chan struct{})
	}
	return f.stalled
}

// markStalled closes the Stalled channel of this round.
func (f *Faults) markStalled() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == nil {
		f.stalled = make(chan struct{})
	}
	if !f.isStall {
		close(f.stalled)
		f.isStall = true
	}
}

// StallOnly limits StallReads to files whose base name matches the glob
// (empty: every file).
func (f *Faults) StallOnly(glob string) {
	f.mu.Lock()
	f.pattern = glob
	f.mu.Unlock()
}

func (f *Faults) stalls(name string) bool {
	if !f.StallReads.Load() {
		return false
	}
	f.mu.Lock()
	p := f.pattern
	f.mu.Unlock()
	if p == "" {
		return true
	}
	ok, _ := path.Match(p, path.Base(name))
	return ok
}

// Unstall releases stalled reads and switches StallReads off.
func (f *Faults) Unstall() {
	f.StallReads.Store(false)
	f.mu.Lock()
	if f.unstall != nil {
		close(f.unstall)
		f.unstall = nil
	}
	f.stalled, f.isStall = nil, false
	f.mu.Unlock()
}

func (f *Faults) stallChan() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unstall == nil {
		f.unstall = make(chan struct{})
	}
	return f.unstall
}

// Server is a running SFTP server.
type Server struct {
	// Faults injects partner faults.
	Faults Faults

	root     string
	user     string
	password string
	hostKey  ssh.Signer
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	keyMu    sync.Mutex
	keys     []ssh.PublicKey
	// Logins counts successful logins.
	Logins atomic.Int64
}

// Start serves root on 127.0.0.1 (a free port) for user/password.
func Start(root, user, password string) (*Server, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hk, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, user: user, password: password, hostKey: hk, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// AuthorizeKey lets the user log in with the private key of pub.
func (s *Server) AuthorizeKey(pub ssh.PublicKey) {
	s.keyMu.Lock()
	s.keys = append(s.keys, pub)
	s.keyMu.Unlock()
}

// HostKey is the server's public host key (for known_hosts files).
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Fingerprint is the SHA256 fingerprint of the host key, for pinning.
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.hostKey.PublicKey()) }

// Root is the served directory.
func (s *Server) Root() string { return s.root }

// DropConnections cuts every open connection (a network fault).
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	s.DropConnections()
	s.Faults.Unstall()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if s.Faults.RefuseLogin.Load() || c.User() != s.user || string(pw) != s.password {
				return nil, errors.New("access denied")
			}
			return nil, nil
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.keyMu.Lock()
			defer s.keyMu.Unlock()
			if !s.Faults.RefuseLogin.Load() && c.User() == s.user {
				for _, k := range s.keys {
					if bytes.Equal(k.Marshal(), key.Marshal()) {
						return nil, nil
					}
				}
			}
			return nil, errors.New("access denied")
		},
	}
	cfg.AddHostKey(s.hostKey)
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				_ = nc.Close()
			}()
			s.serveConn(nc, cfg)
		}()
	}
}

func (s *Server) serveConn(nc net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.Logins.Add(1)
	go ssh.DiscardRequests(reqs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range chReqs {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if !ok {
					continue
				}
				h := &handler{s: s, nc: nc, ctx: ctx}
				rs := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
				go func() {
					<-ctx.Done()
					_ = rs.Close()
				}()
				_ = rs.Serve()
				_ = rs.Close()
				cancel()
				return
			}
		}()
	}
	cancel()
}

// handler serves the root directory; every path is confined to it.
type handler struct {
	s   *Server
	nc  net.Conn
	ctx context.Context
}

func (h *handler) local(p string) string {
	return filepath.Join(h.s.root, filepath.FromSlash(path.Clean("/"+p)))
}

func (h *handler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	f, err := os.Open(h.local(r.Filepath))
	if err != nil {
		return nil, err
	}
	return &faultFile{h: h, f: f, name: r.Filepath}, nil
}

func (h *handler) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if r.Pflags().Trunc {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(h.local(r.Filepath), flags, 0o640)
	if err != nil {
		return nil, err
	}
	return &faultFile{h: h, f: f, name: r.Filepath}, nil
}

func (h *handler) Filecmd(r *sftp.Request) error {
	p := h.local(r.Filepath)
	switch r.Method {
	case "Rename":
		if _, err := os.Stat(h.local(r.Target)); err == nil {
			return os.ErrExist
		}
		return os.Rename(p, h.local(r.Target))
	case "Remove":
		return os.Remove(p)
	case "Rmdir":
		return os.Remove(p)
	case "Mkdir":
		return os.Mkdir(p, 0o750)
	case "Setstat":
		return nil
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename replaces the target.
func (h *handler) PosixRename(r *sftp.Request) error {
	return os.Rename(h.local(r.Filepath), h.local(r.Target))
}

func (h *handler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := h.local(r.Filepath)
	switch r.Method {
	case "List":
		es, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		out := make([]os.FileInfo, 0, len(es))
		for _, e := range es {
			if fi, err := e.Info(); err == nil {
				out = append(out, fi)
			}
		}
		return lister(out), nil
	case "Stat", "Lstat":
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

type lister []os.FileInfo

func (l lister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// faultFile is an open file that applies the server's faults.
type faultFile struct {
	h     *handler
	f     *os.File
	name  string
	moved atomic.Int64
}

func (ff *faultFile) fault(n int) error {
	fs := &ff.h.s.Faults
	if fs.stalls(ff.name) {
		release := fs.stallChan()
		fs.markStalled()
		select {
		case <-release:
		case <-ff.h.ctx.Done():
			return errors.New("connection closed")
		}
	}
	total := ff.moved.Add(int64(n))
	if lim := fs.DropAfterBytes.Load(); lim > 0 && total >= lim && fs.DropAfterBytes.CompareAndSwap(lim, 0) {
		_ = ff.h.nc.Close()
		return fmt.Errorf("connection dropped")
	}
	return nil
}

func (ff *faultFile) ReadAt(b []byte, off int64) (int, error) {
	if err := ff.fault(0); err != nil {
		return 0, err
	}
	n, err := ff.f.ReadAt(b, off)
	if ferr := ff.fault(n); ferr != nil {
		return 0, ferr
	}
	return n, err
}

func (ff *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := ff.fault(len(b)); err != nil {
		return 0, err
	}
	return ff.f.WriteAt(b, off)
}

func (ff *faultFile) Close() error { return ff.f.Close() }
