package routetest

import (
	"context"
	"testing"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/bustest"
)

// TestBusSuite runs the shared suite every bus passes; reopening a closed
// Bus on its memory stands for reopening a durable bus on its storage.
func TestBusSuite(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		var last *Bus
		return func() bus.Bus {
			if last == nil {
				last = NewBus()
			} else {
				last = last.Reopen()
			}
			return last
		}
	})
}

func TestPublishedKeepsEveryMessage(t *testing.T) {
	ctx := context.Background()
	b := NewBus()
	if err := b.Publish(ctx, "t", bus.Message{Body: []byte("1")}, bus.Message{Body: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d, err := s.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := b.Published("t")
	if len(got) != 2 || string(got[0].Body) != "1" || string(got[1].Body) != "2" || got[0].ID == got[1].ID {
		t.Fatalf("published %v", got)
	}
}
