package local

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/store"
)

// TestWaitingMessagesShareHeaders: messages published with equal headers
// (each in its own map, as a route builds them) wait holding one shared
// map, not one each; a delivery's headers are its own copy, and the
// publisher's map is not kept (changing it after Publish changes nothing).
func TestWaitingMessagesShareHeaders(t *testing.T) {
	ctx := context.Background()
	b := openBus(t, bus.LocalConfig{MaxBatch: 64, CommitInterval: time.Millisecond, CacheBytes: 1 << 20})
	topicSubs := []string{"s1", "s2"} // two subscriptions of one topic
	var subs []bus.Subscription
	for _, name := range topicSubs {
		sub, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: name, ProcessingDeadline: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	const n = 100
	var published []map[string]string
	msgs := make([]bus.Message, n)
	for i := range msgs {
		h := map[string]string{"content-type": "application/json", bus.HeaderSealed: "1"}
		if i == n-1 {
			h["other"] = "x" // a different set
		}
		published = append(published, h)
		msgs[i] = bus.Message{Body: []byte("{}"), Headers: h}
	}
	if err := b.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	for _, h := range published {
		h["content-type"] = "changed after publish"
	}
	ptr := func(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }
	for _, sub := range subs {
		s := sub.(*Consumer).s
		s.mu.Lock()
		distinct := map[uintptr]bool{}
		for _, e := range s.ready {
			distinct[ptr(e.m.headers)] = true
			for _, p := range published {
				if ptr(p) == ptr(e.m.headers) {
					t.Errorf("message %d keeps the publisher's map", e.id)
				}
			}
		}
		waiting := len(s.ready)
		s.mu.Unlock()
		if waiting != n || len(distinct) != 2 {
			t.Fatalf("%d messages waiting hold %d header maps, want %d holding 2", waiting, len(distinct), n)
		}
	}
	for _, sub := range subs {
		var first map[string]string
		for i := range n {
			d, err := sub.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := d.Message().Headers
			want := map[string]string{"content-type": "application/json", bus.HeaderSealed: "1"}
			if i == n-1 {
				want["other"] = "x"
			}
			if !reflect.DeepEqual(h, want) {
				t.Fatalf("delivery %d headers %v, want %v", i, h, want)
			}
			if first == nil {
				first = h
				first["content-type"] = "written by a consumer"
			} else if ptr(h) == ptr(first) {
				t.Fatalf("deliveries share a headers map")
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// openBus opens a bus on a fresh state file, closed when the test ends.
func openBus(t testing.TB, cfg bus.LocalConfig) *Bus {
	t.Helper()
	ctx := context.Background()
	scfg := store.DefaultConfig()
	scfg.Path = filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b, err := Open(ctx, db, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(ctx) })
	return b
}
