package funeral

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed partnermigrations/*.sql
var partnerMigrationsFS embed.FS

// PartnerComponent is the name under which the partner state schema is
// migrated (apart from the records' schema, so that the CLI can open it
// alone).
const PartnerComponent = "funeral_partners"

// Sentinel errors of the partner state.
var (
	// ErrPartnerNotFound: no partner with that id in the state store.
	ErrPartnerNotFound = errors.New("funeral: partner not found")
	// ErrPartnerExists: a partner with that id is already in the state store.
	ErrPartnerExists = errors.New("funeral: partner already exists")
)

// Sealer seals secrets at rest (security/fieldcrypt.Ring: SM4-GCM under
// the hub's field keys).
type Sealer interface {
	Encrypt(plaintext string) (string, error)
	Decrypt(ciphertext string) (string, error)
}

// PartnerStore keeps the funeral partners every replica serves in the
// shared state database: their non-secret fields, whether they are
// disabled, and their signing keys with the secrets sealed. Every change
// bumps one version number in the same transaction; replicas poll it
// (Version) and reload (Load) when it moves. Every change is audited with
// its outcome. It is safe for concurrent use, also by several processes.
type PartnerStore struct {
	db    *store.DB
	seal  Sealer
	audit audit.Appender
	now   func() time.Time
}

// OpenPartnerStore migrates the partner state schema. seal seals issued
// secrets; log audits every change (both required).
func OpenPartnerStore(ctx context.Context, db *store.DB, seal Sealer, log audit.Appender, now func() time.Time) (*PartnerStore, error) {
	if db == nil || seal == nil || log == nil {
		return nil, errors.New("funeral: partner store: db, sealer and audit log are required")
	}
	if now == nil {
		now = time.Now
	}
	if err := db.Migrate(ctx, PartnerComponent, mustSub(partnerMigrationsFS, "partnermigrations")); err != nil {
		return nil, err
	}
	return &PartnerStore{db: db, seal: seal, audit: log, now: now}, nil
}

// PartnerState is the partners as the store holds them at one version.
type PartnerState struct {
	// Version is the state's version (it moves with every change).
	Version int64
	// Partners are every partner with its active (not revoked) key ids and
	// its disabled flag, sorted by id.
	Partners []Partner
	// Secrets are the active keys' secrets the store holds, by key id; a key
	// id without an entry has its secret in the key provider
	// (partner/<key id>).
	Secrets map[string][]byte
}

// Version returns the current version of the partner state (a cheap query
// replicas poll).
func (s *PartnerStore) Version(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM funeral_partner_state WHERE id = 1`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("funeral: partner state version: %w", err)
	}
	return v, nil
}

// Load reads the whole partner state in one transaction.
func (s *PartnerStore) Load(ctx context.Context) (PartnerState, error) {
	st := PartnerState{Secrets: map[string][]byte{}}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT version FROM funeral_partner_state WHERE id = 1`).Scan(&st.Version); err != nil {
			return err
		}
		byID := map[string]*Partner{}
		rows, err := tx.QueryContext(ctx, `SELECT id, spec, disabled FROM funeral_partners ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, spec string
			var disabled int
			if err := rows.Scan(&id, &spec, &disabled); err != nil {
				return err
			}
			var p Partner
			if err := json.Unmarshal([]byte(spec), &p); err != nil {
				return fmt.Errorf("partner %s: spec: %w", id, err)
			}
			p.ID, p.Disabled, p.KeyIDs = id, disabled != 0, nil
			st.Partners = append(st.Partners, p)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range st.Partners {
			byID[st.Partners[i].ID] = &st.Partners[i]
		}
		krows, err := tx.QueryContext(ctx, `SELECT key_id, partner_id, secret FROM funeral_partner_keys WHERE revoked_at = 0 ORDER BY created_at, key_id`)
		if err != nil {
			return err
		}
		defer krows.Close()
		for krows.Next() {
			var kid, pid, sealed string
			if err := krows.Scan(&kid, &pid, &sealed); err != nil {
				return err
			}
			p := byID[pid]
			if p == nil {
				continue
			}
			p.KeyIDs = append(p.KeyIDs, kid)
			if sealed == "" {
				continue
			}
			secret, err := s.unseal(kid, sealed)
			if err != nil {
				return err
			}
			st.Secrets[kid] = secret
		}
		return krows.Err()
	})
	if err != nil {
		return PartnerState{}, fmt.Errorf("funeral: load partner state: %w", err)
	}
	return st, nil
}

// The sealed text binds the secret to its key id, so a secret moved to
// another row does not open.
func (s *PartnerStore) sealSecret(kid string, secret []byte) (string, error) {
	return s.seal.Encrypt(kid + ":" + hex.EncodeToString(secret))
}

func (s *PartnerStore) unseal(kid, sealed string) ([]byte, error) {
	pt, err := s.seal.Decrypt(sealed)
	if err != nil {
		return nil, fmt.Errorf("key %s: unseal: %w", kid, err)
	}
	got, hx, ok := strings.Cut(pt, ":")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(kid)) != 1 {
		return nil, fmt.Errorf("key %s: sealed secret belongs to another key", kid)
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		return nil, fmt.Errorf("key %s: sealed secret is not hex", kid)
	}
	return b, nil
}

// spec is what the store keeps of a partner's non-secret fields.
func spec(p Partner) (string, error) {
	p.KeyIDs, p.Disabled = nil, false
	b, err := json.Marshal(p)
	return string(b), err
}

func (s *PartnerStore) bump(ctx context.Context, tx *sql.Tx, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partner_state SET version = version + 1, changed_at = ? WHERE id = 1`), now.UnixMilli())
	return err
}

// record audits a change with its outcome; a failed change is recorded as
// failed. The change's error (if any) is returned, joined with an audit
// failure.
func (s *PartnerStore) record(ctx context.Context, actor, action, object, detail string, err error) error {
	outcome := audit.OutcomeSuccess
	if err != nil {
		outcome = audit.OutcomeFailure
		detail = strings.TrimSpace(detail + " error=" + err.Error())
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, aerr := s.audit.Append(actx, audit.Record{Actor: actor, Action: action, Object: object, Outcome: outcome, Detail: detail}); aerr != nil {
		return errors.Join(err, fmt.Errorf("funeral: audit %s: %w", action, aerr))
	}
	return err
}

// ImportResult counts what Import changed.
type ImportResult struct {
	// Added partners were new to the store.
	Added int
	// Updated partners had different non-secret fields in the files.
	Updated int
	// Disabled partners were disabled by `disabled: true` in a file.
	Disabled int
	// Keys are key ids new to the store (their secrets stay in the key provider).
	Keys int
}

// Import brings the registry files' partners into the store: a partner new
// to the store is added; the non-secret fields of a known one are taken
// from the file (the files are the declarative source of those fields); a
// file's `disabled: true` disables (a file never enables: that is
// `mzhub partner enable`); key ids the store has never seen are recorded
// as held by the key provider, while key ids it knows (issued, or revoked
// by `rotate-key --drop-old`) are left as they are, so an old file never
// brings a revoked key back. Partners only in the store stay. Import is
// audited when it changed anything.
func (s *PartnerStore) Import(ctx context.Context, partners []Partner, actor string) (ImportResult, error) {
	var res ImportResult
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// Replicas import at start, often together: one at a time.
		if err := s.db.LockTx(ctx, tx, "funeral.partners"); err != nil {
			return err
		}
		for _, p := range partners {
			if err := p.Validate(); err != nil {
				return err
			}
			sp, err := spec(p)
			if err != nil {
				return err
			}
			var old string
			var disabled int
			err = tx.QueryRowContext(ctx, s.db.Rebind(`SELECT spec, disabled FROM funeral_partners WHERE id = ?`), p.ID).Scan(&old, &disabled)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				// Replicas starting together import the same files: the
				// first insert wins, the others change nothing.
				r, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO funeral_partners (id, spec, disabled, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
					ON CONFLICT (id) DO NOTHING`), p.ID, sp, boolInt(p.Disabled), now.UnixMilli(), actor)
				if err != nil {
					return err
				}
				if n, _ := r.RowsAffected(); n > 0 {
					res.Added++
				}
			case err != nil:
				return err
			default:
				if old != sp {
					if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partners SET spec = ?, updated_at = ?, updated_by = ? WHERE id = ?`), sp, now.UnixMilli(), actor, p.ID); err != nil {
						return err
					}
					res.Updated++
				}
				if p.Disabled && disabled == 0 {
					if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partners SET disabled = 1, updated_at = ?, updated_by = ? WHERE id = ?`), now.UnixMilli(), actor, p.ID); err != nil {
						return err
					}
					res.Disabled++
				}
			}
			for _, kid := range p.KeyIDs {
				var owner string
				err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT partner_id FROM funeral_partner_keys WHERE key_id = ?`), kid).Scan(&owner)
				switch {
				case errors.Is(err, sql.ErrNoRows):
					r, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO funeral_partner_keys (key_id, partner_id, secret, created_at) VALUES (?, ?, '', ?)
						ON CONFLICT (key_id) DO NOTHING`), kid, p.ID, now.UnixMilli())
					if err != nil {
						return err
					}
					if n, _ := r.RowsAffected(); n > 0 {
						res.Keys++
					}
				case err != nil:
					return err
				case owner != p.ID:
					return fmt.Errorf("partner %s: key id %s already belongs to %s", p.ID, kid, owner)
				}
			}
		}
		if res == (ImportResult{}) {
			return nil
		}
		return s.bump(ctx, tx, now)
	})
	if err != nil {
		return res, s.record(ctx, actor, "partner.import", "funeral partners", "", fmt.Errorf("funeral: import partners: %w", err))
	}
	if res == (ImportResult{}) {
		return res, nil
	}
	return res, s.record(ctx, actor, "partner.import", "funeral partners",
		fmt.Sprintf("added=%d updated=%d disabled=%d keys=%d", res.Added, res.Updated, res.Disabled, res.Keys), nil)
}

// issueKey stores a new key for partnerID, its secret sealed.
func (s *PartnerStore) issueKey(ctx context.Context, tx *sql.Tx, partnerID string, now time.Time) (Issued, error) {
	kid := newKeyID(partnerID, now)
	secret := keys.Random(32)
	sealed, err := s.sealSecret(kid, secret)
	if err != nil {
		return Issued{}, err
	}
	// created_at orders a partner's keys (the newest survives DropOldKeys):
	// strictly after every earlier key, even within one millisecond.
	var last int64
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COALESCE(MAX(created_at), 0) FROM funeral_partner_keys WHERE partner_id = ?`), partnerID).Scan(&last); err != nil {
		return Issued{}, err
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO funeral_partner_keys (key_id, partner_id, secret, created_at) VALUES (?, ?, ?, ?)`),
		kid, partnerID, sealed, max(now.UnixMilli(), last+1)); err != nil {
		return Issued{}, fmt.Errorf("store key %s: %w", kid, err)
	}
	return Issued{PartnerID: partnerID, KeyID: kid, SecretHex: hex.EncodeToString(secret)}, nil
}

// Add adds a partner and issues its first key (32 random bytes, sealed in
// the store and handed to the integrator once as hex). Audited.
func (s *PartnerStore) Add(ctx context.Context, p Partner, actor string) (Issued, error) {
	now := s.now()
	var iss Issued
	p.KeyIDs = []string{newKeyID(p.ID, now)} // validated like the one issued below
	err := p.Validate()
	if err == nil {
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM funeral_partners WHERE id = ?`), p.ID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %s", ErrPartnerExists, p.ID)
			}
			sp, err := spec(p)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO funeral_partners (id, spec, disabled, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)`),
				p.ID, sp, boolInt(p.Disabled), now.UnixMilli(), actor); err != nil {
				return err
			}
			if iss, err = s.issueKey(ctx, tx, p.ID, now); err != nil {
				return err
			}
			return s.bump(ctx, tx, now)
		})
	}
	return iss, s.record(ctx, actor, "partner.add", p.ID, "key_id="+iss.KeyID, err)
}

// RotateKey issues a new key for a partner. The previous keys stay valid
// until dropOld (after the integrator switched), so a rotation never
// interrupts pushes; with dropOld they are revoked in the same change.
// Audited.
func (s *PartnerStore) RotateKey(ctx context.Context, id string, dropOld bool, actor string) (Issued, error) {
	now := s.now()
	var iss Issued
	var revoked int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.exists(ctx, tx, id); err != nil {
			return err
		}
		if dropOld {
			res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partner_keys SET revoked_at = ? WHERE partner_id = ? AND revoked_at = 0`), now.UnixMilli(), id)
			if err != nil {
				return err
			}
			revoked, _ = res.RowsAffected()
		}
		var err error
		if iss, err = s.issueKey(ctx, tx, id, now); err != nil {
			return err
		}
		return s.bump(ctx, tx, now)
	})
	return iss, s.record(ctx, actor, "partner.rotate_key", id, fmt.Sprintf("key_id=%s drop_old=%t revoked=%d", iss.KeyID, dropOld, revoked), err)
}

// DropOldKeys revokes every key of a partner but the newest (after the
// integrator switched to it). Audited.
func (s *PartnerStore) DropOldKeys(ctx context.Context, id, actor string) (int64, error) {
	now := s.now()
	var revoked int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.exists(ctx, tx, id); err != nil {
			return err
		}
		var newest string
		err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT key_id FROM funeral_partner_keys WHERE partner_id = ? AND revoked_at = 0 ORDER BY created_at DESC, key_id DESC LIMIT 1`), id).Scan(&newest)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partner_keys SET revoked_at = ? WHERE partner_id = ? AND revoked_at = 0 AND key_id <> ?`), now.UnixMilli(), id, newest)
		if err != nil {
			return err
		}
		if revoked, _ = res.RowsAffected(); revoked == 0 {
			return nil
		}
		return s.bump(ctx, tx, now)
	})
	return revoked, s.record(ctx, actor, "partner.drop_old_keys", id, fmt.Sprintf("revoked=%d", revoked), err)
}

// SetDisabled disables or re-enables a partner. Audited.
func (s *PartnerStore) SetDisabled(ctx context.Context, id string, disabled bool, actor string) error {
	now := s.now()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.exists(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE funeral_partners SET disabled = ?, updated_at = ?, updated_by = ? WHERE id = ?`),
			boolInt(disabled), now.UnixMilli(), actor, id); err != nil {
			return err
		}
		return s.bump(ctx, tx, now)
	})
	action := "partner.enable"
	if disabled {
		action = "partner.disable"
	}
	return s.record(ctx, actor, action, id, "", err)
}

func (s *PartnerStore) exists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM funeral_partners WHERE id = ?`), id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s (import the registry files first: mzhub partner import)", ErrPartnerNotFound, id)
	}
	return nil
}

// KeyInfo describes one key of a partner (never its secret).
type KeyInfo struct {
	// KeyID is the key id.
	KeyID string
	// InStore says the store holds the secret (sealed); otherwise the key provider does.
	InStore bool
	// Created is when the key was issued or first imported.
	Created time.Time
	// Revoked is when the key was revoked (zero while active).
	Revoked time.Time
}

// Keys lists a partner's keys, oldest first.
func (s *PartnerStore) Keys(ctx context.Context, id string) ([]KeyInfo, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT key_id, secret <> '', created_at, revoked_at FROM funeral_partner_keys WHERE partner_id = ?`), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []KeyInfo
	for rows.Next() {
		var k KeyInfo
		var c, r int64
		if err := rows.Scan(&k.KeyID, &k.InStore, &c, &r); err != nil {
			return nil, err
		}
		k.Created = time.UnixMilli(c)
		if r > 0 {
			k.Revoked = time.UnixMilli(r)
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, rows.Err()
}
