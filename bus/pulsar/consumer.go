package pulsar

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/shanghai-mca/mzhub/bus"
)

// Consumer is one Key_Shared consumer. On top of the Pulsar consumer it
// enforces what the client does not: a processing deadline per delivery
// (the Go client has no ack timeout), Prefetch as a bound on deliveries held
// by the application, one in-flight message per key within this consumer
// (Key_Shared already keeps a key on one consumer), nack delays per message
// and dead letters carrying cause and attempt headers.
type Consumer struct {
	b         *Bus
	opts      bus.SubscribeOptions
	dlqTopic  string // full name
	c         pulsar.Consumer
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu       sync.Mutex
	held     int                         // delivered, not settled
	buffered int                         // in ready or blocked
	active   map[string]bool             // key has a message ready or in flight
	blocked  map[string][]pulsar.Message // waiting for the key
	ready    []pulsar.Message
	flights  []*delivery // deadline order
	head     int
	timers   map[*time.Timer]struct{} // delayed nacks
	closed   bool
	wake     chan struct{}
	counters bus.SubscriptionCounters
}

func newConsumer(ctx context.Context, b *Bus, opts bus.SubscribeOptions) (*Consumer, error) {
	c := &Consumer{
		b:        b,
		opts:     opts,
		dlqTopic: fullTopic(b.cfg, opts.DeadLetterTopic),
		stop:     make(chan struct{}),
		active:   map[string]bool{},
		blocked:  map[string][]pulsar.Message{},
		timers:   map[*time.Timer]struct{}{},
		counters: b.metrics.For("pulsar", opts.Topic, opts.Subscription),
	}
	precision := int64(3) // nack redelivery rounded to 8 ms, not 256 ms
	co := pulsar.ConsumerOptions{
		Topic:                          fullTopic(b.cfg, opts.Topic),
		SubscriptionName:               opts.Subscription,
		Type:                           pulsar.KeyShared,
		KeySharedPolicy:                &pulsar.KeySharedPolicy{Mode: pulsar.KeySharedPolicyModeAutoSplit},
		SubscriptionInitialPosition:    pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:              opts.Prefetch,
		NackRedeliveryDelay:            nackRedeliveryDelay,
		NackPrecisionBit:               &precision,
		EnableBatchIndexAcknowledgment: true,
		MessageChannel:                 make(chan pulsar.ConsumerMessage, opts.Prefetch),
	}
	if opts.MaxDeliveries > 0 {
		// Safety net for messages redelivered without passing through Nack
		// (consumer crash loops): the client routes a message received
		// with MaxDeliveries redeliveries to the dead-letter topic.
		co.DLQ = &pulsar.DLQPolicy{MaxDeliveries: uint32(opts.MaxDeliveries), DeadLetterTopic: c.dlqTopic}
	}
	pc, err := b.sub.Subscribe(co)
	if err != nil {
		return nil, err
	}
	c.c = pc
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.pump() }()
	go func() { defer c.wg.Done(); c.keeper() }()
	return c, nil
}

// notify wakes Receive and the pump; c.mu held.
func (c *Consumer) notify() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

func (c *Consumer) waitCh() chan struct{} {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// pump moves messages from the client into ready (or blocked behind their
// key) while the consumer holds fewer than Prefetch.
func (c *Consumer) pump() {
	ch := c.c.Chan()
	for {
		c.mu.Lock()
		for !c.closed && c.held+c.buffered >= c.opts.Prefetch {
			w := c.waitCh()
			c.mu.Unlock()
			select {
			case <-w:
			case <-c.stop:
			}
			c.mu.Lock()
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		var cm pulsar.ConsumerMessage
		select {
		case cm = <-ch:
		case <-c.stop:
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.buffered++
		k := busKey(cm.Message)
		if k != "" && c.active[k] {
			c.blocked[k] = append(c.blocked[k], cm.Message)
		} else {
			if k != "" {
				c.active[k] = true
			}
			c.ready = append(c.ready, cm.Message)
		}
		c.notify()
		c.mu.Unlock()
	}
}

// Receive returns the next delivery.
func (c *Consumer) Receive(ctx context.Context) (bus.Delivery, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if c.held < c.opts.Prefetch && len(c.ready) > 0 {
			m := c.ready[0]
			c.ready[0] = nil
			c.ready = c.ready[1:]
			c.buffered--
			c.held++
			d := &delivery{c: c, msg: m, attempt: int(m.RedeliveryCount()) + 1, deadline: time.Now().Add(c.opts.ProcessingDeadline)}
			c.flights = append(c.flights, d)
			c.mu.Unlock()
			return d, nil
		}
		w := c.waitCh()
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w:
		}
	}
}

// settle ends d's life as a delivery; c.mu held. It frees the key for the
// next message of the key.
func (c *Consumer) settle(d *delivery, st deliveryState) {
	d.state = st
	c.held--
	if k := busKey(d.msg); k != "" {
		if q := c.blocked[k]; len(q) > 0 {
			c.ready = append(c.ready, q[0])
			if len(q) == 1 {
				delete(c.blocked, k)
			} else {
				c.blocked[k] = q[1:]
			}
		} else {
			delete(c.active, k)
		}
	}
	c.notify()
}

// keeper expires deliveries past the processing deadline: they are nacked
// (redelivered by the broker) or, at MaxDeliveries, dead-lettered.
func (c *Consumer) keeper() {
	tick := min(max(c.opts.ProcessingDeadline/4, 5*time.Millisecond), 500*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		var expired []*delivery
		c.mu.Lock()
		for c.head < len(c.flights) {
			d := c.flights[c.head]
			if d.state == stateLive && d.deadline.After(now) {
				break
			}
			c.flights[c.head] = nil
			c.head++
			if d.state == stateLive {
				c.settle(d, stateExpired)
				expired = append(expired, d)
			}
		}
		if n := len(c.flights) - c.head; n > 1024 && n > 4*c.held {
			// Mostly settled deliveries behind a long-running one at the
			// head: drop them (deadline order is kept).
			j := 0
			for _, d := range c.flights[c.head:] {
				if d.state == stateLive {
					c.flights[j] = d
					j++
				}
			}
			clear(c.flights[j:])
			c.flights = c.flights[:j]
			c.head = 0
		} else if c.head > 1024 && c.head > len(c.flights)/2 {
			n := copy(c.flights, c.flights[c.head:])
			clear(c.flights[n:])
			c.flights = c.flights[:n]
			c.head = 0
		}
		c.mu.Unlock()
		for _, d := range expired {
			c.counters.Expired.Inc()
			_ = c.retry(d, "processing deadline exceeded", 0)
		}
	}
}

// retry hands a settled delivery back to the broker: dead letter when it
// used up MaxDeliveries, else a nack after delay.
func (c *Consumer) retry(d *delivery, cause string, delay time.Duration) error {
	if c.opts.MaxDeliveries > 0 && d.attempt >= c.opts.MaxDeliveries {
		return c.deadLetter(d, cause)
	}
	if delay <= nackRedeliveryDelay {
		c.c.Nack(d.msg)
		return nil
	}
	// The client's nack delay is one per consumer; hold the message here for
	// the rest of the delay. If the consumer closes meanwhile the broker
	// redelivers it anyway.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	var t *time.Timer
	t = time.AfterFunc(delay-nackRedeliveryDelay, func() {
		c.mu.Lock()
		_, live := c.timers[t]
		delete(c.timers, t)
		c.mu.Unlock()
		if live {
			c.c.Nack(d.msg)
		}
	})
	c.timers[t] = struct{}{}
	return nil
}

// deadLetter publishes the message to the dead-letter topic with cause and
// attempts, then acks it. If the dead-letter publish fails the message is
// nacked (and the client's DLQ policy catches it on the next round).
func (c *Consumer) deadLetter(d *delivery, cause string) error {
	m := d.msg
	props := maps.Clone(m.Properties())
	if props == nil {
		props = map[string]string{}
	}
	props[bus.HeaderDeadLetterCause] = cause
	props[bus.HeaderDeadLetterAttempts] = strconv.Itoa(d.attempt)
	props[bus.HeaderDeadLetterTopic] = c.opts.Topic
	props[bus.HeaderDeadLetterAt] = time.Now().UTC().Format(time.RFC3339)
	ctx, cancel := context.WithTimeout(context.Background(), c.b.cfg.OperationTimeout)
	defer cancel()
	p, err := c.b.producerFor(ctx, c.dlqTopic, true)
	if err == nil {
		_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: m.Payload(), Key: m.Key(), Properties: props})
	}
	if err != nil {
		c.b.log.Error("dead letter failed; message nacked", "topic", c.opts.Topic, "subscription", c.opts.Subscription,
			"dead_letter_topic", c.dlqTopic, "err", err)
		c.c.Nack(m)
		return fmt.Errorf("pulsar bus: dead letter to %s: %w", c.dlqTopic, err)
	}
	c.counters.DeadLettered.Inc()
	c.b.log.Warn("message dead-lettered", "topic", c.opts.Topic, "subscription", c.opts.Subscription,
		"message", messageID(m.ID()), "attempts", d.attempt, "dead_letter_topic", c.dlqTopic, "cause", cause)
	return c.c.Ack(m)
}

// Close detaches the consumer. Deliveries it holds at their last attempt are
// dead-lettered; every other unacked message is redelivered by the broker.
func (c *Consumer) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.shutdown(true); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pulsar bus: close consumer %s/%s: %w", c.opts.Topic, c.opts.Subscription, ctx.Err())
	}
}

func (c *Consumer) shutdown(release bool) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		var held []*delivery
		for _, d := range c.flights[c.head:] {
			if d.state == stateLive {
				d.state = stateExpired
				held = append(held, d)
			}
		}
		c.flights, c.head, c.held = nil, 0, 0
		for t := range c.timers {
			t.Stop()
		}
		clear(c.timers)
		c.ready, c.blocked, c.buffered = nil, nil, 0
		c.notify()
		close(c.stop)
		c.mu.Unlock()
		if release && c.opts.MaxDeliveries > 0 {
			for _, d := range held {
				if d.attempt >= c.opts.MaxDeliveries {
					c.counters.Expired.Inc()
					_ = c.deadLetter(d, "consumer closed without ack")
				}
			}
		}
		c.wg.Wait()
		c.c.Close()
		c.b.forget(c)
	})
}

type deliveryState uint8

const (
	stateLive deliveryState = iota
	stateSettled
	stateExpired
)

type delivery struct {
	c        *Consumer
	msg      pulsar.Message
	attempt  int
	deadline time.Time
	state    deliveryState // guarded by c.mu
	answered bool          // Ack or Nack called; guarded by c.mu
}

func (d *delivery) Message() bus.Message {
	props := d.msg.Properties()
	var headers map[string]string
	idem := props[PropIdempotencyKey]
	if len(props) > 0 {
		headers = make(map[string]string, len(props))
		for k, v := range props {
			if k != PropIdempotencyKey && k != PropKey {
				headers[k] = v
			}
		}
	}
	return bus.Message{
		ID:             messageID(d.msg.ID()),
		Topic:          d.c.opts.Topic,
		Key:            busKey(d.msg),
		IdempotencyKey: idem,
		Headers:        headers,
		Body:           d.msg.Payload(),
		PublishedAt:    d.msg.PublishTime(),
	}
}

func (d *delivery) Attempt() int { return d.attempt }

// take marks d answered and settles it if still live; c.mu held.
func (d *delivery) take() error {
	if d.answered {
		return bus.ErrAlreadyAcked
	}
	d.answered = true
	if d.state != stateLive {
		if d.c.closed && d.c.b.isClosed() {
			return bus.ErrClosed
		}
		return bus.ErrDeliveryExpired
	}
	d.c.settle(d, stateSettled)
	return nil
}

func (d *delivery) Ack(ctx context.Context) error {
	c := d.c
	c.mu.Lock()
	err := d.take()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.counters.Acked.Inc()
	if err := c.c.Ack(d.msg); err != nil {
		return fmt.Errorf("pulsar bus: ack: %w", err)
	}
	return nil
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration, cause error) error {
	c := d.c
	c.mu.Lock()
	err := d.take()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	msg := "nacked"
	if cause != nil {
		msg = cause.Error()
	}
	c.counters.Nacked.Inc()
	return c.retry(d, msg, delay)
}

// messageID renders a Pulsar message id, batch index included.
func messageID(id pulsar.MessageID) string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}

// busKey is the bus key of a message: the PropKey property, or the Pulsar
// key for messages from producers other than this bus.
func busKey(m pulsar.Message) string {
	if k, ok := m.Properties()[PropKey]; ok {
		return k
	}
	return m.Key()
}
