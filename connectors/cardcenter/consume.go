package cardcenter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Subscription is the allowance service's subscription to Topic.
const Subscription = "allowance"

// MaxDeliveries is how often a record is delivered before the bus
// dead-letters it (an apply that keeps failing, or a production step
// whose application never comes).
const MaxDeliveries = 20

// errAwaitingApplication is a production step whose application is not
// stored yet: redelivered later.
var errAwaitingApplication = errors.New("cardcenter: production step before its application; redelivered")

// Consumer applies the records the cardcenter routes put on Topic: each
// is decoded and checked (applications against the bank-type dictionary
// Banks), applied idempotently by application id, or quarantined with its
// reason, each with its monitor event (received, or rejected with the
// reason). A record is acked once applied or quarantined; an apply that
// fails, and a production step whose application is not stored yet, are
// nacked and redelivered, up to MaxDeliveries times before the bus
// dead-letters them (replayable from the console).
type Consumer struct {
	// Bus to consume from; Apply applies; Banks resolves bank codes.
	Bus   bus.Bus
	Apply Applier
	Banks *BankTypes
	// Events, Clock and Logger as usual.
	Events connectors.Events
	Clock  clock.Clock
	Logger *slog.Logger
}

// Run consumes until ctx is done. A bus that cannot be reached is waited
// for; the consumer never stops the hub for it.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var sub bus.Subscription
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		var err error
		sub, err = c.Bus.Subscribe(ctx, bus.SubscribeOptions{Topic: Topic, Subscription: Subscription, MaxDeliveries: MaxDeliveries})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.Logger.Warn("cardcenter: subscribe; retrying", "topic", Topic, "retry_in", wait.String(), "err", err)
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
			return fmt.Errorf("cardcenter: receive: %w", err)
		}
		c.Handle(ctx, d)
	}
}

// Handle applies one delivery and acks or nacks it.
func (c *Consumer) Handle(ctx context.Context, d bus.Delivery) {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	m := d.Message()
	feed := m.Headers[HeaderFeed]
	ref := m.Headers[HeaderRef]
	if ref == "" {
		ref = "bus " + Topic + " " + m.IdempotencyKey
	}
	bad, err := c.apply(ctx, feed, m.Body, ref)
	if err != nil {
		if errors.Is(err, errAwaitingApplication) {
			c.Logger.Debug("cardcenter: production step before its application; redelivering", "attempt", d.Attempt())
		} else {
			c.Logger.Warn("cardcenter: apply failed; redelivering", "feed", feed, "attempt", d.Attempt(), "err", err)
		}
		_ = d.Nack(ctx, min(time.Duration(d.Attempt())*2*time.Second, 30*time.Second), err)
		return
	}
	if c.Events != nil {
		ev := monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: FlowOf(feed), Direction: monitor.Inbound, Channel: "bus",
			Type: monitor.Received, Status: monitor.OK, ExchangeID: m.IdempotencyKey, Records: 1, Component: "cardcenter"}
		if bad != nil {
			ev.Type, ev.Status, ev.Records, ev.RecordsFailed, ev.ErrorClass, ev.ErrorMessage = monitor.Rejected, monitor.Warning, 0, 1, "format", bad.Reason
		}
		c.Events.Emit(ev)
	}
	_ = d.Ack(ctx)
}

// apply applies one record; it returns the record's quarantine entry when
// it was quarantined.
func (c *Consumer) apply(ctx context.Context, feed string, body []byte, ref string) (*Bad, error) {
	switch feed {
	case FeedApplications:
		a, bad := DecodeApplication(body, ref, c.Clock.Now(), c.Banks)
		if bad != nil {
			_, err := c.Apply.ApplyApplications(ctx, nil, []Bad{*bad})
			return bad, err
		}
		_, err := c.Apply.ApplyApplications(ctx, []Application{a}, nil)
		return nil, err
	case FeedProgress:
		st, bad := DecodeProgress(body, ref)
		if bad != nil {
			_, err := c.Apply.ApplyApplications(ctx, nil, []Bad{*bad})
			return bad, err
		}
		known, err := c.Apply.KnownApplication(ctx, st.ID)
		if err != nil {
			return nil, err
		}
		if !known {
			return nil, errAwaitingApplication
		}
		_, err = c.Apply.ApplyProgress(ctx, []Progress{st})
		return nil, err
	default:
		bad := &Bad{Ref: ref, Reason: fmt.Sprintf("%v: feed %q is not applications or progress", ErrMalformed, clip(feed))}
		_, err := c.Apply.ApplyApplications(ctx, nil, []Bad{*bad})
		return bad, err
	}
}
