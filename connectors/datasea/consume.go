package datasea

import (
	"context"
	"encoding/json"
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
// route: the API's feeds and the SFTP drop's batch files (the datasea
// routes of configs/routes) and the front-end processor tables (a dbtable
// route, docs/datasea.md) publish each record there as one JSON Record;
// the API's malformed records and the files' bad lines arrive as
// quarantined messages (HeaderReason, HeaderRef).
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

// batchMax bounds the records one Apply takes (one transaction), and
// batchWait how long the consumer waits for the next delivery before it
// applies what it holds.
const (
	batchMax  = 500
	batchWait = 5 * time.Millisecond
)

// Run consumes until ctx is done. The deliveries at hand (up to batchMax,
// each waited for at most batchWait after the first) are applied together,
// one transaction; each is acked once applied (or quarantined); an apply
// that fails nacks them all, redelivered up to 20 times before the bus
// dead-letters each.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return bus.BatchConsumer{Bus: c.Bus, Max: batchMax, Wait: batchWait, Clock: c.Clock, Logger: c.Logger,
		Options: bus.SubscribeOptions{Topic: Topic, Subscription: "allowance", MaxDeliveries: 20, Prefetch: batchMax}}.Run(ctx, c.handle)
}

// decoded is one delivery's record, or its quarantine.
type decoded struct {
	d    bus.Delivery
	rec  *Record
	bad  *Bad
	kind Kind
}

func (c *Consumer) handle(ctx context.Context, batch []bus.Delivery) {
	now := c.Clock.Now()
	// Applied by way in (the source header), in the order received.
	var sources []string
	bySource := map[string][]decoded{}
	for _, d := range batch {
		m := d.Message()
		x := decoded{d: d}
		ref := "bus " + Topic + " " + m.IdempotencyKey
		var rec Record
		if why := m.Headers[HeaderReason]; why != "" {
			// Quarantined at the source, with its place; the body is masked.
			if r := m.Headers[HeaderRef]; r != "" {
				ref = r
			}
			x.bad = &Bad{Ref: ref, RecordID: m.Headers[HeaderRecordID], Reason: why, Raw: string(m.Body)}
			x.kind = kindOfRef(ref)
		} else if err := json.Unmarshal(m.Body, &rec); err != nil {
			x.bad = &Bad{Ref: ref, Reason: fmt.Sprintf("%v: not a record: %v", ErrMalformed, err), Raw: maskRaw(string(m.Body))}
		} else if rec = rec.Normalize(); rec.Check(now) != nil {
			x.bad = &Bad{Ref: ref, RecordID: rec.ID, Reason: rec.Check(now).Error(), Raw: maskRaw(string(m.Body))}
			x.kind = rec.Kind
		} else {
			x.rec, x.kind = &rec, rec.Kind
		}
		source := "bus"
		if s := m.Headers[HeaderSource]; s != "" {
			source = s
		}
		if _, ok := bySource[source]; !ok {
			sources = append(sources, source)
		}
		bySource[source] = append(bySource[source], x)
	}
	for _, source := range sources {
		c.apply(ctx, source, bySource[source])
	}
}

// apply applies one source's deliveries together and settles them.
func (c *Consumer) apply(ctx context.Context, source string, xs []decoded) {
	var good []Record
	var bad []Bad
	for _, x := range xs {
		if x.bad != nil {
			bad = append(bad, *x.bad)
		} else {
			good = append(good, *x.rec)
		}
	}
	a, err := c.Apply.Apply(ctx, source, good, bad)
	if err != nil {
		c.Logger.Warn("datasea: apply from the bus failed; redelivering", "records", len(xs), "err", err, "attempt", xs[0].d.Attempt())
		for _, x := range xs {
			_ = x.d.Nack(ctx, time.Duration(x.d.Attempt())*time.Second, err)
		}
		return
	}
	// One received event per feed of the batch, one rejected per quarantined record.
	perFeed := map[string]int64{}
	var feeds []string
	for _, x := range xs {
		f := FeedOf(x.kind)
		if x.bad != nil {
			if c.Events != nil {
				c.Events.Emit(monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: f, Direction: monitor.Inbound, Channel: "bus",
					Type: monitor.Rejected, Status: monitor.Warning, ExchangeID: x.d.Message().IdempotencyKey, RecordsFailed: 1,
					ErrorMessage: x.bad.Reason, Component: "datasea", Attrs: map[string]string{"source": source}})
			}
			continue
		}
		if _, ok := perFeed[f]; !ok {
			feeds = append(feeds, f)
		}
		perFeed[f]++
	}
	for _, f := range feeds {
		if c.Events != nil {
			c.Events.Emit(monitor.Event{Time: c.Clock.Now(), Partner: Partner, Flow: f, Direction: monitor.Inbound, Channel: "bus",
				Type: monitor.Received, Status: monitor.OK, Records: perFeed[f], Component: "datasea", Attrs: map[string]string{"source": source}})
		}
	}
	if c.Applied != nil {
		c.Applied(a)
	}
	for _, x := range xs {
		_ = x.d.Ack(ctx)
	}
}

// kindOfRef gives a quarantined record of the migration feed (the API's
// or a MIGRATION_ batch file's) a kind of that feed, so its event names
// the right flow.
func kindOfRef(ref string) Kind {
	if strings.HasPrefix(ref, "api migration ") || strings.HasPrefix(ref, "MIGRATION") {
		return MoveIn
	}
	return Death
}
