package routes

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the route engine's schema (component "routes").
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationFS, "migrations")
	return sub
}

// Migrate applies the route engine's schema to db.
func Migrate(ctx context.Context, db *store.DB) error {
	return db.Migrate(ctx, "routes", Migrations())
}

// Delivery states in the ledger.
const (
	stateNone    = ""
	statePending = "pending"
	stateDone    = "done"
)

type ledgerOpKind uint8

const (
	opClaim   ledgerOpKind = iota // insert pending; answer the existing state if any
	opDone                        // record done
	opRelease                     // forget a pending delivery that failed
	opCheck                       // read the state
)

type ledgerOp struct {
	kind              ledgerOpKind
	route, sink, idem string
	res               chan ledgerRes
}

type ledgerRes struct {
	state string
	err   error
}

// ledger is the delivery ledger. Operations from many workers are grouped
// into one transaction (group commit): SQLite has one writer, and one commit
// per batch instead of per message is what makes the durable route fast.
type ledger struct {
	db   *store.DB
	ops  chan ledgerOp
	now  func() time.Time
	wg   sync.WaitGroup
	stop chan struct{}
	// done is closed when the loop has returned.
	done chan struct{}

	qClaim, qSelect, qDone, qRelease string
	// prepared statements (nil until prepared; plain text is used then)
	stmts map[string]*sql.Stmt
}

func newLedger(db *store.DB, now func() time.Time) *ledger {
	l := &ledger{
		db:       db,
		ops:      make(chan ledgerOp, 1024),
		now:      now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		qClaim:   db.Rebind(`INSERT INTO routes_deliveries (route, sink, idem, state, updated_at) VALUES (?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`),
		qSelect:  db.Rebind(`SELECT state FROM routes_deliveries WHERE route = ? AND sink = ? AND idem = ?`),
		qDone:    db.Rebind(`INSERT INTO routes_deliveries (route, sink, idem, state, updated_at) VALUES (?, ?, ?, 'done', ?) ON CONFLICT (route, sink, idem) DO UPDATE SET state = 'done', updated_at = excluded.updated_at`),
		qRelease: db.Rebind(`DELETE FROM routes_deliveries WHERE route = ? AND sink = ? AND idem = ? AND state = 'pending'`),
	}
	l.stmts = map[string]*sql.Stmt{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range []string{l.qClaim, l.qSelect, l.qDone, l.qRelease} {
		if st, err := db.PrepareContext(ctx, q); err == nil {
			l.stmts[q] = st
		}
	}
	l.wg.Add(1)
	go l.loop()
	return l
}

// stmt returns the statement q bound to tx (prepared once: parsing the SQL
// for every message was a tenth of the route's CPU).
func (l *ledger) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	if st := l.stmts[q]; st != nil {
		return tx.StmtContext(ctx, st)
	}
	return nil
}

func (l *ledger) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := l.stmt(ctx, tx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

func (l *ledger) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := l.stmt(ctx, tx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

func (l *ledger) close() {
	close(l.stop)
	l.wg.Wait()
	for _, st := range l.stmts {
		_ = st.Close()
	}
}

// post queues an operation without waiting for its commit. It is used for
// records whose loss is safe: a "done" that a crash loses leaves a pending
// entry, which the next attempt resolves by asking the sink (or a done of an
// idempotent sink, which only saves a harmless resend).
func (l *ledger) post(kind ledgerOpKind, route, sink, idem string) {
	op := ledgerOp{kind: kind, route: route, sink: sink, idem: idem, res: make(chan ledgerRes, 1)}
	select {
	case l.ops <- op:
	case <-l.stop:
	}
}

// do queues an operation and waits for its batch to commit. Once queued,
// it waits for the answer whatever ctx says (a batch is bounded by its own
// timeout, and close runs what is queued): a caller cut by a shutdown
// learns whether its claim was written, so a claim never exists without
// its caller knowing.
func (l *ledger) do(ctx context.Context, kind ledgerOpKind, route, sink, idem string) (string, error) {
	op := ledgerOp{kind: kind, route: route, sink: sink, idem: idem, res: make(chan ledgerRes, 1)}
	select {
	case l.ops <- op:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-l.stop:
		return "", ErrClosed
	}
	select {
	case r := <-op.res:
		return r.state, r.err
	case <-l.done:
		// Queued as the ledger closed: answered, or never run.
		select {
		case r := <-op.res:
			return r.state, r.err
		default:
			return "", ErrClosed
		}
	}
}

const (
	ledgerBatch  = 512
	ledgerWindow = time.Millisecond
)

func (l *ledger) loop() {
	defer l.wg.Done()
	defer close(l.done)
	batch := make([]ledgerOp, 0, ledgerBatch)
	for {
		select {
		case op := <-l.ops:
			batch = append(batch[:0], op)
		case <-l.stop:
			// Write what is still queued (done records posted without
			// waiting), then stop.
			batch = batch[:0]
			for {
				select {
				case op := <-l.ops:
					batch = append(batch, op)
					if len(batch) == ledgerBatch {
						l.run(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				l.run(batch)
			}
			return
		}
		// Gather what else arrives within a short window: fewer, larger
		// transactions contend less for SQLite's single write lock.
		window := time.NewTimer(ledgerWindow)
	fill:
		for len(batch) < ledgerBatch {
			select {
			case op := <-l.ops:
				batch = append(batch, op)
			case <-window.C:
				break fill
			}
		}
		window.Stop()
		l.run(batch)
	}
}

func (l *ledger) run(batch []ledgerOp) {
	// Urgent at the write gate like the bus and the spool: a route's
	// delivery keeps pace with its intake instead of queueing behind a
	// monthly batch's transactions (store.Urgent).
	ctx, cancel := context.WithTimeout(store.Urgent(context.Background()), 30*time.Second)
	defer cancel()
	res := make([]ledgerRes, len(batch))
	now := l.now().UnixMilli()
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		for i, op := range batch {
			var err error
			switch op.kind {
			case opClaim:
				var r sql.Result
				r, err = l.exec(ctx, tx, l.qClaim, op.route, op.sink, op.idem, now)
				if err == nil {
					n, _ := r.RowsAffected()
					if n == 0 {
						err = l.queryRow(ctx, tx, l.qSelect, op.route, op.sink, op.idem).Scan(&res[i].state)
						if errors.Is(err, sql.ErrNoRows) {
							err = nil
						}
					}
				}
			case opCheck:
				err = l.queryRow(ctx, tx, l.qSelect, op.route, op.sink, op.idem).Scan(&res[i].state)
				if errors.Is(err, sql.ErrNoRows) {
					err = nil
				}
			case opDone:
				_, err = l.exec(ctx, tx, l.qDone, op.route, op.sink, op.idem, now)
			case opRelease:
				_, err = l.exec(ctx, tx, l.qRelease, op.route, op.sink, op.idem)
			}
			if err != nil {
				return fmt.Errorf("routes: ledger: %w", err)
			}
		}
		return nil
	})
	for i, op := range batch {
		if err != nil {
			op.res <- ledgerRes{err: err}
			continue
		}
		op.res <- res[i]
	}
}

// forget removes the ledger entries of a message (all sinks) so that a
// replay decided by an operator sends again what was in doubt.
func forgetPending(ctx context.Context, db *store.DB, route, idemPrefix string) error {
	_, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM routes_deliveries WHERE route = ? AND state = 'pending' AND (idem = ? OR idem LIKE ?)`),
		route, idemPrefix, likeEscape(idemPrefix)+"#%")
	return err
}

func likeEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '_' {
			out = append(out, '_') // LIKE '_' matches any one char, close enough for a prefix of a key
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}
