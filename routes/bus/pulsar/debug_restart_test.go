package pulsar_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/routes/bus"
	"github.com/shanghai-mca/mzhub/routes/bus/bustest"
)

func TestIntegrationDebugRestart(t *testing.T) {
	cfg := testConfig(t)
	for iter := range 15 {
		topic := bustest.Topic("dbg")
		ctx := context.Background()
		b1 := open(t, cfg)
		s, _ := b1.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s"})
		s.Close(ctx)
		var msgs []bus.Message
		for i := range 200 {
			msgs = append(msgs, bus.Message{Key: fmt.Sprintf("k%d", i%5), IdempotencyKey: fmt.Sprint(i), Body: []byte("x")})
		}
		if err := b1.Publish(ctx, topic, msgs...); err != nil {
			t.Fatal(err)
		}
		b1.Close(ctx)
		b2 := open(t, cfg)
		s2, _ := b2.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 200})
		for range 100 {
			d, err := s2.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d.Ack(ctx)
		}
		for range 5 {
			s2.Receive(ctx)
		}
		b2.Close(ctx)
		b3 := open(t, cfg)
		s3, _ := b3.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 200})
		got := 0
		for got < 100 {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			d, err := s3.Receive(rctx)
			cancel()
			if err != nil {
				resp, _ := http.Get("http://127.0.0.1:8080/admin/v2/" + strings.Replace(b3.FullTopic(topic), "://", "/", 1) + "/stats")
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("iter %d: got %d: %v\nstats: %s", iter, got, err, body)
			}
			d.Ack(ctx)
			got++
		}
		b3.Close(ctx)
	}
}
