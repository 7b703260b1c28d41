package store

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect names the SQL dialect of a DB.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the state database. It embeds *sql.DB, so callers use the standard
// database/sql API; write portable SQL with `?` placeholders and pass it
// through Rebind. It is safe for concurrent use.
type DB struct {
	*sql.DB
	dialect Dialect
	where   string
	// gate queues this process's writers of a SQLite database (nil for
	// PostgreSQL); see Control.
	gate *writeGate
}

// Open opens (and for SQLite creates) the state database described by cfg and
// checks that it answers. It does not migrate: each component calls Migrate
// for its own schema.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Driver {
	case "sqlite":
		return openSQLite(ctx, cfg)
	case "postgres":
		return openPostgres(ctx, cfg)
	}
	return nil, fmt.Errorf("store: open %q: %w", cfg.Driver, ErrUnknownDriver)
}

// sqliteIdleConns is how many SQLite connections the pool keeps open when
// idle: enough for a writer and the readers beside it, few enough that
// their page caches stay small.
const sqliteIdleConns = 4

func openSQLite(ctx context.Context, cfg Config) (*DB, error) {
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", cfg.Path, err)
		}
	}
	if err := ownerOnly(cfg.Path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if cfg.SQLiteCacheKiB > 0 {
		// Negative: a size in KiB rather than in pages.
		q.Add("_pragma", "cache_size(-"+strconv.Itoa(cfg.SQLiteCacheKiB)+")")
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + cfg.Path + "?" + q.Encode()
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", cfg.Path, err)
	}
	// One writer at a time is SQLite's model (BEGIN IMMEDIATE, busy_timeout);
	// readers proceed beside it in WAL mode. The pool is wide enough that
	// goroutines waiting for the write lock never take the last connection
	// from a transaction that needs one more to finish. Each connection
	// keeps its own page cache (outside the Go heap): only a few are kept
	// idle.
	sqldb.SetMaxOpenConns(16)
	sqldb.SetMaxIdleConns(sqliteIdleConns)
	sqldb.SetConnMaxLifetime(0)
	db := &DB{DB: sqldb, dialect: SQLite, where: cfg.Path, gate: &writeGate{wait: cfg.BusyTimeout}}
	if err := db.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("store: ping sqlite %s: %w", cfg.Path, err)
	}
	return db, nil
}

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	sqldb, err := sql.Open("pgx", cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	sqldb.SetMaxOpenConns(cfg.MaxOpenConns)
	sqldb.SetMaxIdleConns(cfg.MaxOpenConns)
	db := &DB{DB: sqldb, dialect: Postgres, where: redactDSN(cfg.DSN)}
	if err := db.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("store: ping postgres %s: %w", db.where, err)
	}
	return db, nil
}

// redactDSN removes the password from a PostgreSQL URL for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return "postgres"
	}
	u.User = url.User(u.User.Username())
	return u.Redacted()
}

// Dialect tells which SQL dialect the database speaks.
func (db *DB) Dialect() Dialect { return db.dialect }

// String names the database for logs (path or DSN without password).
func (db *DB) String() string { return string(db.dialect) + ":" + db.where }

// Rebind turns `?` placeholders into the dialect's form ($1, $2, … for
// PostgreSQL). Question marks inside single-quoted literals are left alone.
func (db *DB) Rebind(query string) string {
	if db.dialect != Postgres {
		return query
	}
	return rebindDollar(query)
}

func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inQuote := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
//
// On SQLite the transaction waits its turn behind this process's other
// InTx writers and behind every Control write (see Control), instead of
// polling the write lock; a ctx marked Urgent also goes ahead of queued
// data writes (see Urgent).
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.gate != nil {
		if err := db.gate.acquire(ctx, classOf(ctx)); err != nil {
			return fmt.Errorf("store: begin: %w", err)
		}
		defer db.gate.release()
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// ownerOnly creates the SQLite file p owner-only (0600) before SQLite
// opens it, and takes group and world access away from an existing one and
// its WAL and shared-memory files: the state database holds audit records,
// sessions and sealed bodies. SQLite creates the WAL and shared-memory
// files with the database file's mode. In-memory databases are left alone.
func ownerOnly(p string) error {
	if p == "" || strings.HasPrefix(p, ":") || strings.HasPrefix(p, "file:") {
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", p, err)
	}
	_ = f.Close()
	for _, q := range []string{p, p + "-wal", p + "-shm", p + "-journal"} {
		fi, err := os.Stat(q)
		if err != nil {
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(q, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("store: restrict %s to its owner: %w", q, err)
			}
		}
	}
	return nil
}

// LockTx takes a lock named name for the rest of transaction tx, so that
// replicas serialise a read-then-write (two transactions that both find a
// row missing and both insert it): on PostgreSQL an advisory transaction
// lock; SQLite serialises writers already.
func (db *DB) LockTx(ctx context.Context, tx *sql.Tx, name string) error {
	if db.dialect != Postgres {
		return nil
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("mzhub-lock:" + name))
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("store: lock %s: %w", name, err)
	}
	return nil
}

// WriteTx is a write transaction begun with BeginWrite. On SQLite it holds
// this process's write gate (see InTx) from Begin until Commit or
// Rollback, so a long transaction that commits in slices queues with the
// other writers of the process instead of racing them for SQLite's lock.
type WriteTx struct {
	*sql.Tx
	release func()
}

// BeginWrite begins a write transaction for a caller that cannot run its
// work inside InTx's callback (a long apply committed in slices, each its
// own transaction). The caller must end it with Commit or Rollback; both
// release the gate once.
func (db *DB) BeginWrite(ctx context.Context) (*WriteTx, error) {
	release := func() {}
	if db.gate != nil {
		if err := db.gate.acquire(ctx, classOf(ctx)); err != nil {
			return nil, fmt.Errorf("store: begin: %w", err)
		}
		release = db.gate.release
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	return &WriteTx{Tx: tx, release: release}, nil
}

// Commit commits the transaction and releases the write gate.
func (t *WriteTx) Commit() error {
	defer t.done()
	return t.Tx.Commit()
}

// Rollback rolls the transaction back and releases the write gate.
func (t *WriteTx) Rollback() error {
	defer t.done()
	return t.Tx.Rollback()
}

func (t *WriteTx) done() {
	if t.release != nil {
		t.release()
		t.release = nil
	}
}
