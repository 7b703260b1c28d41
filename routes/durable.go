package routes

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/store"
)

// errConsumed tells the runner a step kept the message (an aggregate part):
// nothing goes to the sinks now, and the delivery is acknowledged.
var errConsumed = errors.New("routes: message consumed by a step")

// HeaderResumeStep on a bus message makes the runner start at that step
// index (an aggregate continuing after its step).
const HeaderResumeStep = "mzhub-resume-step"

// ---- dedupe ----

type dedupeStep struct {
	n     string
	route string
	key   *program
	ttl   time.Duration
	db    *store.DB
	now   func() time.Time
	vars  map[string]string
}

func (s *dedupeStep) name() string { return s.n }
func (s *dedupeStep) kind() string { return "dedupe" }

func (s *dedupeStep) process(ctx context.Context, m *msgState, out next) error {
	k, err := s.key.string(newEnv(m, s.vars))
	if err != nil {
		return &stepError{s.n, err}
	}
	now := s.now().UnixMilli()
	first, err := s.claim(ctx, k, m.msg.IdempotencyKey, now)
	if err != nil {
		return fmt.Errorf("step %s: dedupe ledger: %w", s.n, err)
	}
	if !first {
		return ErrFiltered
	}
	return out(ctx, m)
}

// claim records that idem saw key first. It reports true when idem owns the
// key (first sight, a redelivery of the same message, or an expired entry).
func (s *dedupeStep) claim(ctx context.Context, key, idem string, now int64) (bool, error) {
	db := s.db
	r, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO routes_dedupe (route, step, dkey, idem, seen_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		s.route, s.n, key, idem, now)
	if err != nil {
		return false, err
	}
	if n, _ := r.RowsAffected(); n == 1 {
		return true, nil
	}
	var owner string
	var seen int64
	if err := db.QueryRowContext(ctx, db.Rebind(`SELECT idem, seen_at FROM routes_dedupe WHERE route = ? AND step = ? AND dkey = ?`), s.route, s.n, key).Scan(&owner, &seen); err != nil {
		return false, err
	}
	if owner == idem {
		return true, nil
	}
	if s.ttl > 0 && now-seen > s.ttl.Milliseconds() {
		r, err := db.ExecContext(ctx, db.Rebind(`UPDATE routes_dedupe SET idem = ?, seen_at = ? WHERE route = ? AND step = ? AND dkey = ? AND seen_at = ?`),
			idem, now, s.route, s.n, key, seen)
		if err != nil {
			return false, err
		}
		n, _ := r.RowsAffected()
		return n == 1, nil
	}
	return false, nil
}

// ---- aggregate ----

type aggregateStep struct {
	n       string
	index   int
	route   string
	key     *program
	count   int
	timeout time.Duration
	db      *store.DB
	now     func() time.Time
	vars    map[string]string
	// publish puts a completed aggregate back on the route's topic.
	publish func(ctx context.Context, msg bus.Message) error
}

func (s *aggregateStep) name() string { return s.n }
func (s *aggregateStep) kind() string { return "aggregate" }

func (s *aggregateStep) process(ctx context.Context, m *msgState, _ next) error {
	g, err := s.key.string(newEnv(m, s.vars))
	if err != nil {
		return &stepError{s.n, err}
	}
	db := s.db
	var outbox int64
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO routes_aggregate_parts (route, step, gkey, idem, body, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			s.route, s.n, g, m.msg.IdempotencyKey, m.msg.Body, s.now().UnixMilli()); err != nil {
			return err
		}
		if s.count <= 0 {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM routes_aggregate_parts WHERE route = ? AND step = ? AND gkey = ?`), s.route, s.n, g).Scan(&n); err != nil {
			return err
		}
		if n < s.count {
			return nil
		}
		outbox, err = s.complete(ctx, tx, g, m.msg)
		return err
	})
	if err != nil {
		return fmt.Errorf("step %s: aggregate: %w", s.n, err)
	}
	if outbox != 0 {
		if err := s.flushOutbox(ctx, outbox); err != nil {
			return err
		}
	}
	return errConsumed
}

// complete moves a group's parts into one outbox message (inside tx).
func (s *aggregateStep) complete(ctx context.Context, tx *sql.Tx, g string, proto bus.Message) (int64, error) {
	db := s.db
	rows, err := tx.QueryContext(ctx, db.Rebind(`SELECT id, idem, body FROM routes_aggregate_parts WHERE route = ? AND step = ? AND gkey = ? ORDER BY id`), s.route, s.n, g)
	if err != nil {
		return 0, err
	}
	var (
		parts []json.RawMessage
		maxID int64
		h     = sha256.New()
	)
	for rows.Next() {
		var (
			id   int64
			idem string
			body []byte
		)
		if err := rows.Scan(&id, &idem, &body); err != nil {
			rows.Close()
			return 0, err
		}
		maxID = id
		h.Write([]byte(idem))
		h.Write([]byte{0})
		if json.Valid(body) {
			parts = append(parts, json.RawMessage(body))
		} else {
			b, _ := json.Marshal(string(body))
			parts = append(parts, b)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(parts) == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM routes_aggregate_parts WHERE route = ? AND step = ? AND gkey = ? AND id <= ?`), s.route, s.n, g, maxID); err != nil {
		return 0, err
	}
	body, _ := json.Marshal(parts)
	headers := map[string]string{}
	for k, v := range proto.Headers {
		headers[k] = v
	}
	delete(headers, HeaderSplitIndex)
	headers[HeaderResumeStep] = strconv.Itoa(s.index + 1)
	headers["mzhub-aggregate-group"] = g
	headers["mzhub-aggregate-count"] = strconv.Itoa(len(parts))
	msg := bus.Message{
		Key:            proto.Key,
		IdempotencyKey: "agg:" + s.n + ":" + hex.EncodeToString(h.Sum(nil))[:32],
		Headers:        headers,
		Body:           body,
	}
	enc, _ := json.Marshal(msg)
	var id int64
	if err := tx.QueryRowContext(ctx, db.Rebind(`INSERT INTO routes_aggregate_outbox (route, msg, created_at) VALUES (?, ?, ?) RETURNING id`), s.route, string(enc), s.now().UnixMilli()).Scan(&id); err != nil {
		return 0, err
	}
	return id, nil
}

// flushOutbox publishes outbox rows (one id, or all of the route when id is
// 0) and deletes them. A crash between the two publishes again with the same
// idempotency key; the delivery ledger keeps the sinks from seeing it twice.
func (s *aggregateStep) flushOutbox(ctx context.Context, id int64) error {
	db := s.db
	q := `SELECT id, msg FROM routes_aggregate_outbox WHERE route = ?`
	args := []any{s.route}
	if id != 0 {
		q += ` AND id = ?`
		args = append(args, id)
	}
	rows, err := db.QueryContext(ctx, db.Rebind(q+` ORDER BY id`), args...)
	if err != nil {
		return err
	}
	type row struct {
		id  int64
		msg bus.Message
	}
	var todo []row
	for rows.Next() {
		var r row
		var enc string
		if err := rows.Scan(&r.id, &enc); err != nil {
			rows.Close()
			return err
		}
		if err := json.Unmarshal([]byte(enc), &r.msg); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	for _, r := range todo {
		if err := s.publish(ctx, r.msg); err != nil {
			return fmt.Errorf("step %s: publish aggregate: %w", s.n, err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM routes_aggregate_outbox WHERE id = ?`), r.id); err != nil {
			return err
		}
	}
	return nil
}

// flushExpired completes the groups whose first part is older than the
// timeout, and publishes what a crash left in the outbox.
func (s *aggregateStep) flushExpired(ctx context.Context) error {
	if s.timeout <= 0 {
		return s.flushOutbox(ctx, 0)
	}
	return s.flushBefore(ctx, s.now().Add(-s.timeout).UnixMilli())
}

// flushBefore completes the groups whose first part is not newer than
// cutoff (unix ms).
func (s *aggregateStep) flushBefore(ctx context.Context, cutoff int64) error {
	if err := s.flushOutbox(ctx, 0); err != nil {
		return err
	}
	db := s.db
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT gkey FROM routes_aggregate_parts WHERE route = ? AND step = ? GROUP BY gkey HAVING MIN(created_at) <= ? ORDER BY MIN(id)`), s.route, s.n, cutoff)
	if err != nil {
		return err
	}
	var groups []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		groups = append(groups, g)
	}
	rows.Close()
	for _, g := range groups {
		var id int64
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			id, err = s.complete(ctx, tx, g, bus.Message{Key: g})
			return err
		})
		if err != nil {
			return err
		}
		if id != 0 {
			if err := s.flushOutbox(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}
