package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestLeaseRenewalAheadOfSaturatedDataPath: with the write lock held by a
// data transaction and many more queued behind it, a lease renewal is the
// next write to run: every queued data transaction sees the lease already
// renewed.
func TestLeaseRenewalAheadOfSaturatedDataPath(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	fc := clock.NewFake(t0)
	el, err := lease.New(ctx, db, lease.Options{Node: "n1", Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := el.TryAcquire(ctx, "job"); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	fc.Advance(5 * time.Second)
	renewedTo := fc.Now().Add(lease.DefaultTTL).UnixMilli()

	held, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = db.InTx(ctx, func(tx *sql.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	const queued = 20
	var mu sync.Mutex
	var stale int
	for range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				var exp int64
				if err := tx.QueryRowContext(ctx, `SELECT expires_ms FROM leases WHERE name = 'job'`).Scan(&exp); err != nil {
					return err
				}
				if exp != renewedTo {
					mu.Lock()
					stale++
					mu.Unlock()
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	storetest.Until(t, "data writes queued", func() bool { _, _, d := db.WritesWaiting(); return d == queued })
	renewed := make(chan error, 1)
	go func() {
		ok, err := el.TryAcquire(ctx, "job")
		if err == nil && !ok {
			err = context.Canceled
		}
		renewed <- err
	}()
	storetest.Until(t, "renewal queued", func() bool { c, _, _ := db.WritesWaiting(); return c == 1 })
	close(release)
	if err := <-renewed; err != nil {
		t.Fatalf("renewal: %v", err)
	}
	wg.Wait()
	if stale != 0 {
		t.Fatalf("%d of %d queued data writes ran before the lease renewal", stale, queued)
	}
}

// TestBeginWriteHoldsTheGate: a transaction begun with BeginWrite queues
// the process's other writers at the gate until it commits, and a
// rollback releases the gate too (the next writer runs). Without the gate
// a second writer would poll SQLite's lock and could lose its turn
// repeatedly behind a long apply committed in slices.
func TestBeginWriteHoldsTheGate(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if db.Dialect() != store.SQLite {
		t.Skip("the write gate is SQLite's")
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE bw (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for _, end := range []string{"commit", "rollback"} {
		tx, err := db.BeginWrite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bw VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		go func() {
			ran <- db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO bw VALUES (2)`)
				return err
			})
		}()
		storetest.Until(t, "the second writer to queue at the gate", func() bool { _, _, d := db.WritesWaiting(); return d == 1 })
		if end == "commit" {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := <-ran; err != nil {
			t.Fatalf("after %s: %v", end, err)
		}
		if err := tx.Rollback(); err == nil {
			t.Fatalf("after %s: a second end succeeded", end)
		}
		if c, u, d := db.WritesWaiting(); c != 0 || u != 0 || d != 0 {
			t.Fatalf("after %s: %d/%d queued", end, c, d)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM bw`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows %d %v, want 3 (1 committed + 2 by the queued writers)", n, err)
	}
}
