package routetest

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// Bus is an in-memory bus.Bus for tests. Messages published before a
// subscription exists are delivered to it when it attaches. It is not durable.
type Bus struct {
	mu     sync.Mutex
	topics map[string]*topic
	seq    int64
	closed bool
}

var _ bus.Bus = (*Bus)(nil)

type topic struct {
	log  []bus.Message
	subs map[string]*subState
}

type subState struct {
	b      *Bus
	opts   bus.SubscribeOptions
	ready  []*entry
	notify chan struct{}
}

type entry struct {
	msg     bus.Message
	attempt int
}

// NewBus returns an empty in-memory bus.
func NewBus() *Bus { return &Bus{topics: map[string]*topic{}} }

func (b *Bus) topic(name string) *topic {
	t := b.topics[name]
	if t == nil {
		t = &topic{subs: map[string]*subState{}}
		b.topics[name] = t
	}
	return t
}

// Publish appends msgs to the topic and hands them to its subscriptions.
func (b *Bus) Publish(ctx context.Context, name string, msgs ...bus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	t := b.topic(name)
	for _, m := range msgs {
		b.seq++
		m.ID = strconv.FormatInt(b.seq, 10)
		m.Topic = name
		m.PublishedAt = time.Now()
		t.log = append(t.log, m)
		for _, s := range t.subs {
			s.push(&entry{msg: m})
		}
	}
	return nil
}

// Published returns a copy of the messages published on a topic.
func (b *Bus) Published(name string) []bus.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[name]
	if t == nil {
		return nil
	}
	return append([]bus.Message(nil), t.log...)
}

func (s *subState) push(e *entry) {
	s.ready = append(s.ready, e)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Subscribe attaches a consumer; consumers of one name share the messages.
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	if opts.DeadLetterTopic == "" {
		opts.DeadLetterTopic = opts.Topic + ".dlq"
	}
	t := b.topic(opts.Topic)
	s := t.subs[opts.Subscription]
	if s == nil {
		s = &subState{b: b, opts: opts, notify: make(chan struct{}, 1)}
		for _, m := range t.log {
			s.ready = append(s.ready, &entry{msg: m})
		}
		t.subs[opts.Subscription] = s
	}
	return &consumer{s: s, held: map[*entry]bool{}}, nil
}

// Close closes the bus.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

type consumer struct {
	s      *subState
	mu     sync.Mutex
	held   map[*entry]bool
	closed bool
}

func (c *consumer) Receive(ctx context.Context) (bus.Delivery, error) {
	b := c.s.b
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if len(c.s.ready) > 0 {
			e := c.s.ready[0]
			c.s.ready = c.s.ready[1:]
			e.attempt++
			if len(c.s.ready) > 0 {
				select {
				case c.s.notify <- struct{}{}:
				default:
				}
			}
			b.mu.Unlock()
			c.mu.Lock()
			c.held[e] = true
			c.mu.Unlock()
			return &delivery{c: c, e: e}, nil
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.s.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	held := c.held
	c.held = map[*entry]bool{}
	c.closed = true
	c.mu.Unlock()
	b := c.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for e := range held {
		c.s.push(e)
	}
	return nil
}

type delivery struct {
	c    *consumer
	e    *entry
	once sync.Mutex
	done bool
}

func (d *delivery) Message() bus.Message { return d.e.msg }
func (d *delivery) Attempt() int         { return d.e.attempt }

func (d *delivery) settle() bool {
	d.once.Lock()
	defer d.once.Unlock()
	if d.done {
		return false
	}
	d.done = true
	d.c.mu.Lock()
	delete(d.c.held, d.e)
	d.c.mu.Unlock()
	return true
}

func (d *delivery) Ack(ctx context.Context) error {
	if !d.settle() {
		return bus.ErrAlreadyAcked
	}
	return nil
}

func (d *delivery) Nack(ctx context.Context, delay time.Duration, cause error) error {
	if !d.settle() {
		return bus.ErrAlreadyAcked
	}
	s := d.c.s
	if s.opts.MaxDeliveries > 0 && d.e.attempt >= s.opts.MaxDeliveries {
		m := d.e.msg
		h := map[string]string{}
		for k, v := range m.Headers {
			h[k] = v
		}
		if cause != nil {
			h[bus.HeaderDeadLetterCause] = cause.Error()
		}
		h[bus.HeaderDeadLetterAttempts] = strconv.Itoa(d.e.attempt)
		h[bus.HeaderDeadLetterTopic] = s.opts.Topic
		m.Headers = h
		return s.b.Publish(ctx, s.opts.DeadLetterTopic, m)
	}
	push := func() {
		s.b.mu.Lock()
		s.push(d.e)
		s.b.mu.Unlock()
	}
	if delay <= 0 {
		push()
	} else {
		time.AfterFunc(delay, push)
	}
	return nil
}
