package local

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the schema of the local bus, applied by Open under the
// component name "bus".
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory always exists
	}
	return sub
}

// Interface guards.
var (
	_ bus.Bus          = (*Bus)(nil)
	_ bus.Subscription = (*Consumer)(nil)
	_ bus.Delivery     = (*delivery)(nil)
)

// Bus is the embedded durable bus. Create it with Open; it is safe for
// concurrent use.
type Bus struct {
	db  *store.DB
	cfg bus.LocalConfig
	log *slog.Logger
	w   *writer

	mu     sync.RWMutex
	topics map[string][]*subscription // guarded by mu; changed only by the writer
	subs   map[subKey]*subscription   // guarded by mu
	closed bool

	closedFlag atomic.Bool   // mirrors closed, readable under a subscription lock
	done       chan struct{} // closed by Close
	wg         sync.WaitGroup
	closeM     sync.Mutex
	start      time.Time
	cached     atomic.Int64 // body bytes held in memory

	metrics       *bus.Metrics
	commitSeconds prometheus.Histogram

	// bodyStmt reads one body (loadBody), prepared once: parsing the
	// query for every lazy delivery was a tenth of a day's data-sea pull
	// behind a backlog larger than CacheBytes.
	bodyStmt *sql.Stmt
}

type subKey struct{ topic, name string }

// stored is one message as kept in memory; immutable once built.
type stored struct {
	id          int64
	topic       string
	key         string
	idem        string
	headers     map[string]string
	rawHeaders  []byte // headers as stored (JSON), for messages loaded from the table
	body        []byte
	publishedAt int64 // unix ms
	// lazy: body is not in memory; read it from bus_messages on delivery.
	lazy bool
	// bodyFrom names the message whose body a dead letter copies (when the
	// original's body is not in memory).
	bodyFrom int64
}

// Open migrates the bus schema in db, rebuilds the in-memory index from it
// and starts the writer. cfg is validated (MaxBatch ≥ 1, CommitInterval ≥
// 0). log may be nil.
func Open(ctx context.Context, db *store.DB, cfg bus.LocalConfig, log *slog.Logger, opts ...Option) (*Bus, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if cfg.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("local bus: max_batch %d: must be at least 1", cfg.MaxBatch))
	}
	if cfg.CommitInterval < 0 {
		errs = append(errs, errors.New("local bus: commit_interval: must not be negative"))
	}
	if cfg.CacheBytes < 0 {
		errs = append(errs, errors.New("local bus: cache_bytes: must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := db.Migrate(ctx, "bus", Migrations()); err != nil {
		return nil, fmt.Errorf("local bus: %w", err)
	}
	b := &Bus{
		db:     db,
		cfg:    cfg,
		log:    log.With("component", "bus", "bus", "local"),
		topics: map[string][]*subscription{},
		subs:   map[subKey]*subscription{},
		done:   make(chan struct{}),
		start:  time.Now(),
	}
	b.registerMetrics(o.reg)
	b.w = newWriter(b)
	if err := b.load(ctx); err != nil {
		return nil, fmt.Errorf("local bus: load %s: %w", db, err)
	}
	st, err := db.PrepareContext(ctx, db.Rebind(`SELECT body FROM bus_messages WHERE id = ?`))
	if err != nil {
		return nil, fmt.Errorf("local bus: prepare: %w", err)
	}
	b.bodyStmt = st
	b.wg.Add(2)
	go func() { defer b.wg.Done(); b.w.run() }()
	go func() { defer b.wg.Done(); b.keeper() }()
	return b, nil
}

// load rebuilds subscriptions and the pending index from the tables.
func (b *Bus) load(ctx context.Context) error {
	var next sql.NullInt64
	if err := b.db.QueryRowContext(ctx, `SELECT next_id FROM bus_sequence WHERE id = 1`).Scan(&next); err != nil {
		return fmt.Errorf("read sequence: %w", err)
	}
	var maxID sql.NullInt64
	if err := b.db.QueryRowContext(ctx, `SELECT MAX(id) FROM bus_messages`).Scan(&maxID); err != nil {
		return fmt.Errorf("read max id: %w", err)
	}
	// next_id is the end of the last reserved block: ids below it may have
	// been used by messages since deleted.
	b.w.nextID = max(next.Int64, maxID.Int64+1, 1)
	b.w.reserved = b.w.nextID - 1

	rows, err := b.db.QueryContext(ctx, `SELECT id, topic, name FROM bus_subscriptions ORDER BY id`)
	if err != nil {
		return fmt.Errorf("read subscriptions: %w", err)
	}
	byID := map[int64]*subscription{}
	for rows.Next() {
		var id int64
		var topic, name string
		if err := rows.Scan(&id, &topic, &name); err != nil {
			rows.Close()
			return err
		}
		s := newSubscription(b, id, topic, name)
		byID[id] = s
		b.subs[subKey{topic, name}] = s
		b.topics[topic] = append(b.topics[topic], s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	// The index only: bodies are read on delivery (see CacheBytes).
	rows, err = b.db.QueryContext(ctx, `SELECT p.sub_id, p.attempts, p.not_before, p.cause,
		m.id, m.topic, m.msg_key, m.idem_key, m.headers, m.published_at
		FROM bus_pending p JOIN bus_messages m ON m.id = p.msg_id ORDER BY m.id, p.sub_id`)
	if err != nil {
		return fmt.Errorf("read pending: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var subID int64
		var attempts int
		var notBefore int64
		var cause string
		m, err := scanMessage(rows, &subID, &attempts, &notBefore, &cause)
		if err != nil {
			return fmt.Errorf("read pending: %w", err)
		}
		s := byID[subID]
		if s == nil {
			continue
		}
		m.topic = s.topic // one string per topic, not per message
		s.add(&entry{id: m.id, m: m, attempts: attempts, notBefore: notBefore, cause: cause}, 0)
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read pending: %w", err)
	}
	b.log.Info("local bus opened", "subscriptions", len(byID), "pending", n, "next_id", b.w.nextID)
	return nil
}

// scanMessage scans the message columns but the body (id, topic, msg_key,
// idem_key, headers, published_at) after the given leading destinations;
// the message is lazy (body read on delivery).
func scanMessage(rows *sql.Rows, lead ...any) (*stored, error) {
	m := &stored{lazy: true}
	var hdr []byte
	dest := append(lead, &m.id, &m.topic, &m.key, &m.idem, &hdr, &m.publishedAt)
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	if len(hdr) > 0 {
		if !json.Valid(hdr) {
			return nil, fmt.Errorf("message %d: headers are not JSON", m.id)
		}
		// Kept encoded: a decoded map costs several times more memory in an
		// index of millions; decoded on delivery.
		m.rawHeaders = hdr
	}
	return m, nil
}

// headerCopy returns a fresh map of m's headers (nil when none).
func (m *stored) headerCopy() map[string]string {
	if m.headers != nil {
		return maps.Clone(m.headers)
	}
	if len(m.rawHeaders) == 0 {
		return nil
	}
	var h map[string]string
	_ = json.Unmarshal(m.rawHeaders, &h) // validated when loaded
	return h
}

// loadBody reads the body of message id.
func (b *Bus) loadBody(ctx context.Context, id int64) ([]byte, error) {
	var body []byte
	if err := b.bodyStmt.QueryRowContext(ctx, id).Scan(&body); err != nil {
		return nil, fmt.Errorf("local bus: read body of message %d: %w", id, err)
	}
	return body, nil
}

// cache decides whether m's body stays in memory (within CacheBytes).
func (b *Bus) cache(m *stored) {
	if m.lazy {
		return
	}
	n := int64(len(m.body))
	if b.cached.Add(n) > b.cfg.CacheBytes {
		b.cached.Add(-n)
		m.body = nil
		m.lazy = true
	}
}

// uncache releases the memory accounted for m's body.
func (b *Bus) uncache(m *stored) {
	if !m.lazy {
		b.cached.Add(-int64(len(m.body)))
	}
}

// now is the monotonic clock of the bus, for processing deadlines.
// Check reports whether the bus's database answers (readiness).
func (b *Bus) Check(ctx context.Context) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if err := b.db.PingContext(ctx); err != nil {
		return fmt.Errorf("local bus: %w", err)
	}
	return nil
}

func (b *Bus) now() int64 { return int64(time.Since(b.start)) }

// Publish stores msgs durably in one shared commit and returns after it.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if topic == "" {
		return errors.New("local bus: publish: topic required")
	}
	if len(msgs) == 0 {
		return nil
	}
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return bus.ErrClosed
	}
	now := time.Now().UnixMilli()
	req := &pubReq{topic: topic, msgs: make([]*stored, len(msgs)), done: make(chan error, 1)}
	for i, m := range msgs {
		req.msgs[i] = &stored{topic: topic, key: m.Key, idem: m.IdempotencyKey, headers: m.Headers, body: m.Body, publishedAt: now}
	}
	select {
	case b.w.pubs <- req:
	case <-ctx.Done():
		return fmt.Errorf("local bus: publish %s: %w", topic, ctx.Err())
	case <-b.done:
		return bus.ErrClosed
	}
	select {
	case err := <-req.done:
		if err != nil {
			return fmt.Errorf("local bus: publish %s: %w", topic, err)
		}
		b.metrics.Published.WithLabelValues("local", topic).Add(float64(len(msgs)))
		return nil
	case <-ctx.Done():
		return fmt.Errorf("local bus: publish %s: %w", topic, ctx.Err())
	}
}

// Subscribe attaches a consumer, creating the durable subscription on first
// use. MaxDeliveries and DeadLetterTopic of the latest Subscribe apply to
// the whole subscription; ProcessingDeadline and Prefetch to this consumer.
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	b.mu.RLock()
	closed := b.closed
	s := b.subs[subKey{opts.Topic, opts.Subscription}]
	b.mu.RUnlock()
	if closed {
		return nil, bus.ErrClosed
	}
	if s == nil {
		req := &subReq{topic: opts.Topic, name: opts.Subscription, done: make(chan subReply, 1)}
		select {
		case b.w.subReqs <- req:
		case <-ctx.Done():
			return nil, fmt.Errorf("local bus: subscribe %s/%s: %w", opts.Topic, opts.Subscription, ctx.Err())
		case <-b.done:
			return nil, bus.ErrClosed
		}
		select {
		case r := <-req.done:
			if r.err != nil {
				return nil, fmt.Errorf("local bus: subscribe %s/%s: %w", opts.Topic, opts.Subscription, r.err)
			}
			s = r.sub
		case <-ctx.Done():
			return nil, fmt.Errorf("local bus: subscribe %s/%s: %w", opts.Topic, opts.Subscription, ctx.Err())
		case <-b.done:
			return nil, bus.ErrClosed
		}
	}
	return s.attach(opts)
}

// Close stops publishing and consuming, commits the acks and nacks still
// waiting and waits for the bus's goroutines, within ctx's deadline.
// Deliveries not acknowledged are redelivered after the next Open.
func (b *Bus) Close(ctx context.Context) error {
	b.closeM.Lock()
	defer b.closeM.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.closedFlag.Store(true)
	subs := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.closeAll()
	}
	close(b.done)
	stopped := make(chan struct{})
	go func() { b.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
		_ = b.bodyStmt.Close() // a Receive still reading gets an error, as from a closed bus
		return b.w.err()
	case <-ctx.Done():
		return fmt.Errorf("local bus: close: %w", ctx.Err())
	}
}

// keeper expires deliveries past their processing deadline.
func (b *Bus) keeper() {
	t := time.NewTicker(keeperTick)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		b.mu.RLock()
		subs := make([]*subscription, 0, len(b.subs))
		for _, s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.RUnlock()
		now := b.now()
		for _, s := range subs {
			s.expire(now)
		}
	}
}

// keeperTick is how often processing deadlines are checked.
const keeperTick = 10 * time.Millisecond

func formatID(id int64) string { return strconv.FormatInt(id, 10) }
