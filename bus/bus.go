// Package bus defines the message bus between connector sources and sinks.
// Two implementations satisfy it: bus/local (embedded, durable in the
// hub's SQLite state file) and bus/pulsar (Apache Pulsar, cluster
// profile). Both pass the shared suite in bus/bustest.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Message is one unit on the bus.
type Message struct {
	// ID is assigned by the bus on publish; unique within a topic.
	ID string
	// Topic the message was published to.
	Topic string
	// Key is the ordering key (person, batch, ...). Messages with the same key
	// are delivered in publish order and never concurrently to two consumers
	// of one subscription. Empty means unordered.
	Key string
	// IdempotencyKey identifies the business effect. Sinks use it (with the
	// partner's own idempotent key or the hub's delivery ledger) so that a
	// redelivery never repeats the effect at the partner.
	IdempotencyKey string
	// Headers carry metadata (partner, flow, exchange id, lineage, ...).
	Headers map[string]string
	// Body is the payload. The bus owns it (and Headers) after Publish; a
	// consumer owns the Body and Headers of a Delivery it received.
	Body []byte
	// PublishedAt is set by the bus on publish.
	PublishedAt time.Time
}

// Delivery is a message handed to a consumer. Exactly one of Ack or Nack must
// be called for every delivery; a delivery that is neither acked nor nacked
// before its processing deadline (or before the consumer closes or crashes)
// is redelivered (or dead-lettered once MaxDeliveries is reached).
//
// Acks and nacks are asynchronous: they return once the bus recorded them in
// memory and become durable shortly after (in the local bus within
// LocalConfig.CommitInterval). A crash before that redelivers the message,
// which at-least-once delivery allows.
//
// After a delivery expired (its processing deadline passed or its consumer
// closed) Ack and Nack return ErrDeliveryExpired and change nothing: the
// message is being, or will be, redelivered.
type Delivery interface {
	// Message returns the delivered message.
	Message() Message
	// Attempt is 1 on first delivery and grows with each redelivery.
	Attempt() int
	// Ack confirms the message was fully handled; it will not be delivered again.
	Ack(ctx context.Context) error
	// Nack returns the message for redelivery after delay. cause is recorded
	// and, once the subscription's MaxDeliveries is reached, the message is
	// moved to the dead-letter topic with cause, attempt count and headers.
	//
	// Ordering after a Nack: the local bus keeps the key blocked until the
	// nacked message is acked or dead-lettered (strict per-key order through
	// retries). Pulsar (Key_Shared) keeps delivering later messages of the
	// key to the same consumer meanwhile; routes that need strict order
	// through retries retry inside the handler before nacking.
	Nack(ctx context.Context, delay time.Duration, cause error) error
}

// SubscribeOptions configure a subscription.
//
// Subscriptions are durable: the first Subscribe with a (Topic,
// Subscription) pair creates it, starting at the earliest message the topic
// still retains (local: every message not yet acknowledged by all existing
// subscriptions, and every message published while the topic had none;
// Pulsar: within the namespace retention set by deploy/pulsar/setup.sh).
// Later Subscribes attach more consumers that share the work; messages
// published meanwhile wait for them, across restarts.
type SubscribeOptions struct {
	// Topic to consume.
	Topic string
	// Subscription name; consumers sharing a name share the work.
	Subscription string
	// MaxDeliveries before a message is dead-lettered (0 means never). A
	// message is dead-lettered when its MaxDeliveries-th delivery is
	// nacked, expires (ProcessingDeadline) or is left unacked by a closing
	// consumer.
	MaxDeliveries int
	// DeadLetterTopic receives messages that exhausted MaxDeliveries;
	// default Topic + ".dlq". Dead-lettered messages keep Key,
	// IdempotencyKey, Body and Headers and gain the HeaderDeadLetter* headers.
	DeadLetterTopic string
	// ProcessingDeadline is how long a delivery may stay unacknowledged
	// before it is redelivered (the consumer is presumed stuck); 0 means
	// DefaultProcessingDeadline.
	ProcessingDeadline time.Duration
	// Prefetch bounds the deliveries one consumer holds at a time, buffered
	// or received and not yet acked/nacked (back pressure): Receive blocks
	// while the consumer holds Prefetch deliveries. 0 means DefaultPrefetch.
	Prefetch int
}

// Defaults applied to zero SubscribeOptions fields.
const (
	// DefaultProcessingDeadline applies when ProcessingDeadline is 0.
	DefaultProcessingDeadline = 5 * time.Minute
	// DefaultPrefetch applies when Prefetch is 0.
	DefaultPrefetch = 256
)

// DefaultDeadLetterTopic is the dead-letter topic used when
// SubscribeOptions.DeadLetterTopic is empty.
func DefaultDeadLetterTopic(topic string) string { return topic + ".dlq" }

// Validate reports every problem of opts at once. It does no I/O.
func (o SubscribeOptions) Validate() error {
	var errs []error
	if o.Topic == "" {
		errs = append(errs, errors.New("bus: subscribe: topic required"))
	}
	if o.Subscription == "" {
		errs = append(errs, errors.New("bus: subscribe: subscription name required"))
	}
	if o.MaxDeliveries < 0 {
		errs = append(errs, fmt.Errorf("bus: subscribe: max deliveries %d: must not be negative", o.MaxDeliveries))
	}
	if o.ProcessingDeadline < 0 {
		errs = append(errs, fmt.Errorf("bus: subscribe: processing deadline %s: must not be negative", o.ProcessingDeadline))
	}
	if o.Prefetch < 0 {
		errs = append(errs, fmt.Errorf("bus: subscribe: prefetch %d: must not be negative", o.Prefetch))
	}
	return errors.Join(errs...)
}

// WithDefaults returns opts with zero fields set to their defaults.
func (o SubscribeOptions) WithDefaults() SubscribeOptions {
	if o.DeadLetterTopic == "" {
		o.DeadLetterTopic = DefaultDeadLetterTopic(o.Topic)
	}
	if o.ProcessingDeadline == 0 {
		o.ProcessingDeadline = DefaultProcessingDeadline
	}
	if o.Prefetch == 0 {
		o.Prefetch = DefaultPrefetch
	}
	return o
}

// Subscription is a consumer attached to a subscription.
type Subscription interface {
	// Receive blocks until a delivery is available or ctx is done. It
	// returns ErrClosed after Close (of the subscription or the bus). One
	// Subscription may be received from by several goroutines.
	Receive(ctx context.Context) (Delivery, error)
	// Close detaches the consumer; its unacknowledged deliveries are
	// redelivered (to other consumers of the subscription, or later).
	// The subscription itself stays (durable).
	Close(ctx context.Context) error
}

// Bus publishes and subscribes. Implementations are safe for concurrent use.
type Bus interface {
	// Publish stores msgs durably; when it returns nil every message will be
	// delivered at least once to every subscription of the topic. A source
	// acknowledges its partner only after Publish returned nil. ID, Topic
	// and PublishedAt of msgs are ignored (the bus sets them). When Publish
	// returns an error (ctx done included) some of msgs may still have been
	// stored: publish again with the same IdempotencyKey.
	Publish(ctx context.Context, topic string, msgs ...Message) error
	// Subscribe attaches a consumer.
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)
	// Close flushes and releases resources within ctx's deadline.
	Close(ctx context.Context) error
}

// Checker is implemented by buses that can tell whether they can publish
// now (readiness): the Pulsar bus asks its broker, the local bus its
// database.
type Checker interface {
	// Check returns nil when a Publish could succeed now, or why not.
	Check(ctx context.Context) error
}

// Check reports whether b can publish now, when b is a Checker (a bus that
// cannot tell is taken as ready).
func Check(ctx context.Context, b Bus) error {
	if c, ok := b.(Checker); ok {
		return c.Check(ctx)
	}
	return nil
}

// Sentinel errors of the bus.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("bus: closed")
	// ErrAlreadyAcked is returned by a second Ack or Nack of one delivery.
	ErrAlreadyAcked = errors.New("bus: delivery already acknowledged")
	// ErrDeliveryExpired is returned by Ack or Nack of a delivery whose
	// processing deadline passed or whose consumer closed: the message was
	// (or will be) redelivered, and the late Ack/Nack changed nothing.
	ErrDeliveryExpired = errors.New("bus: delivery expired")
)

// HeaderDeadLetterCause and friends are set on dead-lettered messages: the
// cause of the last failure, the number of deliveries, the original topic
// and the time (RFC 3339) the message was dead-lettered.
const (
	HeaderDeadLetterCause    = "mzhub-dlq-cause"
	HeaderDeadLetterAttempts = "mzhub-dlq-attempts"
	HeaderDeadLetterTopic    = "mzhub-dlq-original-topic"
	HeaderDeadLetterAt       = "mzhub-dlq-at"
)
