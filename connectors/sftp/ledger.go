package sftp

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the schema of the upload and claim ledgers.
func Migrate(ctx context.Context, db *store.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, "sftp", sub)
}

// Upload states.
const (
	upStarted = "started" // the temporary file may be partly written
	upRenamed = "renamed" // the data file has its final name; no done file yet
	upDone    = "done"    // the done file is written: the partner may take it
)

// Claim states.
const (
	// ClaimClaimed: being processed by a node.
	ClaimClaimed = "claimed"
	// ClaimProcessed: processed successfully.
	ClaimProcessed = "processed"
	// ClaimFailed: the handler failed; the file went to failed/.
	ClaimFailed = "failed"
	// ClaimRejected: the file failed its digest, size or signature check.
	ClaimRejected = "rejected"
)

// Ledger is the durable upload and claim ledger in the state store.
type Ledger struct {
	db *store.DB
}

// NewLedger returns the ledger on db (migrated with Migrate).
func NewLedger(db *store.DB) *Ledger { return &Ledger{db: db} }

type uploadRow struct {
	remotePath, digest, state string
	bytes                     int64
}

func (l *Ledger) upload(ctx context.Context, partner, name string) (uploadRow, bool, error) {
	var r uploadRow
	err := l.db.QueryRowContext(ctx, l.db.Rebind(`SELECT remote_path, digest, bytes, state FROM sftp_uploads WHERE partner = ? AND name = ?`),
		partner, name).Scan(&r.remotePath, &r.digest, &r.bytes, &r.state)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("upload ledger: %w", err)
	}
	return r, true, nil
}

func (l *Ledger) setUpload(ctx context.Context, partner, name string, r uploadRow) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind(`INSERT INTO sftp_uploads (partner, name, remote_path, digest, bytes, state, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (partner, name) DO UPDATE SET remote_path = excluded.remote_path, digest = excluded.digest,
			bytes = excluded.bytes, state = excluded.state, updated_at = excluded.updated_at`),
		partner, name, r.remotePath, r.digest, r.bytes, r.state, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("upload ledger: %w", err)
	}
	return nil
}

// ClaimKey identifies an inbound file by what it is.
type ClaimKey struct {
	Partner, Path string
	Bytes         int64
	Digest        string
}

// Claim takes the file for node. It succeeds when nobody claimed it, when
// node itself holds an unfinished claim (a restart), or when another node's
// unfinished claim is older than lease. Otherwise it returns false and the
// state of the existing claim.
func (l *Ledger) Claim(ctx context.Context, k ClaimKey, node string, lease time.Duration) (bool, string, error) {
	now := time.Now().UnixMilli()
	res, err := l.db.ExecContext(ctx, l.db.Rebind(`INSERT INTO sftp_claims (partner, path, bytes, digest, state, node, claimed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), k.Partner, k.Path, k.Bytes, k.Digest, ClaimClaimed, node, now)
	if err != nil {
		return false, "", fmt.Errorf("claim ledger: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, ClaimClaimed, nil
	}
	var state, owner string
	var at int64
	if err := l.db.QueryRowContext(ctx, l.db.Rebind(`SELECT state, node, claimed_at FROM sftp_claims
		WHERE partner = ? AND path = ? AND bytes = ? AND digest = ?`), k.Partner, k.Path, k.Bytes, k.Digest).Scan(&state, &owner, &at); err != nil {
		return false, "", fmt.Errorf("claim ledger: %w", err)
	}
	if state != ClaimClaimed || (owner != node && now-at < lease.Milliseconds()) {
		return false, state, nil
	}
	// Take over our own or an expired claim, compare-and-set so that two
	// replicas racing for an expired claim cannot both win.
	res, err = l.db.ExecContext(ctx, l.db.Rebind(`UPDATE sftp_claims SET node = ?, claimed_at = ?
		WHERE partner = ? AND path = ? AND bytes = ? AND digest = ? AND state = ? AND node = ? AND claimed_at = ?`),
		node, now, k.Partner, k.Path, k.Bytes, k.Digest, ClaimClaimed, owner, at)
	if err != nil {
		return false, "", fmt.Errorf("claim ledger: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, ClaimClaimed, nil
}

// State returns the state of a claim ("" when there is none).
func (l *Ledger) State(ctx context.Context, k ClaimKey) (string, error) {
	var state string
	err := l.db.QueryRowContext(ctx, l.db.Rebind(`SELECT state FROM sftp_claims WHERE partner = ? AND path = ? AND bytes = ? AND digest = ?`),
		k.Partner, k.Path, k.Bytes, k.Digest).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("claim ledger: %w", err)
	}
	return state, nil
}

// Finish records the outcome of a claim (or records a rejected file that was never claimed).
func (l *Ledger) Finish(ctx context.Context, k ClaimKey, node, state, detail string) error {
	now := time.Now().UnixMilli()
	_, err := l.db.ExecContext(ctx, l.db.Rebind(`INSERT INTO sftp_claims (partner, path, bytes, digest, state, node, claimed_at, finished_at, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (partner, path, bytes, digest) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at, detail = excluded.detail`),
		k.Partner, k.Path, k.Bytes, k.Digest, state, node, now, now, detail)
	if err != nil {
		return fmt.Errorf("claim ledger: %w", err)
	}
	return nil
}
