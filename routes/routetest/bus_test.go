package routetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

func TestBus(t *testing.T) {
	ctx := context.Background()
	b := NewBus()
	_ = b.Publish(ctx, "t", bus.Message{Body: []byte("1")})
	s, _ := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s", MaxDeliveries: 2})
	_ = b.Publish(ctx, "t", bus.Message{Body: []byte("2")}, bus.Message{Body: []byte("3")})
	var got []string
	for i := 0; i < 3; i++ {
		c, cancel := context.WithTimeout(ctx, time.Second)
		d, err := s.Receive(c)
		cancel()
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		got = append(got, string(d.Message().Body))
		if i == 0 {
			if err := d.Nack(ctx, 0, errors.New("x")); err != nil {
				t.Fatal(err)
			}
			continue
		}
		_ = d.Ack(ctx)
	}
	if len(got) != 3 || got[0] != "1" {
		t.Fatalf("got %v", got)
	}
	c, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d, err := s.Receive(c)
	if err != nil || string(d.Message().Body) != "1" || d.Attempt() != 2 {
		t.Fatalf("redelivery: %v %v", d, err)
	}
	_ = d.Nack(ctx, 0, errors.New("boom"))
	if dl := b.Published("t.dlq"); len(dl) != 1 || dl[0].Headers[bus.HeaderDeadLetterCause] != "boom" {
		t.Fatalf("dlq %v", dl)
	}
}
