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
// A batch of n rows takes at most log2(max)+n/max statements. Every size
// up to max stays prepared on each pooled connection that ran it, in
// SQLite's memory outside the Go heap, so max is kept small (a 16-row
// piece of 28 columns and its smaller sizes: about 160 KiB a connection).
//
// MultiRow is safe for concurrent use.
type MultiRow struct {
	max   int
	build func(n int) string
	stmts *Stmts
	mu    sync.Mutex
	texts map[int]string // statement text by row count
}

// NewMultiRow returns a MultiRow over db whose statement for n rows is
// build(n), written with ? placeholders (rebound for the dialect). max is
// the largest piece; it is rounded down to a power of two.
func NewMultiRow(db *DB, max int, build func(n int) string) *MultiRow {
	if max < 1 {
		max = 1
	}
	return &MultiRow{max: 1 << (bits.Len(uint(max)) - 1), build: build, stmts: NewStmts(db), texts: map[int]string{}}
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
// result goes to done (nil: ignored).
func (m *MultiRow) Run(ctx context.Context, tx *sql.Tx, n int, args func(off, size int) []any, done func(off, size int, r sql.Result) error) error {
	return m.each(ctx, tx, n, func(st *sql.Stmt, off, size int) error {
		r, err := st.ExecContext(ctx, args(off, size)...)
		if err != nil || done == nil {
			return err
		}
		return done(off, size, r)
	})
}

// Query is Run for a statement that returns rows (an INSERT … RETURNING):
// scan is called for each row of each piece, in order.
func (m *MultiRow) Query(ctx context.Context, tx *sql.Tx, n int, args func(off, size int) []any, scan func(rows *sql.Rows) error) error {
	return m.each(ctx, tx, n, func(st *sql.Stmt, off, size int) error {
		rows, err := st.QueryContext(ctx, args(off, size)...)
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
	})
}

// each calls fn for each piece of n rows with its statement bound to tx.
func (m *MultiRow) each(ctx context.Context, tx *sql.Tx, n int, fn func(st *sql.Stmt, off, size int) error) error {
	off := 0
	for _, size := range m.Pieces(n) {
		st, err := m.stmt(ctx, size)
		if err != nil {
			return err
		}
		if err := fn(tx.StmtContext(ctx, st), off, size); err != nil {
			return err
		}
		off += size
	}
	return nil
}

// stmt returns the prepared statement of size rows, preparing it once.
func (m *MultiRow) stmt(ctx context.Context, size int) (*sql.Stmt, error) {
	m.mu.Lock()
	q, ok := m.texts[size]
	if !ok {
		q = m.stmts.db.Rebind(m.build(size))
		m.texts[size] = q
	}
	m.mu.Unlock()
	st, err := m.stmts.prepared(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%d-row statement: %w", size, err)
	}
	return st, nil
}

// Close closes the prepared statements.
func (m *MultiRow) Close() error { return m.stmts.Close() }

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
	st, err := c.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st), nil
}

// prepared returns the statement q, preparing it once.
func (c *Stmts) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[q]; st != nil {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.m[q] = st
	return st, nil
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
