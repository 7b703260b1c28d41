package audit

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations returns the schema of component "audit" for store.DB.Migrate.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationsFS, "migrations")
	return sub
}

// Component is the migration component name.
const Component = "audit"

// Outcomes. Use these rather than free text so the console can filter.
const (
	// OutcomeSuccess: the action was carried out.
	OutcomeSuccess = "success"
	// OutcomeFailure: the action was attempted and failed.
	OutcomeFailure = "failure"
	// OutcomeDenied: the action was refused (authentication, authorisation,
	// allowlist, rate limit).
	OutcomeDenied = "denied"
)

// Record is one audited event as the caller describes it.
type Record struct {
	// Time is when it happened; the log's clock fills it when zero.
	Time time.Time `json:"time"`
	// Actor is who acted: "user:<name>", "partner:<id>", "system:<component>".
	Actor string `json:"actor"`
	// SourceIP is the caller's address ("" for the hub itself).
	SourceIP string `json:"source_ip"`
	// Action is a dotted verb: "console.login", "partner_api.call", "batch.replay".
	Action string `json:"action"`
	// Object is what was acted on: an endpoint, a batch id, a user name.
	Object string `json:"object"`
	// Outcome is OutcomeSuccess, OutcomeFailure or OutcomeDenied.
	Outcome string `json:"outcome"`
	// RequestID correlates with logs and problem answers.
	RequestID string `json:"request_id"`
	// Detail is a short free-text note (a problem code, a status, a count).
	Detail string `json:"detail,omitempty"`
}

// Entry is a stored record with its place in the chain.
type Entry struct {
	// Seq numbers records from 1 without gaps.
	Seq int64 `json:"seq"`
	Record
	// PrevMAC is the previous record's MAC ("" for the first).
	PrevMAC string `json:"prev_mac"`
	// MAC is HMAC-SM3 over the record and PrevMAC, lower-case hex.
	MAC string `json:"mac"`
}

// Log is the audit chain in a state database. It is safe for concurrent use,
// also by several processes sharing one database.
type Log struct {
	db    *store.DB
	key   []byte
	clock clock.Clock
	mu    sync.Mutex
	// rows inserts a batch's records (AppendTx), many to a statement.
	rows *store.MultiRow
}

// Option configures a Log.
type Option func(*Log)

// WithClock sets the clock (tests).
func WithClock(c clock.Clock) Option { return func(l *Log) { l.clock = c } }

// ErrKey is returned by Open for a missing or short key.
var ErrKey = errors.New("audit: key must be at least 16 bytes")

// Open migrates the audit schema and returns the log keyed by key (the
// "audit" key of the key provider).
func Open(ctx context.Context, db *store.DB, key []byte, opts ...Option) (*Log, error) {
	if len(key) < 16 {
		return nil, ErrKey
	}
	if err := db.Migrate(ctx, Component, Migrations()); err != nil {
		return nil, err
	}
	l := &Log{db: db, key: append([]byte(nil), key...), clock: clock.Real{}, rows: store.NewMultiRow(db, rowsPerInsert, insertRows)}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// cleaned is r as it is stored: its time now when unset, in whole
// milliseconds, its text storable and masked.
func (r Record) cleaned(now time.Time) Record {
	if r.Time.IsZero() {
		r.Time = now
	}
	r.Time = time.UnixMilli(r.Time.UnixMilli())
	r.Actor = clean(r.Actor, true)
	r.SourceIP = clean(r.SourceIP, false)
	r.Action = clean(r.Action, false)
	r.Object = clean(r.Object, true)
	r.Outcome = clean(r.Outcome, false)
	r.RequestID = clean(r.RequestID, false)
	r.Detail = clean(r.Detail, true)
	return r
}

// clean keeps text storable (no NUL for PostgreSQL) and masked.
func clean(s string, maskText bool) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if maskText {
		s = mask.Text(s)
	}
	return s
}

// macOf computes an entry's MAC from its fields and PrevMAC. The input is
// the JSON array [at_ms, actor, source_ip, action, object, outcome,
// request_id, detail, prev_mac]; seq is not in it, so renumbering shows as a
// broken link rather than as edits.
func macOf(key []byte, e *Entry) string {
	b, _ := json.Marshal([]any{e.Time.UnixMilli(), e.Actor, e.SourceIP, e.Action, e.Object, e.Outcome, e.RequestID, e.Detail, e.PrevMAC})
	m := hmac.New(sm3.New, key)
	_, _ = m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func tag(key []byte, kind string, seq int64, mac string) string {
	m := hmac.New(sm3.New, key)
	_, _ = m.Write([]byte(kind + "\n" + strconv.FormatInt(seq, 10) + "\n" + mac))
	return hex.EncodeToString(m.Sum(nil))
}

// Append adds r to the chain and returns its sequence number. Object and
// Detail are masked.
func (l *Log) Append(ctx context.Context, r Record) (int64, error) {
	r = r.cleaned(l.clock.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	var seq int64
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT head_seq, head_mac FROM audit_state WHERE id = 1`
		if l.db.Dialect() == store.Postgres {
			q += ` FOR UPDATE`
		}
		var headSeq int64
		var headMAC string
		if err := tx.QueryRowContext(ctx, q).Scan(&headSeq, &headMAC); err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		e := Entry{Seq: headSeq + 1, Record: r, PrevMAC: headMAC}
		e.MAC = macOf(l.key, &e)
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO audit_log
			(seq, at_ms, actor, source_ip, action, object, outcome, request_id, detail, prev_mac, mac)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			e.Seq, e.Time.UnixMilli(), e.Actor, e.SourceIP, e.Action, e.Object, e.Outcome, e.RequestID, e.Detail, e.PrevMAC, e.MAC); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE audit_state SET head_seq = ?, head_mac = ?, head_tag = ? WHERE id = 1`),
			e.Seq, e.MAC, tag(l.key, "head", e.Seq, e.MAC)); err != nil {
			return fmt.Errorf("update head: %w", err)
		}
		seq = e.Seq
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("audit: append %s: %w", r.Action, err)
	}
	return seq, nil
}

// Filter selects entries for List and Export. Zero fields do not filter.
type Filter struct {
	// From and To bound the time (From inclusive, To exclusive).
	From, To time.Time
	// Actor, Action and Outcome match exactly.
	Actor, Action, Outcome string
	// AfterSeq returns entries with a greater seq (paging forward).
	AfterSeq int64
	// Limit caps the number of entries (List only; 0 means 100).
	Limit int
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	if !f.From.IsZero() {
		conds, args = append(conds, "at_ms >= ?"), append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "at_ms < ?"), append(args, f.To.UnixMilli())
	}
	if f.Actor != "" {
		conds, args = append(conds, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		conds, args = append(conds, "action = ?"), append(args, f.Action)
	}
	if f.Outcome != "" {
		conds, args = append(conds, "outcome = ?"), append(args, f.Outcome)
	}
	if f.AfterSeq > 0 {
		conds, args = append(conds, "seq > ?"), append(args, f.AfterSeq)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const columns = `seq, at_ms, actor, source_ip, action, object, outcome, request_id, detail, prev_mac, mac`

func scan(rows *sql.Rows) (Entry, error) {
	var e Entry
	var ms int64
	err := rows.Scan(&e.Seq, &ms, &e.Actor, &e.SourceIP, &e.Action, &e.Object, &e.Outcome, &e.RequestID, &e.Detail, &e.PrevMAC, &e.MAC)
	e.Time = time.UnixMilli(ms)
	return e, err
}

// List returns entries matching f in seq order (the console's audit view).
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	w, args := f.where()
	rows, err := l.db.QueryContext(ctx, l.db.Rebind(`SELECT `+columns+` FROM audit_log`+w+` ORDER BY seq LIMIT `+strconv.Itoa(f.Limit)), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
