package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
)

// BatchConsumer runs a subscription whose deliveries are handled a batch
// at a time: the deliveries at hand, up to Max, each waited for at most
// Wait after the first (a page a route published arrives as one burst).
type BatchConsumer struct {
	// Bus and Options name the subscription; Options.Prefetch should be
	// at least Max.
	Bus     Bus
	Options SubscribeOptions
	// Max and Wait bound a batch.
	Max  int
	Wait time.Duration
	// Clock paces the retries of Subscribe; Logger says why it retries.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Run subscribes and hands each batch to handle (which acks or nacks
// every delivery) until ctx is done. A bus that cannot be reached (the
// broker restarting) is waited for with growing pauses, never an error
// that stops the hub; a Receive failing otherwise is returned.
func (c BatchConsumer) Run(ctx context.Context, handle func(context.Context, []Delivery)) error {
	clk, log := c.Clock, c.Logger
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sub Subscription
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		var err error
		if sub, err = c.Bus.Subscribe(ctx, c.Options); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("bus: subscribe; retrying", "topic", c.Options.Topic, "subscription", c.Options.Subscription, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(wait):
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sub.Close(cctx)
	}()
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			return fmt.Errorf("bus: receive %s: %w", c.Options.Topic, err)
		}
		batch := []Delivery{d}
		for len(batch) < c.Max {
			wctx, cancel := context.WithTimeout(ctx, c.Wait)
			d, err := sub.Receive(wctx)
			cancel()
			if err != nil {
				break // none at hand (or closing: the next Receive says so)
			}
			batch = append(batch, d)
		}
		handle(ctx, batch)
	}
}
