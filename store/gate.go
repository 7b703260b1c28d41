package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// writeGate lets one writer of this process at a time at a SQLite
// database, control writes first. SQLite has one write lock; without the
// gate, writers that find it taken poll it (busy_timeout) with growing
// sleeps and the luckiest poller wins, so under a steady load of data
// writes a lease renewal can wait out the whole busy timeout and the lease
// is lost. Behind the gate, writers of this process queue in order, a
// control write (lease, membership) ahead of every queued write, then an
// urgent write (one a partner's call waits for: see Urgent) ahead of the
// queued data writes, and the lock passes from one to the next without
// polling. Urgent writes take at most urgentBurst turns in a row while a
// data write waits, so a monthly batch still moves under a steady stream
// of partner calls.
type writeGate struct {
	mu                sync.Mutex
	busy              bool
	ctl, urgent, data []chan struct{}
	// urgentRun counts the urgent writes let in since a data write last
	// had its turn, while data writes waited.
	urgentRun int
	// wait bounds a wait for the gate (the busy timeout): past it the
	// writer gets ErrBusy, as it would have got SQLITE_BUSY.
	wait time.Duration
}

// writeClass orders writes at the gate.
type writeClass uint8

const (
	classData writeClass = iota
	classUrgent
	classControl
)

// urgentBurst is how many urgent writes go in a row ahead of a waiting
// data write.
const urgentBurst = 4

type urgentKey struct{}

// Urgent marks the writes made with ctx as urgent: a caller is waiting for
// them (a partner's call, the spool or bus commit that answers it). At a
// SQLite database's write gate they go ahead of queued data writes, after
// control writes, and at most urgentBurst in a row while a data write
// waits. On PostgreSQL it changes nothing.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

// IsUrgent reports whether ctx was marked by Urgent.
func IsUrgent(ctx context.Context) bool { return classOf(ctx) == classUrgent }

func classOf(ctx context.Context) writeClass {
	if u, _ := ctx.Value(urgentKey{}).(bool); u {
		return classUrgent
	}
	return classData
}

// acquire waits for the gate in its class's queue.
func (g *writeGate) acquire(ctx context.Context, class writeClass) error {
	if g.wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.wait)
		defer cancel()
	}
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	switch class {
	case classControl:
		g.ctl = append(g.ctl, ch)
	case classUrgent:
		g.urgent = append(g.urgent, ch)
	default:
		g.data = append(g.data, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		if remove(&g.ctl, ch) || remove(&g.urgent, ch) || remove(&g.data, ch) {
			g.mu.Unlock()
			return fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
		}
		g.mu.Unlock()
		// Handed the gate while giving up: pass it on.
		g.release()
		return fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

func remove(q *[]chan struct{}, ch chan struct{}) bool {
	for i, c := range *q {
		if c == ch {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return true
		}
	}
	return false
}

// release hands the gate to the next control write, else the next urgent
// write (unless urgentBurst of them went in a row while a data write
// waited), else the next data write, else frees it.
func (g *writeGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var next chan struct{}
	switch {
	case len(g.ctl) > 0:
		next, g.ctl = g.ctl[0], g.ctl[1:]
	case len(g.urgent) > 0 && (len(g.data) == 0 || g.urgentRun < urgentBurst):
		next, g.urgent = g.urgent[0], g.urgent[1:]
		if len(g.data) > 0 {
			g.urgentRun++
		}
	case len(g.data) > 0:
		next, g.data = g.data[0], g.data[1:]
		g.urgentRun = 0
	default:
		g.busy = false
		return
	}
	close(next)
}

// queued returns the control, urgent and data writes waiting (tests).
func (g *writeGate) queued() (control, urgent, data int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ctl), len(g.urgent), len(g.data)
}

// WritesWaiting returns how many control, urgent and data writes of this
// process wait at a SQLite database's write gate (all 0 on PostgreSQL).
func (db *DB) WritesWaiting() (control, urgent, data int) {
	if db.gate == nil {
		return 0, 0, 0
	}
	return db.gate.queued()
}

// Control runs fn, a short control write (a lease taken or renewed, a
// membership), ahead of the data writes this process has queued for a
// SQLite database, so that a saturated data path never starves it. On
// PostgreSQL, where writers do not share one lock, it just runs fn.
func (db *DB) Control(ctx context.Context, fn func(ctx context.Context) error) error {
	if db.gate == nil {
		return fn(ctx)
	}
	if err := db.gate.acquire(ctx, classControl); err != nil {
		return err
	}
	defer db.gate.release()
	return fn(ctx)
}
