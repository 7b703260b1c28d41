package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/monitor"
)

// memStore records appended batches and can be switched down.
type memStore struct {
	mu      sync.Mutex
	down    bool
	batches [][]monitor.Event
	block   chan struct{}
}

func (m *memStore) Append(ctx context.Context, evs []monitor.Event) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("store down")
	}
	m.batches = append(m.batches, append([]monitor.Event(nil), evs...))
	return nil
}

func (m *memStore) setDown(d bool) { m.mu.Lock(); m.down = d; m.mu.Unlock() }

func (m *memStore) count() (events, batches int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.batches {
		events += len(b)
	}
	return events, len(m.batches)
}

// The writer tests run in a synctest bubble: the flush interval is fake
// time, and synctest.Wait tells when the writer has done what it can.

func TestWriterFlushBySize(t *testing.T) { synctest.Test(t, testWriterFlushBySize) }

func testWriterFlushBySize(t *testing.T) {
	st := &memStore{}
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Hour, BufferSize: 100})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	for range 25 {
		w.Emit(monitor.Event{Partner: "bank.boc", Flow: "disbursement", Type: monitor.Sent})
	}
	synctest.Wait() // the writer is idle; the hour of the interval has not passed
	if n, _ := st.count(); n < 20 {
		t.Fatalf("%d events stored, want the two size-triggered flushes (20)", n)
	}
	cancel()
	<-done
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, batches := st.count()
	if n != 25 {
		t.Errorf("stored %d events, want 25", n)
	}
	for _, b := range st.batches {
		if len(b) > 10 {
			t.Errorf("batch of %d exceeds flush size", len(b))
		}
		for _, e := range b {
			if e.ID == "" || e.Time.IsZero() || e.Status != monitor.OK {
				t.Errorf("event not stamped: %+v", e)
			}
		}
	}
	if batches < 3 {
		t.Errorf("%d batches, want at least 3", batches)
	}
}

func TestWriterFlushByTime(t *testing.T) { synctest.Test(t, testWriterFlushByTime) }

func testWriterFlushByTime(t *testing.T) {
	st := &memStore{}
	const every = 20 * time.Millisecond
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 1000, FlushInterval: every, BufferSize: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	stored := w.Stored()
	w.Emit(monitor.Event{Type: monitor.Received})
	synctest.Wait()
	if n, _ := st.count(); n != 0 {
		t.Fatalf("%d events stored before the flush interval passed", n)
	}
	select {
	case <-stored:
		t.Fatal("Stored signalled before anything was stored")
	default:
	}
	time.Sleep(every) // fake time: one flush interval
	synctest.Wait()
	if n, _ := st.count(); n != 1 {
		t.Fatalf("%d events stored one flush interval after the emit, want 1", n)
	}
	select {
	case <-stored:
	default:
		t.Fatal("Stored did not signal the stored batch")
	}
}

func TestWriterBuffersWhileStoreDownAndDropsBeyond(t *testing.T) {
	st := &memStore{down: true}
	reg := prometheus.NewRegistry()
	m := monitor.NewMetrics(reg)
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 5, FlushInterval: time.Millisecond, BufferSize: 20, Metrics: m})
	for range 30 {
		w.Emit(monitor.Event{Partner: "datasea", Flow: "death", Type: monitor.Fetched, Direction: monitor.Inbound})
	}
	if err := w.Flush(context.Background()); err == nil {
		t.Fatal("flush with store down: want error")
	}
	if s := w.Stats(); s.Held != 20 || s.Dropped != 10 {
		t.Errorf("stats %+v, want held 20 dropped 10", s)
	}
	if got := testutil.ToFloat64(m.Dropped()); got != 10 {
		t.Errorf("dropped metric %v", got)
	}
	st.setDown(false)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.count(); n != 20 {
		t.Errorf("stored %d after recovery, want 20", n)
	}
	if s := w.Stats(); s.Held != 0 {
		t.Errorf("held %d after recovery", s.Held)
	}
	// Metrics saw each event once even though the batch was retried.
	if got := testutil.ToFloat64(m.Events().WithLabelValues("death", "in", "fetched", "ok")); got != 20 {
		t.Errorf("events metric %v, want 20", got)
	}
}

func TestWriterEmitNeverBlocks(t *testing.T) {
	st := &memStore{block: make(chan struct{})} // the store hangs
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 1, FlushInterval: time.Millisecond, BufferSize: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	start := time.Now()
	for range 10000 {
		w.Emit(monitor.Event{Type: monitor.Sent})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10000 emits with a hung store took %v", d)
	}
	cancel()
	<-done
	c, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := w.Close(c); err == nil {
		t.Error("close with a hung store: want deadline error")
	}
	if s := w.Stats(); s.Held != 0 || s.Dropped < 9990 {
		t.Errorf("stats after close %+v", s)
	}
}

func TestWriterMasksErrorMessages(t *testing.T) {
	st := &memStore{}
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Hour, BufferSize: 10})
	w.Emit(monitor.Event{Type: monitor.Failed, Status: monitor.Error, ErrorMessage: "bad id 310101199001011234 in line 7"})
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	msg := st.batches[0][0].ErrorMessage
	if strings.Contains(msg, "310101199001011234") || !strings.Contains(msg, "line 7") {
		t.Errorf("stored message %q", msg)
	}
}

// TestWriterAssignsUniqueIDs checks the ids cut from one string per batch:
// every event without an id gets a distinct one, across batches and
// writers, and an emitter's own id is kept.
func TestWriterAssignsUniqueIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 2 {
		st := &memStore{}
		w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 1000, FlushInterval: time.Hour, BufferSize: 1000})
		for batch := range 3 {
			for i := range 50 {
				ev := monitor.Event{Type: monitor.Sent}
				if i == 7 {
					ev.ID = fmt.Sprintf("own-%d-%d", len(seen), batch)
				}
				w.Emit(ev)
			}
			if err := w.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		for b, evs := range st.batches {
			for i, ev := range evs {
				if ev.ID == "" || seen[ev.ID] {
					t.Fatalf("batch %d event %d: id %q empty or repeated", b, i, ev.ID)
				}
				if i == 7 && !strings.HasPrefix(ev.ID, "own-") {
					t.Errorf("batch %d: the emitter's id was replaced by %q", b, ev.ID)
				}
				seen[ev.ID] = true
			}
		}
	}
	if len(seen) != 300 {
		t.Errorf("%d distinct ids, want 300", len(seen))
	}
}

// TestFlushBesideTheRunLoop: Flush (tests, Close) and the Run loop's own
// flushes may run at once; each event is stored exactly once and nothing
// panics. Two flushes once sliced the pending batch under each other
// ("slice bounds out of range" in TestPortalDemo under -race).
func TestFlushBesideTheRunLoop(t *testing.T) {
	st := &memStore{}
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 8, FlushInterval: time.Millisecond, BufferSize: 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = w.Run(ctx) }()
	const emitters, each = 4, 2000
	var wg sync.WaitGroup
	for e := 0; e < emitters; e++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				w.Emit(monitor.Event{Flow: "f", Stage: "s", Partner: "p"})
				if i%50 == 0 {
					if err := w.Flush(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-ran
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.count(); n != emitters*each {
		t.Fatalf("%d events stored, want %d", n, emitters*each)
	}
}

// TestWriterReleasesSparesWhenIdle: a stored batch's array is kept for
// reuse while events keep coming, and let go by a flush that finds
// nothing to store; events emitted after that are stored as before.
func TestWriterReleasesSparesWhenIdle(t *testing.T) {
	st := &memStore{}
	w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Hour, BufferSize: 100})
	ctx := context.Background()
	emit := func(n int) {
		for range n {
			w.Emit(monitor.Event{Partner: "bank.boc", Flow: "disbursement", Type: monitor.Sent})
		}
	}
	emit(10)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Spares(); got != 1 {
		t.Fatalf("after storing a full batch: %d spares, want 1 kept for reuse", got)
	}
	emit(3) // takes the spare
	if got := w.Spares(); got != 0 {
		t.Fatalf("after emitting into the spare: %d spares, want 0", got)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Spares(); got != 1 {
		t.Fatalf("after storing the spare's batch: %d spares, want 1", got)
	}
	if err := w.Flush(ctx); err != nil { // nothing came in: idle
		t.Fatal(err)
	}
	if got := w.Spares(); got != 0 {
		t.Fatalf("after an idle flush: %d spares, want 0", got)
	}
	emit(4)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.count(); n != 17 {
		t.Errorf("stored %d events, want 17", n)
	}
}

// TestFlushSizeByStore: flush_size 0 takes the store's batch size.
func TestFlushSizeByStore(t *testing.T) {
	for _, tc := range []struct {
		store string
		set   int
		want  int
	}{
		{"sqlite", 0, monitor.SQLiteFlushSize},
		{"clickhouse", 0, monitor.ClickHouseFlushSize},
		{"clickhouse", 50000, 50000},
		{"sqlite", 7, 7},
	} {
		c := monitor.DefaultConfig()
		c.Store, c.FlushSize = tc.store, tc.set
		c.ClickHouse.Addr = "127.0.0.1:9000"
		if got := c.EffectiveFlushSize(); got != tc.want {
			t.Errorf("%s flush_size %d: %d, want %d", tc.store, tc.set, got, tc.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s flush_size %d: %v", tc.store, tc.set, err)
		}
	}
	c := monitor.DefaultConfig()
	c.FlushSize = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "monitor.flush_size") {
		t.Errorf("flush_size -1: %v, want a flush_size error", err)
	}
	c = monitor.DefaultConfig()
	c.Store, c.ClickHouse.Addr, c.BufferSize = "clickhouse", "127.0.0.1:9000", 5000
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "monitor.buffer_size") {
		t.Errorf("clickhouse with buffer_size 5000 < 10000: %v, want a buffer_size error", err)
	}
}
