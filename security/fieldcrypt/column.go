package fieldcrypt

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/shanghai-mca/mzhub/store"
)

// Column names an encrypted column so `mzhub keys reencrypt` can move its
// values to the active key. Key is a unique column of the table (its primary
// key).
type Column struct {
	Table, Key, Column string
}

func (c Column) String() string { return c.Table + "." + c.Column }

var ident = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks that the names are plain SQL identifiers.
func (c Column) Validate() error {
	for _, s := range []string{c.Table, c.Key, c.Column} {
		if !ident.MatchString(s) {
			return fmt.Errorf("fieldcrypt: column %q: not a plain identifier", s)
		}
	}
	return nil
}

var (
	regMu    sync.Mutex
	registry = map[string]Column{}
)

// Register records an encrypted column; components call it from init. A
// duplicate or malformed registration is a programmer error and panics.
func Register(c Column) {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[c.String()]; dup {
		panic("fieldcrypt: column registered twice: " + c.String())
	}
	registry[c.String()] = c
}

// Registered lists the registered columns, sorted.
func Registered() []Column {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Column, 0, len(registry))
	for _, c := range registry {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// ReencryptColumn rewrites every value of c that is not under the ring's
// active key, in batches of batch rows (100 when 0), each batch in its own
// transaction. It is safe to run while the hub is serving: a row changed
// meanwhile is skipped by the compare-and-set update and picked up by the
// next pass. It returns the number of values rewritten.
func ReencryptColumn(ctx context.Context, db *store.DB, r *Ring, c Column, batch int) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if batch <= 0 {
		batch = 100
	}
	var total int64
	var after any
	sel := fmt.Sprintf(`SELECT %[2]s, %[3]s FROM %[1]s WHERE %[3]s IS NOT NULL AND %[3]s <> '' AND %[3]s NOT LIKE ? %[4]s ORDER BY %[2]s LIMIT %[5]d`,
		c.Table, c.Key, c.Column, "%s", batch)
	upd := db.Rebind(fmt.Sprintf(`UPDATE %[1]s SET %[3]s = ? WHERE %[2]s = ? AND %[3]s = ?`, c.Table, c.Key, c.Column))
	for {
		cond := ""
		args := []any{r.ActiveKID() + ":%"}
		if after != nil {
			cond = "AND " + c.Key + " > ?"
			args = append(args, after)
		}
		rows, err := db.QueryContext(ctx, db.Rebind(fmt.Sprintf(sel, cond)), args...)
		if err != nil {
			return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
		}
		type row struct {
			key any
			ct  string
		}
		var rs []row
		for rows.Next() {
			var x row
			if err := rows.Scan(&x.key, &x.ct); err != nil {
				rows.Close()
				return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
			}
			rs = append(rs, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
		}
		if len(rs) == 0 {
			return total, nil
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
		}
		var n int64
		for _, x := range rs {
			nct, changed, err := r.Reencrypt(x.ct)
			if err != nil {
				_ = tx.Rollback()
				return total, fmt.Errorf("fieldcrypt: reencrypt %s key %v: %w", c, x.key, err)
			}
			if !changed {
				continue
			}
			res, err := tx.ExecContext(ctx, upd, nct, x.key, x.ct)
			if err != nil {
				_ = tx.Rollback()
				return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
		if err := tx.Commit(); err != nil {
			return total, fmt.Errorf("fieldcrypt: reencrypt %s: %w", c, err)
		}
		total += n
		after = rs[len(rs)-1].key
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
