package bus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// flakyBus refuses the first subscriptions (a broker restarting).
type flakyBus struct {
	bus.Bus
	refuse atomic.Int32
}

func (f *flakyBus) Subscribe(ctx context.Context, o bus.SubscribeOptions) (bus.Subscription, error) {
	if f.refuse.Add(-1) >= 0 {
		return nil, errors.New("broker restarting")
	}
	return f.Bus.Subscribe(ctx, o)
}

// TestBatchConsumer: a subscription the bus refuses at first is tried again
// after the clock's pause, and a burst published at once reaches the
// handler as one batch of at most Max deliveries.
func TestBatchConsumer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb, err := local.Open(ctx, storetest.Open(t), bus.DefaultConfig().Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close(context.Background())
	fb := &flakyBus{Bus: lb}
	fb.refuse.Store(2)
	fc := clock.NewFake(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var sizes []int
	got := make(chan struct{}, 100)
	done := make(chan error, 1)
	c := bus.BatchConsumer{Bus: fb, Max: 4, Wait: time.Second, Clock: fc,
		Options: bus.SubscribeOptions{Topic: "t", Subscription: "s", Prefetch: 4}}
	go func() {
		done <- c.Run(ctx, func(ctx context.Context, ds []bus.Delivery) {
			mu.Lock()
			sizes = append(sizes, len(ds))
			mu.Unlock()
			for _, d := range ds {
				_ = d.Ack(ctx)
				got <- struct{}{}
			}
		})
	}()
	for range 2 { // two refusals, each waited out on the clock
		if err := fc.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(30 * time.Second)
	}
	var msgs []bus.Message
	for range 6 {
		msgs = append(msgs, bus.Message{Body: []byte("x")})
	}
	if err := lb.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		select {
		case <-got:
		case <-time.After(time.Minute):
			t.Fatal("the published messages did not reach the handler")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		if n > 4 {
			t.Errorf("a batch of %d, want at most 4", n)
		}
		total += n
	}
	if total != 6 || sizes[0] != 4 {
		t.Fatalf("batches %v, want the burst's first 4 together", sizes)
	}
}
