package sftp

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrTimeout: an operation made no progress within its deadline; the
	// connection was closed.
	ErrTimeout = errors.New("sftp: operation deadline exceeded")
	// ErrHostKey: the server's host key does not match the pinned key.
	ErrHostKey = errors.New("sftp: host key mismatch")
	// ErrExists: the remote file exists and the file_exists policy is fail.
	ErrExists = errors.New("sftp: remote file exists")
	// ErrDigest: a downloaded file does not match the digest of its done file.
	ErrDigest = errors.New("sftp: digest mismatch")
	// ErrSignature: a detached signature does not verify.
	ErrSignature = errors.New("sftp: bad signature")
	// ErrDoneFile: a done file cannot be parsed.
	ErrDoneFile = errors.New("sftp: malformed done file")
	// ErrClaimed: the file is claimed by someone else or already processed.
	ErrClaimed = errors.New("sftp: file already claimed")
	// ErrRetry, wrapped in a handler's error, leaves the file claimed and in
	// place: it is handed over again on the next pass (a transient fault
	// such as a busy database), instead of going to failed/.
	ErrRetry = errors.New("sftp: retry on the next pass")
	// ErrClosed: the client is closed.
	ErrClosed = errors.New("sftp: client closed")
)
