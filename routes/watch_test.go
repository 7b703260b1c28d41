package routes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// watchedBus wraps a bus and tells a test what the engine did with it: the
// subscriptions it made and the deliveries it acknowledged, per topic. Tests
// that run on a real bus (local, Pulsar), outside a synctest bubble, wait on
// it instead of sleeping: "every message settled" is every delivery acked.
type watchedBus struct {
	bus.Bus
	mu      sync.Mutex
	subs    map[string]int // topic -> Subscribe calls that succeeded
	acks    map[string]int // topic -> Ack calls that succeeded
	changed chan struct{}  // closed (and replaced) on every change
}

func watch(b bus.Bus) *watchedBus {
	return &watchedBus{Bus: b, subs: map[string]int{}, acks: map[string]int{}, changed: make(chan struct{})}
}

func (w *watchedBus) bump(m map[string]int, topic string) {
	w.mu.Lock()
	m[topic]++
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// Subscribe subscribes on the wrapped bus and counts the subscription.
func (w *watchedBus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	s, err := w.Bus.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	w.bump(w.subs, opts.Topic)
	return watchedSub{Subscription: s, w: w, topic: opts.Topic}, nil
}

// next returns a channel closed by the next subscription or ack.
func (w *watchedBus) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// subscriptions returns the subscriptions made to topic so far.
func (w *watchedBus) subscriptions(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.subs[topic]
}

// acked returns the deliveries of topic acknowledged so far.
func (w *watchedBus) acked(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acks[topic]
}

// wait blocks until cond holds, looking again after every subscription or
// ack; it fails the test after within (a bound for a broken engine, not a
// pause).
func (w *watchedBus) wait(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	late := time.After(within)
	for {
		ch := w.next()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-late:
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

type watchedSub struct {
	bus.Subscription
	w     *watchedBus
	topic string
}

func (s watchedSub) Receive(ctx context.Context) (bus.Delivery, error) {
	d, err := s.Subscription.Receive(ctx)
	if err != nil {
		return nil, err
	}
	return watchedDelivery{Delivery: d, s: s}, nil
}

type watchedDelivery struct {
	bus.Delivery
	s watchedSub
}

func (d watchedDelivery) Ack(ctx context.Context) error {
	if err := d.Delivery.Ack(ctx); err != nil {
		return err
	}
	d.s.w.bump(d.s.w.acks, d.s.topic)
	return nil
}
