package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"sync"
)

// MultiRow runs a statement over many rows (a multi-row INSERT) in pieces
// whose row counts are powers of two up to a maximum, each size prepared
// once. One statement for many rows saves the per-statement work of the
// driver and of database/sql; fixed sizes save parsing a new SQL text for
// every batch length, which for small batches cost more than it saved.
// A batch of n rows takes at most log2(max)+n/max statements.
//
// MultiRow is safe for concurrent use.
type MultiRow struct {
	db    *DB
	max   int
	build func(n int) string
	mu    sync.Mutex
	stmts map[int]*sql.Stmt
}

// NewMultiRow returns a MultiRow over db whose statement for n rows is
// build(n), written with ? placeholders (rebound for the dialect). max is
// the largest piece; it is rounded down to a power of two.
func NewMultiRow(db *DB, max int, build func(n int) string) *MultiRow {
	if max < 1 {
		max = 1
	}
	return &MultiRow{db: db, max: 1 << (bits.Len(uint(max)) - 1), build: build, stmts: map[int]*sql.Stmt{}}
}

// Pieces splits n rows into the sizes Run uses, in order: pieces of max,
// then the powers of two of the rest, largest first.
func (m *MultiRow) Pieces(n int) []int {
	var out []int
	for ; n >= m.max; n -= m.max {
		out = append(out, m.max)
	}
	for p := m.max >> 1; p > 0; p >>= 1 {
		if n&p != 0 {
			out = append(out, p)
		}
	}
	return out
}

// Run runs the statement inside tx over n rows, piece by piece: args(off,
// size) returns the arguments of rows off to off+size-1, and each piece's
// result goes to done (nil: ignored). A statement that returns rows (an
// INSERT … RETURNING) is run with Query and its rows go to scan instead.
func (m *MultiRow) Run(ctx context.Context, tx *sql.Tx, n int, args func(off, size int) []any, done func(off, size int, r sql.Result) error) error {
	off := 0
	for _, size := range m.Pieces(n) {
		st, err := m.stmt(ctx, size)
		if err != nil {
			return err
		}
		r, err := tx.StmtContext(ctx, st).ExecContext(ctx, args(off, size)...)
		if err != nil {
			return err
		}
		if done != nil {
			if err := done(off, size, r); err != nil {
				return err
			}
		}
		off += size
	}
	return nil
}

// Query is Run for a statement that returns rows: scan is called for each
// row of each piece (with the piece's rows still open), in order.
func (m *MultiRow) Query(ctx context.Context, tx *sql.Tx, n int, args func(off, size int) []any, scan func(rows *sql.Rows) error) error {
	off := 0
	for _, size := range m.Pieces(n) {
		st, err := m.stmt(ctx, size)
		if err != nil {
			return err
		}
		if err := queryPiece(ctx, tx.StmtContext(ctx, st), args(off, size), scan); err != nil {
			return err
		}
		off += size
	}
	return nil
}

func queryPiece(ctx context.Context, st *sql.Stmt, args []any, scan func(rows *sql.Rows) error) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// stmt returns the prepared statement of size rows, preparing it once.
func (m *MultiRow) stmt(ctx context.Context, size int) (*sql.Stmt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.stmts[size]; st != nil {
		return st, nil
	}
	st, err := m.db.PrepareContext(ctx, m.db.Rebind(m.build(size)))
	if err != nil {
		return nil, fmt.Errorf("prepare %d-row statement: %w", size, err)
	}
	m.stmts[size] = st
	return st, nil
}

// Close closes the prepared statements.
func (m *MultiRow) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, st := range m.stmts {
		_ = st.Close()
		delete(m.stmts, n)
	}
	return nil
}

// Stmts prepares statements once, by their text, for use inside
// transactions: a statement run for every batch is then parsed once per
// connection rather than once per batch. Texts are used as given (Rebind
// them first for PostgreSQL). Stmts is safe for concurrent use.
type Stmts struct {
	db *DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// NewStmts returns an empty statement cache over db.
func NewStmts(db *DB) *Stmts { return &Stmts{db: db, m: map[string]*sql.Stmt{}} }

// In returns the statement q, prepared once, bound to tx.
func (c *Stmts) In(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	st := c.m[q]
	if st == nil {
		var err error
		if st, err = c.db.PrepareContext(ctx, q); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		c.m[q] = st
	}
	c.mu.Unlock()
	return tx.StmtContext(ctx, st), nil
}

// Exec runs the statement q inside tx.
func (c *Stmts) Exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := c.In(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Close closes the prepared statements.
func (c *Stmts) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
	return nil
}
