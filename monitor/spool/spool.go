// Package spool keeps monitor events durably in the state database until
// the event store has them (monitor.Spool): the events of an exchange the
// hub acknowledged survive a SIGKILL of the replica, and are stored by it
// when it starts again, or by another replica once its node claim expired.
package spool

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxRows bounds the rows of one INSERT or DELETE statement (a power of
// two: store.MultiRow's largest piece; small, since every size up to it
// stays prepared on each connection that ran it).
const maxRows = 32

// Spool is a monitor.Spool in the state database. Safe for concurrent use.
type Spool struct {
	db    *store.DB
	node  string
	clock clock.Clock
	// put and remove run many rows to a statement, each size prepared once.
	put, remove *store.MultiRow
}

var _ monitor.Spool = (*Spool)(nil)

// Open migrates the spool table and returns the spool of replica node (its
// node name, claimed with lease.NodeClaim). clk may be nil.
func Open(ctx context.Context, db *store.DB, node string, clk clock.Clock) (*Spool, error) {
	if node == "" {
		return nil, fmt.Errorf("monitor spool: node required")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	// Recover reads the replicas' node claims from the lease table.
	if _, err := lease.New(ctx, db, lease.Options{Node: node}); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := db.Migrate(ctx, "monitor-spool", sub); err != nil {
		return nil, err
	}
	return &Spool{db: db, node: node, clock: clk,
		put: store.NewMultiRow(db, maxRows, putRows(db.Dialect())), remove: store.NewMultiRow(db, maxRows, removeRows)}, nil
}

// Put stores evs in one transaction. The exchanges whose events they are
// wait for it: the transaction is urgent at the write gate (store.Urgent).
func (s *Spool) Put(ctx context.Context, evs []monitor.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return s.db.InTx(store.Urgent(ctx), func(tx *sql.Tx) error {
		var encErr error
		args := make([]any, 0, 4*min(len(evs), maxRows))
		err := s.put.Run(ctx, tx, len(evs), func(off, size int) []any {
			args = args[:0]
			for i := range evs[off : off+size] {
				ev := &evs[off+i]
				body, err := json.Marshal(ev)
				if err != nil && encErr == nil {
					encErr = err
				}
				args = append(args, ev.ID, s.node, ev.Time.UnixMilli(), string(body))
			}
			return args
		}, nil)
		if encErr != nil {
			return fmt.Errorf("monitor spool: encode: %w", encErr)
		}
		if err != nil {
			return fmt.Errorf("monitor spool: put: %w", err)
		}
		return nil
	})
}

// putRows is the INSERT of n spooled events; an event spooled already is
// kept as it is. On SQLite it is INSERT OR IGNORE, which needs no
// statement journal for many rows (ON CONFLICT DO NOTHING does); the
// primary key is the only constraint that can fail there, since every
// column is bound from a Go value or has a default.
func putRows(d store.Dialect) func(n int) string {
	return func(n int) string {
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", n), ",")
		if d == store.SQLite {
			return `INSERT OR IGNORE INTO monitor_spool (event_id, node, at_ms, body) VALUES ` + rows
		}
		return `INSERT INTO monitor_spool (event_id, node, at_ms, body) VALUES ` + rows + ` ON CONFLICT (event_id) DO NOTHING`
	}
}

func removeRows(n int) string {
	return `DELETE FROM monitor_spool WHERE event_id IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
}

// Remove deletes the events with ids.
func (s *Spool) Remove(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, min(len(ids), maxRows))
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.remove.Run(ctx, tx, len(ids), func(off, size int) []any {
			args = args[:0]
			for _, id := range ids[off : off+size] {
				args = append(args, id)
			}
			return args
		}, nil)
	})
	if err != nil {
		return fmt.Errorf("monitor spool: remove: %w", err)
	}
	return nil
}

// Recover takes the events left by this replica (own, at its start) and by
// replicas whose node claim is no longer alive: one statement makes them
// this replica's and marks them with a token of this recovery, so that two
// replicas recovering at once never take the same event, then it reads
// them. Rows stay in the spool until Remove: a crash before leaves them to
// this replica's next start (or, if it never comes back, to another).
func (s *Spool) Recover(ctx context.Context, own bool) ([]monitor.Event, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	prefix := lease.NodeClaim("")
	orphaned := `node NOT IN (SELECT substr(name, ?) FROM leases WHERE substr(name, 1, ?) = ? AND expires_ms > ?)`
	args := []any{s.node, token, s.node, len(prefix) + 1, len(prefix), prefix, s.clock.Now().UnixMilli()}
	cond := `node <> ? AND ` + orphaned
	if own {
		cond = `(node = ? OR ` + orphaned + `)`
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE monitor_spool SET node = ?, token = ? WHERE `+cond), args...)
	if err != nil {
		return nil, fmt.Errorf("monitor spool: recover: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT body FROM monitor_spool WHERE token = ? ORDER BY at_ms`), token)
	if err != nil {
		return nil, fmt.Errorf("monitor spool: recover: %w", err)
	}
	defer rows.Close()
	var out []monitor.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("monitor spool: recover: %w", err)
		}
		var ev monitor.Event
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			return nil, fmt.Errorf("monitor spool: recover: decode: %w", err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
