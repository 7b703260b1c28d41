package allowance

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Fields protects ID numbers: a blind index for lookups and sealing at
// rest (security/fieldcrypt.Ring).
type Fields interface {
	BlindIndex(value string) string
	Encrypt(plaintext string) (string, error)
	Decrypt(ciphertext string) (string, error)
}

// Person statuses.
const (
	StatusActive   = "active"
	StatusDeceased = "deceased"
	StatusMovedOut = "moved_out"
)

// Options are what the service needs.
type Options struct {
	// DB is the state store.
	DB *store.DB
	// Fields gives blind indexes and seals ID numbers.
	Fields Fields
	// Audit records operators' decisions.
	Audit audit.Appender
	// Logger, Clock and Metrics (nil: discard, real time, none).
	Logger  *slog.Logger
	Clock   clock.Clock
	Metrics prometheus.Registerer
}

// Service applies the data sea's records and the allowance rules.
type Service struct {
	db     *store.DB
	fields Fields
	audit  audit.Appender
	log    *slog.Logger
	clock  clock.Clock

	applied *prometheus.CounterVec
	// cards, when set, gives card statuses to Screen (SetCardStatus).
	cards CardStatuser
	// cardQuery, when set, answers the console's card-status queries (SetCardQuery).
	cardQuery CardStatuser
}

var _ datasea.Applier = (*Service)(nil)

// New migrates the schema and returns the service.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Fields == nil {
		return nil, errors.New("allowance: state store and fields required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := o.DB.Migrate(ctx, "allowance", sub); err != nil {
		return nil, err
	}
	s := &Service{db: o.DB, fields: o.Fields, audit: o.Audit, log: o.Logger.With("service", "allowance"), clock: o.Clock,
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_allowance_records_total",
			Help: "Data-sea records handled by the allowance rules, by kind and outcome (new, seen, quarantined)."}, []string{"kind", "outcome"})}
	if o.Metrics != nil {
		if err := o.Metrics.Register(s.applied); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			s.applied = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return s, nil
}

// PersonKey returns the blind index identifying the person of an ID number.
func (s *Service) PersonKey(id string) string {
	return s.fields.BlindIndex(strings.ToUpper(strings.TrimSpace(id)))
}

// nextMonth returns the month after the date's (YYYY-MM-DD → YYYY-MM).
func nextMonth(date string) string {
	y, _ := strconv.Atoi(date[:4])
	m, _ := strconv.Atoi(date[5:7])
	m++
	if m == 13 {
		y, m = y+1, 1
	}
	return fmt.Sprintf("%04d-%02d", y, m)
}

// Apply applies records idempotently by record id (a record seen before
// changes nothing) and quarantines bad ones, all in one transaction:
//
//   - death: the person's payment stops from the month after death;
//   - move_out: payment stops from the month after the move (a deceased
//     person stays deceased);
//   - move_in: a pending entry for district review.
func (s *Service) Apply(ctx context.Context, source string, recs []datasea.Record, bad []datasea.Bad) (datasea.Applied, error) {
	var out datasea.Applied
	now := s.clock.Now().UnixMilli()
	type prepared struct {
		r              datasea.Record
		person, sealed string
	}
	// The crypto runs outside the transaction, which stays short.
	prep := make([]prepared, 0, len(recs))
	for _, r := range recs {
		r = r.Normalize()
		if err := r.Check(s.clock.Now()); err != nil {
			bad = append(bad, datasea.Bad{Ref: source + " record " + r.ID, RecordID: r.ID, Reason: err.Error()})
			continue
		}
		sealed, err := s.fields.Encrypt(r.IDNumber)
		if err != nil {
			return out, fmt.Errorf("allowance: seal: %w", err)
		}
		prep = append(prep, prepared{r: r, person: s.PersonKey(r.IDNumber), sealed: sealed})
	}
	counts := map[[2]string]int{}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		out = datasea.Applied{}
		clear(counts)
		ins, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO allow_records (record_id, kind, person, id_masked, id_sealed, event_date,
			district, region, source, state, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'applied', ?) ON CONFLICT (record_id) DO NOTHING`))
		if err != nil {
			return err
		}
		defer ins.Close()
		rules := &ruleStmts{s: s, tx: tx, m: map[datasea.Kind]*sql.Stmt{}}
		defer rules.close()
		for _, p := range prep {
			r := p.r
			res, err := ins.ExecContext(ctx, r.ID, string(r.Kind), p.person, mask.IDNumber(r.IDNumber), p.sealed, r.Date, r.District, r.Region, source, now)
			if err != nil {
				return fmt.Errorf("record %s: %w", r.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				out.Seen++
				counts[[2]string{string(r.Kind), "seen"}]++
				continue
			}
			out.New++
			counts[[2]string{string(r.Kind), "new"}]++
			if err := rules.rule(ctx, r, p.person, now); err != nil {
				return fmt.Errorf("record %s: %w", r.ID, err)
			}
		}
		for _, b := range bad {
			item := b.RecordID
			if item == "" {
				h := sha256.Sum256([]byte(b.Ref + "\x00" + b.Raw))
				item = "raw:" + hex.EncodeToString(h[:8])
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO allow_quarantine (source, item, ref, record_id, reason, raw, created_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, item) DO NOTHING`), source, item, b.Ref, b.RecordID, mask.Text(b.Reason), b.Raw, now); err != nil {
				return err
			}
			out.Quarantined++
			counts[[2]string{"unknown", "quarantined"}]++
		}
		return nil
	})
	if err != nil {
		return datasea.Applied{}, fmt.Errorf("allowance: apply: %w", err)
	}
	for k, n := range counts {
		s.applied.WithLabelValues(k[0], k[1]).Add(float64(n))
	}
	return out, nil
}

// Rule statements, prepared once per Apply transaction.
const (
	sqlDeath = `INSERT INTO allow_persons (person, id_masked, status, stop_month, record_id, updated_ms)
		VALUES (?, ?, 'deceased', ?, ?, ?) ON CONFLICT (person) DO UPDATE SET status = 'deceased',
		stop_month = CASE WHEN allow_persons.status <> 'active' AND allow_persons.stop_month < excluded.stop_month
			THEN allow_persons.stop_month ELSE excluded.stop_month END,
		record_id = excluded.record_id, updated_ms = excluded.updated_ms`
	sqlMoveOut = `INSERT INTO allow_persons (person, id_masked, status, stop_month, record_id, updated_ms)
		VALUES (?, ?, 'moved_out', ?, ?, ?) ON CONFLICT (person) DO UPDATE SET
		status = CASE WHEN allow_persons.status = 'deceased' THEN 'deceased' ELSE 'moved_out' END,
		stop_month = CASE WHEN allow_persons.status <> 'active' AND allow_persons.stop_month < excluded.stop_month
			THEN allow_persons.stop_month ELSE excluded.stop_month END,
		record_id = CASE WHEN allow_persons.status = 'deceased' THEN allow_persons.record_id ELSE excluded.record_id END,
		updated_ms = excluded.updated_ms`
	sqlMoveIn = `INSERT INTO allow_reviews (record_id, person, id_masked, district, region, event_date, state)
		VALUES (?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (record_id) DO NOTHING`
	// sqlAppliedAfter finds a card application made after a 迁出.
	sqlAppliedAfter = `SELECT MIN(applied_on) FROM allow_applications WHERE person = ? AND applied_on > ?`
)

// ruleStmts prepares the rule statements of a transaction on first use.
type ruleStmts struct {
	s  *Service
	tx *sql.Tx
	m  map[datasea.Kind]*sql.Stmt
	// after is sqlAppliedAfter, prepared on the first 迁出.
	after *sql.Stmt
}

func (r *ruleStmts) get(ctx context.Context, k datasea.Kind) (*sql.Stmt, error) {
	if st, ok := r.m[k]; ok {
		return st, nil
	}
	q := map[datasea.Kind]string{datasea.Death: sqlDeath, datasea.MoveOut: sqlMoveOut, datasea.MoveIn: sqlMoveIn}[k]
	if q == "" {
		return nil, fmt.Errorf("unknown kind %q", k)
	}
	st, err := r.tx.PrepareContext(ctx, r.s.db.Rebind(q))
	if err != nil {
		return nil, err
	}
	r.m[k] = st
	return st, nil
}

func (r *ruleStmts) close() {
	for _, st := range r.m {
		_ = st.Close()
	}
	if r.after != nil {
		_ = r.after.Close()
	}
}

// rule applies one new record: death and move out stop payment from the
// month after the event (a death wins over a move out; the earlier stop
// month stays), a move in opens a review.
func (r *ruleStmts) rule(ctx context.Context, rec datasea.Record, person string, now int64) error {
	st, err := r.get(ctx, rec.Kind)
	if err != nil {
		return err
	}
	masked := mask.IDNumber(rec.IDNumber)
	if rec.Kind == datasea.MoveIn {
		_, err = st.ExecContext(ctx, rec.ID, person, masked, rec.District, rec.Region, rec.Date)
		return err
	}
	if _, err = st.ExecContext(ctx, person, masked, nextMonth(rec.Date), rec.ID, now); err != nil || rec.Kind != datasea.MoveOut {
		return err
	}
	// A card application already received, made after this 迁出 (the
	// application may come before the record that it follows).
	if r.after == nil {
		if r.after, err = r.tx.PrepareContext(ctx, r.s.db.Rebind(sqlAppliedAfter)); err != nil {
			return err
		}
	}
	var applied string
	err = r.after.QueryRowContext(ctx, person, rec.Date).Scan(&sqlNullString{&applied})
	if err != nil || applied == "" {
		return err
	}
	return r.s.warn(ctx, r.tx, person, WarnAppliedAfterMoveOut, masked,
		fmt.Sprintf("card application of %s after 迁出 of %s, no later 迁入", applied, rec.Date), "datasea "+rec.ID)
}

// Person is what the service knows of a person.
type Person struct {
	// IDMasked is the masked ID number.
	IDMasked string
	// Status is active, deceased or moved_out.
	Status string
	// StopMonth is the first month not paid (YYYY-MM), empty when active.
	StopMonth string
	// RecordID is the record that stopped payment.
	RecordID string
}

// PersonOf returns the state of the person of an ID number (active when
// no record stopped them).
func (s *Service) PersonOf(ctx context.Context, id string) (Person, error) {
	p := Person{IDMasked: mask.IDNumber(id), Status: StatusActive}
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT status, stop_month, record_id FROM allow_persons WHERE person = ?`), s.PersonKey(id)).
		Scan(&p.Status, &p.StopMonth, &p.RecordID)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if p.Status == StatusActive {
		p.StopMonth = ""
	}
	return p, err
}

func (s *Service) auditf(ctx context.Context, actor, action, object, outcome, f string, a ...any) error {
	if s.audit == nil {
		return nil
	}
	_, err := s.audit.Append(ctx, audit.Record{Time: s.clock.Now(), Actor: audit.UserActor(actor), Action: "allowance." + action,
		Object: object, Outcome: outcome, Detail: fmt.Sprintf(f, a...)})
	return err
}

func (s *Service) nowMS() int64 { return s.clock.Now().UnixMilli() }
