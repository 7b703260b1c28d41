package local

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// TestFlightsStayBounded checks that one long-running delivery does not make
// the consumer's deadline list grow with every delivery acked after it. It
// runs in a testing/synctest bubble: the keeper's ticks are fake time.
func TestFlightsStayBounded(t *testing.T) { synctest.Test(t, testFlightsStayBounded) }

func testFlightsStayBounded(t *testing.T) {
	ctx := context.Background()
	b := openBus(t, bus.DefaultConfig().Local)
	sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s", ProcessingDeadline: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	msgs := make([]bus.Message, n)
	for i := range msgs {
		msgs[i] = bus.Message{Body: []byte("x")}
	}
	if err := b.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	slow, err := sub.Receive(ctx) // held for the whole test
	if err != nil {
		t.Fatal(err)
	}
	for range n - 1 {
		d, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Five keeper passes (fake time), each run to its end before the next:
	// compacting the list is the keeper's job.
	for range 5 {
		time.Sleep(keeperTick)
		synctest.Wait()
	}
	c := sub.(*Consumer)
	c.s.mu.Lock()
	size := len(c.flights) - c.head
	c.s.mu.Unlock()
	if size > 1100 {
		t.Errorf("deadline list holds %d flights with 1 delivery in flight", size)
	}
	if err := slow.Ack(ctx); err != nil {
		t.Errorf("ack of the long-running delivery: %v", err)
	}
}
