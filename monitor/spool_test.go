package monitor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

// memSpool is a monitor.Spool in memory that survives "restarts" (a new
// Writer over the same spool) and can be switched down.
type memSpool struct {
	mu      sync.Mutex
	down    bool
	evs     map[string]monitor.Event
	removed int
}

func (s *memSpool) Put(_ context.Context, evs []monitor.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("spool down")
	}
	for _, ev := range evs {
		s.evs[ev.ID] = ev
	}
	return nil
}

func (s *memSpool) Remove(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.evs, id)
		s.removed++
	}
	return nil
}

func (s *memSpool) Recover(_ context.Context, own bool) ([]monitor.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !own {
		return nil, nil
	}
	out := make([]monitor.Event, 0, len(s.evs))
	for _, ev := range s.evs {
		out = append(out, ev)
	}
	return out, nil
}

func (s *memSpool) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.evs) }

// TestEmitDurableSurvivesARestart: an event given to EmitDurable is in the
// spool when the call returns, although the store is down; the writer
// stops without storing it (a crash); a new writer over the same spool
// stores it and empties the spool.
func TestEmitDurableSurvivesARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &memSpool{evs: map[string]monitor.Event{}}
		st := &memStore{down: true}
		w := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Second, Spool: sp})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		for range 3 {
			if err := w.EmitDurable(ctx, monitor.Event{Partner: "funeral.fh01", Flow: "funeral-push", Type: monitor.Received}); err != nil {
				t.Fatal(err)
			}
		}
		w.Emit(monitor.Event{Partner: "funeral.fh01", Flow: "funeral-api", Type: monitor.Received}) // not durable
		if n := sp.len(); n != 3 {
			t.Fatalf("spool holds %d events after EmitDurable returned, want 3", n)
		}
		cancel() // the crash: nothing was stored
		<-done
		if n, _ := st.count(); n != 0 {
			t.Fatalf("stored %d with the store down", n)
		}

		st.setDown(false)
		w2 := monitor.NewWriter(st, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Second, Spool: sp})
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { done <- w2.Run(ctx2) }()
		time.Sleep(2 * time.Second) // fake time: one flush interval and more
		synctest.Wait()
		if n, _ := st.count(); n != 3 {
			t.Fatalf("the restarted writer stored %d, want the 3 spooled", n)
		}
		if n := sp.len(); n != 0 {
			t.Fatalf("spool keeps %d stored events", n)
		}
		cancel2()
		<-done
	})
}

// TestEmitDurableFailsWhenTheSpoolFails: the caller learns that the event
// is not durable (and so does not acknowledge its exchange).
func TestEmitDurableFailsWhenTheSpoolFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &memSpool{evs: map[string]monitor.Event{}, down: true}
		w := monitor.NewWriter(&memStore{}, monitor.WriterOptions{FlushSize: 10, FlushInterval: time.Second, Spool: sp})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		if err := w.EmitDurable(ctx, monitor.Event{Partner: "p", Flow: "f", Type: monitor.Received}); err == nil {
			t.Fatal("EmitDurable with the spool down returned nil")
		}
		// Without Run (stopped), the call gives up with its context.
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		if err := w.EmitDurable(cctx, monitor.Event{Partner: "p", Flow: "f"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("EmitDurable after the writer stopped: %v", err)
		}
	})
}
