package disbursement

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io/fs"
	"os"
	"sync"

	"github.com/emmansun/gmsm/sm3"
)

// Person keys.
//
// The service keeps one integer per person across runs (disb_payments,
// disb_carry): the person key, so that a person listed twice, or carried
// from a failed month, is found without storing the ID number. It is the
// first 8 bytes of HMAC-SM3 of the ID number under the key provider's
// disbursement-person key (keys.DisbursementPersonName), so that nobody
// without the key can compute it from an ID number.
//
// Before migration 002 it was FNV-64a of the ID number with an empty
// secret: anyone could recompute it. Rows of that time are marked
// person_keys = 'legacy'. New re-keys each legacy batch from its list file
// (the batch directory's list.csv; row seq is its line), checking that
// every stored value is the legacy hash of that line's ID, together with
// the carry rows the batch produced. A batch whose list file is gone keeps
// its legacy values (they cannot be re-derived; New logs it): such a batch
// cannot run again, and its carry rows are re-keyed when the person next
// appears in a list (validate matches them by the legacy hash once).

// Values of the person_keys columns.
const (
	personKeysLegacy = "legacy"
	personKeysHMAC   = "hmac-sm3"
)

// MinPersonKeySize is the shortest person-key secret New accepts (keys
// init makes 32 bytes).
const MinPersonKeySize = 16

// ErrPersonKey: the person-key secret is missing or too short.
var ErrPersonKey = fmt.Errorf("disbursement: person key missing or shorter than %d bytes (mzhub keys init creates it)", MinPersonKeySize)

// ErrLegacyPersonKeys: a batch still holds unkeyed person keys (its list
// file is gone) and cannot run.
var ErrLegacyPersonKeys = errors.New("disbursement: batch holds legacy (unkeyed) person keys")

// personKeyer computes person keys; it is safe for concurrent use.
type personKeyer struct {
	pool sync.Pool
}

func newPersonKeyer(secret []byte) (*personKeyer, error) {
	if len(secret) < MinPersonKeySize {
		return nil, ErrPersonKey
	}
	key := append([]byte(nil), secret...)
	return &personKeyer{pool: sync.Pool{New: func() any { return hmac.New(sm3.New, key) }}}, nil
}

// key returns the person key of an ID number.
func (p *personKeyer) key(id string) int64 {
	m := p.pool.Get().(hash.Hash)
	m.Reset()
	_, _ = m.Write([]byte(id))
	var sum [sm3.Size]byte
	k := int64(binary.BigEndian.Uint64(m.Sum(sum[:0])))
	p.pool.Put(m)
	return k
}

// legacyPersonKey is the person key as stored before migration 002: FNV-64a
// of an empty secret, a zero byte and the ID number.
func legacyPersonKey(id string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return int64(h.Sum64())
}

func (s *Service) personKey(id string) int64 { return s.keyer.key(id) }

// rekeyLegacy re-keys every batch still holding legacy person keys whose
// list file is there; it logs the others.
func (s *Service) rekeyLegacy(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, name, kind, period, stage FROM disb_batches WHERE person_keys = ? ORDER BY id`), personKeysLegacy)
	if err != nil {
		return fmt.Errorf("disbursement: legacy person keys: %w", err)
	}
	var legacy []Batch
	for rows.Next() {
		var b Batch
		if err := rows.Scan(&b.ID, &b.Name, &b.Kind, &b.Period, &b.Stage); err != nil {
			rows.Close()
			return fmt.Errorf("disbursement: legacy person keys: %w", err)
		}
		legacy = append(legacy, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("disbursement: legacy person keys: %w", err)
	}
	for i := range legacy {
		b := &legacy[i]
		n, err := s.rekeyBatch(ctx, b)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, fs.ErrNotExist):
			s.log.Warn("disbursement: batch keeps legacy (unkeyed) person keys: its list file is gone; its carried persons are re-keyed when next listed",
				"batch", b.Name, "list", s.listPath(b))
		case err != nil:
			// One batch's problem does not stop the hub: the batch stays
			// legacy and Run refuses it with this error.
			s.log.Error("disbursement: batch keeps legacy (unkeyed) person keys", "batch", b.Name, "err", err)
		default:
			s.log.Info("disbursement: re-keyed legacy person keys with HMAC-SM3", "batch", b.Name, "persons", n)
		}
	}
	return nil
}

// rekeyBatch replaces a legacy batch's person keys, and those of the carry
// rows it produced, by the keyed ones, in one transaction. An error wrapping
// fs.ErrNotExist means the list file is gone. A batch still at intake holds
// no keys that count (intake starts again from scratch) and is only marked.
func (s *Service) rekeyBatch(ctx context.Context, b *Batch) (int64, error) {
	if b.Stage == StageIntake {
		_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_batches SET person_keys = ? WHERE id = ?`), personKeysHMAC, b.ID)
		if err != nil {
			return 0, fmt.Errorf("disbursement: re-key batch %s: %w", b.Name, err)
		}
		return 0, nil
	}
	if _, err := os.Stat(s.listPath(b)); err != nil {
		return 0, fmt.Errorf("disbursement: re-key batch %s: %w", b.Name, err)
	}
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// The legacy carry rows this batch produced (failed persons; few).
		carry := map[int64]bool{}
		rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT person_key FROM disb_carry WHERE kind = ? AND from_period = ? AND person_keys = ?`),
			b.Kind, b.Period, personKeysLegacy)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k int64
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			carry[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		upd, err := tx.PrepareContext(ctx, s.db.Rebind(`UPDATE disb_payments SET person_key = ? WHERE batch_id = ? AND seq = ? AND person_key = ?`))
		if err != nil {
			return err
		}
		defer upd.Close()
		rekeyed := map[int64]int64{} // legacy → keyed, for the carry rows
		err = readList(s.listPath(b), func(seq int64, r *listRecord) error {
			old, k := legacyPersonKey(r.id()), s.personKey(r.id())
			res, err := upd.ExecContext(ctx, k, b.ID, seq, old)
			if err != nil {
				return err
			}
			if m, _ := res.RowsAffected(); m == 1 {
				n++
			}
			if carry[old] {
				rekeyed[old] = k
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Every row must have been re-keyed: a stored value that is not the
		// legacy hash of its line's ID means the list is not the one taken in.
		var total int64
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM disb_payments WHERE batch_id = ?`), b.ID).Scan(&total); err != nil {
			return err
		}
		if total != n {
			return fmt.Errorf("%d of %d person keys do not match the list file %s", total-n, total, s.listPath(b))
		}
		for old, k := range rekeyed {
			if err := rekeyCarry(ctx, tx, s.db.Rebind, b.Kind, old, k); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE disb_batches SET person_keys = ? WHERE id = ?`), personKeysHMAC, b.ID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("disbursement: re-key batch %s: %w", b.Name, err)
	}
	return n, nil
}

// rekeyCarry replaces a legacy carry row's key by the keyed one. When a
// keyed row for the person exists already (made by a later run), it is the
// newer and the legacy row goes.
func rekeyCarry(ctx context.Context, tx *sql.Tx, rebind func(string) string, kind string, old, k int64) error {
	var exists int
	if err := tx.QueryRowContext(ctx, rebind(`SELECT COUNT(*) FROM disb_carry WHERE kind = ? AND person_key = ? AND person_keys = ?`),
		kind, k, personKeysHMAC).Scan(&exists); err != nil {
		return err
	}
	if exists > 0 {
		_, err := tx.ExecContext(ctx, rebind(`DELETE FROM disb_carry WHERE kind = ? AND person_key = ? AND person_keys = ?`), kind, old, personKeysLegacy)
		return err
	}
	_, err := tx.ExecContext(ctx, rebind(`UPDATE disb_carry SET person_key = ?, person_keys = ? WHERE kind = ? AND person_key = ? AND person_keys = ?`),
		k, personKeysHMAC, kind, old, personKeysLegacy)
	return err
}

// checkPersonKeys refuses to run a batch that still holds legacy keys.
func (s *Service) checkPersonKeys(ctx context.Context, b *Batch) error {
	var pk string
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT person_keys FROM disb_batches WHERE id = ?`), b.ID).Scan(&pk); err != nil {
		return fmt.Errorf("disbursement: load batch: %w", err)
	}
	if pk == personKeysHMAC {
		return nil
	}
	if _, err := s.rekeyBatch(ctx, b); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrLegacyPersonKeys, b.Name, err)
	}
	return nil
}
