package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// grantOrder holds g, queues the writes of classes (one at a time, each
// seen queued before the next), then lets go and returns the order in
// which they got the gate; each releases it at once.
func grantOrder(t *testing.T, g *writeGate, classes []writeClass) string {
	t.Helper()
	if err := g.acquire(context.Background(), classData); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, c := range classes {
		name := fmt.Sprintf("%c%d", "duc"[c], i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.acquire(context.Background(), c); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			g.release()
		}()
		deadline := time.Now().Add(time.Minute)
		for {
			c, u, d := g.queued()
			if c+u+d == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("write %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	g.release()
	wg.Wait()
	return strings.Join(order, " ")
}

// TestGateOrder: control writes first, then urgent ones, then data, each
// class in arrival order.
func TestGateOrder(t *testing.T) {
	got := grantOrder(t, &writeGate{}, []writeClass{classData, classUrgent, classControl, classUrgent, classData, classControl})
	if want := "c2 c5 u1 u3 d0 d4"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// TestGateUrgentBurst: a waiting data write gets its turn after at most
// urgentBurst urgent writes, however many urgent writes queue.
func TestGateUrgentBurst(t *testing.T) {
	classes := []writeClass{classData, classData}
	for range 2*urgentBurst + 3 {
		classes = append(classes, classUrgent)
	}
	got := grantOrder(t, &writeGate{}, classes)
	want := "u2 u3 u4 u5 d0 u6 u7 u8 u9 d1 u10 u11 u12"
	if got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// TestUrgentContext: Urgent marks a context, and what derives from it.
func TestUrgentContext(t *testing.T) {
	ctx := context.Background()
	if classOf(ctx) != classData {
		t.Fatal("a plain context is urgent")
	}
	u, cancel := context.WithTimeout(Urgent(ctx), time.Minute)
	defer cancel()
	if classOf(u) != classUrgent {
		t.Fatal("a context derived from an urgent one is not urgent")
	}
}
