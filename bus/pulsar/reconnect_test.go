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
	// The unloads are placed by what happened, not by the clock: the
	// publisher publishes in three phases of about 33 batches and starts
	// phase n+1 only once unload n was sent; unload n is sent once the
	// consumer has received nearly all of phases 0..n. So publishing and
	// consuming both run across each unload, on any machine.
	const unloads = 2
	published := map[string]bool{}
	var pmu sync.Mutex
	sent := make([]chan struct{}, unloads) // closed once unload n was sent
	for i := range sent {
		sent[i] = make(chan struct{})
	}
	progress := make(chan int, 1) // distinct messages received, latest wins
	pubDone := make(chan error, 1)
	go func() {
		for i := range batches {
			if n := i * (unloads + 1) / batches; i > 0 && n > (i-1)*(unloads+1)/batches {
				select {
				case <-sent[n-1]:
				case <-ctx.Done():
					pubDone <- ctx.Err()
					return
				}
			}
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
		}
		pubDone <- nil
	}()
	unloaded := make(chan struct{})
	go func() {
		defer close(unloaded)
		for n := range unloads {
			want := (n+1)*batches*per/(unloads+1) - per // phases 0..n but a batch
			for got := 0; got < want; {
				select {
				case got = <-progress:
				case <-ctx.Done():
					return
				}
			}
			if err := unload(ctx, b.FullTopic(topic)); err != nil {
				t.Errorf("unload: %v", err)
			}
			close(sent[n])
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
		select {
		case <-progress:
		default:
		}
		progress <- len(got)
	}
	<-unloaded
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
