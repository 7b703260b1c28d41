package local

import (
	"container/heap"
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

type entryState uint8

const (
	stateQueued   entryState = iota // behind an earlier message of its key
	stateReady                      // in the ready heap
	stateDelayed                    // in the delay heap (nack delay)
	stateInflight                   // handed to a consumer
	stateDone                       // acked or dead-lettered
)

// entry is one message pending for one subscription.
type entry struct {
	id        int64
	m         *stored
	attempts  int    // deliveries so far
	notBefore int64  // unix ms; earliest redelivery
	cause     string // last nack cause
	state     entryState
	gen       uint64    // grows with each delivery
	c         *Consumer // holder while in flight
}

// keyQueue holds the pending entries of one key, in id order; only the head
// may be dispatched.
type keyQueue struct{ q []*entry }

// subscription is the in-memory index of one durable subscription.
type subscription struct {
	b               *Bus
	id              int64
	topic, name     string
	mu              sync.Mutex
	keys            map[string]*keyQueue
	ready           readyHeap
	delayed         delayHeap
	consumers       map[*Consumer]struct{}
	maxDeliveries   int
	deadLetterTopic string
	wake            chan struct{} // closed to wake waiting receivers
	pendingCount    int
	counters        bus.SubscriptionCounters
}

func newSubscription(b *Bus, id int64, topic, name string) *subscription {
	return &subscription{
		b: b, id: id, topic: topic, name: name,
		keys:            map[string]*keyQueue{},
		consumers:       map[*Consumer]struct{}{},
		deadLetterTopic: bus.DefaultDeadLetterTopic(topic),
		counters:        b.metrics.For("local", topic, name),
	}
}

// addBatch indexes freshly committed messages. copyData gives this
// subscription its own copy of the body (when another subscription of the
// topic already shares the original; each accounts for its body in the
// cache); headers are shared, never written (see writer.shareHeaders).
func (s *subscription) addBatch(msgs []*stored, copyData bool) {
	s.mu.Lock()
	for _, m := range msgs {
		if copyData {
			c := *m
			c.body = slices.Clone(m.body)
			m = &c
		}
		s.b.cache(m)
		s.add(&entry{id: m.id, m: m}, 0)
	}
	s.notify()
	s.mu.Unlock()
}

// add indexes one entry; s.mu held (or s not yet shared).
func (s *subscription) add(e *entry, now int64) {
	s.pendingCount++
	if e.m.key == "" {
		s.schedule(e, now)
		return
	}
	kq := s.keys[e.m.key]
	if kq == nil {
		kq = &keyQueue{}
		s.keys[e.m.key] = kq
	}
	kq.q = append(kq.q, e)
	if len(kq.q) == 1 {
		s.schedule(e, now)
	} else {
		e.state = stateQueued
	}
}

// schedule makes a dispatchable entry ready or delayed. now is unix ms (0:
// read the clock only when needed).
func (s *subscription) schedule(e *entry, now int64) {
	if e.notBefore > 0 {
		if now == 0 {
			now = time.Now().UnixMilli()
		}
		if e.notBefore > now {
			e.state = stateDelayed
			heap.Push(&s.delayed, e)
			return
		}
	}
	e.state = stateReady
	heap.Push(&s.ready, e)
}

// remove drops a finished entry and lets the next of its key go.
func (s *subscription) remove(e *entry) {
	e.state = stateDone
	e.c = nil
	s.pendingCount--
	s.b.uncache(e.m)
	if e.m.key == "" {
		return
	}
	kq := s.keys[e.m.key]
	if kq == nil || len(kq.q) == 0 || kq.q[0] != e {
		return // cannot happen: only heads are dispatched
	}
	kq.q[0] = nil
	kq.q = kq.q[1:]
	if len(kq.q) == 0 {
		delete(s.keys, e.m.key)
		return
	}
	s.schedule(kq.q[0], 0)
}

// promote moves due delayed entries to the ready heap.
func (s *subscription) promote(nowMs int64) {
	for len(s.delayed) > 0 && s.delayed[0].notBefore <= nowMs {
		e := heap.Pop(&s.delayed).(*entry)
		e.state = stateReady
		heap.Push(&s.ready, e)
	}
}

// notify wakes the waiting receivers; s.mu held.
func (s *subscription) notify() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

func (s *subscription) waitCh() chan struct{} {
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

func (s *subscription) attach(opts bus.SubscribeOptions) (*Consumer, error) {
	c := &Consumer{
		s:        s,
		prefetch: opts.Prefetch,
		deadline: int64(opts.ProcessingDeadline),
		closedCh: make(chan struct{}),
	}
	s.b.mu.RLock()
	defer s.b.mu.RUnlock()
	if s.b.closed {
		return nil, bus.ErrClosed
	}
	s.mu.Lock()
	s.maxDeliveries = opts.MaxDeliveries
	s.deadLetterTopic = opts.DeadLetterTopic
	s.consumers[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// closeAll closes every consumer (bus Close).
func (s *subscription) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.consumers {
		s.closeConsumer(c, false)
	}
}

// closeConsumer detaches c; release its deliveries unless the bus is going
// away (then they stay pending in the database). s.mu held.
func (s *subscription) closeConsumer(c *Consumer, release bool) {
	if c.closed {
		return
	}
	c.closed = true
	close(c.closedCh)
	delete(s.consumers, c)
	for _, f := range c.flights[c.head:] {
		if f.e.state != stateInflight || f.e.gen != f.gen {
			continue
		}
		if release {
			s.counters.Expired.Inc()
			s.release(f.e, "consumer closed without ack", 0)
		} else {
			f.e.state = stateDone // the bus is closing: no more dispatch
		}
	}
	c.flights, c.head, c.held = nil, 0, 0
	s.notify()
}

// expire releases deliveries past their deadline; now is the bus's
// monotonic clock.
func (s *subscription) expire(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	released := false
	for c := range s.consumers {
		for c.head < len(c.flights) {
			f := c.flights[c.head]
			live := f.e.state == stateInflight && f.e.gen == f.gen
			if live && f.deadline > now {
				break
			}
			c.flights[c.head] = flight{}
			c.head++
			if live {
				c.held--
				s.counters.Expired.Inc()
				s.release(f.e, "processing deadline exceeded", 0)
				released = true
			}
		}
		c.compact()
	}
	if released {
		s.notify()
	}
}

// release takes an in-flight entry back: dead letter when it used up its
// deliveries, otherwise redelivery after delayMs. The caller has already
// decremented the consumer's held count. s.mu held.
func (s *subscription) release(e *entry, cause string, delayMs int64) {
	e.c = nil
	e.cause = cause
	if s.maxDeliveries > 0 && e.attempts >= s.maxDeliveries {
		s.deadLetter(e)
		return
	}
	now := time.Now().UnixMilli()
	e.notBefore = now + delayMs
	s.schedule(e, now)
}

// deadLetter moves e to the dead-letter topic (committed with its ack).
func (s *subscription) deadLetter(e *entry) {
	h := e.m.headerCopy()
	if h == nil {
		h = map[string]string{}
	}
	h[bus.HeaderDeadLetterCause] = e.cause
	h[bus.HeaderDeadLetterAttempts] = strconv.Itoa(e.attempts)
	h[bus.HeaderDeadLetterTopic] = s.topic
	h[bus.HeaderDeadLetterAt] = time.Now().UTC().Format(time.RFC3339)
	dm := &stored{
		topic: s.deadLetterTopic, key: e.m.key, idem: e.m.idem, headers: h, body: e.m.body,
		publishedAt: time.Now().UnixMilli(),
	}
	if e.m.lazy {
		dm.bodyFrom = e.id // copied inside the commit, before the original goes
	}
	dlq := &pubReq{topic: s.deadLetterTopic, msgs: []*stored{dm}}
	s.b.log.Warn("message dead-lettered", "topic", s.topic, "subscription", s.name,
		"message", e.id, "attempts", e.attempts, "dead_letter_topic", s.deadLetterTopic, "cause", e.cause)
	s.remove(e)
	s.counters.DeadLettered.Inc()
	s.b.w.addAck(ackItem{kind: kindAck, subID: s.id, msgID: e.id}, dlq)
}

// flight is one delivery of a consumer, in deadline order.
type flight struct {
	e        *entry
	gen      uint64
	deadline int64
}

// Consumer is one consumer of a subscription of the local bus.
type Consumer struct {
	s        *subscription
	prefetch int
	deadline int64 // ns
	// guarded by s.mu:
	held     int
	flights  []flight
	head     int
	closed   bool
	closedCh chan struct{}
}

func (c *Consumer) compact() {
	if n := len(c.flights) - c.head; n > 1024 && n > 4*c.held {
		// Mostly settled deliveries behind a long-running one at the head:
		// drop them (the order, hence deadline order, is kept).
		j := 0
		for _, f := range c.flights[c.head:] {
			if f.e.state == stateInflight && f.e.gen == f.gen {
				c.flights[j] = f
				j++
			}
		}
		clear(c.flights[j:])
		c.flights = c.flights[:j]
		c.head = 0
		return
	}
	if c.head > 1024 && c.head > len(c.flights)/2 {
		n := copy(c.flights, c.flights[c.head:])
		clear(c.flights[n:])
		c.flights = c.flights[:n]
		c.head = 0
	}
}

// Receive blocks until a delivery is available or ctx is done.
func (c *Consumer) Receive(ctx context.Context) (bus.Delivery, error) {
	s := c.s
	for {
		s.mu.Lock()
		if c.closed {
			s.mu.Unlock()
			return nil, bus.ErrClosed
		}
		var next int64 // unix ms of the next delayed entry, 0: none
		if c.held < c.prefetch {
			nowMs := time.Now().UnixMilli()
			if len(s.delayed) > 0 {
				s.promote(nowMs)
			}
			if len(s.ready) > 0 {
				e := heap.Pop(&s.ready).(*entry)
				d := c.deliver(e)
				s.mu.Unlock()
				if e.m.lazy {
					body, err := s.b.loadBody(ctx, e.id)
					if err != nil {
						c.undeliver(d)
						return nil, err
					}
					d.msg.Body = body
				}
				return d, nil
			}
			if len(s.delayed) > 0 {
				next = s.delayed[0].notBefore
			}
		}
		wake := s.waitCh()
		s.mu.Unlock()
		var timer *time.Timer
		var due <-chan time.Time
		if next > 0 {
			timer = time.NewTimer(time.Until(time.UnixMilli(next)))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil, ctx.Err()
		case <-wake:
		case <-due:
		case <-c.closedCh:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// deliver hands e to c; s.mu held.
func (c *Consumer) deliver(e *entry) *delivery {
	e.state = stateInflight
	e.attempts++
	e.gen++
	e.c = c
	c.held++
	c.flights = append(c.flights, flight{e: e, gen: e.gen, deadline: c.s.b.now() + c.deadline})
	m := e.m
	return &delivery{
		c: c, e: e, gen: e.gen, attempt: e.attempts,
		msg: bus.Message{
			ID:             formatID(m.id),
			Topic:          m.topic,
			Key:            m.key,
			IdempotencyKey: m.idem,
			Headers:        m.headerCopy(),
			Body:           slices.Clone(m.body), // nil when lazy: read by Receive
			PublishedAt:    time.UnixMilli(m.publishedAt),
		},
	}
}

// undeliver takes back a delivery whose body could not be read, without
// counting it as an attempt.
func (c *Consumer) undeliver(d *delivery) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d.done.Store(true)
	e := d.e
	if c.closed || e.state != stateInflight || e.gen != d.gen {
		return
	}
	c.held--
	e.attempts--
	e.c = nil
	s.schedule(e, 0)
	s.notify()
}

// Close detaches the consumer; its unacknowledged deliveries are
// redelivered at once (counting as a delivery for MaxDeliveries).
func (c *Consumer) Close(ctx context.Context) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConsumer(c, true)
	return nil
}

type delivery struct {
	c       *Consumer
	e       *entry
	gen     uint64
	attempt int
	msg     bus.Message
	done    atomic.Bool
}

func (d *delivery) Message() bus.Message { return d.msg }
func (d *delivery) Attempt() int         { return d.attempt }

// take checks that d is still the live delivery of its entry; s.mu held.
func (d *delivery) take() error {
	if d.c.closed {
		if d.c.s.b.isClosed() {
			return bus.ErrClosed
		}
		return bus.ErrDeliveryExpired
	}
	if d.e.state != stateInflight || d.e.gen != d.gen || d.e.c != d.c {
		return bus.ErrDeliveryExpired
	}
	d.c.held--
	return nil
}

func (d *delivery) Ack(ctx context.Context) error {
	if !d.done.CompareAndSwap(false, true) {
		return bus.ErrAlreadyAcked
	}
	s := d.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := d.take(); err != nil {
		return err
	}
	s.remove(d.e)
	s.counters.Acked.Inc()
	s.b.w.addAck(ackItem{kind: kindAck, subID: s.id, msgID: d.e.id}, nil)
	s.notify()
	return nil
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration, cause error) error {
	if !d.done.CompareAndSwap(false, true) {
		return bus.ErrAlreadyAcked
	}
	if delay < 0 {
		delay = 0
	}
	s := d.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := d.take(); err != nil {
		return err
	}
	msg := "nacked"
	if cause != nil {
		msg = cause.Error()
	}
	e := d.e
	s.counters.Nacked.Inc()
	s.release(e, msg, delay.Milliseconds())
	if e.state != stateDone {
		s.b.w.addAck(ackItem{kind: kindNack, subID: s.id, msgID: e.id, attempts: e.attempts, notBefore: e.notBefore, cause: msg}, nil)
	}
	s.notify()
	return nil
}

func (b *Bus) isClosed() bool { return b.closedFlag.Load() }
