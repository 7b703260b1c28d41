package funeral

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// Publisher puts messages on the bus; bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...bus.Message) error
}

// TopicChanges is the bus topic of funeral resource changes.
const TopicChanges = "funeral.changes"

// Change is the body of a message on TopicChanges: the record's state after
// the change. Consumers keep the highest revision per (partner, kind, id).
type Change struct {
	Seq       int64           `json:"seq"`
	Op        string          `json:"op"`
	PartnerID string          `json:"partner_id"`
	Kind      string          `json:"kind"`
	ID        string          `json:"id"`
	Revision  int64           `json:"revision"`
	Version   int64           `json:"version"`
	StoredAt  string          `json:"stored_at"`
	Deleted   bool            `json:"deleted,omitempty"`
	Data      json.RawMessage `json:"data"`
}

// Relay publishes stored changes to the bus (transactional outbox): each
// change row is published at least once, then marked. It returns the number
// published. Several replicas relaying at once may publish a change twice;
// every message carries the idempotency key partner/kind/id/revision, so
// consumers drop the repeat.
func (s *Store) Relay(ctx context.Context, pub Publisher, limit int) (int, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT c.seq, c.op, c.partner_id, c.kind, c.record_id, c.revision,
		r.version, r.stored_at, r.deleted, r.data
		FROM funeral_changes c JOIN funeral_records r ON r.partner_id = c.partner_id AND r.kind = c.kind AND r.record_id = c.record_id
		WHERE c.published = 0 ORDER BY c.seq LIMIT ?`), limit)
	if err != nil {
		return 0, fmt.Errorf("funeral: relay: %w", err)
	}
	var msgs []bus.Message
	var seqs []any
	for rows.Next() {
		var c Change
		var storedAt int64
		var deleted int
		var data string
		if err := rows.Scan(&c.Seq, &c.Op, &c.PartnerID, &c.Kind, &c.ID, &c.Revision, &c.Version, &storedAt, &deleted, &data); err != nil {
			rows.Close()
			return 0, fmt.Errorf("funeral: relay: %w", err)
		}
		c.StoredAt = time.UnixMilli(storedAt).In(shanghai).Format(time.RFC3339)
		c.Deleted = deleted != 0
		opened, err := s.openText(data)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("funeral: relay: %w", err)
		}
		c.Data = json.RawMessage(opened)
		body, _ := json.Marshal(c)
		key := c.PartnerID + "/" + c.Kind + "/" + c.ID
		msgs = append(msgs, bus.Message{
			Topic: TopicChanges, Key: key, IdempotencyKey: key + "/" + strconv.FormatInt(c.Revision, 10), Body: body,
			Headers: map[string]string{"partner": c.PartnerID, "flow": flowOf(c.Kind), "kind": c.Kind, "op": c.Op},
		})
		seqs = append(seqs, c.Seq)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := pub.Publish(ctx, TopicChanges, msgs...); err != nil {
		return 0, fmt.Errorf("funeral: relay: publish: %w", err)
	}
	q := `UPDATE funeral_changes SET published = 1 WHERE seq IN (?` + strings.Repeat(", ?", len(seqs)-1) + `)`
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(q), seqs...); err != nil {
		return 0, fmt.Errorf("funeral: relay: mark: %w", err)
	}
	return len(msgs), nil
}

// RunRelay relays changes every interval until ctx is done. Errors are
// reported to onErr and retried on the next tick.
func (s *Store) RunRelay(ctx context.Context, pub Publisher, every time.Duration, onErr func(error)) {
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			n, err := s.Relay(ctx, pub, 500)
			if err != nil && onErr != nil && ctx.Err() == nil {
				onErr(err)
			}
			if err != nil || n < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ChangesSince returns the change log after seq (for the bureau's feed).
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT seq, op, partner_id, kind, record_id, revision, at FROM funeral_changes WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("funeral: changes: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var at int64
		if err := rows.Scan(&c.Seq, &c.Op, &c.PartnerID, &c.Kind, &c.ID, &c.Revision, &at); err != nil {
			return nil, err
		}
		c.StoredAt = time.UnixMilli(at).In(shanghai).Format(time.RFC3339)
		out = append(out, c)
	}
	return out, rows.Err()
}

// BureauItem is one item published by the bureau (intermediary, staff, list entry).
type BureauItem struct {
	Kind, ID, ParentID string
	Data               json.RawMessage
	UpdatedAt          time.Time
}

// Bureau item kinds.
const (
	BureauIntermediary = "intermediary"
	BureauStaff        = "staff"
	BureauCredit       = "credit"
)

// PutBureau stores (replaces) a bureau item.
func (s *Store) PutBureau(ctx context.Context, it BureauItem) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO funeral_bureau (kind, id, parent_id, data, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET parent_id = excluded.parent_id, data = excluded.data, updated_at = excluded.updated_at`),
		it.Kind, it.ID, it.ParentID, string(it.Data), s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("funeral: put %s %s: %w", it.Kind, it.ID, err)
	}
	return nil
}

// ListBureau lists items of kind (under parent when not empty) after id.
func (s *Store) ListBureau(ctx context.Context, kind, parent, afterID string, limit int) ([]BureauItem, error) {
	q := `SELECT kind, id, parent_id, data, updated_at FROM funeral_bureau WHERE kind = ? AND id > ?`
	args := []any{kind, afterID}
	if parent != "" {
		q += ` AND parent_id = ?`
		args = append(args, parent)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("funeral: list %s: %w", kind, err)
	}
	defer rows.Close()
	var out []BureauItem
	for rows.Next() {
		var it BureauItem
		var data string
		var at int64
		if err := rows.Scan(&it.Kind, &it.ID, &it.ParentID, &data, &at); err != nil {
			return nil, err
		}
		it.Data, it.UpdatedAt = json.RawMessage(data), time.UnixMilli(at)
		out = append(out, it)
	}
	return out, rows.Err()
}

// GetBureau returns one bureau item; ok is false when absent.
func (s *Store) GetBureau(ctx context.Context, kind, id string) (BureauItem, bool, error) {
	var it BureauItem
	var data string
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT kind, id, parent_id, data, updated_at FROM funeral_bureau WHERE kind = ? AND id = ?`), kind, id).
		Scan(&it.Kind, &it.ID, &it.ParentID, &data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return BureauItem{}, false, nil
	}
	if err != nil {
		return BureauItem{}, false, fmt.Errorf("funeral: get %s: %w", kind, err)
	}
	it.Data, it.UpdatedAt = json.RawMessage(data), time.UnixMilli(at)
	return it, true, nil
}
