package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
)

func TestFakeAfterFiresOnAdvance(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	f := clock.NewFake(t0)
	ch := f.After(time.Minute)
	f.Advance(59 * time.Second)
	select {
	case <-ch:
		t.Fatal("fired before its time")
	default:
	}
	f.Advance(time.Second)
	select {
	case got := <-ch:
		if !got.Equal(t0.Add(time.Minute)) {
			t.Errorf("fired at %s", got)
		}
	default:
		t.Fatal("not fired at its time")
	}
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) does not fire at once")
	}
}

// TestFakeBlockUntil: BlockUntil returns when a goroutine waits on the
// clock, so a test knows when to advance it.
func TestFakeBlockUntil(t *testing.T) {
	f := clock.NewFake(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ticks := make(chan int)
	go func() {
		for i := range 3 {
			<-f.After(time.Hour)
			ticks <- i
		}
		close(ticks)
	}()
	for i := range 3 {
		if err := f.BlockUntil(ctx, 1); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		f.Advance(time.Hour)
		if got := <-ticks; got != i {
			t.Fatalf("tick %d, want %d", got, i)
		}
	}
	if _, open := <-ticks; open {
		t.Fatal("more ticks than timers")
	}
	// Nobody waits now: BlockUntil gives up with the context.
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := f.BlockUntil(short, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("BlockUntil with nobody waiting: %v", err)
	}
}

// TestProcessCPU: the process's CPU time grows as it works.
func TestProcessCPU(t *testing.T) {
	c0 := clock.ProcessCPU()
	x := uint64(1)
	for n := 0; clock.ProcessCPU() <= c0; n++ {
		if clock.ProcessCPU() == 0 {
			t.Skip("no CPU time on this platform")
		}
		if n == 10_000 {
			t.Fatalf("CPU time stays at %v after 10^10 multiplications (x=%d)", c0, x)
		}
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
}
