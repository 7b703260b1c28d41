package pulsar

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
)

// Interface guards.
var (
	_ bus.Bus          = (*Bus)(nil)
	_ bus.Subscription = (*Consumer)(nil)
	_ bus.Delivery     = (*delivery)(nil)
)

// Properties the bus reserves on Pulsar messages.
const (
	// PropIdempotencyKey carries Message.IdempotencyKey.
	PropIdempotencyKey = "mzhub-idempotency-key"
	// PropKey carries Message.Key; the Pulsar key is the ordering bucket.
	PropKey = "mzhub-key"
)

// Tuning that is not configuration (change with a benchmark in hand).
const (
	batchingDelay       = time.Millisecond
	batchingMaxMessages = 1000
	batchingMaxBytes    = 1 << 20
	maxPendingMessages  = 20000
	nackRedeliveryDelay = 20 * time.Millisecond
	unkeyedBuckets      = 16
	maxKeyBuckets       = 4096
)

// bucketKeys are the ordering keys of hashed buckets ("~b0", "~b1", ...).
var bucketKeys = func() []string {
	k := make([]string, maxKeyBuckets)
	for i := range k {
		k[i] = "~b" + strconv.Itoa(i)
	}
	return k
}()

// Bus is the Pulsar bus. It keeps two clients (connections, memory limit):
// one for producers and one for consumers, so a consumer backlog never
// starves publishing. Create it with Open; safe for concurrent use.
type Bus struct {
	cfg      bus.PulsarConfig
	log      *slog.Logger
	pub, sub pulsar.Client
	instance string

	mu        sync.Mutex
	producers map[string]*producerSlot // by full topic
	consumers map[*Consumer]struct{}
	closed    bool

	unkeyed atomic.Uint64
	metrics *bus.Metrics
}

// Option tunes Open.
type Option func(*options)

type options struct {
	reg prometheus.Registerer
}

// WithRegisterer registers the bus metrics (bus.Metrics) on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

type producerSlot struct {
	once sync.Once
	p    pulsar.Producer
	err  error
}

// Open connects the producer and consumer clients to cfg.URL. It does not
// create tenants or namespaces (deploy/pulsar/setup.sh, or EnsureNamespace).
// log may be nil.
func Open(ctx context.Context, cfg bus.PulsarConfig, log *slog.Logger, opts ...Option) (*Bus, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bus", "bus", "pulsar")
	instance := cfg.ProducerName
	if instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "mzhub"
		}
		instance = h
	}
	b := &Bus{
		cfg:       cfg,
		log:       log,
		instance:  instance,
		producers: map[string]*producerSlot{},
		consumers: map[*Consumer]struct{}{},
		metrics:   bus.NewMetrics(o.reg),
	}
	var err error
	if b.pub, err = newClient(cfg, log.With("client", "produce")); err != nil {
		return nil, fmt.Errorf("pulsar bus: producer client %s: %w", cfg.URL, err)
	}
	if b.sub, err = newClient(cfg, log.With("client", "consume")); err != nil {
		b.pub.Close()
		return nil, fmt.Errorf("pulsar bus: consumer client %s: %w", cfg.URL, err)
	}
	return b, nil
}

// Validate reports every problem of cfg for this implementation. No I/O.
func Validate(cfg bus.PulsarConfig) error {
	var errs []error
	if cfg.URL == "" {
		errs = append(errs, errors.New("pulsar bus: url required"))
	} else if !strings.HasPrefix(cfg.URL, "pulsar://") && !strings.HasPrefix(cfg.URL, "pulsar+ssl://") {
		errs = append(errs, fmt.Errorf("pulsar bus: url %q: want pulsar:// or pulsar+ssl://", cfg.URL))
	}
	if cfg.Tenant == "" || cfg.Namespace == "" {
		errs = append(errs, errors.New("pulsar bus: tenant and namespace required"))
	}
	if cfg.OperationTimeout < 0 || cfg.MemoryLimitBytes < 0 {
		errs = append(errs, errors.New("pulsar bus: operation_timeout and memory_limit_bytes must not be negative"))
	}
	if cfg.KeyBuckets < 0 || cfg.KeyBuckets > maxKeyBuckets {
		errs = append(errs, fmt.Errorf("pulsar bus: key_buckets %d: want 0 to %d", cfg.KeyBuckets, maxKeyBuckets))
	}
	return errors.Join(errs...)
}

func newClient(cfg bus.PulsarConfig, log *slog.Logger) (pulsar.Client, error) {
	opts := pulsar.ClientOptions{
		URL:               cfg.URL,
		OperationTimeout:  cfg.OperationTimeout,
		ConnectionTimeout: 10 * time.Second,
		MemoryLimitBytes:  cfg.MemoryLimitBytes,
		Logger:            plog.NewLoggerWithSlog(quietLogger(log)),
		// The client reconnects with back-off forever (MaxConnectionsPerBroker
		// 1 keeps one TCP connection per broker and client).
		MaxConnectionsPerBroker: 1,
	}
	if cfg.Token != "" {
		opts.Authentication = pulsar.NewAuthenticationToken(cfg.Token)
	}
	return pulsar.NewClient(opts)
}

// quietLogger drops the client's info chatter (connections, lookups) and
// keeps warnings and errors, reconnects included.
func quietLogger(log *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{log.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(n), f.min}
}

// Check asks the broker for the metadata of the hub's health topic: it
// fails while the broker cannot be reached (readiness).
func (b *Bus) Check(ctx context.Context) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.pub.TopicPartitions(fullTopic(b.cfg, "mzhub.health"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("pulsar %s: %w", b.cfg.URL, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pulsar %s: no answer: %w", b.cfg.URL, ctx.Err())
	}
}

// FullTopic maps a bus topic to a Pulsar topic name: "name" lives in the
// configured default namespace (persistent://tenant/namespace/name),
// "ns/name" in namespace ns of the tenant (one namespace per business line),
// "tenant/ns/name" is taken as is, and a full persistent:// or
// non-persistent:// name is used unchanged.
func (b *Bus) FullTopic(topic string) string { return fullTopic(b.cfg, topic) }

func fullTopic(cfg bus.PulsarConfig, topic string) string {
	if strings.Contains(topic, "://") {
		return topic
	}
	switch strings.Count(topic, "/") {
	case 0:
		return "persistent://" + cfg.Tenant + "/" + cfg.Namespace + "/" + topic
	case 1:
		return "persistent://" + cfg.Tenant + "/" + topic
	default:
		return "persistent://" + topic
	}
}

// producer returns the producer of a full topic, creating it once. Its name
// is stable (instance + topic) so that broker deduplication recognises a
// reconnecting or restarted producer and drops the messages it already has.
func (b *Bus) producerFor(ctx context.Context, full string, internal bool) (pulsar.Producer, error) {
	b.mu.Lock()
	if b.closed && !internal {
		b.mu.Unlock()
		return nil, bus.ErrClosed
	}
	slot := b.producers[full]
	if slot == nil {
		slot = &producerSlot{}
		b.producers[full] = slot
	}
	b.mu.Unlock()
	slot.once.Do(func() {
		slot.p, slot.err = b.pub.CreateProducer(pulsar.ProducerOptions{
			Topic:                   full,
			Name:                    b.instance + "." + strings.ReplaceAll(strings.TrimPrefix(full, "persistent://"), "/", "."),
			SendTimeout:             b.cfg.OperationTimeout,
			MaxPendingMessages:      maxPendingMessages,
			BatcherBuilderType:      pulsar.KeyBasedBatchBuilder,
			BatchingMaxPublishDelay: batchingDelay,
			BatchingMaxMessages:     batchingMaxMessages,
			BatchingMaxSize:         batchingMaxBytes,
		})
	})
	if slot.err != nil {
		// Forget the failed slot so that the next Publish tries again.
		b.mu.Lock()
		if b.producers[full] == slot {
			delete(b.producers, full)
		}
		b.mu.Unlock()
		return nil, slot.err
	}
	return slot.p, nil
}

// Publish sends msgs and returns once the broker persisted every one (or the
// first error). Messages of one key are batched together (key-based batch
// builder); unkeyed messages are spread over a few ordering buckets so that
// Key_Shared consumers share them.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if topic == "" {
		return errors.New("pulsar bus: publish: topic required")
	}
	if len(msgs) == 0 {
		return nil
	}
	full := fullTopic(b.cfg, topic)
	p, err := b.producerFor(ctx, full, false)
	if err != nil {
		if errors.Is(err, bus.ErrClosed) {
			return err
		}
		return fmt.Errorf("pulsar bus: publish %s: producer: %w", full, err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	wg.Add(len(msgs))
	for _, m := range msgs {
		p.SendAsync(ctx, b.producerMessage(m), func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pulsar bus: publish %s: %w", full, ctx.Err())
	}
	if firstErr != nil {
		return fmt.Errorf("pulsar bus: publish %s: %w", full, firstErr)
	}
	b.metrics.Published.WithLabelValues("pulsar", topic).Add(float64(len(msgs)))
	return nil
}

func (b *Bus) producerMessage(m bus.Message) *pulsar.ProducerMessage {
	props := make(map[string]string, len(m.Headers)+2)
	for k, v := range m.Headers {
		props[k] = v
	}
	if m.IdempotencyKey != "" {
		props[PropIdempotencyKey] = m.IdempotencyKey
	}
	props[PropKey] = m.Key
	// The Pulsar key decides Key_Shared dispatch and key-based batching. It
	// must be the partition key, not an ordering key: a batch's outer
	// metadata carries only the partition key of its first message, and the
	// broker dispatches whole batches by it.
	pk := m.Key
	switch {
	case m.Key == "":
		pk = bucketKeys[b.unkeyed.Add(1)%unkeyedBuckets]
	case b.cfg.KeyBuckets > 0:
		h := fnv.New32a()
		_, _ = h.Write([]byte(m.Key))
		pk = bucketKeys[h.Sum32()%uint32(min(b.cfg.KeyBuckets, len(bucketKeys)))]
	}
	return &pulsar.ProducerMessage{Payload: m.Body, Key: pk, Properties: props}
}

// Subscribe creates (or joins) a Key_Shared subscription starting at the
// earliest retained message.
func (b *Bus) Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, bus.ErrClosed
	}
	c, err := newConsumer(ctx, b, opts)
	if err != nil {
		return nil, fmt.Errorf("pulsar bus: subscribe %s/%s: %w", opts.Topic, opts.Subscription, err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.shutdown(false)
		return nil, bus.ErrClosed
	}
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	return c, nil
}

// Close closes consumers (their unacked messages are redelivered by the
// broker), flushes and closes producers, and closes both clients.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	consumers := make([]*Consumer, 0, len(b.consumers))
	for c := range b.consumers {
		consumers = append(consumers, c)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range consumers {
			c.shutdown(true)
		}
		b.mu.Lock()
		slots := make([]*producerSlot, 0, len(b.producers))
		for _, s := range b.producers {
			slots = append(slots, s)
		}
		b.mu.Unlock()
		for _, s := range slots {
			s.once.Do(func() {}) // wait for a creation in progress
			if s.p != nil {
				_ = s.p.FlushWithCtx(ctx)
				s.p.Close()
			}
		}
		b.sub.Close()
		b.pub.Close()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pulsar bus: close: %w", ctx.Err())
	}
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Bus) forget(c *Consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}
