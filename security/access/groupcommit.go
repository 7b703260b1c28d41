package access

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
)

// GroupCommit writes the partner guard's durable records, the nonce of
// every signed call and the audit record of every authenticated call, in
// shared transactions: one committer goroutine takes what is queued (up to
// MaxBatch), writes it in one transaction and only then answers each call
// of the batch. A call costs a queue slot and a wait instead of a
// transaction of its own, so the write lock of the state database is taken
// once per batch rather than twice per call.
//
// Promises kept as with one transaction per call:
//   - replay protection is exact: a nonce is fresh once, whether its
//     repeat is in the same batch (checked in memory before the database)
//     or in another batch or on another replica (the primary key of
//     partner_nonces, INSERT … ON CONFLICT DO NOTHING);
//   - the audit chain is complete and gapless: the batch's records are
//     chained to the head inside the transaction (audit.Log.AppendTx);
//   - Use and Append return only after the batch holding their record
//     committed; if the transaction fails, every call of the batch gets
//     the error (the guard answers 503 with Retry-After).
//
// Back pressure: the queue is bounded (QueueSize). A call that finds it
// full gets ErrOverloaded at once; a call whose batch is not committed
// within MaxWait gets ErrBusy. Neither waits for SQLite's busy timeout.
//
// GroupCommit implements NonceStore and audit.Appender.
type GroupCommit struct {
	db      *store.DB
	audit   *audit.Log
	clock   clock.Clock
	log     *slog.Logger
	q       chan *gcItem
	max     int
	wait    time.Duration
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	upd     *sql.Stmt
	insN    *store.MultiRow
	swept   time.Time
	metrics gcMetrics

	// Test hooks (export_test.go): beforeBatch runs when the committer has
	// taken a batch's first call, before it drains the queue; inTx runs
	// inside the transaction before it commits (an error rolls it back).
	beforeBatch func()
	inTx        func(n int) error
	// waitsForRoom runs when an audit record starts waiting for room in
	// the full queue.
	waitsForRoom func()
}

type gcMetrics struct {
	batch   prometheus.Histogram
	seconds prometheus.Histogram
	refused *prometheus.CounterVec
}

// GroupCommitOptions tune a GroupCommit; zero fields take the defaults.
type GroupCommitOptions struct {
	// QueueSize bounds the calls waiting for a commit (default 4096).
	QueueSize int
	// MaxBatch caps the calls written in one transaction (default 1024).
	MaxBatch int
	// MaxWait is how long a call waits for its batch before it gives up
	// with ErrBusy (default 5s).
	MaxWait time.Duration
	// Clock tells the time of audit records and nonce sweeps (default the
	// wall clock).
	Clock clock.Clock
	// Logger gets commit failures (default discarded).
	Logger *slog.Logger
	// Registerer gets mzhub_partner_commit_* metrics (nil: none).
	Registerer prometheus.Registerer
}

// gcItem is one call waiting for a commit: a nonce (rec nil) or an audit
// record.
type gcItem struct {
	keyID, nonce string
	now, expires time.Time
	rec          *audit.Record

	fresh bool
	seq   int64
	err   error
	done  chan struct{}
}

// NewGroupCommit migrates the nonce table, prepares the nonce reclaim
// and starts the committer. Close stops it.
func NewGroupCommit(ctx context.Context, db *store.DB, log *audit.Log, o GroupCommitOptions) (*GroupCommit, error) {
	if log == nil {
		return nil, errors.New("access: group commit needs the audit log")
	}
	if err := db.Migrate(ctx, Component, Migrations()); err != nil {
		return nil, err
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &GroupCommit{
		db: db, audit: log, clock: o.Clock, log: o.Logger,
		q: make(chan *gcItem, o.QueueSize), max: o.MaxBatch, wait: o.MaxWait,
		stop: make(chan struct{}), done: make(chan struct{}),
		metrics: gcMetrics{
			batch: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "mzhub_partner_commit_batch_size",
				Help:    "Partner guard records (nonces and audit records) written per group-commit transaction.",
				Buckets: prometheus.ExponentialBuckets(1, 4, 7),
			}),
			seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "mzhub_partner_commit_seconds",
				Help:    "Time of one group-commit transaction of the partner guard.",
				Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
			}),
			refused: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "mzhub_partner_commit_refused_total",
				Help: "Partner guard records refused with back pressure, by reason (overloaded: queue full; busy: not committed in time; failed: the transaction failed).",
			}, []string{"reason"}),
		},
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{g.metrics.batch, g.metrics.seconds, g.metrics.refused} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("access: register metrics: %w", err)
			}
		}
	}
	var err error
	if g.upd, err = db.PrepareContext(ctx, db.Rebind(`UPDATE partner_nonces SET expires_ms = ? WHERE key_id = ? AND nonce = ? AND expires_ms < ?`)); err != nil {
		return nil, fmt.Errorf("access: prepare nonce update: %w", err)
	}
	g.insN = store.NewMultiRow(db, nonceRowsPerInsert, insertNonces(db.Dialect()))
	g.swept = g.clock.Now()
	go g.run()
	return g, nil
}

var (
	_ NonceStore     = (*GroupCommit)(nil)
	_ audit.Appender = (*GroupCommit)(nil)
)

// Use records the nonce in the next batch and reports, once the batch is
// durable, whether it was fresh.
func (g *GroupCommit) Use(ctx context.Context, keyID, nonce string, now, expires time.Time) (bool, error) {
	it := &gcItem{keyID: keyID, nonce: nonce, now: now, expires: expires}
	if err := g.submit(ctx, it); err != nil {
		return false, fmt.Errorf("access: record nonce: %w", err)
	}
	return it.fresh, nil
}

// Append adds r to the audit chain in the next batch and returns its
// sequence number once the batch is durable.
func (g *GroupCommit) Append(ctx context.Context, r audit.Record) (int64, error) {
	it := &gcItem{rec: &r}
	if err := g.submit(ctx, it); err != nil {
		return 0, fmt.Errorf("audit: append %s: %w", r.Action, err)
	}
	return it.seq, nil
}

// failFastKey marks an Append that must not wait for room in the commit
// queue: the record of a busy answer, whose loss is that back pressure
// itself (see PartnerAuth).
type failFastKey struct{}

func failFast(ctx context.Context) context.Context {
	return context.WithValue(ctx, failFastKey{}, true)
}

func (g *GroupCommit) submit(ctx context.Context, it *gcItem) error {
	it.done = make(chan struct{})
	select {
	case <-g.stop:
		return ErrClosed
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.q <- it:
	default:
		if it.rec == nil || ctx.Value(failFastKey{}) != nil {
			g.metrics.refused.WithLabelValues("overloaded").Inc()
			return ErrOverloaded
		}
		// An audit record of a call already decided waits for room (up
		// to MaxWait) instead of being lost to a moment's full queue: a
		// nonce refused at once is back pressure, a lost audit record is
		// a gap in the trail.
		if g.waitsForRoom != nil {
			g.waitsForRoom()
		}
		select {
		case g.q <- it:
		case <-t.C:
			g.metrics.refused.WithLabelValues("busy").Inc()
			return ErrBusy
		case <-ctx.Done():
			return ctx.Err()
		case <-g.stop:
			return ErrClosed
		}
	}
	select {
	case <-it.done:
		if it.err != nil {
			g.metrics.refused.WithLabelValues("failed").Inc()
		}
		return it.err
	case <-t.C:
		g.metrics.refused.WithLabelValues("busy").Inc()
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking calls, commits what is queued and waits for the
// committer, at most until ctx is done.
func (g *GroupCommit) Close(ctx context.Context) error {
	g.once.Do(func() { close(g.stop) })
	select {
	case <-g.done:
		_ = g.upd.Close()
		_ = g.insN.Close()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *GroupCommit) run() {
	defer close(g.done)
	for {
		var first *gcItem
		select {
		case first = <-g.q:
		case <-g.stop:
			for {
				select {
				case it := <-g.q:
					g.commit([]*gcItem{it})
				default:
					return
				}
			}
		}
		if g.beforeBatch != nil {
			g.beforeBatch()
		}
		// No linger: while one transaction commits, the next batch
		// gathers in the queue by itself.
		batch := []*gcItem{first}
	fill:
		for len(batch) < g.max {
			select {
			case it := <-g.q:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		g.commit(batch)
	}
}

// commit writes one batch in one transaction and answers its calls.
func (g *GroupCommit) commit(batch []*gcItem) {
	t0 := time.Now()
	// Every call of the batch waits for this commit: urgent at the write
	// gate (store.Urgent), behind lease writes only.
	ctx, cancel := context.WithTimeout(store.Urgent(context.Background()), 2*g.wait)
	defer cancel()
	err := g.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := g.nonces(ctx, tx, batch); err != nil {
			return err
		}
		var recs []audit.Record
		for _, it := range batch {
			if it.rec != nil {
				recs = append(recs, *it.rec)
			}
		}
		seqs, err := g.audit.AppendTx(ctx, tx, recs)
		if err != nil {
			return err
		}
		i := 0
		for _, it := range batch {
			if it.rec != nil {
				it.seq = seqs[i]
				i++
			}
		}
		if g.inTx != nil {
			return g.inTx(len(batch))
		}
		return nil
	})
	g.metrics.seconds.Observe(time.Since(t0).Seconds())
	g.metrics.batch.Observe(float64(len(batch)))
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrBusy, err)
		g.log.Error("partner guard group commit failed", "calls", len(batch), "err", err)
	}
	for _, it := range batch {
		if err != nil {
			it.fresh, it.seq, it.err = false, 0, err
		}
		close(it.done)
	}
}

// nonces records the batch's nonces: the first of a repeated nonce is
// judged by the database, its repeats in the batch are replays. The
// first ones are inserted many to a statement; the database returns those
// it inserted (fresh), and each one it kept out, seen before, is fresh again
// only if the old row has expired (a statement each: rare).
func (g *GroupCommit) nonces(ctx context.Context, tx *sql.Tx, batch []*gcItem) error {
	seen := map[string]bool{}
	var firsts []*gcItem
	for _, it := range batch {
		if it.rec != nil {
			continue
		}
		k := it.keyID + "\x00" + it.nonce
		if seen[k] {
			it.fresh = false
			continue
		}
		seen[k] = true
		firsts = append(firsts, it)
	}
	// In key order: two replicas' batches holding the same nonces lock
	// them in the same order (PostgreSQL), so neither waits on the other
	// in a cycle.
	slices.SortFunc(firsts, func(a, b *gcItem) int {
		return cmp.Or(strings.Compare(a.keyID, b.keyID), strings.Compare(a.nonce, b.nonce))
	})
	inserted := make(map[string]bool, len(firsts))
	args := make([]any, 0, 3*min(len(firsts), nonceRowsPerInsert))
	err := g.insN.Query(ctx, tx, len(firsts), func(off, size int) []any {
		args = args[:0]
		for _, it := range firsts[off : off+size] {
			args = append(args, it.keyID, it.nonce, it.expires.UnixMilli())
		}
		return args
	}, func(rows *sql.Rows) error {
		var key, nonce string
		if err := rows.Scan(&key, &nonce); err != nil {
			return err
		}
		inserted[key+"\x00"+nonce] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert nonces: %w", err)
	}
	var upd *sql.Stmt
	for _, it := range firsts {
		if inserted[it.keyID+"\x00"+it.nonce] {
			it.fresh = true
			continue
		}
		if upd == nil {
			upd = tx.StmtContext(ctx, g.upd)
		}
		res, err := upd.ExecContext(ctx, it.expires.UnixMilli(), it.keyID, it.nonce, it.now.UnixMilli())
		if err != nil {
			return fmt.Errorf("reclaim nonce: %w", err)
		}
		n, _ := res.RowsAffected()
		it.fresh = n == 1
	}
	if now := g.clock.Now(); now.Sub(g.swept) >= time.Minute {
		if _, err := tx.ExecContext(ctx, g.db.Rebind(`DELETE FROM partner_nonces WHERE expires_ms < ?`), now.UnixMilli()); err != nil {
			return fmt.Errorf("sweep nonces: %w", err)
		}
		g.swept = now
	}
	return nil
}

// nonceRowsPerInsert is the most nonces one INSERT writes (three
// parameters a row; small, since every size up to it stays prepared on
// each connection that ran it).
const nonceRowsPerInsert = 32

// insertNonces is the INSERT of n nonces that returns those it inserted:
// the others were there already. On SQLite it is INSERT OR IGNORE, which
// needs no statement journal for many rows (ON CONFLICT DO NOTHING does);
// the primary key is the only constraint that can fail there, since every
// column is bound from a Go value.
func insertNonces(d store.Dialect) func(n int) string {
	return func(n int) string {
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?),", n), ",")
		if d == store.SQLite {
			return `INSERT OR IGNORE INTO partner_nonces (key_id, nonce, expires_ms) VALUES ` + rows + ` RETURNING key_id, nonce`
		}
		return `INSERT INTO partner_nonces (key_id, nonce, expires_ms) VALUES ` + rows + ` ON CONFLICT DO NOTHING RETURNING key_id, nonce`
	}
}
