package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestAppendTxManyRows: a batch longer than one INSERT (two full
// statements and a short one) is chained in order after what is there,
// masked, and verifies; a batch rolled back leaves the chain as it was.
func TestAppendTxManyRows(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fc := clock.NewFake(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC))
		l := openLog(t, db, fc)
		fill(t, l, 3)
		n := 2*rowsPerInsert + 7
		rs := make([]Record, n)
		for i := range rs {
			rs[i] = Record{Actor: "partner:p", SourceIP: "10.0.0.2", Action: "partner_api.call", Object: "POST /routes/x",
				Outcome: OutcomeSuccess, RequestID: fmt.Sprint("req-", i), Detail: fmt.Sprint("phone 1381234", 1000+i)}
		}
		var seqs []int64
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			seqs, err = l.AppendTx(ctx, tx, rs)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range seqs {
			if s != int64(4+i) {
				t.Fatalf("seq %d of the batch is %d, want %d", i, s, 4+i)
			}
		}
		es, err := l.List(ctx, Filter{Action: "partner_api.call", Limit: 1000})
		if err != nil || len(es) != n {
			t.Fatalf("listed %d %v, want %d", len(es), err, n)
		}
		for _, e := range es {
			i := e.Seq - 4
			if e.RequestID != fmt.Sprint("req-", i) || e.Detail != fmt.Sprintf("phone 138****%04d", (1000+i)%10000) {
				t.Fatalf("entry %d: %+v", e.Seq, e)
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK() || rep.LastSeq != int64(3+n) || rep.Checked != int64(3+n) {
			t.Fatalf("verify %+v %v", rep, err)
		}

		// Rolled back: nothing written, the head unchanged.
		boom := errors.New("rolled back")
		err = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := l.AppendTx(ctx, tx, rs[:rowsPerInsert+1]); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("rollback: %v", err)
		}
		seq, err := l.Append(ctx, Record{Actor: "system:x", Action: "x", Outcome: OutcomeSuccess})
		if err != nil || seq != int64(4+n) {
			t.Fatalf("after the rollback: seq %d %v, want %d", seq, err, 4+n)
		}
		if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
			t.Fatalf("verify after the rollback %+v %v", rep, err)
		}
	})
}
