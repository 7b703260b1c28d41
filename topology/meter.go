package topology

import "strings"

// Meter says which counters of the hub's metrics count an edge's messages
// and its errors. The zero Meter means the hub cannot see the edge.
type Meter struct {
	// Count are the series whose sum counts the messages across the edge.
	Count []Series
	// Errors are the series whose sum counts the edge's failures.
	Errors []Series
}

// Metered tells whether the meter counts anything.
func (m Meter) Metered() bool { return len(m.Count) > 0 }

// Series selects the series of a counter: every label listed must have one
// of its values (a value ending in * matches a prefix); labels not listed
// match anything.
type Series struct {
	// Metric is the counter's name.
	Metric string
	// Labels maps a label to the values it may have.
	Labels map[string][]string
}

// matches tells whether a series with labels ls is selected.
func (s Series) matches(ls map[string]string) bool {
	for name, want := range s.Labels {
		v, ok := ls[name]
		if !ok {
			return false
		}
		hit := false
		for _, w := range want {
			if p, prefix := strings.CutSuffix(w, "*"); prefix && strings.HasPrefix(v, p) || w == v {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// The counters meters read (each bounded by configuration: route ids,
// sink names, topics, partners and flows).
const (
	metricRouteReceived   = "mzhub_routes_received_total"
	metricRouteHandled    = "mzhub_routes_handled_total"
	metricRouteDeliveries = "mzhub_routes_sink_deliveries_total"
	metricBusPublished    = "mzhub_bus_published_total"
	metricBusAcked        = "mzhub_bus_acked_total"
	metricBusNacked       = "mzhub_bus_nacked_total"
	metricBusDeadLettered = "mzhub_bus_dead_lettered_total"
	metricExchanges       = "mzhub_exchanges_total"
)

// meteredMetrics are the families Live keeps.
var meteredMetrics = map[string]bool{
	metricRouteReceived: true, metricRouteHandled: true, metricRouteDeliveries: true, metricBusPublished: true,
	metricBusAcked: true, metricBusNacked: true, metricBusDeadLettered: true, metricExchanges: true,
}

func one(v ...string) []string { return v }

// routeInMeter meters the way into a route: what its source emitted (a
// partner's source) or what it settled from the topic (a bus source), and
// what it dead-lettered.
func routeInMeter(route string, fromBus bool) Meter {
	m := Meter{Errors: []Series{{Metric: metricRouteHandled, Labels: map[string][]string{"route": one(route), "outcome": one("dead_lettered")}}}}
	if fromBus {
		m.Count = []Series{{Metric: metricRouteHandled, Labels: map[string][]string{"route": one(route), "outcome": one("ok", "filtered", "dead_lettered")}}}
	} else {
		m.Count = []Series{{Metric: metricRouteReceived, Labels: map[string][]string{"route": one(route)}}}
	}
	return m
}

// sinkMeter meters a route's sink: deliveries made (or skipped as already
// done) and failed attempts.
func sinkMeter(route, sink string) Meter {
	l := func(o ...string) map[string][]string {
		return map[string][]string{"route": one(route), "sink": one(sink), "outcome": o}
	}
	return Meter{
		Count:  []Series{{Metric: metricRouteDeliveries, Labels: l("sent", "duplicate_skipped")}},
		Errors: []Series{{Metric: metricRouteDeliveries, Labels: l("failed")}},
	}
}

// publishedMeter meters a service publishing a topic it alone produces.
func publishedMeter(topic string) Meter {
	return Meter{Count: []Series{{Metric: metricBusPublished, Labels: map[string][]string{"topic": one(topic)}}}}
}

// consumedMeter meters a service consuming a topic it alone consumes.
func consumedMeter(topic string) Meter {
	t := map[string][]string{"topic": one(topic)}
	return Meter{
		Count:  []Series{{Metric: metricBusAcked, Labels: t}},
		Errors: []Series{{Metric: metricBusNacked, Labels: t}, {Metric: metricBusDeadLettered, Labels: t}},
	}
}

// partnerMeter meters a service's direct exchange with partners by the
// monitor's exchange counter of its flows.
func partnerMeter(l PartnerLink) Meter {
	if len(l.Flows) == 0 {
		return Meter{}
	}
	sel := func(o ...string) map[string][]string {
		return map[string][]string{"partner": l.Partners, "flow": l.Flows, "direction": one(string(l.Direction)), "outcome": o}
	}
	return Meter{
		Count:  []Series{{Metric: metricExchanges, Labels: sel("ok", "error", "dead_lettered")}},
		Errors: []Series{{Metric: metricExchanges, Labels: sel("error", "dead_lettered")}},
	}
}
