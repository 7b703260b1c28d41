// Package bus defines the message bus between connector sources and sinks.
// Two implementations satisfy it: routes/bus/local (embedded, durable in the
// hub's SQLite state file) and routes/bus/pulsar (Apache Pulsar, cluster
// profile). Both pass the shared suite in routes/bus/bustest.
package bus

import (
	"context"
	"errors"
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
	// Body is the payload. The bus owns it after Publish; a consumer owns
	// the Body of a Delivery it received.
	Body []byte
	// PublishedAt is set by the bus on publish.
	PublishedAt time.Time
}

// Delivery is a message handed to a consumer. Exactly one of Ack or Nack must
// be called for every delivery; a delivery that is neither acked nor nacked
// before its processing deadline (or before the consumer closes or crashes)
// is redelivered.
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
	Nack(ctx context.Context, delay time.Duration, cause error) error
}

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// Topic to consume.
	Topic string
	// Subscription name; consumers sharing a name share the work.
	Subscription string
	// MaxDeliveries before a message is dead-lettered (0 means never).
	MaxDeliveries int
	// DeadLetterTopic receives messages that exhausted MaxDeliveries;
	// default Topic + ".dlq".
	DeadLetterTopic string
	// ProcessingDeadline is how long a delivery may stay unacknowledged
	// before it is redelivered (the consumer is presumed stuck).
	ProcessingDeadline time.Duration
	// Prefetch bounds deliveries buffered per consumer (back pressure).
	Prefetch int
}

// Subscription is a consumer attached to a subscription.
type Subscription interface {
	// Receive blocks until a delivery is available or ctx is done.
	Receive(ctx context.Context) (Delivery, error)
	// Close detaches the consumer; unacknowledged deliveries are redelivered.
	Close(ctx context.Context) error
}

// Bus publishes and subscribes. Implementations are safe for concurrent use.
type Bus interface {
	// Publish stores msgs durably; when it returns nil every message will be
	// delivered at least once to every subscription of the topic. A source
	// acknowledges its partner only after Publish returned nil.
	Publish(ctx context.Context, topic string, msgs ...Message) error
	// Subscribe attaches a consumer.
	Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error)
	// Close flushes and releases resources within ctx's deadline.
	Close(ctx context.Context) error
}

// Sentinel errors of the bus.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("bus: closed")
	// ErrAlreadyAcked is returned by a second Ack or Nack of one delivery.
	ErrAlreadyAcked = errors.New("bus: delivery already acknowledged")
)

// HeaderDeadLetterCause and friends are set on dead-lettered messages.
const (
	HeaderDeadLetterCause    = "mzhub-dlq-cause"
	HeaderDeadLetterAttempts = "mzhub-dlq-attempts"
	HeaderDeadLetterTopic    = "mzhub-dlq-original-topic"
	HeaderDeadLetterAt       = "mzhub-dlq-at"
)
