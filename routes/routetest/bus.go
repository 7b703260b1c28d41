package routetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// Bus is an in-memory bus.Bus for tests. It keeps the whole contract of
// bus.Bus and passes the shared suite bus/bustest, as bus/local and
// bus/pulsar do: per-key order across consumers (a key waits while one of
// its messages is in flight or waiting for a retry), redelivery after a
// nack, a closed consumer or an expired processing deadline, dead letters
// after MaxDeliveries, Prefetch back pressure, durable subscriptions.
// It is not durable across processes; Reopen opens another Bus on the same
// memory, as reopening a durable bus on its storage.
type Bus struct {
	m *memory

	// The fields below are guarded by m.mu.
	closed    bool
	consumers map[*consumer]struct{}
}

var _ bus.Bus = (*Bus)(nil)

// memory is what a Bus stores; every Bus reopened on it shares it.
type memory struct {
	mu     sync.Mutex
	seq    int64
	topics map[string]*topic
}

type topic struct {
	// retained are the messages a new subscription starts with: those not
	// yet settled by every subscription, and those published while the
	// topic had none.
	retained []*record
	// published are every message published, for Published.
	published []bus.Message
	subs      map[string]*sub
}

type record struct {
	msg bus.Message
	// pending counts the subscriptions that have not settled the message.
	pending int
	// orphan is set while no subscription has taken the message.
	orphan bool
}

// sub is a durable subscription: its queue holds every message not yet
// acked or dead-lettered, in publish order.
type sub struct {
	m     *memory
	topic string
	opts  bus.SubscribeOptions
	queue []*entry
	// changed is closed (and replaced) whenever a delivery may have become
	// possible.
	changed chan struct{}
}

type entry struct {
	rec      *record
	attempts int
	// holder is the consumer holding the current delivery (nil: none).
	holder *consumer
	// gen identifies the current delivery; it changes when the delivery
	// is released, so a late Ack or Nack of it is told it expired.
	gen      int
	deadline *time.Timer
	// notBefore delays a redelivery after a nack.
	notBefore time.Time
}

type consumer struct {
	b        *Bus
	s        *sub
	prefetch int
	deadline time.Duration
	held     int
	closed   bool
}

// NewBus returns an empty in-memory bus.
func NewBus() *Bus {
	return &Bus{m: &memory{topics: map[string]*topic{}}, consumers: map[*consumer]struct{}{}}
}

// Reopen returns a new Bus on the memory of b, which should be closed
// first: what b stored (subscriptions, messages not acked) is there.
func (b *Bus) Reopen() *Bus {
	return &Bus{m: b.m, consumers: map[*consumer]struct{}{}}
}

func (m *memory) topic(name string) *topic {
	t := m.topics[name]
	if t == nil {
		t = &topic{subs: map[string]*sub{}}
		m.topics[name] = t
	}
	return t
}

// Publish appends msgs to the topic and hands them to its subscriptions.
func (b *Bus) Publish(ctx context.Context, name string, msgs ...bus.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	for _, msg := range msgs {
		b.m.publishLocked(name, msg)
	}
	return nil
}

func (m *memory) publishLocked(name string, msg bus.Message) {
	t := m.topic(name)
	m.seq++
	msg.ID = strconv.FormatInt(m.seq, 10)
	msg.Topic = name
	msg.PublishedAt = time.Now()
	msg.Headers = copyHeaders(msg.Headers)
	t.published = append(t.published, msg)
	rec := &record{msg: msg, pending: len(t.subs), orphan: len(t.subs) == 0}
	t.retained = append(t.retained, rec)
	for _, s := range t.subs {
		s.queue = append(s.queue, &entry{rec: rec})
		s.notify()
	}
	t.trim()
}

// trim forgets retained records every subscription settled.
func (t *topic) trim() {
	i := 0
	for i < len(t.retained) && t.retained[i].pending == 0 && !t.retained[i].orphan {
		i++
	}
	if i > 0 {
		t.retained = append([]*record(nil), t.retained[i:]...)
	}
}

// Published returns a copy of the messages published on a topic.
func (b *Bus) Published(name string) []bus.Message {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	t := b.m.topics[name]
	if t == nil {
		return nil
	}
	return append([]bus.Message(nil), t.published...)
}

// Subscribe attaches a consumer; consumers of one subscription name share
// the messages. The first Subscribe of a name creates the subscription,
// starting with the messages the topic retains.
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	t := b.m.topic(opts.Topic)
	s := t.subs[opts.Subscription]
	if s == nil {
		s = &sub{m: b.m, topic: opts.Topic, changed: make(chan struct{})}
		for _, rec := range t.retained {
			if rec.orphan || rec.pending > 0 {
				rec.orphan = false
				rec.pending++
				s.queue = append(s.queue, &entry{rec: rec})
			}
		}
		t.subs[opts.Subscription] = s
	}
	// The latest options rule the subscription's dead-lettering.
	s.opts = opts
	c := &consumer{b: b, s: s, prefetch: opts.Prefetch, deadline: opts.ProcessingDeadline}
	b.consumers[c] = struct{}{}
	return c, nil
}

// Close closes the bus: its consumers stop and what they held unacked is
// redelivered to consumers of a reopened bus.
func (b *Bus) Close(ctx context.Context) error {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for c := range b.consumers {
		c.closeLocked()
	}
	return nil
}

func (s *sub) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// next returns the first entry that can be delivered now, keeping per-key
// order, and the earliest time a waiting retry becomes due (zero: none).
func (s *sub) next(now time.Time) (*entry, time.Time) {
	var due time.Time
	blocked := map[string]bool{}
	for _, e := range s.queue {
		key := e.rec.msg.Key
		if e.holder != nil || e.notBefore.After(now) {
			if e.holder == nil && (due.IsZero() || e.notBefore.Before(due)) {
				due = e.notBefore
			}
			if key != "" {
				blocked[key] = true
			}
			continue
		}
		if key != "" && blocked[key] {
			continue
		}
		return e, due
	}
	return nil, due
}

// remove takes a settled entry out of the queue.
func (s *sub) remove(e *entry) {
	for i, q := range s.queue {
		if q == e {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			break
		}
	}
	e.rec.pending--
}

// Receive blocks until a delivery is available, the consumer holds fewer
// than Prefetch deliveries, or ctx is done.
func (c *consumer) Receive(ctx context.Context) (bus.Delivery, error) {
	m := c.b.m
	var wake *time.Timer
	defer func() {
		if wake != nil {
			wake.Stop()
		}
	}()
	for {
		m.mu.Lock()
		if c.closed || c.b.closed {
			m.mu.Unlock()
			return nil, bus.ErrClosed
		}
		var due time.Time
		if c.held < c.prefetch {
			var e *entry
			e, due = c.s.next(time.Now())
			if e != nil {
				d := c.deliverLocked(e)
				m.mu.Unlock()
				return d, nil
			}
		}
		changed := c.s.changed
		m.mu.Unlock()
		var timeout <-chan time.Time
		if !due.IsZero() {
			if wake == nil {
				wake = time.NewTimer(time.Until(due))
			} else {
				wake.Reset(time.Until(due))
			}
			timeout = wake.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-timeout:
		}
	}
}

func (c *consumer) deliverLocked(e *entry) *delivery {
	e.attempts++
	e.holder = c
	e.notBefore = time.Time{}
	c.held++
	gen := e.gen
	s, m := c.s, c.b.m
	e.deadline = time.AfterFunc(c.deadline, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if e.gen != gen || e.holder == nil {
			return
		}
		s.releaseLocked(e, errors.New("processing deadline exceeded"), 0)
	})
	return &delivery{c: c, e: e, gen: gen, attempt: e.attempts}
}

// releaseLocked ends e's current delivery without an ack: the message is
// dead-lettered once it had MaxDeliveries deliveries, else it waits delay
// and is delivered again.
func (s *sub) releaseLocked(e *entry, cause error, delay time.Duration) {
	if e.deadline != nil {
		e.deadline.Stop()
		e.deadline = nil
	}
	if e.holder != nil {
		e.holder.held--
		e.holder = nil
	}
	e.gen++
	if s.opts.MaxDeliveries > 0 && e.attempts >= s.opts.MaxDeliveries {
		s.deadLetterLocked(e, cause)
	} else if delay > 0 {
		e.notBefore = time.Now().Add(delay)
	}
	s.notify()
}

// ackLocked settles e for good.
func (s *sub) ackLocked(e *entry) {
	if e.deadline != nil {
		e.deadline.Stop()
		e.deadline = nil
	}
	e.holder.held--
	e.holder = nil
	e.gen++
	s.remove(e)
	s.notify()
}

func (s *sub) deadLetterLocked(e *entry, cause error) {
	s.remove(e)
	msg := e.rec.msg
	msg.Headers = copyHeaders(msg.Headers)
	if cause != nil {
		msg.Headers[bus.HeaderDeadLetterCause] = cause.Error()
	}
	msg.Headers[bus.HeaderDeadLetterAttempts] = strconv.Itoa(e.attempts)
	msg.Headers[bus.HeaderDeadLetterTopic] = s.topic
	msg.Headers[bus.HeaderDeadLetterAt] = time.Now().UTC().Format(time.RFC3339)
	// The consumer's bus may be closed; the memory is not.
	s.m.publishLocked(s.opts.DeadLetterTopic, msg)
}

// Close detaches the consumer; its unacked deliveries are redelivered.
func (c *consumer) Close(ctx context.Context) error {
	c.b.m.mu.Lock()
	defer c.b.m.mu.Unlock()
	c.closeLocked()
	delete(c.b.consumers, c)
	return nil
}

func (c *consumer) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	for _, e := range append([]*entry(nil), c.s.queue...) {
		if e.holder == c {
			c.s.releaseLocked(e, errors.New("consumer closed"), 0)
		}
	}
	c.s.notify()
}

type delivery struct {
	c       *consumer
	e       *entry
	gen     int
	attempt int
	settled bool
}

func (d *delivery) Message() bus.Message {
	m := d.e.rec.msg
	m.Headers = copyHeaders(m.Headers)
	m.Body = append([]byte(nil), m.Body...)
	return m
}

func (d *delivery) Attempt() int { return d.attempt }

// check tells whether the delivery can still be settled (lock held).
func (d *delivery) check() error {
	switch {
	case d.settled:
		return bus.ErrAlreadyAcked
	case d.e.gen != d.gen:
		return bus.ErrDeliveryExpired
	}
	return nil
}

func (d *delivery) Ack(ctx context.Context) error {
	m := d.c.b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	d.settled = true
	d.c.s.ackLocked(d.e)
	return nil
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration, cause error) error {
	m := d.c.b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	d.settled = true
	d.c.s.releaseLocked(d.e, cause, delay)
	return nil
}

func copyHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h)+4)
	for k, v := range h {
		out[k] = v
	}
	return out
}
