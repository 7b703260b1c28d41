package bus

import (
	"errors"
	"fmt"
	"time"
)

// Config selects the bus implementation.
type Config struct {
	// Kind is "local" (embedded, durable in the state database) or "pulsar".
	Kind string `yaml:"kind"`
	// Local tunes the embedded bus.
	Local LocalConfig `yaml:"local"`
	// Pulsar configures the Apache Pulsar bus (cluster profile).
	Pulsar PulsarConfig `yaml:"pulsar"`
	// SealBodies encrypts every message body at rest (SM4-GCM under the active field key): in the
	// local bus's database, in Pulsar, and in the route engine's dead letters. Consumers see the body
	// as published. Keep retired field keys until no message or dead letter sealed with them is left.
	SealBodies bool `yaml:"seal_bodies"`
}

// LocalConfig tunes the embedded durable bus.
type LocalConfig struct {
	// CommitInterval is the longest an ack or nack waits before it is
	// committed (acks are batched; a crash before the commit means one
	// redelivery). Publishes never wait for it: each commit takes every
	// Publish waiting when it starts (group commit).
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MaxBatch caps the messages written in one commit; as many acks
	// waiting commit at once without waiting for CommitInterval.
	MaxBatch int `yaml:"max_batch"`
	// CacheBytes bounds the message bodies the bus keeps in memory for
	// dispatch. Bodies beyond it, and every body after a restart, are read
	// from the database when delivered, so a backlog of millions of messages
	// costs memory only for its index (ids, keys, headers). 0 keeps no body
	// in memory.
	CacheBytes int64 `yaml:"cache_bytes"`
}

// PulsarConfig configures the Pulsar bus.
type PulsarConfig struct {
	// URL of the broker service, e.g. pulsar://127.0.0.1:6650.
	URL string `yaml:"url"`
	// Tenant owning the hub's namespaces.
	Tenant string `yaml:"tenant"`
	// Namespace is the default namespace (one per business line is configured per route).
	Namespace string `yaml:"namespace"`
	// Token authenticates to the broker; set it with MZHUB_BUS_PULSAR_TOKEN.
	Token string `yaml:"token"`
	// OperationTimeout bounds producer and consumer operations.
	OperationTimeout time.Duration `yaml:"operation_timeout"`
	// MemoryLimitBytes caps the messages each of the two clients (produce,
	// consume) buffers.
	MemoryLimitBytes int64 `yaml:"memory_limit_bytes"`
	// ProducerName is the stable prefix of this replica's producer names
	// (the topic is appended), so broker deduplication recognises a producer
	// that reconnects or restarts. Leave it empty: the hub uses the
	// replica's node name, which it claims at start so that no two live
	// replicas share it. Replicas need distinct names.
	ProducerName string `yaml:"producer_name"`
	// KeyBuckets hashes message keys into this many Pulsar keys, which
	// Key_Shared dispatches on and the key-based batcher groups by (0: the
	// message key itself). Order per key holds either way (a key always maps
	// to one bucket). Buckets let many keys share a batch, which is what
	// makes keyed traffic fast; they bound how many consumers can share one
	// subscription's work (a bucket goes to one consumer at a time), not how
	// many keys are in flight. At most 4096.
	KeyBuckets int `yaml:"key_buckets"`
}

// DefaultConfig returns the embedded-profile defaults.
func DefaultConfig() Config {
	return Config{
		Kind:       "local",
		SealBodies: true,
		Local:      LocalConfig{CommitInterval: 2 * time.Millisecond, MaxBatch: 512, CacheBytes: 64 << 20},
		Pulsar: PulsarConfig{
			Tenant:           "mzhub",
			Namespace:        "exchange",
			OperationTimeout: 30 * time.Second,
			MemoryLimitBytes: 64 << 20,
			KeyBuckets:       16,
		},
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	switch c.Kind {
	case "local":
		if c.Local.MaxBatch < 1 {
			errs = append(errs, fmt.Errorf("bus.local.max_batch: %d: must be at least 1", c.Local.MaxBatch))
		}
		if c.Local.CommitInterval < 0 {
			errs = append(errs, errors.New("bus.local.commit_interval: must not be negative"))
		}
		if c.Local.CacheBytes < 0 {
			errs = append(errs, errors.New("bus.local.cache_bytes: must not be negative"))
		}
	case "pulsar":
		if c.Pulsar.URL == "" {
			errs = append(errs, errors.New("bus.pulsar.url: required for kind pulsar"))
		}
		if c.Pulsar.Tenant == "" || c.Pulsar.Namespace == "" {
			errs = append(errs, errors.New("bus.pulsar.tenant and bus.pulsar.namespace: required for kind pulsar"))
		}
		if c.Pulsar.KeyBuckets < 0 || c.Pulsar.KeyBuckets > 4096 {
			errs = append(errs, fmt.Errorf("bus.pulsar.key_buckets: %d: want 0 to 4096", c.Pulsar.KeyBuckets))
		}
		if c.Pulsar.OperationTimeout < 0 || c.Pulsar.MemoryLimitBytes < 0 {
			errs = append(errs, errors.New("bus.pulsar.operation_timeout and bus.pulsar.memory_limit_bytes: must not be negative"))
		}
	default:
		errs = append(errs, fmt.Errorf("bus.kind: %q: want local or pulsar", c.Kind))
	}
	return errors.Join(errs...)
}
