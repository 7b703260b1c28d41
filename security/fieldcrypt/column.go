package fieldcrypt

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/store"
)

// Place is where the hub keeps what it sealed: its state database and the
// directories of its files (the data directory and any configured outside
// it). A target looks for its files under each.
type Place struct {
	DB   *store.DB
	Dirs []string
}

// Inventory counts sealed values by the key id they are under.
type Inventory map[string]int64

// Unreadable is the Inventory entry of values that are malformed or, when
// the inventory was asked to open them, did not open.
const Unreadable = "?"

// Add adds o's counts to inv.
func (inv Inventory) Add(o Inventory) {
	for k, n := range o {
		inv[k] += n
	}
}

// Moved is what a Target's Move did.
type Moved struct {
	// Values rewritten under the active key.
	Values int64
	// Failed counts values that could not be opened (their key is not in
	// the ring, or they were altered): left as they are; Err names the first.
	Failed int64
	Err    error
}

// A Target is something the hub stores sealed under the field keys (a
// database column, a kind of file). `mzhub keys reencrypt` moves every
// registered target to the active key and `mzhub keys retire` drops an old
// key only when no target still holds a value under it.
//
// Move must be idempotent and safe while the hub serves (a value written
// meanwhile is either left for the next pass or already under the active
// key), and resumable: a pass stopped half-way leaves every value readable,
// and the next pass continues with what is left.
type Target interface {
	String() string
	// Inventory counts the target's sealed values by key id. With a ring,
	// it also opens each value with it and counts those that fail (or that
	// cannot be read at all) under Unreadable instead.
	Inventory(ctx context.Context, at Place, open *Ring) (Inventory, error)
	// Move rewrites every value not under r's active key.
	Move(ctx context.Context, at Place, r *Ring) (Moved, error)
}

// Format says how a column's values are sealed.
type Format int

const (
	// Text values are made by Ring.Encrypt: "<kid>:<base64url>".
	Text Format = iota
	// Envelope values are made by Ring.Seal (a binary column).
	Envelope
)

// Codec reads and rewrites a column's value that holds sealed parts in a
// shape of its own (a JSON message whose body is sealed, base64 text of an
// envelope). guard is the value of the column's Guard column (nil without
// one).
type Codec interface {
	// KIDs returns the key ids of the value's sealed parts; none when it
	// holds nothing sealed (a value stored before sealing was on).
	KIDs(guard, v []byte) ([]string, error)
	// Reseal returns the value with every sealed part under r's active key.
	Reseal(r *Ring, guard, v []byte) ([]byte, error)
	// Open opens every sealed part of the value with r, and says why one
	// does not open.
	Open(r *Ring, guard, v []byte) error
}

// Column names a database column holding sealed values so that `mzhub
// keys reencrypt` can move them to the active key. Components register
// theirs from init.
type Column struct {
	// Table and Column name the column.
	Table, Column string
	// Key lists the columns of a unique key of the table (its primary key).
	Key []string
	// Format says how values are sealed (Text by default); Codec, when
	// set, reads and rewrites values of a shape of their own instead.
	Format Format
	Codec  Codec
	// Binary: the column is BLOB/BYTEA (implied by Envelope).
	Binary bool
	// Guard names a column read beside each value and handed to Codec
	// (for example the headers telling whether a body is sealed).
	Guard string
}

func (c Column) String() string { return c.Table + "." + c.Column }

var ident = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks that the names are plain SQL identifiers.
func (c Column) Validate() error {
	names := append([]string{c.Table, c.Column}, c.Key...)
	if c.Guard != "" {
		names = append(names, c.Guard)
	}
	if len(c.Key) == 0 {
		return fmt.Errorf("fieldcrypt: column %s: no key", c)
	}
	for _, s := range names {
		if !ident.MatchString(s) {
			return fmt.Errorf("fieldcrypt: column %q: not a plain identifier", s)
		}
	}
	if c.Guard != "" && c.Codec == nil {
		return fmt.Errorf("fieldcrypt: column %s: a guard needs a codec", c)
	}
	return nil
}

func (c Column) codec() Codec {
	switch {
	case c.Codec != nil:
		return c.Codec
	case c.Format == Envelope:
		return envelopeCodec{}
	}
	return textCodec{}
}

func (c Column) binary() bool { return c.Binary || (c.Codec == nil && c.Format == Envelope) }

var (
	regMu    sync.Mutex
	registry = map[string]Target{}
)

// Register records a sealed target; components call it from init. A
// duplicate or malformed registration is a programmer error and panics.
func Register(t Target) {
	if c, ok := t.(Column); ok {
		if err := c.Validate(); err != nil {
			panic(err)
		}
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[t.String()]; dup {
		panic("fieldcrypt: target registered twice: " + t.String())
	}
	registry[t.String()] = t
}

// Registered lists the registered targets, sorted by name.
func Registered() []Target {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Target, 0, len(registry))
	for _, t := range registry {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// sealedText matches what Ring.Encrypt makes; plaintext stored before
// sealing was on (JSON, an ID number) does not match.
var sealedText = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}:[A-Za-z0-9_-]+$`)

type textCodec struct{}

func (textCodec) KIDs(_, v []byte) ([]string, error) {
	if !sealedText.Match(v) {
		return nil, nil
	}
	return []string{KID(string(v))}, nil
}

func (textCodec) Reseal(r *Ring, _, v []byte) ([]byte, error) {
	ct, _, err := r.Reencrypt(string(v))
	return []byte(ct), err
}

func (textCodec) Open(r *Ring, _, v []byte) error {
	if !sealedText.Match(v) {
		return nil
	}
	_, err := r.Decrypt(string(v))
	return err
}

type envelopeCodec struct{}

func (envelopeCodec) KIDs(_, v []byte) ([]string, error) {
	if kid := SealedKID(v); kid != "" {
		return []string{kid}, nil
	}
	return nil, nil
}

func (envelopeCodec) Reseal(r *Ring, _, v []byte) ([]byte, error) {
	out, _, err := r.Reseal(v)
	return out, err
}

func (envelopeCodec) Open(r *Ring, _, v []byte) error {
	if SealedKID(v) == "" {
		return nil
	}
	_, err := r.Open(v)
	return err
}

// Reseal returns an envelope made by Seal under the active key: sealed
// itself when it already is, else opened and sealed again. changed tells
// which.
func (r *Ring) Reseal(sealed []byte) ([]byte, bool, error) {
	if SealedKID(sealed) == r.active {
		return sealed, false, nil
	}
	pt, err := r.Open(sealed)
	if err != nil {
		return nil, false, err
	}
	out, err := r.Seal(pt)
	return out, err == nil, err
}

// Without returns a ring of r's keys but kid (the key to retire), whose
// active key is the greatest left.
func (r *Ring) Without(kid string) (*Ring, error) {
	out := &Ring{aeads: map[string]cipher.AEAD{}, blind: r.blind}
	for k, a := range r.aeads {
		if k != kid {
			out.aeads[k] = a
			out.active = max(out.active, k)
		}
	}
	if len(out.aeads) == 0 {
		return nil, ErrNoKeys
	}
	return out, nil
}

// exists tells whether the column's table was created (a component the
// deployment never started has none).
func (c Column) exists(ctx context.Context, db *store.DB) bool {
	_, err := db.ExecContext(ctx, "SELECT 1 FROM "+c.Table+" WHERE 1 = 0")
	return err == nil
}

// scanBatch reads up to n rows after the key values after (nil: from the
// start), in key order.
func (c Column) scanBatch(ctx context.Context, db *store.DB, after []any, n int) ([]colRow, error) {
	keys := strings.Join(c.Key, ", ")
	cols := keys + ", "
	if c.Guard != "" {
		cols += c.Guard + ", "
	} else {
		cols += "NULL, "
	}
	q := "SELECT " + cols + c.Column + " FROM " + c.Table + " WHERE " + c.Column + " IS NOT NULL"
	if after != nil {
		q += " AND (" + keys + ") > (" + strings.TrimSuffix(strings.Repeat("?, ", len(c.Key)), ", ") + ")"
	}
	q += fmt.Sprintf(" ORDER BY %s LIMIT %d", keys, n)
	rows, err := db.QueryContext(ctx, db.Rebind(q), after...)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: %s: %w", c, err)
	}
	defer rows.Close()
	var out []colRow
	for rows.Next() {
		x := colRow{key: make([]any, len(c.Key))}
		dst := make([]any, 0, len(c.Key)+2)
		for i := range x.key {
			dst = append(dst, &x.key[i])
		}
		dst = append(dst, &x.guard, &x.v)
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("fieldcrypt: %s: %w", c, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fieldcrypt: %s: %w", c, err)
	}
	return out, nil
}

type colRow struct {
	key      []any
	guard, v []byte
}

// Inventory counts the column's sealed values by key id (see Target).
func (c Column) Inventory(ctx context.Context, at Place, open *Ring) (Inventory, error) {
	inv := Inventory{}
	if !c.exists(ctx, at.DB) {
		return inv, nil
	}
	var after []any
	for {
		rs, err := c.scanBatch(ctx, at.DB, after, 1000)
		if err != nil || len(rs) == 0 {
			return inv, err
		}
		for _, x := range rs {
			kids, err := c.codec().KIDs(x.guard, x.v)
			if err == nil && open != nil && len(kids) > 0 {
				err = c.codec().Open(open, x.guard, x.v)
			}
			if err != nil {
				inv[Unreadable]++
				continue
			}
			for _, k := range kids {
				inv[k]++
			}
		}
		after = rs[len(rs)-1].key
	}
}

// moveBatch is the number of rows Column.Move rewrites per transaction.
const moveBatch = 200

// Move rewrites every value of the column that is not under the ring's
// active key, a batch of rows per transaction, each row by compare-and-set
// (a row changed meanwhile by the hub is left to the next pass: its new
// value is under the key the hub writes with). Values that cannot be
// opened are left as they are and counted in Failed.
func (c Column) Move(ctx context.Context, at Place, r *Ring) (Moved, error) {
	var m Moved
	if !c.exists(ctx, at.DB) {
		return m, nil
	}
	db := at.DB
	where := make([]string, len(c.Key))
	for i, k := range c.Key {
		where[i] = k + " = ?"
	}
	upd := db.Rebind("UPDATE " + c.Table + " SET " + c.Column + " = ? WHERE " + strings.Join(where, " AND ") + " AND " + c.Column + " = ?")
	codec := c.codec()
	var after []any
	for {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		rs, err := c.scanBatch(ctx, db, after, moveBatch)
		if err != nil || len(rs) == 0 {
			return m, err
		}
		after = rs[len(rs)-1].key
		type change struct {
			row colRow
			nv  []byte
		}
		var todo []change
		for _, x := range rs {
			kids, err := codec.KIDs(x.guard, x.v)
			if err == nil && !stale(kids, r.active) {
				continue
			}
			var nv []byte
			if err == nil {
				nv, err = codec.Reseal(r, x.guard, x.v)
			}
			if err != nil {
				m.Failed++
				if m.Err == nil {
					m.Err = fmt.Errorf("fieldcrypt: %s row %v: %w", c, x.key, err)
				}
				continue
			}
			todo = append(todo, change{x, nv})
		}
		if len(todo) == 0 {
			continue
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return m, fmt.Errorf("fieldcrypt: %s: %w", c, err)
		}
		var n int64
		for _, ch := range todo {
			args := make([]any, 0, len(c.Key)+2)
			args = append(args, c.bind(ch.nv))
			args = append(args, ch.row.key...)
			args = append(args, c.bind(ch.row.v))
			res, err := tx.ExecContext(ctx, upd, args...)
			if err != nil {
				_ = tx.Rollback()
				return m, fmt.Errorf("fieldcrypt: %s: %w", c, err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
		if err := tx.Commit(); err != nil {
			return m, fmt.Errorf("fieldcrypt: %s: %w", c, err)
		}
		m.Values += n
	}
}

func (c Column) bind(v []byte) any {
	if c.binary() {
		return v
	}
	return string(v)
}

// stale tells whether any of kids is not the active one.
func stale(kids []string, active string) bool {
	for _, k := range kids {
		if k != active {
			return true
		}
	}
	return false
}

// ReencryptColumn moves one column's values to the ring's active key
// (Column.Move over a database alone) and returns how many it rewrote; a
// value that cannot be opened is an error.
func ReencryptColumn(ctx context.Context, db *store.DB, r *Ring, c Column) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	m, err := c.Move(ctx, Place{DB: db}, r)
	if err == nil && m.Err != nil {
		err = m.Err
	}
	return m.Values, err
}

// ErrKeyInUse: a key still seals stored values.
var ErrKeyInUse = errors.New("fieldcrypt: key still in use")
