// Package bustest is the conformance suite every bus.Bus implementation
// passes: per-key ordering across concurrent consumers, redelivery after a
// nack, after a consumer closed without acking and after the processing
// deadline, dead letter after MaxDeliveries, back pressure through Prefetch,
// and no loss across a restart of the bus on the same storage.
//
// An implementation's test calls Run with a Factory:
//
//	bustest.Run(t, func(t *testing.T) func() bus.Bus {
//		db := storetest.Open(t)
//		return func() bus.Bus { b, _ := local.Open(ctx, db, cfg, nil); return b }
//	})
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// Factory prepares fresh storage for one subtest and returns a function that
// opens a bus on it. Every call of the returned function must open a bus on
// the same storage (same database file, same broker namespace), so that a
// reopened bus sees what an earlier one stored. The suite closes the buses
// it opens.
type Factory func(t *testing.T) (open func() bus.Bus)

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() bus.Bus)
	}{
		{"PublishReceiveAck", testPublishReceiveAck},
		{"OrderPerKeyConcurrentConsumers", testOrderPerKey},
		{"ConcurrentConsumersShareWork", testConcurrentConsumers},
		{"RedeliveryAfterNack", testNackRedelivery},
		{"RedeliveryAfterConsumerClose", testRedeliveryAfterClose},
		{"RedeliveryAfterProcessingDeadline", testProcessingDeadline},
		{"DeadLetterAfterMaxDeliveries", testDeadLetter},
		{"DeadLetterAfterExpiredDeadlines", testDeadLetterDeadline},
		{"PrefetchBackPressure", testPrefetch},
		{"NoLossAcrossRestart", testRestart},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, f(t))
		})
	}
}

// Topic returns a topic name unique to this run (brokers are shared between
// runs).
func Topic(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// openBus opens a bus and closes it when the test ends.
func openBus(t *testing.T, open func() bus.Bus) bus.Bus {
	t.Helper()
	b := open()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func subscribe(t *testing.T, b bus.Bus, opts bus.SubscribeOptions) bus.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t, 30*time.Second), opts)
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", opts.Topic, opts.Subscription, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func receive(t *testing.T, s bus.Subscription, within time.Duration) bus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := s.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return d
}

// expectNothing checks that no delivery arrives within d.
func expectNothing(t *testing.T, s bus.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got, err := s.Receive(ctx)
	if err == nil {
		t.Fatalf("unexpected delivery %s (key %q, attempt %d)", got.Message().ID, got.Message().Key, got.Attempt())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: want deadline exceeded, got %v", err)
	}
}

func publish(t *testing.T, b bus.Bus, topic string, msgs ...bus.Message) {
	t.Helper()
	if err := b.Publish(ctxT(t, 30*time.Second), topic, msgs...); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func msg(key string, i int) bus.Message {
	return bus.Message{
		Key:            key,
		IdempotencyKey: fmt.Sprintf("idem-%s-%d", key, i),
		Headers:        map[string]string{"seq": strconv.Itoa(i), "partner": "boc"},
		Body:           []byte(fmt.Sprintf("body %s %d", key, i)),
	}
}

func ack(t *testing.T, d bus.Delivery) {
	t.Helper()
	if err := d.Ack(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("ack %s: %v", d.Message().ID, err)
	}
}

func testPublishReceiveAck(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("basic")
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	var msgs []bus.Message
	for i := range 10 {
		msgs = append(msgs, msg("k", i))
	}
	before := time.Now().Add(-time.Second)
	publish(t, b, topic, msgs...)
	ids := map[string]bool{}
	for i := range 10 {
		d := receive(t, s, 10*time.Second)
		m := d.Message()
		want := msg("k", i)
		if m.Key != want.Key || m.IdempotencyKey != want.IdempotencyKey || string(m.Body) != string(want.Body) ||
			m.Headers["seq"] != want.Headers["seq"] || m.Headers["partner"] != "boc" {
			t.Fatalf("message %d: got key %q idem %q body %q headers %v", i, m.Key, m.IdempotencyKey, m.Body, m.Headers)
		}
		if m.Topic != topic {
			t.Errorf("message %d: topic %q, want %q", i, m.Topic, topic)
		}
		if m.ID == "" || ids[m.ID] {
			t.Errorf("message %d: id %q empty or repeated", i, m.ID)
		}
		ids[m.ID] = true
		if m.PublishedAt.Before(before) || m.PublishedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d: published at %s", i, m.PublishedAt)
		}
		if d.Attempt() != 1 {
			t.Errorf("message %d: attempt %d, want 1", i, d.Attempt())
		}
		ack(t, d)
		if err := d.Ack(ctxT(t, time.Second)); !errors.Is(err, bus.ErrAlreadyAcked) {
			t.Errorf("second ack: %v, want ErrAlreadyAcked", err)
		}
		if err := d.Nack(ctxT(t, time.Second), 0, nil); !errors.Is(err, bus.ErrAlreadyAcked) {
			t.Errorf("nack after ack: %v, want ErrAlreadyAcked", err)
		}
	}
	expectNothing(t, s, 500*time.Millisecond)
}

func testOrderPerKey(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("order")
	const consumers, keys, perKey = 4, 16, 25
	subs := make([]bus.Subscription, consumers)
	for i := range subs {
		subs[i] = subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 8})
	}
	var msgs []bus.Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, msg("key"+strconv.Itoa(k), i))
		}
	}
	var (
		mu       sync.Mutex
		inflight = map[string]bool{}
		got      = map[string][]int{}
		total    int
		errs     []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	// Two goroutines receive from each consumer: order per key must hold
	// within a consumer too.
	for i := range 2 * len(subs) {
		ci, s := i%len(subs), subs[i%len(subs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, err := s.Receive(ctx)
				if err != nil {
					return
				}
				m := d.Message()
				seq, _ := strconv.Atoi(m.Headers["seq"])
				mu.Lock()
				if inflight[m.Key] {
					errs = append(errs, fmt.Sprintf("consumer %d: key %s delivered while in flight", ci, m.Key))
				}
				inflight[m.Key] = true
				mu.Unlock()
				// Hold the key in flight across a few scheduler yields
				// (no wall time) so that the other receivers run meanwhile:
				// a second delivery of the key would be seen above.
				for range seq%3 + 1 {
					runtime.Gosched()
				}
				mu.Lock()
				inflight[m.Key] = false
				got[m.Key] = append(got[m.Key], seq)
				total++
				if total == len(msgs) {
					close(done)
				}
				mu.Unlock()
				if err := d.Ack(ctx); err != nil {
					mu.Lock()
					errs = append(errs, "ack: "+err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	// Publish in several calls so that consumers are busy meanwhile.
	for i := 0; i < len(msgs); i += 50 {
		publish(t, b, topic, msgs[i:min(i+50, len(msgs))]...)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if total != len(msgs) {
		t.Fatalf("received %d messages, want %d", total, len(msgs))
	}
	for k, seqs := range got {
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s: order %v", k, seqs)
			}
		}
	}
}

func testConcurrentConsumers(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("share")
	const consumers, n = 3, 300
	subs := make([]bus.Subscription, consumers)
	for i := range subs {
		subs[i] = subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 16})
	}
	var msgs []bus.Message
	for i := range n {
		msgs = append(msgs, msg("", i))
	}
	publish(t, b, topic, msgs...)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		per  = make([]int, consumers)
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for ci, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, err := s.Receive(ctx)
				if err != nil {
					return
				}
				runtime.Gosched() // let the other consumers take their share
				mu.Lock()
				seen[d.Message().IdempotencyKey]++
				per[ci]++
				if len(seen) == n {
					cancel()
				}
				mu.Unlock()
				_ = d.Ack(context.Background())
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("received %d distinct messages, want %d", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times without failure", k, c)
		}
	}
	t.Logf("per consumer: %v", per)
}

func testNackRedelivery(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("nack")
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	publish(t, b, topic, msg("p1", 0))
	d := receive(t, s, 10*time.Second)
	const delay = 300 * time.Millisecond
	nackedAt := time.Now()
	if err := d.Nack(ctxT(t, time.Second), delay, errors.New("partner down")); err != nil {
		t.Fatalf("nack: %v", err)
	}
	if err := d.Ack(ctxT(t, time.Second)); !errors.Is(err, bus.ErrAlreadyAcked) {
		t.Errorf("ack after nack: %v, want ErrAlreadyAcked", err)
	}
	d2 := receive(t, s, 10*time.Second)
	if waited := time.Since(nackedAt); waited < delay-20*time.Millisecond {
		t.Errorf("redelivered after %s, want at least %s", waited, delay)
	}
	if d2.Message().IdempotencyKey != d.Message().IdempotencyKey {
		t.Fatalf("redelivered %q, want %q", d2.Message().IdempotencyKey, d.Message().IdempotencyKey)
	}
	if d2.Attempt() != 2 {
		t.Errorf("attempt %d, want 2", d2.Attempt())
	}
	ack(t, d2)
	expectNothing(t, s, 500*time.Millisecond)
}

func testRedeliveryAfterClose(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("crash")
	s1, err := b.Subscribe(ctxT(t, 30*time.Second), bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	publish(t, b, topic, msg("p1", 0), msg("p2", 0))
	d1 := receive(t, s1, 10*time.Second)
	d2 := receive(t, s1, 10*time.Second)
	ack(t, d2)
	if err := s1.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("close consumer: %v", err)
	}
	if err := d1.Ack(ctxT(t, time.Second)); err == nil {
		t.Errorf("ack after consumer close succeeded; want an error")
	}
	s2 := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	d := receive(t, s2, 20*time.Second)
	if d.Message().IdempotencyKey != d1.Message().IdempotencyKey {
		t.Fatalf("redelivered %q, want the unacked %q", d.Message().IdempotencyKey, d1.Message().IdempotencyKey)
	}
	if d.Attempt() < 1 {
		t.Errorf("attempt %d", d.Attempt())
	}
	ack(t, d)
	expectNothing(t, s2, 500*time.Millisecond)
}

func testProcessingDeadline(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("deadline")
	const deadline = 400 * time.Millisecond
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", ProcessingDeadline: deadline})
	publish(t, b, topic, msg("p1", 0))
	d1 := receive(t, s, 10*time.Second)
	start := time.Now()
	d2 := receive(t, s, 20*time.Second)
	if waited := time.Since(start); waited < deadline-50*time.Millisecond {
		t.Errorf("redelivered after %s, before the deadline %s", waited, deadline)
	}
	if d2.Message().IdempotencyKey != d1.Message().IdempotencyKey || d2.Attempt() != 2 {
		t.Fatalf("got %q attempt %d, want %q attempt 2", d2.Message().IdempotencyKey, d2.Attempt(), d1.Message().IdempotencyKey)
	}
	if err := d1.Ack(ctxT(t, time.Second)); !errors.Is(err, bus.ErrDeliveryExpired) {
		t.Errorf("late ack: %v, want ErrDeliveryExpired", err)
	}
	ack(t, d2)
	expectNothing(t, s, deadline+300*time.Millisecond)
}

func testDeadLetter(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("dlq")
	dlqTopic := topic + "-dead"
	dlq := subscribe(t, b, bus.SubscribeOptions{Topic: dlqTopic, Subscription: "ops"})
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", MaxDeliveries: 3, DeadLetterTopic: dlqTopic})
	orig := msg("p1", 7)
	publish(t, b, topic, orig, msg("p2", 0))
	for attempt := 1; attempt <= 3; attempt++ {
		var d bus.Delivery
		for {
			d = receive(t, s, 20*time.Second)
			if d.Message().Key == "p2" {
				ack(t, d)
				continue
			}
			break
		}
		if d.Attempt() != attempt {
			t.Errorf("attempt %d, want %d", d.Attempt(), attempt)
		}
		if err := d.Nack(ctxT(t, time.Second), 10*time.Millisecond, fmt.Errorf("bank rejected: attempt %d", attempt)); err != nil {
			t.Fatalf("nack: %v", err)
		}
	}
	dd := receive(t, dlq, 30*time.Second)
	m := dd.Message()
	if m.IdempotencyKey != orig.IdempotencyKey || string(m.Body) != string(orig.Body) || m.Key != orig.Key || m.Headers["seq"] != "7" {
		t.Fatalf("dead letter: got key %q idem %q body %q headers %v", m.Key, m.IdempotencyKey, m.Body, m.Headers)
	}
	if !strings.Contains(m.Headers[bus.HeaderDeadLetterCause], "bank rejected: attempt 3") {
		t.Errorf("cause header %q", m.Headers[bus.HeaderDeadLetterCause])
	}
	if m.Headers[bus.HeaderDeadLetterAttempts] != "3" {
		t.Errorf("attempts header %q, want 3", m.Headers[bus.HeaderDeadLetterAttempts])
	}
	if m.Headers[bus.HeaderDeadLetterTopic] != topic {
		t.Errorf("original topic header %q, want %q", m.Headers[bus.HeaderDeadLetterTopic], topic)
	}
	if _, err := time.Parse(time.RFC3339, m.Headers[bus.HeaderDeadLetterAt]); err != nil {
		t.Errorf("dead-letter time header: %v", err)
	}
	ack(t, dd)
	expectNothing(t, s, 700*time.Millisecond)
}

func testDeadLetterDeadline(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("dlqdeadline")
	dlq := subscribe(t, b, bus.SubscribeOptions{Topic: bus.DefaultDeadLetterTopic(topic), Subscription: "ops"})
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", MaxDeliveries: 2, ProcessingDeadline: 300 * time.Millisecond})
	publish(t, b, topic, msg("stuck", 1))
	for attempt := 1; attempt <= 2; attempt++ {
		d := receive(t, s, 20*time.Second)
		if d.Attempt() != attempt {
			t.Errorf("attempt %d, want %d", d.Attempt(), attempt)
		}
		// Neither ack nor nack: the consumer is stuck.
	}
	dd := receive(t, dlq, 30*time.Second)
	m := dd.Message()
	if m.IdempotencyKey != "idem-stuck-1" || m.Headers[bus.HeaderDeadLetterAttempts] != "2" ||
		!strings.Contains(m.Headers[bus.HeaderDeadLetterCause], "deadline") {
		t.Fatalf("dead letter: idem %q headers %v", m.IdempotencyKey, m.Headers)
	}
	ack(t, dd)
	expectNothing(t, s, 700*time.Millisecond)
}

func testPrefetch(t *testing.T, open func() bus.Bus) {
	b := openBus(t, open)
	topic := Topic("prefetch")
	s := subscribe(t, b, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: 2})
	publish(t, b, topic, msg("", 0), msg("", 1), msg("", 2))
	d1 := receive(t, s, 10*time.Second)
	_ = receive(t, s, 10*time.Second)
	expectNothing(t, s, 300*time.Millisecond)
	ack(t, d1)
	d3 := receive(t, s, 10*time.Second)
	ack(t, d3)
}

func testRestart(t *testing.T, open func() bus.Bus) {
	topic := Topic("restart")
	const n = 200
	b1 := open()
	s, err := b1.Subscribe(ctxT(t, 30*time.Second), bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("close consumer: %v", err)
	}
	var msgs []bus.Message
	bodies := map[string]string{}
	for i := range n {
		m := msg("k"+strconv.Itoa(i%5), i)
		msgs = append(msgs, m)
		bodies[m.IdempotencyKey] = string(m.Body)
	}
	publish(t, b1, topic, msgs...)
	if err := b1.Close(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("close bus: %v", err)
	}

	// Second life: consume and ack half, receive some more without acking.
	b2 := open()
	s2, err := b2.Subscribe(ctxT(t, 30*time.Second), bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: n})
	if err != nil {
		t.Fatalf("subscribe after restart: %v", err)
	}
	acked := map[string]bool{}
	for range n / 2 {
		d := receive(t, s2, 20*time.Second)
		ack(t, d)
		acked[d.Message().IdempotencyKey] = true
	}
	// Hold a few deliveries unacked at close: they must come back. At most
	// one per key is available (a key's next message waits for its ack),
	// and keys whose messages were all acked have none left.
	held := 0
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s2.Receive(ctx)
		cancel()
		if err != nil {
			break
		}
		held++
	}
	if held == 0 {
		t.Fatalf("no delivery to hold unacked across the restart")
	}
	if err := b2.Close(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("close bus: %v", err)
	}

	// Third life: everything not acked comes back.
	b3 := openBus(t, open)
	s3 := subscribe(t, b3, bus.SubscribeOptions{Topic: topic, Subscription: "s", Prefetch: n})
	rest := map[string]bool{}
	for len(rest) < n-len(acked) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		d, err := s3.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after restart: received %d of the %d messages not acked before: %v", len(rest), n-len(acked), err)
		}
		k := d.Message().IdempotencyKey
		if acked[k] {
			t.Fatalf("%s was acked before the restart and delivered again", k)
		}
		if want := bodies[k]; string(d.Message().Body) != want {
			t.Fatalf("%s after restart: body %q, want %q", k, d.Message().Body, want)
		}
		rest[k] = true
		ack(t, d)
	}
	for _, m := range msgs {
		if !acked[m.IdempotencyKey] && !rest[m.IdempotencyKey] {
			t.Errorf("lost %s", m.IdempotencyKey)
		}
	}
	expectNothing(t, s3, 500*time.Millisecond)
}

func testClosed(t *testing.T, open func() bus.Bus) {
	b := open()
	topic := Topic("closed")
	s, err := b.Subscribe(ctxT(t, 30*time.Second), bus.SubscribeOptions{Topic: topic, Subscription: "s"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := s.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("close consumer: %v", err)
	}
	if _, err := s.Receive(ctxT(t, time.Second)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("receive after close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctxT(t, time.Second), bus.SubscribeOptions{Topic: topic}); err == nil {
		t.Errorf("subscribe without a subscription name succeeded")
	}
	if err := b.Close(ctxT(t, 20*time.Second)); err != nil {
		t.Fatalf("close bus: %v", err)
	}
	if err := b.Publish(ctxT(t, time.Second), topic, msg("", 0)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("publish after close: %v, want ErrClosed", err)
	}
	if err := b.Close(ctxT(t, time.Second)); err != nil {
		t.Errorf("second close: %v", err)
	}
}
