package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the mzhub_exchange_* and mzhub_monitor_* Prometheus metrics.
// Labels are bounded: partner and flow come from configuration; ids and file
// names stay in the event store.
type Metrics struct {
	events      *prometheus.CounterVec
	exchanges   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	bytes       *prometheus.CounterVec
	records     *prometheus.CounterVec
	retries     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec

	buffered      prometheus.Gauge
	lag           prometheus.Gauge
	dropped       prometheus.Counter
	flushes       *prometheus.CounterVec
	flushDuration prometheus.Histogram
	stored        prometheus.Counter

	// shapes caches the metric children of each event shape (partner,
	// flow, direction, type, status): resolving labels costs more than
	// counting. Only the writer goroutine calls observe, so no lock.
	shapes map[shape]*shapeMetrics
	// last holds the newest success per partner flow, shared by its shapes.
	last map[[2]string]*float64
}

// shape is what selects an event's metric children.
type shape struct {
	partner, flow string
	dir           Direction
	typ           EventType
	status        Status
}

// shapeMetrics are the metric children of one shape, resolved lazily.
type shapeMetrics struct {
	events, exchanges      prometheus.Counter
	duration               prometheus.Observer
	bytes                  prometheus.Counter
	recordsOK, recordsFail prometheus.Counter
	retries, deadLetters   prometheus.Counter
	lastSuccess            prometheus.Gauge
	outcome                string
	last                   *float64 // newest success of the partner flow, shared by its shapes
}

// maxShapes bounds the cache; beyond it the cache starts over (the metric
// series themselves are bounded by their labels, as before).
const maxShapes = 50000

// NewMetrics creates the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		shapes: map[shape]*shapeMetrics{},
		last:   map[[2]string]*float64{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchange_events_total",
			Help: "Exchange events by flow, direction, step type and status.",
		}, []string{"flow", "direction", "type", "status"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchanges_total",
			Help: "Finished exchange steps (sent, uploaded, received, downloaded, fetched, reconciled, failed, dead-lettered, dropped) by partner, flow, direction and outcome.",
		}, []string{"partner", "flow", "direction", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mzhub_exchange_duration_seconds",
			Help:    "Duration of exchange steps that report one.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"flow", "direction", "type"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchange_bytes_total",
			Help: "Bytes exchanged by flow and direction.",
		}, []string{"flow", "direction"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchange_records_total",
			Help: "Records exchanged by flow, direction and result (ok or failed).",
		}, []string{"flow", "direction", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchange_retries_total",
			Help: "Retried exchange steps by partner and flow.",
		}, []string{"partner", "flow"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_exchange_dead_letters_total",
			Help: "Dead-lettered exchanges by partner and flow.",
		}, []string{"partner", "flow"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mzhub_exchange_last_success_timestamp_seconds",
			Help: "Unix time of the last successful exchange step per partner and flow.",
		}, []string{"partner", "flow"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mzhub_monitor_writer_buffered_events",
			Help: "Events held by the event writer, waiting to be stored.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mzhub_monitor_writer_lag_seconds",
			Help: "Age of the oldest event the writer has not stored yet (0 when empty).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mzhub_monitor_writer_dropped_events_total",
			Help: "Events dropped because the writer's buffer was full (the store was down too long).",
		}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_monitor_writer_flushes_total",
			Help: "Batches written to the event store by outcome (ok or error).",
		}, []string{"outcome"}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mzhub_monitor_writer_flush_duration_seconds",
			Help:    "Time to write one batch to the event store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mzhub_monitor_writer_stored_events_total",
			Help: "Events written to the event store.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.exchanges, m.duration, m.bytes, m.records, m.retries,
			m.deadLetters, m.lastSuccess, m.buffered, m.lag, m.dropped, m.flushes, m.flushDuration, m.stored)
	}
	return m
}

// outcomeOf maps a step to the outcome label of mzhub_exchanges_total; ""
// for intermediate steps that do not finish an exchange.
func outcomeOf(ev *Event) string {
	switch ev.Type {
	case Sent, Uploaded, Received, Downloaded, Fetched, Reconciled:
		if ev.Status == Error {
			return "error"
		}
		return "ok"
	case Failed, Rejected:
		return "error"
	case DeadLettered:
		return "dead_lettered"
	case Dropped:
		return "dropped"
	}
	return ""
}

// shapeOf returns the cached metric children of ev's shape.
func (m *Metrics) shapeOf(ev *Event) *shapeMetrics {
	k := shape{ev.Partner, ev.Flow, ev.Direction, ev.Type, ev.Status}
	if sm := m.shapes[k]; sm != nil {
		return sm
	}
	if len(m.shapes) >= maxShapes {
		clear(m.shapes)
	}
	dir := string(ev.Direction)
	sm := &shapeMetrics{
		events:  m.events.WithLabelValues(ev.Flow, dir, string(ev.Type), string(ev.Status)),
		outcome: outcomeOf(ev),
	}
	if sm.outcome != "" {
		sm.exchanges = m.exchanges.WithLabelValues(ev.Partner, ev.Flow, dir, sm.outcome)
	}
	sm.duration = m.duration.WithLabelValues(ev.Flow, dir, string(ev.Type))
	sm.bytes = m.bytes.WithLabelValues(ev.Flow, dir)
	sm.recordsOK = m.records.WithLabelValues(ev.Flow, dir, "ok")
	sm.recordsFail = m.records.WithLabelValues(ev.Flow, dir, "failed")
	switch ev.Type {
	case Retried:
		sm.retries = m.retries.WithLabelValues(ev.Partner, ev.Flow)
	case DeadLettered:
		sm.deadLetters = m.deadLetters.WithLabelValues(ev.Partner, ev.Flow)
	}
	if ev.Status == OK && sm.outcome == "ok" {
		sm.lastSuccess = m.lastSuccess.WithLabelValues(ev.Partner, ev.Flow)
		// One newest-success time per partner flow, whatever the shape.
		pf := [2]string{ev.Partner, ev.Flow}
		if m.last[pf] == nil {
			m.last[pf] = new(float64)
		}
		sm.last = m.last[pf]
	}
	m.shapes[k] = sm
	return sm
}

// observe counts one event.
func (m *Metrics) observe(ev *Event) {
	sm := m.shapeOf(ev)
	sm.events.Inc()
	if sm.exchanges != nil {
		sm.exchanges.Inc()
	}
	if ev.Duration > 0 {
		sm.duration.Observe(ev.Duration.Seconds())
	}
	if ev.Bytes > 0 {
		sm.bytes.Add(float64(ev.Bytes))
	}
	if ev.Records > 0 && (ev.Type == Sent || ev.Type == Uploaded || ev.Type == Received || ev.Type == Downloaded || ev.Type == Fetched) {
		if ok := ev.Records - ev.RecordsFailed; ok > 0 {
			sm.recordsOK.Add(float64(ok))
		}
		if ev.RecordsFailed > 0 {
			sm.recordsFail.Add(float64(ev.RecordsFailed))
		}
	}
	if sm.retries != nil {
		sm.retries.Inc()
	}
	if sm.deadLetters != nil {
		sm.deadLetters.Inc()
	}
	if sm.lastSuccess != nil {
		// Events may arrive slightly out of order: keep the newest.
		if ts := float64(ev.Time.UnixMilli()) / 1000; ts > *sm.last {
			*sm.last = ts
			sm.lastSuccess.Set(ts)
		}
	}
}

func (m *Metrics) flushed(n int, d time.Duration, err error) {
	m.flushDuration.Observe(d.Seconds())
	if err != nil {
		m.flushes.WithLabelValues("error").Inc()
		return
	}
	m.flushes.WithLabelValues("ok").Inc()
	m.stored.Add(float64(n))
}

// Dropped is the counter of dropped events (for tests and the console).
func (m *Metrics) Dropped() prometheus.Counter { return m.dropped }

// Events is the per-step event counter (for tests).
func (m *Metrics) Events() *prometheus.CounterVec { return m.events }
