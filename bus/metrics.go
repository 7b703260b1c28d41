package bus

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics both bus implementations keep. Labels:
// bus ("local" or "pulsar"), topic and subscription, all bounded by the
// configured routes.
type Metrics struct {
	// Published counts messages whose Publish returned nil.
	Published *prometheus.CounterVec // bus, topic
	// Acked counts acknowledged deliveries.
	Acked *prometheus.CounterVec // bus, topic, subscription
	// Nacked counts deliveries returned with Nack.
	Nacked *prometheus.CounterVec // bus, topic, subscription
	// Expired counts deliveries redelivered because their processing
	// deadline passed or their consumer closed without acking them.
	Expired *prometheus.CounterVec // bus, topic, subscription
	// DeadLettered counts messages moved to a dead-letter topic.
	DeadLettered *prometheus.CounterVec // bus, topic, subscription
}

// NewMetrics creates the bus metrics and registers them on reg (nil: not
// registered). Registering twice on one registry reuses the collectors
// already there, so several buses can share a registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_bus_published_total", Help: "Messages durably published on the bus.",
		}, []string{"bus", "topic"}),
		Acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_bus_acked_total", Help: "Deliveries acknowledged by consumers.",
		}, []string{"bus", "topic", "subscription"}),
		Nacked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_bus_nacked_total", Help: "Deliveries returned for redelivery by consumers (Nack).",
		}, []string{"bus", "topic", "subscription"}),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_bus_expired_total", Help: "Deliveries redelivered after their processing deadline or their consumer's close.",
		}, []string{"bus", "topic", "subscription"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_bus_dead_lettered_total", Help: "Messages moved to a dead-letter topic after MaxDeliveries.",
		}, []string{"bus", "topic", "subscription"}),
	}
	if reg == nil {
		return m
	}
	m.Published = register(reg, m.Published)
	m.Acked = register(reg, m.Acked)
	m.Nacked = register(reg, m.Nacked)
	m.Expired = register(reg, m.Expired)
	m.DeadLettered = register(reg, m.DeadLettered)
	return m
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		// A different collector under the same name is a programming
		// error; keep counting unregistered rather than fail the bus.
	}
	return c
}

// SubscriptionCounters are the per-subscription counters, resolved once.
type SubscriptionCounters struct {
	Acked, Nacked, Expired, DeadLettered prometheus.Counter
}

// For returns the counters of one subscription of one bus.
func (m *Metrics) For(busName, topic, subscription string) SubscriptionCounters {
	return SubscriptionCounters{
		Acked:        m.Acked.WithLabelValues(busName, topic, subscription),
		Nacked:       m.Nacked.WithLabelValues(busName, topic, subscription),
		Expired:      m.Expired.WithLabelValues(busName, topic, subscription),
		DeadLettered: m.DeadLettered.WithLabelValues(busName, topic, subscription),
	}
}
