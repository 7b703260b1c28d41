package local

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

// pubReq is one Publish call (done != nil) or one dead letter (done == nil).
type pubReq struct {
	topic string
	msgs  []*stored
	done  chan error
}

type subReq struct {
	topic, name string
	done        chan subReply
}

type subReply struct {
	sub *subscription
	err error
}

type ackKind uint8

// idBlock is how many message ids the writer reserves at a time.
const idBlock = 10000

const (
	kindAck  ackKind = iota // delete the pending row
	kindNack                // record attempts, not_before, cause
)

type ackItem struct {
	kind      ackKind
	subID     int64
	msgID     int64
	attempts  int
	notBefore int64
	cause     string
}

// writer owns every write of the bus: one goroutine, group commits.
type writer struct {
	b       *Bus
	pubs    chan *pubReq
	subReqs chan *subReq
	kick    chan struct{} // MaxBatch acks wait
	first   chan struct{} // the first ack of a batch arrived

	mu    sync.Mutex
	acks  []ackItem
	dead  []*pubReq // dead letters, committed with their acks
	lastE error

	nextID   int64                // only the writer goroutine (and load, before it starts)
	reserved int64                // ids below it are reserved in bus_sequence
	stmts    map[string]*sql.Stmt // prepared statements by query; writer goroutine only
	// headerSets holds one immutable map per distinct header set seen
	// lately, by its JSON form; writer goroutine only (see shareHeaders).
	headerSets map[string]map[string]string
}

// maxHeaderSets bounds headerSets; when full it starts over.
const maxHeaderSets = 1024

// shareHeaders returns the map a stored message keeps for headers whose
// JSON form is hdr: one shared copy per distinct set instead of one map per
// message. Most messages of a route carry the same few headers
// (content type, sealed), and a waiting message's own map was a third of
// what it cost in memory. Stored headers are never written (deliveries get
// a copy), so sharing is safe; the publisher's map is not kept.
func (w *writer) shareHeaders(hdr []byte, h map[string]string) map[string]string {
	if shared, ok := w.headerSets[string(hdr)]; ok {
		return shared
	}
	if len(w.headerSets) >= maxHeaderSets {
		clear(w.headerSets)
	}
	shared := maps.Clone(h)
	w.headerSets[string(hdr)] = shared
	return shared
}

func newWriter(b *Bus) *writer {
	return &writer{
		b:       b,
		pubs:    make(chan *pubReq, 4096),
		subReqs: make(chan *subReq),
		kick:    make(chan struct{}, 1),
		first:   make(chan struct{}, 1),
		stmts:   map[string]*sql.Stmt{},

		headerSets: map[string]map[string]string{},
	}
}

// addAck queues an ack or nack (and, for a dead letter, its DLQ publish) for
// the next commit.
func (w *writer) addAck(a ackItem, dlq *pubReq) {
	w.mu.Lock()
	n := len(w.acks)
	w.acks = append(w.acks, a)
	if dlq != nil {
		w.dead = append(w.dead, dlq)
	}
	full := len(w.acks) >= w.b.cfg.MaxBatch
	w.mu.Unlock()
	if n == 0 {
		select {
		case w.first <- struct{}{}:
		default:
		}
	}
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (w *writer) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastE
}

func (w *writer) run() {
	defer w.closeStmts()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		var batch []*pubReq
		n := 0
		stopping := false
		select {
		case r := <-w.pubs:
			batch = append(batch, r)
			n += len(r.msgs)
		case r := <-w.subReqs:
			s, err := w.createSub(r.topic, r.name)
			r.done <- subReply{s, err}
			continue
		case <-w.kick:
		case <-w.first:
			if !armed {
				timer.Reset(w.b.cfg.CommitInterval)
				armed = true
			}
			continue
		case <-timer.C:
			armed = false
		case <-w.b.done:
			stopping = true
		}
	drain:
		for n < w.b.cfg.MaxBatch || stopping {
			select {
			case r := <-w.pubs:
				batch = append(batch, r)
				n += len(r.msgs)
			default:
				break drain
			}
		}
		w.mu.Lock()
		acks, dead := w.acks, w.dead
		w.acks, w.dead = nil, nil
		w.mu.Unlock()
		if len(acks) > 0 && armed {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			armed = false
		}
		if len(batch) > 0 || len(acks) > 0 {
			w.commit(batch, dead, acks)
		}
		if stopping {
			return
		}
	}
}

// commit writes one group in one transaction and then updates the index.
func (w *writer) commit(batch, dead []*pubReq, acks []ackItem) {
	b := w.b
	all := append(batch, dead...)
	for _, r := range all {
		for _, m := range r.msgs {
			m.id = w.nextID
			w.nextID++
		}
	}
	b.mu.RLock()
	topics := b.topics // only the writer replaces entries; safe to read below
	b.mu.RUnlock()
	// Publishers wait for this commit (a partner's call is answered once
	// its message is on the bus): urgent at the write gate.
	ctx := store.Urgent(context.Background())
	started := time.Now()
	err := b.db.InTx(ctx, func(tx *sql.Tx) error {
		if len(all) > 0 {
			if err := w.insertMessages(ctx, tx, all, topics); err != nil {
				return err
			}
			if w.nextID > w.reserved {
				// Reserve the next block of ids: one sequence write per
				// idBlock messages, not per commit.
				w.reserved = w.nextID + idBlock
				st, err := w.stmt(ctx, tx, `UPDATE bus_sequence SET next_id = ? WHERE id = 1`)
				if err != nil {
					return fmt.Errorf("update sequence: %w", err)
				}
				if _, err := st.ExecContext(ctx, w.reserved); err != nil {
					return fmt.Errorf("update sequence: %w", err)
				}
			}
		}
		if len(acks) > 0 {
			if err := w.applyAcks(ctx, tx, acks); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.log.Error("local bus: commit failed", "messages", len(all), "acks", len(acks), "err", err)
		w.mu.Lock()
		w.lastE = err
		w.mu.Unlock()
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	w.mu.Lock()
	w.lastE = nil // Close reports a failure only if the last commit failed
	w.mu.Unlock()
	b.commitSeconds.Observe(time.Since(started).Seconds())
	// Index after commit: a message is dispatched only once it is durable.
	b.mu.RLock()
	for _, r := range all {
		subs := b.topics[r.topic]
		for i, s := range subs {
			s.addBatch(r.msgs, i > 0)
		}
	}
	b.mu.RUnlock()
	for _, r := range batch {
		r.done <- nil
	}
}

// chunkSizes are the row counts of the multi-row statements; a batch is
// split greedily into them so that a handful of prepared statements serve
// every batch size (SQLite parses each distinct statement text).
var chunkSizes = []int{128, 32, 8, 1}

// chunks splits n rows into chunk sizes, calling fn(offset, size).
func chunks(n int, fn func(off, size int) error) error {
	off := 0
	for _, size := range chunkSizes {
		for n-off >= size {
			if err := fn(off, size); err != nil {
				return err
			}
			off += size
		}
	}
	return nil
}

// stmt returns the prepared statement for query (built once per size) bound
// to tx.
func (w *writer) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	st := w.stmts[query]
	if st == nil {
		var err error
		if st, err = w.b.db.PrepareContext(ctx, w.b.db.Rebind(query)); err != nil {
			return nil, err
		}
		w.stmts[query] = st
	}
	return tx.StmtContext(ctx, st), nil
}

func (w *writer) closeStmts() {
	for _, st := range w.stmts {
		_ = st.Close()
	}
	clear(w.stmts)
}

func rowsSQL(prefix, row string, n int) string {
	var q strings.Builder
	q.WriteString(prefix)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(row)
	}
	return q.String()
}

func (w *writer) insertMessages(ctx context.Context, tx *sql.Tx, reqs []*pubReq, topics map[string][]*subscription) error {
	var msgs []*stored
	for _, r := range reqs {
		msgs = append(msgs, r.msgs...)
	}
	args := make([]any, 0, 7*chunkSizes[0])
	err := chunks(len(msgs), func(off, size int) error {
		st, err := w.stmt(ctx, tx, rowsSQL(`INSERT INTO bus_messages (id, topic, msg_key, idem_key, headers, body, published_at) VALUES `, "(?,?,?,?,?,?,?)", size))
		if err != nil {
			return err
		}
		args = args[:0]
		for _, m := range msgs[off : off+size] {
			if m.bodyFrom != 0 {
				// A dead letter of a message whose body is not in memory.
				if err := tx.QueryRowContext(ctx, w.b.db.Rebind(`SELECT body FROM bus_messages WHERE id = ?`), m.bodyFrom).Scan(&m.body); err != nil {
					return fmt.Errorf("dead letter body of message %d: %w", m.bodyFrom, err)
				}
				m.bodyFrom = 0
			}
			hdr := m.rawHeaders
			if len(m.headers) > 0 {
				if hdr, err = json.Marshal(m.headers); err != nil {
					return fmt.Errorf("message headers: %w", err)
				}
				m.headers = w.shareHeaders(hdr, m.headers)
			}
			body := m.body
			if body == nil {
				body = []byte{}
			}
			args = append(args, m.id, m.topic, m.key, m.idem, hdr, body, m.publishedAt)
		}
		_, err = st.ExecContext(ctx, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	// Pending rows: one per message and subscription of its topic.
	var rows []any
	for _, r := range reqs {
		for _, s := range topics[r.topic] {
			for _, m := range r.msgs {
				rows = append(rows, m.id, s.id)
			}
		}
	}
	err = chunks(len(rows)/2, func(off, size int) error {
		st, err := w.stmt(ctx, tx, rowsSQL(`INSERT INTO bus_pending (msg_id, sub_id) VALUES `, "(?,?)", size))
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, rows[2*off:2*(off+size)]...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert pending: %w", err)
	}
	return nil
}

func (w *writer) applyAcks(ctx context.Context, tx *sql.Tx, acks []ackItem) error {
	bySub := map[int64][]any{}
	var nacks []ackItem
	for _, a := range acks {
		if a.kind == kindAck {
			bySub[a.subID] = append(bySub[a.subID], a.msgID)
		} else {
			nacks = append(nacks, a)
		}
	}
	var acked []any
	args := make([]any, 0, chunkSizes[0]+1)
	for sub, ids := range bySub {
		err := chunks(len(ids), func(off, size int) error {
			st, err := w.stmt(ctx, tx, `DELETE FROM bus_pending WHERE sub_id = ? AND msg_id IN (`+placeholders(size)+`)`)
			if err != nil {
				return err
			}
			args = append(append(args[:0], sub), ids[off:off+size]...)
			_, err = st.ExecContext(ctx, args...)
			return err
		})
		if err != nil {
			return fmt.Errorf("delete acked: %w", err)
		}
		acked = append(acked, ids...)
	}
	// Messages no subscription holds any more are deleted.
	err := chunks(len(acked), func(off, size int) error {
		st, err := w.stmt(ctx, tx, `DELETE FROM bus_messages WHERE id IN (`+placeholders(size)+
			`) AND NOT EXISTS (SELECT 1 FROM bus_pending p WHERE p.msg_id = bus_messages.id)`)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, acked[off:off+size]...)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete acked messages: %w", err)
	}
	if len(nacks) > 0 {
		st, err := w.stmt(ctx, tx, `UPDATE bus_pending SET attempts = ?, not_before = ?, cause = ? WHERE msg_id = ? AND sub_id = ?`)
		if err != nil {
			return fmt.Errorf("prepare nack: %w", err)
		}
		for _, a := range nacks {
			if _, err := st.ExecContext(ctx, a.attempts, a.notBefore, a.cause, a.msgID, a.subID); err != nil {
				return fmt.Errorf("record nack: %w", err)
			}
		}
	}
	return nil
}

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

// createSub creates a durable subscription holding every message the topic
// retains, and indexes it.
func (w *writer) createSub(topic, name string) (*subscription, error) {
	b := w.b
	b.mu.RLock()
	s := b.subs[subKey{topic, name}]
	b.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	ctx := context.Background()
	var id int64
	err := b.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM bus_subscriptions`).Scan(&id); err != nil {
			return fmt.Errorf("next subscription id: %w", err)
		}
		if _, err := tx.ExecContext(ctx, b.db.Rebind(`INSERT INTO bus_subscriptions (id, topic, name, created_at) VALUES (?, ?, ?, ?)`),
			id, topic, name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		if _, err := tx.ExecContext(ctx, b.db.Rebind(`INSERT INTO bus_pending (msg_id, sub_id) SELECT id, ? FROM bus_messages WHERE topic = ?`), id, topic); err != nil {
			return fmt.Errorf("retained messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s = newSubscription(b, id, topic, name)
	rows, err := b.db.QueryContext(ctx, b.db.Rebind(`SELECT id, topic, msg_key, idem_key, headers, published_at FROM bus_messages WHERE topic = ? ORDER BY id`), topic)
	if err != nil {
		return nil, fmt.Errorf("load retained messages: %w", err)
	}
	defer rows.Close()
	var msgs []*stored
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("load retained messages: %w", err)
		}
		m.topic = topic
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load retained messages: %w", err)
	}
	s.addBatch(msgs, false)
	b.mu.Lock()
	// Copy-on-write so that a commit holding the old slice is unaffected.
	subs := append(append([]*subscription(nil), b.topics[topic]...), s)
	topics := maps.Clone(b.topics)
	topics[topic] = subs
	b.topics = topics
	b.subs[subKey{topic, name}] = s
	b.mu.Unlock()
	return s, nil
}
