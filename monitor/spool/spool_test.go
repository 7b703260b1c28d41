package spool_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/spool"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func events(prefix string, n int) []monitor.Event {
	out := make([]monitor.Event, n)
	for i := range out {
		out[i] = monitor.Event{ID: fmt.Sprintf("%s-%03d", prefix, i), Time: time.UnixMilli(1_790_000_000_000 + int64(i)),
			Partner: "funeral.fh01", Flow: "funeral-push", Type: monitor.Received, Status: monitor.OK,
			Attrs: map[string]string{"operation": "putHall"}}
	}
	return out
}

func ids(evs []monitor.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	sort.Strings(out)
	return out
}

// claim makes node a live replica (its node claim held) for a minute.
func claim(t *testing.T, db *store.DB, node string) {
	t.Helper()
	e, err := lease.New(context.Background(), db, lease.Options{Node: "claim-" + node, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if held, err := e.TryAcquire(context.Background(), lease.NodeClaim(node)); err != nil || !held {
		t.Fatalf("claim %s: %v %v", node, held, err)
	}
}

// TestRecoverTakesOwnAndOrphanedOnly: a replica at its start takes back
// its own spooled events and those of replicas no longer alive, never
// those of a live replica; removed events are gone; a second recovery
// finds nothing.
func TestRecoverTakesOwnAndOrphanedOnly(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, err := spool.Open(ctx, db, "node-a", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := spool.Open(ctx, db, "node-b", nil)
		dead, _ := spool.Open(ctx, db, "node-dead", nil)
		claim(t, db, "node-a")
		claim(t, db, "node-b")
		evA, evB, evDead := events("a", 3), events("b", 2), events("dead", 250)
		for _, p := range []struct {
			s   *spool.Spool
			evs []monitor.Event
		}{{a, evA}, {b, evB}, {dead, evDead}} {
			if err := p.s.Put(ctx, p.evs); err != nil {
				t.Fatal(err)
			}
		}
		// Putting an event again (a retried commit) keeps one copy.
		if err := a.Put(ctx, evA[:1]); err != nil {
			t.Fatal(err)
		}
		got, err := a.Recover(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		want := ids(append(slices.Clone(evA), evDead...))
		if !slices.Equal(ids(got), want) {
			t.Fatalf("recovered %d events, want %d (own + dead node's)", len(got), len(want))
		}
		if got[0].Attrs["operation"] != "putHall" || got[0].Partner != "funeral.fh01" || got[0].Time.IsZero() {
			t.Fatalf("event not kept whole: %+v", got[0])
		}
		if again, _ := b.Recover(ctx, false); len(again) != 0 {
			t.Fatalf("live node-b adopted %d events already taken by node-a", len(again))
		}
		if err := a.Remove(ctx, ids(got)); err != nil {
			t.Fatal(err)
		}
		own, _ := b.Recover(ctx, true)
		if !slices.Equal(ids(own), ids(evB)) {
			t.Fatalf("node-b's own: %v", ids(own))
		}
	})
}

// TestConcurrentAdoptionSplitsTheEvents: two replicas adopting a dead
// replica's events at once never both take one event.
func TestConcurrentAdoptionSplitsTheEvents(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dead, err := spool.Open(ctx, db, "gone", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dead.Put(ctx, events("gone", 400)); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for _, n := range []string{"x", "y"} {
			s, _ := spool.Open(ctx, db, n, nil)
			claim(t, db, n)
			wg.Go(func() {
				got, err := s.Recover(ctx, false)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, ev := range got {
					seen[ev.ID]++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(seen) != 400 {
			t.Fatalf("adopted %d of 400", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s adopted %d times", id, n)
			}
		}
	})
}
