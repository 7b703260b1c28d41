package routes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
)

// Dead-letter states.
const (
	DeadState     = "dead"     // waiting for an operator
	ReplayState   = "replay"   // replay requested; the engine republishes it
	ReplayedState = "replayed" // republished on the route's topic
	DroppedState  = "dropped"  // an operator gave up on it
)

// DeadLetter is a message that exhausted its attempts or failed for good.
type DeadLetter struct {
	// ID identifies the dead letter.
	ID int64
	// Route, Sink and Step say where it failed (Sink or Step may be empty).
	Route, Sink, Step string
	// Endpoint is the failing endpoint (method and URL, host, topic, ...).
	Endpoint string
	// Error is the last error, masked.
	Error string
	// Code classifies the failure: CodeInDoubt (the partner may have the
	// message; a replay asks its status endpoint first), "permanent" or
	// "exhausted" (attempts used up on clear failures); "" for dead letters
	// stored before codes were kept.
	Code string
	// Attempts made.
	Attempts int
	// Message is the original message as it was on the bus.
	Message bus.Message
	// At is when it was dead-lettered.
	At time.Time
	// State is dead, replay, replayed or dropped.
	State string
	// ResolvedBy is the operator who asked for the replay or the drop.
	ResolvedBy string
}

// CodeInDoubt is the Code of a dead letter whose delivery is in doubt.
const CodeInDoubt = "in_doubt"

// deadLetterCode classifies a dead letter's cause.
func deadLetterCode(cause error) string {
	switch {
	case errors.Is(cause, ErrInDoubt):
		return CodeInDoubt
	case isPermanent(cause):
		return "permanent"
	default:
		return "exhausted"
	}
}

// DeadLetters is the dead-letter store of the route engine (a table in the
// state store). It is safe for concurrent use and works without a running
// engine: a replay is a request that the engine carries out (within a
// second when it runs, else at its next start).
type DeadLetters struct {
	db   *store.DB
	now  func() time.Time
	seal bus.Sealer
}

// NewDeadLetters opens the dead-letter store of db (migrated with Migrate).
func NewDeadLetters(db *store.DB) *DeadLetters {
	return &DeadLetters{db: db, now: time.Now}
}

// SealWith makes s seal the bodies of new dead letters and open sealed ones
// when they are read; it returns s. Without it, sealed dead letters are
// read as they are stored (their body sealed), which is enough to list,
// replay and drop them: the engine's own store opens them.
func (s *DeadLetters) SealWith(x bus.Sealer) *DeadLetters {
	s.seal = x
	return s
}

func (s *DeadLetters) add(ctx context.Context, route, sink, step, endpoint string, cause error, attempts int, msg bus.Message) error {
	if s.seal != nil {
		var err error
		if msg, err = bus.SealMessage(s.seal, msg); err != nil {
			return fmt.Errorf("routes: dead letter: %w", err)
		}
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO routes_dead_letters (route, sink, step, endpoint, error, attempts, idem, msg, created_at, state, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		route, sink, step, endpoint, mask.Text(cause.Error()), attempts, msg.IdempotencyKey, encodeMessage(msg), s.now().UnixMilli(), DeadState, deadLetterCode(cause))
	return err
}

// ListFilter selects dead letters.
type ListFilter struct {
	// Route limits to one route ("" for all).
	Route string
	// State limits to one state ("" for dead only; "all" for every state).
	State string
	// Limit caps the answer (default 100).
	Limit int
}

// List returns dead letters, newest first.
func (s *DeadLetters) List(ctx context.Context, f ListFilter) ([]DeadLetter, error) {
	q := `SELECT id, route, sink, step, endpoint, error, attempts, msg, created_at, state, COALESCE(resolved_by, ''), code FROM routes_dead_letters WHERE 1 = 1`
	var args []any
	if f.Route != "" {
		q += ` AND route = ?`
		args = append(args, f.Route)
	}
	switch f.State {
	case "all":
	case "":
		q += ` AND state = ?`
		args = append(args, DeadState)
	default:
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, f.Limit)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("routes: dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(...any) error }

// scan reads a dead letter row. A sealed message is opened when s has a
// sealer holding its key; otherwise it stays sealed (a replay republishes
// it as it is, and the route's sealed bus opens it or dead-letters it again).
func (s *DeadLetters) scan(r scanner) (DeadLetter, error) {
	var (
		d   DeadLetter
		enc string
		at  int64
	)
	if err := r.Scan(&d.ID, &d.Route, &d.Sink, &d.Step, &d.Endpoint, &d.Error, &d.Attempts, &enc, &at, &d.State, &d.ResolvedBy, &d.Code); err != nil {
		return d, fmt.Errorf("routes: dead letters: %w", err)
	}
	d.At = time.UnixMilli(at)
	m, err := decodeMessage(enc)
	if err != nil {
		return d, fmt.Errorf("routes: dead letter %d: %w", d.ID, err)
	}
	if s.seal != nil {
		if opened, err := bus.OpenMessage(s.seal, m); err == nil {
			m = opened
		}
	}
	d.Message = m
	return d, nil
}

// FindOpen returns the id of the newest dead letter of an exchange (the
// message's idempotency key, which is the exchange id in the route
// engine's monitor events) that is still dead, or ErrNotFound.
func (s *DeadLetters) FindOpen(ctx context.Context, exchangeID string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT id FROM routes_dead_letters WHERE idem = ? AND state = ? ORDER BY id DESC LIMIT 1`), exchangeID, DeadState).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("routes: dead letter of exchange %q: %w", exchangeID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("routes: dead letter of exchange %q: %w", exchangeID, err)
	}
	return id, nil
}

// Get returns one dead letter.
func (s *DeadLetters) Get(ctx context.Context, id int64) (DeadLetter, error) {
	row := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT id, route, sink, step, endpoint, error, attempts, msg, created_at, state, COALESCE(resolved_by, ''), code FROM routes_dead_letters WHERE id = ?`), id)
	d, err := s.scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	return d, err
}

// Replay asks for a dead letter to be sent again, on behalf of actor, and
// audits it. A delivery in doubt (Code CodeInDoubt) is not sent blindly:
// when its sink has a status endpoint, the replay asks it first (delivered:
// settled without sending; not delivered: sent; no answer: in doubt again);
// when it has none, the replay sends it again, as the operator decided, and
// its replayed event says so (attribute resent_in_doubt).
func (s *DeadLetters) Replay(ctx context.Context, id int64, actor string, aud audit.Appender) error {
	return s.resolve(ctx, id, actor, ReplayState, "routes.dlq.replay", aud)
}

// Drop gives up on a dead letter, on behalf of actor, and audits it.
func (s *DeadLetters) Drop(ctx context.Context, id int64, actor string, aud audit.Appender) error {
	return s.resolve(ctx, id, actor, DroppedState, "routes.dlq.drop", aud)
}

func (s *DeadLetters) resolve(ctx context.Context, id int64, actor, state, action string, aud audit.Appender) error {
	if actor == "" {
		return fmt.Errorf("routes: dead letter %d: an actor is required", id)
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if d.State != DeadState {
		return fmt.Errorf("routes: dead letter %d is %s, not dead", id, d.State)
	}
	// Audit first: an action that cannot be audited is not taken.
	if aud != nil {
		if _, err := aud.Append(ctx, audit.Record{Actor: audit.UserActor(actor), Action: action, Object: fmt.Sprintf("routes/%s/dlq/%d", d.Route, id),
			Outcome: audit.OutcomeSuccess, Detail: fmt.Sprintf("attempts=%d code=%s endpoint=%s idempotency_key=%s route=%s sink=%s",
				d.Attempts, d.Code, d.Endpoint, d.Message.IdempotencyKey, d.Route, d.Sink)}); err != nil {
			return fmt.Errorf("routes: dead letter %d: audit: %w", id, err)
		}
	}
	r, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE routes_dead_letters SET state = ?, resolved_at = ?, resolved_by = ? WHERE id = ? AND state = ?`),
		state, s.now().UnixMilli(), actor, id, DeadState)
	if err != nil {
		return fmt.Errorf("routes: dead letter %d: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return fmt.Errorf("routes: dead letter %d was resolved meanwhile", id)
	}
	return nil
}

// pendingReplays returns replay requests.
func (s *DeadLetters) pendingReplays(ctx context.Context) ([]DeadLetter, error) {
	return s.List(ctx, ListFilter{State: ReplayState, Limit: 500})
}

// markReplayed records that a requested replay was republished.
func (s *DeadLetters) markReplayed(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE routes_dead_letters SET state = ? WHERE id = ? AND state = ?`), ReplayedState, id, ReplayState)
	return err
}
