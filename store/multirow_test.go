package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestMultiRowPieces(t *testing.T) {
	m := store.NewMultiRow(nil, 100, nil) // rounded down to 64
	for n := range 300 {
		sum, prev := 0, 1<<30
		for _, p := range m.Pieces(n) {
			if bits.OnesCount(uint(p)) != 1 || p > 64 || p > prev {
				t.Fatalf("n=%d: pieces %v", n, m.Pieces(n))
			}
			sum, prev = sum+p, p
		}
		if sum != n {
			t.Fatalf("n=%d: pieces %v add up to %d", n, m.Pieces(n), sum)
		}
	}
	if got := fmt.Sprint(m.Pieces(135)); got != "[64 64 4 2 1]" {
		t.Fatalf("pieces of 135: %s", got)
	}
}

// TestMultiRow: rows inserted piece by piece arrive whole and in order, a
// RETURNING statement's rows reach scan, and a batch rolled back leaves
// nothing; on both dialects.
func TestMultiRow(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		table := storetest.Name("multirow")
		if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (k BIGINT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		build := func(n int) string {
			return `INSERT INTO ` + table + ` (k, v) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?),", n), ",")
		}
		ins := store.NewMultiRow(db, 16, build)
		defer ins.Close()
		args := func(base int) func(off, size int) []any {
			return func(off, size int) []any {
				var a []any
				for i := off; i < off+size; i++ {
					a = append(a, int64(base+i), fmt.Sprint("v", base+i))
				}
				return a
			}
		}
		var pieces []int
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			return ins.Run(ctx, tx, 53, args(0), func(off, size int, r sql.Result) error {
				if n, err := r.RowsAffected(); err != nil || n != int64(size) {
					return fmt.Errorf("piece at %d: %d rows affected (%v), want %d", off, n, err, size)
				}
				pieces = append(pieces, size)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(pieces) != "[16 16 16 4 1]" {
			t.Fatalf("pieces %v", pieces)
		}
		// RETURNING: only the rows inserted (the others are there).
		ret := store.NewMultiRow(db, 16, func(n int) string {
			q := build(n)
			if db.Dialect() == store.SQLite {
				return strings.Replace(q, "INSERT", "INSERT OR IGNORE", 1) + ` RETURNING k`
			}
			return q + ` ON CONFLICT DO NOTHING RETURNING k`
		})
		defer ret.Close()
		var got []int64
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			return ret.Query(ctx, tx, 20, args(40), func(rows *sql.Rows) error {
				var k int64
				if err := rows.Scan(&k); err != nil {
					return err
				}
				got = append(got, k)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got) // PostgreSQL does not promise RETURNING's order
		if fmt.Sprint(got) != "[53 54 55 56 57 58 59]" {
			t.Fatalf("returned %v, want 53-59", got)
		}
		// Rolled back: nothing of the batch is left.
		_ = db.InTx(ctx, func(tx *sql.Tx) error {
			if err := ins.Run(ctx, tx, 40, args(100), nil); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("roll back")
		})
		var n, sum int64
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*), SUM(k) FROM `+table).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		if n != 60 || sum != 59*60/2 {
			t.Fatalf("%d rows, keys adding up to %d; want 60 rows 0-59", n, sum)
		}
	})
}

// TestStmts: a cached statement runs in one transaction after another,
// and again after Close (prepared anew).
func TestStmts(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		table := storetest.Name("stmts")
		if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (k BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		c := store.NewStmts(db)
		q := db.Rebind(`INSERT INTO ` + table + ` (k) VALUES (?)`)
		for i := range 3 {
			if i == 2 {
				_ = c.Close()
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := c.Exec(ctx, tx, q, int64(i))
				return err
			}); err != nil {
				t.Fatalf("transaction %d: %v", i, err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d rows %v, want 3", n, err)
		}
		_ = c.Close()
	})
}
