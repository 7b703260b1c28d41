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
// control write (lease, membership) ahead of every queued data write, and
// the lock passes from one to the next without polling.
type writeGate struct {
	mu        sync.Mutex
	busy      bool
	ctl, data []chan struct{}
	// wait bounds a wait for the gate (the busy timeout): past it the
	// writer gets ErrBusy, as it would have got SQLITE_BUSY.
	wait time.Duration
}

// acquire waits for the gate; control writes go before queued data writes.
func (g *writeGate) acquire(ctx context.Context, control bool) error {
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
	if control {
		g.ctl = append(g.ctl, ch)
	} else {
		g.data = append(g.data, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		if remove(&g.ctl, ch) || remove(&g.data, ch) {
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

// release hands the gate to the next control write, else the next data
// write, else frees it.
func (g *writeGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var next chan struct{}
	switch {
	case len(g.ctl) > 0:
		next, g.ctl = g.ctl[0], g.ctl[1:]
	case len(g.data) > 0:
		next, g.data = g.data[0], g.data[1:]
	default:
		g.busy = false
		return
	}
	close(next)
}

// queued returns the control and data writes waiting (tests).
func (g *writeGate) queued() (control, data int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ctl), len(g.data)
}

// Control runs fn, a short control write (a lease taken or renewed, a
// membership), ahead of the data writes this process has queued for a
// SQLite database, so that a saturated data path never starves it. On
// PostgreSQL, where writers do not share one lock, it just runs fn.
func (db *DB) Control(ctx context.Context, fn func(ctx context.Context) error) error {
	if db.gate == nil {
		return fn(ctx)
	}
	if err := db.gate.acquire(ctx, true); err != nil {
		return err
	}
	defer db.gate.release()
	return fn(ctx)
}
