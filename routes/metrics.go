package routes

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the route engine. Labels are route ids and sink names from the
// configuration: bounded.
type metrics struct {
	received   *prometheus.CounterVec
	handled    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	inDoubt    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	reloads    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_routes_received_total", Help: "Messages a route's source published on the bus.",
		}, []string{"route"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_routes_handled_total", Help: "Deliveries taken from the bus by outcome (ok, filtered, retried, dead_lettered).",
		}, []string{"route", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_routes_sink_deliveries_total", Help: "Sink deliveries by outcome (sent, failed, duplicate_skipped).",
		}, []string{"route", "sink", "outcome"}),
		inDoubt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mzhub_routes_in_doubt_total",
			Help: "Sink deliveries in doubt by outcome: parked (a send's outcome unknown, claim kept), delivered / not_delivered (the status endpoint answered), status_unknown (it did not), resent_unchecked (resend_in_doubt), dead_lettered.",
		}, []string{"route", "sink", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mzhub_routes_handle_duration_seconds", Help: "Time from taking a delivery off the bus to settling it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mzhub_routes_reloads_total", Help: "Route directory changes seen by hot reload.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.received, m.handled, m.deliveries, m.inDoubt, m.duration, m.reloads} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
