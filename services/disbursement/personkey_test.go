package disbursement

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/store"
)

// newOfflineService builds the service over the shipped bank configs
// without connections: enough for intake and validation.
func newOfflineService(t *testing.T, db *store.DB, dir string, key []byte, log *slog.Logger) *Service {
	t.Helper()
	cfgs, err := banksim.ShippedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	var banks []*bank.Bank
	for _, c := range cfgs {
		files, err := bank.LoadFileSet(os.DirFS(mappingsRoot(t)), c.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		banks = append(banks, &bank.Bank{Config: c, Files: files})
	}
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(dir, "batches")
	svc, err := New(context.Background(), cfg, banks, connectors.Deps{Store: db, DataDir: dir, Logger: log}, nil, key)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Independent computations of the candidate person keys of an ID.
func hmacKey(key []byte, id string) int64 {
	m := hmac.New(sm3.New, key)
	m.Write([]byte(id))
	return int64(binary.BigEndian.Uint64(m.Sum(nil)))
}

func sm3Key(id string) int64 {
	sum := sm3.Sum([]byte(id))
	return int64(binary.BigEndian.Uint64(sum[:]))
}

func fnvKey(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int64(h.Sum64())
}

// storedKeys returns the person keys of a batch by seq.
func storedKeys(t *testing.T, svc *Service, batch string) map[int64]int64 {
	t.Helper()
	rows, err := svc.db.QueryContext(context.Background(), svc.db.Rebind(
		`SELECT p.seq, p.person_key FROM disb_payments p JOIN disb_batches b ON b.id = p.batch_id WHERE b.name = ?`), batch)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var seq, k int64
		if err := rows.Scan(&seq, &k); err != nil {
			t.Fatal(err)
		}
		out[seq] = k
	}
	return out
}

func TestNewNeedsPersonKey(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	for _, key := range [][]byte{nil, []byte("short")} {
		if _, err := New(context.Background(), cfg, nil, connectors.Deps{Store: openSQLiteDB(t, dir)}, nil, key); !errors.Is(err, ErrPersonKey) {
			t.Fatalf("New with a %d-byte key: %v, want ErrPersonKey", len(key), err)
		}
	}
}

// TestPersonKeysNeedTheKey: the stored person keys are HMAC-SM3 under the
// service's key; none equals what can be computed from the ID alone (the
// unkeyed SM3 or FNV hash, or the pre-002 legacy hash), and another key
// gives other values.
func TestPersonKeysNeedTheKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	list := writeList(t, dir, GenerateOptions{Persons: 2000, Seed: 3, Period: "2026-11"})
	otherKey := []byte("another deployment's person key!")
	var stored [2]map[int64]int64
	for i, key := range [][]byte{testPersonKey, otherKey} {
		d := filepath.Join(dir, string(rune('a'+i)))
		svc := newOfflineService(t, openSQLiteDB(t, mkdir(t, d)), d, key, nil)
		if _, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: list, LetterTotal: 1}); !errors.Is(err, ErrTotalMismatch) {
			t.Fatalf("run: %v", err)
		}
		stored[i] = storedKeys(t, svc, "disbursement-2026-11")
	}
	if len(stored[0]) != 2000 {
		t.Fatalf("%d stored person keys, want 2000", len(stored[0]))
	}
	values := map[int64]bool{}
	for _, k := range stored[0] {
		values[k] = true
	}
	n := 0
	err := readList(list, func(seq int64, r *listRecord) error {
		id := r.id()
		if got, want := stored[0][seq], hmacKey(testPersonKey, id); got != want {
			t.Fatalf("seq %d: stored %d, want HMAC-SM3 under the key %d", seq, got, want)
		}
		for name, k := range map[string]int64{"unkeyed SM3": sm3Key(id), "unkeyed FNV": fnvKey(id), "legacy": legacyPersonKey(id)} {
			if values[k] {
				t.Fatalf("seq %d: the %s hash of an ID is a stored person key", seq, name)
			}
		}
		if stored[1][seq] == stored[0][seq] {
			t.Fatalf("seq %d: two keys give the same person key", seq)
		}
		n++
		return nil
	})
	if err != nil || n != 2000 {
		t.Fatalf("read %d, %v", n, err)
	}
}

func mkdir(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o750); err != nil {
		t.Fatal(err)
	}
	return d
}

// legacyDB returns a state store at the schema before person keys were
// keyed (migration 001 only).
func legacyDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db := openDB(t, dir)
	v1, err := fs.ReadFile(migrations, "migrations/001_disbursement.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(context.Background(), "disbursement", fstest.MapFS{"001_disbursement.sql": {Data: v1}}); err != nil {
		t.Fatal(err)
	}
	return db
}

// legacyBatch stores a finished batch as the service did before migration
// 002: its list file, one row per person with the unkeyed hash, and carry
// rows for the persons whose seq failed says so.
func legacyBatch(t *testing.T, db *store.DB, batchDir, period, list string, failed func(seq int64) bool) {
	t.Helper()
	ctx := context.Background()
	name := "disbursement-" + period
	if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO disb_batches (name, kind, period, stage, status, file_date, created_at, updated_at)
		VALUES (?, 'disbursement', ?, 'done', 'done', ?, 0, 0)`), name, period, period+"-01"); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := db.QueryRowContext(ctx, db.Rebind(`SELECT id FROM disb_batches WHERE name = ?`), name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(batchDir, name), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(list, filepath.Join(batchDir, name, "list.csv")); err != nil {
		t.Fatal(err)
	}
	err := readList(list, func(seq int64, r *listRecord) error {
		st := StatusPaid
		if failed(seq) {
			st = StatusFailed
			if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO disb_carry (kind, person_key, from_period, reason) VALUES ('disbursement', ?, ?, 'closed')`),
				legacyPersonKey(r.id()), period); err != nil {
				return err
			}
		}
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO disb_payments (batch_id, seq, bank, division, amount_fen, status, person_key) VALUES (?, ?, 0, 1, ?, ?, ?)`),
			id, seq, r.amount(), st, legacyPersonKey(r.id()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLegacyPersonKeysMigrated: a store written before person keys were
// keyed is re-keyed when the service starts: each batch from its list file,
// with the carry rows it produced; a batch whose list file is gone keeps
// its legacy values (logged; it cannot run), and its carry rows are
// re-keyed when the person is next listed.
func TestLegacyPersonKeysMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	batchDir := filepath.Join(dir, "batches")
	db := legacyDB(t, dir)
	// The same seed lists the same persons each month.
	oct := writeList(t, mkdir(t, filepath.Join(dir, "oct")), GenerateOptions{Persons: 300, Seed: 5, Period: "2026-10"})
	nov := writeList(t, mkdir(t, filepath.Join(dir, "nov")), GenerateOptions{Persons: 300, Seed: 5, Period: "2026-11"})
	ids := map[int64]string{}
	_ = readList(oct, func(seq int64, r *listRecord) error { ids[seq] = r.id(); return nil })
	octFailed := func(seq int64) bool { return seq%10 == 0 } // 30 persons
	legacyBatch(t, db, batchDir, "2026-10", oct, octFailed)
	// September: person 7 failed; the batch's list file is gone since.
	legacyBatch(t, db, batchDir, "2026-09", oct, func(seq int64) bool { return seq == 7 })
	if err := os.RemoveAll(filepath.Join(batchDir, "disbursement-2026-09")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	svc := newOfflineService(t, db, dir, testPersonKey, slog.New(slog.NewTextHandler(&logs, nil)))

	// October is re-keyed, payments and carry rows.
	for seq, k := range storedKeys(t, svc, "disbursement-2026-10") {
		if k != hmacKey(testPersonKey, ids[seq]) {
			t.Fatalf("October seq %d: person key not re-keyed", seq)
		}
	}
	carry := func(period string) (keyed, legacy map[int64]bool) {
		keyed, legacy = map[int64]bool{}, map[int64]bool{}
		rows, err := svc.db.QueryContext(ctx, svc.db.Rebind(`SELECT person_key, person_keys FROM disb_carry WHERE from_period = ?`), period)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k int64
			var pks string
			if err := rows.Scan(&k, &pks); err != nil {
				t.Fatal(err)
			}
			if pks == personKeysHMAC {
				keyed[k] = true
			} else {
				legacy[k] = true
			}
		}
		return keyed, legacy
	}
	keyed, legacy := carry("2026-10")
	if len(keyed) != 30 || len(legacy) != 0 {
		t.Fatalf("October carry: %d keyed, %d legacy; want 30 and 0", len(keyed), len(legacy))
	}
	for seq, id := range ids {
		if octFailed(seq) && !keyed[hmacKey(testPersonKey, id)] {
			t.Fatalf("October carry lacks the keyed person of seq %d", seq)
		}
	}
	// September keeps its legacy values: logged, and refused by Run.
	if k := storedKeys(t, svc, "disbursement-2026-09")[7]; k != legacyPersonKey(ids[7]) {
		t.Fatal("September's person keys changed without their list file")
	}
	if !bytes.Contains(logs.Bytes(), []byte("legacy (unkeyed) person keys")) || !bytes.Contains(logs.Bytes(), []byte("disbursement-2026-09")) {
		t.Fatalf("the batch left legacy was not logged:\n%s", logs.String())
	}
	if _, err := svc.Run(ctx, RunOptions{Period: "2026-09", LetterTotal: 1}); !errors.Is(err, ErrLegacyPersonKeys) {
		t.Fatalf("run of the legacy batch: %v, want ErrLegacyPersonKeys", err)
	}
	if _, legacy := carry("2026-09"); len(legacy) != 1 {
		t.Fatalf("September carry: %d legacy rows, want 1", len(legacy))
	}

	// November lists everyone: the 30 October failures and September's
	// person are noted as carried, and September's row is re-keyed.
	if _, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: nov, LetterTotal: 1}); !errors.Is(err, ErrTotalMismatch) {
		t.Fatalf("November: %v", err)
	}
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if st.Issues["carried"] != 31 || st.Issues["carry_missing"] != 0 {
		t.Fatalf("November issues %v, want 31 carried and none missing", st.Issues)
	}
	keyed, legacy = carry("2026-09")
	if len(legacy) != 0 || !keyed[hmacKey(testPersonKey, ids[7])] {
		t.Fatalf("September carry after November's intake: keyed %v, legacy %v", keyed, legacy)
	}
	// A second service start finds nothing more to re-key.
	logs.Reset()
	svc = newOfflineService(t, db, dir, testPersonKey, slog.New(slog.NewTextHandler(&logs, nil)))
	if bytes.Contains(logs.Bytes(), []byte("re-keyed legacy person keys")) {
		t.Fatalf("restart re-keyed again:\n%s", logs.String())
	}
}
