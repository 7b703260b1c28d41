package local

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
)

// Option tunes Open.
type Option func(*options)

type options struct {
	reg prometheus.Registerer
}

// WithRegisterer registers the bus metrics (bus.Metrics, plus
// mzhub_bus_pending_messages and mzhub_bus_commit_seconds) on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// collector reports the pending messages per subscription at scrape time.
type collector struct {
	b    *Bus
	desc *prometheus.Desc
}

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.b.mu.RLock()
	subs := make([]*subscription, 0, len(c.b.subs))
	for _, s := range c.b.subs {
		subs = append(subs, s)
	}
	c.b.mu.RUnlock()
	for _, s := range subs {
		s.mu.Lock()
		n := s.pendingCount
		s.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s.topic, s.name)
	}
}

func (b *Bus) registerMetrics(reg prometheus.Registerer) {
	b.metrics = bus.NewMetrics(reg)
	b.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "mzhub_bus_commit_seconds",
		Help:        "Duration of the local bus's group commits (publishes, acks, nacks, dead letters).",
		ConstLabels: prometheus.Labels{"bus": "local"},
		Buckets:     prometheus.ExponentialBuckets(0.0002, 2, 14),
	})
	if reg == nil {
		return
	}
	_ = reg.Register(b.commitSeconds)
	_ = reg.Register(collector{b: b, desc: prometheus.NewDesc("mzhub_bus_pending_messages",
		"Messages not yet acknowledged, per subscription.", []string{"topic", "subscription"},
		prometheus.Labels{"bus": "local"})})
}
