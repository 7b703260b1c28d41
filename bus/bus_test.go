package bus_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/bus"
)

func TestDefaultConfig(t *testing.T) {
	c := bus.DefaultConfig()
	if c.Local.CacheBytes <= 0 || c.Local.MaxBatch <= 0 || c.Local.CommitInterval <= 0 || c.Pulsar.KeyBuckets <= 0 {
		t.Errorf("DefaultConfig() = %+v: a tuning default is missing", c)
	}
}

func TestConfigValidate(t *testing.T) {
	pulsarOK := bus.DefaultConfig()
	pulsarOK.Kind = "pulsar"
	pulsarOK.Pulsar.URL = "pulsar://127.0.0.1:6650"
	for _, tc := range []struct {
		name string
		edit func(*bus.Config)
		ok   bool
	}{
		{"default", func(*bus.Config) {}, true},
		{"pulsar", func(c *bus.Config) { *c = pulsarOK }, true},
		{"unknown kind", func(c *bus.Config) { c.Kind = "kafka" }, false},
		{"zero batch", func(c *bus.Config) { c.Local.MaxBatch = 0 }, false},
		{"negative interval", func(c *bus.Config) { c.Local.CommitInterval = -time.Millisecond }, false},
		{"pulsar without url", func(c *bus.Config) { c.Kind = "pulsar" }, false},
		{"pulsar without namespace", func(c *bus.Config) { *c = pulsarOK; c.Pulsar.Namespace = "" }, false},
		{"too many buckets", func(c *bus.Config) { *c = pulsarOK; c.Pulsar.KeyBuckets = 5000 }, false},
		{"negative timeout", func(c *bus.Config) { *c = pulsarOK; c.Pulsar.OperationTimeout = -1 }, false},
		{"negative cache", func(c *bus.Config) { c.Local.CacheBytes = -1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bus.DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestSubscribeOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bus.SubscribeOptions
		ok   bool
	}{
		{"ok", bus.SubscribeOptions{Topic: "t", Subscription: "s"}, true},
		{"no topic", bus.SubscribeOptions{Subscription: "s"}, false},
		{"no name", bus.SubscribeOptions{Topic: "t"}, false},
		{"negative max", bus.SubscribeOptions{Topic: "t", Subscription: "s", MaxDeliveries: -1}, false},
		{"negative deadline", bus.SubscribeOptions{Topic: "t", Subscription: "s", ProcessingDeadline: -1}, false},
		{"negative prefetch", bus.SubscribeOptions{Topic: "t", Subscription: "s", Prefetch: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	d := bus.SubscribeOptions{Topic: "t", Subscription: "s"}.WithDefaults()
	if d.DeadLetterTopic != "t.dlq" || d.Prefetch != bus.DefaultPrefetch || d.ProcessingDeadline != bus.DefaultProcessingDeadline {
		t.Errorf("WithDefaults() = %+v", d)
	}
}

func TestMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := bus.NewMetrics(reg), bus.NewMetrics(reg)
	a.Published.WithLabelValues("local", "t").Inc()
	b.Published.WithLabelValues("local", "t").Inc()
	if got := testutil.ToFloat64(a.Published.WithLabelValues("local", "t")); got != 2 {
		t.Errorf("two buses on one registry: published = %v, want 2", got)
	}
}
