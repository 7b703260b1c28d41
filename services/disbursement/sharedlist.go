package disbursement

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
)

// sharedChunk is the size of one stored chunk of a list (before sealing).
const sharedChunk = 1 << 20

// shareList stores the batch's list file in the state database, so that
// the replica holding the cycle lease runs a batch submitted on another
// (its data directory is its own). Chunks are sealed when the service has
// a sealer. It replaces a list shared before for the batch.
func (s *Service) shareList(ctx context.Context, b *Batch, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_lists WHERE batch_id = ?`), b.ID); err != nil {
			return err
		}
		buf := make([]byte, sharedChunk)
		for chunk := 0; ; chunk++ {
			n, rerr := io.ReadFull(f, buf)
			if n > 0 {
				body, sealed := buf[:n], 0
				if s.sealer != nil {
					if body, err = s.sealer.Seal(body); err != nil {
						return fmt.Errorf("seal: %w", err)
					}
					sealed = 1
				}
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_lists (batch_id, chunk, sealed, body) VALUES (?, ?, ?, ?)`),
					b.ID, chunk, sealed, base64.StdEncoding.EncodeToString(body)); err != nil {
					return err
				}
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	})
}

// fetchSharedList writes the batch's shared list to dst (mode 0600) and
// reports whether there was one.
func (s *Service) fetchSharedList(ctx context.Context, b *Batch, dst string) (bool, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT sealed, body FROM disb_lists WHERE batch_id = ? ORDER BY chunk`), b.ID)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	tmp := dst + ".part"
	var out *os.File
	for rows.Next() {
		var sealed int
		var enc string
		if err := rows.Scan(&sealed, &enc); err != nil {
			return false, err
		}
		body, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return false, fmt.Errorf("shared list: %w", err)
		}
		if sealed == 1 {
			if s.sealer == nil {
				return false, fmt.Errorf("shared list: %w", ErrSealedList)
			}
			if body, err = s.sealer.Open(body); err != nil {
				return false, fmt.Errorf("shared list: %w", err)
			}
		}
		if out == nil {
			if out, err = os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
				return false, err
			}
			defer out.Close()
		}
		if _, err := out.Write(body); err != nil {
			return false, err
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	if out == nil {
		return false, nil
	}
	if err := out.Sync(); err != nil {
		return false, err
	}
	if err := out.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, dst)
}

// dropSharedList removes the batch's shared list (the batch closed).
func (s *Service) dropSharedList(ctx context.Context, b *Batch) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM disb_lists WHERE batch_id = ?`), b.ID)
	return err
}
