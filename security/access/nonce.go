package access

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Component is the migration component name of the nonce table.
const Component = "partner_access"

// Migrations returns the schema of component "partner_access".
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationsFS, "migrations")
	return sub
}

// NonceStore remembers nonces until they expire. Use records the nonce and
// reports whether it was fresh (not seen before, or seen but expired).
// Implementations must be safe for concurrent use; SQLNonces also across
// replicas.
type NonceStore interface {
	Use(ctx context.Context, keyID, nonce string, now, expires time.Time) (fresh bool, err error)
}

// SQLNonces keeps nonces in the state database, shared by all replicas.
type SQLNonces struct {
	db   *store.DB
	mu   sync.Mutex
	uses int
}

var _ NonceStore = (*SQLNonces)(nil)

// NewSQLNonces migrates the nonce table and returns the store.
func NewSQLNonces(ctx context.Context, db *store.DB) (*SQLNonces, error) {
	if err := db.Migrate(ctx, Component, Migrations()); err != nil {
		return nil, err
	}
	return &SQLNonces{db: db}, nil
}

// Use inserts the nonce; a conflict with an unexpired row means a replay.
// Every 500th call also deletes expired rows.
func (s *SQLNonces) Use(ctx context.Context, keyID, nonce string, now, expires time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO partner_nonces (key_id, nonce, expires_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
		keyID, nonce, expires.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("access: record nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("access: record nonce: %w", err)
	}
	if n == 0 {
		// Seen before: fresh again only if the old row has expired, and only
		// one caller may claim it.
		res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE partner_nonces SET expires_ms = ? WHERE key_id = ? AND nonce = ? AND expires_ms < ?`),
			expires.UnixMilli(), keyID, nonce, now.UnixMilli())
		if err != nil {
			return false, fmt.Errorf("access: record nonce: %w", err)
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return false, nil
		}
	}
	s.mu.Lock()
	s.uses++
	sweep := s.uses%500 == 0
	s.mu.Unlock()
	if sweep {
		if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM partner_nonces WHERE expires_ms < ?`), now.UnixMilli()); err != nil {
			return true, fmt.Errorf("access: sweep nonces: %w", err)
		}
	}
	return true, nil
}

// MemoryNonces keeps nonces in memory: for tests and a single process only.
type MemoryNonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

var _ NonceStore = (*MemoryNonces)(nil)

// NewMemoryNonces returns an empty in-memory store.
func NewMemoryNonces() *MemoryNonces { return &MemoryNonces{seen: map[string]time.Time{}} }

// Use records the nonce in memory, sweeping expired ones as the map grows.
func (m *MemoryNonces) Use(_ context.Context, keyID, nonce string, now, expires time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := keyID + "\x00" + nonce
	if exp, ok := m.seen[k]; ok && !exp.Before(now) {
		return false, nil
	}
	if len(m.seen) >= 4096 && len(m.seen)%1024 == 0 {
		for k, exp := range m.seen {
			if exp.Before(now) {
				delete(m.seen, k)
			}
		}
	}
	m.seen[k] = expires
	return true, nil
}
