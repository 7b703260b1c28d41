package audit_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
)

// TestThrottleAggregatesUnauthenticatedFloods: 500 refusals from one
// address in a burst become PerKey records plus one count record; another
// address keeps its own budget; nothing is lost from the count.
func TestThrottleAggregatesUnauthenticatedFloods(t *testing.T) {
	ctx := context.Background()
	rec := &audittest.Recorder{}
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	th := audit.NewThrottle(rec, 10, time.Minute, clk)
	var wg sync.WaitGroup
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := th.Append(ctx, audit.Record{Actor: "user:", SourceIP: "203.0.113.9", Action: "console.login", Object: "user:", Outcome: audit.OutcomeFailure, Detail: "unknown user"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := th.Append(ctx, audit.Record{Actor: "ip:198.51.100.1", SourceIP: "198.51.100.1", Action: "console.login", Outcome: audit.OutcomeFailure}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Records()); n != 11 {
		t.Fatalf("%d records during the burst, want 10 + 1 from the other address", n)
	}
	if err := th.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Records()); n != 11 {
		t.Fatalf("a window that has not ended was flushed: %d records", n)
	}
	clk.Advance(time.Minute)
	if err := th.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	rs := rec.Records()
	if len(rs) != 12 || !strings.Contains(rs[11].Detail, "aggregated: 490 more") || rs[11].SourceIP != "203.0.113.9" || rs[11].Outcome != audit.OutcomeFailure {
		t.Fatalf("summary: %d records, last %+v", len(rs), rs[len(rs)-1])
	}
	// A new window has its own budget.
	if seq, err := th.Append(ctx, audit.Record{SourceIP: "203.0.113.9", Action: "console.login", Outcome: audit.OutcomeFailure}); err != nil || len(rec.Records()) != 13 {
		t.Fatalf("new window: seq %d err %v records %d", seq, err, len(rec.Records()))
	}
}
