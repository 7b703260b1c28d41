package sftp

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// File-exists policies of an upload.
const (
	// ExistsFail refuses to overwrite a remote file of another content.
	ExistsFail = "fail"
	// ExistsOverwrite replaces it.
	ExistsOverwrite = "overwrite"
	// ExistsVersion uploads under the next free name NAME_v2.EXT, NAME_v3.EXT, ...
	ExistsVersion = "version"
)

// Where processed and failed inbound files are moved.
const (
	// MoveRemote renames the remote file into the remote processed/failed folder.
	MoveRemote = "remote"
	// MoveLocal leaves the remote file alone (the claim ledger remembers
	// it) and moves the local copy into the local processed/failed folder.
	MoveLocal = "local"
)

// Config configures one partner's SFTP endpoint and folders.
type Config struct {
	// Addr is host:port of the partner's SFTP server.
	Addr string `yaml:"addr"`
	// User is the SSH user name.
	User string `yaml:"user"`
	// Password authenticates the user when set (prefer a key).
	Password string `yaml:"password"`
	// PrivateKeyFile is a PEM private key that authenticates the user.
	PrivateKeyFile string `yaml:"private_key_file"`
	// KnownHostsFile pins the server's host key (OpenSSH known_hosts format).
	KnownHostsFile string `yaml:"known_hosts_file"`
	// HostKeyFingerprint pins the server's host key as "SHA256:..." (ssh-keygen -lf).
	HostKeyFingerprint string `yaml:"host_key_fingerprint"`
	// PoolSize is the number of SSH connections kept open to the partner.
	PoolSize int `yaml:"pool_size"`
	// DialTimeout bounds connecting and the SSH handshake.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// OpTimeout is the deadline of every operation; for transfers it is the
	// longest time without progress. A stalled connection is closed.
	OpTimeout time.Duration `yaml:"op_timeout"`
	// BreakerFailures is the number of consecutive failures that open the circuit breaker.
	BreakerFailures int `yaml:"breaker_failures"`
	// BreakerOpenFor is how long the open breaker refuses calls before probing again.
	BreakerOpenFor time.Duration `yaml:"breaker_open_for"`
	// Retries is the number of further attempts of a failed transfer.
	Retries int `yaml:"retries"`
	// RetryBackoff is the first pause between attempts (doubled each time, with jitter).
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// Node names this replica in the claim ledger (defaults to the host name).
	Node string `yaml:"node"`

	// UploadDir is the remote folder outbound files go to.
	UploadDir string `yaml:"upload_dir"`
	// TempSuffix marks a file that is still being written.
	TempSuffix string `yaml:"temp_suffix"`
	// DoneSuffix names the done file of a data file (NAME + suffix).
	DoneSuffix string `yaml:"done_suffix"`
	// SigSuffix names the detached SM2 signature of a data file (NAME + suffix).
	SigSuffix string `yaml:"sig_suffix"`
	// FileExists is the policy when an outbound name exists remotely: fail, overwrite or version.
	FileExists string `yaml:"file_exists"`

	// PollDir is the remote folder inbound files are picked up from.
	PollDir string `yaml:"poll_dir"`
	// Include lists glob patterns (path.Match) of file names to pick; empty means all.
	Include []string `yaml:"include"`
	// Exclude lists glob patterns of file names never to pick.
	Exclude []string `yaml:"exclude"`
	// RequireDone picks a file only once its done file exists; otherwise a
	// file without one is picked when its size is stable for StableFor.
	RequireDone bool `yaml:"require_done"`
	// StableFor is how long a file's size must stay unchanged before it is picked.
	StableFor time.Duration `yaml:"stable_for"`
	// DoneWait is how long a done file that does not parse (a partner still
	// writing it in place) is retried on the next polls, its data file left
	// waiting, before the data file is refused.
	DoneWait time.Duration `yaml:"done_wait"`
	// RequireSignature rejects inbound files without a valid detached signature.
	RequireSignature bool `yaml:"require_signature"`
	// MoveTo says where processed/failed files go: remote or local.
	MoveTo string `yaml:"move_to"`
	// ProcessedDir is the folder (relative to PollDir, or to LocalDir for local) of processed files.
	ProcessedDir string `yaml:"processed_dir"`
	// FailedDir is the folder of files whose processing failed.
	FailedDir string `yaml:"failed_dir"`
	// LocalDir is where inbound files are streamed to (default: <data dir>/sftp/<partner>).
	LocalDir string `yaml:"local_dir"`
	// ClaimLease is how long another replica's unfinished claim blocks a file.
	ClaimLease time.Duration `yaml:"claim_lease"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		PoolSize:        2,
		DialTimeout:     10 * time.Second,
		OpTimeout:       30 * time.Second,
		BreakerFailures: 5,
		BreakerOpenFor:  30 * time.Second,
		Retries:         3,
		RetryBackoff:    500 * time.Millisecond,
		UploadDir:       "upload",
		TempSuffix:      ".part",
		DoneSuffix:      ".done",
		SigSuffix:       ".sig",
		FileExists:      ExistsFail,
		PollDir:         "download",
		RequireDone:     true,
		StableFor:       30 * time.Second,
		DoneWait:        10 * time.Minute,
		MoveTo:          MoveRemote,
		ProcessedDir:    "processed",
		FailedDir:       "failed",
		ClaimLease:      10 * time.Minute,
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.Addr == "" {
		bad("addr: required (host:port)")
	}
	if c.User == "" {
		bad("user: required")
	}
	if c.Password == "" && c.PrivateKeyFile == "" {
		bad("password or private_key_file: one is required")
	}
	if c.KnownHostsFile == "" && c.HostKeyFingerprint == "" {
		bad("known_hosts_file or host_key_fingerprint: the host key must be pinned")
	}
	if c.HostKeyFingerprint != "" && !strings.HasPrefix(c.HostKeyFingerprint, "SHA256:") {
		bad("host_key_fingerprint: %q: want SHA256:...", c.HostKeyFingerprint)
	}
	if c.PoolSize < 1 {
		bad("pool_size: %d: want at least 1", c.PoolSize)
	}
	if c.DialTimeout <= 0 || c.OpTimeout <= 0 {
		bad("dial_timeout and op_timeout: must be positive")
	}
	if c.BreakerFailures < 1 {
		bad("breaker_failures: %d: want at least 1", c.BreakerFailures)
	}
	if c.Retries < 0 {
		bad("retries: %d: must not be negative", c.Retries)
	}
	if c.TempSuffix == "" || c.DoneSuffix == "" || c.SigSuffix == "" {
		bad("temp_suffix, done_suffix and sig_suffix: required")
	}
	switch c.FileExists {
	case ExistsFail, ExistsOverwrite, ExistsVersion:
	default:
		bad("file_exists: %q: want fail, overwrite or version", c.FileExists)
	}
	switch c.MoveTo {
	case MoveRemote, MoveLocal:
	default:
		bad("move_to: %q: want remote or local", c.MoveTo)
	}
	for _, g := range append(append([]string{}, c.Include...), c.Exclude...) {
		if _, err := path.Match(g, "x"); err != nil {
			bad("include/exclude: %q: %v", g, err)
		}
	}
	if c.DoneWait < 0 {
		bad("done_wait: must not be negative")
	}
	if !c.RequireDone && c.StableFor <= 0 {
		bad("stable_for: must be positive when require_done is false")
	}
	return errors.Join(errs...)
}
