package fieldcrypt

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm4"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestKnownAnswers checks SM4 and SM4-GCM against published vectors.
func TestKnownAnswers(t *testing.T) {
	// GB/T 32907-2016 appendix A, example 1: one block.
	key := unhex("0123456789abcdeffedcba9876543210")
	block, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 16)
	block.Encrypt(out, key)
	if hex.EncodeToString(out) != "681edf34d206965e86b3e94f536e4246" {
		t.Fatalf("SM4 block = %x", out)
	}
	// RFC 8998 appendix A.1: SM4-GCM.
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	iv := unhex("00001234567800000000ABCD")
	aad := unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
	pt := unhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA")
	want := unhex("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D" +
		"83DE3541E4C2B58177E065A9BF7B62EC")
	if got := gcm.Seal(nil, iv, pt, aad); !bytes.Equal(got, want) {
		t.Fatalf("SM4-GCM = %x", got)
	}
	if got, err := gcm.Open(nil, iv, want, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("SM4-GCM open: %v", err)
	}
}

func ring(t testing.TB, kids ...string) *Ring {
	t.Helper()
	fk := map[string][]byte{}
	for _, k := range kids {
		fk[k] = bytes.Repeat([]byte(k[len(k)-1:]), 16)
	}
	r, err := NewRing(fk, []byte("blind index key, thirty-two byte"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEncryptDecrypt(t *testing.T) {
	r := ring(t, "k1")
	const id = "11010519491231002X"
	a, _ := r.Encrypt(id)
	b, _ := r.Encrypt(id)
	if a == b {
		t.Fatal("same ciphertext twice: nonce not random")
	}
	if !strings.HasPrefix(a, "k1:") || strings.Contains(a, id) {
		t.Fatalf("ciphertext %q", a)
	}
	for _, ct := range []string{a, b} {
		if pt, err := r.Decrypt(ct); err != nil || pt != id {
			t.Fatalf("Decrypt = %q, %v", pt, err)
		}
	}
	if ct, _ := r.Encrypt(""); ct != "" {
		t.Fatal("empty value encrypted")
	}
	// Tampering: flip a byte of the body; change the kid.
	raw, _ := b64.DecodeString(a[3:])
	raw[len(raw)-1] ^= 1
	for name, bad := range map[string]string{
		"flipped":   "k1:" + b64.EncodeToString(raw),
		"no kid":    a[3:],
		"truncated": a[:10],
	} {
		if _, err := r.Decrypt(bad); !errors.Is(err, ErrCiphertext) {
			t.Errorf("%s: %v", name, err)
		}
	}
	r2 := ring(t, "k1", "k2")
	moved := "k2:" + a[3:]
	if _, err := r2.Decrypt(moved); !errors.Is(err, ErrCiphertext) {
		t.Errorf("kid swapped: %v (the kid must be authenticated)", err)
	}
	if _, err := r.Decrypt("k9:" + a[3:]); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: %v", err)
	}
}

func TestBlindIndex(t *testing.T) {
	r := ring(t, "k1")
	a := r.BlindIndex("11010519491231002X")
	if a != r.BlindIndex(" 110105 19491231 002x ") || len(a) != 64 {
		t.Fatal("normalisation")
	}
	if a == r.BlindIndex("11010519491231003X") {
		t.Fatal("collision")
	}
	// Same across rotations of the field key: lookups keep working.
	if ring(t, "k1", "k2").BlindIndex("11010519491231002X") != a {
		t.Fatal("blind index depends on the field key")
	}
}

// fixtureIDs returns valid-looking resident IDs and account numbers.
func fixture(n int) (ids, accounts []string) {
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("3101%02d19%02d%02d%02d%03d", 1+i%15, 40+i%50, 1+i%12, 1+i%28, i%1000)
		sum := 0
		for j := 0; j < 17; j++ {
			sum += int(body[j]-'0') * w[j]
		}
		ids = append(ids, body+string("10X98765432"[sum%11]))
		accounts = append(accounts, fmt.Sprintf("6222%015d", 4000000000+i*7919))
	}
	return
}

const schema = `CREATE TABLE persons (
	person_id BIGINT PRIMARY KEY,
	id_number_enc TEXT NOT NULL,
	id_number_bidx TEXT NOT NULL,
	account_enc TEXT NOT NULL
)`

func insert(t *testing.T, db *store.DB, r *Ring, ids, accounts []string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		idc, _ := r.Encrypt(ids[i])
		acc, _ := r.Encrypt(accounts[i])
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO persons VALUES (?, ?, ?, ?)`), i+1, idc, r.BlindIndex(ids[i]), acc); err != nil {
			t.Fatal(err)
		}
	}
}

// dirBytes reads every file of the database (main file, WAL, shared memory).
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestNoPlaintextOnDisk writes the fixture through the ring into a SQLite
// file, then reads the file's bytes and looks for any ID or account number.
func TestNoPlaintextOnDisk(t *testing.T) {
	ids, accounts := fixture(200)
	ctx := context.Background()
	open := func(dir string) *store.DB {
		cfg := store.DefaultConfig()
		cfg.Path = filepath.Join(dir, "state.db")
		db, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	r := ring(t, "k1")

	// Control: the same scan finds plaintext when it is there.
	ctrlDir := t.TempDir()
	ctrl := open(ctrlDir)
	if _, err := ctrl.ExecContext(ctx, `CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	_, _ = ctrl.ExecContext(ctx, `INSERT INTO t VALUES (?)`, ids[7])
	ctrl.Close()
	if !bytes.Contains(dirBytes(t, ctrlDir), []byte(ids[7])) {
		t.Fatal("control: plaintext not found in an unencrypted file; the scan is broken")
	}

	dir := t.TempDir()
	db := open(dir)
	insert(t, db, r, ids, accounts)
	// Lookup by blind index works on the encrypted table.
	var enc string
	if err := db.QueryRowContext(ctx, `SELECT id_number_enc FROM persons WHERE id_number_bidx = ?`, r.BlindIndex(ids[42])).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if pt, _ := r.Decrypt(enc); pt != ids[42] {
		t.Fatalf("lookup found %q", pt)
	}
	db.Close()
	all := dirBytes(t, dir)
	for i := range ids {
		for _, v := range []string{ids[i], ids[i][6:14] + ids[i][14:], accounts[i]} {
			if bytes.Contains(all, []byte(v)) {
				t.Fatalf("plaintext %s found in the database file", v[:4]+"…")
			}
		}
	}
}

func TestRotationAndReencrypt(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ids, accounts := fixture(250)
		old := ring(t, "k1")
		insert(t, db, old, ids, accounts)

		// Rotate: k2 encrypts, k1 still decrypts.
		r := ring(t, "k1", "k2")
		if r.ActiveKID() != "k2" {
			t.Fatalf("active %s", r.ActiveKID())
		}
		cols := []Column{{Table: "persons", Key: []string{"person_id"}, Column: "id_number_enc"}, {Table: "persons", Key: []string{"person_id"}, Column: "account_enc"}}
		for _, c := range cols {
			n, err := ReencryptColumn(ctx, db, r, c)
			if err != nil || n != 250 {
				t.Fatalf("%s: %d, %v", c, n, err)
			}
			if n, _ := ReencryptColumn(ctx, db, r, c); n != 0 {
				t.Fatalf("%s: second pass rewrote %d", c, n)
			}
		}
		// Drop k1: every value still decrypts, and the index still finds it.
		only2 := ring(t, "k2")
		rows, err := db.QueryContext(ctx, `SELECT person_id, id_number_enc, account_enc FROM persons ORDER BY person_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int
			var a, b string
			if err := rows.Scan(&id, &a, &b); err != nil {
				t.Fatal(err)
			}
			pa, err1 := only2.Decrypt(a)
			pb, err2 := only2.Decrypt(b)
			if err1 != nil || err2 != nil || pa != ids[id-1] || pb != accounts[id-1] {
				t.Fatalf("row %d: %v %v", id, err1, err2)
			}
		}
	})
}

func TestLoadRing(t *testing.T) {
	ctx := context.Background()
	p := keys.NewFile(t.TempDir())
	if _, err := LoadRing(ctx, p); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("empty provider: %v", err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := keys.Init(ctx, p, now); err != nil {
		t.Fatal(err)
	}
	r1, err := LoadRing(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := r1.Encrypt("6222021234567890123")
	kid, err := keys.RotateField(ctx, p, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := LoadRing(ctx, p)
	if err != nil || "field/"+r2.ActiveKID() != kid {
		t.Fatalf("after rotation: %v %s", err, r2.ActiveKID())
	}
	if pt, err := r2.Decrypt(ct); err != nil || pt != "6222021234567890123" {
		t.Fatalf("old value after rotation: %v", err)
	}
}

func FuzzDecrypt(f *testing.F) {
	f.Add("k1:AAAA")
	f.Add("k1:")
	f.Fuzz(func(t *testing.T, s string) {
		r := ring(t, "k1")
		_, _ = r.Decrypt(s)
	})
}
