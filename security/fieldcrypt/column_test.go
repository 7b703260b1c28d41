package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// guardCodec seals only the values whose guard says "1" (as a bus message
// whose headers mark its body sealed): the others are plaintext that may
// look like an envelope.
type guardCodec struct{}

func (guardCodec) KIDs(guard, v []byte) ([]string, error) {
	if string(guard) != "1" {
		return nil, nil
	}
	return []string{SealedKID(v)}, nil
}

func (guardCodec) Reseal(r *Ring, _, v []byte) ([]byte, error) {
	out, _, err := r.Reseal(v)
	return out, err
}

func (guardCodec) Open(r *Ring, guard, v []byte) error {
	if string(guard) != "1" {
		return nil
	}
	_, err := r.Open(v)
	return err
}

// TestColumnsMoveToTheActiveKey: text and envelope columns with composite
// keys, a guarded column whose plaintext looks sealed, and plaintext left
// from before sealing all move to the new key; a second pass rewrites
// nothing; a value under a key the ring lacks is counted as failed and the
// rest still move; after the old key is dropped every value opens.
func TestColumnsMoveToTheActiveKey(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		blob := "BLOB"
		if db.Dialect() == store.Postgres {
			blob = "BYTEA"
		}
		for _, q := range []string{
			`CREATE TABLE recs (partner TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (partner, kind, id))`,
			`CREATE TABLE msgs (id BIGINT PRIMARY KEY, sealed INTEGER NOT NULL, body ` + blob + `)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		old, other := ring(t, "k1"), ring(t, "k0")
		const n = 450 // more than two batches
		plain := map[string]string{}
		for i := range n {
			id := fmt.Sprintf("r%04d", i)
			v := fmt.Sprintf(`{"name":"deceased %d"}`, i)
			plain[id] = v
			stored := v
			if i%10 != 0 { // every tenth stored before sealing was on
				stored, _ = old.Encrypt(v)
			}
			if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO recs VALUES (?, ?, ?, ?)`), fmt.Sprintf("p%d", i%3), "hall", id, stored); err != nil {
				t.Fatal(err)
			}
			body, sealed := []byte(v), 0
			if i%7 == 0 {
				// Plaintext that looks like an envelope under k1: only
				// the guard tells it is not one.
				body = append([]byte{1, 2, 'k', '1'}, body...)
			} else {
				body, _ = old.Seal(body)
				sealed = 1
			}
			if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO msgs VALUES (?, ?, ?)`), i, sealed, body); err != nil {
				t.Fatal(err)
			}
		}
		// One row under a key this ring never had.
		lost, _ := other.Encrypt("lost")
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO recs VALUES ('p9', 'hall', 'lost', ?)`), lost); err != nil {
			t.Fatal(err)
		}
		recs := Column{Table: "recs", Key: []string{"partner", "kind", "id"}, Column: "data"}
		msgs := Column{Table: "msgs", Key: []string{"id"}, Column: "body", Codec: guardCodec{}, Binary: true, Guard: "sealed"}
		at := Place{DB: db}

		inv, err := recs.Inventory(ctx, at, nil)
		if err != nil || inv["k1"] != n-n/10 || inv["k0"] != 1 || len(inv) != 2 {
			t.Fatalf("recs inventory before: %v %v", inv, err)
		}
		r := ring(t, "k1", "k2")
		m, err := recs.Move(ctx, at, r)
		if err != nil || m.Values != n-n/10 || m.Failed != 1 || !errors.Is(m.Err, ErrUnknownKey) {
			t.Fatalf("recs: %+v %v", m, err)
		}
		wantMsgs := int64(n - (n+6)/7)
		if m, err := msgs.Move(ctx, at, r); err != nil || m.Values != wantMsgs || m.Failed != 0 {
			t.Fatalf("msgs: %+v %v", m, err)
		}
		// Idempotent: nothing is left to move.
		for _, c := range []Column{recs, msgs} {
			if m, err := c.Move(ctx, at, r); err != nil || m.Values != 0 {
				t.Fatalf("%s second pass: %+v %v", c, m, err)
			}
		}
		if inv, _ := recs.Inventory(ctx, at, nil); inv["k1"] != 0 || inv["k2"] != n-n/10 {
			t.Fatalf("recs inventory after: %v", inv)
		}
		if inv, _ := msgs.Inventory(ctx, at, nil); inv["k1"] != 0 || inv["k2"] != wantMsgs {
			t.Fatalf("msgs inventory after: %v", inv)
		}

		// k1 dropped: everything opens under k2 alone.
		only2, err := r.Without("k1")
		if err != nil || only2.ActiveKID() != "k2" {
			t.Fatalf("without k1: %v", err)
		}
		if inv, _ := msgs.Inventory(ctx, at, only2); inv[Unreadable] != 0 || inv["k2"] != wantMsgs {
			t.Fatalf("msgs opened under k2: %v", inv)
		}
		if inv, _ := recs.Inventory(ctx, at, only2); inv[Unreadable] != 1 || inv["k2"] != n-n/10 {
			t.Fatalf("recs opened under k2: %v", inv)
		}
		rows, err := db.QueryContext(ctx, `SELECT id, data FROM recs WHERE id <> 'lost'`)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for rows.Next() {
			var id, data string
			if err := rows.Scan(&id, &data); err != nil {
				t.Fatal(err)
			}
			if data[0] != '{' {
				if data, err = only2.Decrypt(data); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
			}
			if data != plain[id] {
				t.Fatalf("%s: %q", id, data)
			}
			got++
		}
		rows.Close()
		if got != n {
			t.Fatalf("read back %d of %d", got, n)
		}
		rows, err = db.QueryContext(ctx, `SELECT id, sealed, body FROM msgs`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, sealed int
			var body []byte
			if err := rows.Scan(&id, &sealed, &body); err != nil {
				t.Fatal(err)
			}
			if sealed == 1 {
				if body, err = only2.Open(body); err != nil {
					t.Fatalf("msg %d: %v", id, err)
				}
			} else {
				body = bytes.TrimPrefix(body, []byte{1, 2, 'k', '1'})
			}
			if string(body) != plain[fmt.Sprintf("r%04d", id)] {
				t.Fatalf("msg %d: %q", id, body)
			}
		}
	})
}

// TestMoveWhileWritten: a row the hub rewrites between the pass's read
// and its update is not overwritten with the older value.
func TestMoveWhileWritten(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	old := ring(t, "k1")
	a, _ := old.Encrypt("first")
	if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES (1, ?)`, a); err != nil {
		t.Fatal(err)
	}
	r := ring(t, "k1", "k2")
	c := Column{Table: "t", Key: []string{"id"}, Column: "v", Codec: racingCodec{db: db, r: old}}
	m, err := c.Move(ctx, Place{DB: db}, r)
	if err != nil || m.Values != 0 {
		t.Fatalf("move over a concurrent write: %+v %v", m, err)
	}
	var v string
	_ = db.QueryRowContext(ctx, `SELECT v FROM t WHERE id = 1`).Scan(&v)
	if pt, _ := r.Decrypt(v); pt != "second" {
		t.Fatalf("the concurrent write was lost: %q", pt)
	}
}

// racingCodec writes a new value to the row while its old one is being
// resealed, as the hub would.
type racingCodec struct {
	db *store.DB
	r  *Ring
}

func (rc racingCodec) KIDs(g, v []byte) ([]string, error) { return textCodec{}.KIDs(g, v) }

func (rc racingCodec) Open(r *Ring, g, v []byte) error { return textCodec{}.Open(r, g, v) }

func (rc racingCodec) Reseal(r *Ring, g, v []byte) ([]byte, error) {
	b, _ := rc.r.Encrypt("second")
	if _, err := rc.db.ExecContext(context.Background(), `UPDATE t SET v = ? WHERE id = 1`, b); err != nil {
		return nil, err
	}
	return textCodec{}.Reseal(r, g, v)
}

func TestColumnValidate(t *testing.T) {
	for _, c := range []Column{
		{Table: "t", Column: "v"},
		{Table: "t; DROP", Key: []string{"id"}, Column: "v"},
		{Table: "t", Key: []string{"id"}, Column: "v", Guard: "g"},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
