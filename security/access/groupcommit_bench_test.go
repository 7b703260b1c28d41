package access

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// BenchmarkGroupCommit is the partner guard's durable work for one signed
// call, in process on a SQLite state file: a nonce and an audit record,
// from 200 concurrent callers as at 200 connections. One op is one call
// (both records). cpu-ns/call is the process's CPU time per call;
// records/commit the mean size of a group commit.
func BenchmarkGroupCommit(b *testing.B) {
	db := storetest.Open(b)
	benchGroupCommit(b, db)
}

func benchGroupCommit(b *testing.B, db *store.DB) {
	ctx := context.Background()
	log, err := audit.Open(ctx, db, []byte("0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := NewGroupCommit(ctx, db, log, GroupCommitOptions{MaxWait: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close(context.Background())
	var batches atomic.Int64
	g.inTx = func(int) error { batches.Add(1); return nil }
	const callers = 200
	var next atomic.Int64
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := clock.ProcessCPU()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				fresh, err := g.Use(ctx, "bench-key", fmt.Sprintf("nonce-%d", i), now, now.Add(10*time.Minute))
				if err == nil && !fresh {
					err = fmt.Errorf("nonce %d not fresh", i)
				}
				if err == nil {
					_, err = g.Append(ctx, audit.Record{Actor: "partner:bench", SourceIP: "127.0.0.1", Action: "partner_api.call",
						Object: "POST /routes/bench", Outcome: audit.OutcomeSuccess, RequestID: fmt.Sprint("req-", i)})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64((clock.ProcessCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/call")
	b.ReportMetric(float64(2*b.N)/float64(batches.Load()), "records/commit")
}
