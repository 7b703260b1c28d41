package pulsar_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/bustest"
)

// TestIntegrationReconnect publishes and consumes while the broker unloads
// the topic twice (which drops every producer and consumer connection of
// it, as a broker restart or a topic move does) and checks that nothing
// published is lost and that publishing went on.
func TestIntegrationReconnect(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg)
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	topic := bustest.Topic("reconnect")
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	const batches, per = 100, 20
	published := map[string]bool{}
	var pmu sync.Mutex
	pubDone := make(chan error, 1)
	go func() {
		for i := range batches {
			msgs := make([]bus.Message, per)
			for j := range msgs {
				msgs[j] = bus.Message{Key: fmt.Sprintf("k%d", j), IdempotencyKey: fmt.Sprintf("m-%d-%d", i, j), Body: []byte("x")}
			}
			if err := b.Publish(ctx, topic, msgs...); err != nil {
				pubDone <- fmt.Errorf("batch %d: %w", i, err)
				return
			}
			pmu.Lock()
			for _, m := range msgs {
				published[m.IdempotencyKey] = true
			}
			pmu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		pubDone <- nil
	}()
	go func() {
		for range 2 {
			time.Sleep(300 * time.Millisecond)
			if err := unload(ctx, b.FullTopic(topic)); err != nil {
				t.Errorf("unload: %v", err)
			}
		}
	}()
	got := map[string]int{}
	for len(got) < batches*per {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		d, err := s.Receive(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("receive after %d distinct: %v", len(got), err)
		}
		got[d.Message().IdempotencyKey]++
		_ = d.Ack(ctx)
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("publish across reconnects: %v", err)
	}
	dups := 0
	for k, n := range got {
		dups += n - 1
		if !published[k] {
			t.Errorf("received %s that was never published", k)
		}
	}
	t.Logf("%d messages across two unloads, %d redelivered (at-least-once)", len(got), dups)
}

// unload asks the broker (admin API beside MZHUB_TEST_PULSAR) to unload a
// topic, which closes its producers' and consumers' connections.
func unload(ctx context.Context, full string) error {
	admin := os.Getenv("MZHUB_TEST_PULSAR_ADMIN")
	if admin == "" {
		u, _ := url.Parse(os.Getenv("MZHUB_TEST_PULSAR"))
		admin = "http://" + u.Hostname() + ":8080"
	}
	path := "/admin/v2/" + strings.Replace(full, "://", "/", 1) + "/unload"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}
