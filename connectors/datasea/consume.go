package datasea

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Topic is the bus topic of data-sea records that reach the hub through a
// route: the API's feeds (the datasea routes of configs/routes) and the
// front-end processor tables (a dbtable route, docs/datasea.md) publish
// each record there as one JSON Record; the API's malformed records arrive
// as quarantined messages (HeaderReason).
const Topic = "datasea.records"

// Consumer applies the records of Topic.
type Consumer struct {
	// Bus to consume from; Apply applies; Events, Clock and Logger as usual.
	Bus    bus.Bus
	Apply  Applier
	Events connectors.Events
	Clock  clock.Clock
	Logger *slog.Logger
	// Applied, when set, is told what each message's apply did (the demo
	// waits on it before its cycle cuts the list).
	Applied func(Applied)
}

// Run consumes until ctx is done. A record is acked once applied (or
// quarantined); an apply that fails is nacked and redelivered, up to 20
// times before the bus dead-letters it.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// A bus that cannot be reached (the broker restarting) is waited for:
	// the consumer never stops the hub for it.
	var sub bus.Subscription
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		var err error
		sub, err = c.Bus.Subscribe(ctx, bus.SubscribeOptions{Topic: Topic, Subscription: "allowance", MaxDeliveries: 20})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.Logger.Warn("datasea: subscribe; retrying", "topic", Topic, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-c.Clock.After(wait):
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
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return nil
			}
			return fmt.Errorf("datasea: receive: %w", err)
		}
		c.handle(ctx, d)
	}
}

func (c *Consumer) handle(ctx context.Context, d bus.Delivery) {
	m := d.Message()
	var rec Record
	var good []Record
	var bad []Bad
	ref := "bus " + Topic + " " + m.IdempotencyKey
	if why := m.Headers[HeaderReason]; why != "" {
		// Quarantined at the source, with its place; the body is masked.
		if r := m.Headers[HeaderRef]; r != "" {
			ref = r
		}
		bad = append(bad, Bad{Ref: ref, RecordID: m.Headers[HeaderRecordID], Reason: why, Raw: string(m.Body)})
		rec.Kind = kindOfRef(ref)
	} else if err := json.Unmarshal(m.Body, &rec); err != nil {
		bad = append(bad, Bad{Ref: ref, Reason: fmt.Sprintf("%v: not a record: %v", ErrMalformed, err), Raw: maskRaw(string(m.Body))})
	} else if rec = rec.Normalize(); rec.Check(c.Clock.Now()) != nil {
		bad = append(bad, Bad{Ref: ref, RecordID: rec.ID, Reason: rec.Check(c.Clock.Now()).Error(), Raw: maskRaw(string(m.Body))})
	} else {
		good = append(good, rec)
	}
	source := "bus"
	if s := m.Headers[HeaderSource]; s != "" {
		source = s
	}
	a, err := c.Apply.Apply(ctx, source, good, bad)
	if err != nil {
		c.Logger.Warn("datasea: apply from the bus failed; redelivering", "err", err, "attempt", d.Attempt())
		_ = d.Nack(ctx, time.Duration(d.Attempt())*time.Second, err)
		return
	}
	ev := monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: FeedOf(rec.Kind), Direction: monitor.Inbound, Channel: "bus",
		Type: monitor.Received, Status: monitor.OK, ExchangeID: m.IdempotencyKey, Records: int64(a.New + a.Seen),
		RecordsFailed: int64(a.Quarantined), Component: "datasea"}
	if a.Quarantined > 0 {
		ev.Type, ev.Status, ev.ErrorMessage = monitor.Rejected, monitor.Warning, bad[0].Reason
	}
	if c.Events != nil {
		c.Events.Emit(ev)
	}
	if c.Applied != nil {
		c.Applied(a)
	}
	_ = d.Ack(ctx)
}

// kindOfRef gives a quarantined record of the migration feed a kind of
// that feed, so its event names the right flow.
func kindOfRef(ref string) Kind {
	if strings.HasPrefix(ref, "api migration ") {
		return MoveIn
	}
	return Death
}
