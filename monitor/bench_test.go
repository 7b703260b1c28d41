package monitor_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
)

// routeStep stands in for a light route step on one record: decode a JSON
// payment record, map it, digest it with SM3 and encode the result. Real
// steps also do I/O (SFTP, HTTP, the bus), so this overstates the relative
// cost of events.
func routeStep(in []byte) ([]byte, string) {
	var rec map[string]any
	if err := json.Unmarshal(in, &rec); err != nil {
		panic(err)
	}
	out := map[string]any{"id_token": rec["id_token"], "account_last4": rec["account_last4"], "amount_fen": rec["amount_fen"],
		"district": rec["district"], "month": rec["month"], "bank": "BOC", "standard": rec["standard"]}
	b, _ := json.Marshal(out)
	d := sm3.Sum(b)
	return b, hex.EncodeToString(d[:])
}

var record = []byte(`{"id_token":"tok:9f2c61aa04b1","account_last4":"1234","amount_fen":15000,"district":"310101","month":"2026-11",` +
	`"standard":"elderly-65-69","name_masked":"张*","address":"上海市黄浦区某路 1 号","phone_masked":"138****5678","remark":"` +
	`` + fmt.Sprintf("%0400d", 0) + `"}`)

// BenchmarkRouteStep compares a route step without events and with the two
// events a step emits (received + sent) through a writer flushing in the
// background: into a store that only takes the batch (the writer's own
// cost: Emit on the route's goroutine, stamping and batching on the
// writer's), and into a real SQLite event store (the embedded profile,
// whose storing runs on the same cores). The overhead is the difference in
// CPU per step of the whole process.
func BenchmarkRouteStep(b *testing.B) {
	b.Run("without_events", func(b *testing.B) {
		cpu := clock.ProcessCPU().Nanoseconds()
		for i := 0; i < b.N; i++ {
			routeStep(record)
		}
		b.ReportMetric(float64(clock.ProcessCPU().Nanoseconds()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("with_events_writer", func(b *testing.B) {
		withEvents(b, discard{})
	})
	b.Run("with_events_sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "m.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		withEvents(b, st)
	})
}

func withEvents(b *testing.B, st monitor.Appender) {
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10000, FlushInterval: time.Second, BufferSize: 2000000,
		Metrics: monitor.NewMetrics(nil)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	b.ResetTimer()
	cpu := clock.ProcessCPU().Nanoseconds()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		w.Emit(monitor.Event{Partner: "bank.boc", Flow: "allowance", Direction: monitor.Inbound, Channel: "bus",
			Type: monitor.Received, ExchangeID: "r", BatchID: "2026-11", Stage: "send"})
		_, digest := routeStep(record)
		w.Emit(monitor.Event{Partner: "bank.boc", Flow: "allowance", Direction: monitor.Outbound, Channel: "sftp",
			Type: monitor.Sent, ExchangeID: "r", ParentIDs: []string{"r0"}, BatchID: "2026-11", Stage: "send",
			Digest: digest, Records: 1, AmountFen: 15000, Duration: time.Since(start), Attempt: 1})
	}
	b.StopTimer()
	cancel()
	<-done
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	// CPU of the whole process: the route, Emit and the writer storing
	// every event.
	b.ReportMetric(float64(clock.ProcessCPU().Nanoseconds()-cpu)/float64(b.N), "cpu-ns/op")
	if s := w.Stats(); s.Dropped > 0 {
		b.Logf("dropped %d events", s.Dropped)
	}
}

// BenchmarkEmitOne is the cost of Emit on the caller's goroutine, one emitter.
func BenchmarkEmitOne(b *testing.B) {
	w := monitor.NewWriter(discard{}, monitor.WriterOptions{FlushSize: 10000, FlushInterval: time.Second, BufferSize: 1 << 30})
	ev := monitor.Event{Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, ExchangeID: "x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Emit(ev)
	}
}

// BenchmarkEmit is the cost of Emit with concurrent emitters.
func BenchmarkEmit(b *testing.B) {
	w := monitor.NewWriter(discard{}, monitor.WriterOptions{FlushSize: 10000, FlushInterval: time.Second, BufferSize: 1 << 30})
	ev := monitor.Event{Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, ExchangeID: "x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Emit(ev)
		}
	})
}

type discard struct{}

func (discard) Append(context.Context, []monitor.Event) error { return nil }
