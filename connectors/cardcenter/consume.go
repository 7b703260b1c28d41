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
	"github.com/shanghai-mca/mzhub/security/mask"
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
	return bus.BatchConsumer{Bus: c.Bus, Max: batchMax, Wait: batchWait, Clock: c.Clock, Logger: c.Logger,
		Options: bus.SubscribeOptions{Topic: Topic, Subscription: Subscription, MaxDeliveries: MaxDeliveries, Prefetch: batchMax}}.Run(ctx, c.HandleBatch)
}

// batchMax bounds the records one apply takes (one transaction per feed),
// and batchWait how long the consumer waits for the next delivery before
// it applies what it has: a page of a route arrives as one burst.
const (
	batchMax  = 500
	batchWait = 5 * time.Millisecond
)

// Handle applies one delivery and acks or nacks it.
func (c *Consumer) Handle(ctx context.Context, d bus.Delivery) { c.HandleBatch(ctx, []bus.Delivery{d}) }

// pending is one delivery of a batch, decoded.
type pending struct {
	d    bus.Delivery
	feed string
	app  Application
	step Progress
	bad  *Bad
}

// HandleBatch applies the deliveries together — the applications (and the
// quarantined records) in one call, the production steps of known
// applications in another — and acks each applied or quarantined one;
// a call that fails nacks its deliveries, and a production step whose
// application is not stored yet is nacked alone (redelivered later).
func (c *Consumer) HandleBatch(ctx context.Context, batch []bus.Delivery) {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var apps, steps []pending
	for _, d := range batch {
		m := d.Message()
		p := pending{d: d, feed: m.Headers[HeaderFeed]}
		ref := m.Headers[HeaderRef]
		if ref == "" {
			ref = "bus " + Topic + " " + m.IdempotencyKey
		}
		switch p.feed {
		case FeedApplications:
			a, bad := DecodeApplication(m.Body, ref, c.Clock.Now(), c.Banks)
			p.app, p.bad = a, bad
			apps = append(apps, p)
		case FeedProgress:
			st, bad := DecodeProgress(m.Body, ref)
			p.step, p.bad = st, bad
			if bad != nil {
				apps = append(apps, p) // quarantined with the applications
				continue
			}
			steps = append(steps, p)
		default:
			p.bad = &Bad{Ref: ref, Reason: fmt.Sprintf("%v: feed %q is not applications or progress", ErrMalformed, clip(p.feed))}
			apps = append(apps, p)
		}
	}
	if len(apps) > 0 {
		var good []Application
		var bad []Bad
		for _, p := range apps {
			if p.bad != nil {
				bad = append(bad, *p.bad)
			} else {
				good = append(good, p.app)
			}
		}
		_, err := c.Apply.ApplyApplications(ctx, good, bad)
		c.settle(ctx, apps, err)
	}
	if len(steps) > 0 {
		var known []pending
		var prog []Progress
		for _, p := range steps {
			ok, err := c.Apply.KnownApplication(ctx, p.step.ID)
			switch {
			case err != nil:
				c.settle(ctx, []pending{p}, err)
			case !ok:
				c.settle(ctx, []pending{p}, errAwaitingApplication)
			default:
				known = append(known, p)
				prog = append(prog, p.step)
			}
		}
		if len(known) > 0 {
			_, err := c.Apply.ApplyProgress(ctx, prog)
			c.settle(ctx, known, err)
		}
	}
}

// settle acks ps with their events when err is nil, else nacks them for
// redelivery.
func (c *Consumer) settle(ctx context.Context, ps []pending, err error) {
	if err != nil {
		for _, p := range ps {
			if errors.Is(err, errAwaitingApplication) {
				c.Logger.Debug("cardcenter: production step before its application; redelivering", "attempt", p.d.Attempt())
			} else {
				c.Logger.Warn("cardcenter: apply failed; redelivering", "feed", p.feed, "attempt", p.d.Attempt(), "err", err)
			}
			_ = p.d.Nack(ctx, min(time.Duration(p.d.Attempt())*2*time.Second, 30*time.Second), err)
		}
		return
	}
	if c.Events != nil {
		// One received event per feed, one rejected event per quarantined record.
		per := map[string]int64{}
		for _, p := range ps {
			if p.bad != nil {
				c.Events.Emit(monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: FlowOf(p.feed), Direction: monitor.Inbound, Channel: "bus",
					Type: monitor.Rejected, Status: monitor.Warning, ExchangeID: p.d.Message().IdempotencyKey, RecordsFailed: 1,
					ErrorClass: "format", ErrorMessage: mask.Text(p.bad.Reason), Component: "cardcenter"})
				continue
			}
			per[p.feed]++
		}
		for _, f := range []string{FeedApplications, FeedProgress} {
			if per[f] > 0 {
				c.Events.Emit(monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: FlowOf(f), Direction: monitor.Inbound, Channel: "bus",
					Type: monitor.Received, Status: monitor.OK, Records: per[f], Component: "cardcenter"})
			}
		}
	}
	for _, p := range ps {
		_ = p.d.Ack(ctx)
	}
}
