//go:build unix

package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
)

// benchEvents builds n events shaped like a partner route's: per exchange a
// received, a transformed and a sent event, with the ids the writer gives.
func benchEvents(n, start int, t0 time.Time) []monitor.Event {
	evs := make([]monitor.Event, 0, n)
	for i := start; len(evs) < n; i++ {
		ex := fmt.Sprintf("h1-%016x-%d", uint64(i)*0x9e3779b97f4a7c15, i)
		base := monitor.Event{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Partner: "bench.partner", Flow: "bench",
			Channel: "http", Status: monitor.OK, ExchangeID: ex, Component: "route:bench", Node: "node-1",
		}
		for j, typ := range []monitor.EventType{monitor.Received, monitor.Transformed, monitor.Sent} {
			ev := base
			ev.ID = fmt.Sprintf("mx7h2uudc9190779-%x", 3*i+j)
			ev.Type = typ
			switch typ {
			case monitor.Received:
				ev.Direction = monitor.Inbound
			case monitor.Transformed:
				ev.Stage = "map-1"
				ev.Duration = 40 * time.Microsecond
			case monitor.Sent:
				ev.Direction = monitor.Outbound
				ev.Attempt = 1
				ev.Bytes = 96
				ev.Duration = 2 * time.Millisecond
				ev.Attrs = map[string]string{"sink": "sink"}
			}
			evs = append(evs, ev)
		}
	}
	return evs[:n]
}

// BenchmarkAppend stores batches of 1,000 route events (the SQLite store's
// flush size) into a database that already holds 100,000: in-process, the
// monitor's share of a partner call on the embedded profile.
var batchN = 1000

func BenchmarkAppend(b *testing.B) {
	if v := os.Getenv("BATCH"); v != "" {
		batchN, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "monitor.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Add(-time.Hour)
	next := 0
	for next < 100_000 {
		if err := s.Append(ctx, benchEvents(1000, next/3, t0)); err != nil {
			b.Fatal(err)
		}
		next += 1000
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := benchEvents(batchN, (next+i*batchN)/3, t0)
		c0 := clock.ProcessCPU()
		b.StartTimer()
		if err := s.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
		cpu += clock.ProcessCPU() - c0
	}
	b.ReportMetric(float64(b.N*batchN)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batchN), "cpu-ns/event")
}
